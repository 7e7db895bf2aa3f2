"""Result records: their schema, writing, reading and validation, and loading them for the book.

A record is one JSON file per finished run, ``results/<grid>/<run_id>.json``, written
atomically and never edited: config, per-epoch history and provenance, and ``content_sha256``,
a hash of the rest that is recomputed on every read. A run that has not finished has no record, only
a checkpoint (outside ``results/``) that the runner (:mod:`resnet_nb.grids`) resumes.

What a record must be to count (anything else is skipped with one warning naming the file, and
never stops the other records from loading): at most :data:`MAX_RECORD_BYTES` of UTF-8 JSON; its
``content_sha256`` present and matching (records written before the field existed count only when
their content is one of the :data:`LEGACY_RECORDS` pinned here); every metric finite and in its
range; named ``<run_id>.json`` in the folder of its grid; and its run (:class:`RunConfig`) once per
load: a copy or a misnamed file is refused with both paths, never averaged in.

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .vocab import (MAX_SEED, ModelSpec, RunConfig, _is_int, canonical_device_name,  # noqa: F401 - re-exported
                    recipe_fraction)

if TYPE_CHECKING:
    from .data import Cifar10

RECORD_FORMAT = 1
MAX_RECORD_BYTES = 8 << 20  # a 164-epoch paper run's record is ~60 kB; a larger file is not a record
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


class RecordError(ValueError):
    """A result record is corrupt, incomplete or belongs to another run."""



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
    """The record if it is complete, sealed, in range and (when given) belongs to ``expected``; else RecordError."""
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise RecordError(f"{where}: not a resnet_nb result record (format {RECORD_FORMAT})")
    for key in ("run_id", "config", "history", "provenance"):
        if key not in record:
            raise RecordError(f"{where}: missing field {key!r}")
    _check_seal(record, where)
    run = record_run(record, where)
    if expected is not None and run != expected:
        raise RecordError(f"{where}: holds run {run.run_id!r} of grid {run.grid!r}, expected {expected.run_id!r} "
                          f"of grid {expected.grid!r}")
    history = record["history"]
    counts = {k: record["config"].get(k) for k in ("planned_epochs", "steps_per_epoch", "total_iterations")} | {
        "provenance.train_size": record["provenance"].get("train_size") if isinstance(record["provenance"], dict) else None}
    wrong = [f"{k}={v!r}" for k, v in counts.items() if v is not None and (not _is_int(v) or v < 1)]
    if wrong:  # figures derive the schedule from these
        raise RecordError(f"{where}: bad config ({', '.join(wrong)}: whole numbers >= 1 expected)")
    try:
        # planned_epochs (newer records) also covers recipes given in iterations, like the paper's
        params = record["config"]["recipe_params"]
        epochs = record["config"].get("planned_epochs") or params["epochs"] or None
        describe_recipe(params)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"{where}: bad config (recipe_params: {exc!r})") from None
    if not isinstance(history, list) or not history or any(
            not isinstance(row, dict) or any(k not in row for k in HISTORY_KEYS) for row in history):
        raise RecordError(f"{where}: history is empty or lacks {HISTORY_KEYS}")
    if [row["epoch"] for row in history] != list(range(1, len(history) + 1)) or not all(
            _is_int(row["epoch"]) for row in history):
        raise RecordError(f"{where}: history epochs are not 1..{len(history)}")
    bad = [f"{k}={v} in epoch {row['epoch']}" for row in history for k, v in row.items()
           if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)]
    if bad:
        raise RecordError(f"{where}: non-finite or non-numeric metrics ({', '.join(bad[:3])}): not a valid result")
    out = [f"{k}={row[k]} in epoch {row['epoch']}" for row in history for k, (low, high) in METRIC_RANGES.items()
           if k in row and not low <= row[k] <= high]
    if out:
        raise RecordError(f"{where}: metrics out of range ({', '.join(out[:3])}; accuracies are in [0, 1], losses, "
                          "seconds, rates and learning rates >= 0): not a valid result")
    if epochs is not None and len(history) != epochs:
        raise RecordError(f"{where}: {len(history)} epochs recorded, the recipe asks for {epochs}: not a finished run")
    _check_provenance(record["provenance"], where)
    return record


# the range of each metric a history row may hold (any other key must still be a finite number)
METRIC_RANGES = {"train_acc": (0.0, 1.0), "test_acc": (0.0, 1.0), "train_loss": (0.0, math.inf),
                 "test_loss": (0.0, math.inf), "seconds": (0.0, math.inf), "lr": (0.0, math.inf),
                 "train_images_per_s": (0.0, math.inf)}


def record_run(record: dict[str, Any], where: str = "record") -> RunConfig:
    """The run a record's config names, checked against its ``run_id``; RecordError otherwise."""
    try:
        cfg = record["config"]
        run = RunConfig(cfg["grid"], cfg["model"], cfg["recipe"], cfg["seed"], cfg.get("epochs"),
                        cfg.get("train_size"), cfg.get("precision"), cfg.get("iterations"))
        ModelSpec.from_key(run.model)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"{where}: bad config ({exc})") from None
    if run.run_id != record["run_id"]:
        raise RecordError(f"{where}: run_id {record['run_id']!r} does not match its config ({run.run_id!r})")
    return run


def _check_seal(record: dict[str, Any], where: str) -> None:
    """``content_sha256`` must be there and match; a record without one only as a pinned legacy record."""
    digest = content_sha256(record)
    if "content_sha256" not in record:
        if digest not in LEGACY_RECORDS:
            raise RecordError(f"{where}: no content_sha256 (edited, or not written by resnet_nb): not a valid "
                              "result; restore the file as the runner wrote it, or delete it to train the run again")
    elif record["content_sha256"] != digest:
        raise RecordError(f"{where}: content does not match its content_sha256 (edited or damaged after writing)")


def _check_provenance(prov: Any, where: str) -> None:
    """The provenance fields that tables and figures read: present, and of their kind."""
    if not isinstance(prov, dict):
        raise RecordError(f"{where}: provenance is not a mapping")
    kinds = {"precision": str, "dataset_variant": str, "device_name": str, "wall_seconds": (int, float)}
    wrong = [k for k, kind in kinds.items() if not isinstance(prov.get(k), kind) or isinstance(prov.get(k), bool)]
    if wrong:
        raise RecordError(f"{where}: provenance lacks or mistypes {', '.join(wrong)}")
    if not math.isfinite(prov["wall_seconds"]) or prov["wall_seconds"] < 0:
        raise RecordError(f"{where}: provenance.wall_seconds={prov['wall_seconds']} is not >= 0")
    try:
        trained_on(prov)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise RecordError(f"{where}: bad provenance segments ({exc!r})") from None


def read_record(path: Path, expected: RunConfig | None = None) -> dict[str, Any]:
    """The validated record in ``path``; RecordError naming the file for anything else, whatever the bytes."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RECORD_BYTES + 1)
        if len(raw) > MAX_RECORD_BYTES:
            raise ValueError(f"larger than {MAX_RECORD_BYTES >> 20} MB, not a record")
        record = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, bad UTF-8, a 5000-digit number
        raise RecordError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    try:
        return validate_record(record, expected, where=str(path))
    except RecursionError:  # nesting deep enough to exhaust the stack while validating
        raise RecordError(f"{path}: nested too deeply to be a record") from None


# folders under results/ that hold other measurements than training runs (their own record kinds)
NOT_RUN_FOLDERS = ("akamaster",)


def iter_records(folder: Path, strict: bool = False) -> Iterator[dict[str, Any]]:
    """Valid run records under ``folder`` (recursively, skipping :data:`NOT_RUN_FOLDERS`), each run once.

    An invalid record is reported by path in a warning and skipped (one bad file does not hide
    every other result); with ``strict`` it raises RecordError. So is a record not named
    ``<run_id>.json`` in the folder of its grid (a copy, a file renamed to another seed), and a
    second record of a run already loaded (the first found, the shallowest path, counts).
    """
    folder = Path(folder)
    seen: dict[RunConfig, Path] = {}
    paths = [p for p in folder.rglob("*.json") if not set(p.relative_to(folder).parts[:-1]) & set(NOT_RUN_FOLDERS)]
    for path in sorted(paths, key=lambda p: (len(p.parts), str(p))):
        try:
            record = read_record(path)
            run = record_run(record, str(path))
            _check_place(path, run, seen.get(run))
        except RecordError as exc:
            if strict:
                raise
            warnings.warn(f"{exc}; skipped", stacklevel=2)
            continue
        seen[run] = path
        yield record


def _check_place(path: Path, run: RunConfig, first: Path | None) -> None:
    """RecordError unless ``path`` is where ``run``'s record belongs and no record of ``run`` came before."""
    if first is not None:
        raise RecordError(f"{path}: a second record of run {run.run_id!r} of grid {run.grid!r} (the first: {first}); "
                          "a run counts once: delete the copy")
    if path.name != f"{run.run_id}.json" or path.parent.name != run.grid:
        raise RecordError(f"{path}: holds run {run.run_id!r} of grid {run.grid!r}, whose record is "
                          f"{record_path(run, path.parent.parent)}: a copy or a renamed file is not counted; "
                          "move it there if that file is missing, else delete it")


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


def load_results(grid: str | Sequence[str] | None = None, results: Path = RESULTS_DIR):  # noqa: ANN201 - DataFrame
    """All records (of one grid, of several, or all) as a long DataFrame: one row per run and epoch.

    ``iteration`` is the optimisation step at the end of the epoch (the last epoch of a run given in
    iterations may be partial); ``lr_drops`` the iterations where the run's learning rate fell.
    """
    import pandas as pd

    folders = [Path(results)] if not grid else [Path(results) / g for g in ([grid] if isinstance(grid, str) else grid)]
    rows = []
    for rec in (r for folder in folders for r in iter_records(folder)):
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


# Records written before ``content_sha256`` existed (format 1, Nov 2026), pinned by the hash of their
# content (:func:`content_sha256`): they stay valid as they are, while any other record without the
# field, an edited legacy record included, is refused. New records always carry the field.
LEGACY_RECORDS = frozenset({
    "0cebc5547c3bd44933e59a8857bdc183d8208e957643c58d59d200276af4350c",  # precision/resnet20-A_report_e1_bf16_s0.json
    "533014b1a3092401bacf074811b282fba9f02f1bb0d014c6e63b887b57b1402b",  # precision/resnet20-A_report_e1_bf16_s1.json
    "9668c9907aa14426cd3162165386513a6a79f1e46a931131ae1a2a14e6a6e1af",  # precision/resnet20-A_report_e1_bf16_s2.json
    "bcce8111edea7bceb57d972ed0b1c19f06bfd99f2990bff6601570fe9528fe44",  # precision/resnet20-A_report_e1_fp32_s0.json
    "a09bb74e8209157ba9d59236b1ff4ce468f1b19a86a2a9d43a85bb3dd58f4540",  # precision/resnet20-A_report_e1_fp32_s1.json
    "4bfde5bc25530a5b27204c8e494da312856c6317f34ffc9a2cdbac126873374e",  # precision/resnet20-A_report_e1_fp32_s2.json
    "e5c1e5e19079574ec5f2b6dcd8638f3aa87dfc6bc40ef428faf4266ff610468b",  # report/plain20_report_s0.json
    "275cc906da5aa6f4722c492064342bd7bfb1b96430e74c7e0d3f6a5f77eb8fde",  # report/plain20_report_s1.json
    "b3f50f1e1f92a7b37b5a384fc0d784b7e0b0a2a8e8c8fb9d895bb1634babe889",  # report/plain20_report_s2.json
    "28bbdf5fc8d6e696695ec029e4f372b3690781c686a2f5cb29043abe28cf0c67",  # report/plain20_report_s3.json
    "645632659820386ac940677fef39f3ee85abe45b60413f4ddd05ca31525e8165",  # report/plain20_report_s4.json
    "4a50ddbf4d15cf2bcd0d2e460ab764671eb4f1c8496d4fcf3fd1f79a0d20509b",  # report/plain32_report_s0.json
    "16e24bf78fd85f0d3a1d342baef7395ed79d85e49c06f6422e55609a81328389",  # report/plain44_report_s0.json
    "3c2ebfe55ee1ea7bdb59b7c35cb5888188d67762b8bb0743ffb9c21175a4f101",  # report/plain56_report_s0.json
    "29e071bbefe43ba2e557f10a8c7adcf215248340eeb35057103735782db3f9f3",  # report/plain56_report_s1.json
    "854cdd02885230c3638930d2f7413d28e0c4a3e102ad7456c7789d2618a74e4a",  # report/resnet20-A_report_s0.json
    "cff20ece4a3c6f08c7e28aad1fc68fd8a26b31a07416d0776577ae80349aca78",  # report/resnet20-A_report_s1.json
    "0c2175b339a8344acfe3cc5861b89a3067acd1019036ea4139356cb772966510",  # report/resnet20-A_report_s2.json
    "e31158f24870083eb1cbf33d2551be7b47c3bdabd323d77c53cd427d0268f12e",  # report/resnet20-A_report_s3.json
    "a8ada02832b6f78a646c7e83a351412209ac9ac15fd186b06e2c09621f1e2a8c",  # report/resnet20-A_report_s4.json
    "9371cb98f1ebbc4161649504da61b0e31dc2c2d7da8dcdeb2d91748cfa2bc450",  # report/resnet20-B_report_s0.json
    "97a12db23f812e05b724a976a2daa3e0d043e9f247641c18fc600c4640c302e1",  # report/resnet20-B_report_s1.json
    "1a053a0a19a1557d8c334d983bf673b8026ef6dfb50a2daa71461cc3f5d4a9c4",  # report/resnet20-B_report_s2.json
    "095c1ca72d3028bc881d99e775641712eb5d76b897858607fe71a8865acf7568",  # report/resnet20-B_report_s3.json
    "d4d22d6effb271e34fef2a55501aaeb94a9140c95734017f747fffd6edbce851",  # report/resnet20-B_report_s4.json
    "79a008d3b5917086505dde08e6d1acaf25eed8cb630e469e1f768849824d0129",  # report/resnet32-A_report_s0.json
    "529433d087b4d55ab54d6e04708427706db6eaa20acb9ae064c6ba42818ee113",  # report/resnet32-B_report_s0.json
    "d2aadd190039dd22b85fa850576975322a20900c7fe8add4b7a570d84df5f45c",  # report/resnet44-A_report_s0.json
    "76150e8df428c4db459b0c02953d278a8fc3c5a4177bfe3c1ce538753d523d84",  # report/resnet44-B_report_s0.json
    "66bb243ea338706d759b09903daea2a051a170d3eabe399980d46b29ccec32dc",  # report/resnet56-A_report_s0.json
    "0a44ac0597c7706c566123fee3830aacc61cc58f7ef1192abed5de5ce59e0505",  # report/resnet56-B_report_s0.json
    "d5e8f37f0e544ec76b67e450423484e6aa51e828aa687df9f4d67dcc809c5206",  # report/tv-resnet18-cifar_report_s0.json
    "875185c2dff9a1f8d2dde5da53f781b33111d3b4d7f7ffd740678a71de843b75",  # report/tv-resnet18-imagenet_report_s0.json
})
