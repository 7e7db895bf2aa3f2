"""Carry unfinished runs' checkpoints from one machine to the next through the repository.

A full-length paper run takes 4-5 hours on one CPU thread: longer than a working session, and the next
session may start on a fresh machine whose checkpoint cache is empty. :func:`park` copies each unfinished
run's latest checkpoint, byte for byte as the runner sealed it, into ``carry/<grid>/`` (to be committed);
:func:`unpark` copies it back into the cache, where ``grid run`` resumes it (``scripts/cpu_lanes.sh`` unparks
before its lanes start). A run then loses at most what it trained after its last park.

Carried files are not results: they are a run's state mid-way, and :func:`park` deletes a run's carried file
once its record exists. They are read like every checkpoint (seal first, then ``weights_only``), so a damaged
or crafted file is refused before anything is copied. A carried checkpoint never replaces one in the cache at
the same or a later epoch, nor one a running process holds; whether it belongs to the run (model, recipe,
seed, data) is checked when the run resumes, as for any checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .checkpoints import CHECKPOINT_FORMAT, read_checkpoint, safe_load
from .files import CorruptFileError, LockedError, atomic_write_bytes, claimed, glob_escape, unseal
from .grids import checkpoint_path, progress_checkpoint
from .records import RESULTS_DIR, RunConfig, read_record, record_path

CARRY_DIR = Path(__file__).resolve().parent.parent / "carry"


@dataclass(frozen=True)
class Moved:
    """What :func:`park` or :func:`unpark` did with one checkpoint file (``name`` in the grid's folder)."""

    name: str
    action: str  # parked, unchanged, kept, removed, nothing (park); unparked, kept, running, done (unpark)
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.action}{f' ({self.detail})' if self.detail else ''}"


def _seeds_of(name: str, run: RunConfig) -> list[int]:
    """The seeds a checkpoint file of ``run``'s config holds: its own, or a seed-parallel group's."""
    if name == f"{run.run_id}.pt":
        return [run.seed]
    match = re.fullmatch(rf"{re.escape(run.config_id)}_seeds(\d+(?:-\d+)*)\.pt", name)
    return [int(s) for s in match.group(1).split("-")] if match else []


def carried(run: RunConfig, carry: Path | None = None) -> list[Path]:
    """The files in ``carry/<grid>/`` (default: the repository's) that hold ``run``'s progress (its own, or its
    seed-parallel group's)."""
    folder = Path(carry if carry is not None else CARRY_DIR) / run.grid
    paths = [folder / f"{run.run_id}.pt", *folder.glob(f"{glob_escape(run.config_id)}_seeds*.pt")]
    return [p for p in paths if p.is_file() and run.seed in _seeds_of(p.name, run)]


def _finished(run: RunConfig, results: Path) -> bool:
    """Whether ``run`` has its record; an invalid record raises RecordError (nothing is deleted for it)."""
    path = record_path(run, results)
    if not path.exists():
        return False
    read_record(path, run)
    return True


def _verified(data: bytes, where: str) -> dict[str, Any]:
    """The training state in the sealed bytes ``data``; CorruptFileError naming ``where`` otherwise."""
    state = safe_load(unseal(data, where), where)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or not isinstance(
            state.get("epoch"), int):
        raise CorruptFileError(f"{where} is not a resnet_nb training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def park(runs: list[RunConfig], *, results: Path = RESULTS_DIR, checkpoints: Path | None = None,
         carry: Path | None = None) -> list[Moved]:
    """Copy each unfinished run's checkpoint into ``carry/<grid>/``; delete the carried files of finished runs.

    The bytes are read once and verified before they are written (atomically), so a checkpoint the lane
    replaces meanwhile is carried whole, old or new, never torn.
    """
    moved: dict[str, Moved] = {}
    for run in runs:
        folder = Path(carry if carry is not None else CARRY_DIR) / run.grid
        if _finished(run, results):
            for path in carried(run, carry):
                if all(_finished(replace(run, seed=s), results) for s in _seeds_of(path.name, run)):
                    path.unlink()
                    moved[path.name] = Moved(path.name, "removed", "the run has its record")
            continue
        source = progress_checkpoint(run, checkpoints)
        if source is None:
            moved.setdefault(f"{run.run_id}.pt", Moved(f"{run.run_id}.pt", "nothing", "no checkpoint in the cache"))
            continue
        if source.name in moved:
            continue
        data = source.read_bytes()
        state = _verified(data, f"checkpoint {source}")
        target = folder / source.name
        if target.is_file() and target.read_bytes() == data:
            moved[source.name] = Moved(source.name, "unchanged", f"epoch {state['epoch']}")
            continue
        ahead = _epoch_of(target)  # a carried state further on (the run restarted in the cache): never lost
        if ahead is not None and ahead > state["epoch"]:
            moved[source.name] = Moved(source.name, "kept", f"the carried file is at epoch {ahead}, the cache at "
                                       f"{state['epoch']}; `grid unpark` resumes from it")
            continue
        atomic_write_bytes(target, data)
        moved[source.name] = Moved(source.name, "parked", f"epoch {state['epoch']}, {len(data) / 1e6:.1f} MB")
    return list(moved.values())


def unpark(runs: list[RunConfig], *, results: Path = RESULTS_DIR, checkpoints: Path | None = None,
           carry: Path | None = None) -> list[Moved]:
    """Copy the carried checkpoints of unfinished runs into the cache, unless it holds the same or a later epoch.

    Every carried file is verified before any is copied: one damaged file raises CorruptFileError naming it,
    with the cache untouched. A checkpoint a running process holds is left alone (``running``).
    """
    todo: dict[str, tuple[bytes, Path, int]] = {}
    moved: dict[str, Moved] = {}
    for run in runs:
        finished = _finished(run, results)
        for path in carried(run, carry):
            if finished:
                moved.setdefault(path.name, Moved(path.name, "done", "the run has its record; `grid park` "
                                                                    "deletes this file"))
            elif path.name not in todo:
                where = (f"carried checkpoint {path} (delete it and commit the deletion: the run then resumes from "
                         "the cache, or restarts)")
                data = path.read_bytes()
                todo[path.name] = (data, checkpoint_path(run, checkpoints).parent / path.name,
                                   _verified(data, where)["epoch"])
    for name, (data, target, epoch) in todo.items():
        moved.pop(name, None)
        try:
            with claimed(target):
                ours = _epoch_of(target)
                if ours is not None and ours >= epoch:
                    moved[name] = Moved(name, "kept", f"the cache is at epoch {ours}, the carried file at {epoch}")
                    continue
                atomic_write_bytes(target, data)
        except LockedError:
            moved[name] = Moved(name, "running", "another process is training it; left alone")
            continue
        moved[name] = Moved(name, "unparked", f"epoch {epoch}" + ("" if ours is None else f", the cache was at {ours}"))
    return list(moved.values())


def _epoch_of(path: Path) -> int | None:
    """The epoch of the checkpoint at ``path``; None if there is none or it is damaged (then replaced)."""
    if not path.exists():
        return None
    try:
        epoch = read_checkpoint(path).get("epoch")
    except CorruptFileError:
        return None
    return epoch if isinstance(epoch, int) else None
