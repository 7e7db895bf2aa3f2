"""Experiments: grids, shards, the resumable runner, result records, loading and summarising."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from resnet_nb.experiments import (HISTORY_KEYS, RecordError, iter_records, RunConfig, checkpoint_path, grid_runs, load_results,
                                   parse_shard, pending, read_record, record_path, run_one, run_state, shard,
                                   estimate_seconds, summarize, validate_record)
from resnet_nb.models import ModelSpec, build_model, count_macs
from resnet_nb.train import fit, read_checkpoint_history

TIMING_KEYS = ("seconds", "train_images_per_s")
RUN = RunConfig(grid="t", model="resnet8-A", recipe="report", seed=0, epochs=1)


def untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def run_kw(tmp_path: Path) -> dict:
    return dict(results=tmp_path / "results", checkpoints=tmp_path / "ck", device="cpu", precision="fp32",
                progress=False)


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, bytes]:
    """RUN trained once by run_one; (record, record path, its bytes). Tests copy the file, never edit it."""
    tmp = tmp_path_factory.mktemp("finished")
    record = run_one(RUN, tiny_data, **run_kw(tmp))
    path = record_path(RUN, tmp / "results")
    return record, path, path.read_bytes()


def fake_record(run: RunConfig, test_accs: list[float]) -> dict:
    """A valid record with a known history (one row per epoch), no training needed."""
    history = [{"epoch": i + 1, "train_loss": 1.0 / (i + 1), "train_acc": acc - 0.01, "test_loss": 2.0 / (i + 1),
                "test_acc": acc, "seconds": 1.5, "lr": 1e-3} for i, acc in enumerate(test_accs)]
    return {
        "format": 1,
        "run_id": run.run_id,
        "config": dataclasses.asdict(run) | {"recipe_params": dataclasses.asdict(run.recipe_obj())},
        "history": history,
        "provenance": {"device_name": "test cpu", "precision": "fp32", "dataset_variant": "image-folder",
                       "wall_seconds": 1.5 * len(history)},
    }


def write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


# ---------------------------------------------------------------- grids and shards


def test_report_grid() -> None:
    runs = grid_runs("report")
    assert len(runs) == 70 and len(set(runs)) == 70
    assert len({r.model for r in runs}) == 14
    assert [r.seed for r in runs] == [s for s in range(5) for _ in range(14)]  # seed-major: all seed 0 first
    assert all(r.grid == "report" and r.recipe == "report" and r.epochs is None for r in runs)
    first = runs[:14]
    assert first[0].run_id == "resnet20-A_report_s0"
    depths = [r.spec.depth for r in first if r.spec.arch != "torchvision"]
    assert len(depths) == 12
    # depth priority within a seed: every depth-20/56 run before any depth-32/44 run
    assert set(depths[:6]) == {20, 56} and set(depths[6:]) == {32, 44}
    assert depths.index(20) < depths.index(56) < depths.index(32) < depths.index(44)
    assert {r.model for r in first if r.spec.depth == 20} == {"resnet20-A", "plain20", "resnet20-B"}
    assert {r.model for r in first[-2:]} == {"tv-resnet18-imagenet", "tv-resnet18-cifar"}
    assert [r.model for r in runs[14:28]] == [r.model for r in first]


def test_paper_grid_and_seeds() -> None:
    runs = grid_runs("paper")
    # priority: the degradation pairs at depth 20 and 56, then ResNet-110 (5 seeds), then the rest
    order = ["resnet20-A", "plain20", "resnet56-A", "plain56", "resnet110-A", "resnet32-A", "plain32", "resnet44-A",
             "plain44"]
    assert [r.model for r in runs] == [m for m in order for _ in range(5 if m == "resnet110-A" else 3)]
    assert [r.seed for r in runs[:6]] == [0, 1, 2, 0, 1, 2] and [r.seed for r in runs[12:17]] == [0, 1, 2, 3, 4]
    assert all(r.recipe == "paper" and r.grid == "paper" for r in runs) and len(set(runs)) == 29
    assert [r.seed for r in grid_runs("paper", [3, 1])] == [3, 1] * 9
    assert len(grid_runs("report", range(2))) == 28
    with pytest.raises(ValueError, match="unknown grid"):
        grid_runs("nope")


@pytest.mark.parametrize("k", range(1, 8))
def test_shards_partition_the_grid(k: int) -> None:
    runs = grid_runs("report")
    parts = [shard(runs, i, k) for i in range(1, k + 1)]
    assert sum(len(p) for p in parts) == len(runs)
    assert sorted(r.run_id for p in parts for r in p) == sorted(r.run_id for r in runs)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    for p in parts:  # each shard keeps the priority order
        assert [runs.index(r) for r in p] == sorted(runs.index(r) for r in p)


def test_parse_shard() -> None:
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard("1/1") == (1, 1)
    for bad in ("0/3", "4/3", "x", "1/", "1/2/3", "-1/3"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)


def test_run_ids() -> None:
    assert RUN.run_id == "resnet8-A_report_e1_s0" and RUN.config_id == "resnet8-A_report_e1"
    assert RunConfig("g", "plain20", "report", 3, None, 500).run_id == "plain20_report_n500_s3"
    assert record_path(RUN, Path("/r")) == Path("/r/t/resnet8-A_report_e1_s0.json")
    assert checkpoint_path(RUN, Path("/c")) == Path("/c/t/resnet8-A_report_e1_s0.pt")


def test_default_checkpoint_dir_is_the_cache(_isolated_env: Path) -> None:
    assert checkpoint_path(RUN) == _isolated_env / "checkpoints" / "t" / "resnet8-A_report_e1_s0.pt"


# ---------------------------------------------------------------- run_one and records


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


def test_run_state_and_rerun(finished, tiny_data, tmp_path: Path) -> None:
    record, src, raw = finished
    kw = run_kw(tmp_path)
    assert run_state(RUN, kw["results"], kw["checkpoints"]) == "todo"
    checkpoint_path(RUN, kw["checkpoints"]).parent.mkdir(parents=True)
    checkpoint_path(RUN, kw["checkpoints"]).write_bytes(b"")
    assert run_state(RUN, kw["results"], kw["checkpoints"]) == "partial"
    dst = record_path(RUN, kw["results"])
    dst.parent.mkdir(parents=True)
    dst.write_bytes(raw)
    assert run_state(RUN, kw["results"], kw["checkpoints"]) == "done"
    # a finished run is not trained again: its record is returned as is
    assert run_one(RUN, tiny_data, **kw) == json.loads(raw)
    assert dst.read_bytes() == raw


def test_killed_run_resumes(tiny_data, tmp_path: Path) -> None:
    run = RunConfig(grid="t", model="resnet8-A", recipe="report", seed=0, epochs=2, train_size=100)
    kw = run_kw(tmp_path)
    ckpt = checkpoint_path(run, kw["checkpoints"])

    class Killed(Exception):
        pass

    def kill_after_1(row):
        if row["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        fit(run.spec, run.recipe_obj(), tiny_data, seed=run.seed, device="cpu", precision="fp32",
            checkpoint=ckpt, progress=False, on_epoch=kill_after_1)
    assert run_state(run, kw["results"], kw["checkpoints"]) == "partial"
    record = run_one(run, tiny_data, **kw)
    assert not ckpt.exists()  # deleted once the record is written
    assert run_state(run, kw["results"], kw["checkpoints"]) == "done"
    assert [r["epoch"] for r in record["history"]] == [1, 2]
    uninterrupted = fit(run.spec, run.recipe_obj(), tiny_data, seed=run.seed, device="cpu", precision="fp32",
                        progress=False)
    assert untimed(record["history"]) == untimed(uninterrupted.history)
    assert record["provenance"]["train_size"] == 100
    assert record["provenance"]["wall_seconds"] == pytest.approx(sum(r["seconds"] for r in record["history"]))


def _damaged_records(finished) -> dict[str, bytes]:
    record, _, raw = finished
    other = copy.deepcopy(record)  # a valid record of another run (seed 1)
    del other["content_sha256"]  # an edited record: without its hash (with it, it would fail on the hash)
    other_run = dataclasses.replace(RUN, seed=1)
    other["run_id"] = other_run.run_id
    other["config"]["seed"] = 1
    assert validate_record(other, other_run)
    other_grid = copy.deepcopy(other)
    other_grid.update(run_id=record["run_id"], config=record["config"] | {"grid": "u"})
    return {"truncated": raw[: len(raw) // 2], "foreign": json.dumps(other).encode(),
            "other-grid": json.dumps(other_grid).encode(), "empty": b"", "not-a-record": b"[1, 2]"}


@pytest.mark.parametrize("kind", ["truncated", "foreign", "other-grid", "empty", "not-a-record"])
def test_bad_record_raises_and_is_left_alone(finished, tiny_data, tmp_path: Path, kind: str) -> None:
    content = _damaged_records(finished)[kind]
    kw = run_kw(tmp_path)
    path = record_path(RUN, kw["results"])
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(RecordError):
        read_record(path, RUN)
    with pytest.raises(RecordError):
        run_state(RUN, kw["results"], kw["checkpoints"])
    with pytest.raises(RecordError):
        run_one(RUN, tiny_data, **kw)
    with pytest.warns(UserWarning, match=re.escape(str(path))):  # reported by path, and not run again
        assert pending([RUN], kw["results"], kw["checkpoints"]) == []
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_foreign_record_message(finished, tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(_damaged_records(finished)["foreign"])
    with pytest.raises(RecordError, match="resnet8-A_report_e1_s1.*expected 'resnet8-A_report_e1_s0'"):
        read_record(path, RUN)
    assert read_record(path)["run_id"] == "resnet8-A_report_e1_s1"  # valid on its own


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
    del record["content_sha256"]  # each defect on its own, not only as a hash mismatch
    assert validate_record(copy.deepcopy(record), RUN)
    _mutations()[name](record)
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
            write(record_path(run, results), fake_record(run, accs))
    return results


def test_load_results(results_dir: Path) -> None:
    df = load_results("fake", results_dir)
    assert len(df) == 4 * 2  # one row per run and epoch
    assert list(df.columns) == ["grid", "run_id", "config_id", "model", "arch", "depth", "shortcut", "stem",
                                "recipe", "seed", "device_name", "precision", "dataset_variant", "wall_seconds",
                                "recipe_desc", *HISTORY_KEYS]
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


def test_pending_puts_partial_runs_first(tmp_path: Path) -> None:
    runs = [RunConfig("g", m, "report", 0, epochs=2) for m in ("resnet20-A", "plain20", "resnet56-A", "plain56")]
    results, ck = tmp_path / "results", tmp_path / "ck"
    write(record_path(runs[0], results), fake_record(runs[0], [0.1, 0.2]))  # done
    for r in (runs[3], runs[2]):  # partial
        checkpoint_path(r, ck).parent.mkdir(parents=True, exist_ok=True)
        checkpoint_path(r, ck).write_bytes(b"")
    assert [run_state(r, results, ck) for r in runs] == ["done", "todo", "partial", "partial"]
    assert [r.model for r in pending(runs, results, ck)] == ["resnet56-A", "plain56", "plain20"]
    assert pending(runs[:1], results, ck) == []


def test_validate_record_uses_planned_epochs_for_iteration_recipes() -> None:
    """The paper recipe is given in iterations (epochs=None): the record's planned_epochs decides."""
    run = RunConfig("t", "resnet8-A", "paper", 0)
    record = fake_record(run, [0.1, 0.2])
    record["config"]["planned_epochs"] = 2
    assert validate_record(record, run)
    record["config"]["planned_epochs"] = 164
    with pytest.raises(RecordError, match="not a finished run"):
        validate_record(record, run)


def test_new_records_carry_planned_epochs(finished) -> None:
    assert finished[0]["config"]["planned_epochs"] == len(finished[0]["history"])


def test_precision_grid_pairs_fp32_and_bf16_per_seed() -> None:
    runs = grid_runs("precision")
    assert [(r.seed, r.precision) for r in runs] == [(s, p) for s in range(3) for p in ("fp32", "bf16")]
    assert {r.config_id for r in runs} == {"resnet20-A_report_e1_fp32", "resnet20-A_report_e1_bf16"}
    assert len({r.run_id for r in runs}) == 6


def test_precision10_grid_full_recipe_depth_56_three_seeds() -> None:
    runs = grid_runs("precision10")
    assert len(runs) == 12 and {r.epochs for r in runs} == {None} and {r.recipe for r in runs} == {"report"}
    assert {r.config_id for r in runs} == {"plain56_report_fp32", "plain56_report_bf16",
                                           "resnet56-A_report_fp32", "resnet56-A_report_bf16"}
    assert sorted({r.seed for r in runs}) == [0, 1, 2]
    assert grid_runs("precision10", seeds=[4])[0].run_id == "plain56_report_fp32_s4"


def test_run_precision_is_used_and_recorded(tiny_data, tmp_path: Path) -> None:
    run = RunConfig("t", "resnet8-A", "report", 0, epochs=1, train_size=100, precision="fp32")
    record = run_one(run, tiny_data, results=tmp_path, checkpoints=tmp_path / "ck", progress=False,
                     precision="bf16")  # the run's own precision wins over the runner's default
    assert record["provenance"]["precision"] == "fp32"
    assert record["run_id"].endswith("_fp32_s0")
    assert read_record(record_path(run, tmp_path), run)["config"]["precision"] == "fp32"


# ---------------------------------------------------------------- time estimates


def _timed_record(run: RunConfig, seconds: float, device: str, train_size: int = 50_000) -> dict:
    record = fake_record(run, [0.5] * 10)
    for row in record["history"]:
        row["seconds"] = seconds
    record["provenance"] |= {"device_name": device, "train_size": train_size}
    return record


def test_estimate_from_same_config_on_same_device(tmp_path: Path) -> None:
    done, todo = RunConfig("report", "resnet20-A", "report", 0), RunConfig("report", "resnet20-A", "report", 1)
    write(record_path(done, tmp_path), _timed_record(done, 30.0, "cpu X (2 threads)"))
    assert estimate_seconds(todo, "cpu X (2 threads)", tmp_path, tmp_path / "ck") == (300.0, False)
    assert estimate_seconds(todo, "GPU Y", tmp_path, tmp_path / "ck") is None  # nothing ran on that device


def test_estimate_scaled_by_macs_from_other_models(tmp_path: Path) -> None:
    """No record of plain56 on this CPU: scale resnet20-A's throughput there (other thread count) by MACs."""
    done, todo = RunConfig("report", "resnet20-A", "report", 0), RunConfig("report", "plain56", "report", 0)
    write(record_path(done, tmp_path), _timed_record(done, 30.0, "cpu X (1 threads)"))
    seconds, scaled = estimate_seconds(todo, "cpu X (2 threads)", tmp_path, tmp_path / "ck")
    macs = {k: count_macs(build_model(ModelSpec.from_key(k))) for k in ("resnet20-A", "plain56")}
    assert scaled and seconds == pytest.approx(10 * 30.0 * macs["plain56"] / macs["resnet20-A"])
    assert 3.0 < seconds / 300.0 < 3.2  # plain-56 costs about 3.1x the MACs of ResNet-20 per image


def test_estimate_counts_only_epochs_left_of_a_partial_run(tiny_data, tmp_path: Path) -> None:
    run = RunConfig("t", "resnet8-A", "report", 0, epochs=3, train_size=100)
    class Killed(Exception):
        pass

    def kill_after_1(row: dict) -> None:
        if row["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        fit(run.spec, run.recipe_obj(), tiny_data, seed=0, device="cpu", precision="fp32", progress=False,
            checkpoint=checkpoint_path(run, tmp_path / "ck"), on_epoch=kill_after_1)
    seconds, scaled = estimate_seconds(run, "anything", tmp_path, tmp_path / "ck")
    first = read_checkpoint_history(checkpoint_path(run, tmp_path / "ck"))[0]["seconds"]
    assert not scaled and seconds == pytest.approx(2 * first)


def test_git_commit_prefers_the_explicit_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_nb.provenance import git_commit

    monkeypatch.setenv("RESNET_NB_GIT_COMMIT", "b82ab55ce8414c762f28a5e9ca1213d4e67128a6")
    assert git_commit() == "b82ab55ce8414c762f28a5e9ca1213d4e67128a6"  # a copied tree's old .git must not win
    monkeypatch.delenv("RESNET_NB_GIT_COMMIT")
    found = git_commit()
    assert found == "unknown" or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", found)
