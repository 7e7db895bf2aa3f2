"""Data: sources, the verified cache, stratified subsets, DeviceLoader, random crop + flip."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import resnet_nb.data as data_mod
from resnet_nb.data import (CLASSES, ENV_DATA, DataError, DeviceLoader, channel_stats, load_cifar10, random_crop_flip,
                            stratified_subset)

from .conftest import CLASS_COLOURS, TEST_PER_CLASS, TRAIN_PER_CLASS


def _cache_files(cache: Path) -> tuple[Path, Path]:
    (npz,) = [p for p in cache.glob("cifar10-*.npz")]
    return npz, npz.with_suffix(".json")


def _same(a, b) -> None:
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.checksum == b.checksum and a.variant == b.variant


# ---------------------------------------------------------------- loading


def test_zip_and_folder_agree(tiny_image_root: dict[str, Path]) -> None:
    z = load_cifar10(tiny_image_root["zip"], progress=False)
    f = load_cifar10(tiny_image_root["folder"], progress=False)
    _same(z, f)
    assert z.source == "cifar10-tiny.zip (zip)"
    assert f.source == "cifar10-tiny (folder)"


def test_shapes_dtypes_labels(tiny_data, tiny_image_root: dict[str, Path]) -> None:
    d = tiny_data
    assert d.train_x.shape == (10 * TRAIN_PER_CLASS, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert d.test_x.shape == (10 * TEST_PER_CLASS, 3, 32, 32) and d.test_x.dtype == torch.uint8
    assert d.train_y.dtype == torch.int64 and d.test_y.dtype == torch.int64
    # sorted by class, then file name
    assert torch.equal(d.train_y, torch.arange(10).repeat_interleave(TRAIN_PER_CLASS))
    assert torch.equal(d.test_y, torch.arange(10).repeat_interleave(TEST_PER_CLASS))
    assert d.variant == "image-folder"
    assert len(d.checksum) == 64
    # pixels are the PNGs' pixels, CHW, in file order
    png = np.asarray(Image.open(tiny_image_root["folder"] / "train" / CLASSES[3] / "0007.png"))
    assert torch.equal(d.train_x[3 * TRAIN_PER_CLASS + 7], torch.from_numpy(png.transpose(2, 0, 1).copy()))
    # each class has its own colour
    means = d.train_x.double().mean(dim=(2, 3)).view(10, TRAIN_PER_CLASS, 3).mean(1).numpy()
    assert np.abs(means - CLASS_COLOURS).max() < 15
    info = d.info()
    assert info["train_class_counts"] == [TRAIN_PER_CLASS] * 10 and info["test_class_counts"] == [TEST_PER_CLASS] * 10
    assert info["train"] == 200 and info["test"] == 50 and info["variant"] == "image-folder"


def test_env_var_source(tiny_zip: Path, monkeypatch: pytest.MonkeyPatch, tiny_data) -> None:
    monkeypatch.setenv(ENV_DATA, str(tiny_zip))
    _same(load_cifar10(progress=False), tiny_data)


def test_jpeg_variant(tmp_path: Path, tiny_image_root: dict[str, Path]) -> None:
    root = tmp_path / "jpg"
    for src in tiny_image_root["folder"].rglob("0000.png"):
        dst = root / src.relative_to(tiny_image_root["folder"]).with_suffix(".jpg")
        dst.parent.mkdir(parents=True)
        Image.open(src).save(dst, quality=95)
    d = load_cifar10(root, progress=False)
    assert d.variant == "jpeg"
    assert torch.equal(d.train_y, torch.arange(10)) and torch.equal(d.test_y, torch.arange(10))


def test_cache_is_reused(tiny_zip: Path, monkeypatch: pytest.MonkeyPatch, _isolated_env: Path) -> None:
    first = load_cifar10(tiny_zip, progress=False)
    npz, meta = _cache_files(_isolated_env)
    assert json.loads(meta.read_text())["variant"] == "image-folder"

    def boom(*args, **kwargs):
        raise AssertionError("decoded again despite a valid cache")

    monkeypatch.setattr(data_mod, "_from_image_files", boom)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid cache loads without a warning
        second = load_cifar10(tiny_zip, progress=False)
    _same(first, second)


def test_a_zip_finds_its_cache_after_a_new_mtime_or_copy(tiny_zip: Path, tmp_path: Path, _isolated_env: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache of a zip is keyed by its content: a re-mounted, touched or copied file does not decode
    60,000 images again into one more cache (the shared copy gets a new mtime in every session)."""
    first = load_cifar10(tiny_zip, progress=False)

    def boom(*args, **kwargs):
        raise AssertionError("decoded again although the zip's content did not change")

    monkeypatch.setattr(data_mod, "_from_image_files", boom)
    copy = tmp_path / "elsewhere.zip"
    shutil.copyfile(tiny_zip, copy)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    _same(first, load_cifar10(copy, progress=False))
    assert len(list(_isolated_env.glob("cifar10-*.npz"))) == 1


def test_a_replaced_zip_leaves_no_stale_cache(tiny_image_root: dict[str, Path], tmp_path: Path,
                                             _isolated_env: Path) -> None:
    """A new file at the same path gets a new cache, and the old one (185 MB for CIFAR-10) is removed."""
    path = _zip_of(tiny_image_root["folder"], tmp_path / "c.zip")
    other = _zip_of(tiny_image_root["folder"], tmp_path / "other.zip")  # same content, another path: kept
    first = load_cifar10(path, progress=False)
    (old,) = _isolated_env.glob("cifar10-*.npz")
    _zip_of(tiny_image_root["folder"], path, extra={"cifar10-tiny/README.txt": b"a new member"})
    second = load_cifar10(path, progress=False)
    (new,) = _isolated_env.glob("cifar10-*.npz")
    assert new != old and not old.with_suffix(".json").exists()
    assert json.loads(new.with_suffix(".json").read_text())["source_path"] == str(path.resolve())
    _same(first, second)  # the extra member is not an image: same pixels
    load_cifar10(other, progress=False)  # the old content again, from another path: its own cache
    assert len(list(_isolated_env.glob("cifar10-*.npz"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_cache_is_rebuilt(tiny_zip: Path, _isolated_env: Path, damage: str, monkeypatch) -> None:
    first = load_cifar10(tiny_zip, progress=False)
    npz, _ = _cache_files(_isolated_env)
    raw = bytearray(npz.read_bytes())
    if damage == "truncate":
        npz.write_bytes(raw[: len(raw) // 2])
    else:
        raw[len(raw) // 2] ^= 0xFF
        npz.write_bytes(bytes(raw))
    calls = []
    real = data_mod._from_image_files
    monkeypatch.setattr(data_mod, "_from_image_files", lambda *a: calls.append(1) or real(*a))
    with pytest.warns(UserWarning, match="corrupt"):
        second = load_cifar10(tiny_zip, progress=False)
    assert calls == [1]
    _same(first, second)
    # the rebuilt cache is valid again: no warning, no decoding
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(first, load_cifar10(tiny_zip, progress=False))
    assert calls == [1]


def test_cache_with_wrong_file_hash_but_valid_npz_is_rebuilt(tiny_zip: Path, _isolated_env: Path) -> None:
    """A cache whose arrays were swapped for other (well-formed) ones is caught by the file hash."""
    first = load_cifar10(tiny_zip, progress=False)
    npz, _ = _cache_files(_isolated_env)
    np.savez(npz, train_x=np.zeros((2, 3, 32, 32), np.uint8), train_y=np.zeros(2, np.int64),
             test_x=np.zeros((2, 3, 32, 32), np.uint8), test_y=np.zeros(2, np.int64))
    with pytest.warns(UserWarning, match="rebuilding"):
        _same(first, load_cifar10(tiny_zip, progress=False))


def test_missing_meta_means_rebuild(tiny_zip: Path, _isolated_env: Path, monkeypatch) -> None:
    first = load_cifar10(tiny_zip, progress=False)
    _, meta = _cache_files(_isolated_env)
    meta.unlink()
    calls = []
    real = data_mod._from_image_files
    monkeypatch.setattr(data_mod, "_from_image_files", lambda *a: calls.append(1) or real(*a))
    _same(first, load_cifar10(tiny_zip, progress=False))
    assert calls == [1]
    assert meta.exists()


def test_explicit_cache_argument(tiny_zip: Path, tmp_path: Path, _isolated_env: Path) -> None:
    load_cifar10(tiny_zip, cache=tmp_path / "c", progress=False)
    assert len(list((tmp_path / "c").glob("cifar10-*.npz"))) == 1
    assert not list(_isolated_env.glob("*"))  # the env cache was not used
    assert not list((tmp_path / "c").glob("*.tmp*"))


def test_env_data_missing_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "nope.zip"))
    with pytest.raises(DataError) as err:
        load_cifar10(progress=False)
    msg = str(err.value)
    assert "RESNET_NB_DATA" in msg and "torchvision" in msg and "nope.zip" in msg and "does not exist" in msg


def test_argument_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="from argument"):
        load_cifar10(tmp_path / "nope", progress=False)


def test_non_zip_file(tmp_path: Path) -> None:
    bad = tmp_path / "data.zip"
    bad.write_text("not a zip")
    with pytest.raises(DataError, match="not a zip"):
        load_cifar10(bad, progress=False)


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_cifar10(tmp_path, progress=False)


def test_unknown_class_folder(tmp_path: Path) -> None:
    (tmp_path / "train" / "unicorn").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(tmp_path / "train" / "unicorn" / "0.png")
    with pytest.raises(DataError, match="unicorn"):
        load_cifar10(tmp_path, progress=False)


def test_wrong_image_size(tmp_path: Path) -> None:
    _one_image_per_class(tmp_path)
    Image.new("RGB", (33, 32)).save(tmp_path / "test" / "cat" / "0.png")
    with pytest.raises(DataError, match="32x32"):
        load_cifar10(tmp_path, progress=False)


def _one_image_per_class(root: Path) -> None:
    for split in ("train", "test"):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True)
            Image.new("RGB", (32, 32)).save(root / split / name / "0.png")


def test_torchvision_download_failure(monkeypatch: pytest.MonkeyPatch, _isolated_env: Path) -> None:
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as err:
        load_cifar10("torchvision", progress=False)
    msg = str(err.value)
    assert "network is unreachable" in msg and "RESNET_NB_DATA" in msg and "torchvision" in msg
    assert str(_isolated_env) in msg  # downloads go to the (test) cache
    with pytest.raises(DataError):  # the default, with RESNET_NB_DATA unset, is torchvision
        load_cifar10(progress=False)


# ---------------------------------------------------------------- stratified_subset


def test_stratified_subset_balanced_and_deterministic() -> None:
    labels = torch.arange(10).repeat_interleave(30)[torch.randperm(300, generator=torch.Generator().manual_seed(1))]
    idx = stratified_subset(labels, 105)
    assert len(idx) == 105 and len(set(idx.tolist())) == 105
    assert torch.equal(idx, torch.sort(idx).values)
    assert torch.bincount(labels[idx], minlength=10).tolist() == [11] * 5 + [10] * 5
    assert torch.equal(idx, stratified_subset(labels, 105))
    assert torch.equal(idx, stratified_subset(labels, 105, seed=0))
    assert not torch.equal(idx, stratified_subset(labels, 105, seed=1))
    assert torch.equal(stratified_subset(labels, 300), torch.arange(300))


@pytest.mark.parametrize("size", [0, -1, 301])
def test_stratified_subset_bad_size(size: int) -> None:
    labels = torch.arange(10).repeat_interleave(30)
    with pytest.raises(ValueError, match="train_size"):
        stratified_subset(labels, size)


def test_stratified_subset_not_enough_of_a_class() -> None:
    labels = torch.tensor([0] * 20 + [1] * 2)
    with pytest.raises(ValueError, match="class 1"):
        stratified_subset(labels, 10)


# ---------------------------------------------------------------- DeviceLoader


def _loader(data, **kw) -> DeviceLoader:
    mean, std = channel_stats(data.train_x)
    defaults = dict(batch_size=32, mean=mean, std=std, shuffle=True, seed=0)
    return DeviceLoader(data.train_x, data.train_y, **(defaults | kw))


def test_loader_batches(tiny_data) -> None:
    loader = _loader(tiny_data)
    batches = list(loader)
    assert len(loader) == len(batches) == 7  # 200 / 32 -> 6 full + 1 of 8
    assert [len(y) for _, y in batches] == [32] * 6 + [8]
    assert all(x.shape == (len(y), 3, 32, 32) and x.dtype == torch.float32 for x, y in batches)
    assert all(y.dtype == torch.int64 for _, y in batches)
    assert len(_loader(tiny_data, drop_last=True)) == len(list(_loader(tiny_data, drop_last=True))) == 6
    # every image exactly once per epoch
    ys = torch.cat([y for _, y in batches])
    assert torch.bincount(ys, minlength=10).tolist() == [TRAIN_PER_CLASS] * 10
    with pytest.raises(ValueError, match="batch_size"):
        _loader(tiny_data, batch_size=0)


def test_loader_order_depends_on_seed_and_epoch(tiny_data) -> None:
    def labels_and_x(loader, epoch):
        loader.set_epoch(epoch)
        b = list(loader)
        return torch.cat([y for _, y in b]), torch.cat([x for x, _ in b])

    a, b = _loader(tiny_data), _loader(tiny_data)
    ya, xa = labels_and_x(a, 3)
    yb, xb = labels_and_x(b, 3)
    assert torch.equal(ya, yb) and torch.equal(xa, xb)
    # an epoch's order does not depend on what ran before it
    labels_and_x(b, 0)
    assert torch.equal(labels_and_x(b, 3)[0], ya)
    assert not torch.equal(labels_and_x(a, 4)[0], ya)
    assert not torch.equal(labels_and_x(_loader(tiny_data, seed=1), 3)[0], ya)
    # no shuffle: file order
    assert torch.equal(labels_and_x(_loader(tiny_data, shuffle=False), 0)[0], tiny_data.train_y)


def test_loader_normalises(tiny_data) -> None:
    x = torch.cat([x for x, _ in _loader(tiny_data, shuffle=False)])
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    raw = tiny_data.train_x.double()
    mean, std = channel_stats(tiny_data.train_x)
    expected = (raw - torch.tensor(mean).view(1, 3, 1, 1) * 255) / (torch.tensor(std).view(1, 3, 1, 1) * 255)
    assert torch.allclose(x.double(), expected, atol=1e-4)


def test_loader_normalises_each_channel_with_its_own_statistics() -> None:
    """Channels with very different statistics: a swapped or shared mean/std cannot pass."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 4, 4), generator=g, dtype=torch.uint8)
    mean, std = [0.1, 0.5, 0.9], [0.05, 0.2, 0.4]
    loader = DeviceLoader(x, torch.arange(6), batch_size=4, mean=mean, std=std)
    got = torch.cat([b for b, _ in loader]).double()
    for c in range(3):
        expected = (x[:, c].double() / 255 - mean[c]) / std[c]
        assert torch.allclose(got[:, c], expected, atol=1e-5), f"channel {c}"


def test_loader_augment_and_channels_last(tiny_data) -> None:
    plain = torch.cat([x for x, _ in _loader(tiny_data, shuffle=False)])
    aug = list(_loader(tiny_data, shuffle=False, augment=True, channels_last=True))
    assert all(x.is_contiguous(memory_format=torch.channels_last) for x, _ in aug)
    aug_x = torch.cat([x for x, _ in aug])
    assert aug_x.shape == plain.shape and not torch.equal(aug_x, plain)
    again = torch.cat([x for x, _ in _loader(tiny_data, shuffle=False, augment=True)])
    assert torch.equal(aug_x, again)
    assert not list(_loader(tiny_data, shuffle=False))[0][0].is_contiguous(memory_format=torch.channels_last)


def test_channel_stats() -> None:
    x = torch.zeros(2, 3, 2, 2, dtype=torch.uint8)
    x[:, 1] = 255
    x[0, 2] = 255
    mean, std = channel_stats(x)
    assert mean == pytest.approx([0.0, 1.0, 0.5])
    assert std[0] == 0 and std[1] == 0 and std[2] == pytest.approx(np.std([1] * 4 + [0] * 4, ddof=1))


# ---------------------------------------------------------------- random_crop_flip


def _reference_crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
                         pad: int = 4) -> torch.Tensor:
    """Slow and obvious: pad each image with zeros, cut the window at (dy, dx), mirror it if asked."""
    b, c, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(b):
        padded = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=x.dtype)
        padded[:, pad : pad + h, pad : pad + w] = x[i]
        window = padded[:, int(dy[i]) : int(dy[i]) + h, int(dx[i]) : int(dx[i]) + w]
        out[i] = window.flip(-1) if flip[i] else window
    return out


def _find_window(x: torch.Tensor, out: torch.Tensor, pad: int = 4) -> set[tuple[int, int, bool]]:
    """All (dy, dx, flip) whose reference window equals ``out`` exactly."""
    hits = set()
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            for flip in (False, True):
                ref = _reference_crop_flip(x[None], torch.tensor([dy]), torch.tensor([dx]), torch.tensor([flip]), pad)
                if torch.equal(ref[0], out):
                    hits.add((dy, dx, flip))
    return hits


def test_random_crop_flip_matches_reference() -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 3, 32, 32) + 1.0  # strictly positive: zeros can only come from padding
    out = random_crop_flip(x, torch.Generator().manual_seed(7))
    assert out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous()

    # the same draws, made the way the implementation documents them, give the reference result
    g = torch.Generator().manual_seed(7)
    offsets = torch.randint(0, 9, (2, 64), generator=g)
    flips = torch.rand(64, generator=g) < 0.5
    assert torch.equal(out, _reference_crop_flip(x, offsets[0], offsets[1], flips))

    # spread: both flips and many offsets occur; zeros sit exactly in the padded border
    assert 0 < int(flips.sum()) < 64
    assert len(set(zip(offsets[0].tolist(), offsets[1].tolist()))) > 20
    for i in range(64):
        dy, dx = int(offsets[0, i]), int(offsets[1, i])
        zero_rows = (out[i] == 0).all(dim=(0, 2))
        expected_rows = torch.zeros(32, dtype=torch.bool)
        expected_rows[: max(0, 4 - dy)] = True
        expected_rows[32 - max(0, dy - 4):] = True
        assert torch.equal(zero_rows, expected_rows)
        zero_cols = (out[i] == 0).all(dim=(0, 1))
        assert int(zero_cols.sum()) == abs(dx - 4)
        assert int((out[i] == 0).sum()) == 3 * (32 * 32 - (32 - abs(dy - 4)) * (32 - abs(dx - 4)))


def test_random_crop_flip_outputs_are_windows() -> None:
    """Independent of how the draws are made: every output is one padded, shifted, maybe mirrored window."""
    torch.manual_seed(1)
    x = torch.rand(6, 3, 32, 32) + 1.0
    out = random_crop_flip(x, torch.Generator().manual_seed(3))
    for i in range(6):
        assert len(_find_window(x[i], out[i])) == 1


def test_random_crop_flip_known_offset() -> None:
    """dy=0, dx=8, no flip: 4 zero rows on top, 4 zero columns on the right, the rest is x shifted."""
    x = torch.arange(1, 1 + 2 * 32 * 32, dtype=torch.float32).view(1, 2, 32, 32)
    ref = _reference_crop_flip(x, torch.tensor([0]), torch.tensor([8]), torch.tensor([False]))
    assert torch.equal(ref[0, :, :4], torch.zeros(2, 4, 32))
    assert torch.equal(ref[0, :, :, 28:], torch.zeros(2, 32, 4))
    assert torch.equal(ref[0, :, 4:, :28], x[0, :, :28, 4:])
    # find a generator seed that makes random_crop_flip draw exactly this offset, and compare
    for seed in range(5000):
        g = torch.Generator().manual_seed(seed)
        off = torch.randint(0, 9, (2, 1), generator=g)
        flip = torch.rand(1, generator=g) < 0.5
        if off.flatten().tolist() == [0, 8] and not flip.item():
            break
    else:  # pragma: no cover
        pytest.skip("no seed found")
    assert torch.equal(random_crop_flip(x, torch.Generator().manual_seed(seed)), ref)


def test_random_crop_flip_deterministic_per_generator() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 3, 32, 32)
    a = random_crop_flip(x, torch.Generator().manual_seed(5))
    b = random_crop_flip(x, torch.Generator().manual_seed(5))
    c = random_crop_flip(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the mean pixel (0 after normalisation) is what the border is filled with
    assert random_crop_flip(torch.zeros(4, 3, 32, 32), torch.Generator().manual_seed(0)).abs().sum() == 0


def test_random_crop_flip_channels_last_input() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    a = random_crop_flip(x, torch.Generator().manual_seed(2))
    b = random_crop_flip(x.contiguous(memory_format=torch.channels_last), torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


# ---------------------------------------------------------------- integrity of the cache and of the layout


def test_cache_checksum_is_recomputed_from_the_pixels(tiny_zip: Path, _isolated_env: Path) -> None:
    """Altered pixels with a matching file hash (a consistent forgery, or a bug) are caught by the pixels' hash."""
    first = load_cifar10(tiny_zip, progress=False)
    npz, meta_file = _cache_files(_isolated_env)
    with np.load(npz) as f:
        arrays = {k: f[k].copy() for k in f.files}
    arrays["train_x"][0, 0, 0, 0] ^= 0x01  # one bit of one pixel
    np.savez(npz, **arrays)
    meta = json.loads(meta_file.read_text())
    meta["file_sha256"] = data_mod._file_sha256(npz)
    meta_file.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=f"{npz} is corrupt .*pixels do not match the stored checksum.*rebuilding"):
        second = load_cifar10(tiny_zip, progress=False)
    _same(first, second)


def test_a_stored_checksum_that_is_not_the_pixels_is_not_trusted(tiny_zip: Path, _isolated_env: Path) -> None:
    first = load_cifar10(tiny_zip, progress=False)
    _, meta_file = _cache_files(_isolated_env)
    meta = json.loads(meta_file.read_text())
    meta["checksum"] = "0" * 64  # what a record would have copied as the data's identity
    meta_file.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="rebuilding"):
        second = load_cifar10(tiny_zip, progress=False)
    assert second.checksum == first.checksum != "0" * 64


COLD_BUILD = r"""
import sys
from pathlib import Path
from resnet_nb.data import load_cifar10
print(load_cifar10(sys.argv[1], cache=Path(sys.argv[2]), progress=False).checksum)
"""


@pytest.mark.slow
def test_concurrent_cold_cache_builds_do_not_collide(tiny_zip: Path, tiny_data, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", COLD_BUILD, str(tiny_zip), str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert {out.strip() for out, _ in outs} == {tiny_data.checksum}
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".npz"]  # no temp file left


def _zip_of(root: Path, zip_path: Path, extra: dict[str, bytes] | None = None, skip: str = "") -> Path:
    import zipfile

    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(root.rglob("*.png")):
            name = path.relative_to(root.parent).as_posix()
            if not (skip and name.startswith(skip)):
                zf.write(path, name)
        for name, raw in (extra or {}).items():
            zf.writestr(name, raw)
    return zip_path


def test_a_class_missing_from_a_split_is_refused(tiny_image_root: dict[str, Path], tmp_path: Path) -> None:
    bad = _zip_of(tiny_image_root["folder"], tmp_path / "c.zip", skip="cifar10-tiny/test/truck/")
    with pytest.raises(DataError, match="has no 'test' images of class truck"):
        load_cifar10(bad, progress=False)


def test_a_duplicated_class_folder_is_refused(tiny_image_root: dict[str, Path], tmp_path: Path) -> None:
    png = (tiny_image_root["folder"] / "train" / "cat" / "0000.png").read_bytes()
    bad = _zip_of(tiny_image_root["folder"], tmp_path / "d.zip", extra={"backup/train/cat/0000.png": png})
    with pytest.raises(DataError, match="2 copies of the 'train' class 'cat' \\(backup/train/cat, "
                                        "cifar10-tiny/train/cat\\).*exactly one copy"):
        load_cifar10(bad, progress=False)


def test_a_corrupt_member_is_named(tiny_image_root: dict[str, Path], tmp_path: Path) -> None:
    bad = _zip_of(tiny_image_root["folder"], tmp_path / "e.zip", skip="cifar10-tiny/test/dog/0003.png",
                  extra={"cifar10-tiny/test/dog/0003.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 40})
    with pytest.raises(DataError, match="cifar10-tiny/test/dog/0003.png in .*e.zip cannot be read as an image"):
        load_cifar10(bad, progress=False)


def test_a_bad_crc_inside_the_zip_is_named(tiny_zip: Path, tmp_path: Path) -> None:
    """Bytes flipped inside a stored member: zipfile's CRC check fails on read, and the member is named."""
    import zipfile

    raw = bytearray(tiny_zip.read_bytes())
    with zipfile.ZipFile(tiny_zip) as zf:
        info = zf.getinfo("cifar10-tiny/train/bird/0007.png")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF
    bad = tmp_path / "crc.zip"
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="cifar10-tiny/train/bird/0007.png in .*crc.zip cannot be read"):
        load_cifar10(bad, progress=False)
