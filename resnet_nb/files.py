"""Files that are never silently wrong, shared or lost: atomic writes, checksummed payloads, run locks.

- :func:`atomic_write` writes through a temporary file that is unique per process (pid + random
  suffix) and renamed over the target only when complete; a failed write removes its temporary
  file, and temporary files left by dead writers (``kill -9``) are removed by the next writer.
  A full disk raises :class:`DiskFullError` (one line naming the file); the previous file stays.
- :func:`seal` / :func:`unseal` frame a binary payload with its length and sha256, so that a
  truncated or altered file is recognised before a byte of it is used.
- :func:`claim` takes an exclusive lock on a run (a lock file created with ``O_CREAT|O_EXCL``
  holding pid, host, the process's identity and the lock's start time); a lock whose process is dead (same
  host), whose pid now names a process that started after the lock was written (pid reuse; Linux),
  or that has not been refreshed for ``max_age`` seconds (another host) is stale and taken over and
  removed. A lock file of any other content (a number, a list, a pid that names no process,
  garbage) is broken: taken over with one warning naming it, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

SEAL_MAGIC = b"RESNET_NB-SEALED-1\n"
LOCK_MAX_AGE = 24 * 3600.0  # seconds without a heartbeat after which a lock of another host is stale
_TMP = re.compile(r"\.tmp-(\d+)-[0-9a-f]+$")
PID_MAX = 1 << 22  # Linux's largest possible pid_max (4,194,304): a larger pid names no process
LOCK_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
PID_REUSE_SLACK = 60.0  # seconds: see _pid_reused


class DiskFullError(OSError):
    """No space left on the device while writing a file; the message names the file."""


class CorruptFileError(ValueError):
    """A sealed file is truncated, altered or not sealed at all; the message names the file."""


class LockedError(RuntimeError):
    """Another live process holds the run's lock; the message names it."""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a zombie counts as dead)."""
    if not isinstance(pid, int) or not 0 < pid <= PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) holds nothing any more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _start_ticks(pid: int) -> int | None:
    """``/proc/<pid>/stat`` field 22: when the process started, in clock ticks after boot (Linux)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_identity(pid: int) -> str | None:
    """``<boot id>/<start ticks>``: the same for the same process only, unlike its pid (reused, and after a
    reboot). Exact, unlike a start time read from the wall clock, which a clock step moves. None: not Linux."""
    ticks = _start_ticks(pid)
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return None if ticks is None else f"{boot}/{ticks}"


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch, from the boot time ``btime`` in whole seconds:
    a clock step since boot moves it), or None where that is unknown (not Linux)."""
    ticks = _start_ticks(pid)
    try:
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return None if ticks is None else boot + ticks / os.sysconf("SC_CLK_TCK")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove temporary files of ``path`` whose writer process is dead; returns what was removed."""
    removed = []
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{glob_escape(path.name)}.tmp-*"):
            m = _TMP.search(tmp.name)
            if m and not pid_alive(int(m.group(1))):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a fresh temporary file, fsync it and rename it to ``path``.

    Either ``path`` holds the complete new content or (on any error, or a kill) its old one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            full = DiskFullError(f"no space left on the device writing {path}; free some space and run again "
                                 "(the previous version of the file is kept)")
            full.errno = exc.errno
            raise full from None
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a unique temporary file and rename, so a crash never leaves half a file."""
    atomic_write_bytes(path, text.encode())


def seal(payload: bytes) -> bytes:
    """``payload`` framed by a magic line, its length and its sha256 (see :func:`unseal`)."""
    return SEAL_MAGIC + f"{len(payload)} {hashlib.sha256(payload).hexdigest()}\n".encode() + payload


def unseal(data: bytes, where: str) -> bytes:
    """The payload of :func:`seal` after checking its length and sha256; else CorruptFileError."""
    if not data.startswith(SEAL_MAGIC):
        raise CorruptFileError(f"{where} is not a sealed resnet_nb file (damaged, or written by an older version)")
    header_end = data.find(b"\n", len(SEAL_MAGIC))
    try:
        size_text, digest = data[len(SEAL_MAGIC):header_end].decode().split()
        size = int(size_text)
    except ValueError:
        raise CorruptFileError(f"{where} has a damaged header") from None
    payload = data[header_end + 1:]
    if len(payload) != size:
        raise CorruptFileError(f"{where} is truncated or extended ({len(payload)} of {size} bytes)")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CorruptFileError(f"{where} does not match its sha256 (altered or damaged on disk)")
    return payload


# ---------------------------------------------------------------- run locks


@dataclass
class Lock:
    """A held lock file; :meth:`refresh` is the heartbeat, :meth:`release` removes it."""

    path: Path
    token: str

    def refresh(self) -> None:
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def release(self) -> None:
        info = _read_lock(self.path)
        if info is not None and info.get("token") == self.token:  # never remove a lock we lost
            with contextlib.suppress(OSError):
                self.path.unlink()


def lock_path(target: Path) -> Path:
    """The lock file of a run whose record is ``target``: a hidden sibling."""
    return Path(target).with_name(f".{Path(target).name}.lock")


def lock_holder(target: Path, max_age: float = LOCK_MAX_AGE) -> dict | None:
    """Who holds the lock of ``target`` (pid, host, started), or None when it is free or stale.

    A stale lock found here is removed (a killed run's lock is litter), as :func:`claim` would.
    """
    path = lock_path(target)
    info = _read_lock(path)
    if info is not None and _stale(info, max_age):
        with contextlib.suppress(OSError):
            _break_stale(path, info, max_age)
        return None
    return info


def _read_lock(path: Path) -> dict | None:
    """The lock's content and ``age`` (seconds since its last heartbeat), None when there is no lock.

    Content that is not JSON is ``raw`` (a writer killed between create and write leaves it empty);
    JSON that is not a lock of this shape is ``broken``, with the reason.
    """
    try:
        age = time.time() - path.stat().st_mtime
        with open(path, "rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        return None
    except OSError as exc:  # unreadable (permissions): judged by age like an empty one
        return {"age": 0.0, "raw": True, "why": f"unreadable: {exc.strerror or exc}"}
    try:
        info = json.loads(raw.decode())
    except (ValueError, RecursionError):
        return {"age": age, "raw": True, "why": "empty or not JSON"}
    why = _lock_shape_problem(info)
    return {"age": age, "broken": True, "why": why} if why else info | {"age": age}


def _lock_shape_problem(info: object) -> str | None:
    """Why ``info`` is not a lock this module wrote, or None."""
    if not isinstance(info, dict):
        return f"holds a JSON {type(info).__name__}, not a lock"
    pid = info.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= PID_MAX:
        return f"pid {pid!r} is not a process id"
    if not isinstance(info.get("host"), str) or not isinstance(info.get("token", ""), str):
        return "host or token is not a string"
    return None


def _stale(info: dict, max_age: float) -> bool:
    if info.get("broken"):
        return True  # no process of ours wrote it: nothing to wait for
    if info.get("raw"):
        return info["age"] > 60  # an empty lock file is written within microseconds of its creation
    if info["host"] == socket.gethostname():
        return not pid_alive(info["pid"]) or _pid_reused(info)
    return info["age"] > max_age  # another host's process cannot be asked: only its heartbeat tells


def _pid_reused(info: dict) -> bool:
    """Whether the live process with the lock's pid is another process than the one that wrote the lock.

    Locks record their process's :func:`process_identity` (``process``: exact). Older locks only say
    when they were written (``started``): a process that started more than :data:`PID_REUSE_SLACK`
    seconds after that is another one (the slack absorbs clock steps; a reused pid is normally hours
    younger). Unknown (not Linux, an unparseable time): False, judged as before, by the pid being alive.
    """
    if isinstance(info.get("process"), str):
        now = process_identity(info["pid"])
        return now is not None and now != info["process"]
    now_start = process_start_time(info["pid"])
    try:
        written = datetime.strptime(str(info.get("started")), LOCK_TIME_FORMAT).timestamp()
    except ValueError:
        return False
    return now_start is not None and now_start > written + PID_REUSE_SLACK


def describe(info: dict) -> str:
    if info.get("raw") or info.get("broken"):
        return f"a malformed lock ({info.get('why')})"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('started', '?')}"


def claim(target: Path, max_age: float = LOCK_MAX_AGE) -> Lock:
    """Lock the run whose record is ``target``; LockedError when a live process holds it."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    content = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "token": token,
                          "started": time.strftime(LOCK_TIME_FORMAT),
                          "process": process_identity(os.getpid())}).encode()
    for _ in range(1000):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _read_lock(path)
            if info is not None and not _stale(info, max_age):
                raise LockedError(f"{target} is being run by {describe(info)} (lock {path}); "
                                  "wait for it, or delete the lock if that process is gone") from None
            if info is not None:
                if info.get("broken") or info.get("raw"):
                    warnings.warn(f"lock {path} is malformed ({info['why']}); taken over", stacklevel=2)
                _break_stale(path, info, max_age)
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return Lock(path, token)
    raise LockedError(f"could not claim {path}: other processes keep taking it")


def _break_stale(path: Path, seen: dict, max_age: float) -> None:
    """Remove a stale lock, one process at a time, and only the very lock that was judged stale.

    Without the breaker two processes could each judge the same stale lock, one remove it and
    create its own, and the other then remove that new, live lock. The breaker is held for
    microseconds; one left by a process killed right then is removed after 10 s.
    """
    breaker = path.with_name(f"{path.name}.break")
    try:
        os.close(os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - breaker.stat().st_mtime > 10:
                breaker.unlink()
        time.sleep(0.005)
        return
    try:
        now = _read_lock(path)
        if now is not None and now.get("token") == seen.get("token") and _stale(now, max_age):
            path.unlink()
    except FileNotFoundError:
        pass
    finally:
        breaker.unlink()


@contextlib.contextmanager
def claimed(target: Path, max_age: float = LOCK_MAX_AGE) -> Iterator[Lock]:
    lock = claim(target, max_age)
    try:
        yield lock
    finally:
        lock.release()


def check_writable(folder: Path, what: str) -> None:
    """Prove a file can be written in ``folder`` (or, where it does not exist yet, in its nearest
    existing parent, which is left as it is); ValueError naming the folder otherwise."""
    folder = Path(folder).absolute()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        remove_stale_temps(existing / ".write-probe")  # probes of processes killed mid-probe
        probe = _tmp_name(existing / ".write-probe")
        with open(probe, "xb") as f:
            f.write(b"ok")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"{what} folder {folder} is not writable ({exc.strerror or exc}); "
                         "choose another folder or fix its permissions") from None
