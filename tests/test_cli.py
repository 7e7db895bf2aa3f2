"""Command line: ``python -m resnet_nb``. Errors are one line and exit status 2, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_nb.__main__ import main, parse_seeds

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real entry point in a fresh interpreter (exit status, stderr as a user sees them)."""
    full_env = os.environ | {"OMP_NUM_THREADS": "1"} | (env or {})
    return subprocess.run([sys.executable, "-m", "resnet_nb", *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=120)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# ---------------------------------------------------------------- in a subprocess


@pytest.mark.slow
def test_models_subprocess() -> None:
    p = cli("models")
    assert p.returncode == 0, p.stderr
    for count in ("269,722", "853,018", "1,727,962", "11,181,642", "11,173,962"):
        assert count in p.stdout
    lines = {line.split()[0]: line.split() for line in p.stdout.splitlines()[1:]}
    assert lines["resnet20-A"][-2:] == ["269,722", "20"]
    assert lines["resnet56-B"][-2:] == ["855,770", "56"]
    assert lines["tv-resnet18-imagenet"][-2:] == ["11,181,642", "18"]


@pytest.mark.slow
def test_bad_depth_subprocess(tmp_path: Path) -> None:
    p = cli("train", "--model", "resnet", "--depth", "21", "--shortcut", "A", "--out", str(tmp_path / "x.json"))
    assert p.returncode == 2
    line = one_error_line(p.stderr)
    assert line.startswith("error:") and "6n+2" in line and "21" in line
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_missing_data_subprocess(tmp_path: Path) -> None:
    p = cli("data", env={"RESNET_NB_DATA": "/nonexistent"})
    assert p.returncode == 2
    line = one_error_line(p.stderr)
    assert line.startswith("error:") and "/nonexistent" in line and "RESNET_NB_DATA" in line and "torchvision" in line


# ---------------------------------------------------------------- in process


@pytest.mark.parametrize("argv", [
    ["frobnicate"],
    [],
    ["grid", "list", "nope"],
    ["grid", "walk", "report"],
    ["train", "--model", "vgg", "--depth", "16", "--out", "x.json"],
    ["train", "--model", "resnet", "--depth", "twenty", "--out", "x.json"],
    ["train", "--model", "resnet", "--depth", "20"],
    ["grid", "run", "report", "--shard", "5/3"],
    ["grid", "run", "report", "--shard", "0/3"],
    ["grid", "list", "report", "--seeds", "a-b"],
])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    line = one_error_line(err)
    assert "error:" in line and "see --help" in line


@pytest.mark.slow
def test_shard_error_subprocess() -> None:
    p = cli("grid", "run", "report", "--shard", "5/3")
    assert p.returncode == 2
    assert "shard" in one_error_line(p.stderr)


def test_models_in_process(capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "269,722" in out and "853,018" in out and "11,181,642" in out
    assert len(out.splitlines()) == 1 + 19


def test_bad_depth_in_process(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--model", "resnet", "--depth", "21", "--shortcut", "A",
                 "--out", str(tmp_path / "x.json")]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error:") and "6n+2" in line


def test_data_missing_env(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("RESNET_NB_DATA", "/nonexistent")
    assert main(["data"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "RESNET_NB_DATA" in line and "does not exist" in line


def test_data_tiny_zip(tiny_zip: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "--source", str(tiny_zip)]) == 0
    out = capsys.readouterr().out
    fields = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in out.splitlines()}
    assert fields["train"] == "200" and fields["test"] == "50"
    assert fields["train_class_counts"] == str([20] * 10)
    assert fields["test_class_counts"] == str([5] * 10)
    assert fields["variant"] == "image-folder" and fields["source"] == "cifar10-tiny.zip (zip)"


def test_train_writes_record_and_refuses_overwrite(tiny_zip: Path, tmp_path: Path, _isolated_env: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run.json"
    argv = ["train", "--model", "resnet", "--depth", "8", "--shortcut", "A", "--epochs", "1", "--train-size", "100",
            "--source", str(tiny_zip), "--device", "cpu", "--precision", "fp32", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "test acc" in stdout and "resnet8-A report seed 0" in stdout and str(out) in stdout
    record = json.loads(out.read_text())
    assert record["run_id"] == "resnet8-A_report_e1_n100_fp32_s0" and record["config"]["grid"] == "cli"
    assert len(record["history"]) == 1 and record["provenance"]["train_size"] == 100
    assert f"{record['history'][-1]['test_acc']:.4f}" in stdout
    assert not list((_isolated_env / "checkpoints").rglob("*.pt"))  # checkpoint removed after the run

    before = out.read_bytes()
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "exists" in line and "never overwritten" in line
    assert out.read_bytes() == before


def test_train_bad_epochs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:  # refused while parsing, before anything is loaded
        main(["train", "--model", "resnet", "--depth", "8", "--shortcut", "A", "--epochs", "0",
              "--out", str(tmp_path / "x.json")])
    assert info.value.code == 2
    assert "--epochs: must be from 1 to 1000, got 0" in one_error_line(capsys.readouterr().err)


@pytest.mark.slow
def test_grid_list(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["grid", "list", "report", "--results", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 70 + 1
    assert out[1].split()[:2] == ["resnet20-A_report_s0", "todo"]
    assert out[-1].startswith("0/70 done")


def test_grid_list_shard_and_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["grid", "list", "report", "--results", str(tmp_path), "--device", "cpu", "--shard", "2/7"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("0/10 done")
    assert main(["grid", "list", "report", "--results", str(tmp_path), "--device", "cpu",
                 "--only", "plain*", "--seeds", "0,1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("0/8 done")
    assert all(line.startswith("plain") for line in lines[1:-1])


@pytest.mark.slow
def test_grid_list_reports_a_corrupt_record_and_goes_on(tmp_path: Path) -> None:
    bad = tmp_path / "report" / "resnet20-A_report_s0.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"format": 1, "run_id": ')
    other = tmp_path / "paper" / "junk.json"  # a bad record of another grid must not matter either
    other.parent.mkdir(parents=True)
    other.write_text("[]")
    p = cli("grid", "list", "report", "--results", str(tmp_path), "--device", "cpu")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert any(str(bad) in line and "skipped" in line for line in p.stderr.splitlines())
    lines = p.stdout.splitlines()
    assert lines[1].split() == ["resnet20-A_report_s0", "invalid"]
    assert lines[2].split()[:2] == ["plain20_report_s0", "todo"]
    assert lines[-1].startswith("0/70 done")
    assert bad.read_text() == '{"format": 1, "run_id": '
    # `grid run` leaves it alone too: not pending, never overwritten
    p = cli("grid", "list", "report", "--results", str(tmp_path), "--ids", "--seeds", "0", "--only", "resnet20-A*")
    assert p.returncode == 0 and p.stdout == "", p.stdout


@pytest.mark.slow
def test_grid_run_warns_once_about_a_corrupt_record_and_leaves_it(tmp_path: Path) -> None:
    # the run's record is invalid: not pending (never overwritten), named once on stderr, data never loaded
    bad = tmp_path / "report" / "resnet20-A_report_s0.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("[]")
    p = cli("grid", "run", "report", "--results", str(tmp_path), "--device", "cpu", "--seeds", "0",
            "--only", "resnet20-A*")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    assert sum(str(bad) in line and "skipped" in line for line in p.stderr.splitlines()) == 1, p.stderr
    assert p.stdout.splitlines()[0] == "0 run(s) to do in grid 'report'"
    assert bad.read_text() == "[]"


def test_grid_run_nothing_to_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # every selected run already has a record: lists nothing to do and never loads data
    # (RESNET_NB_DATA is unset, torchvision not reached)
    from resnet_nb.grids import grid_runs
    from resnet_nb.records import record_path

    from .conftest import fake_record, write_record

    run = next(r for r in grid_runs("paper", [0]) if r.model == "resnet20-A")
    path = record_path(run, tmp_path)
    path.parent.mkdir(parents=True)
    rec = fake_record(run, [0.5] * 1)
    rec["config"]["planned_epochs"] = 1
    write_record(path, rec)
    assert main(["grid", "run", "paper", "--results", str(tmp_path), "--only", "resnet20-A*", "--seeds", "0"]) == 0
    assert "0 run(s) to do" in capsys.readouterr().out


@pytest.mark.slow
def test_grid_list_and_run_skip_runs_a_report_record_stands_in_for(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    import torch

    from resnet_nb.provenance import device_name
    from resnet_nb.records import RunConfig, record_path

    from .conftest import fake_record, write_record

    here = device_name(torch.device("cpu"))
    for seed, dev in ((0, here), (1, "another cpu (7 threads)")):
        twin = RunConfig("report", "plain56", "report", seed)
        write_record(record_path(twin, tmp_path), fake_record(twin, [0.5] * 10, precision="bf16", device_name=dev))
    select = ["--results", str(tmp_path), "--device", "cpu", "--seeds", "0,1", "--only", "plain56*"]
    assert main(["grid", "list", "precision10", *select, "--ids"]) == 0
    assert capsys.readouterr().out.split() == ["plain56_report_fp32_s0", "plain56_report_fp32_s1",
                                               "plain56_report_bf16_s1"]  # seed 1's bf16 ran elsewhere
    assert main(["grid", "list", "precision10", *select]) == 0
    out = capsys.readouterr().out
    assert re.search(r"plain56_report_bf16_s0 +covered *\n", out)
    assert "0/4 done, 1 covered by grid 'report' records; about" in out
    # everything else done: `grid run` has nothing to train and says why the covered run is not trained
    for run_id in ("plain56_report_fp32_s0", "plain56_report_fp32_s1", "plain56_report_bf16_s1"):
        model, _, p, s = run_id.split("_")
        run = RunConfig("precision10", model, "report", int(s[1:]), precision=p)
        write_record(record_path(run, tmp_path), fake_record(run, [0.5] * 10))
    assert main(["grid", "run", "precision10", *select]) == 0
    assert ("0 run(s) to do in grid 'precision10' (1 covered by grid 'report' records, not trained again)"
            in capsys.readouterr().out)


def test_parse_seeds() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,3") == [0, 2, 3]
    assert parse_seeds("7") == [7]
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds("a")


def test_grid_list_ids_in_run_order(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpts = tmp_path / "ckpt"
    (ckpts / "report").mkdir(parents=True)
    (ckpts / "report" / "plain56_report_s1.pt").write_bytes(b"partial")  # started runs come first
    assert main(["grid", "list", "report", "--results", str(tmp_path), "--checkpoints", str(ckpts),
                 "--only", "resnet20-A*,plain56*", "--seeds", "0,1", "--ids"]) == 0
    assert capsys.readouterr().out.split() == [
        "plain56_report_s1", "resnet20-A_report_s0", "plain56_report_s0", "resnet20-A_report_s1"]


@pytest.mark.parametrize("command", [
    ["train", "--model", "resnet", "--depth", "8", "--shortcut", "A", "--device", "cpu", "--cuda-graph", "on"],
    ["grid", "run", "report", "--device", "cpu", "--cuda-graph", "on", "--max-runs", "1"],
])
def test_cuda_graph_on_cpu_is_refused_before_data(command, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = command + (["--out", str(tmp_path / "x.json")] if command[0] == "train" else
                      ["--results", str(tmp_path)])
    assert main(args) == 2  # RESNET_NB_DATA is unset: loading data first would fail differently
    assert "CUDA graphs need a CUDA device" in one_error_line(capsys.readouterr().err)


# ---------------------------------------------------------------- bad input, checked before any work

TRAIN = ["train", "--model", "resnet", "--depth", "8", "--shortcut", "A", "--epochs", "1", "--train-size", "100",
         "--device", "cpu", "--precision", "fp32", "--quiet"]


@pytest.mark.parametrize("argv, says", [
    (["grid", "run", "paper", "--seeds", "3-1"], "seed range '3-1' is empty"),
    (["grid", "list", "paper", "--seeds", "0-100000000"], "100000001 seeds in '0-100000000'; at most 1000"),
    (["grid", "run", "paper", "--seeds=-1"], "seeds must be from 0 to"),
    (["grid", "run", "paper", "--seeds", "1-2-3"], "seeds must look like 0-4 or 0,2,3, got '1-2-3'"),
    (["grid", "run", "paper", "--seeds", "0,-2"], "seeds must be from 0 to"),
    (["grid", "run", "report", "--only", "resnet21*"], "--only 'resnet21*' matches no run of grid 'report'"),
    (["grid", "run", "report", "--max-runs", "-1"], "--max-runs: must be >= 1, got -1"),
    (["grid", "run", "report", "--max-runs", "0"], "--max-runs: must be >= 1, got 0"),
    (["grid", "run", "report", "--device", "foo"], "unknown device 'foo'"),
    (["grid", "list", "report", "--device", "cuda:x"], "unknown device 'cuda:x'"),
    ([*TRAIN, "--device", "foo", "--out", "{tmp}/x.json"], "unknown device 'foo'"),
    ([*TRAIN, "--device", "xpu", "--out", "{tmp}/x.json"], "device 'xpu' is not supported"),
    ([*TRAIN, "--out", "{tmp}/blocker/x.json"], "output folder {tmp}/blocker is not writable"),
    ([*TRAIN, "--out", "{tmp}/new/x.json", "--checkpoints", "{tmp}/ck"], "no-such-data' (from argument) does not"),
    ([*TRAIN, "--out", "{tmp}/x.json", "--checkpoints", "{tmp}/blocker"], "checkpoint folder {tmp}/blocker/cli is not"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(argv, says, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """Checked before data is loaded: the source given does not exist, and is never reached."""
    (tmp_path / "blocker").write_text("a file where a folder should be")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    argv += ["--results", str(tmp_path / "results")] if argv[0] == "grid" else []
    try:
        status = main([*argv, "--source", str(tmp_path / "no-such-data")])
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    assert status == 2
    line = one_error_line(capsys.readouterr().err)
    assert says.replace("{tmp}", str(tmp_path)) in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


@pytest.mark.slow
def test_read_only_checkpoint_folder_is_refused_before_training(tmp_path: Path, tiny_zip: Path) -> None:
    point = tmp_path / "ro"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,ro", "tmpfs", str(point)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        p = cli(*TRAIN, "--out", str(tmp_path / "x.json"), "--checkpoints", str(point), "--source", str(tiny_zip))
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
    assert p.returncode == 2
    assert f"checkpoint folder {point}" in one_error_line(p.stderr) and "Read-only" in p.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_bad_data_layout_via_the_cli(tiny_image_root: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "cifar10-copy"
    shutil.copytree(tiny_image_root["folder"], copy)
    shutil.rmtree(copy / "train" / "frog")
    cache = tmp_path / "cache"
    p = cli("data", "--source", str(copy), env={"RESNET_NB_CACHE": str(cache)})
    assert p.returncode == 2 and "has no 'train' images of class frog" in one_error_line(p.stderr)
    assert not cache.exists() or not list(cache.iterdir())  # nothing left behind


@pytest.mark.slow
def test_disk_full_during_training_keeps_the_last_checkpoint(tmp_path: Path, tiny_zip: Path) -> None:
    """A real tmpfs that holds one checkpoint (~0.95 MB) but not a second one beside it (atomic replace)."""
    point = tmp_path / "small"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(point)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    argv = [*TRAIN[:7], "--epochs", "2", *TRAIN[9:], "--source", str(tiny_zip)]
    try:
        p = cli(*argv, "--out", str(tmp_path / "x.json"), "--checkpoints", str(point),
                env={"RESNET_NB_CACHE": str(tmp_path / "cache")})
        assert p.returncode == 2, p.stderr
        line = one_error_line(p.stderr)
        ckpt = point / "cli" / "resnet8-A_report_e2_n100_fp32_s0.pt"
        assert f"error: no space left on the device writing {ckpt}" in line and "previous version" in line
        from resnet_nb.checkpoints import read_checkpoint_history

        assert [r["epoch"] for r in read_checkpoint_history(ckpt)] == [1]  # whole and verified
        assert sorted(p.name for p in ckpt.parent.iterdir()) == [ckpt.name]  # no temp, no lock left
        resumed = tmp_path / "big"
        (resumed / "cli").mkdir(parents=True)
        (resumed / "cli" / ckpt.name).write_bytes(ckpt.read_bytes())
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
    p = cli(*argv, "--out", str(tmp_path / "x.json"), "--checkpoints", str(resumed),
            env={"RESNET_NB_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stderr
    assert [r["epoch"] for r in json.loads((tmp_path / "x.json").read_text())["history"]] == [1, 2]


# ---------------------------------------------------------------- exclusive runs, SIGTERM


def _wait(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    import time

    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end and proc.poll() is None, proc.communicate() if proc.poll() is not None else ""
        time.sleep(0.05)


@pytest.mark.slow
def test_second_train_on_the_same_out_refuses_and_sigterm_stops_the_first(tmp_path: Path, tiny_zip: Path) -> None:
    import signal

    out, ck = tmp_path / "run.json", tmp_path / "ck"
    argv = [sys.executable, "-m", "resnet_nb", *TRAIN[:7], "--epochs", "200", *TRAIN[9:], "--source", str(tiny_zip),
            "--out", str(out), "--checkpoints", str(ck)]
    env = os.environ | {"OMP_NUM_THREADS": "1", "RESNET_NB_CACHE": str(tmp_path / "cache")}
    first = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = ck / "cli" / "resnet8-A_report_e200_n100_fp32_s0.pt"
    try:
        _wait(ckpt, first)  # it is training (one epoch done)
        second = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        line = one_error_line(second.stderr)
        assert f"error: {out} is being run by pid {first.pid}" in line
        first.send_signal(signal.SIGTERM)  # what a lease end sends
        _, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 130 and "interrupted; finished epochs are checkpointed" in err
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["cache", "ck"]  # lock released, no temp
    assert sorted(p.name for p in ckpt.parent.iterdir()) == [ckpt.name]
    from resnet_nb.checkpoints import read_checkpoint_history

    assert len(read_checkpoint_history(ckpt)) >= 1  # resumable


@pytest.mark.slow
def test_grid_run_skips_a_run_held_by_another_process(tmp_path: Path, tiny_zip: Path) -> None:
    import socket

    results, ck = tmp_path / "results", tmp_path / "ck"
    holder = subprocess.Popen(["sleep", "120"])
    lock = results / "precision" / ".resnet20-A_report_e1_fp32_s0.json.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "token": "t", "started": "T0"}))
    try:
        p = cli("grid", "run", "precision", "--seeds", "0", "--max-runs", "1", "--results", str(results),
                "--checkpoints", str(ck), "--source", str(tiny_zip), "--device", "cpu", "--quiet",
                env={"RESNET_NB_CACHE": str(tmp_path / "cache")})
        listed = cli("grid", "list", "precision", "--seeds", "0", "--results", str(results), "--checkpoints", str(ck),
                     "--device", "cpu")
    finally:
        holder.kill()
        holder.wait()
    assert p.returncode == 0, p.stderr
    assert f"skip resnet20-A_report_e1_fp32_s0: being run by pid {holder.pid} on {socket.gethostname()} since T0" \
        in p.stdout
    assert "[1/1] resnet20-A_report_e1_bf16_s0" in p.stdout  # the next one, within --max-runs 1
    assert sorted(x.name for x in (results / "precision").iterdir()) == [lock.name, "resnet20-A_report_e1_bf16_s0.json"]
    assert [line.split()[:2] for line in listed.stdout.splitlines()[1:3]] == [
        ["resnet20-A_report_e1_fp32_s0", "running"], ["resnet20-A_report_e1_bf16_s0", "done"]]


@pytest.mark.slow
def test_two_grid_runs_at_once_share_the_work(tmp_path: Path, tiny_zip: Path) -> None:
    results, ck = tmp_path / "results", tmp_path / "ck"
    env = os.environ | {"OMP_NUM_THREADS": "1", "RESNET_NB_CACHE": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-m", "resnet_nb", "data", "--source", str(tiny_zip)], cwd=REPO, env=env,
                   check=True, capture_output=True)  # build the cache once, as gpu_grid.sh does
    argv = [sys.executable, "-m", "resnet_nb", "grid", "run", "precision", "--seeds", "0", "--results", str(results),
            "--checkpoints", str(ck), "--source", str(tiny_zip), "--device", "cpu", "--quiet"]
    procs = [subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    from resnet_nb.grids import grid_runs
    from resnet_nb.records import read_record, record_path

    for run in grid_runs("precision", [0]):
        read_record(record_path(run, results), run)
    assert sorted(x.name for x in (results / "precision").iterdir()) == sorted(
        f"{r.run_id}.json" for r in grid_runs("precision", [0]))  # no locks or temps left
    trained = sum(out.count("  done:") for out, _ in outs)
    assert 2 <= trained <= 3, outs  # each run once (a run finished between one check and a claim may show twice)


# ---------------------------------------------------------------- help


def _help(*argv: str, capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_help_texts(capsys: pytest.CaptureFixture) -> None:
    top = _help(capsys=capsys)
    assert "``" not in top and ":py" not in top and "commands: models" in top
    listing, running = _help("grid", "list", capsys=capsys), _help("grid", "run", capsys=capsys)
    for option in ("--max-runs", "--precision", "--compile", "--cuda-graph", "--quiet", "--source"):
        assert option not in listing and option in running, option
    assert "--ids" in listing and "--ids" not in running
    train = _help("train", capsys=capsys)
    assert "6n+2" in train and "(default: 0)" in train and "(default: report)" in train
    assert "report (the student report's), paper" in running and "at most 1000" in running


def test_every_option_has_help() -> None:
    import argparse

    from resnet_nb.__main__ import build_parser

    def parsers(p: argparse.ArgumentParser):
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from parsers(child)

    missing = [f"{p.prog} {a.option_strings or a.dest}" for p in parsers(build_parser()) for a in p._actions
               if not a.help and not isinstance(a, argparse._SubParsersAction) and "bench" not in p.prog]
    assert missing == []


def test_grid_list_accepts_the_run_options_it_hides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """scripts/gpu_grid.sh hands the same grid args to `grid list --ids` and to `grid run`."""
    assert main(["grid", "list", "paper", "--ids", "--results", str(tmp_path), "--cuda-graph", "on",
                 "--precision", "bf16", "--quiet", "--source", "x"]) == 0
    from resnet_nb.grids import grid_runs

    # on the CPU seed-parallel groups are off: one run per line, in the grid's priority order
    assert capsys.readouterr().out.split() == [r.run_id for r in grid_runs("paper")]


def test_bench_says_how_long_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from resnet_nb import bench, estimate

    monkeypatch.setattr(estimate, "step_seconds", lambda *a, **k: 0.5)
    text = bench._time_estimate(torch.device("cpu"), ["resnet20-A", "resnet56-A"], ["report"], 3, (2,), 100)
    # 2 models x 1 recipe x 100 steps x 0.5 s = 100 s per variant; 3 variants + a 2-seed step = 5 -> 500 s
    assert text.startswith("8 measurement(s), roughly 8 min on this device")
