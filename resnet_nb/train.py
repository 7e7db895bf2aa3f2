"""Training: recipes (frozen dataclasses), fit() with per-epoch history, checkpoint/resume.

Speed comes from keeping the data on the device (``DeviceLoader``), channels_last
memory format and mixed precision where it pays (bf16 autocast on CPUs with bf16
instructions; on CUDA fp32/TF32 by default, bf16 or fp16 + GradScaler on request). Every
choice is recorded in the result's ``setup``/provenance and can be switched off.

Training half. ``Recipe``, ``RECIPES`` and ``get_recipe`` live in :mod:`resnet_nb.vocab` (torch-free, read by
the evidence half too) and are re-exported here. The device arrives resolved from the command line (``__main__``);
:func:`resolve_device` is that one decision.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import CHECKPOINT_FORMAT, SegmentLog, load_for_resume, save_checkpoint
from .data import Cifar10, DeviceLoader, channel_stats, stratified_subset
from .models import ModelSpec, build_model, he_init
from .provenance import segment_env
from .vocab import RECIPES, Recipe, get_recipe  # noqa: F401 - re-exported: their home before vocab

Precision = Literal["auto", "fp32", "bf16", "fp16"]
CudaGraph = Literal["auto", "on", "off"]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]




def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; an unavailable explicit choice is an error."""
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda" and dev.index is not None and torch.cuda.is_available() \
            and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device auto or cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but MPS is not available; use --device auto or cpu")
    return dev


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def as_device(device: torch.device | str) -> torch.device:
    """The device a caller has decided: a ``torch.device`` or a name (``cpu``, ``cuda:1``, ``mps``).

    ``auto`` is refused: it is decided once, by :func:`resolve_device`, where a command or a notebook's
    training starts, and travels down as the value it became (so one program never trains on two devices).
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        raise ValueError("device 'auto' is decided once where the program starts: pass resolve_device('auto') "
                         "(or a device name such as 'cpu') to the library")
    return resolve_device(device)


def resolve_precision(precision: Precision, device: torch.device) -> Literal["fp32", "bf16", "fp16"]:
    if precision == "auto":
        # CUDA: fp32 (convs use TF32 tensor cores anyway). These small CIFAR nets are bound by
        # kernel launches, not arithmetic, so autocast's extra cast kernels cost more than they
        # save: on an H200 `python -m resnet_nb bench` measured ResNet-20 at batch 32 with
        # 2,968 img/s in fp32 vs 2,613 with bf16 autocast, and ResNet-56 1,136 vs 996.
        # CPU: bf16 where the CPU has bf16 instructions (faster, same accuracy: `grid run precision`).
        if device.type == "cpu":
            return "bf16" if cpu_has_bf16() else "fp32"
        return "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 training is not supported on the CPU; use bf16 or fp32")
    return precision


def autocast(device: torch.device, precision: str, cache_enabled: bool = True) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache_enabled)


def resolve_cuda_graph(setting: str, device: torch.device, precision: str, compile: bool = False) -> bool:
    """Whether to run the training step as a CUDA graph (:class:`GraphedStep`).

    ``auto``: yes on CUDA, unless ``compile`` (which brings its own graphs) or fp16 (whose
    GradScaler skips steps on the host); ``on``: the same, but an error where it cannot apply.
    """
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"cuda_graph must be auto, on or off, got {setting!r}")
    if setting == "off":
        return False
    reason = None
    if device.type != "cuda":
        reason = f"CUDA graphs need a CUDA device, and this run is on {device.type!r}"
    elif compile:
        reason = "CUDA graphs and --compile do not combine"
    elif precision == "fp16":
        reason = "CUDA graphs do not support fp16 training (its GradScaler decides on the host); use bf16 or fp32"
    if reason is not None:
        if setting == "on":
            raise ValueError(f"{reason}; use cuda_graph 'auto' or 'off'")
        return False
    return True


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, float]]
    setup: dict[str, Any] = field(default_factory=dict)


def set_scheduled_lr(optimizer: torch.optim.Optimizer, recipe: "Recipe", iteration: int, total_iterations: int,
                     depth: int, current: float) -> float:
    """The recipe's learning rate at ``iteration``, written into ``optimizer`` only when it changes
    (a CUDA graph re-captures on a change, so an unchanged rate must not look like one)."""
    lr = recipe.lr_at(iteration, total_iterations, depth)
    if lr != current:
        for group in optimizer.param_groups:
            group["lr"] = lr
    return lr


def make_optimizer(recipe: Recipe, model: nn.Module, device: torch.device,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimizer; ``capturable`` (Adam) keeps its step count on the GPU for CUDA graphs."""
    fused = {"fused": True} if device.type == "cuda" else {}  # one kernel for the whole update on CUDA
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                                capturable=capturable, **fused)
    if recipe.optimizer != "sgd":
        raise ValueError(f"unknown optimizer {recipe.optimizer!r} in recipe {recipe.name!r}; choose adam or sgd")
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay, **fused)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               device: torch.device, precision: str,
               scaler: torch.amp.GradScaler | None = None,
               set_to_none: bool = True, loss_fn: LossFn = F.cross_entropy) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step (forward under autocast, backward, update); returns (loss, logits).

    ``loss_fn(logits, labels)``: cross-entropy, or e.g. the seed-parallel sum of per-seed means.
    """
    with autocast(device, precision):
        out = model(x)
        loss = loss_fn(out, y)
    optimizer.zero_grad(set_to_none=set_to_none)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss, out


class GraphedStep:
    """:func:`train_step` as one CUDA graph: forward, loss, backward and optimizer update.

    Why: at batch 32 these small nets are bound by kernel launches on a GPU, not by
    arithmetic (an H200 ran ResNet-20 eagerly at ~3,000 img/s); a graph replays the
    step's hundreds of kernels with one launch (``python -m resnet_nb bench`` measures it).

    It is the same training: capture needs a few warm-up steps, so the weights, BN
    buffers and optimizer state are snapshotted before them and restored after the
    capture. A batch of another shape (an epoch's last, partial batch) runs eagerly on the
    same tensors, and a learning-rate change re-captures (the rate is baked into the graph).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 precision: str, warmup_steps: int = 3, loss_fn: LossFn = F.cross_entropy) -> None:
        self.model, self.optimizer, self.device, self.precision = model, optimizer, device, precision
        self.loss_fn = loss_fn
        self.warmup_steps = warmup_steps
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_x: torch.Tensor | None = None
        self.static_y: torch.Tensor | None = None
        self.static_out: torch.Tensor | None = None
        self.static_loss: torch.Tensor | None = None
        self.lrs: tuple[float, ...] = ()
        self.captures = 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.static_x is not None and x.shape != self.static_x.shape:
            # grads are the graph's tensors: zero them in place instead of dropping them
            return train_step(self.model, self.optimizer, x, y, self.device, self.precision, set_to_none=False,
                              loss_fn=self.loss_fn)
        lrs = tuple(float(g["lr"]) for g in self.optimizer.param_groups)
        if self.graph is None or lrs != self.lrs:
            self._capture(x, y)
            self.lrs = lrs
        assert self.graph is not None and self.static_x is not None and self.static_y is not None
        assert self.static_loss is not None and self.static_out is not None
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_loss, self.static_out

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.graph = self.static_out = self.static_loss = None  # release the previous graph first
        self.static_x, self.static_y = x.clone(), y.clone()  # clone keeps channels_last
        saved = self._snapshot()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_steps):
                train_step(self.model, self.optimizer, self.static_x, self.static_y, self.device, self.precision,
                           loss_fn=self.loss_fn)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            with autocast(self.device, self.precision, cache_enabled=False):
                out = self.model(self.static_x)
                loss = self.loss_fn(out, self.static_y)
            loss.backward()
            self.optimizer.step()
        self._restore(saved)
        # detached: holding the captured autograd graph would keep its nodes on the capture stream
        self.graph, self.static_out, self.static_loss = graph, out.detach(), loss.detach()
        self.captures += 1

    def _snapshot(self) -> tuple[list[torch.Tensor], dict[int, dict[str, torch.Tensor]]]:
        model = [t.detach().clone() for t in self.model.state_dict().values()]
        opt = {id(p): {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
               for p, s in self.optimizer.state.items()}
        return model, opt

    @torch.no_grad()
    def _restore(self, saved: tuple[list[torch.Tensor], dict[int, dict[str, torch.Tensor]]]) -> None:
        model, opt = saved
        for t, old in zip(self.model.state_dict().values(), model, strict=True):
            t.copy_(old)  # in place: the graph holds these addresses
        for p, s in self.optimizer.state.items():
            old_state = opt.get(id(p))
            for k, v in s.items():
                if torch.is_tensor(v):
                    # state the warm-up created did not exist before: zero is what a first step starts from
                    v.copy_(old_state[k]) if old_state is not None else v.zero_()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, precision: str = "fp32") -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a loader, in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=loader.device)
    correct = torch.zeros((), device=loader.device, dtype=torch.long)
    for x, y in loader:
        with autocast(loader.device, precision):
            out = model(x)
        loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
    n = len(loader.y)
    return loss_sum.item() / n, correct.item() / n


def fit(spec: ModelSpec, recipe: Recipe, data: Cifar10, *, device: torch.device | str, seed: int = 0,
        precision: Precision = "auto", channels_last: bool = True, compile: bool = False,
        cuda_graph: CudaGraph = "auto", checkpoint: Path | None = None, progress: bool = True,
        on_epoch: Callable[[dict[str, float]], None] | None = None) -> FitResult:
    """Train ``spec`` with ``recipe`` on ``data``; one history row per epoch.

    With ``checkpoint``, the state after every epoch is written there atomically, and a
    later call with the same arguments resumes from it and returns the same history as
    an uninterrupted run (on the same machine). A checkpoint of another run (model, recipe,
    seed, precision, memory format, or the data's checksum) is refused; a damaged one is not
    resumed (see :mod:`.checkpoints`). An epoch that diverges raises DivergedError
    (:func:`check_divergence`). ``cuda_graph``: see :func:`resolve_cuda_graph`.
    """
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    dev = as_device(device)  # decided by the caller (resolve_device), never here
    prec = resolve_precision(precision, dev)
    use_graph = resolve_cuda_graph(cuda_graph, dev, prec, compile)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    train, test = make_loaders(recipe, data, seed, dev, channels_last)

    model = build_seed_model(spec, recipe, seed).to(
        dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = make_optimizer(recipe, model, dev, capturable=use_graph)
    scaler = torch.amp.GradScaler("cuda") if prec == "fp16" else None
    step_model = torch.compile(model) if compile else model
    epochs, total_iterations, setup = run_setup(recipe, len(train), len(train.y), dev, prec, use_graph,
                                                channels_last=channels_last, compile=compile)
    identity = {"model": spec.key, "recipe": dataclasses.asdict(recipe), "seed": seed, "precision": prec,
                "channels_last": channels_last, "dataset_checksum": data.checksum}

    history: list[dict[str, float]] = []
    start_epoch = 0
    state = load_for_resume(checkpoint, identity, dev) if checkpoint is not None else None
    if state is not None:
        history, start_epoch = state["history"], restore(state, model, optimizer, use_graph)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    log = SegmentLog(state, start_epoch, segment_env(dev))

    graphed = GraphedStep(model, optimizer, dev, prec) if use_graph else None
    trainee = Trainee(
        label=spec.key, names=[spec.key], model=model, optimizer=optimizer, batches=train,
        step=graphed if graphed is not None else lambda x, y: train_step(step_model, optimizer, x, y, dev, prec, scaler),
        tally=lambda loss, out, y: (loss.detach() * len(y), (out.argmax(1) == y).sum()),
        evaluate=lambda: [evaluate(model, test, prec)],
        saved=lambda histories: {"history": histories[0],
                                 "scaler": scaler.state_dict() if scaler is not None else None})
    [history] = train_loop(trainee, recipe, spec.depth, epochs, total_iterations, [history], start_epoch, log,
                           identity, checkpoint, progress,
                           on_epoch=None if on_epoch is None else lambda rows: on_epoch(rows[0]))
    return FitResult(model=model, history=history, setup=setup | {"segments": log.segments})


def build_seed_model(spec: ModelSpec, recipe: Recipe, seed: int) -> nn.Module:
    """The net of ``seed``, as every run builds it (``torch.manual_seed(seed)``, then the model, then He init
    where the recipe asks): one seed gives the same initial weights alone or in a seed-parallel group."""
    torch.manual_seed(seed)
    model = build_model(spec)
    if recipe.init == "he":
        he_init(model)
    return model


def training_set(recipe: Recipe, data: Cifar10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The recipe's training images and labels (a stratified subset where it asks for one) and their
    per-channel mean and std, which normalise the training and the test images."""
    train_x, train_y = data.train_x, data.train_y
    if recipe.train_size is not None and recipe.train_size != len(train_y):
        idx = stratified_subset(train_y, recipe.train_size)
        train_x, train_y = train_x[idx], train_y[idx]
    mean, std = channel_stats(train_x)
    return train_x, train_y, mean, std


def run_setup(recipe: Recipe, steps_per_epoch: int, train_size: int, device: torch.device, precision: str,
              cuda_graph: bool, **how: Any) -> tuple[int, int, dict[str, Any]]:
    """(epochs, total iterations, the ``setup`` a record's provenance keeps: how the run was trained)."""
    epochs = recipe.num_epochs(steps_per_epoch)
    total_iterations = recipe.total_iterations(steps_per_epoch)
    setup = {"device": str(device), "precision": precision, "channels_last": how.pop("channels_last"),
             "compile": how.pop("compile"), "cuda_graph": cuda_graph, **how, "epochs": epochs,
             "steps_per_epoch": steps_per_epoch, "train_size": train_size, "total_iterations": total_iterations}
    return epochs, total_iterations, setup


def make_loaders(recipe: Recipe, data: Cifar10, seed: int, device: torch.device,
                 channels_last: bool) -> tuple[DeviceLoader, DeviceLoader]:
    """The training loader (the recipe's subset, batch size, augmentation; shuffled by ``seed``) and the
    test loader, both normalised with the training subset's channel statistics."""
    train_x, train_y, mean, std = training_set(recipe, data)
    train = DeviceLoader(train_x, train_y, batch_size=recipe.batch_size, device=device, mean=mean, std=std,
                         shuffle=True, augment=recipe.augment, seed=seed, channels_last=channels_last)
    test = DeviceLoader(data.test_x, data.test_y, batch_size=500, device=device, mean=mean, std=std,
                        channels_last=channels_last)
    return train, test


def restore(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, use_graph: bool) -> int:
    """Load a verified checkpoint's model, optimizer and RNG state in place; the number of epochs done."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"].cpu())  # map_location moved it to the device
    for group in optimizer.param_groups:  # load_state_dict restored the saving run's option
        if "capturable" in group:
            group["capturable"] = use_graph
    return state["epoch"]


Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Trainee:
    """What :func:`train_loop` trains: one net (:func:`fit`) or K seeds stacked into one module
    (:func:`resnet_nb.stacked.fit_stacked`). The loop is one; only these parts differ between the two.

    ``names``: one per net, for messages. ``step(x, y) -> (loss, logits)``: one optimisation step.
    ``batches``: an epoch's batches (``set_epoch``, ``len``, iteration). ``tally(loss, logits, y)``: the
    batch's per-net (loss sum, correct count), shape ``()`` or ``(K,)``. ``evaluate()``: per-net (test loss,
    test accuracy). ``saved(histories)``: what the checkpoint holds beyond the state every run saves.
    """

    label: str
    names: list[str]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    batches: Any  # DeviceLoader or stacked.StackedBatches
    step: Step
    tally: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    evaluate: Callable[[], list[tuple[float, float]]]
    saved: Callable[[list[list[dict[str, float]]]], dict[str, Any]]


def train_loop(t: Trainee, recipe: Recipe, depth: int, epochs: int, total_iterations: int,
               histories: list[list[dict[str, float]]], start_epoch: int, log: SegmentLog,
               identity: dict[str, Any], checkpoint: Path | None, progress: bool,
               on_epoch: Callable[[list[dict[str, float]]], object] | None = None) -> list[list[dict[str, float]]]:
    """The training loop of every run: epochs ``start_epoch..epochs`` of ``t``, the learning rate following
    the recipe, each epoch evaluated, checked for divergence (:func:`check_divergence`, net by net),
    appended to ``histories`` (one list per net) and checkpointed atomically; returns ``histories``.

    The run stops at ``total_iterations`` exactly, so a recipe given in iterations (the paper's 64k, or
    a fraction of it) ends inside its last epoch instead of training that epoch to its end. A row's
    training loss is the mean over the images the epoch trained on (a step's loss is a batch mean, so it
    is weighted by the batch size).
    """
    from tqdm.auto import tqdm

    k = len(t.names)
    device = next(t.model.parameters()).device
    steps_per_epoch = len(t.batches)
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        t.model.train()
        t.batches.set_epoch(epoch)
        loss_sum = torch.zeros(k, device=device)
        correct = torch.zeros(k, device=device, dtype=torch.long)
        lr, iteration, seen = math.nan, epoch * steps_per_epoch, 0
        bar = tqdm(desc=f"{t.label} epoch {epoch + 1}/{epochs}", total=steps_per_epoch, leave=False,
                   disable=not progress, unit="batch")
        for x, y in t.batches:
            if iteration >= total_iterations:
                break
            lr = set_scheduled_lr(t.optimizer, recipe, iteration, total_iterations, depth, lr)
            loss, out = t.step(x, y)
            with torch.no_grad():
                batch_loss, batch_correct = t.tally(loss, out, y)
                loss_sum += batch_loss
                correct += batch_correct
            iteration += 1
            seen += y.shape[-1]
            bar.update()
        bar.close()
        train_seconds = time.perf_counter() - t0
        rows = []
        for name, train_loss, train_correct, (test_loss, test_acc) in zip(
                t.names, loss_sum.tolist(), correct.tolist(), t.evaluate(), strict=True):
            train_loss, train_acc = train_loss / seen, train_correct / seen
            # one diverged net stops the run (and a seed group); the last good checkpoint stays
            check_divergence(name, epoch + 1, train_loss, train_acc, test_loss, test_acc, checkpoint)
            rows.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                         "test_loss": test_loss, "test_acc": test_acc, "lr": lr,
                         "seconds": time.perf_counter() - t0, "train_images_per_s": seen / train_seconds})
        for history, row in zip(histories, rows, strict=True):
            history.append(row)
        log.epoch_done(epoch + 1)
        if progress:
            tqdm.write(epoch_line(t.label, rows, epochs, k * seen / train_seconds))
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "format": CHECKPOINT_FORMAT, "identity": identity, "epoch": epoch + 1, **t.saved(histories),
                "segments": log.segments, "model": t.model.state_dict(), "optimizer": t.optimizer.state_dict(),
                "rng": torch.get_rng_state()})
        if on_epoch is not None:
            on_epoch(rows)
    return histories


def epoch_line(label: str, rows: list[dict[str, float]], epochs: int, images_per_s: float) -> str:
    """The line printed after an epoch: one net's losses and accuracies, or each stacked seed's test accuracy."""
    r = rows[0]
    if len(rows) == 1:
        return (f"{label} epoch {r['epoch']}/{epochs}: train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f} | "
                f"test loss {r['test_loss']:.4f} acc {r['test_acc']:.4f} | {images_per_s:.0f} img/s")
    return (f"{label} epoch {r['epoch']}/{epochs}: test acc " + " ".join(f"{row['test_acc']:.4f}" for row in rows)
            + f" | {images_per_s:.0f} img/s")


class DivergedError(FloatingPointError):
    """Training diverged: the run stops and no record is written."""


CHANCE_ACC = 0.1  # ten classes
UNIFORM_LOSS = math.log(10)  # mean cross-entropy of guessing uniformly: 2.30
EXPLODED_LOSS = 10 * UNIFORM_LOSS  # at chance accuracy: the logits have blown up
BLOWN_UP_LOSS = 100 * UNIFORM_LOSS  # whatever the accuracy: the right class gets probability < e^-230
NEAR_CHANCE = CHANCE_ACC + 0.05


def check_divergence(key: str, epoch: int, train_loss: float, train_acc: float, test_loss: float,
                     test_acc: float, checkpoint: Path | None = None) -> None:
    """Raise DivergedError when an epoch's numbers say the run diverged.

    The rule, checked after every epoch: (1) the train or test loss is not finite; or (2) the
    train or test loss exceeds ``EXPLODED_LOSS`` (ten times the loss of a uniform guess) while
    both accuracies stay at chance (< ``NEAR_CHANCE``); or (3) the mean *train* loss exceeds
    ``BLOWN_UP_LOSS`` (a hundred times that of a uniform guess), whatever the accuracy, which
    on a small test set can wander above chance by luck. A learning run never shows any of
    these (its first-epoch train loss is below ln 10 + a little); a test loss alone may spike
    for an epoch and recover, so it counts only at chance accuracy. The checkpoint of the last
    good epoch is kept (this check runs before the epoch is checkpointed).
    """
    why = None
    if not (math.isfinite(train_loss) and math.isfinite(test_loss)):
        why = "loss not finite"
    elif max(train_loss, test_loss) > EXPLODED_LOSS and max(train_acc, test_acc) < NEAR_CHANCE:
        why = "loss exploded at chance accuracy"
    elif train_loss > BLOWN_UP_LOSS:
        why = f"train loss above {BLOWN_UP_LOSS:.0f}"
    if why is not None:
        kept = f"; the last good epoch's checkpoint stays in {checkpoint}" if checkpoint and checkpoint.exists() else ""
        raise DivergedError(f"{key} diverged in epoch {epoch} ({why}: train loss {train_loss:.4g}, test loss "
                            f"{test_loss:.4g}, train acc {train_acc:.3f}, test acc {test_acc:.3f}); "
                            f"not recorded{kept}; lower the learning rate")
