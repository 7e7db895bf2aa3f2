"""Seed-parallel training: K seeds of one config trained in one model step.

Why: on a GPU these small CIFAR nets are bound by kernel launches, not arithmetic, so one
net at a time leaves most of the card idle. Stacking K nets makes every kernel K times
wider for about the same launch cost.

How: ``torch.func``. The K nets' parameters and buffers are stacked along a new leading
dimension and one ``vmap``-ed :func:`torch.func.functional_call` runs them all. For a
convolution with batched input *and* batched weight, vmap's batching rule is a grouped
convolution (K groups), so this is the "nets stacked along channels" formulation without
a second model definition. Batch norm keeps per-seed running statistics: its buffers are
stacked too and vmap updates each seed's slice in place.

It is the same training as K separate :func:`resnet_nb.train.fit` runs, seed by seed:

* init: each net is built exactly as ``fit`` builds it (``torch.manual_seed(seed)``, then
  ``build_model`` and He init where the recipe asks);
* data order and augmentation: one :class:`DeviceLoader` per seed, seeded as ``fit`` seeds it;
* optimizer state: one optimizer over the stacked tensors. SGD (momentum, weight decay) and
  Adam are elementwise, so a stacked tensor's update is each seed's own update; the loss is
  the *sum* of the per-seed mean losses, so each seed's gradient is its own;
* learning-rate schedule: the recipe's, shared (all seeds are at the same iteration).

The K seeds' batches are gathered and augmented at once (:class:`StackedBatches`, the same
random draws as K loaders) and the K nets are evaluated in one stacked forward per test batch.

The loop is the one every run trains with (:func:`resnet_nb.train.train_loop`); this module gives it the
stacked net, the batches, the loss and the evaluation. The runner (:func:`resnet_nb.grids.train_runs`) decides
when a group trains this way. ``tests/test_stacked.py`` checks this against separate ``fit`` runs. What differs: the memory
format (the stacked nets run NCHW; ``channels_last`` is a 4-D layout), fp16 is refused (one
GradScaler would skip a step for every seed when one overflows), and ``torch.compile`` is
not offered. Epoch times are shared by the K seeds; records say ``seed_parallel: K``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from .checkpoints import SegmentLog, load_for_resume
from .data import Cifar10, DeviceLoader, crop_flip, crop_flip_draws
from .models import ModelSpec, build_model
from .provenance import segment_env
from .train import (CudaGraph, FitResult, GraphedStep, Precision, Recipe, Trainee, autocast,  # noqa: F401
                    as_device, build_seed_model, make_optimizer, resolve_cuda_graph, resolve_precision, restore,
                    run_setup, train_loop, train_step, training_set)

def _safe(name: str) -> str:
    return name.replace(".", "__")  # parameter names may not contain dots


class StackedNets(nn.Module):
    """K nets of one architecture as one module: input ``(K, N, C, H, W)``, logits ``(K, N, classes)``.

    Its ``state_dict`` holds the stacked tensors (so checkpoints and optimizers work as for
    any module); :meth:`state_of` gives seed ``k``'s own ``state_dict`` for a plain net.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("StackedNets needs at least one model")
        self.k = len(models)
        states = [m.state_dict() for m in models]
        self.param_names = [n for n, _ in models[0].named_parameters()]
        self.buffer_names = [n for n, _ in models[0].named_buffers()]
        for name in self.param_names:
            self.register_parameter(_safe(name), nn.Parameter(torch.stack([s[name].detach() for s in states])))
        for name in self.buffer_names:
            self.register_buffer(_safe(name), torch.stack([s[name].detach() for s in states]))
        # the architecture without tensors; a tuple, so that it is not a registered submodule
        self._template = (copy.deepcopy(models[0]).to("meta"),)

    def train(self, mode: bool = True) -> "StackedNets":
        super().train(mode)
        self._template[0].train(mode)  # batch norm reads the template's mode
        return self

    def _one(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._template[0], (params, buffers), (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {n: getattr(self, _safe(n)) for n in self.param_names}
        buffers = {n: getattr(self, _safe(n)) for n in self.buffer_names}
        return vmap(self._one)(params, buffers, x)

    def state_of(self, k: int) -> dict[str, torch.Tensor]:
        """Seed ``k``'s tensors under the plain net's names (copies, detached)."""
        return {n: getattr(self, _safe(n))[k].detach().clone() for n in (*self.param_names, *self.buffer_names)}


class StackedBatches:
    """The K seeds' batches as one ``(K, N, C, H, W)`` batch: gathered, normalised and augmented at once.

    Each seed draws its order and augmentation from its own loader's epoch generator, in the
    order :class:`DeviceLoader` draws them, so the batches are exactly the K loaders' batches
    (``tests/test_stacked.py``); one gather instead of K saves kernel launches on a GPU.
    """

    def __init__(self, loaders: Sequence[DeviceLoader]) -> None:
        first = loaders[0]
        for other in loaders[1:]:
            if other.x is not first.x or other.batch_size != first.batch_size or other.augment != first.augment \
                    or other.shuffle != first.shuffle or not torch.equal(other.mean, first.mean) \
                    or not torch.equal(other.std, first.std):
                raise ValueError("stacked loaders must share images, batch size, augmentation and normalisation")
        self.loaders = list(loaders)

    def __len__(self) -> int:
        return len(self.loaders[0])

    def set_epoch(self, epoch: int) -> None:
        for loader in self.loaders:
            loader.set_epoch(epoch)

    def __iter__(self):  # noqa: ANN204 - Iterator[tuple[Tensor, Tensor]]
        first, k = self.loaders[0], len(self.loaders)
        gens = [loader.epoch_generator() for loader in self.loaders]
        order = torch.stack([loader.epoch_order(g) for loader, g in zip(self.loaders, gens, strict=True)])
        order = order.to(first.device)
        for i in range(len(self)):
            idx = order[:, i * first.batch_size : (i + 1) * first.batch_size]  # (K, N)
            xb = (first.x[idx.reshape(-1)].float() - first.mean) / first.std
            if first.augment:
                draws = [crop_flip_draws(idx.shape[1], g) for g in gens]
                offsets = torch.cat([d[0] for d in draws], 1).to(first.device)
                flips = torch.cat([d[1] for d in draws]).to(first.device)
                xb = crop_flip(xb, offsets, flips)
            yield xb.view(k, idx.shape[1], *xb.shape[1:]), first.y[idx]


def stacked_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over seeds of each seed's mean cross-entropy: seed k's gradient is that of its own run."""
    return per_seed_loss(out, y).sum()


def per_seed_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per seed, shape ``(K,)``; ``out`` is ``(K, N, classes)``."""
    return F.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(1)


@torch.no_grad()
def evaluate_stacked(stacked: StackedNets, loader: DeviceLoader, precision: str = "fp32") -> list[tuple[float, float]]:
    """:func:`resnet_nb.train.evaluate` for each of the K nets, in one stacked forward per batch."""
    stacked.eval()
    loss_sum = torch.zeros(stacked.k, device=loader.device)
    correct = torch.zeros(stacked.k, device=loader.device, dtype=torch.long)
    for x, y in loader:
        with autocast(loader.device, precision):
            out = stacked(x.expand(stacked.k, *x.shape))
        # per net, the reduction evaluate() does (same kernel, same order: the same numbers)
        loss_sum += torch.stack([F.cross_entropy(o.float(), y, reduction="sum") for o in out])
        correct += (out.argmax(-1) == y).sum(1)
    n = len(loader.y)
    return [(loss / n, acc / n) for loss, acc in zip(loss_sum.tolist(), correct.tolist(), strict=True)]


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seed-parallel training needs distinct seeds, got {seeds}")
    return seeds


def fit_stacked(spec: ModelSpec, recipe: Recipe, data: Cifar10, seeds: Sequence[int], *,
                device: torch.device | str, precision: Precision = "auto", cuda_graph: CudaGraph = "auto",
                checkpoint: Path | None = None, progress: bool = True,
                on_epoch: Callable[[list[dict[str, float]]], None] | None = None) -> list[FitResult]:
    """Train ``spec`` with ``recipe`` for every seed in ``seeds`` at once; one :class:`FitResult` per seed.

    Same contract as :func:`resnet_nb.train.fit` (histories, checkpoint/resume after every
    epoch, CUDA graphs on CUDA), with ``on_epoch`` receiving the K rows of an epoch.
    """
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    seeds = _check_seeds(seeds)
    k = len(seeds)
    dev = as_device(device)  # decided by the caller (resolve_device), never here
    prec = resolve_precision(precision, dev)
    if prec == "fp16":
        raise ValueError("seed-parallel training does not support fp16 (one GradScaler would skip every seed's "
                         "step when one seed overflows); use bf16 or fp32, or --seed-parallel off")
    use_graph = resolve_cuda_graph(cuda_graph, dev, prec)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    train_x, train_y, mean, std = training_set(recipe, data)
    train_x, train_y = train_x.to(dev), train_y.to(dev)  # once: the K loaders share these tensors
    batches = StackedBatches([DeviceLoader(train_x, train_y, batch_size=recipe.batch_size, device=dev, mean=mean,
                                           std=std, shuffle=True, augment=recipe.augment, seed=s) for s in seeds])
    test = DeviceLoader(data.test_x, data.test_y, batch_size=500, device=dev, mean=mean, std=std)

    stacked = StackedNets([build_seed_model(spec, recipe, s) for s in seeds]).to(dev)
    optimizer = make_optimizer(recipe, stacked, dev, capturable=use_graph)
    epochs, total_iterations, setup = run_setup(recipe, len(batches), len(train_y), dev, prec, use_graph,
                                                channels_last=False, compile=False, seed_parallel=k, seed_group=seeds)
    identity = {"model": spec.key, "recipe": dataclasses.asdict(recipe), "seeds": seeds, "precision": prec,
                "seed_parallel": True, "dataset_checksum": data.checksum}

    histories: list[list[dict[str, float]]] = [[] for _ in seeds]
    start_epoch = 0
    # sealed, bound to the group and its data: a damaged file restarts, another run's is refused
    state = load_for_resume(checkpoint, identity, dev) if checkpoint is not None else None
    if state is not None:
        histories, start_epoch = state["histories"], restore(state, stacked, optimizer, use_graph)
    log = SegmentLog(state, start_epoch, segment_env(dev))

    graphed = GraphedStep(stacked, optimizer, dev, prec, loss_fn=stacked_loss) if use_graph else None
    trainee = Trainee(
        label=f"{spec.key} x{k}", names=[f"{spec.key} seed {s}" for s in seeds], model=stacked, optimizer=optimizer,
        batches=batches,
        step=graphed if graphed is not None else lambda x, y: train_step(stacked, optimizer, x, y, dev, prec,
                                                                         loss_fn=stacked_loss),
        tally=lambda _loss, out, y: (per_seed_loss(out.float(), y) * y.shape[1], (out.argmax(-1) == y).sum(1)),
        evaluate=lambda: evaluate_stacked(stacked, test, prec),
        saved=lambda hs: {"histories": hs})
    histories = train_loop(trainee, recipe, spec.depth, epochs, total_iterations, histories, start_epoch, log,
                           identity, checkpoint, progress, on_epoch=on_epoch)
    models = []
    for i in range(k):  # each seed as a plain net, evaluated last (eval mode), as fit() returns it
        model = build_model(spec).to(dev)
        model.load_state_dict(stacked.state_of(i))
        models.append(model.eval())
    setup["segments"] = log.segments
    return [FitResult(model=m, history=h, setup=setup) for m, h in zip(models, histories, strict=True)]
