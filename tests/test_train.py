"""Training: recipes, device/precision choice, fit() on tiny data, repeatability, checkpoint/resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from resnet_nb.checkpoints import read_checkpoint_history
from resnet_nb.models import ModelSpec
from resnet_nb.train import RECIPES, Recipe, cpu_has_bf16, fit, get_recipe, resolve_device, resolve_precision

from .conftest import Interrupted, stop_after, untimed

SPEC = ModelSpec("resnet", 8, "A")
HISTORY_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"}


def tiny_recipe(**kw) -> Recipe:
    return get_recipe("report", **({"epochs": 3, "batch_size": 16} | kw))


def run_fit(data, seed: int = 0, **kw):
    kw = {"device": "cpu", "precision": "fp32", "progress": False} | kw
    return fit(SPEC, kw.pop("recipe", tiny_recipe()), data, seed=seed, **kw)


@pytest.fixture(scope="module")
def baseline(tiny_data):
    """One uninterrupted 3-epoch fp32 run, seed 0 (shared: fits are the slow part of this suite)."""
    return run_fit(tiny_data, seed=0)


# ---------------------------------------------------------------- recipes


def test_report_recipe() -> None:
    r = RECIPES["report"]
    assert (r.optimizer, r.lr, r.batch_size, r.epochs, r.augment, r.init) == ("adam", 1e-3, 32, 10, False, "default")
    assert (r.momentum, r.weight_decay, r.lr_milestones, r.warmup_iterations, r.train_size) == (0, 0, (), 0, None)
    assert r.num_epochs(1563) == 10
    assert all(r.lr_at(i, 15630, 20) == 1e-3 for i in (0, 5000, 15629))


def test_paper_recipe() -> None:
    r = RECIPES["paper"]
    assert (r.optimizer, r.lr, r.momentum, r.weight_decay, r.batch_size) == ("sgd", 0.1, 0.9, 1e-4, 128)
    assert (r.iterations, r.epochs, r.augment, r.init) == (64_000, None, True, "he")
    total = 64_000
    for depth in (20, 56):
        assert r.lr_at(0, total, depth) == 0.1
        assert r.lr_at(31_999, total, depth) == 0.1
        assert r.lr_at(32_000, total, depth) == pytest.approx(0.01)
        assert r.lr_at(47_999, total, depth) == pytest.approx(0.01)
        assert r.lr_at(48_000, total, depth) == pytest.approx(0.001)
        assert r.lr_at(63_999, total, depth) == pytest.approx(0.001)
    # ResNet-110 warms up at 0.01, then follows the same schedule
    assert r.lr_at(0, total, 110) == 0.01
    assert r.lr_at(399, total, 110) == 0.01
    assert r.lr_at(400, total, 110) == 0.1
    assert r.lr_at(32_000, total, 110) == pytest.approx(0.01)
    assert r.lr_at(48_000, total, 110) == pytest.approx(0.001)
    # 50k images / 128 = 391 steps per epoch -> 164 epochs for 64k iterations
    assert r.num_epochs(391) == 164


def test_get_recipe_unknown() -> None:
    with pytest.raises(ValueError, match="unknown recipe 'sgd'.*report.*paper"):
        get_recipe("sgd")


def test_with_overrides() -> None:
    r = get_recipe("report", epochs=3, batch_size=16, train_size=None)
    assert (r.epochs, r.batch_size, r.train_size, r.lr) == (3, 16, None, 1e-3)
    assert RECIPES["report"].epochs == 10  # the registry is not changed
    p = RECIPES["paper"].with_overrides(lr=0.05, epochs=None, iterations=1000)
    assert (p.lr, p.epochs, p.iterations, p.momentum) == (0.05, None, 1000, 0.9)
    with pytest.raises(TypeError):
        RECIPES["report"].with_overrides(nonsense=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECIPES["report"].lr = 1.0  # type: ignore[misc]


# ---------------------------------------------------------------- device and precision


def test_resolve_device_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    auto = resolve_device("auto")
    if torch.cuda.is_available():
        assert auto.type == "cuda"
    elif not (torch.backends.mps.is_available()):
        assert auto == torch.device("cpu")


def test_resolve_device_cuda_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="no CUDA"):
        resolve_device("cuda:0")


def test_resolve_precision_cpu() -> None:
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="precision must be"):
        resolve_precision("fp8", cpu)  # type: ignore[arg-type]
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_bf16() else "fp32")
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


def test_cpu_has_bf16_reads_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    import resnet_nb.train as train_mod

    class FakePath:
        def __init__(self, text):
            self.text = text

        def __call__(self, _path):
            return self

        def read_text(self):
            if isinstance(self.text, Exception):
                raise self.text
            return self.text

    monkeypatch.setattr(train_mod, "Path", FakePath("flags : fpu avx2 avx512_bf16"))
    assert cpu_has_bf16() is True
    monkeypatch.setattr(train_mod, "Path", FakePath("flags : fpu avx2"))
    assert cpu_has_bf16() is False
    monkeypatch.setattr(train_mod, "Path", FakePath(OSError("no /proc")))
    assert cpu_has_bf16() is False


# ---------------------------------------------------------------- fit


@pytest.mark.slow
def test_fit_learns(baseline) -> None:
    h = baseline.history
    assert [row["epoch"] for row in h] == [1, 2, 3]
    for row in h:
        assert HISTORY_KEYS <= set(row)
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["test_acc"] <= 1
        assert row["seconds"] > 0 and row["train_images_per_s"] > 0
        assert row["lr"] == 1e-3
    losses = [row["train_loss"] for row in h]
    assert losses[-1] < losses[0]
    assert losses[-1] < 0.9 * losses[0]
    assert h[-1]["train_acc"] > 0.3  # 10 classes by colour: far above chance after 3 epochs
    segments = baseline.setup.pop("segments")
    assert baseline.setup == {"device": "cpu", "precision": "fp32", "channels_last": True, "compile": False,
                              "cuda_graph": False,
                              "epochs": 3, "steps_per_epoch": 13, "train_size": 200, "total_iterations": 39}
    assert [(s["first_epoch"], s["last_epoch"], s["device"]) for s in segments] == [(1, 3, "cpu")]
    assert not baseline.model.training  # evaluated last


def test_fit_is_repeatable(tiny_data, baseline) -> None:
    # same seed: the same first epoch, bit for bit (the report recipe has no schedule, so a 1-epoch run
    # is the first epoch of the 3-epoch one); test_fit_resume_is_exact checks whole runs and weights
    again = run_fit(tiny_data, seed=0, recipe=tiny_recipe(epochs=1))
    assert untimed(again.history) == untimed(baseline.history[:1])
    other = run_fit(tiny_data, seed=1, recipe=tiny_recipe(epochs=1))
    assert untimed(other.history)[0]["train_loss"] != untimed(baseline.history)[0]["train_loss"]
    for a, b in zip(other.model.state_dict().values(), again.model.state_dict().values()):
        if a.is_floating_point() and a.numel() > 100:
            assert not torch.equal(a, b)


def test_fit_resume_is_exact(tiny_data, baseline, tmp_path: Path) -> None:
    ckpt = tmp_path / "ck" / "run.pt"

    with pytest.raises(Interrupted):
        run_fit(tiny_data, checkpoint=ckpt, on_epoch=stop_after(2))
    assert ckpt.exists()
    assert [r["epoch"] for r in read_checkpoint_history(ckpt)] == [1, 2]
    assert untimed(read_checkpoint_history(ckpt)) == untimed(baseline.history[:2])
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["run.pt"]  # atomic write: no temp files left

    seen = []
    resumed = run_fit(tiny_data, checkpoint=ckpt, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [3]  # only the missing epoch was trained
    assert untimed(resumed.history) == untimed(baseline.history)
    for a, b in zip(resumed.model.state_dict().values(), baseline.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [r["epoch"] for r in read_checkpoint_history(ckpt)] == [1, 2, 3]
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["run.pt"]

    # a finished checkpoint: nothing left to train, same history
    seen.clear()
    assert untimed(run_fit(tiny_data, checkpoint=ckpt, on_epoch=seen.append).history) == untimed(baseline.history)
    assert seen == []


def test_foreign_checkpoint_is_refused(tiny_data, tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    run_fit(tiny_data, seed=0, checkpoint=ckpt, recipe=tiny_recipe(epochs=1))
    before = ckpt.read_bytes()
    with pytest.raises(ValueError, match="belongs to another run"):
        run_fit(tiny_data, seed=1, checkpoint=ckpt, recipe=tiny_recipe(epochs=1))
    with pytest.raises(ValueError, match="belongs to another run"):
        run_fit(tiny_data, seed=0, checkpoint=ckpt, recipe=tiny_recipe(epochs=1, lr=0.01))
    assert ckpt.read_bytes() == before


def test_read_checkpoint_history_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert read_checkpoint_history(bad) == []
    assert read_checkpoint_history(tmp_path / "missing.pt") == []


def test_fit_train_size_and_auto_precision(tiny_data) -> None:
    result = fit(SPEC, get_recipe("report", epochs=1, batch_size=25, train_size=50), tiny_data, seed=0,
                 device="cpu", precision="auto", progress=False)
    assert result.setup["precision"] == ("bf16" if cpu_has_bf16() else "fp32")
    assert result.setup["train_size"] == 50 and result.setup["steps_per_epoch"] == 2
    assert len(result.history) == 1
    row = result.history[0]
    assert all(torch.isfinite(torch.tensor(row[k])) for k in ("train_loss", "test_loss"))


def test_fit_paper_recipe_with_he_init_and_augment(tiny_data) -> None:
    """Iteration-based recipe: epochs derived from iterations, lr drops at the milestones."""
    recipe = get_recipe("paper", iterations=4, batch_size=100, lr=0.05)
    seen = []
    result = run_fit(tiny_data, recipe=recipe, on_epoch=seen.append, channels_last=False)
    assert result.setup["epochs"] == 2 and result.setup["total_iterations"] == 4
    # an epoch's lr is the lr of its last step: step 1 at 0.05, step 3 (>= 0.75*4) at 0.0005
    assert [r["lr"] for r in result.history] == [pytest.approx(0.05), pytest.approx(0.0005)]
    assert seen == result.history


def test_iteration_recipe_stops_inside_its_last_epoch(tiny_data) -> None:
    """3 iterations at 2 steps per epoch: the second epoch trains 1 step, not 2 (the paper's 64k and its
    fractions end at their iteration count, not at the end of the epoch they fall in)."""
    recipe = get_recipe("paper", iterations=3, batch_size=100, lr=0.05)
    result = run_fit(tiny_data, recipe=recipe, channels_last=False)
    assert result.setup["epochs"] == 2 and result.setup["total_iterations"] == 3
    # step 2 (0-based) is past 50 % of 3 but not 75 %: lr 0.005; a 4th step (index 3) would have run at 0.0005
    assert [r["lr"] for r in result.history] == [pytest.approx(0.05), pytest.approx(0.005)]


def test_iterations_override_only_for_iteration_recipes() -> None:
    assert get_recipe("paper", iterations=8000).lr_milestones == (0.5, 0.75)
    with pytest.raises(ValueError, match="given in epochs"):
        get_recipe("report", iterations=100)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        get_recipe("paper", iterations=0)


def test_auto_precision_per_device() -> None:
    """CUDA: fp32 (launch-bound small nets gain nothing from autocast); MPS: fp32; CPU: bf16 iff the CPU has it."""
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_bf16() else "fp32")
    assert resolve_precision("fp16", torch.device("cuda")) == "fp16"
    with pytest.raises(ValueError, match="precision must be"):
        resolve_precision("half", torch.device("cpu"))  # type: ignore[arg-type]


def test_the_library_takes_a_decided_device(tiny_data) -> None:
    """The device is decided once where a program starts (resolve_device); a library call refuses 'auto'
    and has no default that would decide it again."""
    from resnet_nb.train import as_device

    assert as_device("cpu") == torch.device("cpu") and as_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="decided once"):
        as_device("auto")
    with pytest.raises(ValueError, match="decided once"):
        fit(SPEC, tiny_recipe(epochs=1), tiny_data, device="auto", progress=False)
    with pytest.raises(TypeError, match="device"):
        fit(SPEC, tiny_recipe(epochs=1), tiny_data, progress=False)  # type: ignore[call-arg]
