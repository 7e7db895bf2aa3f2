"""scripts/gpu_grid.sh (the queue of runs handed to K workers, and its deadline) and scripts/cpu_lanes.sh.

A fake ``python`` stands in for the package (the script only calls ``-m resnet_nb``), so
this tests the shell logic without training anything.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE_PY = r"""#!/usr/bin/env bash
# fake python: "-m resnet_nb data" | "-m resnet_nb grid list G --ids ..." | "-m resnet_nb grid run G --only ID ..."
shift 2
case "$1" in
  data) echo "data ok";;
  grid)
    if [ "$2" = list ]; then printf 'r1_s0\nr2_s0\nr3_s0\nr4_s0\nr5_s0\n'; exit 0; fi
    id=""; res=""; graph=""
    while [ $# -gt 0 ]; do
      case "$1" in --only) id=$2;; --results) res=$2;; --cuda-graph) graph=$2;; esac; shift
    done
    echo $$ >>"$res/../pids.txt"
    case "${FAKE_MODE:-}" in
      ignore-term) trap '' TERM INT; sleep 60;;  # a worker stuck in a CUDA call, say
      handle-term) trap 'echo "$id" >>"$res/../stopped.txt"; exit 130' TERM; sleep 60 & wait $!;;
    esac
    sleep 0.5; mkdir -p "$res/report"; echo "{\"graph\": \"$graph\"}" >"$res/report/$id.json";;
esac
"""


@pytest.fixture()
def fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "fakepy"
    path.write_text(FAKE_PY)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def run_grid(fake_python: Path, out: Path, budget: int, min_left: int, **extra: str
             ) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHON": str(fake_python), "MIN_LEFT": str(min_left), "CKPT": str(out / "ckpt"),
                        "PATH": os.environ["PATH"], "GRACE": "2"} | extra
    return subprocess.run(["bash", str(ROOT / "scripts" / "gpu_grid.sh"), "report", str(budget), "2", str(out),
                           "--seeds", "0", "--cuda-graph", "on"],
                          env=env, capture_output=True, text=True, timeout=120, check=True)


def test_every_queued_run_is_done_once_and_gets_the_grid_args(fake_python: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_grid(fake_python, out, budget=60, min_left=5)
    records = sorted(p.name for p in (out / "results" / "report").iterdir())
    assert records == [f"r{i}_s0.json" for i in range(1, 6)]
    assert all((out / "results" / "report" / r).read_text().strip() == '{"graph": "on"}' for r in records)
    assert "5 run(s) queued for 2 workers" in result.stdout and "records written: 5" in result.stdout
    assert len((out / "logs" / "workers.txt").read_text().splitlines()) == 5
    assert not (out / "logs" / "skipped.txt").exists()


def test_no_run_starts_too_close_to_the_deadline(fake_python: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_grid(fake_python, out, budget=5, min_left=30)
    assert "records written: 0" in result.stdout
    assert len((out / "logs" / "skipped.txt").read_text().splitlines()) == 5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_workers_that_ignore_sigterm_are_killed_by_the_deadline(fake_python: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    t0 = time.monotonic()
    result = run_grid(fake_python, out, budget=8, min_left=4, FAKE_MODE="ignore-term")
    took = time.monotonic() - t0
    assert took < 8 + 2, took  # the budget, plus the script's own start and end
    assert "records written: 0" in result.stdout
    exits = (out / "logs" / "workers.txt").read_text().splitlines()
    assert len(exits) == 2 and all(": exit 137 at " in line for line in exits), exits  # SIGKILL: ignored TERM
    assert all(int(line.split(" at ")[1].split()[0]) <= 8 for line in exits), exits
    assert len((out / "logs" / "skipped.txt").read_text().splitlines()) == 3
    pids = [int(p) for p in (out / "pids.txt").read_text().split()]
    assert len(pids) == 2 and not any(_alive(p) for p in pids)  # no worker outlives the lease


@pytest.mark.slow
def test_workers_get_sigterm_first_and_can_stop_cleanly(fake_python: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_grid(fake_python, out, budget=7, min_left=4, FAKE_MODE="handle-term")
    assert "records written: 0" in result.stdout
    assert sorted((out / "stopped.txt").read_text().split()) == ["r1_s0", "r2_s0"]  # their TERM handler ran
    exits = (out / "logs" / "workers.txt").read_text().splitlines()
    assert len(exits) == 2 and all(": exit 124 at " in line for line in exits), exits  # stopped by TERM in time
    assert all(int(line.split(" at ")[1].split()[0]) <= 7 - 2 + 1 for line in exits), exits


def test_min_left_must_exceed_grace(fake_python: Path, tmp_path: Path) -> None:
    env = os.environ | {"PYTHON": str(fake_python), "MIN_LEFT": "10", "GRACE": "10"}
    p = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_grid.sh"), "report", "60", "2", str(tmp_path / "o")],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "MIN_LEFT (10 s) must exceed GRACE (10 s)" in p.stderr


# ---------------------------------------------------------------- scripts/cpu_lanes.sh

LANE_PY = r"""#!/usr/bin/env bash
# fake python for cpu_lanes.sh: logs where, with how many threads and with what it was called
shift 2
echo "$PWD|${OMP_NUM_THREADS:-}|$*" >>"$FAKE_LOG"
if [ "$1 $2" = "grid list" ] && [ "$3" = nope ]; then echo "error: unknown grid 'nope'" >&2; exit 2; fi
if [ "$1 $2" = "grid unpark" ] && [ -n "${FAKE_UNPARK_FAIL:-}" ]; then echo "error: carried checkpoint x" >&2; exit 2; fi
[ "$1 $2" = "grid run" ] && sleep 0.3
exit 0
"""


@pytest.fixture()
def lane_repo(tmp_path: Path) -> Path:
    """A git repository holding scripts/cpu_lanes.sh and a resnet_nb/ folder, committed."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "resnet_nb").mkdir()
    (repo / "scripts" / "cpu_lanes.sh").write_text((ROOT / "scripts" / "cpu_lanes.sh").read_text())
    (repo / "resnet_nb" / "__init__.py").write_text("")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    fake = tmp_path / "fakepy"
    fake.write_text(LANE_PY)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return repo


def run_lanes(repo: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | extra | {"PYTHON": str(repo.parent / "fakepy"), "FAKE_LOG": str(repo.parent / "calls.txt"),
                        "LANES_DIR": str(repo.parent / "lanes"), "RESULTS": str(repo.parent / "results"),
                        "WAIT": "1", "STAGGER": "0"}
    return subprocess.run(["bash", str(repo / "scripts" / "cpu_lanes.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_cpu_lanes_run_each_grid_in_turn_from_a_frozen_worktree(lane_repo: Path) -> None:
    (lane_repo / "resnet_nb" / "__init__.py").write_text("x = 1\n")  # uncommitted: not in the lanes
    p = run_lanes(lane_repo, "2", "report", "precision10")
    assert p.returncode == 0, p.stderr
    assert "uncommitted changes; the lanes run HEAD" in p.stderr
    head = subprocess.run(["git", "-C", str(lane_repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    frozen = lane_repo.parent / "lanes" / f"worktree-{head}"
    assert (frozen / "resnet_nb" / "__init__.py").read_text() == ""  # HEAD, not the edited checkout
    calls = [line.split("|") for line in (lane_repo.parent / "calls.txt").read_text().splitlines()]
    assert {cwd for cwd, _, _ in calls} == {str(frozen)}
    results = str(lane_repo.parent / "results")
    checks = [c for _, _, c in calls if c.startswith("grid list")]
    assert checks == [f"grid list {g} --ids --results {results}" for g in ("report", "precision10")]
    runs = [(threads, c) for _, threads, c in calls if c.startswith("grid run")]
    assert sorted(runs) == sorted([("1", f"grid run {g} --results {results} --quiet")
                                   for g in ("report", "precision10")] * 2)  # each lane: one thread, both grids
    logs = sorted((lane_repo.parent / "lanes" / "logs").iterdir())
    assert len(logs) == 2 and all(re.findall(r"=== grid (\S+) exit 0", log.read_text()) == ["report", "precision10"]
                                  for log in logs)  # in the order given
    assert p.stdout.count("(stop: kill -- -") == 2


@pytest.mark.parametrize("fails", [False, True])
def test_cpu_lanes_unpark_carried_checkpoints_before_the_lanes_start(lane_repo: Path, fails: bool) -> None:
    (lane_repo / "carry" / "paper").mkdir(parents=True)  # carried runs of grid paper only
    p = run_lanes(lane_repo, "1", "report", "paper:resnet20*", **({"FAKE_UNPARK_FAIL": "1"} if fails else {}))
    assert p.returncode == 0, p.stderr
    calls = [line.split("|")[2] for line in (lane_repo.parent / "calls.txt").read_text().splitlines()]
    results = lane_repo.parent / "results"
    unparks = [i for i, c in enumerate(calls) if c.startswith("grid unpark")]
    assert [calls[i] for i in unparks] == [
        f"grid unpark paper --only resnet20* --results {results} --carry {lane_repo / 'carry'}"]
    assert unparks[0] < min(i for i, c in enumerate(calls) if c.startswith("grid run"))
    assert ("could not unpark carry/paper" in p.stderr) is fails  # a bad carried file never keeps the lanes idle
    assert sum(c.startswith("grid run") for c in calls) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["0", "report"], "LANES must be at least 1, got 0"),
    (["two", "report"], "LANES must be a whole number, got 'two'"),
    (["2"], "usage: scripts/cpu_lanes.sh LANES GRID"),
    (["2", "report", "nope"], "unknown grid 'nope'"),
])
def test_cpu_lanes_refuse_bad_input_before_any_lane_starts(lane_repo: Path, args: list[str], message: str) -> None:
    p = run_lanes(lane_repo, *args)
    assert p.returncode == 2 and message in p.stderr
    calls = lane_repo.parent / "calls.txt"
    assert not calls.exists() or "grid run" not in calls.read_text()
