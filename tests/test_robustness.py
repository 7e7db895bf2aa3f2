"""Readings of the records, the stated-value tolerance, Holm levels, robustness, the statements about the
paper and the forest plot: exact behaviour on constructed data."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from resnet_nb import claims, facts, forest, readings, robustness, stats
from resnet_nb.readings import Reading

from .conftest import make_results
from .test_claims import REPORT, TV, grid_frame


def cmp(lo: float, hi: float, n: tuple[int, ...] = (5,)) -> stats.Comparison:
    return stats.Comparison((lo + hi) / 2, lo, hi, n, "paired t", 0.01)


@pytest.mark.parametrize(("stated", "about", "tolerance"), [
    ("28", True, 1.5), ("43", True, 1.5), ("28", False, 0.5), ("1.3", False, 0.05), ("2.2", True, 0.15),
    ("8.75", False, 0.005)])
def test_stated_tolerance_comes_from_the_wording(stated: str, about: bool, tolerance: float) -> None:
    assert stats.stated_tolerance(stated, about) == tolerance
    with pytest.raises(ValueError):
        stats.stated_tolerance("about 28")


def test_value_rule_with_a_tolerance() -> None:
    # a narrow interval just beside a rounded "about 28" meets its band: not contradicted any more
    assert stats.value_verdict(cmp(26.0, 27.0), 28.0, 1.5) == (
        "reproduced", "the 95 % interval meets 28 ± 1.5 and lies between 0 and 56")
    assert stats.value_verdict(cmp(26.0, 27.0), 28.0)[0] == "contradicted"  # no tolerance: 28 missed
    assert stats.value_verdict(cmp(22.0, 26.4), 28.0, 1.5) == ("contradicted", "the 95 % interval misses 28 ± 1.5")
    assert stats.value_verdict(cmp(29.6, 31.0), 28.0, 1.5)[0] == "contradicted"
    # a wide interval no longer reproduces whatever lies inside it
    assert stats.value_verdict(cmp(-1.0, 30.0), 28.0, 1.5) == (
        "inconclusive", "the 95 % interval meets 28 ± 1.5 but also holds zero: too wide to pin the figure")
    assert stats.value_verdict(cmp(1.0, 57.0), 28.0, 1.5)[1].endswith("also holds 56: too wide to pin the figure")
    assert stats.value_verdict(cmp(-31.0, -25.0), -28.0, 1.5)[0] == "reproduced"  # a negative figure
    assert stats.value_verdict(cmp(26.0, 27.0, (2,)), 28.0, 1.5)[0] == "inconclusive"  # too few seeds
    with pytest.raises(ValueError):
        stats.value_verdict(cmp(-1.0, 1.0), 0.0)


def test_seeds_for_similarity() -> None:
    # |d| + t_{n-1} s / √n ≤ 1 with d = 0, s = 1: n = 6 gives 2.571/2.449 = 1.05, n = 7 gives 2.447/2.646 = 0.92
    assert stats.seeds_for_similarity(0.0, 1.0, 1.0) == 7
    assert stats.seeds_for_similarity(0.5, 1.0, 1.0) == 18  # room 0.5: n = 17 gives t_{16}/√17 = 0.514, 18: 0.497
    assert stats.seeds_for_similarity(1.0, 0.1, 1.0) is None and stats.seeds_for_similarity(-1.2, 0.1, 1.0) is None
    assert stats.seeds_for_similarity(0.2, 0.0, 1.0) == 2


def _three_epochs() -> pd.DataFrame:
    df = make_results({"resnet20-A": [0.6, 0.6], "plain20": [0.5, 0.5]}, seeds=2, epochs=3)
    values = {1: 0.5, 2: 0.7, 3: 0.6}  # resnet20-A seed 0: best at epoch 2
    for epoch, acc in values.items():
        df.loc[(df["model"] == "resnet20-A") & (df["seed"] == 0) & (df["epoch"] == epoch), ["test_acc", "test_loss"]] \
            = [acc, 1 - acc]
    return df


@pytest.mark.parametrize(("epoch", "acc", "loss"), [("final", 60.0, 0.4), ("best", 70.0, 0.3), ("last3", 60.0, 0.4)])
def test_run_values_by_epoch_rule(epoch: str, acc: float, loss: float) -> None:
    df = _three_epochs()
    got = readings.run_values(df, "resnet20-A", "test_acc", epoch)  # type: ignore[arg-type]
    assert got.loc[0, "value"] == pytest.approx(acc) and got.loc[0, "setting"] == "cuda bf16"
    assert readings.run_values(df, "resnet20-A", "test_loss", epoch).loc[0, "value"] == pytest.approx(loss)
    assert readings.run_values(df, "plain56", "test_acc").empty
    with pytest.raises(ValueError):
        readings.run_values(df, "resnet20-A", "test_acc", "middle")  # type: ignore[arg-type]


def test_same_setting_drops_the_seeds_whose_arms_ran_differently() -> None:
    df = grid_frame(seeds=5)
    df.loc[(df["model"] == "plain20") & (df["seed"] == 1), "precision"] = "fp32"
    df.loc[(df["model"] == "resnet20-A") & (df["seed"] == 3), "device"] = "cpu"
    every = readings.paired(df, "resnet20-A", "plain20", "test_acc")
    same = readings.paired(df, "resnet20-A", "plain20", "test_acc", Reading(same_setting=True))
    assert every.n == (5,) and same.n == (3,)
    assert readings.paired(df, "resnet32-A", "plain32", "test_acc", Reading(same_setting=True)).n == (5,)
    welch = readings.paired(df, "resnet20-A", "plain20", "test_acc", Reading(test="welch"))
    assert welch.test == "Welch t" and welch.n == (5, 5) and welch.estimate == pytest.approx(every.estimate)


def test_holm_levels() -> None:
    levels = readings.holm_levels({"a": 0.01, "b": 0.04, "c": math.nan, "d": 0.03})
    assert levels == {"a": pytest.approx(1 - 0.05 / 3), "d": pytest.approx(1 - 0.05 / 2), "b": pytest.approx(0.95),
                      "c": pytest.approx(0.95)}
    reading = Reading(levels=levels)
    assert reading.level("a") == pytest.approx(1 - 0.05 / 3) and reading.level("zzz") == 0.95


@pytest.mark.slow
def test_a_verdict_that_rests_on_the_final_epoch_is_fragile() -> None:
    df = grid_frame(seeds=5)  # epochs 1 and 2; ResNet-20 ~80 % beats torchvision's ~76 % at the last epoch
    early = (df["model"] == "tv-resnet18-imagenet") & (df["epoch"] == 1)
    df.loc[early, "test_acc"] = 0.90  # ... but torchvision's best epoch is the first, at 90 %
    marked, others = robustness.robust_ledger(df, readings=readings.READINGS, n_boot=200)
    line = {f.scope: f for f in marked}[TV]
    assert line.verdict == "reproduced" and line.robustness == "fragile"
    assert line.flips == ("best epoch: contradicted (n = 5)", "mean of the last 3 epochs: contradicted (n = 5)")
    steady = {f.scope: f for f in marked}["depth 56: ResNet (A) − plain"]
    assert steady.robustness == "robust" and steady.flips == ()
    untested = {f.scope: f for f in marked}["paper recipe, shortened: plain-20 − plain-56"]
    assert untested.robustness == "" and untested.category == "not yet tested"
    table = robustness.robustness_table(marked, others)
    assert len(table) == sum(f.verdict != "not tested" for f in marked)
    row = table.set_index("compared").loc[TV]
    assert row["best epoch"] == "≠ contradicted" and row["Welch t instead of paired"] == "reproduced"
    text = robustness.robustness_sentence(marked)
    assert text.startswith("**Robustness.** Each tested line judged again under 5 other readings (best epoch; ")
    report = [f for f in marked if f.category == "report claim"]
    assert f"{sum(f.robustness == 'robust' for f in report)} of {len(report)} report claim lines robust" in text
    counts = robustness.robustness_counts(marked)
    assert counts["robust"] + counts["fragile"] == len(table) and counts["fragile"] >= 1


@pytest.mark.slow
def test_holm_reading_widens_each_interval_to_its_rank() -> None:
    df = grid_frame(seeds=5)
    planned = claims.ledger(df, n_boot=200)
    holm = robustness.holm_reading(planned, Reading("Holm", holm=True))
    tested = [f for f in planned if f.verdict != "not tested" and not math.isnan(f.comparison.p_value)]
    assert len(holm.levels) == sum(f.verdict != "not tested" for f in planned)
    smallest = min(tested, key=lambda f: f.comparison.p_value)
    assert holm.levels[smallest.line] == pytest.approx(1 - 0.05 / len(tested))
    adjusted = {f.line: f for f in claims.ledger(df, reading=holm, n_boot=200)}
    c, a = smallest.comparison, adjusted[smallest.line].comparison
    assert a.lo < c.lo and a.hi > c.hi and a.level == pytest.approx(1 - 0.05 / len(tested))


def test_similarity_seeds_from_the_measured_spread() -> None:
    marked = claims.ledger(grid_frame(seeds=5), n_boot=200)
    table = robustness.similarity_seeds(marked)
    assert list(table["compared"]) == [f"depth {d}: A − B (similar: within ± 1 pt)" for d in claims.REPORT_DEPTHS]
    row = {f.scope: f for f in marked}["depth 20: A − B (similar: within ± 1 pt)"]
    sd = (row.comparison.hi - row.comparison.estimate) * math.sqrt(5) / 2.7764451052
    assert table.iloc[0]["spread over seeds (pt, sd)"] == pytest.approx(round(sd, 2))
    assert table.iloc[0]["seeds needed for ± 1 pt"] == stats.seeds_for_similarity(row.comparison.estimate, sd, 1.0)
    text = robustness.similarity_sentence(table)
    assert "How many seeds" in text and "n = 5" in text


@pytest.mark.skipif(not REPORT.exists(), reason="the report's text (../shared/report) is not beside this checkout")
@pytest.mark.parametrize("check", facts.FACT_CHECKS, ids=lambda c: c.key)
def test_statements_about_the_paper_are_verbatim_and_in_their_section(check: facts.FactCheck) -> None:
    text = " ".join(REPORT.read_text(encoding="utf-8").split())
    quote = " ".join(check.quote.split())
    assert quote in text
    headings = [(m.start(), m.group(1)) for m in re.finditer(r" (\d(?:\.\d)*) [A-Z][a-z]", text)]
    before = [h for pos, h in headings if pos < text.index(quote)]
    assert before and before[-1] == check.source.removeprefix("report §")


def test_fact_counts_and_sentence() -> None:
    counts = facts.fact_counts()
    assert sum(counts.values()) == len(facts.FACT_CHECKS)
    assert {c.key: c.verdict for c in facts.FACT_CHECKS}["option_a_padding"] == "inaccurate"
    text = facts.fact_sentence()
    assert text.startswith(f"**{len(facts.FACT_CHECKS)} statements") and f"{counts['accurate']} accurate" in text
    assert len(facts.fact_table()) == len(facts.FACT_CHECKS)


@pytest.mark.slow
def test_forest_figure_draws_every_tested_line_once() -> None:
    marked, _ = robustness.robust_ledger(grid_frame(seeds=5), n_boot=200)
    fig = forest.forest_figure(marked)
    tested = [f for f in marked if f.verdict != "not tested"]
    points = [t for t in fig.data if t.x and t.x[0] is not None]
    assert len(points) == len(tested)
    assert {t.marker.color for t in points if t.name == "reproduced"} <= {forest.VERDICT_COLOURS["reproduced"], "white"}
    hollow = sum(t.marker.color == "white" for t in points)
    assert hollow == sum(f.robustness == "fragile" for f in tested)
    legend = {t.name: t.marker.color for t in fig.data if t.showlegend is not False}
    for verdict in {f.verdict for f in tested}:  # one filled swatch per verdict drawn, even if its first line is fragile
        assert legend[verdict] == forest.VERDICT_COLOURS[verdict]
    assert all(t.showlegend is False for t in points)
    labels = [a.text for a in fig.layout.annotations if a.xanchor == "left" and a.yanchor == "bottom"]
    assert len(labels) == len(tested)
    assert all(len(line) <= forest.LABEL_CHARS for text in labels for line in text.split("<br>"))
    assert fig.layout.meta["phone_plot_px"] == forest.ROW_PX * len(tested) + 60 * 3
    assert "not yet tested" in fig.layout.annotations[-1].text or any(
        "not yet tested" in (a.text or "") for a in fig.layout.annotations)
    assert forest.forest_figure(claims.ledger(grid_frame().iloc[0:0])).layout.title.text == (
        "The ledger: every tested line")


def test_copy_cost_text_says_what_the_difference_measures_and_what_it_does_not() -> None:
    from resnet_nb import akamaster

    records = [{"depth": d, "test_error_pct": e, "published_test_error_pct": p, "test_images": 10_000,
                "provenance": {"dataset_variant": "jpeg"}} for d, e, p in ((20, 18.0, 8.0), (56, 17.5, 6.5))]
    text = akamaster.copy_cost_text(records)
    assert text.startswith("On our test copy (jpeg, 10,000 images) the published nets err 10.0 to 11.0 points more")
    assert "ResNet-20 18.00 % vs 8.00 %; ResNet-56 17.50 % vs 6.50 %" in text
    assert "It does not separate the copy from any other difference" in text and "the cost of the copy alone" not in text
    assert akamaster.copy_cost_text([]).startswith("No akamaster evaluation records yet")


def test_option_distance_reading_names_the_depths_beyond_twice_the_noise() -> None:
    from resnet_nb import analysis

    table = pd.DataFrame({"depth": [20, 32, 44, 56], "epochs": 10, "n_A": 5, "n_B": 5,
                          "ssr": [9.0, 2.0, 30.0, 34.0], "noise_ssr": [9.0, 10.0, 12.5, 13.6],
                          "rms_gap": 1.0}).set_index("depth")
    text = analysis.option_distance_reading(table)
    assert ("at depths 44 (2.4×) and 56 (2.5×) the A and B mean curves are at least twice as far apart as seed "
            "noise alone would put them; at depths 20 (1.0×) and 32 (0.2×) they are not.") in text
    assert "not equally similar at every depth" in text and "not a test" in text
    calm = analysis.option_distance_reading(table.assign(ssr=[9.0, 2.0, 12.0, 13.0]))
    assert "By this measure no depth stands out." in calm and "less than twice" in calm
    assert analysis.option_distance_reading(table.assign(noise_ssr=float("nan"))).startswith("No depth has two seeds")
