"""Training-speed benchmark: our trainer vs the plain PyTorch loop users write first.

Both run in one process, side by side, on the same data and model, so the ratio is fair
on a noisy machine. ``python -m resnet_nb bench``.

Variants (images/s after warm-up; median and min..max over repeats):

* ``baseline``: a torchvision-style Dataset (uint8 -> PIL -> ToTensor -> Normalize, plus
  RandomCrop/Flip for the paper recipe), ``DataLoader(shuffle=True, num_workers=2)``,
  fp32 NCHW model, the recipe's optimizer and batch size.
* ``ours``: ``train.fit``'s step with its defaults (device-resident batches, channels_last,
  mixed precision where the hardware has it, the step as one CUDA graph on CUDA).
* ``ours -resident`` / ``-channels_last`` / ``-mixed_precision`` / ``-cuda_graph``: one
  feature switched off (``-cuda_graph`` on CUDA only).
* ``ours +compile``: with ``torch.compile`` instead of the CUDA graph (default variant on
  CUDA only; opt in elsewhere).
* ``seed-parallel xK`` (``--seed-parallel 1,2,5,10``): K seeds in one step
  (:mod:`resnet_nb.stacked`, the way ``grid run --seed-parallel`` trains them); the rate is the
  aggregate over the K nets (K x batch images per step).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .data import Cifar10, DeviceLoader, channel_stats, load_cifar10
from .files import atomic_write_text, check_writable
from .models import ModelSpec, build_model
from .provenance import environment
from .vocab import BENCH_CUDA_ONLY as CUDA_ONLY
from .vocab import BENCH_VARIANTS as VARIANTS
from .train import (GraphedStep, Recipe, evaluate, get_recipe, make_optimizer, resolve_cuda_graph, resolve_device,
                    resolve_precision, train_step)



@dataclass
class Measurement:
    model: str
    recipe: str
    variant: str
    precision: str
    train_images_per_s: float  # median over repeats
    train_min: float
    train_max: float
    eval_images_per_s: float | None
    peak_memory_mb: float | None  # CUDA: max allocated; CPU: peak resident set size of the process so far


class PILCifar(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: uint8 HWC array -> PIL image -> transform."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: Callable) -> None:
        self.x = x.permute(0, 2, 3, 1).numpy()  # HWC, as torchvision stores CIFAR
        self.y = y.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), self.y[i]


def baseline_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, augment: bool, train: bool,
                    mean: list[float], std: list[float]) -> torch.utils.data.DataLoader:
    from torchvision import transforms as T

    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    transform = T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])
    return torch.utils.data.DataLoader(PILCifar(x, y, transform), batch_size=batch_size, shuffle=train,
                                       num_workers=2)


def _forever(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of a DataLoader, DeviceLoader or StackedBatches, epoch after epoch."""
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def _rss_mb() -> float | None:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except (ImportError, OSError):
        return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_variant(variant: str, spec: ModelSpec, recipe: Recipe, data: Cifar10, device: torch.device, *,
                    steps: int, warmup: int, repeats: int, eval_images: int) -> Measurement:
    ours = variant != "baseline"
    resident = ours and variant != "ours -resident"
    channels_last = ours and variant != "ours -channels_last"
    precision = resolve_precision("auto", device) if ours and variant != "ours -mixed_precision" else "fp32"
    mean, std = channel_stats(data.train_x)
    if resident:
        loader: torch.utils.data.DataLoader | DeviceLoader = DeviceLoader(
            data.train_x, data.train_y, batch_size=recipe.batch_size, device=device, mean=mean, std=std,
            shuffle=True, augment=recipe.augment, channels_last=channels_last)
    else:
        loader = baseline_loader(data.train_x, data.train_y, recipe.batch_size, recipe.augment, True, mean, std)
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(spec).to(device, memory_format=fmt)
    compile = variant == "ours +compile"
    graph = ours and variant != "ours -cuda_graph" and resolve_cuda_graph("auto", device, precision, compile)
    optimizer = make_optimizer(recipe, model, device, capturable=graph) if ours else _plain_optimizer(recipe, model)
    step_model = torch.compile(model) if compile else model
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    graphed = GraphedStep(model, optimizer, device, precision) if graph else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batches = _forever(loader)
    model.train()

    def step() -> int:
        x, y = next(batches)
        if not resident:
            x = x.to(device, memory_format=fmt, non_blocking=True)
            y = y.to(device, non_blocking=True)
        if graphed is not None:
            graphed(x, y)
        elif ours:
            train_step(step_model, optimizer, x, y, device, precision, scaler)
        else:  # the textbook loop
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        return len(y)

    rates = _timed_rates(step, device, warmup, steps, repeats)
    eval_rate = _eval_rate(model, data, device, ours, channels_last, precision, mean, std, eval_images)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _rss_mb()
    del batches
    return Measurement(spec.key, recipe.name, variant, precision, statistics.median(rates), min(rates), max(rates),
                       eval_rate, peak)


def measure_seed_parallel(k: int, spec: ModelSpec, recipe: Recipe, data: Cifar10, device: torch.device, *,
                          steps: int, warmup: int, repeats: int) -> Measurement:
    """Aggregate training images/s of K seeds trained as one stacked step (as :func:`fit_stacked` does)."""
    from .stacked import StackedBatches, StackedNets, build_seed_model, stacked_loss

    precision = resolve_precision("auto", device)
    mean, std = channel_stats(data.train_x)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    loaders = StackedBatches([DeviceLoader(train_x, train_y, batch_size=recipe.batch_size, device=device, mean=mean,
                                           std=std, shuffle=True, augment=recipe.augment, seed=s) for s in range(k)])
    model = StackedNets([build_seed_model(spec, recipe, s) for s in range(k)]).to(device)
    graph = resolve_cuda_graph("auto", device, precision)
    optimizer = make_optimizer(recipe, model, device, capturable=graph)
    graphed = GraphedStep(model, optimizer, device, precision, loss_fn=stacked_loss) if graph else None
    stream = _forever(loaders)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()

    def step() -> int:
        x, y = next(stream)
        if graphed is not None:
            graphed(x, y)
        else:
            train_step(model, optimizer, x, y, device, precision, loss_fn=stacked_loss)
        return y.numel()  # K seeds' images

    rates = _timed_rates(step, device, warmup, steps, repeats)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _rss_mb()
    return Measurement(spec.key, recipe.name, f"seed-parallel x{k}", precision, statistics.median(rates), min(rates),
                       max(rates), None, peak)


def _timed_rates(step: Callable[[], int], device: torch.device, warmup: int, steps: int, repeats: int) -> list[float]:
    """Images per second of ``repeats`` timed runs of ``steps`` calls of ``step`` (which returns its images),
    after ``warmup`` untimed calls; the device is synchronised around each timed run."""
    def run(n: int) -> float:
        _sync(device)
        t0 = time.perf_counter()
        images = sum(step() for _ in range(n))
        _sync(device)
        return images / (time.perf_counter() - t0)

    run(warmup)
    return [run(steps) for _ in range(repeats)]


def _plain_optimizer(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr)
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay)


def _eval_rate(model: torch.nn.Module, data: Cifar10, device: torch.device, ours: bool, channels_last: bool,
               precision: str, mean: list[float], std: list[float], n: int) -> float | None:
    if n <= 0:
        return None
    x, y = data.test_x[:n], data.test_y[:n]
    if ours:
        loader = DeviceLoader(x, y, batch_size=500, device=device, mean=mean, std=std, channels_last=channels_last)
        evaluate(model, loader, precision)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        evaluate(model, loader, precision)
    else:
        dl = baseline_loader(x, y, 500, False, False, mean, std)
        model.eval()
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            for xb, yb in dl:
                model(xb.to(device)).argmax(1).eq(yb.to(device)).sum().item()
    _sync(device)
    return n / (time.perf_counter() - t0)


def run_benchmark(data: Cifar10, device: torch.device, models: list[str], recipes: list[str],
                  variants: list[str], *, steps: int, warmup: int, repeats: int, eval_images: int,
                  seed_parallel: Sequence[int] = (), log: Callable[[str], None] = print) -> list[Measurement]:
    results = []
    for model in models:
        for recipe_name in recipes:
            recipe = get_recipe(recipe_name)
            for variant in variants:
                log(f"  {model:<11} {recipe_name:<7} {variant:<22} measuring ...")
                m = measure_variant(variant, ModelSpec.from_key(model), recipe, data, device, steps=steps,
                                    warmup=warmup, repeats=repeats, eval_images=eval_images)
                log(f"  {model:<11} {recipe_name:<7} {variant:<22} {m.train_images_per_s:8.0f} img/s")
                results.append(m)
            for k in seed_parallel:
                m = measure_seed_parallel(k, ModelSpec.from_key(model), recipe, data, device, steps=steps,
                                          warmup=warmup, repeats=repeats)
                log(f"  {model:<11} {recipe_name:<7} {m.variant:<22} {m.train_images_per_s:8.0f} img/s (all seeds)")
                results.append(m)
    return results


def _time_estimate(device: torch.device, models: Sequence[str], recipes: Sequence[str], variants: int,
                   seed_parallel: Sequence[int], steps_each: int) -> str:
    """Roughly how long the whole benchmark takes, from a step-time probe of each model and recipe."""
    from .estimate import step_seconds

    per_variant = sum(step_seconds(m, r, str(device)) for m in models for r in recipes) * steps_each
    total = per_variant * (variants + sum(seed_parallel))  # a K-seed step costs about K single steps here
    count = len(models) * len(recipes) * (variants + len(seed_parallel))
    span = f"{total:.0f} s" if total < 90 else f"{total / 60:.0f} min"
    return (f"{count} measurement(s), roughly {span} on this device "
            "(a step-time probe; the baseline's data loading adds to it)")


def format_table(results: list[Measurement]) -> str:
    base = {(m.model, m.recipe): m for m in results if m.variant == "baseline"}
    lines = [f"{'model':<11} {'recipe':<7} {'variant':<22} {'prec':<5} {'train img/s':>12} {'(min..max)':>14} "
             f"{'x baseline':>10} {'eval img/s':>11} {'peak MB':>8}"]
    for m in results:
        b = base.get((m.model, m.recipe))
        ratio = f"{m.train_images_per_s / b.train_images_per_s:.2f}" if b else "-"
        ev = f"{m.eval_images_per_s:.0f}" if m.eval_images_per_s else "-"
        peak = f"{m.peak_memory_mb:.0f}" if m.peak_memory_mb else "-"
        lines.append(f"{m.model:<11} {m.recipe:<7} {m.variant:<22} {m.precision:<5} {m.train_images_per_s:12.0f} "
                     f"{f'({m.train_min:.0f}..{m.train_max:.0f})':>14} {ratio:>10} {ev:>11} {peak:>8}")
    return "\n".join(lines)


def run_from_args(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    try:
        seed_parallel = [int(v) for v in args.seed_parallel.split(",") if v]
    except ValueError:
        raise ValueError(f"--seed-parallel must be a comma-separated list of K >= 1, got {args.seed_parallel!r}") \
            from None
    if any(k < 1 for k in seed_parallel):
        raise ValueError(f"--seed-parallel must be a comma-separated list of K >= 1, got {args.seed_parallel!r}")
    variants = [] if args.variants == "" else args.variants.split(",") if args.variants else [
        v for v in VARIANTS if v not in CUDA_ONLY or device.type == "cuda"]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from: {', '.join(VARIANTS)}")
    models = args.models.split(",")
    for key in models:
        ModelSpec.from_key(key)
    recipes = args.recipes.split(",")
    for name in recipes:
        get_recipe(name)
    if min(args.steps, args.repeats) < 1 or args.warmup < 0:
        raise ValueError("--steps and --repeats must be >= 1, --warmup >= 0")
    if args.json:  # before minutes of measuring, not after
        if Path(args.json).is_dir():
            raise ValueError(f"--json {args.json} is a folder; name a file")
        check_writable(Path(args.json).parent, "--json")
    data = load_cifar10(args.source, progress=False)
    env = environment(device)
    print(f"benchmark on {env['device_name']}, torch {env['torch']}, {args.steps} steps x {args.repeats} repeats "
          f"after {args.warmup} warm-up steps", flush=True)
    print(_time_estimate(device, models, recipes, len(variants), seed_parallel,
                         args.warmup + args.steps * args.repeats), flush=True)
    results = run_benchmark(data, device, models, recipes, variants, steps=args.steps, warmup=args.warmup,
                            repeats=args.repeats, eval_images=args.eval_images, seed_parallel=seed_parallel,
                            log=lambda s: print(s, flush=True))
    print(format_table(results))
    if args.json:
        atomic_write_text(args.json, json.dumps({"environment": env, "settings": vars(args) | {
            "json": str(args.json), "source": args.source}, "results": [asdict(m) for m in results]}, indent=1,
            default=str))

