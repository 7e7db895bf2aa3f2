"""Named grids of runs, a resumable and shardable runner, result records, loading for the book.

A record is one JSON file per finished run, ``results/<grid>/<run_id>.json``, written
atomically and never edited: config, per-epoch history and provenance, and ``content_sha256``,
a hash of the rest that is recomputed on every read (optional: older format-1 records lack it). A run
that has not finished has no record, only a checkpoint (outside ``results/``) that the runner
resumes. While a run trains, its record path and its checkpoint are locked (``files.claim``):
a second process refuses them or, in a grid, takes the next run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import statistics
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .data import Cifar10, cache_dir
from .files import atomic_write_text, check_writable, claimed
from .models import ModelSpec, build_model, count_macs
from .provenance import environment
from .train import CudaGraph, Precision, fit, get_recipe, read_checkpoint_history, resolve_device

RECORD_FORMAT = 1
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


class RecordError(ValueError):
    """A result record is corrupt, incomplete or belongs to another run."""


@dataclass(frozen=True)
class RunConfig:
    grid: str
    model: str  # ModelSpec.key
    recipe: str
    seed: int
    epochs: int | None = None  # None: the recipe's own
    train_size: int | None = None  # None: all training images
    precision: str | None = None  # None: the device's default (recorded in provenance); else fixed

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_key(self.model)

    @property
    def run_id(self) -> str:
        extra = (f"_e{self.epochs}" if self.epochs is not None else "") + (
            f"_n{self.train_size}" if self.train_size is not None else "") + (
            f"_{self.precision}" if self.precision is not None else "")
        return f"{self.model}_{self.recipe}{extra}_s{self.seed}"  # the seed last: config_id strips it

    @property
    def config_id(self) -> str:
        """The run without its seed: what seeds are averaged over."""
        return self.run_id.rsplit("_s", 1)[0]

    def recipe_obj(self):  # noqa: ANN201 - Recipe
        return get_recipe(self.recipe, epochs=self.epochs, train_size=self.train_size)


# The report grid: depth priority 20 and 56 first (the two ends of the comparison).
REPORT_DEPTHS = (20, 56, 32, 44)
PAPER_DEPTHS = (20, 32, 44, 56, 110)


def grid_runs(name: str, seeds: Iterable[int] | None = None) -> list[RunConfig]:
    """Every run of a named grid, in priority order: seed-major, then depth priority, then model."""
    if name == "report":
        models = [spec.key for d in REPORT_DEPTHS
                  for spec in (ModelSpec("resnet", d, "A"), ModelSpec("plain", d), ModelSpec("resnet", d, "B"))]
        models += [ModelSpec("torchvision", 18, stem="imagenet").key, ModelSpec("torchvision", 18, stem="cifar").key]
        recipe, default_seeds = "report", range(5)
    elif name == "paper":
        return paper_runs(seeds)
    elif name == "precision":
        # Does mixed precision cost accuracy? ResNet-20, report recipe, 1 epoch, fp32 vs bf16.
        seeds = list(range(3) if seeds is None else seeds)
        return [RunConfig(name, "resnet20-A", "report", s, epochs=1, precision=p)
                for s in seeds for p in ("fp32", "bf16")]
    elif name == "precision10":
        # Can CPU-bf16 and GPU-fp32 records share one mean? The report recipe's full 10 epochs, at the
        # depth where the records disagree most (plain-56) and its ResNet, fp32 vs bf16, 3 seeds each.
        seeds = list(range(3) if seeds is None else seeds)
        return [RunConfig(name, m, "report", s, precision=p)
                for s in seeds for m in ("plain56", "resnet56-A") for p in ("fp32", "bf16")]
    else:
        raise ValueError(f"unknown grid {name!r}; choose one of: {', '.join(GRIDS)}")
    seeds = list(default_seeds if seeds is None else seeds)
    return [RunConfig(name, m, recipe, s) for s in seeds for m in models]


GRIDS = ("report", "paper", "precision", "precision10")

# The paper grid (Table 6, Figure 6), in the order a GPU lease takes it: the pairs of the
# degradation figure at both ends of the depth range first, then ResNet-110, then the rest.
PAPER_PRIORITY = (ModelSpec("resnet", 20, "A"), ModelSpec("plain", 20), ModelSpec("resnet", 56, "A"),
                  ModelSpec("plain", 56), ModelSpec("resnet", 110, "A"), ModelSpec("resnet", 32, "A"),
                  ModelSpec("plain", 32), ModelSpec("resnet", 44, "A"), ModelSpec("plain", 44))
PAPER_SEEDS = 3
PAPER_SEEDS_110 = 5  # the paper reports ResNet-110's best and mean ± std of 5 runs


def paper_runs(seeds: Iterable[int] | None = None) -> list[RunConfig]:
    """The paper grid, config by config in :data:`PAPER_PRIORITY` (so a config's seeds can train as one
    seed-parallel group); 3 seeds each, 5 for ResNet-110, unless ``seeds`` is given."""
    chosen = None if seeds is None else list(seeds)
    runs = []
    for spec in PAPER_PRIORITY:
        default = range(PAPER_SEEDS_110 if spec.depth == 110 else PAPER_SEEDS)
        runs += [RunConfig("paper", spec.key, "paper", s) for s in (default if chosen is None else chosen)]
    return runs


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/k"`` with 1 <= i <= k."""
    try:
        i, k = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/k (e.g. 2/4), got {text!r}") from None
    if not 1 <= i <= k:
        raise ValueError(f"shard i/k needs 1 <= i <= k, got {text!r}")
    return i, k


def shard(runs: list[RunConfig], i: int, k: int) -> list[RunConfig]:
    """Round-robin over the priority order: shards are disjoint, cover the grid, and each gets a mix."""
    return [r for n, r in enumerate(runs) if n % k == i - 1]


def record_path(run: RunConfig, results: Path = RESULTS_DIR) -> Path:
    return Path(results) / run.grid / f"{run.run_id}.json"


def checkpoint_path(run: RunConfig, checkpoints: Path | None = None) -> Path:
    root = Path(checkpoints) if checkpoints is not None else cache_dir() / "checkpoints"
    return root / run.grid / f"{run.run_id}.pt"


def content_sha256(record: dict[str, Any]) -> str:
    """sha256 of a record's canonical JSON, without its own ``content_sha256`` field."""
    body = {k: v for k, v in record.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def make_record(run: RunConfig, history: list[dict[str, float]], setup: dict[str, Any], data: Cifar10,
                env: dict[str, Any], started: str, wall_seconds: float) -> dict[str, Any]:
    record = {
        "format": RECORD_FORMAT,
        "run_id": run.run_id,
        "config": dataclasses.asdict(run) | {"recipe_params": dataclasses.asdict(run.recipe_obj()),
                                             "planned_epochs": setup["epochs"]},
        "history": history,
        "provenance": env | {
            "precision": setup["precision"], "channels_last": setup["channels_last"], "compile": setup["compile"],
            "cuda_graph": setup["cuda_graph"],
            "dataset_source": data.source, "dataset_variant": data.variant, "dataset_checksum": data.checksum,
            "train_size": setup["train_size"], "started": started,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": wall_seconds,
        },
    }
    record = json.loads(json.dumps(record))  # as it will be read back: tuples become lists
    return record | {"content_sha256": content_sha256(record)}


def validate_record(record: Any, expected: RunConfig | None = None, where: str = "record") -> dict[str, Any]:
    """The record if it is complete and (when given) belongs to ``expected``; else RecordError."""
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise RecordError(f"{where}: not a resnet_nb result record (format {RECORD_FORMAT})")
    for key in ("run_id", "config", "history", "provenance"):
        if key not in record:
            raise RecordError(f"{where}: missing field {key!r}")
    if "content_sha256" in record and record["content_sha256"] != content_sha256(record):
        raise RecordError(f"{where}: content does not match its content_sha256 (edited or damaged after writing)")
    try:
        cfg = record["config"]
        run = RunConfig(cfg["grid"], cfg["model"], cfg["recipe"], int(cfg["seed"]), cfg.get("epochs"),
                        cfg.get("train_size"), cfg.get("precision"))
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{where}: bad config ({exc})") from None
    if run.run_id != record["run_id"]:
        raise RecordError(f"{where}: run_id {record['run_id']!r} does not match its config ({run.run_id!r})")
    if expected is not None and run != expected:
        raise RecordError(f"{where}: holds run {run.run_id!r} of grid {run.grid!r}, expected {expected.run_id!r} "
                          f"of grid {expected.grid!r}")
    history = record["history"]
    try:
        # planned_epochs (newer records) also covers recipes given in iterations, like the paper's
        recipe_epochs = record["config"]["recipe_params"]["epochs"]
        epochs = record["config"].get("planned_epochs") or recipe_epochs or None
    except (KeyError, TypeError) as exc:
        raise RecordError(f"{where}: bad config (recipe_params: {exc!r})") from None
    if not isinstance(history, list) or not history or any(
            not isinstance(row, dict) or any(k not in row for k in HISTORY_KEYS) for row in history):
        raise RecordError(f"{where}: history is empty or lacks {HISTORY_KEYS}")
    if [row["epoch"] for row in history] != list(range(1, len(history) + 1)):
        raise RecordError(f"{where}: history epochs are not 1..{len(history)}")
    bad = [f"{k}={v} in epoch {row['epoch']}" for row in history for k, v in row.items()
           if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)]
    if bad:
        raise RecordError(f"{where}: non-finite or non-numeric metrics ({', '.join(bad[:3])}): not a valid result")
    if epochs is not None and len(history) != epochs:
        raise RecordError(f"{where}: {len(history)} epochs recorded, the recipe asks for {epochs}: not a finished run")
    return record


def read_record(path: Path, expected: RunConfig | None = None) -> dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: unreadable ({exc})") from None
    return validate_record(record, expected, where=str(path))


def run_state(run: RunConfig, results: Path = RESULTS_DIR, checkpoints: Path | None = None) -> str:
    """``done`` (a valid record), ``partial`` (a checkpoint) or ``todo``; an invalid record raises RecordError."""
    path = record_path(run, results)
    if path.exists():
        read_record(path, run)
        return "done"
    return "partial" if checkpoint_path(run, checkpoints).exists() else "todo"


def run_one(run: RunConfig, data: Cifar10, *, results: Path = RESULTS_DIR, checkpoints: Path | None = None,
            device: str = "auto", precision: Precision = "auto", compile: bool = False,
            cuda_graph: CudaGraph = "auto", channels_last: bool = True, progress: bool = True,
            out: Path | None = None) -> dict[str, Any]:
    """Train one run (resuming its checkpoint) and write its record (to ``out`` or the grid's folder).

    The record path and the checkpoint are claimed first (``files.LockedError`` when another live
    process holds either); a run that diverges raises ``train.DivergedError`` and writes no record.
    """
    out = Path(out) if out is not None else record_path(run, results)
    if out.exists():
        return read_record(out, run)  # raises on a foreign/corrupt record instead of overwriting it
    ckpt = checkpoint_path(run, checkpoints)
    dev = resolve_device(device)
    check_writable(out.parent, "results")
    check_writable(ckpt.parent, "checkpoint")
    with claimed(out) as lock, claimed(ckpt) as ckpt_lock:
        if out.exists():  # finished by another process between the check above and the claim
            return read_record(out, run)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        result = fit(run.spec, run.recipe_obj(), data, seed=run.seed, device=dev,
                     precision=run.precision or precision, compile=compile, cuda_graph=cuda_graph,
                     channels_last=channels_last, checkpoint=ckpt, progress=progress,
                     on_epoch=lambda _row: (lock.refresh(), ckpt_lock.refresh()))  # heartbeat: the locks stay fresh
        # wall time of the whole run = sum of its epochs' seconds (also those of an earlier, resumed session)
        wall = sum(r["seconds"] for r in result.history)
        record = make_record(run, result.history, result.setup, data, environment(dev), started, wall)
        validate_record(record, run)
        atomic_write_text(out, json.dumps(record, indent=1, allow_nan=False))
        ckpt.unlink(missing_ok=True)
    return record


def run_states(runs: list[RunConfig], results: Path = RESULTS_DIR,
               checkpoints: Path | None = None) -> dict[RunConfig, str]:
    """:func:`run_state` of each run; a run whose record is invalid is ``invalid``, with a warning naming it."""
    states = {}
    for r in runs:
        try:
            states[r] = run_state(r, results, checkpoints)
        except RecordError as exc:
            warnings.warn(f"{exc}; skipped: delete or restore that file to run {r.run_id} again", stacklevel=2)
            states[r] = "invalid"
    return states


def pending(runs: list[RunConfig], results: Path = RESULTS_DIR, checkpoints: Path | None = None) -> list[RunConfig]:
    """Runs without a record; partial runs first (finish what was started), then priority order.

    A run whose record is invalid is not pending (it would be refused, never overwritten): it is
    reported by path and left out.
    """
    states = run_states(runs, results, checkpoints)
    todo = [r for r in runs if states[r] not in ("done", "invalid")]
    return sorted(todo, key=lambda r: states[r] != "partial")


def estimate_seconds(run: RunConfig, device_name: str, results: Path = RESULTS_DIR,
                     checkpoints: Path | None = None) -> tuple[float, bool] | None:
    """Seconds left for ``run`` on ``device_name``, and whether the figure is scaled from other models.

    Preferred: epochs left x mean epoch time of this run's checkpoint and of finished runs of the same
    config on that device. Else, scaled: the median multiply-accumulate throughput (train images x
    MACs per image / epoch seconds) of any finished record on the same device, whatever the thread
    count, applied to this model's MACs. None when nothing has run on the device yet.
    """
    recipe = run.recipe_obj()
    train_images = recipe.train_size or 50_000
    epochs = recipe.num_epochs(-(-train_images // recipe.batch_size))
    ckpt = checkpoint_path(run, checkpoints)
    done = read_checkpoint_history(ckpt) if ckpt.exists() else []
    per_epoch = [r["seconds"] for r in done]
    params = json.loads(json.dumps(dataclasses.asdict(recipe)))  # as stored: tuples become lists
    for rec in iter_records(Path(results) / run.grid):
        if rec["config"]["model"] == run.model and rec["config"]["recipe_params"] == params \
                and rec["provenance"]["device_name"] == device_name:
            per_epoch += [r["seconds"] for r in rec["history"]]
    epochs_left = max(0, epochs - len(done))
    if per_epoch:
        return epochs_left * statistics.fmean(per_epoch), False
    rates = [rec["provenance"]["train_size"] * _macs(rec["config"]["model"])
             / statistics.fmean(r["seconds"] for r in rec["history"])
             for rec in iter_records(results) if _same_device(rec["provenance"]["device_name"], device_name)]
    if not rates:
        return None
    return epochs_left * train_images * _macs(run.model) / statistics.median(rates), True


def _same_device(a: str, b: str) -> bool:
    """Device names equal but for the CPU thread count that ``provenance.device_name`` appends."""
    strip = re.compile(r" \(\d+ threads?\)$")
    return strip.sub("", a) == strip.sub("", b)


@functools.lru_cache(maxsize=None)
def _macs(model_key: str) -> int:
    return count_macs(build_model(ModelSpec.from_key(model_key)))


# folders under results/ that hold other measurements than training runs (their own record kinds)
NOT_RUN_FOLDERS = ("akamaster",)


def iter_records(folder: Path, strict: bool = False) -> Iterator[dict[str, Any]]:
    """Valid run records under ``folder`` (recursively, skipping :data:`NOT_RUN_FOLDERS`).

    An invalid record is reported by path in a warning and skipped (one bad file does not hide
    every other result); with ``strict`` it raises RecordError.
    """
    for path in sorted(Path(folder).rglob("*.json")):
        if set(path.relative_to(folder).parts[:-1]) & set(NOT_RUN_FOLDERS):
            continue
        try:
            yield read_record(path)
        except RecordError as exc:
            if strict:
                raise
            warnings.warn(f"{exc}; skipped", stacklevel=2)


def describe_recipe(params: dict[str, Any]) -> str:
    """A recipe as its record stored it, for captions: ``Adam lr 0.001, batch 32, no augmentation``.

    Built from the record's own ``recipe_params``, so a caption stays true for old records
    when today's recipes change.
    """
    if params.get("optimizer") == "adam":
        optim = f"Adam lr {params['lr']:g}"
    else:
        optim = f"SGD lr {params['lr']:g}, momentum {params.get('momentum', 0):g}"
    if params.get("weight_decay"):
        optim += f", weight decay {params['weight_decay']:g}"
    aug = "pad-4 crop + flip" if params.get("augment") else "no augmentation"
    return f"{optim}, batch {params['batch_size']}, {aug}"


def load_results(grid: str | None = None, results: Path = RESULTS_DIR):  # noqa: ANN201 - pandas.DataFrame
    """All records (of one grid, or all) as a long DataFrame: one row per run and epoch."""
    import pandas as pd

    folder = Path(results) / grid if grid else Path(results)
    rows = []
    for rec in iter_records(folder):
        cfg, prov = rec["config"], rec["provenance"]
        spec = ModelSpec.from_key(cfg["model"])
        base = {"grid": cfg["grid"], "run_id": rec["run_id"], "config_id": rec["run_id"].rsplit("_s", 1)[0],
                "model": cfg["model"], "arch": spec.arch, "depth": spec.depth, "shortcut": spec.shortcut,
                "stem": spec.stem, "recipe": cfg["recipe"], "seed": cfg["seed"],
                "device_name": prov["device_name"], "precision": prov["precision"],
                "dataset_variant": prov["dataset_variant"], "wall_seconds": prov["wall_seconds"],
                "recipe_desc": describe_recipe(cfg["recipe_params"])}
        for row in rec["history"]:
            rows.append(base | {k: row[k] for k in HISTORY_KEYS})
    columns = ["grid", "run_id", "config_id", "model", "arch", "depth", "shortcut", "stem", "recipe", "seed",
               "device_name", "precision", "dataset_variant", "wall_seconds", "recipe_desc", *HISTORY_KEYS]
    return pd.DataFrame(rows, columns=columns)


def summarize(df, metrics: Iterable[str] = ("test_acc", "test_loss", "train_acc", "train_loss"),  # noqa: ANN001,ANN201
              epoch: int | None = None):
    """Mean, sample std (ddof=1; NaN for one seed) and n over seeds, per config, at ``epoch`` (default: last)."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame()
    at = df[df["epoch"] == (epoch if epoch is not None else df.groupby("run_id")["epoch"].transform("max"))]
    keys = ["config_id", "model", "arch", "depth", "shortcut", "stem", "recipe"]
    grouped = at.groupby(keys, dropna=False)
    out = grouped[list(metrics)].agg(["mean", "std", "count"])
    out.columns = [f"{m}_{stat if stat != 'count' else 'n'}" for m, stat in out.columns]
    return out.reset_index()
