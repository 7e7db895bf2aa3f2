"""resnet_nb.carry: unfinished runs' checkpoints carried through the repository (grid park / grid unpark)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch

from resnet_nb.__main__ import main
from resnet_nb.carry import park, unpark
from resnet_nb.checkpoints import CHECKPOINT_FORMAT, read_checkpoint, save_checkpoint
from resnet_nb.files import CorruptFileError, claimed, seal
from resnet_nb.grids import checkpoint_path, group_checkpoint_path
from resnet_nb.records import RecordError, RunConfig, record_path
from .conftest import fake_record, write_record

RUNS = [RunConfig("report", "resnet20-A", "report", s) for s in (0, 1)]


def state(epoch: int, seed: int = 0) -> dict:
    return {"format": CHECKPOINT_FORMAT, "identity": {"model": "resnet20-A", "seed": seed}, "epoch": epoch,
            "model": {"w": torch.full((3,), float(epoch))}}


@pytest.fixture()
def where(tmp_path: Path) -> dict[str, Path]:
    return {"results": tmp_path / "results", "checkpoints": tmp_path / "ck", "carry": tmp_path / "carry"}


def test_park_copies_unfinished_checkpoints_byte_for_byte_and_drops_finished_ones(where: dict[str, Path]) -> None:
    ckpt = checkpoint_path(RUNS[0], where["checkpoints"])
    save_checkpoint(ckpt, state(4))
    moved = [str(m) for m in park(RUNS, **where)]
    carried = where["carry"] / "report" / ckpt.name
    assert carried.read_bytes() == ckpt.read_bytes()
    assert moved[0].startswith("resnet20-A_report_s0.pt: parked (epoch 4, ")
    assert moved[1] == "resnet20-A_report_s1.pt: nothing (no checkpoint in the cache)"
    assert [m.action for m in park(RUNS, **where)][0] == "unchanged"
    save_checkpoint(ckpt, state(5))  # the lane trained on: parking again carries the new epoch
    assert str(park(RUNS[:1], **where)[0]).startswith("resnet20-A_report_s0.pt: parked (epoch 5")
    assert read_checkpoint(carried)["epoch"] == 5
    write_record(record_path(RUNS[0], where["results"]), fake_record(RUNS[0], [0.5] * 10))
    assert [str(m) for m in park(RUNS[:1], **where)] == ["resnet20-A_report_s0.pt: removed (the run has its record)"]
    assert not carried.exists()


def test_park_keeps_a_carried_file_when_the_record_beside_it_is_invalid(where: dict[str, Path]) -> None:
    carried = where["carry"] / "report" / "resnet20-A_report_s0.pt"
    save_checkpoint(carried, state(3))
    bad = record_path(RUNS[0], where["results"])
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(RecordError):
        park(RUNS[:1], **where)
    assert carried.exists()


def test_park_carries_a_seed_parallel_group_once_and_drops_it_only_when_all_its_seeds_are_done(
        where: dict[str, Path]) -> None:
    group = group_checkpoint_path(RUNS, where["checkpoints"])
    save_checkpoint(group, state(2))
    assert [m.name for m in park(RUNS, **where)] == [group.name]
    write_record(record_path(RUNS[0], where["results"]), fake_record(RUNS[0], [0.5] * 10))
    park(RUNS, **where)
    assert (where["carry"] / "report" / group.name).exists()  # seed 1 still needs it
    write_record(record_path(RUNS[1], where["results"]), fake_record(RUNS[1], [0.5] * 10))
    assert [m.action for m in park(RUNS, **where)] == ["removed"]
    assert not (where["carry"] / "report" / group.name).exists()


def test_unpark_never_replaces_a_newer_cache_checkpoint(where: dict[str, Path]) -> None:
    carried = where["carry"] / "report" / "resnet20-A_report_s0.pt"
    save_checkpoint(carried, state(6))
    cache = checkpoint_path(RUNS[0], where["checkpoints"])
    assert [str(m) for m in unpark(RUNS, **where)] == ["resnet20-A_report_s0.pt: unparked (epoch 6)"]
    assert cache.read_bytes() == carried.read_bytes()
    save_checkpoint(cache, state(7))  # trained on here
    assert [str(m) for m in unpark(RUNS, **where)] == [
        "resnet20-A_report_s0.pt: kept (the cache is at epoch 7, the carried file at 6)"]
    assert read_checkpoint(cache)["epoch"] == 7
    save_checkpoint(cache, state(2))  # an older run of it here: the carried state is further on
    assert [str(m) for m in unpark(RUNS, **where)] == [
        "resnet20-A_report_s0.pt: unparked (epoch 6, the cache was at 2)"]
    cache.write_bytes(cache.read_bytes()[:-5])  # damaged in the cache: replaced by the carried one
    assert [m.action for m in unpark(RUNS, **where)] == ["unparked"]
    assert read_checkpoint(cache)["epoch"] == 6


def test_unpark_leaves_a_running_run_and_a_finished_run_alone(where: dict[str, Path]) -> None:
    for run in RUNS:
        save_checkpoint(where["carry"] / "report" / f"{run.run_id}.pt", state(3, run.seed))
    write_record(record_path(RUNS[1], where["results"]), fake_record(RUNS[1], [0.5] * 10))
    cache = checkpoint_path(RUNS[0], where["checkpoints"])
    with claimed(cache):  # a lane is training run 0
        moved = {m.name: m.action for m in unpark(RUNS, **where)}
    assert moved == {"resnet20-A_report_s0.pt": "running", "resnet20-A_report_s1.pt": "done"}
    assert not cache.exists() and not checkpoint_path(RUNS[1], where["checkpoints"]).exists()


def test_unpark_refuses_a_damaged_carried_file_before_copying_anything(where: dict[str, Path]) -> None:
    save_checkpoint(where["carry"] / "report" / "resnet20-A_report_s0.pt", state(3))
    bad = where["carry"] / "report" / "resnet20-A_report_s1.pt"
    save_checkpoint(bad, state(3, seed=1))
    data = bytearray(bad.read_bytes())
    data[-3] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=r"carried checkpoint .*resnet20-A_report_s1.pt .*delete it"):
        unpark(RUNS, **where)
    assert not where["checkpoints"].exists()  # the good one was not copied either: nothing half-done


class Boom:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch /tmp/resnet_nb_carry_pwned",))


def test_unpark_refuses_a_crafted_pickle_without_running_it(where: dict[str, Path]) -> None:
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "epoch": 9, "x": Boom()}, buf)
    crafted = where["carry"] / "report" / "resnet20-A_report_s0.pt"
    crafted.parent.mkdir(parents=True)
    crafted.write_bytes(seal(buf.getvalue()))  # sealed: the seal proves integrity, not who wrote it
    with pytest.raises(CorruptFileError, match="cannot be read safely"):
        unpark(RUNS, **where)
    assert not Path("/tmp/resnet_nb_carry_pwned").exists()


def test_unpark_refuses_a_file_that_is_not_a_training_checkpoint(where: dict[str, Path]) -> None:
    save_checkpoint(where["carry"] / "report" / "resnet20-A_report_s0.pt", {"format": CHECKPOINT_FORMAT})
    with pytest.raises(CorruptFileError, match="is not a resnet_nb training checkpoint"):
        unpark(RUNS, **where)


def test_grid_park_and_unpark_on_the_command_line(where: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    save_checkpoint(checkpoint_path(RUNS[0], where["checkpoints"]), state(4))
    opts = ["--results", str(where["results"]), "--checkpoints", str(where["checkpoints"]),
            "--carry", str(where["carry"])]
    assert main(["grid", "park", "report", "--only", "resnet20-A_report_s0", *opts]) == 0
    assert capsys.readouterr().out.startswith("resnet20-A_report_s0.pt: parked (epoch 4, ")
    fresh = ["--results", str(where["results"]), "--checkpoints", str(where["checkpoints"].parent / "fresh"),
             "--carry", str(where["carry"])]
    assert main(["grid", "unpark", "report", *fresh]) == 0
    assert capsys.readouterr().out == "resnet20-A_report_s0.pt: unparked (epoch 4)\n"
    (where["carry"] / "report" / "resnet20-A_report_s0.pt").write_bytes(b"junk")
    assert main(["grid", "unpark", "report", *fresh]) == 2
    assert "error: carried checkpoint" in capsys.readouterr().err


def test_grid_run_and_list_name_runs_parked_in_carry_that_the_cache_lacks(
        where: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from resnet_nb import carry
    from resnet_nb.__main__ import parked_runs

    monkeypatch.setattr(carry, "CARRY_DIR", where["carry"])
    save_checkpoint(where["carry"] / "report" / "resnet20-A_report_s1.pt", state(3, seed=1))
    states = {RUNS[0]: "todo", RUNS[1]: "todo"}
    assert parked_runs(states) == [RUNS[1]]
    assert parked_runs({RUNS[1]: "partial"}) == []  # the cache has its own checkpoint: nothing to say
    opts = ["--results", str(where["results"]), "--checkpoints", str(where["checkpoints"]), "--device", "cpu"]
    main(["grid", "run", "report", "--only", "resnet20-A_report_s*", *opts])  # stops at the missing data
    err = capsys.readouterr().err
    assert ("warning: 1 run(s) parked in carry/ with no checkpoint in the cache (resnet20-A_report_s1): "
            "`python -m resnet_nb grid unpark report` resumes them") in err
    assert "`grid run` alone would train them from scratch" in err


def test_park_never_replaces_a_carried_checkpoint_that_is_further_on(where: dict[str, Path]) -> None:
    carried = where["carry"] / "report" / "resnet20-A_report_s0.pt"
    save_checkpoint(carried, state(40))
    save_checkpoint(checkpoint_path(RUNS[0], where["checkpoints"]), state(2))  # the run restarted here
    assert [str(m) for m in park(RUNS[:1], **where)] == [
        "resnet20-A_report_s0.pt: kept (the carried file is at epoch 40, the cache at 2; `grid unpark` resumes "
        "from it)"]
    assert read_checkpoint(carried)["epoch"] == 40


def test_grid_list_shows_a_parked_run(where: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from resnet_nb import carry
    from resnet_nb.estimate import run_precision
    from resnet_nb.provenance import device_name

    monkeypatch.setattr(carry, "CARRY_DIR", where["carry"])
    history = [{"epoch": e, "seconds": 600.0} for e in (1, 2, 3)]
    save_checkpoint(where["carry"] / "report" / "resnet20-A_report_s1.pt", state(3, seed=1) | {"history": history})
    # a finished seed on this device, at the precision the run would train in: the estimate needs no probe
    here, precision = device_name(torch.device("cpu")), run_precision(RUNS[0], torch.device("cpu"))
    write_record(record_path(RUNS[0], where["results"]),
                 fake_record(RUNS[0], [0.5] * 10, device_name=here, precision=precision))
    assert main(["grid", "list", "report", "--only", "resnet20-A_report_s[01]", "--device", "cpu",
                 "--results", str(where["results"]), "--checkpoints", str(where["checkpoints"])]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out[1:3]] == [["resnet20-A_report_s0", "done"],
                                                      ["resnet20-A_report_s1", "parked"]]
    # its progress is read from the carried file: 7 of 10 epochs left at the mean epoch time of its 3 carried
    # epochs (600 s) and the finished seed's 10 (1.5 s): 7 x 1,815 / 13 s = 16 min (from the cache alone: 0 min)
    assert out[2].split()[2:] == ["16", "min"]
    assert out[-1].startswith("1 run(s) parked in carry/ with no checkpoint in the cache (resnet20-A_report_s1)")
    save_checkpoint(checkpoint_path(RUNS[1], where["checkpoints"]), state(1, seed=1))  # the cache has one now
    main(["grid", "list", "report", "--only", "resnet20-A_report_s[01]", "--device", "cpu",
          "--results", str(where["results"]), "--checkpoints", str(where["checkpoints"])])
    out = capsys.readouterr().out.splitlines()
    assert out[2].split() == ["resnet20-A_report_s1", "partial", "0", "min"] and "parked" not in out[-1]
