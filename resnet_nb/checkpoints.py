"""Training checkpoints: sealed (length + sha256, verified before unpickling), written atomically,
and bound to the run they belong to (model, recipe, seed, precision, memory format, dataset checksum).

Checkpoints travel between machines (a GPU lease carries them back), and the seal proves a file is
intact, not who wrote it: every file is read with ``torch.load(weights_only=True)``, which rebuilds
tensors, dicts, lists, numbers and strings and refuses anything else, so a crafted pickle is refused
in one line naming the file and never runs. The one class allowed beyond those is ``TorchVersion``
(a ``str`` subclass that the segments' ``torch`` entry holds in checkpoints written so far).

A checkpoint that fails its checksum is never resumed: the run starts again from scratch and
says so (the next epoch's checkpoint replaces the damaged file). A checkpoint of another run,
or of the same run on other data, is refused with the difference and what to do.
"""

from __future__ import annotations

import io
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .files import CorruptFileError, atomic_write_bytes, seal, unseal

# Classes a checkpoint may hold beyond tensors and plain containers: building them runs no code of the file's.
SAFE_GLOBALS = [torch.torch_version.TorchVersion]

CHECKPOINT_FORMAT = 2  # 2: sealed, dataset checksum in the identity


class CheckpointMismatch(ValueError):
    """The checkpoint belongs to another run (or to this run on other data)."""


class UnsafeFileError(CorruptFileError):
    """A file verifies (or is not sealed) but could only be loaded by running code from it: refused."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save, sealed, written atomically: an interrupted write never corrupts the last checkpoint."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(path), seal(buf.getvalue()))


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state in a sealed checkpoint; CorruptFileError naming the file when it does not verify."""
    payload = unseal(Path(path).read_bytes(), f"checkpoint {path}")
    state = safe_load(payload, f"checkpoint {path}", map_location)
    if not isinstance(state, dict):
        raise CorruptFileError(f"checkpoint {path} does not hold a training state")
    return state


def safe_load(payload: bytes | Path, where: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: a file that would need code to unpickle (a crafted
    ``__reduce__``, a foreign class) raises CorruptFileError in one line naming ``where``, having run nothing."""
    source = io.BytesIO(payload) if isinstance(payload, bytes) else payload
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as exc:  # refused by the weights-only unpickler, or not a torch file at all
        first = (str(exc).strip().splitlines() or [""])[0]
        if "Weights only load failed" in first:  # torch's advice to load with full trust is not ours to give
            unsafe = re.search(r"Unsupported global: GLOBAL (\S+)|Unsupported operand \d+", str(exc))
            first = f"it needs {unsafe.group(1) if unsafe and unsafe.group(1) else 'code'} to be loaded, " \
                    "which a checkpoint never does"
        raise UnsafeFileError(f"{where} cannot be read safely ({type(exc).__name__}: {first}); refused, "
                               "nothing in it was run: delete it (a checkpoint restarts its run)") from None


def load_for_resume(path: Path, identity: dict[str, Any], map_location: torch.device) -> dict[str, Any] | None:
    """The state to resume from, or None (start from scratch) when ``path`` is missing or damaged.

    A damaged file is reported in one warning; a checkpoint of another run raises CheckpointMismatch.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = read_checkpoint(path, map_location)
    except UnsafeFileError as exc:  # intact but not a state we wrote: never overwritten unseen, never run
        raise CheckpointMismatch(str(exc)) from None
    except CorruptFileError as exc:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":  # a plain torch.save zip: resnet_nb < format 2, no dataset identity
                raise CheckpointMismatch(f"checkpoint {path} was written by an older resnet_nb (no checksum, no "
                                         "dataset identity); delete it to restart this run from scratch") from None
        warnings.warn(f"{exc}: not resumed, training this run from scratch (the damaged file is replaced "
                      "after the first epoch)", stacklevel=3)
        return None
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatch(f"checkpoint {path} has format {state.get('format')!r}, this version writes "
                                 f"{CHECKPOINT_FORMAT}; delete it to restart the run from scratch")
    diffs = _differences(state.get("identity") or {}, identity)
    if diffs:
        raise CheckpointMismatch(f"checkpoint {path} belongs to another run ({'; '.join(diffs)}); "
                                 "delete it to restart from scratch, or choose another checkpoint folder")
    return state


def _differences(theirs: dict[str, Any], ours: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: checkpoint X, this run Y`` for each differing entry, descending into dicts (the recipe)."""
    out = []
    for k in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(k), ours.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: checkpoint {a!r}, this run {b!r}")
    return out


def read_checkpoint_history(path: Path) -> list[dict[str, float]]:
    """The history stored in a checkpoint (for progress reports; a seed-parallel group's first seed's),
    or [] if there is none; a file that cannot be read is named in a warning."""
    try:
        state = read_checkpoint(path)
    except FileNotFoundError:
        return []
    except (OSError, CorruptFileError) as exc:
        warnings.warn(f"{exc}; its progress is not counted", stacklevel=2)
        return []
    history = state.get("history") or (state.get("histories") or [[]])[0]
    return [row for row in history if isinstance(row, dict)] if isinstance(history, list) else []


class SegmentLog:
    """Where each stretch of a run's epochs was trained: one entry per process that trained it.

    A run resumed from a checkpoint may have started under another commit, or on another device
    (the checkpoint identity binds the model, data and precision, not the machine). The record's
    top-level provenance describes the process that finished it; ``provenance.segments`` keeps
    every stretch: ``first_epoch``..``last_epoch`` with that process's commit, torch, device and
    times. A checkpoint written before segments were logged yields one ``unrecorded`` entry.
    """

    def __init__(self, state: dict[str, Any] | None, start_epoch: int, env: dict[str, Any]) -> None:
        earlier = [dict(s) for s in (state or {}).get("segments") or []]
        if start_epoch and not earlier:
            earlier = [{"first_epoch": 1, "last_epoch": start_epoch, "unrecorded": True}]
        self._earlier = earlier
        now = _now()
        self._current = {"first_epoch": start_epoch + 1, "last_epoch": start_epoch, "started": now,
                         "finished": now, **env}

    def epoch_done(self, epoch: int) -> None:
        """Epoch ``epoch`` (1-based) finished in this process."""
        self._current.update(last_epoch=epoch, finished=_now())

    @property
    def segments(self) -> list[dict[str, Any]]:
        """The earlier stretches and this process's, if it trained at least one epoch."""
        mine = [dict(self._current)] if self._current["last_epoch"] >= self._current["first_epoch"] else []
        return self._earlier + mine


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- final weights kept with a record

WEIGHTS_FORMAT = 1


def save_weights(path: Path, model: torch.nn.Module, run_id: str) -> None:
    """A finished run's final weights, for analyses that need the net itself (the paper's Figure 7).

    Floating-point tensors are stored in fp16 (a CIFAR ResNet-56 in ~1.7 MB, ResNet-20 in ~0.6 MB: small
    enough to commit next to the records), sealed like a checkpoint and written atomically. The file
    holds only tensors, strings and numbers, so :func:`load_weights` reads it with ``weights_only=True``.
    """
    state = {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
             for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"format": WEIGHTS_FORMAT, "run_id": run_id, "state_dict": state}, buf)
    atomic_write_bytes(Path(path), seal(buf.getvalue()))


def load_weights(path: Path, run_id: str | None = None) -> dict[str, torch.Tensor]:
    """The fp32 state dict saved by :func:`save_weights`; CorruptFileError naming the file when it does not
    verify, cannot be read without running code, or belongs to another run than ``run_id``."""
    payload = unseal(Path(path).read_bytes(), f"weights file {path}")
    saved = safe_load(payload, f"weights file {path}")  # a crafted pickle is refused, never executed
    if not isinstance(saved, dict) or saved.get("format") != WEIGHTS_FORMAT or not isinstance(
            saved.get("state_dict"), dict):
        raise CorruptFileError(f"weights file {path} is not a resnet_nb weights file (format {WEIGHTS_FORMAT})")
    if run_id is not None and saved.get("run_id") != run_id:
        raise CorruptFileError(f"weights file {path} holds run {saved.get('run_id')!r}, expected {run_id!r}")
    return {k: (v.float() if v.is_floating_point() else v) for k, v in saved["state_dict"].items()}
