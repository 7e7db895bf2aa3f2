"""Result records: their schema, writing, reading and validation, and loading them for the book.

A record is one JSON file per finished run, ``results/<grid>/<run_id>.json``, written
atomically and never edited: config, per-epoch history and provenance, and ``content_sha256``,
a hash of the rest that is recomputed on every read (optional: older format-1 records lack it). A run
that has not finished has no record, only a checkpoint (outside ``results/``) that the runner
(:mod:`resnet_nb.grids`) resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .data import Cifar10
from .models import ModelSpec
from .provenance import canonical_device_name
from .train import get_recipe

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
    iterations: int | None = None  # None: the recipe's own; else a shortened (or longer) run of it

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_key(self.model)

    @property
    def run_id(self) -> str:
        extra = (f"_e{self.epochs}" if self.epochs is not None else "") + (
            f"_it{self.iterations}" if self.iterations is not None else "") + (
            f"_n{self.train_size}" if self.train_size is not None else "") + (
            f"_{self.precision}" if self.precision is not None else "")
        return f"{self.model}_{self.recipe}{extra}_s{self.seed}"  # the seed last: config_id strips it

    @property
    def config_id(self) -> str:
        """The run without its seed: what seeds are averaged over."""
        return self.run_id.rsplit("_s", 1)[0]

    def recipe_obj(self):  # noqa: ANN201 - Recipe
        return get_recipe(self.recipe, epochs=self.epochs, train_size=self.train_size, iterations=self.iterations)


def recipe_fraction(run: RunConfig) -> float | None:
    """The share of its recipe's iterations a run trains (1/8 for the shortened paper grid); None when the
    run keeps its recipe's length."""
    full = get_recipe(run.recipe).iterations
    return None if run.iterations is None or not full else run.iterations / full


def record_path(run: RunConfig, results: Path = RESULTS_DIR) -> Path:
    return Path(results) / run.grid / f"{run.run_id}.json"



def content_sha256(record: dict[str, Any]) -> str:
    """sha256 of a record's canonical JSON, without its own ``content_sha256`` field."""
    body = {k: v for k, v in record.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def make_record(run: RunConfig, history: list[dict[str, float]], setup: dict[str, Any], data: Cifar10,
                env: dict[str, Any], started: str, wall_seconds: float) -> dict[str, Any]:
    record = {
        "format": RECORD_FORMAT,
        "run_id": run.run_id,
        # the schedule as trained (steps per epoch, total iterations): figures read the learning-rate
        # drops from here, not from today's recipe table
        "config": dataclasses.asdict(run) | {"recipe_params": dataclasses.asdict(run.recipe_obj()),
                                             "planned_epochs": setup["epochs"],
                                             "steps_per_epoch": setup.get("steps_per_epoch"),
                                             "total_iterations": setup.get("total_iterations"),
                                             "recipe_fraction": recipe_fraction(run)},
        "history": history,
        "provenance": env | {
            "precision": setup["precision"], "channels_last": setup["channels_last"], "compile": setup["compile"],
            "cuda_graph": setup["cuda_graph"],
            "dataset_source": data.source, "dataset_variant": data.variant, "dataset_checksum": data.checksum,
            "train_size": setup["train_size"], "started": started,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": wall_seconds,
        } | ({"segments": setup["segments"]} if setup.get("segments") else {}),
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
                        cfg.get("train_size"), cfg.get("precision"), cfg.get("iterations"))
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


def trained_on(provenance: dict[str, Any]) -> tuple[str, str]:
    """(device type, device name) a record was trained on.

    The finishing process's device, unless its logged ``segments`` (a run resumed elsewhere) name more
    than one: then all of them in order, ``cpu+cuda`` and ``A → B``, so that no per-device table,
    estimate or subset counts the run as one device's. An ``unrecorded`` segment (a checkpoint from
    before segments were logged) names no device and is not counted. Names are canonical
    (:func:`provenance.canonical_device_name`).
    """
    logged = [s for s in provenance.get("segments") or [] if "device_name" in s]
    types = list(dict.fromkeys(str(s["device"]).split(":")[0] for s in logged)) \
        or [str(provenance.get("device", "unknown")).split(":")[0]]  # cpu / cuda / mps
    names = list(dict.fromkeys(canonical_device_name(s["device_name"]) for s in logged)) \
        or [canonical_device_name(provenance["device_name"])]
    return "+".join(types), " → ".join(names)


def schedule(record: dict[str, Any]) -> tuple[int, int, tuple[int, ...]]:
    """(steps per epoch, total iterations, iterations of the learning-rate drops) as the record trained.

    Records since the shortened paper grid store the first two; older ones are derived from their
    training-set size and batch size (whole epochs). The drops come from the record's own recipe, so a
    figure stays true when today's recipe table changes.
    """
    cfg, params = record["config"], record["config"]["recipe_params"]
    steps = cfg.get("steps_per_epoch") or math.ceil(
        (record["provenance"].get("train_size") or params.get("train_size") or 50_000) / params["batch_size"])
    total = cfg.get("total_iterations") or steps * len(record["history"])
    return int(steps), int(total), tuple(round(f * total) for f in params.get("lr_milestones") or ())


def load_results(grid: str | None = None, results: Path = RESULTS_DIR):  # noqa: ANN201 - pandas.DataFrame
    """All records (of one grid, or all) as a long DataFrame: one row per run and epoch.

    ``iteration`` is the optimisation step at the end of the epoch (the last epoch of a run given in
    iterations may be partial); ``lr_drops`` the iterations where the run's learning rate fell.
    """
    import pandas as pd

    folder = Path(results) / grid if grid else Path(results)
    rows = []
    for rec in iter_records(folder):
        cfg, prov = rec["config"], rec["provenance"]
        steps, total, drops = schedule(rec)
        spec = ModelSpec.from_key(cfg["model"])
        device, device_name = trained_on(prov)
        base = {"grid": cfg["grid"], "run_id": rec["run_id"], "config_id": rec["run_id"].rsplit("_s", 1)[0],
                "model": cfg["model"], "arch": spec.arch, "depth": spec.depth, "shortcut": spec.shortcut,
                "stem": spec.stem, "recipe": cfg["recipe"], "seed": cfg["seed"],
                "device": device, "device_name": device_name, "precision": prov["precision"],
                "dataset_variant": prov["dataset_variant"], "wall_seconds": prov["wall_seconds"],
                "recipe_desc": describe_recipe(cfg["recipe_params"]), "total_iterations": total, "lr_drops": drops}
        for row in rec["history"]:
            rows.append(base | {k: row[k] for k in HISTORY_KEYS} | {"iteration": min(row["epoch"] * steps, total)})
    columns = ["grid", "run_id", "config_id", "model", "arch", "depth", "shortcut", "stem", "recipe", "seed",
               "device", "device_name", "precision", "dataset_variant", "wall_seconds", "recipe_desc",
               "total_iterations", "lr_drops", *HISTORY_KEYS, "iteration"]
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
