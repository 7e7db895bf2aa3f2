"""Trust boundaries (issue 24): no file the tool reads can run code, block other work, or be counted twice.

A fault-injection suite with real files, real processes and real signals: crafted checkpoints, malformed
and hostile JSON, duplicate records, locks of every shape and of live and dead processes, zip members with
lying sizes, a group killed between its record writes, early signals and absurd arguments. Each bad input
must give one line naming the file or value, and lose or miscount nothing computed.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest
import torch

from resnet_nb.akamaster import load_akamaster
from resnet_nb.checkpoints import (CheckpointMismatch, UnsafeFileError, load_for_resume, load_weights,
                                   read_checkpoint, read_checkpoint_history, save_checkpoint)
from resnet_nb.data import MAX_IMAGE_BYTES, DataError, load_cifar10
from resnet_nb.estimate import estimate_seconds
from resnet_nb.files import (LockedError, check_writable, claim, describe, lock_holder, lock_path, pid_alive,
                             process_identity, process_start_time, seal)
from resnet_nb.grids import group_checkpoints, run_state
from resnet_nb.models import ModelSpec
from resnet_nb.records import (LEGACY_RECORDS, RESULTS_DIR, RecordError, RunConfig, iter_records, load_results,
                               read_record, record_path, summarize, validate_record)
from resnet_nb.grids import group_checkpoint_path, plan_groups, run_group
from resnet_nb.stacked import fit_stacked
from resnet_nb.train import get_recipe

from .conftest import RUN, Interrupted, fake_record, resealed, run_kw, stop_after, untimed, write_record
from .test_cli import REPO, cli, one_error_line

SPEC = ModelSpec("resnet", 8, "A")


# ---------------------------------------------------------------- 1. no file runs code


class _Touch:
    """Unpickling this calls ``open(marker, "w")``: proof that a file ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.marker, "w"))


def _crafted(marker: Path, state: dict | None = None) -> bytes:
    """A torch file whose unpickling touches ``marker`` (inside an otherwise plausible training state)."""
    buf = io.BytesIO()
    torch.save((state or {"format": 2, "identity": {}, "epoch": 1}) | {"history": [_Touch(marker)]}, buf)
    return buf.getvalue()


def _tiny_run(epochs: int = 1) -> RunConfig:
    return RunConfig("t", SPEC.key, "report", 0, epochs=epochs, train_size=100)


@pytest.mark.slow
def test_fit_and_group_checkpoints_written_today_load_weights_only(tiny_data, tmp_path: Path) -> None:
    """Every state the trainers save (optimizer state, rng tensor, segments with torch's version) loads
    without trust, and resumes: what background runs left on disk stays resumable."""
    from resnet_nb.train import fit

    recipe = get_recipe("paper", iterations=2, train_size=100)  # SGD with momentum; 1 step per epoch: 2 epochs
    single = tmp_path / "single.pt"
    with pytest.raises(Interrupted):
        fit(SPEC, recipe, tiny_data, seed=0, device="cpu", precision="fp32", checkpoint=single, progress=False,
            on_epoch=stop_after(1))
    group = tmp_path / "group.pt"
    with pytest.raises(Interrupted):
        fit_stacked(SPEC, recipe, tiny_data, [0, 1], device="cpu", precision="fp32", checkpoint=group,
                    progress=False, on_epoch=stop_after(1))
    for path, key in ((single, "history"), (group, "histories")):
        state = read_checkpoint(path)
        assert state["epoch"] == 1 and state[key] and isinstance(state["rng"], torch.Tensor)
        assert state["optimizer"]["state"] and state["segments"][0]["torch"] == torch.__version__
        assert len(read_checkpoint_history(path)) == 1
    # and both resume to the end from those states, as uninterrupted runs would
    resumed = fit(SPEC, recipe, tiny_data, seed=0, device="cpu", precision="fp32", checkpoint=single, progress=False)
    whole = fit(SPEC, recipe, tiny_data, seed=0, device="cpu", precision="fp32", progress=False)
    assert untimed(resumed.history) == untimed(whole.history)
    stacked = fit_stacked(SPEC, recipe, tiny_data, [0, 1], device="cpu", precision="fp32", checkpoint=group,
                          progress=False)
    assert [len(r.history) for r in stacked] == [2, 2]


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tiny_data, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    kw = run_kw(tmp_path)
    run = _tiny_run()
    ckpt = kw["checkpoints"] / run.grid / f"{run.run_id}.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(seal(_crafted(marker)))  # sealed: its sha256 verifies, as a carried checkpoint's would
    with pytest.raises(UnsafeFileError, match=re.escape(f"checkpoint {ckpt} cannot be read safely")) as info:
        read_checkpoint(ckpt)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointMismatch, match="refused, nothing in it was run"):
        load_for_resume(ckpt, {}, torch.device("cpu"))
    with pytest.warns(UserWarning, match=re.escape(str(ckpt))):  # progress reports (grid list) name it
        assert read_checkpoint_history(ckpt) == []
    from resnet_nb.grids import run_one

    with pytest.raises(CheckpointMismatch):  # never resumed, never overwritten unseen
        run_one(run, tiny_data, **kw)
    assert not marker.exists() and ckpt.exists()


@pytest.mark.slow
def test_grid_commands_reach_a_crafted_checkpoint_without_running_it(tiny_zip: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    ck = tmp_path / "ck"
    target = ck / "precision" / "resnet20-A_report_e1_fp32_s0.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(seal(_crafted(marker)))
    common = ["precision", "--results", str(tmp_path / "res"), "--checkpoints", str(ck), "--only", "*fp32_s0"]
    listed = cli("grid", "list", *common, "--device", "cpu")
    assert listed.returncode == 0 and str(target) in listed.stderr and "Traceback" not in listed.stderr
    ran = cli("grid", "run", *common, "--device", "cpu", "--quiet", "--source", str(tiny_zip),
              env={"RESNET_NB_CACHE": str(tmp_path / "cache")})
    assert ran.returncode == 1 and "refused" in ran.stdout and str(target) in ran.stdout, ran.stdout + ran.stderr
    assert not marker.exists()


def test_crafted_weights_and_published_checkpoints_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    weights = tmp_path / "w.pt"
    weights.write_bytes(seal(_crafted(marker, {"format": 1, "run_id": "x", "state_dict": {}})))
    with pytest.raises(UnsafeFileError, match=re.escape(f"weights file {weights}")):
        load_weights(weights)
    published = tmp_path / "resnet8-0123abcd.th"
    published.write_bytes(_crafted(marker, {"state_dict": {}}))  # not sealed: a plain torch file, as published
    with pytest.raises(UnsafeFileError, match=re.escape(str(published))):
        load_akamaster(published, 8)
    assert not marker.exists()


# ---------------------------------------------------------------- 2. one bad file blocks nothing

HOSTILE = {
    "not-utf8.json": b'{"format": 1, "run_id": "\xff\xfe"}',
    "deep.json": b"[" * 200_000 + b"]" * 200_000,
    "deep-dict.json": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "huge-number.json": b'{"format": 1, "x": ' + b"9" * 10_000 + b"}",
    "empty.json": b"",
    "list.json": b"[1, 2, 3]",
    "nan.json": b"NaN",
}


def _valid(results: Path, seed: int = 0, accs: tuple[float, ...] = (0.5, 0.6)) -> tuple[RunConfig, Path]:
    run = RunConfig("good", "resnet20-A", "report", seed, epochs=len(accs))
    path = record_path(run, results)
    write_record(path, fake_record(run, list(accs)))
    return run, path


def test_malformed_and_hostile_json_is_skipped_with_its_name(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run, _ = _valid(results)
    bad = results / "other"
    bad.mkdir(parents=True)
    for name, content in HOSTILE.items():
        (bad / name).write_bytes(content)
    (bad / "big.json").write_bytes(b" " * (9 << 20))  # larger than any record: not read into memory whole
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(iter_records(results))
        frame = load_results(results=results)
    assert [r["run_id"] for r in records] == [run.run_id] and set(frame["run_id"]) == {run.run_id}
    said = "\n".join(str(w.message) for w in caught)
    for name in [*HOSTILE, "big.json"]:
        assert str(bad / name) in said, name
    assert all("\n" not in str(w.message) for w in caught)
    with pytest.raises(RecordError, match=re.escape(str(bad / "deep.json"))):
        read_record(bad / "deep.json")


@pytest.mark.parametrize("name", ["not-utf8.json", "deep.json"])
@pytest.mark.slow
def test_a_bad_file_in_another_grid_stops_no_command(name: str, tmp_path: Path) -> None:
    results = tmp_path / "res"
    (results / "elsewhere").mkdir(parents=True)
    (results / "elsewhere" / name).write_bytes(HOSTILE[name])
    listed = cli("grid", "list", "precision", "--results", str(results), "--checkpoints", str(tmp_path / "ck"),
                 "--device", "cpu")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr and str(results / "elsewhere" / name) in listed.stderr
    # what train and grid run print before they start: the estimate reads every record
    with pytest.warns(UserWarning, match=re.escape(str(results / "elsewhere" / name))):
        estimate_seconds(RUN, "test cpu", results)


def test_records_of_the_wrong_shape_never_reach_a_traceback(tmp_path: Path) -> None:
    """Valid JSON, sealed, but hostile where tables and figures read it."""
    results = tmp_path / "results"
    run, path = _valid(results)
    good = json.loads(path.read_text())
    shapes = {
        "config-a-list": lambda r: r.update(config=[1]),
        "seed-a-string": lambda r: r["config"].update(seed="0"),
        "seed-a-bool": lambda r: r["config"].update(seed=False),
        "seed-a-float": lambda r: r["config"].update(seed=0.0),
        "provenance-a-string": lambda r: r.update(provenance="x"),
        "no-precision": lambda r: r["provenance"].pop("precision"),
        "lr-a-string": lambda r: r["config"]["recipe_params"].update(lr="fast"),
        "segments-garbage": lambda r: r["provenance"].update(segments=[{"device_name": 3, "device": None}]),
        "epoch-a-float": lambda r: r["history"][0].update(epoch=1.0),
        "steps-a-string": lambda r: r["config"].update(steps_per_epoch="391"),
        "planned-zero": lambda r: r["config"].update(planned_epochs=0),
        "train-size-negative": lambda r: r["provenance"].update(train_size=-1),
    }
    for name, edit in shapes.items():
        record = copy.deepcopy(good)
        edit(record)
        with pytest.raises(RecordError, match=re.escape(str(tmp_path / name))):
            path_ = tmp_path / name
            path_.write_text(json.dumps(resealed(record)))
            read_record(path_)


def test_a_hostile_file_among_the_data_caches_blocks_no_load(tiny_zip: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "cifar10-other.json").write_bytes(HOSTILE["deep.json"])
    (cache / "cifar10-x.json").write_bytes(HOSTILE["not-utf8.json"])
    assert len(load_cifar10(tiny_zip, cache=cache, progress=False).train_y) == 200


def test_the_published_folder_and_its_records_name_a_bad_file(tmp_path: Path) -> None:
    from resnet_nb.akamaster import checkpoints, read_records

    (tmp_path / "SHA256SUMS").write_bytes(b"\xff\xfe resnet20-12fca82f.th\n")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'SHA256SUMS'}: not UTF-8 text")):
        checkpoints(tmp_path)
    for name in ("not-utf8.json", "deep.json"):
        (tmp_path / name).write_bytes(HOSTILE[name])
        with pytest.raises(ValueError, match=re.escape(f"{tmp_path / name}: unreadable")):
            read_records(tmp_path)
        (tmp_path / name).unlink()


# ---------------------------------------------------------------- 3. each run counted once


def test_copies_and_misnamed_records_are_not_counted_twice(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run0, path0 = _valid(results, 0, (0.5, 0.6))
    run1, path1 = _valid(results, 1, (0.5, 0.7))
    copy_ = path0.with_name(f"{run0.run_id} (copy).json")
    shutil.copy(path0, copy_)
    as_seed2 = path0.with_name(path0.name.replace("_s0", "_s2"))  # seed 0's record under seed 2's name
    shutil.copy(path0, as_seed2)
    other_grid = results / "paper" / path0.name  # in another grid's folder
    other_grid.parent.mkdir()
    shutil.copy(path0, other_grid)
    nested = results / "good" / "good" / path1.name  # the right name in a folder of the right name, deeper
    nested.parent.mkdir()
    shutil.copy(path1, nested)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = load_results(results=results)
    assert sorted(set(frame["run_id"])) == [run0.run_id, run1.run_id] and len(frame) == 4
    assert summarize(frame)["test_acc_n"].tolist() == [2]
    said = [str(w.message) for w in caught]
    for bad in (copy_, as_seed2, other_grid):  # named, with where the run's record belongs
        assert any(str(bad) in m and str(path0) in m for m in said), bad
    assert any(str(nested) in m and str(path1) in m and "second record" in m for m in said)
    with pytest.raises(RecordError):
        list(iter_records(results, strict=True))


# ---------------------------------------------------------------- 4. the integrity field is required


def test_a_record_without_its_hash_is_invalid_unless_pinned_legacy(tmp_path: Path) -> None:
    results = tmp_path / "results"
    run, path = _valid(results)
    record = json.loads(path.read_text())
    del record["content_sha256"]
    path.write_text(json.dumps(record))
    with pytest.raises(RecordError, match=re.escape(f"{path}: no content_sha256")):
        read_record(path, run)
    legacy = sorted(p for p in RESULTS_DIR.rglob("*.json") if "akamaster" not in p.parts
                    and "content_sha256" not in json.loads(p.read_text()))
    if not legacy:
        pytest.skip("no legacy records in results/")
    assert len(legacy) == len(LEGACY_RECORDS)
    assert read_record(legacy[0])  # pinned: valid as written
    edited = json.loads(legacy[0].read_text())
    edited["history"][-1]["test_acc"] = 0.99
    copy_ = tmp_path / legacy[0].name
    copy_.write_text(json.dumps(edited))
    with pytest.raises(RecordError, match="no content_sha256"):
        read_record(copy_)


@pytest.mark.parametrize("key,value", [("test_acc", 7.5), ("train_acc", -0.1), ("test_loss", -1.0),
                                       ("train_loss", -0.5), ("seconds", -3.0), ("lr", -0.1),
                                       ("train_images_per_s", -1.0)])
def test_metrics_out_of_range_are_invalid_even_resealed(key: str, value: float) -> None:
    run = RunConfig("g", "resnet20-A", "report", 0, epochs=2)
    record = fake_record(run, [0.5, 0.6])
    record["history"][1][key] = value
    with pytest.raises(RecordError, match=f"out of range \\({key}={value}"):
        validate_record(resealed(record), run)


@pytest.mark.parametrize("field,value", [("seed", -1), ("seed", 2**40), ("seed", True), ("epochs", 0),
                                         ("epochs", 2.0), ("train_size", -5)])
def test_configs_out_of_range_are_invalid(field: str, value: object) -> None:
    run = RunConfig("g", "resnet20-A", "report", 0, epochs=2)
    record = fake_record(run, [0.5, 0.6])
    record["config"][field] = value
    with pytest.raises(RecordError, match="bad config"):
        validate_record(resealed(record))
    record = fake_record(run, [0.5, 0.6])
    record["provenance"]["wall_seconds"] = -1
    with pytest.raises(RecordError, match="wall_seconds"):
        validate_record(resealed(record))


# ---------------------------------------------------------------- 5. locks of any shape, live and dead

LOCK_SHAPES = {
    "number": b"42", "list": b"[1, 2]", "string": b'"x"', "null-pid": b'{"pid": null, "host": "h"}',
    "huge-pid": b'{"pid": 99999999999999999999999, "host": "h"}', "pid-2**40": b'{"pid": 1099511627776, "host": "h"}',
    "bool-pid": b'{"pid": true, "host": "h"}', "negative-pid": b'{"pid": -7, "host": "h"}', "empty-object": b"{}",
    "host-a-number": b'{"pid": 1, "host": 5}',
}


@pytest.mark.parametrize("name", sorted(LOCK_SHAPES))
def test_a_lock_of_the_wrong_shape_is_taken_over_in_one_line(name: str, tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    path = lock_path(target)
    path.write_bytes(LOCK_SHAPES[name])
    assert lock_holder(target) is None  # stale: and removed as litter
    assert not path.exists()
    path.write_bytes(LOCK_SHAPES[name])
    with pytest.warns(UserWarning, match=re.escape(f"lock {path} is malformed")):
        lock = claim(target)
    assert json.loads(path.read_text())["token"] == lock.token
    lock.release()
    assert not path.exists()


@pytest.mark.parametrize("garbage", [b"", b"\xff\x00garbage", b"[" * 3000 + b"]" * 3000, b"[" * 10**6])
def test_garbage_being_written_is_waited_for_then_taken_over(garbage: bytes, tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    path = lock_path(target)
    path.write_bytes(garbage)
    with pytest.raises(LockedError, match="a malformed lock \\(empty or not JSON\\)"):
        claim(target)  # a writer may be between create and write: not taken at once
    old = time.time() - 120
    os.utime(path, (old, old))
    with pytest.warns(UserWarning, match="malformed"):
        claim(target).release()
    assert describe({"raw": True, "why": "x"}) == "a malformed lock (x)"


def _lock(target: Path, **fields: object) -> Path:
    path = lock_path(target)
    path.write_text(json.dumps({"host": socket.gethostname(), "token": "theirs"} | fields))
    return path


def test_a_lock_of_a_live_process_holds_and_pid_reuse_does_not(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    holder = subprocess.Popen(["sleep", "60"])
    try:
        start = process_start_time(holder.pid)
        if start is None:
            pytest.skip("process start times need Linux /proc")
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        identity = process_identity(holder.pid)
        _lock(target, pid=holder.pid, started=now, process=identity)
        with pytest.raises(LockedError, match=f"pid {holder.pid}"):
            claim(target)
        _lock(target, pid=holder.pid, started=now)  # a lock of an older version: no process identity
        with pytest.raises(LockedError):
            claim(target)
        # the same pid, but the lock was written an hour before that process started: pid reuse
        earlier = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(start - 3600))
        _lock(target, pid=holder.pid, started=earlier)
        assert lock_holder(target) is None
        boot, ticks = identity.split("/")
        _lock(target, pid=holder.pid, started=now, process=f"{boot}/{int(ticks) - 100}")  # an older process's
        claim(target).release()
        mine = claim(target)  # what a lock written today holds
        assert json.loads(lock_path(target).read_text())["process"] == process_identity(os.getpid())
        mine.release()
    finally:
        holder.kill()
        holder.wait()


def test_locks_of_dead_processes_and_other_hosts(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not pid_alive(dead.pid) and not pid_alive(2**40) and not pid_alive(-1)
    path = _lock(target, pid=dead.pid, started="x")
    assert lock_holder(target) is None and not path.exists()  # a killed run's lock is cleaned up
    path = _lock(target, pid=os.getpid(), host="another-host", started="x")
    with pytest.raises(LockedError, match="on another-host"):
        claim(target)  # another host's process cannot be asked: its heartbeat decides
    old = time.time() - 25 * 3600
    os.utime(path, (old, old))
    claim(target).release()


def test_release_of_a_lock_replaced_by_garbage_keeps_it(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    lock = claim(target)
    lock_path(target).write_text("[1, 2]")
    lock.release()  # not ours any more: left as it is, no traceback
    assert lock_path(target).read_text() == "[1, 2]"


@pytest.mark.slow
def test_grid_list_with_broken_locks_prints_no_traceback(tmp_path: Path) -> None:
    results = tmp_path / "res"
    run = RunConfig("precision", "resnet20-A", "report", 0, epochs=1, precision="fp32")
    lock = lock_path(record_path(run, results))
    lock.parent.mkdir(parents=True)
    lock.write_text('{"pid": 99999999999999999999, "host": "%s"}' % socket.gethostname())
    p = cli("grid", "list", "precision", "--results", str(results), "--checkpoints", str(tmp_path / "ck"),
            "--device", "cpu")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert "running" not in p.stdout


# ---------------------------------------------------------------- 6. a seed-parallel group survives a kill


def _group(seeds: tuple[int, ...] = (0, 1), epochs: int = 1) -> list[RunConfig]:
    return [RunConfig("precision", SPEC.key, "report", s, epochs=epochs, train_size=100) for s in seeds]


@pytest.mark.slow
def test_a_kill_between_the_group_record_writes_loses_nothing(tiny_data, tiny_zip: Path, tmp_path: Path) -> None:
    """The state a kill between the K record writes leaves (the finished group checkpoint, seed 0's record,
    no record of seed 1) is resumed, with another --seed-parallel, by writing seed 1's record from the
    checkpoint: nothing is trained again, and the record is the one the uninterrupted group wrote."""
    runs = [RunConfig("precision", "resnet20-A", "report", s, epochs=1, precision="fp32") for s in (0, 1)]
    whole = run_group(runs, tiny_data, results=tmp_path / "whole", checkpoints=tmp_path / "ck0", device="cpu",
                      precision="fp32", progress=False)
    results, ck = tmp_path / "res", tmp_path / "ck"
    ckpt = group_checkpoint_path(runs, ck)
    with pytest.raises(Interrupted):  # the group trained to its end and checkpointed: then the kill
        fit_stacked(runs[0].spec, runs[0].recipe_obj(), tiny_data, [0, 1], device="cpu", precision="fp32",
                    checkpoint=ckpt, progress=False, on_epoch=stop_after(1))
    record_path(runs[0], results).parent.mkdir(parents=True)
    shutil.copy(record_path(runs[0], tmp_path / "whole"), record_path(runs[0], results))  # seed 0's write happened
    seed0 = record_path(runs[0], results).read_bytes()

    assert run_state(runs[1], results, ck) == "partial"  # not todo: its group's checkpoint holds it
    assert group_checkpoints(runs[1], ck) == [(ckpt, [0, 1])]
    assert plan_groups([runs[1]], 1, ck) == [[runs[1]]]
    listed = cli("grid", "list", "precision", "--results", str(results), "--checkpoints", str(ck), "--device", "cpu",
                 "--seeds", "0,1", "--only", "*fp32*")
    assert re.search(rf"{runs[1].run_id}\s+partial", listed.stdout), listed.stdout
    p = cli("grid", "run", "precision", "--results", str(results), "--checkpoints", str(ck), "--device", "cpu",
            "--seeds", "0,1", "--only", "*fp32*", "--seed-parallel", "off", "--quiet",
            "--precision", "fp32", "--source", str(tiny_zip), env={"RESNET_NB_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stdout + p.stderr
    got = read_record(record_path(runs[1], results), runs[1])
    assert untimed(got["history"]) == untimed(whole[1]["history"])  # the group's seed 1, not a new single run
    assert got["provenance"]["seed_group"] == [0, 1]
    assert len(got["provenance"]["segments"]) == 1  # the resume trained no epoch
    assert record_path(runs[0], results).read_bytes() == seed0
    assert not ckpt.exists() and not list(ck.rglob("*.pt"))


@pytest.mark.slow
def test_a_group_killed_mid_training_resumes_with_its_seeds_whatever_k(tiny_data, tmp_path: Path) -> None:
    runs = _group((0, 1, 2), epochs=2)
    results, ck = tmp_path / "res", tmp_path / "ck"
    ckpt = group_checkpoint_path(runs, ck)
    with pytest.raises(Interrupted):
        fit_stacked(SPEC, runs[0].recipe_obj(), tiny_data, [0, 1, 2], device="cpu", precision="fp32",
                    checkpoint=ckpt, progress=False, on_epoch=stop_after(1))
    # K is 2 now: the three runs still go as their group of three, and resume its epoch 2
    assert plan_groups(runs, 2, ck) == [runs]
    records = run_group(runs[1:], tiny_data, results=results, checkpoints=ck, device="cpu", precision="fp32",
                        progress=False)
    assert sorted(r["config"]["seed"] for r in records) == [0, 1, 2]
    assert all(r["provenance"]["seed_group"] == [0, 1, 2] for r in records)
    assert all(len(r["history"]) == 2 and len(r["provenance"]["segments"]) == 2 for r in records)
    assert not ckpt.exists()


# ---------------------------------------------------------------- 7. memory bounded by the input


def _lying_zip(tiny_zip: Path, out: Path, declared: int) -> str:
    """A copy of the tiny zip whose first image declares ``declared`` bytes (local and central headers)."""
    data = bytearray(tiny_zip.read_bytes())
    with zipfile.ZipFile(tiny_zip) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(".png"))
    local = info.header_offset
    struct.pack_into("<I", data, local + 22, declared)  # local header: uncompressed size
    central = data.find(b"PK\x01\x02")  # the central directory: find the member's record
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46: central + 46 + name_len].decode() == info.filename:
            struct.pack_into("<I", data, central + 24, declared)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    out.write_bytes(bytes(data))
    return info.filename


def test_a_zip_member_declaring_gigabytes_is_refused_before_decoding(tiny_zip: Path, tmp_path: Path) -> None:
    lying = tmp_path / "lying.zip"
    member = _lying_zip(tiny_zip, lying, 3 << 29)  # 1.5 GiB
    with pytest.raises(DataError, match=re.escape(f"{member} in {lying} declares 1,610,612,736 bytes")):
        load_cifar10(lying, cache=tmp_path / "cache", progress=False)
    code = ("import resource\nfrom resnet_nb.data import load_cifar10, DataError\n"
            "def peak():\n    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "before = peak()\n"
            f"try:\n    load_cifar10({str(lying)!r}, cache={str(tmp_path / 'c2')!r}, progress=False)\n"
            "except DataError:\n    print(peak() - before)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert int(p.stdout.strip()) < 100_000, p.stdout + p.stderr  # kB: the peak grew by under 100 MB


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 32x32 PNG whose header (with a correct CRC) claims another size."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, "PNG")
    png = bytearray(buf.getvalue())
    struct.pack_into(">II", png, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def test_an_image_header_claiming_a_huge_size_is_refused_before_decoding(tiny_image_root, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(tiny_image_root["folder"], folder)
    victim = next((folder / "train" / "cat").iterdir())
    victim.write_bytes(_png_claiming(12_000, 12_000))
    with pytest.raises(DataError, match=re.escape(f"is 12000x12000, CIFAR-10 images are 32x32")):
        load_cifar10(folder, cache=tmp_path / "cache", progress=False)
    big = next((folder / "test" / "dog").iterdir())
    big.write_bytes(b"\0" * (MAX_IMAGE_BYTES + 1))
    with pytest.raises(DataError, match="declares 1,048,577 bytes"):
        load_cifar10(folder, cache=tmp_path / "cache", progress=False)


# ---------------------------------------------------------------- 8. an early Ctrl-C


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay", [0.5, 1.5])
def test_an_early_signal_exits_130_in_one_line(sig: signal.Signals, delay: float) -> None:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "resnet_nb", "models"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)  # python has started and is importing torch
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip(f"the command finished within {delay} s, before the signal")
    assert proc.returncode == 130, err
    assert "interrupted" in one_error_line(err) and out == ""


# ---------------------------------------------------------------- 9. absurd arguments, misleading errors

TRAIN = ["train", "--model", "resnet", "--depth", "20", "--shortcut", "A", "--out"]


@pytest.mark.parametrize("args,says", [
    (["--seed", "-1"], "--seed: must be from 0 to 2147483647, got -1"),
    (["--seed", str(2**64)], f"--seed: must be from 0 to 2147483647, got {2**64}"),
    (["--epochs", str(10**12)], "--epochs: must be from 1 to 1000"),
    (["--train-size", "0"], "--train-size: must be from 1 to 50000"),
    (["--depth", "600002"], "--depth: must be from 1 to 1202, got 600002"),
])
def test_absurd_train_arguments_are_refused_before_any_data(args: list[str], says: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    from resnet_nb.__main__ import main

    argv = [*TRAIN, str(tmp_path / "r.json"), "--source", str(tmp_path / "no-data"), *args]  # the last --depth counts
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and says in capsys.readouterr().err


def test_huge_seeds_in_a_grid_are_refused_at_parsing(capsys: pytest.CaptureFixture) -> None:
    from resnet_nb.__main__ import main

    with pytest.raises(SystemExit):
        main(["grid", "list", "report", "--seeds", f"0,{2**63}"])
    assert "seeds must be from 0 to 2147483647" in capsys.readouterr().err
    with pytest.raises(ValueError, match="seed must be a whole number from 0 to"):
        RunConfig("g", "resnet20-A", "report", 2**40)


@pytest.mark.slow
def test_bench_json_into_an_impossible_path_fails_first(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    p = cli("bench", "--json", str(blocker / "out.json"), "--source", str(tmp_path / "no-data"), "--device", "cpu")
    assert p.returncode == 2 and "--json folder" in one_error_line(p.stderr)


def test_a_cache_path_that_is_a_file_is_named(tmp_path: Path, tiny_zip: Path) -> None:
    cache = tmp_path / "cache-file"
    cache.write_text("x")
    p = cli("data", "--source", str(tiny_zip), env={"RESNET_NB_CACHE": str(cache)})
    assert p.returncode == 2 and f"RESNET_NB_CACHE {cache} is a file, not a folder" in one_error_line(p.stderr)


def _as_nobody() -> list[str]:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root (to drop to nobody) and setpriv: root reads any file")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.parametrize("kind", ["zip", "folder", "class-folder"])
@pytest.mark.slow
def test_an_unreadable_source_says_unreadable(kind: str, tiny_image_root, request: pytest.FixtureRequest) -> None:
    prefix = _as_nobody()
    base = Path(tempfile.mkdtemp(prefix="resnet-nb-unreadable-"))  # pytest's own tmp folders are root-only
    base.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    source = base / "src"
    if kind == "zip":
        shutil.copy(tiny_image_root["zip"], source)
    else:
        shutil.copytree(tiny_image_root["folder"], source)
    unreadable = source / "train" / "cat" if kind == "class-folder" else source
    unreadable.chmod(0)
    env = os.environ | {"RESNET_NB_CACHE": str(base / "cache"), "OMP_NUM_THREADS": "1"}
    probe = subprocess.run([*prefix, sys.executable, "-c", "import resnet_nb"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run this interpreter here: {probe.stderr.strip()[-200:]}")
    p = subprocess.run([*prefix, sys.executable, "-m", "resnet_nb", "data", "--source", str(source)], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "is unreadable (Permission denied)" in one_error_line(p.stderr), p.stderr
    assert str(unreadable) in p.stderr


def test_a_relative_data_path_is_made_absolute_before_the_scripts_change_folder(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "c.zip").write_text("x")
    script = f'. {REPO / "scripts" / "data_env.sh"}; cd /; echo "$RESNET_NB_DATA"'
    p = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=os.environ | {"RESNET_NB_DATA": "d/c.zip"},
                       capture_output=True, text=True)
    assert p.stdout.strip() == str(tmp_path / "d" / "c.zip")
    p = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=os.environ | {"RESNET_NB_DATA": "nope/c.zip"},
                       capture_output=True, text=True)
    assert p.returncode == 1 and "nope/c.zip: no such folder or zip" in p.stderr
    text = (REPO / "scripts" / "test.sh").read_text()
    assert text.index("resnet_nb data") < text.index("pytest tests")  # no data: said before the unit tests


# ---------------------------------------------------------------- 10. no litter


def test_a_probe_left_by_a_killed_process_is_removed(tmp_path: Path) -> None:
    code = ("import os, signal, sys\nfrom pathlib import Path\nimport resnet_nb.files as f\n"
            "real = f._tmp_name\n"
            "def killed(path):\n    p = real(path)\n    p.write_bytes(b'ok')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            "f._tmp_name = killed\n"
            f"f.check_writable(Path({str(tmp_path)!r}), 'x')\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, timeout=60)
    assert p.returncode == -signal.SIGKILL
    left = list(tmp_path.glob("..write-probe.tmp-*"))
    assert len(left) == 1  # what a kill mid-probe leaves
    check_writable(tmp_path, "results")
    assert list(tmp_path.iterdir()) == []
