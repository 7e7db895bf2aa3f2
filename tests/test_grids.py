"""Grids and the runner: grid contents and priority, shards, run ids, resumable runs, bad records left
alone, what is pending, and per-run precision."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest

from resnet_nb.grids import checkpoint_path, grid_runs, parse_shard, pending, run_one, run_state, shard, stand_in
from resnet_nb.checkpoints import read_checkpoint, save_checkpoint
from resnet_nb.records import (RecordError, RunConfig, load_results, read_record, record_path, trained_on,
                               validate_record)
from resnet_nb.train import fit

from .conftest import RUN, Interrupted, fake_record, resealed, run_kw, stop_after, untimed, write_record


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


# ---------------------------------------------------------------- the runner


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


def _killed_after(epochs: int, run: RunConfig, data, kw: dict) -> Path:
    """Train ``run`` as ``run_one`` would and stop it after ``epochs`` (checkpointed); its checkpoint path."""
    ckpt = checkpoint_path(run, kw["checkpoints"])
    with pytest.raises(Interrupted):
        fit(run.spec, run.recipe_obj(), data, seed=run.seed, device="cpu", precision="fp32",
            checkpoint=ckpt, progress=False, on_epoch=stop_after(epochs))
    return ckpt


@pytest.mark.slow
def test_killed_run_resumes(tiny_data, tmp_path: Path) -> None:
    run = RunConfig(grid="t", model="resnet8-A", recipe="report", seed=0, epochs=2, train_size=100)
    kw = run_kw(tmp_path)
    ckpt = _killed_after(1, run, tiny_data, kw)
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


def test_resumed_run_records_where_each_stretch_ran(tiny_data, tmp_path: Path, monkeypatch) -> None:
    """A run resumed under another commit keeps both: the record's top-level provenance is the finishing
    process's, ``segments`` names each stretch of epochs with its commit and device."""
    run = RunConfig(grid="t", model="resnet8-A", recipe="report", seed=0, epochs=3, train_size=100)
    kw = run_kw(tmp_path)
    monkeypatch.setenv("RESNET_NB_GIT_COMMIT", "aaa111")
    _killed_after(2, run, tiny_data, kw)
    monkeypatch.setenv("RESNET_NB_GIT_COMMIT", "bbb222")
    record = run_one(run, tiny_data, **kw)
    prov = record["provenance"]
    assert prov["git_commit"] == "bbb222"
    segments = prov["segments"]
    assert [(s["first_epoch"], s["last_epoch"], s["git_commit"]) for s in segments] == [(1, 2, "aaa111"),
                                                                                        (3, 3, "bbb222")]
    assert all(s["device"] == "cpu" and s["device_name"] == prov["device_name"] and s["started"] <= s["finished"]
               for s in segments)
    df = load_results("t", kw["results"])
    assert set(df["device"]) == {"cpu"} and set(df["device_name"]) == {prov["device_name"]}  # one device: as before


def test_checkpoint_from_before_segments_reads_as_unrecorded(tiny_data, tmp_path: Path) -> None:
    run = RunConfig(grid="t", model="resnet8-A", recipe="report", seed=0, epochs=2, train_size=100)
    kw = run_kw(tmp_path)
    ckpt = _killed_after(1, run, tiny_data, kw)
    state = read_checkpoint(ckpt)
    assert [s["last_epoch"] for s in state.pop("segments")] == [1]
    save_checkpoint(ckpt, state)  # as the trainer wrote it before segments were logged
    segments = run_one(run, tiny_data, **kw)["provenance"]["segments"]
    assert segments[0] == {"first_epoch": 1, "last_epoch": 1, "unrecorded": True}
    assert (segments[1]["first_epoch"], segments[1]["last_epoch"]) == (2, 2) and "git_commit" in segments[1]


def test_uninterrupted_run_has_one_segment(tiny_data, tmp_path: Path) -> None:
    run = RunConfig(grid="t", model="resnet8-A", recipe="report", seed=0, epochs=2, train_size=100)
    prov = run_one(run, tiny_data, **run_kw(tmp_path))["provenance"]
    [segment] = prov["segments"]
    assert (segment["first_epoch"], segment["last_epoch"]) == (1, 2)
    assert {k: segment[k] for k in ("git_commit", "torch", "device", "device_name")} == \
        {k: prov[k] for k in ("git_commit", "torch", "device", "device_name")}


def test_run_trained_on_two_devices_is_not_counted_as_either() -> None:
    cpu = {"device": "cpu", "device_name": "AMD EPYC (1 threads)"}
    gpu = {"device": "cuda:0", "device_name": "NVIDIA H200"}
    prov = gpu | {"segments": [{"first_epoch": 1, "last_epoch": 4} | cpu, {"first_epoch": 5, "last_epoch": 10} | gpu]}
    assert trained_on(prov) == ("cpu+cuda", "AMD EPYC (1 thread) → NVIDIA H200")  # old spelling made canonical
    assert trained_on(gpu) == ("cuda", "NVIDIA H200")  # records from before segments: the record's own device
    unrecorded = {"first_epoch": 1, "last_epoch": 4, "unrecorded": True}
    assert trained_on(gpu | {"segments": [unrecorded, {"first_epoch": 5, "last_epoch": 10} | gpu]}) == \
        ("cuda", "NVIDIA H200")
    two_cpus = cpu | {"segments": [{"first_epoch": 1, "last_epoch": 4} | cpu | {"device_name": "AMD EPYC (2 threads)"},
                                   {"first_epoch": 5, "last_epoch": 10} | cpu]}
    assert trained_on(two_cpus) == ("cpu", "AMD EPYC (2 threads) → AMD EPYC (1 thread)")


def test_device_names_spell_one_thread_and_old_records_join_new_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from resnet_nb.provenance import canonical_device_name, device_name

    for n, suffix in ((1, " (1 thread)"), (2, " (2 threads)")):
        monkeypatch.setattr(torch, "get_num_threads", lambda n=n: n)
        assert device_name(torch.device("cpu")).endswith(suffix)
    # records made before say "(1 threads)"; they are read as the same device as records made now
    assert canonical_device_name("AMD EPYC (1 threads)") == "AMD EPYC (1 thread)"
    assert canonical_device_name("AMD EPYC (11 threads)") == "AMD EPYC (11 threads)"
    assert canonical_device_name("NVIDIA H200") == "NVIDIA H200"
    old, new = ({"device": "cpu", "device_name": f"AMD EPYC (1 {w})"} for w in ("threads", "thread"))
    assert trained_on(old) == trained_on(new) == ("cpu", "AMD EPYC (1 thread)")


def _damaged_records(finished) -> dict[str, bytes]:
    record, _, raw = finished
    other = copy.deepcopy(record)  # a valid record of another run (seed 1)
    other_run = dataclasses.replace(RUN, seed=1)
    other["run_id"] = other_run.run_id
    other["config"]["seed"] = 1
    other = resealed(other)  # an edited record, its hash recomputed: only the identity checks can catch it
    assert validate_record(other, other_run)
    other_grid = copy.deepcopy(other)
    other_grid.update(run_id=record["run_id"], config=record["config"] | {"grid": "u"})
    other_grid = resealed(other_grid)
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


def test_pending_puts_partial_runs_first(tmp_path: Path) -> None:
    runs = [RunConfig("g", m, "report", 0, epochs=2) for m in ("resnet20-A", "plain20", "resnet56-A", "plain56")]
    results, ck = tmp_path / "results", tmp_path / "ck"
    write_record(record_path(runs[0], results), fake_record(runs[0], [0.1, 0.2]))  # done
    for r in (runs[3], runs[2]):  # partial
        checkpoint_path(r, ck).parent.mkdir(parents=True, exist_ok=True)
        checkpoint_path(r, ck).write_bytes(b"")
    assert [run_state(r, results, ck) for r in runs] == ["done", "todo", "partial", "partial"]
    assert [r.model for r in pending(runs, results, ck)] == ["resnet56-A", "plain56", "plain20"]
    assert pending(runs[:1], results, ck) == []


def _report_twin(results: Path, model: str, seed: int, precision: str, device: str) -> Path:
    """A report-grid record of ``model``/``seed`` trained at ``precision`` on ``device``; its path."""
    twin = RunConfig("report", model, "report", seed)
    write_record(record_path(twin, results), fake_record(twin, [0.5] * 10, precision=precision, device_name=device))
    return record_path(twin, results)


def test_report_records_stand_in_for_precision10_runs_on_their_device(tmp_path: Path) -> None:
    results, ck = tmp_path / "results", tmp_path / "ck"
    bf16, fp32, bf16_s1 = (RunConfig("precision10", "plain56", "report", s, precision=p)
                           for s, p in ((0, "bf16"), (0, "fp32"), (1, "bf16")))
    path = _report_twin(results, "plain56", 0, "bf16", "cpu A (1 threads)")
    _report_twin(results, "plain56", 1, "fp32", "cpu A (1 threads)")
    assert stand_in(bf16, results, "cpu A (1 threads)") == path
    assert run_state(bf16, results, ck, "cpu A (1 threads)") == "covered"
    # the record's precision must be the run's, and its device the one asked about (threads included):
    # precision10 pairs fp32 and bf16 runs of a seed on one device
    assert stand_in(fp32, results, "cpu A (1 threads)") is None
    assert stand_in(bf16_s1, results, "cpu A (1 threads)") is None
    assert stand_in(bf16, results, "cpu A (2 threads)") is None
    assert stand_in(bf16, results, "cpu A (1 thread)") == path  # today's spelling of the same device
    assert stand_in(bf16, results) is None  # no device known: nothing stands in
    assert run_state(bf16, results, ck) == "todo"
    # only grids listed in STAND_INS look elsewhere; a run's own record wins
    assert stand_in(RunConfig("precision", "plain56", "report", 0, precision="bf16"), results, "cpu A (1 threads)") is None
    assert pending([fp32, bf16], results, ck, "cpu A (1 threads)") == [fp32]
    assert pending([fp32, bf16], results, ck, "cpu B (1 threads)") == [fp32, bf16]
    write_record(record_path(bf16, results), fake_record(bf16, [0.5] * 10))
    assert run_state(bf16, results, ck, "cpu A (1 threads)") == "done"


def test_an_invalid_stand_in_record_is_reported_not_trusted(tmp_path: Path) -> None:
    run = RunConfig("precision10", "plain56", "report", 0, precision="bf16")
    path = _report_twin(tmp_path, "plain56", 0, "bf16", "cpu A (1 threads)")
    path.write_text(path.read_text()[:-20])  # truncated
    with pytest.raises(RecordError, match="plain56_report_s0"):
        stand_in(run, tmp_path, "cpu A (1 threads)")


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
    record = run_one(run, tiny_data, results=tmp_path, checkpoints=tmp_path / "ck", device="cpu", progress=False,
                     precision="bf16")  # the run's own precision wins over the runner's default
    assert record["provenance"]["precision"] == "fp32"
    assert record["run_id"].endswith("_fp32_s0")
    assert read_record(record_path(run, tmp_path), run)["config"]["precision"] == "fp32"


def test_paper8k_grid_is_the_shortened_paper_recipe_in_priority_order() -> None:
    runs = grid_runs("paper8k")
    assert len(runs) == 24 and len(set(runs)) == 24
    assert [r.run_id for r in runs[:4]] == ["resnet20-A_paper_it8000_s0", "plain20_paper_it8000_s0",
                                            "resnet56-A_paper_it8000_s0", "plain56_paper_it8000_s0"]
    assert [r.seed for r in runs] == [0] * 8 + [1] * 8 + [2] * 8
    assert {r.model for r in runs} == {f"{a}{d}" for a in ("resnet", "plain") for d in (20, 32, 44, 56)} - {
        f"resnet{d}" for d in (20, 32, 44, 56)} | {f"resnet{d}-A" for d in (20, 32, 44, 56)}
    recipe = runs[0].recipe_obj()
    paper = RunConfig("paper", "resnet20-A", "paper", 0).recipe_obj()
    # only the length changes: the drops stay at 50 % / 75 % of the (shorter) run
    assert recipe == dataclasses.replace(paper, iterations=8000)
    assert recipe.lr_at(3999, 8000, 20) == pytest.approx(0.1) and recipe.lr_at(4000, 8000, 20) == pytest.approx(0.01)
    assert recipe.lr_at(6000, 8000, 20) == pytest.approx(0.001)


def test_record_keeps_iterations_schedule_and_seed0_weights(tiny_data, tmp_path: Path) -> None:
    """A run of a weights-keeping grid: the record names its iteration count and schedule, seed 0 keeps its
    final weights (fp16, sealed), which load without running code and give the record's test accuracy back."""
    import torch

    from resnet_nb.checkpoints import load_weights
    from resnet_nb.grids import weights_path
    from resnet_nb.models import build_model
    from resnet_nb.train import evaluate, make_loaders, resolve_device

    run = RunConfig("paper", "resnet8-A", "paper", 0, iterations=3)
    kw = run_kw(tmp_path)
    record = run_one(run, tiny_data, **kw)
    assert record["run_id"] == "resnet8-A_paper_it3_s0"
    cfg = record["config"]
    assert (cfg["iterations"], cfg["recipe_params"]["iterations"], cfg["total_iterations"]) == (3, 3, 3)
    assert cfg["recipe_fraction"] == 3 / 64_000  # of the paper's 64k
    assert cfg["steps_per_epoch"] >= 1 and cfg["planned_epochs"] == -(-3 // cfg["steps_per_epoch"])
    assert read_record(record_path(run, kw["results"]), run) == record
    path = weights_path(run, kw["results"])
    assert path == kw["results"] / "paper" / "weights" / "resnet8-A_paper_it3_s0.pt" and path.exists()
    state = load_weights(path, run.run_id)
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    model = build_model(run.spec)
    model.load_state_dict(state)
    _, test = make_loaders(run.recipe_obj(), tiny_data, 0, resolve_device("cpu"), False)
    _, acc = evaluate(model, test)
    assert acc == pytest.approx(record["history"][-1]["test_acc"], abs=0.02)  # fp16 weights: up to one image
    assert weights_path(dataclasses.replace(run, seed=1), kw["results"]) is None
    assert weights_path(dataclasses.replace(run, grid="report"), kw["results"]) is None


def test_weights_file_with_a_crafted_pickle_is_refused_unrun(tmp_path: Path) -> None:
    import pickle

    from resnet_nb.checkpoints import load_weights
    from resnet_nb.files import CorruptFileError, seal

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (Path.touch, (marker,))

    path = tmp_path / "w.pt"
    path.write_bytes(seal(pickle.dumps({"format": 1, "run_id": "x", "state_dict": Evil()})))
    with pytest.raises(CorruptFileError, match="cannot be read safely"):
        load_weights(path)
    assert not marker.exists()
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_weights(path)


def test_paper8k_checkpoint_identity_is_pinned() -> None:
    """Runs of the shortened grid span sessions: a checkpoint written by one commit must resume under the
    next. Its identity holds the recipe as ``dataclasses.asdict`` gives it, so a renamed, added or dropped
    Recipe field would refuse every checkpoint in flight. Change this literal only with a migration."""
    run = next(r for r in grid_runs("paper8k") if r.model == "plain56" and r.seed == 2)
    assert dataclasses.asdict(run.recipe_obj()) == {
        "name": "paper", "optimizer": "sgd", "lr": 0.1, "batch_size": 128, "momentum": 0.9, "weight_decay": 1e-4,
        "epochs": None, "iterations": 8000, "lr_milestones": (0.5, 0.75), "augment": True, "init": "he",
        "warmup_iterations": 400, "warmup_lr": 0.01, "warmup_min_depth": 110, "train_size": None}
    assert (run.run_id, run.spec.key) == ("plain56_paper_it8000_s2", "plain56")
