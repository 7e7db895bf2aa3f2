"""scripts/gpu_paper_session.sh: tests, bench, seed-parallel paper grid, checkpoints carried across leases.

A fake ``python`` stands in for pytest and the package, so this tests the shell logic only.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE_PY = r"""#!/usr/bin/env bash
# fake python: -c ... | -m pytest ... | -m resnet_nb {data, bench, grid list|run}
echo "$*" >>"$FAKE_LOG"
[ "$1" = -c ] && exit 0
mod=$2; shift 2
if [ "$mod" = pytest ]; then echo "1 passed"; exit "${FAKE_PYTEST_RC:-0}"; fi
case "$1" in
  data) echo "data ok";;
  bench)
    while [ $# -gt 0 ]; do [ "$1" = --json ] && echo '{}' >"$2"; shift; done;;
  grid)
    if [ "$2" = list ]; then printf 'r20_s0,r20_s1,r20_s2\np20_s0,p20_s1,p20_s2\nr56_s0,r56_s1,r56_s2\n'; exit 0; fi
    ids=""; res=""; sp=""; graph=""
    while [ $# -gt 0 ]; do
      case "$1" in --only) ids=$2;; --results) res=$2;; --seed-parallel) sp=$2;; --cuda-graph) graph=$2;; esac; shift
    done
    sleep "${FAKE_RUN_S:-0.3}"
    for id in ${ids//,/ }; do echo "{\"sp\": \"$sp\", \"graph\": \"$graph\"}" >"$res/paper/$id.json"; done;;
esac
"""


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE_PY)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return os.environ | {"PYTHON": str(fake), "FAKE_LOG": str(tmp_path / "calls.txt"), "MIN_LEFT": "2",
                         "CKPT": str(tmp_path / "ckpt"), "CARRY_CKPT": str(tmp_path / "carry.tgz"),
                         "RESNET_NB_CACHE": str(tmp_path / "cache"), "RESERVE": "1", "WORK": str(tmp_path / "work"),
                         "RESULTS_SRC": str(tmp_path / "repo_results"),  # not the repository's own records
                         "GRACE": "1"}  # gpu_grid.sh needs MIN_LEFT > GRACE


def session(env: dict[str, str], out: Path, seconds: int, **extra: str) -> subprocess.CompletedProcess[str]:
    script = extra.pop("script", "gpu_paper_session.sh")
    return subprocess.run(["bash", str(ROOT / "scripts" / script), str(seconds), str(out), "2"],
                          env=env | extra, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)


def test_a_lease_runs_tests_bench_and_seed_parallel_groups(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    session(env, out, 60)
    calls = Path(env["FAKE_LOG"]).read_text()
    assert "-m pytest -q -p no:cacheprovider tests/test_cuda_graph.py tests/test_stacked.py" in calls
    assert "--seed-parallel 1,2,5,10" in calls and (out / "bench_seed_parallel.json").exists()
    with tarfile.open(out / "records.tgz") as tar:
        names = sorted(n.removeprefix("./") for n in tar.getnames() if n.endswith(".json"))
    assert names == sorted(f"paper/{c}_s{s}.json" for c in ("r20", "p20", "r56") for s in range(3))
    with tarfile.open(out / "records.tgz") as tar:
        member = tar.extractfile("./paper/r56_s2.json")
        assert member is not None and member.read().decode().strip() == '{"sp": "auto", "graph": "auto"}'
    session_log = (out / "session.txt").read_text()
    assert session_log.index("data: exit 0") < session_log.index("cuda tests: exit 0 -> --cuda-graph auto")
    assert "records: 9 in all" in (out / "session.txt").read_text()


def test_a_lease_starts_from_the_records_already_there(env: dict[str, str], tmp_path: Path) -> None:
    done = tmp_path / "repo_results" / "paper"
    done.mkdir(parents=True)
    (done / "plain20_paper_s0.json").write_text('{"done": "earlier"}')
    out = tmp_path / "out"
    session(env, out, 4, SKIP_BENCH="1", MIN_LEFT="30")  # no group starts: only the records it began with
    with tarfile.open(out / "records.tgz") as tar:
        member = tar.extractfile("./paper/plain20_paper_s0.json")
        assert member is not None and member.read() == b'{"done": "earlier"}'
    assert "records: 1 in all" in (out / "session.txt").read_text()


def test_failing_cuda_tests_mean_eager_and_no_bench_when_skipped(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    session(env, out, 60, FAKE_PYTEST_RC="1", SKIP_BENCH="1", SEED_PARALLEL="3")
    calls = Path(env["FAKE_LOG"]).read_text()
    assert " bench " not in calls and "--seed-parallel 3 --cuda-graph off" in calls


def test_checkpoints_are_carried_in_and_out(env: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "prev"
    (src / "paper").mkdir(parents=True)
    (src / "paper" / "resnet56-A_paper_seeds0-1-2.pt").write_bytes(b"epoch 40")
    with tarfile.open(env["CARRY_CKPT"], "w:gz") as tar:
        tar.add(src / "paper", arcname="paper")
    out = tmp_path / "out"
    session(env, out, 60, SKIP_BENCH="1")
    assert "resumed checkpoints: 1" in (out / "session.txt").read_text()
    with tarfile.open(out / "checkpoints.tgz") as tar:
        assert "./paper/resnet56-A_paper_seeds0-1-2.pt" in tar.getnames()


def test_no_group_starts_too_close_to_the_end(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    session(env, out, 4, SKIP_BENCH="1", MIN_LEFT="30")
    assert "records: 0 in all" in (out / "session.txt").read_text()


def test_the_default_lease_takes_report_then_precision10_then_paper(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    session(env, out, 60, script="gpu_session.sh", SKIP_BENCH="1")
    calls = Path(env["FAKE_LOG"]).read_text().splitlines()
    listed = [c.split()[4] for c in calls if c.startswith("-m resnet_nb grid list")]
    assert listed == ["report", "precision10", "paper"]
    log = (out / "session.txt").read_text()
    assert log.index("grid report:") < log.index("grid precision10:") < log.index("grid paper:")


def test_a_grid_is_not_started_without_time_for_a_run(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    session(env, out, 20, script="gpu_session.sh", SKIP_BENCH="1", MIN_LEFT="30")
    log = (out / "session.txt").read_text()
    assert "grid report: not started" in log and "grid paper: not started" in log
