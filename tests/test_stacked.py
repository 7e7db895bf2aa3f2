"""Seed-parallel training (resnet_nb.stacked) is K separate fit() runs, seed by seed."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch

import resnet_nb.stacked as stacked_mod
from resnet_nb.records import RunConfig, read_record, record_path
from resnet_nb.models import ModelSpec, build_model
from resnet_nb import grids
from resnet_nb.grids import group_checkpoint_path, group_runs, resolve_seed_parallel, run_group
from resnet_nb.stacked import StackedNets, build_seed_model, fit_stacked
from resnet_nb.train import fit, get_recipe

from .conftest import Interrupted, stop_after, untimed

SPEC = ModelSpec("resnet", 8, "A")
SEEDS = (0, 1, 2)


def paper_like(**kw):
    """The paper recipe's features (SGD lr 0.1 + momentum + weight decay, He init, augmentation, both
    lr drops) in 2 short epochs: 200 images in batches of 32 (the last one partial)."""
    return get_recipe("paper", **({"iterations": 14, "batch_size": 32} | kw))


@contextlib.contextmanager
def float64_ctx():
    """Nets, inputs and losses in float64 (the loader's uint8 -> float32 pixels meet a float64 mean).

    Why: at lr 0.1 this tiny set trains chaotically (loss above ln 10): scaling one weight tensor of a
    *single* fp32 run by 1 + 1e-7 moves the weights by 1e-3 within three steps. In float64 rounding
    stays far below any real difference, so whole recipes can be compared almost exactly.
    """
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


@pytest.fixture()
def float64():
    with float64_ctx():
        yield


def separate(data, recipe, seeds=SEEDS):
    return [fit(SPEC, recipe, data, seed=s, device="cpu", precision="fp32", channels_last=False, progress=False)
            for s in seeds]


def assert_same_training(stacked_fits, separate_fits, atol: float = 1e-10, rtol: float = 1e-9) -> None:
    for s, (a, b) in enumerate(zip(stacked_fits, separate_fits, strict=True)):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            torch.testing.assert_close(sa[name], sb[name], atol=atol, rtol=rtol, msg=lambda m: f"seed {s} {name}: {m}")
        ha, hb = untimed(a.history), untimed(b.history)
        assert [r["epoch"] for r in ha] == [r["epoch"] for r in hb] and [r["lr"] for r in ha] == [r["lr"] for r in hb]
        for ra, rb in zip(ha, hb, strict=True):
            for key in ("train_loss", "test_loss"):
                assert ra[key] == pytest.approx(rb[key], rel=100 * rtol, abs=100 * atol)


@pytest.fixture(scope="module")
def paper_separate(tiny_data):
    with float64_ctx():
        return separate(tiny_data, paper_like())


@pytest.fixture(scope="module")
def paper_stacked(tiny_data):
    with float64_ctx():
        return fit_stacked(SPEC, paper_like(), tiny_data, SEEDS, device="cpu", precision="fp32", progress=False)


@pytest.mark.slow
def test_stacked_equals_separate_runs_paper_recipe(paper_stacked, paper_separate) -> None:
    assert paper_stacked[0].model.conv1.weight.dtype == torch.float64
    assert paper_stacked[0].history[-1]["lr"] == pytest.approx(1e-3)  # both lr drops happened
    assert_same_training(paper_stacked, paper_separate)
    # and the seeds really differ from each other (else the comparison above proves little)
    w = [f.model.state_dict()["conv1.weight"] for f in paper_stacked]
    assert not torch.allclose(w[0], w[1], atol=1e-3) and not torch.allclose(w[1], w[2], atol=1e-3)
    assert paper_stacked[0].setup["seed_parallel"] == 3 and paper_stacked[0].setup["seed_group"] == [0, 1, 2]


@pytest.mark.slow
def test_stacked_equals_separate_runs_adam(tiny_data, float64) -> None:
    recipe = get_recipe("report", epochs=1, batch_size=32)
    got = fit_stacked(SPEC, recipe, tiny_data, (3, 4), device="cpu", precision="fp32", progress=False)
    assert_same_training(got, separate(tiny_data, recipe, (3, 4)))


def test_stacked_equals_separate_runs_in_fp32(tiny_data) -> None:
    """fp32: a few steps, where rounding has not been amplified yet (the grouped convolutions sum in
    another order than separate ones)."""
    recipe = paper_like(iterations=None, epochs=1, train_size=96, lr=0.01)
    got = fit_stacked(SPEC, recipe, tiny_data, SEEDS, device="cpu", precision="fp32", progress=False)
    assert got[0].model.conv1.weight.dtype == torch.float32 and got[0].setup["steps_per_epoch"] == 3
    assert_same_training(got, separate(tiny_data, recipe), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_a_shared_data_order_is_caught(tiny_data, paper_separate, monkeypatch: pytest.MonkeyPatch, float64) -> None:
    """A planted fault: every seed's loader seeded like seed 0. The equivalence check must fail."""
    real = stacked_mod.DeviceLoader

    def same_order(*args, **kw):
        return real(*args, **(kw | {"seed": 0}))

    monkeypatch.setattr(stacked_mod, "DeviceLoader", same_order)
    wrong = fit_stacked(SPEC, paper_like(), tiny_data, SEEDS, device="cpu", precision="fp32", progress=False)
    with pytest.raises(AssertionError, match="seed 1"):
        assert_same_training(wrong, paper_separate)


def test_each_seed_keeps_its_own_batch_norm_statistics() -> None:
    models = [build_seed_model(SPEC, paper_like(), s) for s in (0, 1)]
    net = StackedNets(models).train()
    x = torch.randn(2, 8, 3, 32, 32)
    x[1] *= 3  # seed 1 sees inputs of another scale: its running variance must differ
    out = net(x)
    for k, model in enumerate(models):
        torch.testing.assert_close(out[k], model.train()(x[k]), atol=1e-5, rtol=1e-5)
        own = net.state_of(k)
        for name, tensor in model.state_dict().items():  # the separate model's buffers after the same forward
            torch.testing.assert_close(own[name], tensor, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(net.state_of(0)["bn1.running_var"], net.state_of(1)["bn1.running_var"])
    assert int(net.state_of(1)["bn1.num_batches_tracked"]) == 1


def test_initial_weights_are_each_seeds_own(tiny_data) -> None:
    recipe = paper_like()
    net = StackedNets([build_seed_model(SPEC, recipe, s) for s in SEEDS])
    for k, s in enumerate(SEEDS):
        torch.manual_seed(s)  # what fit() does before building
        ref = build_model(SPEC)
        from resnet_nb.models import he_init

        he_init(ref)
        for name, tensor in ref.state_dict().items():
            assert torch.equal(net.state_of(k)[name], tensor)


@pytest.mark.slow
def test_stacked_resume_is_bit_exact(tiny_data, paper_stacked, tmp_path: Path, float64) -> None:
    ckpt = tmp_path / "group.pt"
    kw = {"device": "cpu", "precision": "fp32", "progress": False, "checkpoint": ckpt}
    with pytest.raises(Interrupted):
        fit_stacked(SPEC, paper_like(), tiny_data, SEEDS, on_epoch=stop_after(1), **kw)
    assert ckpt.exists()
    seen = []
    resumed = fit_stacked(SPEC, paper_like(), tiny_data, SEEDS, on_epoch=seen.append, **kw)
    assert [[r["epoch"] for r in rows] for rows in seen] == [[2, 2, 2]]
    # the group's two stretches, as fit() logs a single run's (the record's provenance.segments)
    assert [(s["first_epoch"], s["last_epoch"], s["device"]) for s in resumed[0].setup["segments"]] == \
        [(1, 1, "cpu"), (2, 2, "cpu")]
    for a, b in zip(resumed, paper_stacked, strict=True):
        assert untimed(a.history) == untimed(b.history)
        for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True):
            assert torch.equal(x, y)
    with pytest.raises(ValueError, match="belongs to another run"):
        fit_stacked(SPEC, paper_like(), tiny_data, (0, 1), **kw)
    # which seeds, not only how many: a group of as many other seeds is another group
    with pytest.raises(ValueError, match=r"seeds: checkpoint \[0, 1, 2\], this run \[0, 1, 3\]"):
        fit_stacked(SPEC, paper_like(), tiny_data, (0, 1, 3), **kw)


@pytest.mark.slow
def test_bf16_mixed_precision_trains(tiny_data) -> None:
    got = fit_stacked(SPEC, get_recipe("report", epochs=1, batch_size=50), tiny_data, (0, 1), device="cpu",
                      precision="bf16", progress=False)
    assert got[0].setup["precision"] == "bf16"
    assert all(0 < f.history[0]["train_loss"] < 10 for f in got)
    assert got[0].history[0]["train_loss"] != got[1].history[0]["train_loss"]


def test_bad_settings_are_refused(tiny_data) -> None:
    with pytest.raises(ValueError, match="distinct seeds"):
        fit_stacked(SPEC, paper_like(), tiny_data, (1, 1), device="cpu", progress=False)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        fit_stacked(SPEC, paper_like(), tiny_data, (0, 1), device="cpu", cuda_graph="on", progress=False)
    assert resolve_seed_parallel("off", torch.device("cuda")) == 1
    assert resolve_seed_parallel("auto", torch.device("cpu")) == 1
    assert resolve_seed_parallel("auto", torch.device("cuda")) == grids.SEED_PARALLEL_MAX
    assert resolve_seed_parallel("4", torch.device("cpu")) == 4
    for bad in ("0", "x", "-2"):
        with pytest.raises(ValueError, match="--seed-parallel must be"):
            resolve_seed_parallel(bad, torch.device("cpu"))


def test_group_runs_keeps_priority_and_size() -> None:
    runs = [RunConfig("g", m, "report", s) for m in ("resnet20-A", "plain20") for s in range(5)]
    runs = runs[:3] + runs[5:7] + runs[3:5] + runs[7:]  # interleaved, as a priority order may be
    groups = group_runs(runs, 2)
    assert [[r.run_id for r in g] for g in groups] == [
        ["resnet20-A_report_s0", "resnet20-A_report_s1"], ["resnet20-A_report_s2", "resnet20-A_report_s3"],
        ["plain20_report_s0", "plain20_report_s1"], ["resnet20-A_report_s4"],
        ["plain20_report_s2", "plain20_report_s3"], ["plain20_report_s4"]]
    assert [len(g) for g in group_runs(runs, 1)] == [1] * 10
    assert group_checkpoint_path(groups[0], Path("/ck")) == Path("/ck/g/resnet20-A_report_seeds0-1.pt")


def test_run_group_writes_one_record_per_seed(tiny_data, tmp_path: Path) -> None:
    runs = [RunConfig("t", SPEC.key, "report", s, epochs=1, train_size=100) for s in (0, 1)]
    records = run_group(runs, tiny_data, results=tmp_path / "res", checkpoints=tmp_path / "ck", device="cpu",
                        precision="fp32", progress=False)
    for run, rec in zip(runs, records, strict=True):
        on_disk = read_record(record_path(run, tmp_path / "res"), run)
        assert on_disk == json.loads(json.dumps(rec))
        assert rec["provenance"]["seed_parallel"] == 2 and rec["provenance"]["seed_group"] == [0, 1]
        assert rec["provenance"]["dataset_checksum"] == tiny_data.checksum
    assert records[0]["history"][0]["train_loss"] != records[1]["history"][0]["train_loss"]
    assert list((tmp_path / "ck").rglob("*.pt")) == []  # the group checkpoint is gone once records exist
    with pytest.raises(ValueError, match="already has a record"):
        run_group(runs, tiny_data, results=tmp_path / "res", checkpoints=tmp_path / "ck", device="cpu",
                  progress=False)
    with pytest.raises(ValueError, match="one config"):
        run_group([runs[0], RunConfig("t", "plain8", "report", 1, epochs=1)], tiny_data, results=tmp_path / "r2",
                  device="cpu", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_stacked_equals_separate_runs_on_cuda(tiny_data, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stacked step as one CUDA graph (re-captured at the lr drop) vs separate eager runs, fp32 without TF32."""
    for flag in (torch.backends.cudnn, torch.backends.cuda.matmul):
        monkeypatch.setattr(flag, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    recipe = paper_like(iterations=None, epochs=1, train_size=96, lr=0.01)
    got = fit_stacked(SPEC, recipe, tiny_data, SEEDS, device="cuda", precision="fp32", cuda_graph="on",
                      progress=False)
    ref = [fit(SPEC, recipe, tiny_data, seed=s, device="cuda", precision="fp32", channels_last=False,
               cuda_graph="off", progress=False) for s in SEEDS]
    assert got[0].setup["cuda_graph"] is True and got[0].history[0]["lr"] == pytest.approx(1e-3)
    assert_same_training(got, ref, atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_grid_cli_groups_seeds(tiny_zip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from resnet_nb.__main__ import main

    common = ["precision", "--results", str(tmp_path / "res"), "--checkpoints", str(tmp_path / "ck"),
              "--device", "cpu", "--seeds", "0-2", "--only", "*_fp32_*"]
    assert main(["grid", "list", *common, "--ids", "--seed-parallel", "2"]) == 0
    assert capsys.readouterr().out.split() == ["resnet20-A_report_e1_fp32_s0,resnet20-A_report_e1_fp32_s1",
                                               "resnet20-A_report_e1_fp32_s2"]
    assert main(["grid", "list", *common, "--ids"]) == 0  # auto: off on the CPU
    assert len(capsys.readouterr().out.split()) == 3
    assert main(["grid", "run", *common, "--seed-parallel", "2", "--source", str(tiny_zip), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[1-2/3] resnet20-A_report_e1_fp32_s0, resnet20-A_report_e1_fp32_s1" in out and "[3/3]" in out
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "res" / "precision").glob("*.json")}
    assert sorted(records) == [f"resnet20-A_report_e1_fp32_s{s}" for s in range(3)]
    assert [records[f"resnet20-A_report_e1_fp32_s{s}"]["provenance"].get("seed_parallel") for s in range(3)] \
        == [2, 2, None]


@pytest.mark.slow
def test_max_runs_cuts_a_seed_group_to_what_it_allows(tiny_zip: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    """--max-runs 2 with groups of 3: one group of the first two seeds trains, the third waits for the next call."""
    from resnet_nb.__main__ import main

    common = ["precision", "--results", str(tmp_path / "res"), "--checkpoints", str(tmp_path / "ck"),
              "--device", "cpu", "--seeds", "0-2", "--only", "*_fp32_*"]
    assert main(["grid", "run", *common, "--seed-parallel", "3", "--max-runs", "2", "--source", str(tiny_zip),
                 "--quiet"]) == 0
    assert "[1-2/2] resnet20-A_report_e1_fp32_s0, resnet20-A_report_e1_fp32_s1\n" in capsys.readouterr().out
    records = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "res" / "precision").glob("*.json")}
    assert sorted(records) == [f"resnet20-A_report_e1_fp32_s{s}" for s in range(2)]
    assert {r["provenance"]["seed_parallel"] for r in records.values()} == {2}
    assert not list((tmp_path / "ck").rglob("*.pt"))  # nothing half-trained for the third seed


@pytest.mark.parametrize("extra", [["--compile"], ["--precision", "fp16"]])
def test_grid_cli_refuses_seed_parallel_with(extra, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from resnet_nb.__main__ import main

    assert main(["grid", "list", "paper", "--ids", "--device", "cpu", "--results", str(tmp_path),
                 "--seed-parallel", "3", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not combine with" in err[0]
    assert main(["grid", "list", "paper", "--ids", "--device", "cpu", "--results", str(tmp_path),
                 "--seed-parallel", "auto", *extra]) == 0
    assert len(capsys.readouterr().out.split()) == 29


@pytest.mark.slow
def test_bench_seed_parallel_variant(tiny_data, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from resnet_nb.bench import format_table, run_benchmark

    got = run_benchmark(tiny_data, torch.device("cpu"), ["resnet8-A"], ["report"], ["ours"], steps=2, warmup=1,
                        repeats=1, eval_images=0, seed_parallel=[1, 3], log=lambda s: None)
    assert [m.variant for m in got] == ["ours", "seed-parallel x1", "seed-parallel x3"]
    assert all(m.train_images_per_s > 0 for m in got)
    assert "seed-parallel x3" in format_table(got)


def test_bench_cli_rejects_bad_k(capsys: pytest.CaptureFixture) -> None:
    from resnet_nb.__main__ import main

    assert main(["bench", "--seed-parallel", "2,x", "--device", "cpu"]) == 2
    assert "--seed-parallel must be" in capsys.readouterr().err


def test_stacked_batches_are_the_separate_loaders_batches(tiny_data) -> None:
    from resnet_nb.data import DeviceLoader
    from resnet_nb.stacked import StackedBatches

    def loaders():
        return [DeviceLoader(tiny_data.train_x, tiny_data.train_y, batch_size=48, mean=[0.5] * 3, std=[0.25] * 3,
                             shuffle=True, augment=True, seed=s) for s in SEEDS]

    stacked = StackedBatches(loaders())
    separate_loaders = loaders()
    for epoch in (0, 3):
        stacked.set_epoch(epoch)
        for loader in separate_loaders:
            loader.set_epoch(epoch)
        got = list(stacked)
        want = list(zip(*separate_loaders))
        assert len(got) == len(want) == 5 and got[-1][0].shape == (3, 8, 3, 32, 32)  # 200 = 4 x 48 + 8
        for (x, y), per_seed in zip(got, want, strict=True):
            for k, (xk, yk) in enumerate(per_seed):
                assert torch.equal(x[k], xk) and torch.equal(y[k], yk)
        assert not torch.equal(got[0][1][0], got[0][1][1])  # the seeds' orders differ
    with pytest.raises(ValueError, match="must share"):
        StackedBatches([loaders()[0], DeviceLoader(tiny_data.train_x, tiny_data.train_y, batch_size=16,
                                                   mean=[0.5] * 3, std=[0.25] * 3)])
