"""How long runs will take on the device at hand, said before the work starts.

From records when this device has made some (:func:`estimate_seconds`);
otherwise from a probe: a few training steps of the model, on random tensors of the recipe's
batch size, timed on the device itself (a few seconds at most). Either way the figure is an
estimate, printed as one, so a reader on a laptop knows whether to wait or to go for lunch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoints import read_checkpoint_history
from .grids import progress_checkpoint
from .models import ModelSpec, build_model, count_macs
from .provenance import canonical_device_name, device_name
from .records import RESULTS_DIR, RunConfig, iter_records, trained_on
from .train import autocast, make_optimizer, resolve_precision

EVAL_OVERHEAD = 1.15  # the test pass after each epoch, relative to the training steps (measured on CPU records)


def estimate_seconds(run: RunConfig, device_name: str, results: Path = RESULTS_DIR,
                     checkpoints: Path | None = None, precision: str | None = None,
                     elapsed: float = 0.0) -> tuple[float, bool] | None:
    """Seconds left for ``run`` on ``device_name``, and whether the figure is scaled from other records.

    Preferred: epochs left x mean epoch time of this run's checkpoint and of finished runs of the same
    model and recipe (in any grid) on that device. Else, scaled (the flag is True), in this order:

    1. this model and recipe on another device (the same CPU at another thread count first), times
       the median ratio of epoch times between the two devices over the models both have run. MACs
       alone mislead here: torchvision's ResNet-18 with its ImageNet stem has fewer MACs than
       ResNet-20 but trains several times slower on a CPU (11 M parameters to update each step);
    2. the median multiply-accumulate throughput (train images x MACs per image / epoch seconds, x K
       for a record of K seeds trained together) of any finished record on the same device, whatever
       the thread count, applied to this model's MACs.

    None when nothing has run on the device yet.

    ``precision`` (the run's resolved precision, ``fp32``/``bf16``), when given, admits only records
    made in it: on a CPU fp32 trains about 1.5x slower than bf16, so a bf16 record would promise an
    fp32 run too early. None then means no record in that precision (the caller probes instead).

    ``elapsed``: seconds a running run has already spent on the epoch in progress (the age of its
    lock, which is refreshed at the end of each epoch); up to one epoch's worth comes off the total.
    """
    device_name = canonical_device_name(device_name)  # as trained_on names the records' devices
    recipe = run.recipe_obj()
    train_images = recipe.train_size or 50_000
    epochs = recipe.num_epochs(-(-train_images // recipe.batch_size))
    ckpt = progress_checkpoint(run, checkpoints)  # its own, or its seed-parallel group's
    done = read_checkpoint_history(ckpt) if ckpt is not None else []
    per_epoch = [r["seconds"] for r in done]
    params = json.loads(json.dumps(dataclasses.asdict(recipe)))  # as stored: tuples become lists
    def same_precision(rec: dict) -> bool:
        return precision is None or rec["provenance"].get("precision") == precision

    records = [rec for rec in iter_records(Path(results)) if same_precision(rec)]  # read once, used below
    for rec in records:  # any grid: the same model and recipe cost the same
        if rec["config"]["model"] == run.model and rec["config"]["recipe_params"] == params \
                and trained_on(rec["provenance"])[1] == device_name:
            k = rec["provenance"].get("seed_parallel", 1)  # a stacked record's epoch trains K runs: 1/K each,
            per_epoch += [r["seconds"] / k for r in rec["history"]]  # as the throughput below counts it
    epochs_left = max(0, epochs - len(done))
    def left(epoch_seconds: float) -> float:
        return epochs_left * epoch_seconds - (min(elapsed, epoch_seconds) if epochs_left else 0.0)

    if per_epoch:
        return left(statistics.fmean(per_epoch)), False
    transferred = _from_other_device(run.model, params, device_name, records)
    if transferred is not None:
        return left(transferred), True
    # a stacked record's epoch trains seed_parallel (K) runs at once: K x the images in its seconds
    rates = [rec["provenance"]["train_size"] * rec["provenance"].get("seed_parallel", 1)
             * _macs(rec["config"]["model"]) / statistics.fmean(r["seconds"] for r in rec["history"])
             for rec in records if _same_device(trained_on(rec["provenance"])[1], device_name)]
    if not rates:
        return None
    return left(train_images * _macs(run.model) / statistics.median(rates)), True


def _from_other_device(model: str, params: dict, device_name: str, records: list[dict]) -> float | None:
    """Epoch seconds of ``model`` (this recipe) on ``device_name``, from its records on another device.

    Scaled by that device's speed relative to this one: the median, over the (model, recipe) pairs
    both devices have records of, of the ratio of their mean epoch times. None when no device that
    ran this model shares a model with this one.
    """
    epochs: dict[tuple[str, str], dict[str, list[float]]] = {}  # (model, recipe) -> device -> seconds
    for rec in records:
        if rec["provenance"].get("seed_parallel", 1) == 1:  # a stacked record times K runs
            key = (rec["config"]["model"], json.dumps(rec["config"]["recipe_params"], sort_keys=True))
            device = trained_on(rec["provenance"])[1]
            epochs.setdefault(key, {}).setdefault(device, []).extend(r["seconds"] for r in rec["history"])
    mean = {key: {d: statistics.fmean(s) for d, s in per.items()} for key, per in epochs.items()}
    ours = mean.get((model, json.dumps(params, sort_keys=True)), {})
    best: tuple[tuple[bool, int], float] | None = None
    for other, seconds in ours.items():
        ratios = [per[device_name] / per[other] for per in mean.values() if device_name in per and other in per]
        if not ratios:
            continue
        rank = (_same_device(other, device_name), len(ratios))  # the same CPU first, then the most shared models
        if best is None or rank > best[0]:
            best = (rank, seconds * statistics.median(ratios))
    return None if best is None else best[1]


def _same_device(a: str, b: str) -> bool:
    """Device names equal but for the CPU thread count that ``provenance.device_name`` appends."""
    strip = re.compile(r" \(\d+ threads?\)$")
    return strip.sub("", a) == strip.sub("", b)


@functools.lru_cache(maxsize=None)
def _macs(model_key: str) -> int:
    return count_macs(build_model(ModelSpec.from_key(model_key)))


@functools.lru_cache(maxsize=None)
def step_seconds(model_key: str, recipe: str, device: str, precision: str = "auto", steps: int = 3) -> float:
    """Seconds per training step of ``model_key`` at ``recipe``'s batch size on ``device`` (after one warm-up)."""
    from .train import get_recipe

    dev = torch.device(device)
    prec = resolve_precision(precision, dev)  # type: ignore[arg-type]
    rec = get_recipe(recipe)
    model = build_model(ModelSpec.from_key(model_key)).to(dev, memory_format=torch.channels_last).train()
    optimizer = make_optimizer(rec, model, dev)
    x = torch.randn(rec.batch_size, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (rec.batch_size,), device=dev)

    def step() -> None:
        with autocast(dev, prec):
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up: the first steps pay for kernel selection and allocation
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return (time.perf_counter() - t0) / steps


def run_precision(run: RunConfig, device: torch.device) -> str:
    """The precision ``run`` will train in on ``device`` (its own, else the device's default)."""
    return resolve_precision(run.precision or "auto", device)  # type: ignore[arg-type]


def probe_seconds_left(run: RunConfig, device: torch.device, checkpoints: Path | None = None) -> float:
    """Seconds left for ``run`` from a step-time probe: steps still to do x seconds per step x eval overhead."""
    recipe = run.recipe_obj()
    train_images = recipe.train_size or 50_000
    steps_per_epoch = -(-train_images // recipe.batch_size)
    epochs = recipe.num_epochs(steps_per_epoch)
    ckpt = progress_checkpoint(run, checkpoints)
    done = len(read_checkpoint_history(ckpt)) if ckpt is not None else 0
    seconds = step_seconds(run.model, run.recipe, str(device), run.precision or "auto")
    return max(0, epochs - done) * steps_per_epoch * seconds * EVAL_OVERHEAD


def estimate_text(runs: Sequence[RunConfig], device: torch.device, results: Path = RESULTS_DIR,
                  checkpoints: Path | None = None) -> str:
    """``about 2.3 h on <device> (from records of this device)``, or from a probe where no record helps."""
    name = device_name(device)
    total, probed = 0.0, 0
    for run in runs:
        est = estimate_seconds(run, name, results, checkpoints, run_precision(run, device))
        if est is None:
            total += probe_seconds_left(run, device, checkpoints)
            probed += 1
        else:
            total += est[0]
    how = ("from this device's records" if probed == 0 else
           "from a step-time probe on this device" if probed == len(runs) else
           f"from this device's records, and a step-time probe for {probed} run(s)")
    span = f"{total / 3600:.1f} h" if total >= 5400 else f"{total / 60:.0f} min"
    return f"estimated time: about {span} on {name} ({how}; an estimate, not a promise)"
