"""Named grids of runs and the resumable, shardable runner that trains them into records.

While a run trains, its record path and its checkpoint are locked (``files.claim``): a second
process refuses them or, in a grid, takes the next run. How long the rest will take is
:mod:`resnet_nb.estimate`; what a finished run leaves behind is :mod:`resnet_nb.records`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .checkpoints import save_weights
from .data import Cifar10, cache_dir
from .files import atomic_write_text, check_writable, claimed, glob_escape
from .models import ModelSpec
from .provenance import canonical_device_name, environment
from .records import (RESULTS_DIR, RecordError, RunConfig, make_record, read_record, record_path, trained_on,
                      validate_record)
from .train import CudaGraph, Precision, fit, resolve_device

# The report grid: depth priority 20 and 56 first (the two ends of the comparison).
REPORT_DEPTHS = (20, 56, 32, 44)


def grid_runs(name: str, seeds: Iterable[int] | None = None) -> list[RunConfig]:
    """Every run of a named grid, in priority order: seed-major, then depth priority, then model."""
    if name == "report":
        models = [spec.key for d in REPORT_DEPTHS
                  for spec in (ModelSpec("resnet", d, "A"), ModelSpec("plain", d), ModelSpec("resnet", d, "B"))]
        models += [ModelSpec("torchvision", 18, stem="imagenet").key, ModelSpec("torchvision", 18, stem="cifar").key]
        recipe, default_seeds = "report", range(5)
    elif name == "paper":
        return paper_runs(seeds)
    elif name == "paper8k":
        return paper8k_runs(seeds)
    elif name == "precision":
        # Does mixed precision cost accuracy? ResNet-20, report recipe, 1 epoch, fp32 vs bf16.
        seeds = list(range(3) if seeds is None else seeds)
        return [RunConfig(name, "resnet20-A", "report", s, epochs=1, precision=p)
                for s in seeds for p in ("fp32", "bf16")]
    elif name == "precision10":
        # Can CPU-bf16 and GPU-fp32 records share one mean? The report recipe's full 10 epochs, at the
        # depth where the records disagree most (plain-56) and its ResNet, fp32 vs bf16, 3 seeds each.
        seeds = list(range(3) if seeds is None else seeds)
        return [RunConfig(name, m, "report", s, precision=p)
                for s in seeds for m in ("plain56", "resnet56-A") for p in ("fp32", "bf16")]
    else:
        raise ValueError(f"unknown grid {name!r}; choose one of: {', '.join(GRIDS)}")
    seeds = list(default_seeds if seeds is None else seeds)
    return [RunConfig(name, m, recipe, s) for s in seeds for m in models]


GRIDS = ("report", "paper", "paper8k", "precision", "precision10")

# The paper grid (Table 6, Figure 6), in the order a GPU lease takes it: the pairs of the
# degradation figure at both ends of the depth range first, then ResNet-110, then the rest.
PAPER_PRIORITY = (ModelSpec("resnet", 20, "A"), ModelSpec("plain", 20), ModelSpec("resnet", 56, "A"),
                  ModelSpec("plain", 56), ModelSpec("resnet", 110, "A"), ModelSpec("resnet", 32, "A"),
                  ModelSpec("plain", 32), ModelSpec("resnet", 44, "A"), ModelSpec("plain", 44))
PAPER_SEEDS = 3
PAPER_SEEDS_110 = 5  # the paper reports ResNet-110's best and mean ± std of 5 runs


def paper_runs(seeds: Iterable[int] | None = None) -> list[RunConfig]:
    """The paper grid, config by config in :data:`PAPER_PRIORITY` (so a config's seeds can train as one
    seed-parallel group); 3 seeds each, 5 for ResNet-110, unless ``seeds`` is given."""
    chosen = None if seeds is None else list(seeds)
    runs = []
    for spec in PAPER_PRIORITY:
        default = range(PAPER_SEEDS_110 if spec.depth == 110 else PAPER_SEEDS)
        runs += [RunConfig("paper", spec.key, "paper", s) for s in (default if chosen is None else chosen)]
    return runs


# The paper's recipe at 1/8 of its length, for two CPU cores: 8,000 iterations (~20.5 epochs) instead of
# 64,000, the learning rate divided by 10 at the same fractions (50 %, 75 %: 4,000 and 6,000). Everything
# else is the paper's. Plain and ResNet (A) at depths 20-56, 3 seeds; the order makes the chapter
# informative early: seed 0's depth-20 and depth-56 pairs, then its other depths, then the other seeds.
PAPER8K_ITERATIONS = 8_000
PAPER8K_DEPTHS = (20, 56, 32, 44)


def paper8k_runs(seeds: Iterable[int] | None = None) -> list[RunConfig]:
    """The shortened paper grid, seed-major in :data:`PAPER8K_DEPTHS` order, ResNet before plain."""
    chosen = list(range(PAPER_SEEDS) if seeds is None else seeds)
    return [RunConfig("paper8k", spec.key, "paper", s, iterations=PAPER8K_ITERATIONS)
            for s in chosen for d in PAPER8K_DEPTHS for spec in (ModelSpec("resnet", d, "A"), ModelSpec("plain", d))]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/k"`` with 1 <= i <= k."""
    try:
        i, k = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/k (e.g. 2/4), got {text!r}") from None
    if not 1 <= i <= k:
        raise ValueError(f"shard i/k needs 1 <= i <= k, got {text!r}")
    return i, k


def shard(runs: list[RunConfig], i: int, k: int) -> list[RunConfig]:
    """Round-robin over the priority order: shards are disjoint, cover the grid, and each gets a mix."""
    return [r for n, r in enumerate(runs) if n % k == i - 1]


# Grids whose runs of these seeds keep their final weights next to their records (fp16, sealed, loaded
# without running code): the paper's Figure 7 (layer responses) is computed from the nets themselves.
KEEP_WEIGHTS: dict[str, tuple[int, ...]] = {"paper": (0,), "paper8k": (0,)}


def weights_path(run: RunConfig, results: Path = RESULTS_DIR) -> Path | None:
    """Where ``run`` keeps its final weights (``results/<grid>/weights/<run_id>.pt``), or None if it does not."""
    if run.seed not in KEEP_WEIGHTS.get(run.grid, ()):
        return None
    return Path(results) / run.grid / "weights" / f"{run.run_id}.pt"


def checkpoint_path(run: RunConfig, checkpoints: Path | None = None) -> Path:
    root = Path(checkpoints) if checkpoints is not None else cache_dir() / "checkpoints"
    return root / run.grid / f"{run.run_id}.pt"


def group_checkpoint_path(runs: Sequence[RunConfig], checkpoints: Path | None = None) -> Path:
    """The checkpoint of runs trained as one seed-parallel group: ``<config_id>_seeds0-1-2.pt``."""
    first = checkpoint_path(runs[0], checkpoints)
    return first.with_name(f"{runs[0].config_id}_seeds{'-'.join(str(r.seed) for r in runs)}.pt")


def group_checkpoints(run: RunConfig, checkpoints: Path | None = None) -> list[tuple[Path, list[int]]]:
    """The seed-parallel group checkpoints that hold ``run`` (path, the group's seeds), oldest first.

    A group keeps its seeds for life: the runner resumes it with them, whatever ``--seed-parallel``
    says now, so a kill, even between the group's record writes, loses nothing and trains nothing twice.
    """
    folder = checkpoint_path(run, checkpoints).parent
    name = re.compile(rf"{re.escape(run.config_id)}_seeds(\d+(?:-\d+)*)\.pt")
    found = []
    for path in folder.glob(f"{glob_escape(run.config_id)}_seeds*.pt"):
        match = name.fullmatch(path.name)
        seeds = [int(s) for s in match.group(1).split("-")] if match else []
        if run.seed in seeds:
            with contextlib.suppress(OSError):
                found.append((path.stat().st_mtime, path, seeds))
    return [(path, seeds) for _, path, seeds in sorted(found)]


def progress_checkpoint(run: RunConfig, checkpoints: Path | None = None) -> Path | None:
    """The checkpoint holding ``run``'s progress: its own, else its seed-parallel group's; None if none."""
    own = checkpoint_path(run, checkpoints)
    if own.exists():
        return own
    groups = group_checkpoints(run, checkpoints)
    return groups[0][0] if groups else None


# A grid whose runs fix the precision may find them already trained by another grid that leaves it to
# the device: where the device's default is bf16 (these CPUs), the report grid's runs are precision10's
# bf16 runs; where it is fp32 (a GPU), its fp32 runs. Same model, recipe, seed, epochs and data: the same
# run, provided it ran on the same device (thread count included), since precision10 pairs its fp32 and
# bf16 runs of a seed on one device.
STAND_INS = {"precision10": "report"}


def stand_in_run(run: RunConfig) -> RunConfig | None:
    """The run of another grid (:data:`STAND_INS`) that is ``run`` when made at ``run``'s precision, or None."""
    other = STAND_INS.get(run.grid)
    if other is None or run.precision is None:
        return None
    return dataclasses.replace(run, grid=other, precision=None)


def stand_in(run: RunConfig, results: Path = RESULTS_DIR, device_name: str | None = None) -> Path | None:
    """The record of another grid (:data:`STAND_INS`) that is ``run`` trained on ``device_name``, if any.

    Only the precision is left to the device in the other grid, so its record of the same run that
    trained at the precision ``run`` fixes, on the device ``run`` would train on, is ``run``: training
    it again would repeat it. Without a ``device_name`` nothing stands in. An invalid record raises
    RecordError.
    """
    twin = stand_in_run(run)
    if twin is None or device_name is None:
        return None
    path = record_path(twin, results)
    if not path.exists():
        return None
    prov = read_record(path, twin)["provenance"]
    same = (prov["precision"], trained_on(prov)[1]) == (run.precision, canonical_device_name(device_name))
    return path if same else None


def run_state(run: RunConfig, results: Path = RESULTS_DIR, checkpoints: Path | None = None,
              device_name: str | None = None) -> str:
    """``done`` (a valid record), ``covered`` (a :func:`stand_in` record of another grid, made on
    ``device_name``), ``partial`` (a checkpoint: its own or its seed-parallel group's) or ``todo``; an
    invalid record raises RecordError."""
    path = record_path(run, results)
    if path.exists():
        read_record(path, run)
        return "done"
    if stand_in(run, results, device_name) is not None:
        return "covered"
    return "partial" if progress_checkpoint(run, checkpoints) is not None else "todo"


def run_one(run: RunConfig, data: Cifar10, *, results: Path = RESULTS_DIR, checkpoints: Path | None = None,
            device: str = "auto", precision: Precision = "auto", compile: bool = False,
            cuda_graph: CudaGraph = "auto", channels_last: bool = True, progress: bool = True,
            out: Path | None = None) -> dict[str, Any]:
    """Train one run (resuming its checkpoint) and write its record (to ``out`` or the grid's folder).

    The record path and the checkpoint are claimed first (``files.LockedError`` when another live
    process holds either); a run that diverges raises ``train.DivergedError`` and writes no record.
    """
    out = Path(out) if out is not None else record_path(run, results)
    if out.exists():
        return read_record(out, run)  # raises on a foreign/corrupt record instead of overwriting it
    ckpt = checkpoint_path(run, checkpoints)
    dev = resolve_device(device)
    check_writable(out.parent, "results")
    check_writable(ckpt.parent, "checkpoint")
    with claimed(out) as lock, claimed(ckpt) as ckpt_lock:
        if out.exists():  # finished by another process between the check above and the claim
            return read_record(out, run)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        result = fit(run.spec, run.recipe_obj(), data, seed=run.seed, device=dev,
                     precision=run.precision or precision, compile=compile, cuda_graph=cuda_graph,
                     channels_last=channels_last, checkpoint=ckpt, progress=progress,
                     on_epoch=lambda _row: (lock.refresh(), ckpt_lock.refresh()))  # heartbeat: the locks stay fresh
        # wall time of the whole run = sum of its epochs' seconds (also those of an earlier, resumed session)
        wall = sum(r["seconds"] for r in result.history)
        record = make_record(run, result.history, result.setup, data, environment(dev), started, wall)
        validate_record(record, run)
        weights = weights_path(run, results)
        if weights is not None:  # before the record: a kill in between resumes the last epoch and writes both
            weights.parent.mkdir(parents=True, exist_ok=True)
            save_weights(weights, result.model, run.run_id)
        atomic_write_text(out, json.dumps(record, indent=1, allow_nan=False))
        ckpt.unlink(missing_ok=True)
    return record


def run_states(runs: list[RunConfig], results: Path = RESULTS_DIR, checkpoints: Path | None = None,
               device_name: str | None = None) -> dict[RunConfig, str]:
    """:func:`run_state` of each run; a run whose record is invalid is ``invalid``, with a warning naming it."""
    states = {}
    for r in runs:
        try:
            states[r] = run_state(r, results, checkpoints, device_name)
        except RecordError as exc:
            warnings.warn(f"{exc}; skipped: delete or restore that file to run {r.run_id} again", stacklevel=2)
            states[r] = "invalid"
    return states


def pending(runs: list[RunConfig], results: Path = RESULTS_DIR, checkpoints: Path | None = None,
            device_name: str | None = None, states: dict[RunConfig, str] | None = None) -> list[RunConfig]:
    """Runs without a record; partial runs first (finish what was started), then priority order.

    A run whose record is invalid is not pending (it would be refused, never overwritten): it is
    reported by path and left out. Neither is a run another grid's record made on ``device_name``
    stands in for (:func:`stand_in`). ``states`` (from :func:`run_states`) saves reading the
    records again, and warning twice about an invalid one, where the caller has them already.
    """
    if states is None:
        states = run_states(runs, results, checkpoints, device_name)
    todo = [r for r in runs if states[r] not in ("done", "covered", "invalid")]
    return sorted(todo, key=lambda r: states[r] != "partial")


