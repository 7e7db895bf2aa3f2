"""Named grids of runs and the resumable, shardable runner that trains them into records.

While a run trains, its record path and its checkpoint are locked (``files.claim``): a second
process refuses them or, in a grid, takes the next run. How long the rest will take is
:mod:`resnet_nb.estimate`; what a finished run leaves behind is :mod:`resnet_nb.records`.

Training half: the grids' *definitions* (which runs, in what order) are the vocabulary's (:mod:`resnet_nb.vocab`,
re-exported here); this module runs them.
"""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .checkpoints import save_weights
from .data import Cifar10, cache_dir
from .files import atomic_write_text, check_writable, claimed, glob_escape
from .provenance import environment
from .records import (RESULTS_DIR, RecordError, RunConfig, make_record, read_record, record_path, trained_on,
                      validate_record)
from .train import CudaGraph, Precision, fit, resolve_device
from .vocab import (GRIDS, KEEP_WEIGHTS, PAPER8K_DEPTHS, PAPER8K_ITERATIONS, PAPER_PRIORITY,  # noqa: F401 - re-exported
                    PAPER_SEEDS, PAPER_SEEDS_110, REPORT_DEPTHS, STAND_INS, canonical_device_name, grid_runs,
                    paper8k_runs, paper_runs, parse_shard, shard, stand_in_run)



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


