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
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .checkpoints import safe_load
from .data import Cifar10, DeviceLoader
from .files import atomic_write_text
from .models import ModelSpec, build_model
from .provenance import environment
from .train import as_device, evaluate

DEFAULT_DIR = Path("/work/shared/checkpoints/akamaster")
ENV_DIR = "RESNET_NB_AKAMASTER"
RECORD_KIND = "akamaster-eval"
ROUNDTRIP_KIND = "akamaster-jpeg-roundtrip"  # records in results/akamaster/roundtrip/
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
    dev = as_device(device)
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


def _read_record(path: Path, kind: str = RECORD_KIND) -> dict[str, Any]:
    """One akamaster record of ``kind``; ValueError naming the file when it is unreadable or of another kind."""
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(record, dict) or record.get("kind") != kind or record.get("format") != RECORD_FORMAT \
            or not isinstance(record.get("depth"), int):
        raise ValueError(f"{path}: not an akamaster record of kind {kind} (format {RECORD_FORMAT})")
    return record


def copy_cost_text(records: list[dict[str, Any]]) -> str:
    """One Markdown paragraph: the published nets' error on our test copy against the error their README
    reports, and what that difference does and does not measure."""
    if not records:
        return ("No akamaster evaluation records yet: `python -m resnet_nb akamaster` writes them "
                "(needs the checkpoints and CIFAR-10).")
    parts = [f"ResNet-{r['depth']} {r['test_error_pct']:.2f} % vs {r['published_test_error_pct']:.2f} %"
             for r in records]
    effects = [r["test_error_pct"] - r["published_test_error_pct"] for r in records]
    variant = records[0]["provenance"]["dataset_variant"]
    return (f"On our test copy ({variant}, {records[0]['test_images']:,} images) the published nets err "
            f"{min(effects):.1f} to {max(effects):.1f} points more than their README reports on the original test "
            f"images ({'; '.join(parts)}). What this measures: nets trained on the original pixels, evaluated on "
            "the copy, against a number evaluated elsewhere. It does not separate the copy from any other "
            "difference between the README's evaluation and ours (we cannot evaluate on the original pixels "
            "here), and it does not measure what the copy costs nets trained on it, as ours are: they learn "
            "from the same re-encoded images they are tested on, and may lose less.")


# --- a control: what one more JPEG round-trip of the test copy costs the published nets ---------------

def jpeg_roundtrip(images: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """N×3×H×W uint8 images, each encoded once more as JPEG at ``quality`` by PIL (its default 4:2:0
    chroma subsampling) and decoded: the copy passed through the same kind of encoder again."""
    out = torch.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        out[i] = torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1)
    return out


def roundtrip_record(folder: Path, depth: int, data: Cifar10, quality: int = 75,
                     device: str | torch.device = "cpu") -> dict[str, Any]:
    """The published net of ``depth`` on our test copy as it is and after one more JPEG round-trip."""
    path = checkpoints(folder)[depth]
    digest = sha256(path)
    if digest != pinned_sha256(folder, path):
        raise ValueError(f"{path}: sha256 {digest} does not match SHA256SUMS; the file is corrupt or replaced")
    dev = as_device(device)
    model = load_akamaster(path, depth)[0].to(dev)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    errors = {}
    for name, images in (("copy", data.test_x), ("roundtrip", jpeg_roundtrip(data.test_x, quality))):
        loader = DeviceLoader(images, data.test_y, batch_size=500, device=dev, mean=list(IMAGENET_MEAN),
                              std=list(IMAGENET_STD))
        errors[name] = 100 * (1 - evaluate(model, loader, "fp32")[1])
    return {
        "format": RECORD_FORMAT, "kind": ROUNDTRIP_KIND, "model": f"resnet{depth}-A", "depth": depth,
        "quality": quality, "encoder": "PIL JPEG, default 4:2:0 chroma subsampling", "test_images": len(data.test_y),
        "test_error_pct": errors["copy"], "roundtrip_error_pct": errors["roundtrip"],
        "extra_error_pts": errors["roundtrip"] - errors["copy"],
        "checkpoint": {"file": path.name, "sha256": digest, "source": SOURCE},
        "why": "a control for the copy's cost: the same nets, the same test images, one more pass of a JPEG encoder",
        "provenance": environment(dev) | {"precision": "fp32", "dataset_source": data.source,
                                          "dataset_variant": data.variant, "dataset_checksum": data.checksum,
                                          "started": started,
                                          "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


def write_roundtrip_records(folder: Path, data: Cifar10, out: Path, quality: int = 75,
                            device: str = "cpu") -> list[dict[str, Any]]:
    """:func:`roundtrip_record` of every pinned checkpoint, written atomically to ``out/resnet<depth>-A.json``."""
    records = []
    for depth in checkpoints(folder):
        record = roundtrip_record(folder, depth, data, quality, device)
        atomic_write_text(Path(out) / f"{record['model']}.json", json.dumps(record, indent=1))
        records.append(record)
    return records


def read_roundtrip_records(folder: Path) -> list[dict[str, Any]]:
    """The round-trip control records under ``folder`` (none: an empty list), by depth."""
    records = [_read_record(p, ROUNDTRIP_KIND) for p in sorted(Path(folder).glob("*.json"))]
    return sorted(records, key=lambda r: r["depth"])


def roundtrip_text(records: list[dict[str, Any]]) -> str:
    """One Markdown sentence on the round-trip control, or how to make it."""
    if not records:
        return ("No JPEG round-trip control yet: `akamaster.write_roundtrip_records` makes it (the checkpoints, "
                "CIFAR-10 and a few minutes of CPU).")
    extra = [r["extra_error_pts"] for r in records]
    parts = "; ".join(f"ResNet-{r['depth']} {r['test_error_pct']:.2f} → {r['roundtrip_error_pct']:.2f} %"
                      for r in records)
    return (f"**A control, cheap and partial.** One more JPEG pass over the test copy (quality "
            f"{records[0]['quality']}, {records[0]['encoder']}) costs the same nets {min(extra):+.2f} to "
            f"{max(extra):+.2f} points more ({parts}). A second pass over images already compressed at a similar "
            "quality is expected to change them far less than the first did, so this number neither measures the "
            "first pass's cost nor rules out another cause of the gap above. The control that would (the same nets "
            "on the original test pixels, evaluated here) needs the original batches, which these machines do not "
            "have.")
