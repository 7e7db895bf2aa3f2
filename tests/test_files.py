"""files.py: atomic writes (unique temps, cleanup after kill -9, full disk), sealed payloads, run locks.

Faults are injected for real: SIGKILL in the middle of a write, a tmpfs that runs full, lock files
of processes that were killed, processes racing for one lock.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from resnet_nb.files import (CorruptFileError, DiskFullError, LockedError, atomic_write, atomic_write_bytes,
                             atomic_write_text, check_writable, claim, claimed, lock_holder, lock_path, pid_alive,
                             remove_stale_temps, seal, unseal)

REPO = Path(__file__).resolve().parent.parent


def py(code: str, *args: str) -> subprocess.Popen:
    """A fresh interpreter running ``code`` with the package importable."""
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


@pytest.fixture()
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``make(size, readonly=False)``: a real tmpfs mount (needs root and mount; else the test is skipped)."""
    mounts: list[Path] = []

    def make(size: str, readonly: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounts)}"
        point.mkdir()
        opts = f"size={size}" + (",ro" if readonly else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounts.append(point)
        return point

    yield make
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], check=False)


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_temp_names_are_unique_per_process_and_call(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    names = []

    def spy(f) -> None:
        names.append(Path(f.name).name)
        f.write(b"x")

    atomic_write(target, spy)
    atomic_write(target, spy)
    assert len(set(names)) == 2
    assert all(n.startswith(f".a.bin.tmp-{os.getpid()}-") for n in names)


def test_a_failed_write_removes_its_temp_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write_text(target, "good")

    def half_then_fail(f) -> None:
        f.write(b"partial")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


KILLED_WRITER = r"""
import sys, time
from pathlib import Path
from resnet_nb.files import atomic_write
target, flag = Path(sys.argv[1]), Path(sys.argv[2])
def slow(f):
    f.write(b"NEW" * 1000)
    f.flush()
    flag.touch()      # half written: the test kills us now
    time.sleep(60)
atomic_write(target, slow)
"""


def test_sigkill_during_a_write_keeps_the_old_file_and_the_next_writer_cleans_up(tmp_path: Path) -> None:
    target, flag = tmp_path / "ckpt.pt", tmp_path / "flag"
    atomic_write_bytes(target, b"OLD")
    proc = py(KILLED_WRITER, str(target), str(flag))
    wait_for(flag)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".ckpt.pt.tmp-")]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(f".ckpt.pt.tmp-{proc.pid}-")
    assert target.read_bytes() == b"OLD"
    assert not pid_alive(proc.pid)
    atomic_write_bytes(target, b"NEXT")  # the next writer removes the dead writer's temp file
    assert target.read_bytes() == b"NEXT"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "flag"]


def test_temps_of_live_writers_are_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    mine = tmp_path / f".a.txt.tmp-{os.getpid()}-abcd1234"
    mine.write_text("in progress")
    assert remove_stale_temps(target) == []
    assert mine.exists()


def test_disk_full_on_a_real_tmpfs(tmpfs) -> None:
    """A full disk: one error naming the file; the last good file stays complete; no temp is left."""
    disk = tmpfs("64k")
    target = disk / "state.bin"
    atomic_write_bytes(target, b"G" * 20_000)
    with pytest.raises(DiskFullError) as err:
        atomic_write_bytes(target, b"N" * 200_000)
    assert str(target) in str(err.value) and "no space left" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    assert target.read_bytes() == b"G" * 20_000
    assert sorted(p.name for p in disk.iterdir()) == ["state.bin"]


def test_disk_full_simulated_where_tmpfs_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same contract without a mount: the write raises ENOSPC (as the kernel would) half way."""
    import errno

    target = tmp_path / "state.bin"
    atomic_write_bytes(target, b"GOOD")

    def full(f) -> None:
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match="no space left on the device writing .*state.bin"):
        atomic_write(target, full)
    assert target.read_bytes() == b"GOOD"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]


def test_check_writable(tmp_path: Path, tmpfs) -> None:
    check_writable(tmp_path / "new" / "folder", "results")  # writable once created: nothing is created now
    check_writable(tmp_path, "results")
    assert list(tmp_path.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=f"results folder {blocker}/sub is not writable"):
        check_writable(blocker / "sub", "results")
    readonly = tmpfs("16k", readonly=True)
    with pytest.raises(ValueError, match="checkpoint folder .* is not writable .*Read-only"):
        check_writable(readonly, "checkpoint")


# ---------------------------------------------------------------- sealed payloads


def test_seal_roundtrip_and_every_damage_is_named() -> None:
    payload = bytes(range(256)) * 10
    sealed = seal(payload)
    assert unseal(sealed, "f.pt") == payload
    flipped = bytearray(sealed)
    flipped[-100] ^= 0x01
    cases = {"truncated": sealed[:-1], "extended": sealed + b"\0", "altered": bytes(flipped),
             "unsealed": payload, "empty": b""}
    for name, data in cases.items():
        with pytest.raises(CorruptFileError, match="f.pt") as err:
            unseal(data, "f.pt")
        assert len(str(err.value).splitlines()) == 1, name


# ---------------------------------------------------------------- locks


def test_claim_refuses_a_live_holder_and_release_frees_it(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    with claimed(target):
        info = json.loads(lock_path(target).read_text())
        assert (info["pid"], info["host"]) == (os.getpid(), socket.gethostname()) and info["started"]
        with pytest.raises(LockedError, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            claim(target)
        assert lock_holder(target)["pid"] == os.getpid()
    assert not lock_path(target).exists() and lock_holder(target) is None
    claim(target).release()


HOLDER = r"""
import sys, time
from pathlib import Path
from resnet_nb.files import claim
claim(Path(sys.argv[1]))
Path(sys.argv[2]).touch()
time.sleep(60)
"""


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    target, flag = tmp_path / "run.json", tmp_path / "flag"
    proc = py(HOLDER, str(target), str(flag))
    wait_for(flag)
    with pytest.raises(LockedError, match=f"pid {proc.pid}"):
        claim(target)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert lock_path(target).exists()  # left behind by kill -9 ...
    lock = claim(target)  # ... and recognised as stale: its process is gone
    assert json.loads(lock_path(target).read_text())["pid"] == os.getpid()
    lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flag"]


def test_lock_of_another_host_is_stale_only_after_max_age(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    path = lock_path(target)
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "token": "t", "started": "then"}))
    with pytest.raises(LockedError, match="pid 1 on elsewhere since then"):
        claim(target, max_age=3600)
    old = time.time() - 7200
    os.utime(path, (old, old))  # no heartbeat for two hours
    claim(target, max_age=3600).release()


def test_heartbeat_keeps_a_lock_fresh(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    lock = claim(target)
    old = time.time() - 7200
    os.utime(lock.path, (old, old))
    lock.refresh()
    assert time.time() - lock.path.stat().st_mtime < 60


def test_an_empty_lock_file_is_stale_after_a_minute(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    lock_path(target).write_text("")  # a claimer killed between create and write
    with pytest.raises(LockedError):
        claim(target)
    old = time.time() - 120
    os.utime(lock_path(target), (old, old))
    claim(target).release()


RACER = r"""
import sys, time
from pathlib import Path
from resnet_nb.files import claim, LockedError
target, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
try:
    claim(target)
    print("won")
    time.sleep(2)
except LockedError:
    print("lost")
"""


@pytest.mark.slow
def test_processes_racing_for_one_lock_get_exactly_one_winner(tmp_path: Path) -> None:
    target, go = tmp_path / "run.json", tmp_path / "go"
    # a stale lock of a dead process too: every racer tries to break it at the same time
    dead = py("pass")
    dead.wait(timeout=30)
    lock_path(target).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "token": "x"}))
    procs = [py(RACER, str(target), str(go)) for _ in range(6)]
    time.sleep(1.5)  # let them all start and wait at the line
    go.touch()
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(outs) == ["lost"] * 5 + ["won"], outs


def test_a_breaker_never_removes_a_lock_other_than_the_stale_one_it_saw(tmp_path: Path) -> None:
    """The interleaving the race test may not hit: B judged the old lock stale, A broke it and took the
    run, then B gets to break: B must leave A's live lock alone."""
    from resnet_nb.files import _break_stale, _read_lock

    target = tmp_path / "run.json"
    dead = py("pass")
    dead.wait(timeout=30)
    lock_path(target).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "token": "old"}))
    seen_by_b = _read_lock(lock_path(target))
    lock_path(target).unlink()  # A breaks it ...
    a = claim(target)  # ... and claims the run
    _break_stale(lock_path(target), seen_by_b, max_age=3600)  # B, late
    assert json.loads(lock_path(target).read_text())["token"] == a.token
    assert sorted(p.name for p in tmp_path.iterdir()) == [lock_path(target).name]  # breaker released
    a.release()


def test_release_never_removes_a_lock_that_another_process_now_holds(tmp_path: Path) -> None:
    """A lock taken over (judged stale while we were away) is the new holder's: our release leaves it."""
    target = tmp_path / "run.json"
    lock = claim(target)
    theirs = {"pid": 1, "host": socket.gethostname(), "token": "their-token", "started": "now"}
    lock_path(target).write_text(json.dumps(theirs))
    lock.release()
    assert json.loads(lock_path(target).read_text()) == theirs
    lock_path(target).unlink()
    lock = claim(target)
    lock.release()  # our own lock: removed
    assert not lock_path(target).exists()
    lock.release()  # twice: nothing to remove, no error


def test_another_hosts_lock_is_judged_by_its_heartbeat_never_by_a_local_pid(tmp_path: Path) -> None:
    """A pid means nothing on another host: a fresh lock of another host holds even when no process here has
    its pid, and a live local process's lock holds however old its heartbeat."""
    target = tmp_path / "run.json"
    dead = next(p for p in range(PID_MAX_TEST, 1000, -1) if not pid_alive(p))
    lock_path(target).write_text(json.dumps({"pid": dead, "host": "elsewhere", "token": "t", "started": "then"}))
    with pytest.raises(LockedError, match=f"pid {dead} on elsewhere"):
        claim(target, max_age=3600)
    assert lock_holder(target, max_age=3600)["host"] == "elsewhere"
    lock_path(target).unlink()
    mine = claim(target, max_age=3600)
    old = time.time() - 7200
    os.utime(mine.path, (old, old))  # a live process of this host, no heartbeat for two hours
    with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
        claim(target, max_age=3600)
    assert lock_holder(target, max_age=3600)["pid"] == os.getpid()
    mine.release()


PID_MAX_TEST = 4_000_000  # below files.PID_MAX: a pid no process here has
