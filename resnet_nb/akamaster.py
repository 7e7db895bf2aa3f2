"""Published CIFAR-10 ResNets (akamaster/pytorch_resnet_cifar10) on our models and our test copy.

Why: the book's CIFAR-10 is a JPEG re-encoded copy. Evaluating nets that were trained on the
original pixels, on this copy, measures what the copy costs in accuracy instead of guessing.

The checkpoints (``<dir>/resnet<depth>-<hash>.th``, pinned by ``SHA256SUMS``, BSD-2-Clause) hold a
``state_dict`` saved from ``DataParallel`` (``module.`` prefixes) with our parameter names, and
``best_prec1``. They were trained with the ImageNet mean/std normalisation (their README), so
that is what the evaluation uses. ``python -m resnet_nb akamaster`` writes one record per net to
``results/akamaster/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import safe_load
from .data import Cifar10, DeviceLoader
from .files import atomic_write_text
from .models import ModelSpec, build_model
from .provenance import environment
from .train import evaluate, resolve_device

DEFAULT_DIR = Path("/work/shared/checkpoints/akamaster")
ENV_DIR = "RESNET_NB_AKAMASTER"
RECORD_KIND = "akamaster-eval"
RECORD_FORMAT = 1
SOURCE = "github.com/akamaster/pytorch_resnet_cifar10"
# akamaster's trainer.py normalises with the ImageNet statistics (their README; quoted in ours)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def checkpoint_dir(folder: str | Path | None = None) -> Path:
    import os

    path = Path(folder or os.environ.get(ENV_DIR) or DEFAULT_DIR)
    if not (path / "SHA256SUMS").exists():
        raise FileNotFoundError(f"no akamaster checkpoints (SHA256SUMS) in {path}; pass --dir or set {ENV_DIR}")
    return path


def checkpoints(folder: Path) -> dict[int, Path]:
    """Depth -> checkpoint file, from ``SHA256SUMS`` (only the files it pins)."""
    found = {}
    for line in _text(folder / "SHA256SUMS").splitlines():
        if line.strip():
            name = line.split()[-1]
            match = re.fullmatch(r"resnet(\d+)-[0-9a-f]+\.th", name)
            if match:
                found[int(match.group(1))] = folder / name
    return dict(sorted(found.items()))


def published_errors(folder: Path) -> dict[int, float]:
    """The test errors (%) their README reports, parsed from the README copy next to the checkpoints."""
    text = " ".join(_text(folder / "README.md").split())
    match = re.search(r"test errors of ([\d.\s/]+?)\s*% for ResNet-([\d/]+)", text)
    if not match:
        raise ValueError(f"{folder / 'README.md'}: no 'test errors of ... % for ResNet-...' sentence found")
    errors = [float(v) for v in match.group(1).split("/")]
    depths = [int(v) for v in match.group(2).split("/")]
    if len(errors) != len(depths):
        raise ValueError(f"{folder / 'README.md'}: {len(errors)} errors for {len(depths)} depths")
    return dict(zip(depths, errors, strict=True))


def _text(path: Path) -> str:
    """A text file of the published folder; ValueError naming it when it is not UTF-8 text."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc}); restore it from the published copy") from None


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pinned_sha256(folder: Path, path: Path) -> str:
    for line in _text(folder / "SHA256SUMS").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == path.name:
            return parts[0]
    raise ValueError(f"{path.name} is not listed in {folder / 'SHA256SUMS'}")


def load_akamaster(path: Path, depth: int) -> tuple[nn.Module, dict[str, Any]]:
    """Our option-A ResNet with the checkpoint's weights (strict: every tensor must map), and its extras."""
    state = safe_load(Path(path), f"akamaster checkpoint {path}")  # weights only: nothing in the file runs
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise ValueError(f"{path}: not an akamaster checkpoint (no state_dict)")
    weights = {k.removeprefix("module."): v for k, v in state["state_dict"].items()}
    model = build_model(ModelSpec("resnet", depth, "A"))
    model.load_state_dict(weights, strict=True)
    return model.eval(), {k: v for k, v in state.items() if k != "state_dict"}


def evaluate_checkpoint(folder: Path, depth: int, data: Cifar10, device: str | torch.device = "cpu"
                        ) -> dict[str, Any]:
    """One record: the checkpoint evaluated on ``data``'s test split, with provenance."""
    path = checkpoints(folder)[depth]
    digest = sha256(path)
    if digest != pinned_sha256(folder, path):
        raise ValueError(f"{path}: sha256 {digest} does not match SHA256SUMS; the file is corrupt or replaced")
    dev = resolve_device(device)
    model, extras = load_akamaster(path, depth)
    model = model.to(dev)
    loader = DeviceLoader(data.test_x, data.test_y, batch_size=500, device=dev, mean=list(IMAGENET_MEAN),
                          std=list(IMAGENET_STD))
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    test_loss, test_acc = evaluate(model, loader, "fp32")
    published = published_errors(folder).get(depth)
    return {
        "format": RECORD_FORMAT, "kind": RECORD_KIND, "model": f"resnet{depth}-A", "depth": depth,
        "test_loss": test_loss, "test_acc": test_acc, "test_error_pct": 100 * (1 - test_acc),
        "test_images": len(data.test_y),
        "published_test_error_pct": published,
        "checkpoint": {"file": path.name, "sha256": digest, "source": SOURCE, "license": "BSD-2-Clause",
                       "best_prec1": float(extras["best_prec1"]) if "best_prec1" in extras else None},
        "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                          "why": "the ImageNet statistics akamaster's trainer.py normalises with"},
        "provenance": environment(dev) | {"precision": "fp32", "dataset_source": data.source,
                                          "dataset_variant": data.variant, "dataset_checksum": data.checksum,
                                          "started": started,
                                          "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


def write_records(folder: Path, data: Cifar10, out: Path, device: str = "cpu") -> list[dict[str, Any]]:
    """Evaluate every pinned checkpoint and write ``out/resnet<depth>-A.json`` atomically each."""
    records = []
    for depth in checkpoints(folder):
        record = evaluate_checkpoint(folder, depth, data, device)
        atomic_write_text(Path(out) / f"{record['model']}.json", json.dumps(record, indent=1))
        records.append(record)
    return records


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The akamaster evaluation records under ``folder`` (none: an empty list), by depth."""
    records = [_read_record(p) for p in sorted(Path(folder).glob("*.json"))]
    return sorted(records, key=lambda r: r["depth"])


def _read_record(path: Path) -> dict[str, Any]:
    """One akamaster record; ValueError naming the file when it is unreadable or of another kind."""
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(record, dict) or record.get("kind") != RECORD_KIND or record.get("format") != RECORD_FORMAT \
            or not isinstance(record.get("depth"), int):
        raise ValueError(f"{path}: not an akamaster evaluation record (kind {RECORD_KIND}, format {RECORD_FORMAT})")
    return record
