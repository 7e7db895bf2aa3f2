"""Integrity of runs: checkpoints bound to their run and data and verified on read, divergence,
records that refuse wrong numbers, exclusive runs (locks), SIGKILL/SIGTERM during training.

Faults are injected for real: bytes overwritten or cut off in checkpoint files, another copy of
the data, processes killed with SIGKILL in the middle of a checkpoint write, SIGTERM to `train`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_nb.checkpoints import CheckpointMismatch, read_checkpoint, read_checkpoint_history
from resnet_nb.data import load_cifar10
from resnet_nb.grids import checkpoint_path, run_one
from resnet_nb.records import RESULTS_DIR, RecordError, RunConfig, iter_records, read_record, record_path, validate_record
from resnet_nb.files import LockedError, lock_path
from resnet_nb.models import ModelSpec
from resnet_nb.train import RECIPES, DivergedError, Recipe, check_divergence, fit, get_recipe, make_optimizer

from .conftest import Interrupted, _write_tree, resealed, stop_after, untimed

REPO = Path(__file__).resolve().parent.parent
SPEC = ModelSpec("resnet", 8, "A")
def run_fit(data, **kw):
    kw = {"device": "cpu", "precision": "fp32", "progress": False, "seed": 0} | kw
    return fit(SPEC, kw.pop("recipe", get_recipe("report", epochs=3, batch_size=16)), data, **kw)


@pytest.fixture(scope="module")
def baseline(tiny_data):
    return run_fit(tiny_data)


@pytest.fixture(scope="module")
def other_copy(tmp_path_factory: pytest.TempPathFactory):
    """Another CIFAR-like copy (other pixels): what a resume on the wrong data would train on."""
    root = tmp_path_factory.mktemp("othercopy")
    _write_tree(root / "cifar10-other", seed=99)
    return load_cifar10(root / "cifar10-other", cache=root / "cache", progress=False)


def env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def wait_for(path: Path, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        assert proc is None or proc.poll() is None, f"the process ended first: {proc.communicate()}"
        time.sleep(0.05)


# ---------------------------------------------------------------- checkpoints: identity and verification


def test_resume_on_another_copy_of_the_data_is_refused(tiny_data, other_copy, tmp_path: Path) -> None:
    assert other_copy.checksum != tiny_data.checksum
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        run_fit(tiny_data, checkpoint=ckpt, on_epoch=stop_after(1))
    before = ckpt.read_bytes()
    with pytest.raises(CheckpointMismatch) as err:
        run_fit(other_copy, checkpoint=ckpt)
    msg = str(err.value)
    assert f"dataset_checksum: checkpoint '{tiny_data.checksum}', this run '{other_copy.checksum}'" in msg
    assert str(ckpt) in msg and "delete it" in msg and len(msg.splitlines()) == 1
    assert ckpt.read_bytes() == before  # refused, not overwritten


@pytest.mark.parametrize("change", ["seed", "precision", "model", "recipe"])
def test_checkpoint_of_another_run_names_the_difference(tiny_data, tmp_path: Path, change: str) -> None:
    ckpt = tmp_path / "run.pt"
    one = get_recipe("report", epochs=1, batch_size=16)
    run_fit(tiny_data, checkpoint=ckpt, recipe=one)
    kw = {"seed": {"seed": 1}, "precision": {"precision": "bf16"},
          "recipe": {"recipe": get_recipe("report", epochs=1, batch_size=16, lr=0.01)}}.get(change, {})
    says = {"seed": "seed: checkpoint 0, this run 1", "precision": "precision: checkpoint 'fp32', this run 'bf16'",
            "model": "model: checkpoint 'resnet8-A', this run 'plain8'",
            "recipe": "recipe.lr: checkpoint 0.001, this run 0.01"}[change]
    with pytest.raises(CheckpointMismatch, match=f"belongs to another run \\({re.escape(says)}\\); delete it"):
        if change == "model":
            fit(ModelSpec("plain", 8), one, tiny_data, device="cpu", precision="fp32", progress=False, checkpoint=ckpt)
        else:
            run_fit(tiny_data, checkpoint=ckpt, **({"recipe": one} | kw))


def _weight_offset(raw: bytes, state: dict) -> int:
    needle = bytes(state["model"]["layer1.0.conv1.weight"].untyped_storage().tolist()[:256])  # as stored
    offset = raw.find(needle)
    assert offset > 0
    return offset


@pytest.mark.parametrize("damage", ["64-bytes-of-a-weight", "truncated", "zeroed-header"])
def test_a_damaged_checkpoint_is_named_and_never_resumed(tiny_data, baseline, tmp_path: Path, damage: str) -> None:
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        run_fit(tiny_data, checkpoint=ckpt, on_epoch=stop_after(2))
    raw = bytearray(ckpt.read_bytes())
    if damage == "64-bytes-of-a-weight":
        at = _weight_offset(bytes(raw), read_checkpoint(ckpt))
        raw[at:at + 64] = bytes(64)
    elif damage == "truncated":
        raw = raw[: len(raw) * 2 // 3]
    else:
        raw[:30] = bytes(30)
    ckpt.write_bytes(bytes(raw))
    assert read_checkpoint_history(ckpt) == []  # progress reports do not trust it either
    seen = []
    with pytest.warns(UserWarning, match=f"checkpoint {ckpt} .*training this run from scratch"):
        result = run_fit(tiny_data, checkpoint=ckpt, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [1, 2, 3]  # all trained again: nothing of the damaged file was used
    assert untimed(result.history) == untimed(baseline.history)
    assert [r["epoch"] for r in read_checkpoint_history(ckpt)] == [1, 2, 3]  # the damaged file was replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


def test_a_checkpoint_of_the_old_unsealed_format_is_refused(tiny_data, tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    torch.save({"format": 1, "identity": {}, "epoch": 1, "history": []}, ckpt)
    with pytest.raises(CheckpointMismatch, match=f"checkpoint {ckpt} was written by an older resnet_nb.*delete it"):
        run_fit(tiny_data, checkpoint=ckpt)


KILL_DURING_SAVE = r"""
import sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
import resnet_nb.files as files
import signal
from resnet_nb.__main__ import _terminate
signal.signal(signal.SIGTERM, _terminate)  # as `python -m resnet_nb` does
from resnet_nb.data import load_cifar10
from resnet_nb.models import ModelSpec
from resnet_nb.train import fit, get_recipe
zip_path, cache, ckpt, flag = (Path(a) for a in sys.argv[1:5])
real = files.atomic_write
calls = []
def stalling(path, write):
    if path == ckpt:
        calls.append(path)
    if path != ckpt or len(calls) < 2:
        return real(path, write)
    def half(f):  # the second checkpoint: write part of it, then wait for SIGKILL
        f.write(b"x" * 100_000)
        f.flush()
        flag.touch()
        time.sleep(120)
    real(path, half)
files.atomic_write = stalling
data = load_cifar10(zip_path, cache=cache, progress=False)
fit(ModelSpec("resnet", 8, "A"), get_recipe("report", epochs=3, batch_size=16), data, seed=0, device="cpu",
    precision="fp32", progress=False, checkpoint=ckpt)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.slow
def test_a_signal_during_a_checkpoint_write_resumes_bit_exact(tiny_data, tiny_zip, baseline, tmp_path: Path,
                                                              sig: int) -> None:
    ckpt, flag = tmp_path / "ck" / "run.pt", tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, "-c", KILL_DURING_SAVE, str(tiny_zip), str(tmp_path / "cache"),
                             str(ckpt), str(flag)], env=env(), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(flag, proc)
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    names = sorted(p.name for p in ckpt.parent.iterdir())
    if sig == signal.SIGKILL:  # the write it died in: left for the next writer to remove
        assert names[0].startswith(f".run.pt.tmp-{proc.pid}-") and names[1:] == ["run.pt"]
    else:  # SIGTERM unwinds: the writer removes its own temp file
        assert names == ["run.pt"] and proc.returncode == 1 and "KeyboardInterrupt" in proc.stderr.read()
    assert [r["epoch"] for r in read_checkpoint_history(ckpt)] == [1]  # the last good checkpoint is whole
    seen = []
    result = run_fit(tiny_data, checkpoint=ckpt, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [2, 3]
    assert untimed(result.history) == untimed(baseline.history)
    for a, b in zip(result.model.state_dict().values(), baseline.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["run.pt"]  # the dead writer's temp was removed


# ---------------------------------------------------------------- divergence and the optimizer


def test_divergence_rule_on_exact_numbers() -> None:
    ok = dict(key="m", epoch=1, train_loss=2.0, train_acc=0.3, test_loss=1.9, test_acc=0.32)
    check_divergence(**ok)
    check_divergence(**ok | {"test_loss": 23503.0, "test_acc": 0.1, "train_loss": 17.2, "train_acc": 0.215})
    check_divergence(**ok | {"train_loss": 200.0, "train_acc": 0.2})  # high, but learning: not (yet) diverged
    cases = {"loss not finite": {"train_loss": math.nan}, "loss not finite ": {"test_loss": math.inf},
             "loss exploded at chance accuracy": {"train_loss": 30.0, "train_acc": 0.1, "test_acc": 0.1},
             "train loss above 230": {"train_loss": 1.9e7, "train_acc": 0.17, "test_acc": 0.2}}
    for why, change in cases.items():
        with pytest.raises(DivergedError, match=f"m diverged in epoch 1 \\({why.strip()}"):
            check_divergence(**ok | change)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_diverging_run_stops_and_keeps_its_last_good_checkpoint(tiny_data, tmp_path: Path, optimizer: str) -> None:
    """The issue's case: Adam at lr 1e3 ended at loss 1.9e7 and chance accuracy and was recorded.

    Here the first epoch runs at a sane lr (a warm-up as long as the epoch), the second at 1e3.
    """
    ckpt = tmp_path / "run.pt"
    recipe = get_recipe("report", epochs=3, batch_size=16, lr=1e3, optimizer=optimizer, warmup_iterations=13,
                        warmup_lr=1e-3)
    seen = []
    with pytest.raises(DivergedError, match=f"resnet8-A diverged in epoch 2 .*checkpoint stays in {ckpt}"):
        run_fit(tiny_data, recipe=recipe, checkpoint=ckpt, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [1] and seen[0]["train_loss"] < 2.4
    assert read_checkpoint(ckpt)["history"] == seen  # the last good epoch, nothing of the diverged one
    with pytest.raises(DivergedError, match="diverged in epoch 1 .*; not recorded; lower"):  # no checkpoint named
        run_fit(tiny_data, recipe=get_recipe("report", epochs=1, batch_size=16, lr=1e3, optimizer=optimizer))


def test_run_one_records_nothing_for_a_diverged_run(tiny_data, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(RECIPES, "boom", Recipe(name="boom", optimizer="adam", lr=1e3, batch_size=16, epochs=2))
    run = RunConfig("t", "resnet8-A", "boom", 0)
    kw = dict(results=tmp_path / "results", checkpoints=tmp_path / "ck", device="cpu", precision="fp32",
              progress=False)
    with pytest.raises(DivergedError):
        run_one(run, tiny_data, **kw)
    assert not record_path(run, kw["results"]).exists()
    assert not lock_path(record_path(run, kw["results"])).exists()  # the lock was released
    assert not list((tmp_path / "results").rglob("*.*")) and not list((tmp_path / "ck").rglob("*.*"))


def test_unknown_optimizer_raises(tiny_data) -> None:
    recipe = get_recipe("report", epochs=1, optimizer="adamw")
    with pytest.raises(ValueError, match="unknown optimizer 'adamw' in recipe 'report'; choose adam or sgd"):
        make_optimizer(recipe, torch.nn.Linear(2, 2), torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown optimizer"):
        run_fit(tiny_data, recipe=recipe)


# ---------------------------------------------------------------- records


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fin")
    run = RunConfig("t", "resnet8-A", "report", 0, epochs=1)
    record = run_one(run, tiny_data, results=tmp / "r", checkpoints=tmp / "c", device="cpu", precision="fp32",
                     progress=False)
    return run, record, record_path(run, tmp / "r")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "0.5", None])
def test_non_finite_or_non_numeric_metrics_are_refused(finished, value, tmp_path: Path) -> None:
    run, record, _ = finished
    bad = copy.deepcopy(record)
    bad["history"][0]["test_acc"] = value
    bad = resealed(bad)  # the metric is refused on its own, not only as a hash mismatch
    with pytest.raises(RecordError, match="non-finite or non-numeric metrics \\(test_acc="):
        validate_record(bad, run)
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(bad))  # json writes NaN/Infinity tokens, and reads them back as floats
    with pytest.raises(RecordError, match=f"{path}: non-finite"):
        read_record(path)


def test_an_edited_record_fails_its_content_hash(finished, tmp_path: Path) -> None:
    run, record, path = finished
    raw = path.read_text()
    acc = f"{record['history'][0]['test_acc']!r}"
    assert raw.count(acc) >= 1
    edited = tmp_path / path.name
    edited.write_text(raw.replace(f'"test_acc": {acc}', '"test_acc": 0.99', 1))
    with pytest.raises(RecordError, match=f"{edited}: content does not match its content_sha256"):
        read_record(edited, run)
    assert read_record(path, run) == record


def test_the_repositorys_records_still_validate() -> None:
    """Records written before content_sha256 existed stay valid (pinned in records.LEGACY_RECORDS)."""
    records = list(iter_records(RESULTS_DIR, strict=True))
    if not records:
        pytest.skip("no records in results/")
    assert all(r["format"] == 1 for r in records)


# ---------------------------------------------------------------- exclusive runs


def test_run_one_refuses_a_run_held_by_a_live_process(tiny_data, tmp_path: Path) -> None:
    run = RunConfig("t", "resnet8-A", "report", 0, epochs=1)
    results, ck = tmp_path / "r", tmp_path / "c"
    holder = subprocess.Popen(["sleep", "60"])
    try:
        for target in (record_path(run, results), checkpoint_path(run, ck)):
            lock = lock_path(target)
            lock.parent.mkdir(parents=True, exist_ok=True)
            lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "token": "t",
                                        "started": "2026-01-01T00:00:00"}))
            with pytest.raises(LockedError, match=f"{target} is being run by pid {holder.pid}"):
                run_one(run, tiny_data, results=results, checkpoints=ck, device="cpu", progress=False)
            assert not record_path(run, results).exists()
            lock.unlink()
    finally:
        holder.kill()
        holder.wait()


def test_grid_run_refuses_bad_runs_in_one_line_each_and_goes_on(tiny_zip, tmp_path: Path, monkeypatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    """A diverging run and a run with an old-format checkpoint are refused; the next run still trains."""
    import resnet_nb.__main__ as cli

    monkeypatch.setitem(RECIPES, "boom", Recipe(name="boom", optimizer="adam", lr=1e3, batch_size=16, epochs=2))
    runs = [RunConfig("precision", "resnet8-A", "boom", 0), RunConfig("precision", "resnet8-A", "report", 0, epochs=1),
            RunConfig("precision", "resnet8-A", "report", 1, epochs=1)]
    monkeypatch.setattr(cli, "grid_runs", lambda name, seeds=None: runs)
    results, ck = tmp_path / "results", tmp_path / "ck"
    old = checkpoint_path(runs[1], ck)
    old.parent.mkdir(parents=True)
    torch.save({"format": 1}, old)
    status = cli.main(["grid", "run", "precision", "--results", str(results), "--checkpoints", str(ck),
                       "--source", str(tiny_zip), "--device", "cpu", "--precision", "fp32", "--quiet"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "refused resnet8-A_report_e1_s0: checkpoint" in out and "older resnet_nb" in out  # partial: tried first
    assert "refused resnet8-A_boom_s0: resnet8-A diverged in epoch 1" in out
    assert err.strip() == ("error: 2 run(s) refused: resnet8-A_report_e1_s0, resnet8-A_boom_s0 (see above)")
    assert sorted(p.name for p in (results / "precision").iterdir()) == ["resnet8-A_report_e1_s1.json"]
    assert old.exists()  # left for the user to delete, as the line says


@pytest.mark.parametrize("side", ["checkpoint", "this run"])
def test_an_identity_key_missing_on_one_side_is_a_difference(tmp_path: Path, side: str) -> None:
    """A checkpoint whose identity lacks a key this run has (or has one this run lacks) is another run's:
    the key counts as None on the side without it, at the top level and inside the recipe."""
    from resnet_nb.checkpoints import CHECKPOINT_FORMAT, _differences, load_for_resume, save_checkpoint

    full = {"model": "resnet8-A", "recipe": {"lr": 0.1, "batch_size": 32}, "seed": 0, "channels_last": True}
    short = {"model": "resnet8-A", "recipe": {"lr": 0.1}, "seed": 0}
    theirs, ours = (short, full) if side == "checkpoint" else (full, short)
    diffs = _differences(theirs, ours)
    if side == "checkpoint":
        assert diffs == ["channels_last: checkpoint None, this run True", "recipe.batch_size: checkpoint None, this run 32"]
    else:
        assert diffs == ["channels_last: checkpoint True, this run None", "recipe.batch_size: checkpoint 32, this run None"]
    assert _differences(full, dict(full)) == []
    ckpt = tmp_path / "run.pt"
    save_checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "identity": theirs, "epoch": 1})
    with pytest.raises(CheckpointMismatch, match="channels_last: checkpoint"):
        load_for_resume(ckpt, ours, torch.device("cpu"))
    assert load_for_resume(ckpt, dict(theirs), torch.device("cpu"))["epoch"] == 1
