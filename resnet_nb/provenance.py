"""Where a result came from: package version, git commit, library versions, device."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .vocab import canonical_device_name  # noqa: F401 - re-exported: records read names through it


def git_commit() -> str:
    """``RESNET_NB_GIT_COMMIT`` if set, else HEAD of the checkout holding this package (+ ``-dirty``).

    The variable wins because it is set on purpose where git cannot tell: a copied working
    tree (a GPU machine, a Colab upload) may carry an older ``.git`` under newer code.
    """
    if os.environ.get("RESNET_NB_GIT_COMMIT"):
        return os.environ["RESNET_NB_GIT_COMMIT"]
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "resnet_nb"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        n = torch.get_num_threads()  # part of the name: the thread count changes speed and summation order
        return f"{cpu} ({n} thread{'' if n == 1 else 's'})"
    return device.type




def environment(device: torch.device) -> dict[str, Any]:
    import torchvision

    return {"package_version": __version__, "python": platform.python_version(),
            "torchvision": torchvision.__version__} | segment_env(device)


def segment_env(device: torch.device) -> dict[str, Any]:
    """What a training segment records of the process that ran it (see ``checkpoints.SegmentLog``)."""
    return {"git_commit": git_commit(), "torch": torch.__version__, "device": str(device),
            "device_name": device_name(device)}
