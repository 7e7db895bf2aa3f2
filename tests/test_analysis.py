"""Live computations (gradients, responses, shapes, MACs) and record comparisons (improvement, SSR)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from resnet_nb import analysis, claims, coverage
from resnet_nb.models import ModelSpec, build_model

from .conftest import make_results


def test_sig_rounds_to_significant_digits() -> None:
    assert analysis.sig(1234.5678) == 1235.0
    assert analysis.sig(0.000123456) == 0.0001235


def test_init_gradients_one_row_per_weight_layer_and_deterministic() -> None:
    grads = analysis.init_gradients(depths=(8,), batch_size=4)
    assert sorted(grads["model"].unique()) == ["plain8", "resnet8-A"]
    assert (grads.groupby("model").size() == 8).all()  # 7 convs + the classifier
    assert (grads["grad_norm"] > 0).all()
    pd.testing.assert_frame_equal(grads, analysis.init_gradients(depths=(8,), batch_size=4))
    summary = analysis.gradient_summary(grads).set_index("model")
    assert list(summary.index) == ["plain8", "resnet8-A"] and set(summary["init"]) == {"default"}
    assert summary.loc["plain8", "first / last conv"] == pytest.approx(
        summary.loc["plain8", "first conv"] / summary.loc["plain8", "last conv"], rel=1e-3)


def test_he_init_gradients_and_the_generated_reading() -> None:
    grads = analysis.init_gradients(depths=(8, 14), batch_size=4, inits=("default", "he"))
    assert set(grads["init"]) == {"default", "he"} and len(grads) == 2 * (8 + 8 + 14 + 14)
    default = grads[(grads["init"] == "default") & (grads["model"] == "plain14")]["grad_norm"].to_numpy()
    he = grads[(grads["init"] == "he") & (grads["model"] == "plain14")]["grad_norm"].to_numpy()
    assert not (default == he).all()  # He init really re-initialises the weights
    summary = analysis.gradient_summary(grads)
    ratio = summary.set_index(["init", "model"])["first / last conv"]
    for init in ("default", "he"):  # the plain net's first-layer gradient grows with depth, faster than the ResNet's
        assert ratio[(init, "plain14")] > ratio[(init, "plain8")]
        assert ratio[(init, "plain14")] > ratio[(init, "resnet14-A")]
    text = analysis.gradient_reading(summary)
    assert text.count("\n") == 1 and "He init" in text and "PyTorch default init" in text
    assert f"{ratio[('he', 'plain14')]:g}" in text
    with pytest.raises(ValueError, match="init must be"):
        analysis.init_gradients(depths=(8,), inits=("xavier",))


def test_layer_responses_one_per_3x3_layer_and_hooks_removed() -> None:
    model = build_model(ModelSpec("resnet", 8, "B"))
    x = torch.randn(4, 3, 32, 32)
    table = analysis.layer_responses(model, x)
    assert len(table) == 7  # stem + 2 per block; the projection's BN is not a 3x3 layer
    assert (table["response_std"] > 0).all() and sorted(table["rank"]) == list(range(1, 8))
    assert all(not m._forward_hooks for m in model.modules())
    both = analysis.response_table({"resnet8-B": model, "plain8": build_model(ModelSpec("plain", 8))}, x)
    assert set(both["depth"]) == {8} and len(both) == 14


def test_feature_maps_through_the_two_stems() -> None:
    table = analysis.stem_comparison()
    assert table.loc["maxpool", "tv-resnet18-imagenet"] == "64 × 8 × 8"
    assert table.loc["layer1", "tv-resnet18-cifar"] == "64 × 32 × 32"
    assert table.loc["layer4", "tv-resnet18-imagenet"] == "512 × 1 × 1"
    assert table.loc["avgpool", "resnet20-A"] == "64 × 1 × 1"
    assert table.loc["layer4", "resnet20-A"] == ""  # the CIFAR net has three stages


def test_count_macs_exact_on_a_small_net() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10))
    assert analysis.count_macs(net) == 4 * 32 * 32 * 3 * 9 + 4 * 32 * 32 * 10
    macs = {k: analysis.count_macs(build_model(ModelSpec.from_key(k))) for k in ("resnet20-A", "resnet20-B", "plain20")}
    assert macs["resnet20-A"] == macs["plain20"]
    # option B adds two 1x1 projections: 32x16x16 outputs x 16 inputs, 64x8x8 outputs x 32 inputs
    assert macs["resnet20-B"] - macs["resnet20-A"] == 32 * 16 * 16 * 16 + 64 * 8 * 8 * 32
    table = analysis.cost_table(["resnet20-A", "tv-resnet18-cifar"])
    assert table.loc["resnet20-A", "params"] == 269_722 and table.loc["resnet20-A", "MACs / resnet20-A"] == 1.0
    assert table.loc["tv-resnet18-cifar", "MACs / resnet20-A"] > 10


def test_parameter_table_matches_the_reference_counts() -> None:
    table = analysis.parameter_table(depths=(20, 56), paper=claims.PAPER_PARAMS)
    assert table.loc[20, "params A"] == 269_722 and table.loc[56, "params A"] == 853_018
    assert (table["B − A"] == 2_752).all() and (table["params plain"] == table["params A"]).all()
    assert table.loc[20, "paper (Table 6)"] == "0.27M" and table.loc[56, "weight layers"] == 56


def test_relative_improvement_definition() -> None:
    df = make_results({"resnet20-A": [0.8, 0.8], "plain20": [0.5, 0.5]})
    table = analysis.relative_improvement(df)
    row = table.loc["20"]
    assert row["acc_improvement_%"] == pytest.approx(60.0)  # (0.8 - 0.5) / 0.5
    # losses 2(1 - a) + 0.1: resnet 0.5, plain 1.1
    assert row["loss_improvement_%"] == pytest.approx(100 * (1.1 - 0.5) / 1.1)
    assert table.index.tolist() == ["20", "mean"]
    assert analysis.relative_improvement(df.iloc[0:0]).empty


def test_option_distance_ssr_and_noise() -> None:
    df = make_results({"resnet20-A": [0.8, 0.8], "resnet20-B": [0.7, 0.7]}, epochs=2)
    table = analysis.option_distance(df)
    # curves a * e / 2: gaps 5 and 10 percentage points
    assert table.loc[20, "ssr"] == pytest.approx(5.0**2 + 10.0**2)
    assert table.loc[20, "noise_ssr"] == pytest.approx(0.0)
    assert table.loc[20, "rms_gap"] == pytest.approx(math.sqrt(125 / 2))
    one_seed = analysis.option_distance(make_results({"resnet20-A": [0.8], "resnet20-B": [0.7]}, seeds=1))
    assert math.isnan(one_seed.loc[20, "noise_ssr"])


# seeds that differ: a mean of ratios, a population variance or a missing 1/n would all show here
VARIED = {"resnet20-A": [0.80, 0.84, 0.78], "resnet20-B": [0.70, 0.76], "plain20": [0.50, 0.58, 0.55],
          "resnet56-A": [0.79, 0.75, 0.81], "plain56": [0.40, 0.46, 0.49]}


def _reference_curves(finals: list[float], epochs: int) -> list[list[float]]:
    """make_results' curves by hand: seed s reaches finals[s] linearly over the epochs."""
    return [[f * e / epochs for e in range(1, epochs + 1)] for f in finals]


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _var(xs: list[float]) -> float:  # sample variance (n - 1)
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def test_option_distance_against_a_hand_computation_with_varied_seeds() -> None:
    epochs = 4
    table = analysis.option_distance(make_results(VARIED, seeds=3, epochs=epochs))
    a, b = _reference_curves(VARIED["resnet20-A"], epochs), _reference_curves(VARIED["resnet20-B"], epochs)
    ssr = noise = 0.0
    for e in range(epochs):
        col_a, col_b = [run[e] for run in a], [run[e] for run in b]
        ssr += (100 * (_mean(col_a) - _mean(col_b))) ** 2
        noise += 100**2 * (_var(col_a) / len(col_a) + _var(col_b) / len(col_b))
    row = table.loc[20]
    assert (row["n_A"], row["n_B"], row["epochs"]) == (3, 2, epochs)
    assert row["ssr"] == pytest.approx(ssr, rel=1e-12) and row["noise_ssr"] == pytest.approx(noise, rel=1e-12)
    assert row["rms_gap"] == pytest.approx(math.sqrt(ssr / epochs), rel=1e-12)
    assert noise > 0 and 56 not in table.index  # depth 56 has no option B


def test_relative_improvement_against_a_hand_computation_with_varied_seeds() -> None:
    table = analysis.relative_improvement(make_results(VARIED, seeds=3))
    expected = {}
    for depth in (20, 56):
        r, p = _mean(VARIED[f"resnet{depth}-A"]), _mean(VARIED[f"plain{depth}"])  # improvement of the means
        loss_r, loss_p = _mean([2 * (1 - a) + 0.1 for a in VARIED[f"resnet{depth}-A"]]), \
            _mean([2 * (1 - a) + 0.1 for a in VARIED[f"plain{depth}"]])
        expected[str(depth)] = (100 * (r - p) / p, 100 * (loss_p - loss_r) / loss_p)
        row = table.loc[str(depth)]
        assert row["acc_improvement_%"] == pytest.approx(expected[str(depth)][0], rel=1e-12)
        assert row["loss_improvement_%"] == pytest.approx(expected[str(depth)][1], rel=1e-12)
        assert row["acc_resnet_%"] == pytest.approx(100 * r) and (row["n_resnet"], row["n_plain"]) == (3, 3)
    mean = table.loc["mean"]
    assert mean["acc_improvement_%"] == pytest.approx(_mean([v[0] for v in expected.values()]), rel=1e-12)
    assert mean["loss_improvement_%"] == pytest.approx(_mean([v[1] for v in expected.values()]), rel=1e-12)
    # the mean of per-seed ratios is another (wrong) figure: the fixture tells them apart
    ratios = _mean([100 * (r - p) / p for r, p in zip(VARIED["resnet56-A"], VARIED["plain56"])])
    assert abs(ratios - table.loc["56", "acc_improvement_%"]) > 0.5


def test_coverage_and_missing_note() -> None:
    df = make_results({"resnet20-A": [0.8, 0.8], "plain20": [0.5]})
    cov = coverage.coverage(df, ["resnet20-A", "plain20", "plain56"])
    assert cov["seeds found"].tolist() == [2, 1, 0] and (cov["seeds in grid"] == 5).all()
    note = coverage.missing_note(df, ["resnet20-A", "plain56"])
    assert "No records yet" in note and "--only 'plain56*'" in note and "resnet20-A (2 of 5 seeds)" in note
    full = coverage.missing_note(df.iloc[0:0], list(coverage.expected_seeds("report")))
    assert "run `python -m resnet_nb grid run report` (it trains" in full
    assert coverage.hardware_text(df) == "Test GPU (bf16)"
    assert coverage.provenance_table(df)["runs"].tolist() == [3]


def test_seeds_note_counts_configurations_with_enough_seeds() -> None:
    df = make_results({"resnet20-A": [0.8, 0.8, 0.8], "plain20": [0.5, 0.5]}, seeds=3)
    note = coverage.seeds_note(df)
    assert note.startswith("**Seeds.** 1 of 14 configurations of grid `report` have the 3 seeds a verdict needs; ")
    assert "plain20 (2)" in note and "resnet56-A (0)" in note and "resnet20-A (" not in note
    assert coverage.seeds_note(df, needed=2).startswith("**Seeds.** 2 of 14")
    full = make_results({m: [0.5] * 3 for m in coverage.expected_seeds("report")}, seeds=3, epochs=1)
    assert coverage.seeds_note(full) == "**Seeds.** 14 of 14 configurations of grid `report` have the 3 seeds a verdict needs."


def test_grid_status_counts_runs_of_the_grid() -> None:
    df = make_results({"plain56": [0.5]}, seeds=1)
    assert coverage.grid_status(df, "precision10").startswith(
        "Grid `precision10`: 0 of 12 runs have a record of their own; where grid `report` has made one of them "
        "at the same precision on the machine you run on, its record stands in (`grid list` marks the run covered)")
    df["run_id"] = "plain56_report_fp32_s0"
    assert "1 of 12 runs" in coverage.grid_status(df, "precision10")
    # a grid nothing stands in for says only what it has
    assert coverage.grid_status(df.iloc[0:0], "precision").startswith("Grid `precision`: 0 of 6 runs have a record; ")


def test_grid_status_counts_the_report_runs_that_stand_in_on_the_grids_own_machine() -> None:
    """precision10 pairs on one machine: a report record counts for a missing run only when it is that run, at
    the run's precision, made where precision10's own records were made."""
    from resnet_nb.grids import grid_runs

    runs = grid_runs("precision10")
    own = [r for r in runs if r.precision == "fp32" or r.seed == 0]  # 8 runs; bf16 of seeds 1, 2 missing
    df = make_results({"plain56": [0.5]}, seeds=1, epochs=1, device="CPU X")
    df = pd.concat([df.assign(run_id=r.run_id) for r in own], ignore_index=True)
    twins = make_results({"plain56": [0.5]}, seeds=1, epochs=1, device="CPU X")  # bf16, as make_results makes
    report = pd.concat([twins.assign(run_id=f"{m}_report_s{k}") for m in ("plain56", "resnet56-A") for k in (1, 2)],
                       ignore_index=True)
    text = coverage.grid_status(df, "precision10", report)
    assert text.startswith("Grid `precision10`: 8 of 12 runs have a record of their own, and grid `report`'s "
                           "records stand in for 4 more (the same run at the same precision, made on CPU X, ")
    assert "none is left to train on that machine" in text
    # made on another machine, or at the other precision: not the same run, so it does not count
    elsewhere = report.assign(device_name=["GPU Y"] + ["CPU X"] * (len(report) - 1))
    text = coverage.grid_status(df, "precision10", elsewhere)
    assert "stand in for 3 more" in text and "none is left" not in text and "makes the rest" in text
    assert "stand in for" not in coverage.grid_status(df, "precision10", report.assign(precision="fp32"))
    assert coverage.grid_status(df, "precision10", report.iloc[0:0]) == coverage.grid_status(df, "precision10")
