"""Time estimates said before long work: from this device's records, else from a step-time probe."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch

from resnet_nb import estimate
from resnet_nb.estimate import estimate_seconds
from resnet_nb.grids import checkpoint_path, run_one
from resnet_nb.models import ModelSpec, build_model, count_macs
from resnet_nb.records import RunConfig, record_path
from resnet_nb.checkpoints import read_checkpoint_history
from resnet_nb.train import fit

from .conftest import Interrupted, fake_record, stop_after, write_record


def test_probe_scales_with_the_steps_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate, "step_seconds", lambda *a, **k: 0.01)
    run = RunConfig("t", "resnet8-A", "report", 0, epochs=2, train_size=320)  # 10 steps per epoch
    assert estimate.probe_seconds_left(run, torch.device("cpu")) == pytest.approx(2 * 10 * 0.01 * estimate.EVAL_OVERHEAD)


def test_step_seconds_times_real_steps() -> None:
    seconds = estimate.step_seconds("resnet8-A", "report", "cpu", "fp32", steps=2)
    assert 0 < seconds < 10


def test_estimate_text_says_where_the_figure_comes_from(tiny_data, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run = RunConfig("t", "resnet8-A", "report", 0, epochs=1, train_size=100)
    probe = estimate.estimate_text([run], torch.device("cpu"), tmp_path, tmp_path / "ck")
    assert probe.startswith("estimated time: about ") and "step-time probe on this device" in probe
    run_one(run, tiny_data, results=tmp_path, checkpoints=tmp_path / "ck", device="cpu", progress=False)
    assert record_path(run, tmp_path).exists()
    other = RunConfig("t", "resnet8-A", "report", 1, epochs=1, train_size=100)
    text = estimate.estimate_text([other], torch.device("cpu"), tmp_path, tmp_path / "ck")
    assert "from this device's records" in text and "probe" not in text


def _timed_record(run: RunConfig, seconds: float, device: str, train_size: int = 50_000) -> dict:
    record = fake_record(run, [0.5] * 10)
    for row in record["history"]:
        row["seconds"] = seconds
    record["provenance"] |= {"device_name": device, "train_size": train_size}
    return record


def test_estimate_from_same_config_on_same_device(tmp_path: Path) -> None:
    done, todo = RunConfig("report", "resnet20-A", "report", 0), RunConfig("report", "resnet20-A", "report", 1)
    write_record(record_path(done, tmp_path), _timed_record(done, 30.0, "cpu X (2 threads)"))
    assert estimate_seconds(todo, "cpu X (2 threads)", tmp_path, tmp_path / "ck") == (300.0, False)
    assert estimate_seconds(todo, "GPU Y", tmp_path, tmp_path / "ck") is None  # nothing ran on that device
    # records spelt "(1 threads)" (before the name was fixed) serve the same device spelt either way, unscaled
    one = RunConfig("report", "resnet20-A", "report", 1)
    write_record(record_path(one, tmp_path), _timed_record(one, 60.0, "cpu X (1 threads)"))
    for spelling in ("cpu X (1 thread)", "cpu X (1 threads)"):
        assert estimate_seconds(todo, spelling, tmp_path, tmp_path / "ck") == (600.0, False)


def test_estimate_of_a_running_run_takes_off_the_epoch_in_progress(tmp_path: Path) -> None:
    """A running run has spent its lock's age on the current epoch: that comes off, at most one epoch."""
    done, todo = RunConfig("report", "resnet20-A", "report", 0), RunConfig("report", "resnet20-A", "report", 1)
    write_record(record_path(done, tmp_path), _timed_record(done, 30.0, "cpu X (2 threads)"))
    device = "cpu X (2 threads)"
    assert estimate_seconds(todo, device, tmp_path, tmp_path / "ck", elapsed=12.0) == (288.0, False)
    assert estimate_seconds(todo, device, tmp_path, tmp_path / "ck", elapsed=95.0) == (270.0, False)  # capped
    # scaled estimates (here by MACs, from another thread count) take it off the same way
    plain = RunConfig("report", "plain56", "report", 0)
    full, _ = estimate_seconds(plain, "cpu X (1 thread)", tmp_path, tmp_path / "ck")
    assert estimate_seconds(plain, "cpu X (1 thread)", tmp_path, tmp_path / "ck", elapsed=20.0) \
        == (pytest.approx(full - 20.0), True)


def test_estimate_scaled_by_macs_from_other_models(tmp_path: Path) -> None:
    """No record of plain56 on this CPU: scale resnet20-A's throughput there (other thread count) by MACs."""
    done, todo = RunConfig("report", "resnet20-A", "report", 0), RunConfig("report", "plain56", "report", 0)
    write_record(record_path(done, tmp_path), _timed_record(done, 30.0, "cpu X (1 threads)"))
    seconds, scaled = estimate_seconds(todo, "cpu X (2 threads)", tmp_path, tmp_path / "ck")
    macs = {k: count_macs(build_model(ModelSpec.from_key(k))) for k in ("resnet20-A", "plain56")}
    assert scaled and seconds == pytest.approx(10 * 30.0 * macs["plain56"] / macs["resnet20-A"])
    assert 3.0 < seconds / 300.0 < 3.2  # plain-56 costs about 3.1x the MACs of ResNet-20 per image


def test_estimate_from_the_same_model_on_another_thread_count(tmp_path: Path) -> None:
    """tv-resnet18-imagenet ran at 1 thread only: its 2-thread time is its 1-thread time x the 2/1 ratio of
    the models run at both counts, not ResNet-20's speed scaled by MACs (which promises it ~6x too soon)."""
    runs = {k: RunConfig("report", k, "report", 0) for k in ("resnet20-A", "plain20", "tv-resnet18-imagenet")}
    for model, one, two in (("resnet20-A", 30.0, 20.0), ("plain20", 28.0, 14.0)):  # ratios 2/3 and 1/2
        write_record(record_path(runs[model], tmp_path), _timed_record(runs[model], one, "cpu X (1 threads)"))
        other = RunConfig("other", model, "report", 0)  # another grid, same model and recipe
        write_record(record_path(other, tmp_path), _timed_record(other, two, "cpu X (2 threads)"))
    tv = runs["tv-resnet18-imagenet"]
    write_record(record_path(tv, tmp_path), _timed_record(tv, 150.0, "cpu X (1 threads)"))
    todo = RunConfig("report", "tv-resnet18-imagenet", "report", 1)
    seconds, scaled = estimate_seconds(todo, "cpu X (2 threads)", tmp_path, tmp_path / "ck")
    assert scaled and seconds == pytest.approx(10 * 150.0 * statistics.median([2 / 3, 1 / 2]))
    # plain20 ran at 2 threads in another grid: those epochs, unscaled
    assert estimate_seconds(RunConfig("report", "plain20", "report", 1), "cpu X (2 threads)", tmp_path,
                            tmp_path / "ck") == (pytest.approx(140.0), False)
    # a device that shares no model with any device that ran tv-resnet18: back to MACs
    lone = RunConfig("lone", "resnet8-A", "report", 0)
    write_record(record_path(lone, tmp_path), _timed_record(lone, 5.0, "GPU Y"))
    seconds, scaled = estimate_seconds(todo, "GPU Y", tmp_path, tmp_path / "ck")
    macs = {k: count_macs(build_model(ModelSpec.from_key(k))) for k in ("resnet8-A", "tv-resnet18-imagenet")}
    assert scaled and seconds == pytest.approx(10 * 5.0 * macs["tv-resnet18-imagenet"] / macs["resnet8-A"])


def test_a_stacked_record_counts_its_k_runs_in_the_throughput(tmp_path: Path) -> None:
    """K seeds trained together share each epoch's seconds: 2 seeds in 60 s is one run's 30 s of throughput."""
    done, todo = RunConfig("paper", "resnet20-A", "report", 0), RunConfig("report", "plain56", "report", 0)
    record = _timed_record(done, 60.0, "GPU Y")
    record["provenance"] |= {"seed_parallel": 2, "seed_group": [0, 1]}
    write_record(record_path(done, tmp_path), record)
    seconds, scaled = estimate_seconds(todo, "GPU Y", tmp_path, tmp_path / "ck")
    macs = {k: count_macs(build_model(ModelSpec.from_key(k))) for k in ("resnet20-A", "plain56")}
    assert scaled and seconds == pytest.approx(10 * 30.0 * macs["plain56"] / macs["resnet20-A"])
    # the same model and recipe: each of its epochs is 2 runs' worth, 30 s of one run's (not 60)
    assert estimate_seconds(RunConfig("report", "resnet20-A", "report", 2), "GPU Y", tmp_path, tmp_path / "ck") \
        == (pytest.approx(300.0), False)


def test_estimate_counts_only_epochs_left_of_a_partial_run(tiny_data, tmp_path: Path) -> None:
    run = RunConfig("t", "resnet8-A", "report", 0, epochs=3, train_size=100)
    with pytest.raises(Interrupted):
        fit(run.spec, run.recipe_obj(), tiny_data, seed=0, device="cpu", precision="fp32", progress=False,
            checkpoint=checkpoint_path(run, tmp_path / "ck"), on_epoch=stop_after(1))
    seconds, scaled = estimate_seconds(run, "anything", tmp_path, tmp_path / "ck")
    first = read_checkpoint_history(checkpoint_path(run, tmp_path / "ck"))[0]["seconds"]
    assert not scaled and seconds == pytest.approx(2 * first)


def test_estimate_uses_only_records_of_the_runs_precision(tmp_path: Path) -> None:
    """On a CPU fp32 trains about 1.5x slower than bf16: an fp32 run is timed from fp32 records only."""
    bf16, fp32 = (RunConfig("precision10", "resnet20-A", "report", 0, precision=p) for p in ("bf16", "fp32"))
    for run, seconds in ((bf16, 20.0), (fp32, 30.0)):
        record = _timed_record(run, seconds, "cpu X (2 threads)")
        record["provenance"]["precision"] = run.precision
        write_record(record_path(run, tmp_path), record)
    report = RunConfig("report", "resnet20-A", "report", 1)  # another grid, same model and recipe
    cpu = "cpu X (2 threads)"
    assert estimate_seconds(report, cpu, tmp_path, tmp_path / "ck", "fp32") == (pytest.approx(300.0), False)
    assert estimate_seconds(report, cpu, tmp_path, tmp_path / "ck", "bf16") == (pytest.approx(200.0), False)
    assert estimate_seconds(report, cpu, tmp_path, tmp_path / "ck", "fp16") is None  # no record in fp16: probe
    # no precision given: both records, their mean epoch (25 s)
    assert estimate_seconds(report, cpu, tmp_path, tmp_path / "ck") == (pytest.approx(250.0), False)
    plain = RunConfig("report", "plain20", "report", 0)  # no plain20 record anywhere: scaled by MACs
    assert estimate_seconds(plain, cpu, tmp_path, tmp_path / "ck", "fp32")[1] is True
    again = RunConfig("precision10", "resnet20-A", "report", 1, precision="fp32")  # same config: exact match
    assert estimate_seconds(again, cpu, tmp_path, tmp_path / "ck", "fp32") == (300.0, False)


def test_run_precision_is_the_runs_own_else_the_devices_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from resnet_nb import train

    cpu, default = torch.device("cpu"), RunConfig("p", "resnet20-A", "report", 0)
    for has_bf16, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(train, "cpu_has_bf16", lambda: has_bf16)
        assert estimate.run_precision(default, cpu) == expected
        assert estimate.run_precision(RunConfig("p", "resnet20-A", "report", 0, precision="fp32"), cpu) == "fp32"
    assert estimate.run_precision(default, torch.device("cuda")) == "fp32"
