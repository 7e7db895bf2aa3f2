"""The paper chapter's tables and verdicts, from synthetic records."""

from __future__ import annotations

import pandas as pd
import pytest

from resnet_nb.paper import degradation_verdict, grid_command, table6
from .conftest import make_paper_results

AKA = [{"model": "resnet20-A", "test_error_pct": 18.97, "published_test_error_pct": 8.27}]


def test_table6_side_by_side() -> None:
    df = make_paper_results({"resnet20-A": 3, "plain20": 1}, epochs=2)
    table = table6(df, AKA)
    assert list(table.index[:5]) == ["resnet20-A", "resnet32-A", "resnet44-A", "resnet56-A", "resnet110-A"]
    row = table.loc["resnet20-A"]
    assert row["paper (%)"] == "8.75" and row["params (paper)"] == "0.27M"
    assert row["ours, paper recipe (%)"] == "34.00 ± 0.00 (n=3)"  # test acc 0.5 + 0.08 * 2 for every seed
    assert row["akamaster on our JPEG copy (%)"] == "18.97" and row["JPEG copy effect (points)"] == "+10.70"
    assert table.loc["plain20", "ours, paper recipe (%)"] == "34.00 (n=1 of 3)"
    assert table.loc["resnet110-A", "ours, paper recipe (%)"] == "missing (0 of 5 seeds)"
    assert table.loc["resnet110-A", "akamaster on our JPEG copy (%)"] == "no checkpoint"
    assert grid_command("plain56") == "python -m resnet_nb grid run paper --only 'plain56_paper_s*'"


def test_missing_commands() -> None:
    from resnet_nb.paper import missing_commands

    text = missing_commands(make_paper_results({"resnet20-A": 3, "plain20": 1}, epochs=1))
    lines = text.splitlines()
    assert lines[2] == "- plain20 (1 of 3 seeds): `python -m resnet_nb grid run paper --only 'plain20_paper_s*'`"
    assert "resnet20-A" not in text and len(lines) == 2 + 8
    assert "bash scripts/gpu_paper_session.sh 540 $OUT 3" in lines[0]


def test_degradation_verdict() -> None:
    df = make_paper_results({"plain20": 3, "plain56": 3}, epochs=2)
    df.loc[df["model"] == "plain56", "train_acc"] -= 0.1 + 0.001 * df["seed"]  # 10.0 / 10.1 / 10.2 points lower
    text = degradation_verdict(df, "paper")
    assert "plain-20 − plain-56 +10.10 pt [" in text and "(n = 3; paired t" in text
    assert "degradation **reproduced**" in text
    df.loc[df["model"] == "plain56", "train_acc"] += 0.2
    assert "degradation **contradicted**" in degradation_verdict(df, "paper")
    two = make_paper_results({"plain20": 2, "plain56": 2}, epochs=2)
    assert "**inconclusive** (n = 2 seed(s), fewer than 3)" in degradation_verdict(two, "paper")
    missing = degradation_verdict(pd.DataFrame(columns=df.columns), "report")
    assert "no verdict yet, plain20, plain56 missing" in missing
    assert "grid run report --only 'plain20_*,plain56_*'" in missing


def test_akamaster_responses(tiny_data, tmp_path) -> None:
    import torch

    from resnet_nb.models import ModelSpec, build_model
    from resnet_nb.paper import akamaster_responses, imagenet_normalised

    torch.manual_seed(0)
    model = build_model(ModelSpec("resnet", 8, "A"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "resnet8-00.th")
    (tmp_path / "SHA256SUMS").write_text("x  resnet8-00.th\n")
    got = akamaster_responses(tmp_path, tiny_data, keys=("resnet8-A",), n=20)
    assert list(got["model"].unique()) == ["resnet8-A"] and len(got) == 7  # the stem + 3 blocks x 2 convs
    x = imagenet_normalised(tiny_data, 20)
    first_of_class_1 = int(torch.nonzero(tiny_data.test_y == 1)[0])  # 2 images per class: class 1 starts at 2
    want = (tiny_data.test_x[first_of_class_1].float() / 255 - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) \
        / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert x.shape == (20, 3, 32, 32) and torch.allclose(x[2], want)


# ---------------------------------------------------------------- the shortened grid (paper8k)

def _short(models: dict[str, int], epochs: int = 3, wall: float = 1800.0) -> pd.DataFrame:
    return make_paper_results(models, epochs=epochs, grid="paper8k", total=1000, drops=(500, 750),
                              wall_seconds=wall)


def test_shortened_recipe_text_comes_from_the_grid() -> None:
    from resnet_nb.paper import shortened_recipe_text

    text = shortened_recipe_text()
    assert "**8,000 iterations, 1/8 of that** (about 20.5 epochs), dividing it at 4,000 and 6,000" in text
    assert "The paper trains 64,000 iterations (about 164 epochs)" in text and "32,000 and 48,000" in text
    assert "grid of 24 runs" in text


def test_shortened_findings_every_step_and_depth() -> None:
    from resnet_nb.paper import claim_summary, shortened_findings

    depths = (20, 32, 44, 56)
    df = _short({**{f"plain{d}": 3 for d in depths}, **{f"resnet{d}-A": 3 for d in depths}})
    # plain nets: training accuracy falls by 2 points per depth step (+ seed noise), so degradation holds
    for i, d in enumerate(depths):
        df.loc[df["model"] == f"plain{d}", "train_acc"] -= 0.02 * i + 0.001 * i * df["seed"]
    # ResNets: 32 beats 20 clearly; 44 and 56 are no better than 32 (one seed each way)
    for d, shift in ((32, 0.01), (44, 0.01), (56, 0.01)):
        df.loc[df["model"] == f"resnet{d}-A", "test_acc"] += shift + 0.003 * (df["seed"] - 1) * (d != 32)
    findings = shortened_findings(df)
    assert len(findings) == 4 + 4 + 4 + 4
    deg = [f for f in findings if f.claim.key == "degradation"]
    assert [f.scope for f in deg] == ["plain-20 − plain-32", "plain-32 − plain-44", "plain-44 − plain-56",
                                      "plain-20 − plain-56"]
    assert [f.verdict for f in deg] == ["reproduced"] * 4
    assert deg[3].comparison.estimate == pytest.approx(6.0 + 0.3 * 1)  # 2 pt x 3 steps, + mean seed noise
    depth = [f for f in findings if f.claim.key == "resnet_depth"]
    assert [f.verdict for f in depth] == ["reproduced", "inconclusive", "inconclusive", "reproduced"]
    summary = claim_summary(findings, "resnet_depth")
    assert "Reproduced at 2 of 4 comparisons, contradicted at 0, inconclusive at 2" in summary
    assert "ResNet-44 − ResNet-32 (final test accuracy): **inconclusive**" in summary
    # ResNet vs plain at the same depth: test accuracy equal at 20 (no interval: identical values)
    vs = [f for f in findings if f.claim.key == "resnet_vs_plain" and "test" in f.measure]
    assert [f.scope for f in vs] == [f"depth {d}: ResNet − plain" for d in depths]
    assert vs[1].comparison.estimate == pytest.approx(1.0)


def test_shortened_robustness_judges_every_comparison_again_under_each_reading() -> None:
    from resnet_nb.paper import shortened_robustness, shortened_robustness_table, shortened_robustness_text

    df = _short({"plain20": 3, "plain56": 3, "resnet20-A": 3, "resnet32-A": 3}, epochs=4)
    df.loc[df["model"] == "plain56", "train_acc"] -= 0.30 + 0.002 * df["seed"]  # a wide, steady gap
    df.loc[df["model"] == "resnet32-A", "test_acc"] += 0.01 + 0.001 * df["seed"]  # better at the end ...
    df.loc[df["model"] == "resnet20-A", "train_acc"] += 0.003 * (df["seed"] % 2)  # level with plain-20
    df.loc[df["model"] == "plain20", "test_acc"] -= 0.002 * (df["seed"] % 2)
    peak = (df["model"] == "resnet20-A") & (df["epoch"] == 3)
    df.loc[peak, "test_acc"] = 0.95 + 0.001 * df.loc[peak, "seed"]  # ... but ResNet-20 peaked mid-run
    findings, others = shortened_robustness(df)
    assert list(others) == ["best epoch", "mean of the last 3 epochs", "Welch t instead of paired",
                            "only seeds made in one setting", "Holm-adjusted over these comparisons"]
    table = shortened_robustness_table(findings, others)
    assert list(table["comparison"]) == ["plain-20 − plain-56", "ResNet-32 − ResNet-20", "depth 20: ResNet − plain",
                                         "depth 20: ResNet − plain"]  # the tested ones (test, then training)
    assert list(table["measure"][2:]) == ["final test accuracy", "final training accuracy"]
    deg, depth = table.iloc[0], table.iloc[1]
    assert deg["planned"] == "reproduced" and deg["robustness"] == "robust"
    assert (deg["Holm-adjusted over these comparisons"], deg["Welch t instead of paired"]) == ("reproduced",) * 2
    assert (depth["planned"], depth["best epoch"], depth["robustness"]) == ("reproduced", "≠ contradicted", "fragile")
    assert depth["mean of the last 3 epochs"] == "≠ contradicted"  # the peak is among the last 3 epochs
    text = shortened_robustness_text(findings, others)
    assert "under 5 other readings" in text and "2 of 4 keep their planned verdict" in text
    assert ("ResNet-32 − ResNet-20 (final test accuracy, planned **reproduced**): best epoch: contradicted "
            "(n = 3), mean of the last 3 epochs: contradicted (n = 3)") in text
    assert shortened_robustness_text(*shortened_robustness(_short({}))) == (
        "No comparison has records yet: nothing to judge again.")


@pytest.mark.parametrize(("test_gain", "train_gain", "says"), [
    (0.02, 0.02, ["At every step with records the deeper ResNet scores better, as in the paper's Table 6."]),
    (0.0, 0.02, ["In 1 of 1 comparisons the records do not show the deeper ResNet scoring better on the test images "
                 "(ResNet-56 − ResNet-20).", "In 1 of them it fits its training images better (ResNet-56 − ResNet-20): "
                 "there its extra depth goes into fitting, not into generalising."]),
    (0.0, 0.0, ["In none of them do the records show it fitting its training images better either.",
                "Whether they would with 8x the iterations, as in the paper's Table 6, is not measured here"]),
    (-0.02, -0.02, ["In 1 they show it fitting them worse (ResNet-56 − ResNet-20)",
                    "the records give no sign that its extra depth goes into over-fitting"]),
])
def test_resnet_depth_tells_fitting_from_training_length(test_gain: float, train_gain: float,
                                                         says: list[str]) -> None:
    from resnet_nb.paper import resnet_depth_table, resnet_depth_text

    df = _short({"resnet20-A": 3, "resnet56-A": 3})
    deep = df["model"] == "resnet56-A"
    wobble = 0.002 * (df["seed"] - 1) ** 2  # seeds 0, 1, 2: +0.002, 0, +0.002 (a spread, mean 0.00133)
    df.loc[deep, "test_acc"] += test_gain + wobble[deep]
    df.loc[deep, "train_acc"] += train_gain + wobble[deep]
    table = resnet_depth_table(df)
    verdict = {0.02: "reproduced", 0.0: "inconclusive", -0.02: "contradicted"}
    assert table.to_dict("records") == [{
        "comparison": "ResNet-56 − ResNet-20", "n": "3",
        "test accuracy (points)": table["test accuracy (points)"][0], "deeper scores better": verdict[test_gain],
        "training accuracy (points)": table["training accuracy (points)"][0],
        "deeper fits better": verdict[train_gain]}]
    assert table["test accuracy (points)"][0].startswith(f"{100 * test_gain + 0.13:+.2f} pt [")
    text = resnet_depth_text(df)
    assert text.startswith("Test error (%) by depth at 8,000 iterations: ResNet-20 ")
    assert all(part in text for part in says), text
    assert resnet_depth_text(_short({"resnet20-A": 3})) == (
        "No two ResNet depths have a seed in common yet: nothing to compare.")


def test_claim_summary_counts_missing_comparisons() -> None:
    from resnet_nb.paper import claim_summary, shortened_findings

    findings = shortened_findings(_short({"plain20": 3, "plain56": 3}))
    text = claim_summary(findings, "degradation")
    assert "Reproduced at 0 of 4 comparisons" in text and "3 comparison(s) await their records" in text
    assert claim_summary(shortened_findings(_short({})), "resnet_vs_plain").endswith("No records yet.")


def test_protocol_table_puts_protocols_side_by_side() -> None:
    from resnet_nb.paper import protocol_table

    short = _short({"plain20": 3, "plain56": 3})
    short.loc[short["model"] == "plain56", "train_acc"] -= 0.05 + 0.001 * short["seed"]
    table = protocol_table({"report (Adam, 10 epochs)": short.iloc[0:0], "paper, 1/8": short})
    row = table[(table["claim"] == "degradation") & (table["comparison"] == "plain-20 − plain-56")].iloc[0]
    assert row["report (Adam, 10 epochs)"] == "not run yet"
    assert row["paper, 1/8"].startswith("+5.10 pt [") and row["paper, 1/8"].endswith("(n=3) → reproduced")


def test_table6_shortened_and_cost() -> None:
    from resnet_nb.paper import cost_table, table6_shortened

    short = _short({"resnet20-A": 3, "plain20": 1, "resnet56-A": 2}, epochs=2, wall=1800.0)
    full = make_paper_results({"resnet20-A": 1}, epochs=2, wall_seconds=4 * 3600.0)
    table = table6_shortened(short, full, AKA)
    assert list(table.index) == [f"resnet{d}-A" for d in (20, 32, 44, 56)] + [f"plain{d}" for d in (20, 32, 44, 56)]
    row = table.loc["resnet20-A"]
    assert row["ours, 1/8 recipe: test error (%)"] == "34.00 ± 0.00 (n=3)"
    assert row["ours, 1/8 recipe: training error (%)"] == "29.00 ± 1.00 (n=3)"  # 0.7 + 0.01 * seed
    assert row["ours, full length (%)"] == "34.00 (n=1 of 3)" and row["paper (%)"] == "8.75"
    assert row["akamaster on our JPEG copy (%)"] == "18.97"
    assert table.loc["plain20", "ours, 1/8 recipe: test error (%)"] == "34.00 (n=1 of 3)"
    assert table.loc["resnet32-A", "ours, 1/8 recipe: test error (%)"] == "not run yet (0 of 3)"
    assert table.loc["plain56", "ours, full length (%)"] == "not run (depth 20 only)"
    cost = cost_table(short, full)
    assert cost.loc["resnet20-A", "hours per 1/8 run"] == pytest.approx(0.5)
    assert cost.loc["resnet20-A", "hours per full run"] == pytest.approx(4.0)  # measured
    assert cost.loc["resnet20-A", "full-length basis"] == "measured"
    assert cost.loc["resnet56-A", "hours per full run"] == pytest.approx(0.5 * 8)  # 8 x the 1/8 run
    assert cost.loc["resnet56-A", "lane-hours, 3 seeds at full length"] == pytest.approx(12.0)
    assert cost.loc["resnet56-A", "1/8 runs done"] == "2 of 3"
    ratio = cost.loc["resnet110-A", "hours per 1/8 run"] / 0.5
    assert 1.9 < ratio < 2.1 and cost.loc["resnet110-A", "full-length basis"] == "scaled from ResNet-56 by MACs"


def test_shortening_table_same_seed_both_lengths() -> None:
    from resnet_nb.paper import shortening_table

    short = _short({"resnet20-A": 1, "plain20": 1}, epochs=2)
    full = make_paper_results({"resnet20-A": 1}, epochs=4)
    table = shortening_table(short, full)
    row = table[(table["model"] == "resnet20-A") & (table["measure"] == "test error (%)")].iloc[0]
    assert row["1/8 length"] == pytest.approx(34.0) and row["full length"] == pytest.approx(18.0)
    assert row["full − 1/8 (points)"] == pytest.approx(-16.0)
    plain = table[table["model"] == "plain20"]
    assert plain["full length"].isna().all()


def test_figure7_reads_the_kept_weights(tiny_data, tmp_path) -> None:
    from resnet_nb.checkpoints import save_weights
    from resnet_nb.grids import grid_runs, weights_path
    from resnet_nb.models import build_model
    from resnet_nb.paper import figure7_responses, kept_weights

    import torch

    results = tmp_path / "results"
    run = next(r for r in grid_runs("paper8k") if r.model == "plain20" and r.seed == 0)
    path = weights_path(run, results)
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    save_weights(path, build_model(run.spec), run.run_id)
    assert set(kept_weights(results, "paper8k", ("plain20", "resnet20-A"))) == {"plain20"}
    table = figure7_responses(results, tiny_data, None, keys=("plain20",), n=20)
    assert set(table["source"]) == {"ours, 1/8 recipe"} and set(table["model"]) == {"plain20"}
    assert len(table) == 19  # plain-20: 19 3x3 convs with a BN after each
    assert figure7_responses(tmp_path / "none", tiny_data, None).empty


def test_recipe_table_and_progress() -> None:
    from resnet_nb.paper import progress_text, recipe_table

    table = recipe_table()
    assert table.loc["iterations"].tolist() == ["—", "64,000", "8,000"]
    assert table.loc["optimizer"].tolist() == ["adam", "sgd", "sgd"]
    assert table.loc["lr milestones"].tolist() == ["—", "0.5, 0.75", "0.5, 0.75"]
    assert table.loc["batch size"].tolist() == ["32", "128", "128"]
    short = make_paper_results({"resnet20-A": 1, "plain20": 1}, grid="paper8k", total=8000)
    text = progress_text(short, make_paper_results({"plain20": 1}))
    assert "2 of 24 runs of the shortened grid" in text and "1 of 2 full-length depth-20 runs" in text
    assert "grid run paper --only 'resnet20-A_paper_s0,plain20_paper_s0'" in text
    assert "The rest" not in progress_text(
        make_paper_results({m: 3 for m in ("resnet20-A", "plain20", "resnet32-A", "plain32", "resnet44-A",
                                           "plain44", "resnet56-A", "plain56")}, grid="paper8k", total=8000),
        make_paper_results({"plain20": 1, "resnet20-A": 1}))


def test_settling_table_reads_each_runs_own_drops() -> None:
    from resnet_nb.paper import settling_table, settling_text

    # 4 epochs of 250 iterations, drops at 500 and 750: the phases end at epochs 2, 3 and 4.
    # train_acc = 0.5 + 0.1 * epoch + 0.01 * seed, so 2 seeds average 70.5 / 80.5 / 90.5 %
    df = make_paper_results({"resnet20-A": 2, "plain20": 2, "plain56": 1}, epochs=4, grid="paper8k", steps=250,
                            total=1000, drops=(500, 750))
    df.loc[df["model"] == "plain56", "train_acc"] -= 0.3
    table = settling_table(df)
    assert list(table.index) == ["resnet20-A", "plain20", "plain56"]  # resnet before plain, only what has records
    assert list(table.columns) == ["runs", "before drop 1 (%)", "before drop 2 (%)", "final (%)",
                                   "last phase (points)", "last 3 epochs, largest move (points)"]
    row = table.loc["resnet20-A"]
    assert row["runs"] == 2
    assert [row["before drop 1 (%)"], row["before drop 2 (%)"], row["final (%)"]] == pytest.approx([70.5, 80.5, 90.5])
    assert row["last phase (points)"] == pytest.approx(10.0)
    assert row["last 3 epochs, largest move (points)"] == pytest.approx(20.0)  # epochs 2..4: 0.7 -> 0.9
    assert table.loc["plain56", "final (%)"] == pytest.approx(60.0)
    text = settling_text(df)
    assert "the 3 configurations with records changes by +10.0 to +10.0 points" in text
    assert "no run moves by more than 20.0 points over its last 3 epochs" in text
    assert "plain-56 ends at 40.0 % training error against plain-20's 9.5 %" in text
    # the drops are the record's own: a later second drop moves where the phase ends
    later = df.copy()
    later["lr_drops"] = [(500, 1000)] * len(later)
    assert settling_table(later).loc["resnet20-A", "before drop 2 (%)"] == pytest.approx(90.5)
    # a drop before the first epoch ends has no 'before' value
    early = df.copy()
    early["lr_drops"] = [(100, 750)] * len(early)
    assert pd.isna(settling_table(early).loc["resnet20-A", "before drop 1 (%)"])
    assert settling_text(df[df["model"] == "nothing"]) == "No records of the shortened grid yet."
    assert "plain-56 ends" not in settling_text(df[df["model"] != "plain56"])
