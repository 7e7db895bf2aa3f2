"""Result records: what a finished run writes, validation of every field, loading and summarising."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from resnet_nb.records import (HISTORY_KEYS, RecordError, RunConfig, iter_records, load_results, read_record,
                               record_path, summarize, validate_record)

from .conftest import RUN, fake_record, resealed, write_record


def test_run_one_writes_a_valid_record(finished, tiny_data) -> None:
    record, path, raw = finished
    assert path.parent.name == "t" and path.name == "resnet8-A_report_e1_s0.json"
    on_disk = json.loads(raw)
    assert on_disk == json.loads(json.dumps(record))
    assert read_record(path, RUN) == on_disk
    assert on_disk["run_id"] == RUN.run_id
    cfg = on_disk["config"]
    assert (cfg["grid"], cfg["model"], cfg["recipe"], cfg["seed"], cfg["epochs"]) == ("t", "resnet8-A", "report", 0, 1)
    assert cfg["recipe_params"]["optimizer"] == "adam" and cfg["recipe_params"]["epochs"] == 1
    assert len(on_disk["history"]) == 1 and set(HISTORY_KEYS) <= set(on_disk["history"][0])
    prov = on_disk["provenance"]
    assert prov["dataset_variant"] == "image-folder" and prov["dataset_checksum"] == tiny_data.checksum
    assert prov["precision"] == "fp32" and prov["device"] == "cpu" and prov["train_size"] == 200
    assert prov["git_commit"] and prov["torch"] and prov["device_name"]
    assert prov["wall_seconds"] == pytest.approx(on_disk["history"][0]["seconds"])
    assert not list(path.parent.glob(".*tmp*"))


def _mutations():
    def drop(*keys):
        def f(rec):
            d = rec
            for k in keys[:-1]:
                d = d[k]
            del d[keys[-1]]
        return f

    def setter(value, *keys):
        def f(rec):
            d = rec
            for k in keys[:-1]:
                d = d[k]
            d[keys[-1]] = value
        return f

    return {
        "no-format": drop("format"),
        "wrong-format": setter(2, "format"),
        "no-run_id": drop("run_id"),
        "no-config": drop("config"),
        "no-history": drop("history"),
        "no-provenance": drop("provenance"),
        "no-config-model": drop("config", "model"),
        "no-recipe_params": drop("config", "recipe_params"),
        "bad-model": setter("resnet21-A", "config", "model"),
        "bad-seed": setter("zero", "config", "seed"),
        "run_id-mismatch": setter("resnet8-A_report_e1_s9", "run_id"),
        "empty-history": setter([], "history"),
        "history-not-a-list": setter({"epoch": 1}, "history"),
        "row-not-a-dict": setter([1], "history"),
        "row-missing-key": drop("history", 0, "test_acc"),
        "epochs-not-1..n": setter(3, "history", 0, "epoch"),
    }


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_validate_record_rejects(finished, name: str) -> None:
    record = copy.deepcopy(finished[0])
    assert validate_record(copy.deepcopy(record), RUN)
    _mutations()[name](record)
    record = resealed(record)  # each defect on its own, not only as a hash mismatch
    with pytest.raises(RecordError):
        validate_record(record, RUN)
    with pytest.raises(RecordError):
        validate_record(record)


def test_validate_record_rejects_unfinished_history() -> None:
    run = RunConfig("t", "resnet8-A", "report", 0, epochs=3)
    assert validate_record(fake_record(run, [0.1, 0.2, 0.3]), run)
    with pytest.raises(RecordError, match="not a finished run"):
        validate_record(fake_record(run, [0.1, 0.2]), run)
    with pytest.raises(RecordError, match="not a finished run"):
        validate_record(fake_record(run, [0.1, 0.2, 0.3, 0.4]), run)
    default = RunConfig("t", "resnet8-A", "report", 0)  # the report recipe's own 10 epochs
    assert validate_record(fake_record(default, [0.1] * 10), default)
    with pytest.raises(RecordError, match="not a finished run"):
        validate_record(fake_record(default, [0.1] * 9), default)


def test_validate_record_uses_planned_epochs_for_iteration_recipes() -> None:
    """The paper recipe is given in iterations (epochs=None): the record's planned_epochs decides."""
    run = RunConfig("t", "resnet8-A", "paper", 0)
    record = fake_record(run, [0.1, 0.2])
    record["config"]["planned_epochs"] = 2
    assert validate_record(resealed(record), run)
    record["config"]["planned_epochs"] = 164
    with pytest.raises(RecordError, match="not a finished run"):
        validate_record(resealed(record), run)


def test_new_records_carry_planned_epochs(finished) -> None:
    assert finished[0]["config"]["planned_epochs"] == len(finished[0]["history"])


# ---------------------------------------------------------------- loading and summarising


ACCS = {  # config -> seed -> test_acc per epoch
    "resnet20-A": {0: [0.50, 0.61], 1: [0.52, 0.65], 2: [0.49, 0.70]},
    "plain20": {0: [0.40, 0.55]},
}


@pytest.fixture()
def results_dir(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    for model, seeds in ACCS.items():
        for seed, accs in seeds.items():
            run = RunConfig("fake", model, "report", seed, epochs=2)
            write_record(record_path(run, results), fake_record(run, accs))
    return results


def test_load_results(results_dir: Path) -> None:
    df = load_results("fake", results_dir)
    assert len(df) == 4 * 2  # one row per run and epoch
    assert list(df.columns) == ["grid", "run_id", "config_id", "model", "arch", "depth", "shortcut", "stem",
                                "recipe", "seed", "device", "device_name", "precision", "dataset_variant", "wall_seconds",
                                "recipe_desc", "total_iterations", "lr_drops", *HISTORY_KEYS, "iteration"]
    # the schedule as the records trained it: report records (whole epochs) derive it from batch and set size
    assert set(df["lr_drops"]) == {()}
    assert sorted(set(df["iteration"])) == [1563, 3126] and set(df["total_iterations"]) == {3126}  # 50k / 32
    assert set(df["config_id"]) == {"resnet20-A_report_e2", "plain20_report_e2"}
    assert set(df["recipe_desc"]) == {"Adam lr 0.001, batch 32, no augmentation"}  # from the records' recipe_params
    row = df[(df["run_id"] == "resnet20-A_report_e2_s2") & (df["epoch"] == 2)].iloc[0]
    assert (row["model"], row["arch"], row["depth"], row["shortcut"], row["seed"]) == ("resnet20-A", "resnet", 20,
                                                                                      "A", 2)
    assert row["test_acc"] == 0.70 and row["wall_seconds"] == 3.0
    assert df[df["model"] == "plain20"]["arch"].unique().tolist() == ["plain"]
    assert len(load_results(None, results_dir)) == 8  # all grids
    assert len(load_results("other", results_dir)) == 0
    assert list(load_results("other", results_dir).columns) == list(df.columns)


def test_load_results_skips_a_bad_record_by_name(results_dir: Path) -> None:
    broken = results_dir / "fake" / "broken.json"
    broken.write_text("{")
    with pytest.warns(UserWarning, match=re.escape(str(broken)) + ".*skipped"):
        df = load_results(None, results_dir)
    assert len(df) == 8  # every valid record is still there
    with pytest.raises(RecordError, match="broken.json"):
        list(iter_records(results_dir, strict=True))


def test_summarize(results_dir: Path) -> None:
    df = load_results("fake", results_dir)
    s = summarize(df).set_index("config_id")
    last = [accs[-1] for accs in ACCS["resnet20-A"].values()]
    r = s.loc["resnet20-A_report_e2"]
    assert r["test_acc_mean"] == pytest.approx(np.mean(last))
    assert r["test_acc_std"] == pytest.approx(np.std(last, ddof=1))
    assert r["test_acc_n"] == 3
    assert r["test_loss_mean"] == pytest.approx(1.0)  # 2 / epoch 2
    assert r["train_acc_mean"] == pytest.approx(np.mean(last) - 0.01)
    p = s.loc["plain20_report_e2"]
    assert p["test_acc_mean"] == pytest.approx(0.55) and p["test_acc_n"] == 1
    assert math.isnan(p["test_acc_std"])
    # at a given epoch
    first = [accs[0] for accs in ACCS["resnet20-A"].values()]
    s1 = summarize(df, epoch=1).set_index("config_id").loc["resnet20-A_report_e2"]
    assert s1["test_acc_mean"] == pytest.approx(np.mean(first))
    assert s1["test_acc_std"] == pytest.approx(np.std(first, ddof=1))
    assert summarize(df.iloc[0:0]).empty


def test_git_commit_prefers_the_explicit_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_nb.provenance import git_commit

    monkeypatch.setenv("RESNET_NB_GIT_COMMIT", "b82ab55ce8414c762f28a5e9ca1213d4e67128a6")
    assert git_commit() == "b82ab55ce8414c762f28a5e9ca1213d4e67128a6"  # a copied tree's old .git must not win
    monkeypatch.delenv("RESNET_NB_GIT_COMMIT")
    found = git_commit()
    assert found == "unknown" or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", found)


def test_load_results_of_several_grids(results_dir: Path) -> None:
    run = RunConfig("other", "plain20", "report", 0, epochs=2)
    write_record(record_path(run, results_dir), fake_record(run, [0.3, 0.4]))
    both = load_results(["fake", "other"], results_dir)
    assert sorted(set(both["grid"])) == ["fake", "other"] and len(both) == 8 + 2
    assert len(load_results(["other"], results_dir)) == 2
