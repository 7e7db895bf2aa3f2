"""Shared fixtures: a tiny synthetic CIFAR-like image tree (folder + zip), an isolated cache.

Nothing here touches the network, the real CIFAR-10 or the user's cache.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_nb.data import CLASSES, ENV_CACHE, ENV_DATA, Cifar10, load_cifar10

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
