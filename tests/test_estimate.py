"""Time estimates said before long work: from this device's records, else from a step-time probe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resnet_nb import estimate
from resnet_nb.experiments import RunConfig, record_path, run_one


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
