"""CIFAR-10: sources, one uint8 tensor cache per source, a device-resident batch iterator.

Sources, in order of precedence: the ``source`` argument, the environment variable
``RESNET_NB_DATA`` (a folder or ``.zip`` in ``<split>/<class>/<file>`` layout, or the word
``torchvision``), else torchvision's ``CIFAR10`` download. Decoded pixels are cached once
(``RESNET_NB_CACHE``, default ``~/.cache/resnet_nb``) with checksums of the file and of the
pixels that are both recomputed on every load: a corrupt, truncated or altered cache is
rebuilt, never used, and the checksum a record carries is that of the pixels it trained on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .files import atomic_write, atomic_write_text

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
CACHE_FORMAT = 1
# The largest image file accepted: a 32x32 CIFAR image is ~1-3 kB as PNG/JPEG and 3 kB as BMP. Sizes a zip
# declares are checked before a byte is inflated, and dimensions from the image header before it is decoded,
# so memory stays bounded by this, not by what a (damaged or hostile) archive claims.
MAX_IMAGE_BYTES = 1 << 20
ENV_DATA = "RESNET_NB_DATA"
ENV_CACHE = "RESNET_NB_CACHE"

HOW_TO_GET_DATA = (
    "Either let torchvision download CIFAR-10 (needs internet; source='torchvision'), or point "
    f"{ENV_DATA} at a local copy: a folder or .zip laid out as <split>/<class>/<image>, "
    f"e.g. export {ENV_DATA}=$(realpath ../shared/data/cifar10-jpeg.zip) (absolute: the notebooks run from book/)"
)


class DataError(RuntimeError):
    """CIFAR-10 could not be found, read or validated; the message says how to fix it."""


@dataclass(frozen=True)
class Cifar10:
    """Both splits as uint8 NCHW tensors plus int64 labels, and where they came from."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    source: str  # human-readable description of the source
    variant: str  # "original" (torchvision batches), "jpeg" (re-encoded copy) or "image-folder"
    checksum: str  # sha256 of the decoded pixels and labels

    def info(self) -> dict[str, object]:
        return {
            "source": self.source,
            "variant": self.variant,
            "checksum": self.checksum,
            "train": len(self.train_y),
            "test": len(self.test_y),
            "train_class_counts": torch.bincount(self.train_y, minlength=10).tolist(),
            "test_class_counts": torch.bincount(self.test_y, minlength=10).tolist(),
        }


def cache_dir() -> Path:
    """The cache folder (``RESNET_NB_CACHE``, else the XDG cache); DataError when that path is a file."""
    if os.environ.get(ENV_CACHE):
        path, origin = Path(os.environ[ENV_CACHE]).expanduser(), ENV_CACHE
    else:
        path, origin = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "resnet_nb", "the cache"
    if path.exists() and not path.is_dir():
        raise DataError(f"{origin} {path} is a file, not a folder: point {ENV_CACHE} at a folder (it is created "
                        "if missing) or move the file away")
    return path


def resolve_source(source: str | os.PathLike[str] | None = None) -> str:
    """``"torchvision"`` or an absolute path to an existing folder/zip; a clear error otherwise."""
    chosen = source if source is not None else os.environ.get(ENV_DATA) or "torchvision"
    if str(chosen) in ("torchvision", "download"):
        return "torchvision"
    path = Path(chosen).expanduser()
    origin = "argument" if source is not None else ENV_DATA
    if not path.exists():
        raise DataError(f"CIFAR-10 source {str(path)!r} (from {origin}) does not exist. {HOW_TO_GET_DATA}")
    try:  # a permission problem is not "no images" or "not a zip"
        if path.is_dir():
            next(os.scandir(path), None)
        else:
            with open(path, "rb") as f:
                f.read(1)
    except OSError as exc:
        raise DataError(f"CIFAR-10 source {str(path)!r} (from {origin}) is unreadable ({exc.strerror or exc}); "
                        "fix its permissions or point at a readable copy") from None
    if path.is_file() and not zipfile.is_zipfile(path):
        raise DataError(f"CIFAR-10 source {str(path)!r} is a file but not a zip archive. {HOW_TO_GET_DATA}")
    return str(path.resolve())


def load_cifar10(source: str | os.PathLike[str] | None = None, *, cache: Path | None = None,
                 progress: bool = True) -> Cifar10:
    """Load CIFAR-10 from the cache, building the cache from the source when needed."""
    resolved = resolve_source(source)
    root = Path(cache) if cache is not None else cache_dir()
    stem = "cifar10-torchvision" if resolved == "torchvision" else f"cifar10-{_source_key(resolved)}"
    data_file, meta_file = root / f"{stem}.npz", root / f"{stem}.json"
    cached = _read_cache(data_file, meta_file)
    if cached is not None:
        return cached
    if resolved == "torchvision":
        arrays, source_desc, variant = _from_torchvision(root / "torchvision"), "torchvision CIFAR10 download", "original"
    else:
        arrays, variant = _from_image_files(Path(resolved), progress)
        source_desc = f"{Path(resolved).name} ({'zip' if Path(resolved).is_file() else 'folder'})"
    _write_cache(arrays, data_file, meta_file, source_desc, variant, None if resolved == "torchvision" else resolved)
    result = _read_cache(data_file, meta_file)
    if result is None:  # pragma: no cover - only if the disk fails under us
        raise DataError(f"the cache just written to {data_file} does not verify; check the disk")
    if resolved != "torchvision":
        _prune_stale_caches(root, resolved, keep=stem)
    return result


def _source_key(path: str) -> str:
    """Cache key of a local source.

    A zip: its content (sha256, a fraction of a second for CIFAR-10's 64 MB), so that the same file,
    copied, re-mounted or touched (a new mtime), finds its cache instead of decoding 60,000 images
    again into one more 185 MB cache. A folder: its path, size and mtime (hashing 60k files on every
    load would be slow).
    """
    p = Path(path)
    if p.is_file():
        return "zip-" + _file_sha256(p)[:16]
    st = p.stat()
    return hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _prune_stale_caches(root: Path, source_path: str, keep: str) -> None:
    """Remove the caches built earlier from the same source path under another key (the zip was
    replaced, the folder changed): nothing can load them any more, and each is 185 MB."""
    for meta_file in root.glob("cifar10-*.json"):
        if meta_file.stem == keep:
            continue
        try:
            if json.loads(meta_file.read_text()).get("source_path") != source_path:
                continue
        except (OSError, ValueError, RecursionError, AttributeError):
            continue  # not ours to judge: _read_cache warns about damaged caches when they are used
        for stale in (meta_file, meta_file.with_suffix(".npz")):
            stale.unlink(missing_ok=True)


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_cache(arrays: dict[str, np.ndarray], data_file: Path, meta_file: Path, source: str, variant: str,
                 source_path: str | None = None) -> None:
    data_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(data_file, lambda f: np.savez(f, **arrays))  # unique temp name: concurrent builds never collide
    meta = {"format": CACHE_FORMAT, "source": source, "variant": variant, "checksum": _checksum(arrays),
            "file_sha256": _file_sha256(data_file), "source_path": source_path}
    atomic_write_text(meta_file, json.dumps(meta, indent=1))  # written last: no meta = incomplete cache


def _read_cache(data_file: Path, meta_file: Path) -> Cifar10 | None:
    """The cached dataset, or None (with a warning) when it is missing, foreign or corrupt."""
    if not (data_file.exists() and meta_file.exists()):
        return None
    try:
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != CACHE_FORMAT or _file_sha256(data_file) != meta["file_sha256"]:
            raise ValueError("checksum mismatch")
        with np.load(data_file) as npz:
            arrays = {k: npz[k] for k in npz.files}
        _validate_arrays(arrays)
        if _checksum(arrays) != meta["checksum"]:  # recomputed from the pixels, never trusted as written
            raise ValueError("the pixels do not match the stored checksum")
    except Exception as exc:  # any defect means: rebuild
        warnings.warn(f"CIFAR-10 cache {data_file} is corrupt or incomplete ({exc}); rebuilding it", stacklevel=3)
        return None
    return Cifar10(
        train_x=torch.from_numpy(arrays["train_x"]), train_y=torch.from_numpy(arrays["train_y"]).long(),
        test_x=torch.from_numpy(arrays["test_x"]), test_y=torch.from_numpy(arrays["test_y"]).long(),
        source=meta["source"], variant=meta["variant"], checksum=meta["checksum"],
    )


def _validate_arrays(arrays: dict[str, np.ndarray]) -> None:
    for split in SPLITS:
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (3, 32, 32) or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"bad {split} arrays: {x.dtype} {x.shape}, {len(y)} labels")
        if y.min() < 0 or y.max() >= len(CLASSES):
            raise ValueError(f"{split} labels outside 0..9")


def _from_torchvision(root: Path) -> dict[str, np.ndarray]:
    import torchvision

    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        try:
            ds = torchvision.datasets.CIFAR10(str(root), train=split == "train", download=True)
        except Exception as exc:
            raise DataError(f"torchvision could not download CIFAR-10 into {root} ({exc}). {HOW_TO_GET_DATA}") from exc
        if tuple(ds.classes) != CLASSES:
            raise DataError(f"unexpected class list from torchvision: {ds.classes}")
        arrays[f"{split}_x"] = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))
        arrays[f"{split}_y"] = np.asarray(ds.targets, dtype=np.int64)
    return arrays


def _list_images(path: Path) -> dict[str, list[tuple[str, int]]]:
    """(member, label) per split, sorted by class then file name; the split folders may sit under a prefix."""
    if path.is_file():
        with zipfile.ZipFile(path) as zf:
            sizes = {i.filename: i.file_size for i in zf.infolist() if not i.filename.endswith("/")}
    else:
        sizes = _folder_files(path)
    names = list(sizes)
    found: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    folders: dict[tuple[str, str], set[str]] = {}
    for name in names:
        parts = PurePosixPath(name).parts
        if len(parts) < 3 or parts[-3] not in SPLITS or PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if parts[-2] not in CLASSES:
            raise DataError(f"unknown class folder {parts[-2]!r} in {path} (expected one of {', '.join(CLASSES)})")
        if sizes[name] > MAX_IMAGE_BYTES:  # before decoding anything: the size a zip declares is what it inflates to
            raise DataError(f"{name} in {path} declares {sizes[name]:,} bytes, more than any 32x32 image needs "
                            f"({MAX_IMAGE_BYTES:,}); replace the file or the archive")
        found[parts[-3]].append((name, CLASSES.index(parts[-2])))
        folders.setdefault((parts[-3], parts[-2]), set()).add(str(PurePosixPath(*parts[:-1])))
    for split in SPLITS:
        if not found[split]:
            raise DataError(f"no images under '{split}/<class>/' in {path}. {HOW_TO_GET_DATA}")
        missing = [c for c in CLASSES if (split, c) not in folders]
        if missing:
            raise DataError(f"{path} has no '{split}' images of class {', '.join(missing)}: an incomplete copy of "
                            f"CIFAR-10. {HOW_TO_GET_DATA}")
        copies = {c: sorted(folders[(split, c)]) for c in CLASSES if len(folders[(split, c)]) > 1}
        if copies:
            c, where = next(iter(copies.items()))
            raise DataError(f"{path} holds {len(where)} copies of the '{split}' class {c!r} ({', '.join(where)}): "
                            "keep exactly one copy of CIFAR-10 in it")
        found[split].sort(key=lambda item: (item[1], item[0]))
    return found


def _folder_files(path: Path) -> dict[str, int]:
    """Size of every file under ``path`` by relative POSIX name; an unreadable folder in it is named (not
    skipped, which would read as missing images)."""
    def unreadable(exc: OSError) -> None:
        raise DataError(f"{exc.filename} in CIFAR-10 source {path} is unreadable ({exc.strerror or exc}); fix its "
                        "permissions or point at a readable copy")

    sizes = {}
    for folder, _, files in os.walk(path, onerror=unreadable):
        for name in files:
            file = Path(folder) / name
            if file.is_file():
                sizes[file.relative_to(path).as_posix()] = file.stat().st_size
    return sizes


def _decode_chunk(args: tuple[str, list[str]]) -> np.ndarray:
    from PIL import Image

    source, members = args
    out = np.empty((len(members), 3, 32, 32), dtype=np.uint8)
    zf = zipfile.ZipFile(source) if zipfile.is_zipfile(source) else None
    try:
        for i, member in enumerate(members):
            try:
                with zf.open(member) if zf else open(Path(source) / member, "rb") as f:
                    raw = f.read(MAX_IMAGE_BYTES + 1)  # bounded, whatever the file has become since it was listed
                if len(raw) > MAX_IMAGE_BYTES:
                    raise ValueError(f"more than {MAX_IMAGE_BYTES:,} bytes")
                img = Image.open(io.BytesIO(raw))  # reads the header only
                if img.size != (32, 32):  # before decoding: a header may claim any size
                    raise DataError(f"{member} in {source} is {img.size[0]}x{img.size[1]}, CIFAR-10 images are 32x32")
                img = img.convert("RGB")
            except DataError:
                raise
            except Exception as exc:  # a bad CRC, a truncated or non-image file: name the member
                raise DataError(f"{member} in {source} cannot be read as an image ({type(exc).__name__}: {exc}); "
                                "replace the file or the archive") from None
            out[i] = np.asarray(img).transpose(2, 0, 1)
    finally:
        if zf:
            zf.close()
    return out


def _from_image_files(path: Path, progress: bool) -> tuple[dict[str, np.ndarray], str]:
    from tqdm.auto import tqdm

    listing = _list_images(path)
    arrays: dict[str, np.ndarray] = {}
    workers = max(1, min(16, (os.cpu_count() or 1)))
    for split in SPLITS:
        members = [m for m, _ in listing[split]]
        chunks = [(str(path), members[i : i + 2000]) for i in range(0, len(members), 2000)]
        bar = tqdm(total=len(members), desc=f"decoding {split}", unit="img", disable=not progress)
        parts = []
        if workers > 1 and len(chunks) > 1:
            with ProcessPoolExecutor(workers) as pool:
                for part in pool.map(_decode_chunk, chunks):
                    parts.append(part)
                    bar.update(len(part))
        else:
            for chunk in chunks:
                parts.append(_decode_chunk(chunk))
                bar.update(len(parts[-1]))
        bar.close()
        arrays[f"{split}_x"] = np.concatenate(parts)
        arrays[f"{split}_y"] = np.asarray([label for _, label in listing[split]], dtype=np.int64)
    suffixes = {PurePosixPath(m).suffix.lower() for s in SPLITS for m, _ in listing[s]}
    variant = "jpeg" if suffixes <= {".jpg", ".jpeg"} else "image-folder"
    return arrays, variant


def stratified_subset(labels: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """Indices of ``size`` samples with classes as balanced as possible (fixed seed: same subset for every run)."""
    n_classes = int(labels.max()) + 1
    if not 0 < size <= len(labels):
        raise ValueError(f"train_size must be between 1 and {len(labels)}, got {size}")
    g = torch.Generator().manual_seed(seed)
    per_class = [size // n_classes + (1 if c < size % n_classes else 0) for c in range(n_classes)]
    picked = []
    for c, k in enumerate(per_class):
        idx = torch.nonzero(labels == c).flatten()
        if k > len(idx):
            raise ValueError(f"train_size {size} needs {k} images of class {c}, only {len(idx)} exist")
        picked.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    return torch.sort(torch.cat(picked)).values


def channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, on the 0..1 scale."""
    xf = x.double().div_(255)
    return xf.mean(dim=(0, 2, 3)).tolist(), xf.std(dim=(0, 2, 3)).tolist()


class DeviceLoader:
    """Batches from uint8 tensors kept on ``device``; normalise and augment there, per sample.

    Shuffling and augmentation draw from CPU generators seeded by ``(seed, epoch)``, so an
    epoch's batches do not depend on what ran before it (this is what makes resume exact),
    and are the same on every device.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, device: torch.device | str = "cpu",
                 mean: list[float], std: list[float], shuffle: bool = False, augment: bool = False,
                 seed: int = 0, channels_last: bool = False, drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size, self.shuffle, self.augment, self.seed = batch_size, shuffle, augment, seed
        self.drop_last, self.channels_last = drop_last, channels_last
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1) * 255
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_generator(self) -> torch.Generator:
        """The CPU generator of this epoch's order and augmentation (a function of seed and epoch only)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)

    def epoch_order(self, g: torch.Generator) -> torch.Tensor:
        """This epoch's sample order (on the CPU); the first draw from ``g``."""
        n = len(self.y)
        return torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self.epoch_generator()
        order = self.epoch_order(g).to(self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            xb = (self.x[idx].float() - self.mean) / self.std
            if self.augment:
                xb = random_crop_flip(xb, g)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, self.y[idx]


def random_crop_flip(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per-sample pad-``pad`` random crop and horizontal flip of a normalised NCHW batch.

    Padding is zero after normalisation, i.e. the mean pixel, as in the paper (mean
    subtraction, then padding). One gather, no per-image Python work.
    """
    offsets, flips = crop_flip_draws(len(x), g, pad)
    return crop_flip(x, offsets.to(x.device), flips.to(x.device), pad)


def crop_flip_draws(b: int, g: torch.Generator, pad: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The random numbers of :func:`random_crop_flip` for ``b`` images: (2, b) crop offsets and b flips."""
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=g)
    flips = torch.rand(b, generator=g) < 0.5
    return offsets, flips


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Apply drawn crops and flips (on ``x``'s device) to a normalised NCHW batch."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = offsets[0].view(b, 1) + torch.arange(h, device=x.device).view(1, h)  # (b, h)
    cols = offsets[1].view(b, 1) + torch.arange(w, device=x.device).view(1, w)  # (b, w)
    cols = torch.where(flips.view(b, 1), cols.flip(1), cols)
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    out = padded.permute(0, 2, 3, 1)[bi, rows.view(b, h, 1), cols.view(b, 1, w)]  # (b, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()
