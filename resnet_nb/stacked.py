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

``tests/test_stacked.py`` checks this against separate ``fit`` runs. What differs: the memory
format (the stacked nets run NCHW; ``channels_last`` is a 4-D layout), fp16 is refused (one
GradScaler would skip a step for every seed when one overflows), and ``torch.compile`` is
not offered. Epoch times are shared by the K seeds; records say ``seed_parallel: K``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from .checkpoints import CHECKPOINT_FORMAT, SegmentLog, load_for_resume, save_checkpoint, save_weights
from .data import Cifar10, DeviceLoader, channel_stats, crop_flip, crop_flip_draws, stratified_subset
from .files import LockedError, atomic_write_text, check_writable, claimed
from .grids import group_checkpoint_path, group_checkpoints, weights_path
from .models import ModelSpec, build_model, he_init
from .provenance import environment, segment_env
from .records import RESULTS_DIR, RunConfig, make_record, read_record, record_path, validate_record
from .train import (CudaGraph, FitResult, GraphedStep, Precision, Recipe, autocast, check_divergence, make_optimizer,
                    resolve_cuda_graph, resolve_device, resolve_precision, set_scheduled_lr, train_step)

SEED_PARALLEL_MAX = 10  # `auto` on a GPU groups at most this many seeds (the bench's largest K)


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


def build_seed_model(spec: ModelSpec, recipe: Recipe, seed: int) -> nn.Module:
    """The net exactly as ``fit`` builds it for ``seed`` (same RNG use, same init)."""
    torch.manual_seed(seed)
    model = build_model(spec)
    if recipe.init == "he":
        he_init(model)
    return model


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seed-parallel training needs distinct seeds, got {seeds}")
    return seeds


def fit_stacked(spec: ModelSpec, recipe: Recipe, data: Cifar10, seeds: Sequence[int], *,
                device: str | torch.device = "auto", precision: Precision = "auto", cuda_graph: CudaGraph = "auto",
                checkpoint: Path | None = None, progress: bool = True,
                on_epoch: Callable[[list[dict[str, float]]], None] | None = None) -> list[FitResult]:
    """Train ``spec`` with ``recipe`` for every seed in ``seeds`` at once; one :class:`FitResult` per seed.

    Same contract as :func:`resnet_nb.train.fit` (histories, checkpoint/resume after every
    epoch, CUDA graphs on CUDA), with ``on_epoch`` receiving the K rows of an epoch.
    """
    from tqdm.auto import tqdm

    seeds = _check_seeds(seeds)
    k = len(seeds)
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if prec == "fp16":
        raise ValueError("seed-parallel training does not support fp16 (one GradScaler would skip every seed's "
                         "step when one seed overflows); use bf16 or fp32, or --seed-parallel off")
    use_graph = resolve_cuda_graph(cuda_graph, dev, prec)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    train_x, train_y = data.train_x, data.train_y
    if recipe.train_size is not None and recipe.train_size != len(train_y):
        idx = stratified_subset(train_y, recipe.train_size)
        train_x, train_y = train_x[idx], train_y[idx]
    mean, std = channel_stats(train_x)
    train_x, train_y = train_x.to(dev), train_y.to(dev)  # once: the K loaders share these tensors
    batches = StackedBatches([DeviceLoader(train_x, train_y, batch_size=recipe.batch_size, device=dev, mean=mean,
                                           std=std, shuffle=True, augment=recipe.augment, seed=s) for s in seeds])
    test = DeviceLoader(data.test_x, data.test_y, batch_size=500, device=dev, mean=mean, std=std)

    stacked = StackedNets([build_seed_model(spec, recipe, s) for s in seeds]).to(dev)
    optimizer = make_optimizer(recipe, stacked, dev, capturable=use_graph)
    steps_per_epoch = len(batches)
    epochs = recipe.num_epochs(steps_per_epoch)
    total_iterations = recipe.total_iterations(steps_per_epoch)
    setup = {"device": str(dev), "precision": prec, "channels_last": False, "compile": False,
             "cuda_graph": use_graph, "seed_parallel": k, "seed_group": seeds,
             "epochs": epochs, "steps_per_epoch": steps_per_epoch, "train_size": len(train_y),
             "total_iterations": total_iterations}
    identity = {"model": spec.key, "recipe": dataclasses.asdict(recipe), "seeds": seeds, "precision": prec,
                "seed_parallel": True, "dataset_checksum": data.checksum}

    histories: list[list[dict[str, float]]] = [[] for _ in seeds]
    start_epoch = 0
    # sealed, bound to the group and its data: a damaged file restarts, another run's is refused
    state = load_for_resume(Path(checkpoint), identity, dev) if checkpoint is not None else None
    if state is not None:
        stacked.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        histories, start_epoch = state["histories"], state["epoch"]
        torch.set_rng_state(state["rng"].cpu())
        for group in optimizer.param_groups:
            if "capturable" in group:
                group["capturable"] = use_graph
    log = SegmentLog(state, start_epoch, segment_env(dev))

    graphed = GraphedStep(stacked, optimizer, dev, prec, loss_fn=stacked_loss) if use_graph else None
    iteration = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, epochs):
        stacked.train()
        batches.set_epoch(epoch)
        t0 = time.perf_counter()
        loss_sum = torch.zeros(k, device=dev)
        correct = torch.zeros(k, device=dev, dtype=torch.long)
        lr = math.nan
        bar = tqdm(batches, total=steps_per_epoch, desc=f"{spec.key} x{k} epoch {epoch + 1}/{epochs}",
                   leave=False, disable=not progress, unit="batch")
        seen = 0
        for x, y in bar:
            if iteration >= total_iterations:  # as in train.train_epoch: stop at the recipe's iteration count
                break
            lr = set_scheduled_lr(optimizer, recipe, iteration, total_iterations, spec.depth, lr)
            if graphed is not None:
                _, out = graphed(x, y)
            else:
                _, out = train_step(stacked, optimizer, x, y, dev, prec, loss_fn=stacked_loss)
            with torch.no_grad():
                loss_sum += per_seed_loss(out.float(), y) * y.shape[1]
                correct += (out.argmax(-1) == y).sum(1)
            iteration += 1
            seen += y.shape[1]
        bar.close()
        train_seconds = time.perf_counter() - t0
        losses, accs = (loss_sum / seen).tolist(), (correct / seen).tolist()
        rows = []
        for i, (test_loss, test_acc) in enumerate(evaluate_stacked(stacked, test, prec)):
            # the single-run rule, per seed: one diverged seed stops the group (the last good checkpoint stays)
            check_divergence(f"{spec.key} seed {seeds[i]}", epoch + 1, losses[i], accs[i], test_loss, test_acc,
                             Path(checkpoint) if checkpoint is not None else None)
            rows.append({"epoch": epoch + 1, "train_loss": losses[i], "train_acc": accs[i], "test_loss": test_loss,
                         "test_acc": test_acc, "lr": lr, "seconds": time.perf_counter() - t0,
                         "train_images_per_s": seen / train_seconds})
        for history, row in zip(histories, rows, strict=True):
            history.append(row)
        log.epoch_done(epoch + 1)
        if progress:
            tqdm.write(f"{spec.key} seeds {seeds} epoch {epoch + 1}/{epochs}: test acc "
                       + " ".join(f"{r['test_acc']:.4f}" for r in rows) + f" | {k * seen / train_seconds:.0f} img/s")
        if checkpoint is not None:
            save_checkpoint(Path(checkpoint), {
                "format": CHECKPOINT_FORMAT, "identity": identity, "epoch": epoch + 1, "histories": histories,
                "segments": log.segments, "model": stacked.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": torch.get_rng_state()})
        if on_epoch is not None:
            on_epoch(rows)
    models = []
    for i in range(k):  # each seed as a plain net, evaluated last (eval mode), as fit() returns it
        model = build_model(spec).to(dev)
        model.load_state_dict(stacked.state_of(i))
        models.append(model.eval())
    setup["segments"] = log.segments
    return [FitResult(model=m, history=h, setup=setup) for m, h in zip(models, histories, strict=True)]


def resolve_seed_parallel(setting: str, device: torch.device) -> int:
    """Most seeds per group: ``off`` = 1; a number K; ``auto`` = 1 on the CPU, where ``bench`` finds no
    gain (``benchmarks/cpu-seed-parallel.json``), else :data:`SEED_PARALLEL_MAX`."""
    if setting == "off":
        return 1
    if setting == "auto":
        return 1 if device.type == "cpu" else SEED_PARALLEL_MAX
    try:
        k = int(setting)
    except ValueError:
        raise ValueError(f"--seed-parallel must be auto, off or a number of seeds >= 1, got {setting!r}") from None
    if k < 1:
        raise ValueError(f"--seed-parallel must be auto, off or a number of seeds >= 1, got {setting!r}")
    return k


def group_runs(runs: Sequence[Any], k: int) -> list[list[Any]]:
    """Consecutive groups of at most ``k`` runs that differ only by seed, in the order given.

    A run joins the first open group of its config; the groups come out in the order of
    their first run, so the priority order of ``runs`` is kept.
    """
    groups: list[list[Any]] = []
    open_group: dict[str, list[Any]] = {}
    for run in runs:
        group = open_group.get(run.config_id)
        if group is None or len(group) >= k:
            group = []
            groups.append(group)
            open_group[run.config_id] = group
        group.append(run)
    return groups


def plan_groups(runs: Sequence[RunConfig], k: int, checkpoints: Path | None = None) -> list[list[RunConfig]]:
    """:func:`group_runs`, except that runs a seed-parallel group checkpoint holds come first, grouped as
    that checkpoint's group, whatever ``k`` is now: :func:`run_group` resumes it with its own seeds.

    A run held by several group checkpoints (``k`` changed while both were unfinished) resumes the
    oldest; the others are named in a warning, never deleted unseen.
    """
    held: dict[Path, list[RunConfig]] = {}
    rest = []
    for run in runs:
        found = group_checkpoints(run, checkpoints)
        if len(found) > 1:
            warnings.warn(f"{run.run_id} is held by {len(found)} seed-parallel group checkpoints; resuming "
                          f"{found[0][0]}, not {', '.join(str(p) for p, _ in found[1:])}: delete those", stacklevel=2)
        if found:
            held.setdefault(found[0][0], []).append(run)
        else:
            rest.append(run)
    return list(held.values()) + group_runs(rest, k)


def _resumed_group(runs: list[RunConfig], checkpoints: Path | None) -> list[RunConfig]:
    """The group ``runs`` belong to: the seeds of the group checkpoint that holds them all, else theirs."""
    for _, seeds in group_checkpoints(runs[0], checkpoints):
        if all(r.seed in seeds for r in runs):
            return [dataclasses.replace(runs[0], seed=s) for s in seeds]
    return runs


def run_group(runs: Sequence[Any], data: Cifar10, *, results: Path | None = None, checkpoints: Path | None = None,
              device: str = "auto", precision: Precision = "auto", cuda_graph: CudaGraph = "auto",
              progress: bool = True) -> list[dict[str, Any]]:
    """Train runs that differ only by seed as one seed-parallel group; write one record per run.

    Records have the single-run schema; ``provenance.seed_parallel`` says how many seeds were
    trained together and ``provenance.seed_group`` which, and ``wall_seconds`` is the group's.

    Runs that a group checkpoint holds (:func:`resnet_nb.grids.group_checkpoints`) resume that group
    with its seeds, and records are written for every seed of it that has none: after a kill between
    the K record writes the finished checkpoint writes the missing records, training nothing. The
    checkpoint is removed only once all K records exist. Returns the records written.
    """

    results = Path(results) if results is not None else RESULTS_DIR
    runs = list(runs)
    if len({r.config_id for r in runs}) != 1 or len({r.grid for r in runs}) != 1:
        raise ValueError(f"a seed-parallel group must hold one config of one grid, got {[r.run_id for r in runs]}")
    for run in runs:
        if record_path(run, results).exists():
            read_record(record_path(run, results), run)
            raise ValueError(f"{run.run_id} already has a record; leave it out of the group")
    group = _resumed_group(runs, checkpoints)
    ckpt = group_checkpoint_path(group, checkpoints)
    dev = resolve_device(device)
    check_writable(record_path(runs[0], results).parent, "results")
    check_writable(ckpt.parent, "checkpoint")
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with contextlib.ExitStack() as stack:
        # every run of the group and the group's checkpoint are claimed, as run_one claims a single run
        locks = [stack.enter_context(claimed(record_path(r, results))) for r in group]
        locks.append(stack.enter_context(claimed(ckpt)))
        if any(record_path(r, results).exists() for r in runs):
            raise LockedError(f"a run of {[r.run_id for r in runs]} was finished by another process meanwhile")
        missing = [r for r in group if not record_path(r, results).exists()]
        for run in group:
            if run not in missing:  # written before a kill: it must be this very run's record
                read_record(record_path(run, results), run)
        fits = fit_stacked(group[0].spec, group[0].recipe_obj(), data, [r.seed for r in group], device=dev,
                           precision=group[0].precision or precision, cuda_graph=cuda_graph, checkpoint=ckpt,
                           progress=progress, on_epoch=lambda _rows: [lock.refresh() for lock in locks])
        env = environment(dev)
        records = []
        for run, result in zip(group, fits, strict=True):
            if run not in missing:
                continue
            wall = sum(r["seconds"] for r in result.history)
            # how the run was trained goes into the provenance before the record is sealed by its hash
            group_env = env | {"seed_parallel": len(group), "seed_group": [r.seed for r in group]}
            record = make_record(run, result.history, result.setup, data, group_env, started, wall)
            validate_record(record, run)
            weights = weights_path(run, results)
            if weights is not None:  # as run_one: before the record, so a kill in between writes both again
                weights.parent.mkdir(parents=True, exist_ok=True)
                save_weights(weights, result.model, run.run_id)
            atomic_write_text(record_path(run, results), json.dumps(record, indent=1, allow_nan=False))
            records.append(record)
        ckpt.unlink(missing_ok=True)
    return records
