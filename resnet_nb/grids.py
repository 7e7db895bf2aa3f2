"""Named grids of runs and the resumable, shardable runner that trains them into records.

One runner: :func:`train_runs` trains a run alone or runs that differ only by seed as one seed-parallel
group, and writes their records; :func:`run_pending` takes a grid's pending runs in priority order and hands
them to it one run or one group at a time (the command line only prints what it says). The device arrives
decided (a ``torch.device``). While a run trains, its record path and its checkpoint are locked (``files.claim``): a second
process refuses them or, in a grid, takes the next run. How long the rest will take is
:mod:`resnet_nb.estimate`; what a finished run leaves behind is :mod:`resnet_nb.records`.

Training half: the grids' *definitions* (which runs, in what order) are the vocabulary's (:mod:`resnet_nb.vocab`,
re-exported here); this module runs them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .checkpoints import save_weights
from .data import Cifar10, cache_dir
from .files import LockedError, atomic_write_text, check_writable, claimed, describe, glob_escape, lock_holder
from .provenance import environment
from .records import (RESULTS_DIR, RecordError, RunConfig, make_record, read_record, record_path, trained_on,
                      validate_record)
from .train import CudaGraph, Precision, as_device, fit
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


def run_one(run: RunConfig, data: Cifar10, *, device: torch.device | str, results: Path = RESULTS_DIR,
            checkpoints: Path | None = None, precision: Precision = "auto", compile: bool = False,
            cuda_graph: CudaGraph = "auto", channels_last: bool = True, progress: bool = True,
            out: Path | None = None) -> dict[str, Any]:
    """Train one run (resuming its checkpoint) and write its record (to ``out`` or the grid's folder);
    a run that has its record already returns it, training nothing. See :func:`train_runs`."""
    out = Path(out) if out is not None else record_path(run, results)
    if out.exists():
        return read_record(out, run)  # raises on a foreign/corrupt record instead of overwriting it
    try:
        records = train_runs([run], data, device=device, results=results, checkpoints=checkpoints,
                             precision=precision, compile=compile, cuda_graph=cuda_graph,
                             channels_last=channels_last, progress=progress, out=out)
    except LockedError:
        if out.exists():  # finished by another process between the check above and the claim
            return read_record(out, run)
        raise
    # a seed-parallel group checkpoint that held the run wrote its seeds' records too
    return next(r for r in records if r["run_id"] == run.run_id)


def run_group(runs: Sequence[RunConfig], data: Cifar10, *, device: torch.device | str, results: Path = RESULTS_DIR,
              checkpoints: Path | None = None, precision: Precision = "auto", cuda_graph: CudaGraph = "auto",
              progress: bool = True) -> list[dict[str, Any]]:
    """Train runs that differ only by seed as one seed-parallel group (:func:`train_runs`); a run that has a
    record already is an error (leave it out of the group)."""
    for run in runs:
        if record_path(run, results).exists():
            read_record(record_path(run, results), run)
            raise ValueError(f"{run.run_id} already has a record; leave it out of the group")
    return train_runs(runs, data, device=device, results=results, checkpoints=checkpoints, precision=precision,
                      cuda_graph=cuda_graph, progress=progress, seed_parallel=True)


def train_runs(runs: Sequence[RunConfig], data: Cifar10, *, device: torch.device | str,
               results: Path = RESULTS_DIR, checkpoints: Path | None = None, precision: Precision = "auto",
               compile: bool = False, cuda_graph: CudaGraph = "auto", channels_last: bool = True,
               progress: bool = True, out: Path | None = None, seed_parallel: bool = False) -> list[dict[str, Any]]:
    """The runner: train ``runs`` and write one record per run; the records written.

    One run trains alone (:func:`resnet_nb.train.fit`, resuming its checkpoint) unless ``seed_parallel`` or a
    seed-parallel group checkpoint holds it; runs that differ only by seed train as one group
    (:func:`resnet_nb.stacked.fit_stacked`). A group checkpoint's runs resume that group with its seeds, and
    records are written for every seed of it that has none: after a kill between the K record writes the
    finished checkpoint writes the missing records, training nothing. Group records have the single-run
    schema; ``provenance.seed_parallel`` says how many seeds trained together and ``provenance.seed_group``
    which, and ``wall_seconds`` is the group's.

    Every record path and the checkpoint are claimed first (``files.LockedError`` when another live
    process holds one); a run that diverges raises ``train.DivergedError`` and writes no record. A run's
    final weights (:func:`weights_path`) are written before its record, so a kill in between resumes the
    last epoch and writes both; the checkpoint is removed only once every record exists.
    """
    from .stacked import fit_stacked  # the training engine: only when something trains

    runs = list(runs)
    if not runs or len({r.config_id for r in runs}) != 1 or len({r.grid for r in runs}) != 1:
        raise ValueError(f"runs trained together must be one config of one grid, got {[r.run_id for r in runs]}")
    dev = as_device(device)
    stacked = seed_parallel or len(runs) > 1 or bool(group_checkpoints(runs[0], checkpoints))
    group = _resumed_group(runs, checkpoints) if stacked else runs
    if out is not None and len(group) != 1:
        raise ValueError(f"out names the record of one run; {runs[0].run_id} resumes a seed-parallel group")
    ckpt = group_checkpoint_path(group, checkpoints) if stacked else checkpoint_path(runs[0], checkpoints)
    paths = {r: out if out is not None else record_path(r, results) for r in group}
    check_writable(paths[runs[0]].parent, "results")
    check_writable(ckpt.parent, "checkpoint")
    with contextlib.ExitStack() as stack:
        locks = [stack.enter_context(claimed(paths[r])) for r in group] + [stack.enter_context(claimed(ckpt))]
        if any(paths[r].exists() for r in runs):
            raise LockedError(f"a run of {[r.run_id for r in runs]} was finished by another process meanwhile")
        missing = [r for r in group if not paths[r].exists()]
        for run in group:
            if run not in missing:  # written before a kill: it must be this very run's record
                read_record(paths[run], run)
        first = group[0]
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")

        def heartbeat(_rows: object) -> None:  # after every epoch: the locks stay fresh
            for lock in locks:
                lock.refresh()

        if stacked:
            fits = fit_stacked(first.spec, first.recipe_obj(), data, [r.seed for r in group], device=dev,
                               precision=first.precision or precision, cuda_graph=cuda_graph, checkpoint=ckpt,
                               progress=progress, on_epoch=heartbeat)
            trained_as = {"seed_parallel": len(group), "seed_group": [r.seed for r in group]}
        else:
            fits = [fit(first.spec, first.recipe_obj(), data, seed=first.seed, device=dev,
                        precision=first.precision or precision, compile=compile, cuda_graph=cuda_graph,
                        channels_last=channels_last, checkpoint=ckpt, progress=progress, on_epoch=heartbeat)]
            trained_as = {}
        env = environment(dev) | trained_as  # in the provenance before the record is sealed by its hash
        records = []
        for run, result in zip(group, fits, strict=True):
            if run not in missing:
                continue
            # wall time of the whole run = sum of its epochs' seconds (also those of an earlier, resumed session)
            wall = sum(r["seconds"] for r in result.history)
            record = make_record(run, result.history, result.setup, data, env, started, wall)
            validate_record(record, run)
            weights = weights_path(run, results)
            if weights is not None:
                weights.parent.mkdir(parents=True, exist_ok=True)
                save_weights(weights, result.model, run.run_id)
            atomic_write_text(paths[run], json.dumps(record, indent=1, allow_nan=False))
            records.append(record)
        ckpt.unlink(missing_ok=True)
    return records


SEED_PARALLEL_MAX = 10  # `auto` on a GPU groups at most this many seeds (the bench's largest K)


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
    that checkpoint's group, whatever ``k`` is now: :func:`train_runs` resumes it with its own seeds.

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


def run_pending(todo: Sequence[RunConfig], data: Cifar10, *, device: torch.device, seeds_per_group: int,
                limit: int | None = None, results: Path = RESULTS_DIR, checkpoints: Path | None = None,
                precision: Precision = "auto", compile: bool = False, cuda_graph: CudaGraph = "auto",
                progress: bool = True, say: Callable[[str], object] = print) -> list[str]:
    """Train ``todo`` (pending runs, in priority order) up to ``limit`` runs, one at a time or in seed-parallel
    groups of up to ``seeds_per_group``; the ids of the runs refused.

    A run another process holds is skipped for the next one; a run that is refused (diverged, a checkpoint
    of another run, an invalid record) is reported in one line through ``say`` and the rest goes on.
    """
    from .checkpoints import CheckpointMismatch
    from .train import DivergedError

    limit = len(todo) if limit is None else limit
    done, refused = 0, []
    for group in plan_groups(todo, seeds_per_group, checkpoints):  # a group checkpoint's runs resume as that group
        if done >= limit:
            break
        free = []
        for run in group[: limit - done]:  # a group never trains more runs than the limit allows
            holder = lock_holder(record_path(run, results))
            if holder is not None:
                say(f"  skip {run.run_id}: being run by {describe(holder)}")
            elif record_path(run, results).exists():
                say(f"  skip {run.run_id}: finished by another process")
            else:
                free.append(run)
        if not free:
            continue
        ids = ", ".join(r.run_id for r in free)
        say(f"[{done + 1}{f'-{done + len(free)}' if len(free) > 1 else ''}/{limit}] {ids}")
        try:
            records = train_runs(free, data, device=device, results=results, checkpoints=checkpoints,
                                 precision=precision, compile=compile, cuda_graph=cuda_graph, progress=progress)
        except LockedError as exc:  # claimed by another process since the check above
            say(f"  skip {ids}: {exc}")
            continue
        except (DivergedError, CheckpointMismatch, RecordError) as exc:
            say(f"  refused {ids}: {exc}")
            refused += [r.run_id for r in free]
            done += len(free)
            continue
        done += len(free)
        for record in records:
            say(f"  done: {record['run_id']} test acc {record['history'][-1]['test_acc']:.4f} in "
                f"{record['provenance']['wall_seconds']:.0f} s")
    return refused


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


