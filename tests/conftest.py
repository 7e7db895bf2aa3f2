"""Shared fixtures and helpers: a tiny synthetic CIFAR-like image tree (folder + zip), an isolated
cache, synthetic records and result frames, and a way to interrupt training after epoch N.

Nothing here touches the network, the real CIFAR-10 or the user's cache.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from resnet_nb.data import CLASSES, ENV_CACHE, ENV_DATA, Cifar10, load_cifar10
from resnet_nb.models import ModelSpec
from resnet_nb.grids import run_one
from resnet_nb.records import HISTORY_KEYS, RunConfig, content_sha256, load_results, record_path

TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 5

# One distinct mean colour per class (RGB), far enough apart that a tiny net separates them.
CLASS_COLOURS = np.array([
    [220, 40, 40], [40, 220, 40], [40, 40, 220], [220, 220, 40], [220, 40, 220],
    [40, 220, 220], [130, 130, 130], [230, 230, 230], [25, 25, 25], [140, 70, 20],
], dtype=np.float64)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache folder and no RESNET_NB_DATA from the user's environment."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv(ENV_CACHE, str(cache))
    monkeypatch.delenv(ENV_DATA, raising=False)
    return cache


def _write_tree(root: Path, seed: int = 1234) -> None:
    rng = np.random.default_rng(seed)
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                img = CLASS_COLOURS[c] + rng.normal(0, 25, size=(32, 32, 3))
                img = np.clip(img, 0, 255).astype(np.uint8)
                Image.fromarray(img, "RGB").save(folder / f"{i:04d}.png")


def _zip_tree(root: Path, zip_path: Path) -> None:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root.parent).as_posix())  # members: cifar10-tiny/<split>/...


@pytest.fixture(scope="session")
def tiny_image_root(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"folder": .../cifar10-tiny, "zip": .../cifar10-tiny.zip}``: 20 train + 5 test PNGs per class."""
    base = tmp_path_factory.mktemp("tinydata")
    folder = base / "cifar10-tiny"
    _write_tree(folder)
    zip_path = base / "cifar10-tiny.zip"
    _zip_tree(folder, zip_path)
    return {"folder": folder, "zip": zip_path}


@pytest.fixture(scope="session")
def tiny_zip(tiny_image_root: dict[str, Path]) -> Path:
    return tiny_image_root["zip"]


@pytest.fixture(scope="session")
def tiny_data(tiny_image_root: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Cifar10:
    """The tiny zip as a Cifar10 (loaded once per session, with its own cache folder). Do not mutate."""
    data = load_cifar10(tiny_image_root["zip"], cache=tmp_path_factory.mktemp("tinycache"), progress=False)
    assert len(data.train_y) == 10 * TRAIN_PER_CLASS and len(data.test_y) == 10 * TEST_PER_CLASS
    return data


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    """One torch thread for the whole session: on a shared 2-core machine OpenMP threads that wait on
    each other are much slower than one thread, and bitwise-equality tests want one reduction order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- training helpers

TIMING_KEYS = ("seconds", "train_images_per_s")


def untimed(history: list[dict]) -> list[dict]:
    """A history without its wall-clock columns: what must be equal between two runs of one config."""
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


class Interrupted(Exception):
    """Raised by :func:`stop_after`: stands for a run killed between epochs."""


def stop_after(epoch: int) -> Callable[[Any], None]:
    """An ``on_epoch`` callback that interrupts training once ``epoch`` is finished (and checkpointed).

    Works for ``fit`` (one row per epoch) and ``fit_stacked`` (one row per seed, all of one epoch).
    """
    def on_epoch(rows: dict | list[dict]) -> None:
        row = rows[0] if isinstance(rows, list) else rows
        if row["epoch"] == epoch:
            raise Interrupted(f"stopped after epoch {epoch}")
    return on_epoch


# ---------------------------------------------------------------- records

RUN = RunConfig(grid="t", model="resnet8-A", recipe="report", seed=0, epochs=1)


def run_kw(tmp_path: Path) -> dict:
    """``run_one`` keywords that keep results and checkpoints under ``tmp_path``, on the CPU in fp32."""
    return dict(results=tmp_path / "results", checkpoints=tmp_path / "ck", device="cpu", precision="fp32",
                progress=False)


@pytest.fixture(scope="session")
def finished(tiny_data: Cifar10, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, bytes]:
    """RUN trained once by run_one; (record, record path, its bytes). Tests copy the file, never edit it."""
    tmp = tmp_path_factory.mktemp("finished")
    record = run_one(RUN, tiny_data, **run_kw(tmp))
    path = record_path(RUN, tmp / "results")
    return record, path, path.read_bytes()



def resealed(record: dict) -> dict:
    """``record`` with its ``content_sha256`` recomputed: an edit that only the range and shape checks can catch."""
    body = {k: v for k, v in record.items() if k != "content_sha256"}
    return body | {"content_sha256": content_sha256(body)}


def fake_record(run: RunConfig, test_accs: list[float], **provenance: Any) -> dict:
    """A valid (sealed) record with a known history (one row per epoch), no training needed; ``provenance``
    entries replace the defaults before the record is sealed."""
    history = [{"epoch": i + 1, "train_loss": 1.0 / (i + 1), "train_acc": acc - 0.01, "test_loss": 2.0 / (i + 1),
                "test_acc": acc, "seconds": 1.5, "lr": 1e-3} for i, acc in enumerate(test_accs)]
    return resealed({
        "format": 1,
        "run_id": run.run_id,
        "config": dataclasses.asdict(run) | {"recipe_params": dataclasses.asdict(run.recipe_obj())},
        "history": history,
        "provenance": {"device": "cpu", "device_name": "test cpu", "precision": "fp32", "dataset_variant": "image-folder",
                       "wall_seconds": 1.5 * len(history)} | provenance,
    })


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` sealed (its ``content_sha256`` recomputed), as the runner would have written it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(resealed(record)))


RESULT_COLUMNS = list(load_results(results="/nonexistent").columns)


def _result_row(model: str, grid: str, recipe: str, seed: int, epoch: int, device: str, precision: str,
                variant: str, wall_seconds: float, recipe_desc: str, **metrics: float) -> dict:
    """One row of a ``load_results`` frame (one run, one epoch) for a model key."""
    spec = ModelSpec.from_key(model)
    return {"grid": grid, "run_id": f"{model}_{recipe}_s{seed}", "config_id": f"{model}_{recipe}", "model": model,
            "arch": spec.arch, "depth": spec.depth, "shortcut": spec.shortcut, "stem": spec.stem, "recipe": recipe,
            "seed": seed, "device": "cuda" if "GPU" in device or device == "synthetic" else "cpu",
            "device_name": device, "precision": precision, "dataset_variant": variant, "wall_seconds": wall_seconds,
            "recipe_desc": recipe_desc, "epoch": epoch, **metrics}


def make_results(acc: dict[str, list[float]] | None = None, seeds: int = 2, epochs: int = 3,
                 device: str = "Test GPU", variant: str = "jpeg") -> pd.DataFrame:
    """A long results frame like ``load_results``: model -> final test accuracy per seed (curves rise to it)."""
    acc = acc or {"resnet20-A": [0.80, 0.82], "plain20": [0.60, 0.64], "resnet56-A": [0.78, 0.80],
                  "plain56": [0.50, 0.52], "resnet20-B": [0.81, 0.81], "resnet56-B": [0.79, 0.79]}
    rows = []
    for model, finals in acc.items():
        for seed, final in enumerate(finals[:seeds]):
            for epoch in range(1, epochs + 1):
                a = final * epoch / epochs
                rows.append(_result_row(model, "report", "report", seed, epoch, device, "bf16", variant, 10.0 * epochs,
                                        "Adam lr 0.001, batch 32, no augmentation", train_loss=2 * (1 - a),
                                        train_acc=a, test_loss=2 * (1 - a) + 0.1, test_acc=a, seconds=10.0))
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    assert set(HISTORY_KEYS) <= set(frame.columns)
    return frame


def make_paper_results(models: dict[str, int], epochs: int = 4, grid: str = "paper", steps: int = 391,
                       total: int = 64_000, drops: tuple[int, ...] = (32_000, 48_000),
                       wall_seconds: float = 1.0) -> pd.DataFrame:
    """A long results frame of a paper-recipe grid: model -> number of seeds; errors fall with epochs.
    ``steps`` per epoch, the run's ``total`` iterations and its learning-rate ``drops``, as records store them."""
    rows = [_result_row(model, grid, "paper", seed, e, "synthetic", "fp32", "jpeg", wall_seconds,
                        "SGD lr 0.1, momentum 0.9, batch 128, pad-4 crop + flip", train_loss=1.0,
                        train_acc=0.5 + 0.1 * e + 0.01 * seed, test_loss=1.0, test_acc=0.5 + 0.08 * e, seconds=1.0,
                        iteration=min(e * steps, total), total_iterations=total, lr_drops=drops)
            for model, seeds in models.items() for seed in range(seeds) for e in range(1, epochs + 1)]
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    if grid != "paper":  # a shortened grid: its run ids carry the iteration count
        frame["run_id"] = [r.replace("_paper_", f"_paper_it{total}_") for r in frame["run_id"]]
        frame["config_id"] = frame["config_id"] + f"_it{total}"
    return frame
