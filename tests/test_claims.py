"""The claims ledger: verbatim quotes, verdicts computed from (synthetic) records, generated text."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resnet_nb import claims, stats

from .conftest import make_paper_results, make_results

REPORT = Path(__file__).resolve().parents[2] / "shared" / "report" / "000_9660d8f9b998dae7.txt"


@pytest.mark.skipif(not REPORT.exists(), reason="the report's text (../shared/report) is not beside this checkout")
@pytest.mark.parametrize("key", list(claims.REPORT_CLAIMS))
def test_report_claims_are_verbatim_quotes(key: str) -> None:
    text = " ".join(REPORT.read_text(encoding="utf-8").split())
    claim = claims.REPORT_CLAIMS[key]
    assert " ".join(claim.text.split()) in text
    section = claim.source.removeprefix("report §")
    # the quote sits in the section it is attributed to (the next section heading comes after it)
    start = text.index(" ".join(claim.text.split()))
    headings = [(m.start(), m.group(1)) for m in re.finditer(r" (\d(?:\.\d)*) [A-Z][a-z]", text)]
    before = [h for pos, h in headings if pos < start]
    assert before and before[-1] == section


def grid_frame(rng_seed: int = 0, seeds: int = 5, plain_drop: float = 8.0, b_offset: float = 0.0,
               noise: float = 0.3) -> pd.DataFrame:
    """Synthetic report-grid records: ResNet-A ~ 80 %, B = A + b_offset, plain = A − plain_drop · depth / 20 (points)."""
    rng = np.random.default_rng(rng_seed)
    acc: dict[str, list[float]] = {}
    for d in claims.REPORT_DEPTHS:
        base = 80.0 + 0.05 * (d - 20)
        acc[f"resnet{d}-A"] = list((base + rng.normal(0, noise, seeds)) / 100)
        acc[f"resnet{d}-B"] = list((base + b_offset + rng.normal(0, noise, seeds)) / 100)
        acc[f"plain{d}"] = list((base - plain_drop * d / 20 + rng.normal(0, noise, seeds)) / 100)
    for key, level in (("tv-resnet18-imagenet", 76.0), ("tv-resnet18-cifar", 81.0)):
        acc[key] = list((level + rng.normal(0, noise, seeds)) / 100)
    return make_results(acc, seeds=seeds, epochs=2)


def by_scope(findings: list[claims.Finding]) -> dict[str, claims.Finding]:
    return {f.scope: f for f in findings}


TV = "ResNet-20 (A) − torchvision ResNet-18, ImageNet stem (our reading of `models.resnet()`)"
STEM = "ResNet-18 with a CIFAR stem − ResNet-20 (A)"
ACC28 = "accuracy improvement, mean over depths (stated about 28 %)"


@pytest.mark.slow
def test_ledger_verdicts_and_categories_on_clear_synthetic_records() -> None:
    f = by_scope(claims.ledger(grid_frame()))
    assert f[TV].verdict == "reproduced" and f[TV].category == "report claim"
    # the CIFAR stem is our question, not the report's: its own category, judged on its own hypothesis
    assert f[STEM].verdict == "reproduced" and f[STEM].category == "our extension"
    assert f["step 20 → 32: accuracy, ResNet-32 − ResNet-20"].verdict == "reproduced"  # +0.6 pt with 0.3 pt noise
    for d in claims.REPORT_DEPTHS:
        assert f[f"depth {d}: ResNet (A) − plain"].verdict == "reproduced"
        assert f[f"depth {d}: A − B (similar: within ± 1 pt)"].verdict == "reproduced"
    assert f["'especially when the depth is large': gap at 56 − gap at 20"].verdict == "reproduced"
    assert f["report protocol: plain-20 − plain-56"].verdict == "reproduced"
    assert f["report protocol: plain-20 − plain-56"].category == "paper claim"
    untested = f["paper recipe, shortened: plain-20 − plain-56"]
    assert (untested.verdict, untested.reason, untested.category) == ("not tested", "no records", "not yet tested")


@pytest.mark.slow
def test_paper_rows_judge_shortened_runs_and_hold_only_full_length_ones_against_table6() -> None:
    import pandas as pd

    short = make_paper_results({"plain20": 3, "plain56": 3, "resnet20-A": 3, "resnet56-A": 3}, grid="paper8k",
                               total=8000, drops=(4000, 6000))
    f = by_scope(claims.ledger(grid_frame(), short))
    row = f["paper recipe, shortened: plain-20 − plain-56"]
    assert row.category == "paper claim" and row.verdict != "not tested" and row.n_text() == "3"
    # shortened runs never stand in for Table 6's absolute values
    error = f["paper recipe, full length: ResNet-20 test error (paper 8.75 %)"]
    assert error.category == "not yet tested"
    full = make_paper_results({"resnet20-A": 3})
    f = by_scope(claims.ledger(grid_frame(), pd.concat([short, full], ignore_index=True)))
    error = f["paper recipe, full length: ResNet-20 test error (paper 8.75 %)"]
    assert error.rule.tolerance == 0.005 and error.comparison.estimate == pytest.approx(100 - 100 * (0.5 + 0.08 * 4))
    assert f["paper recipe, full length: ResNet-110 test error (paper 6.43 %)"].category == "not yet tested"
    # and full-length runs alone leave the shortened lines untested (the same seeds would otherwise collide)
    f = by_scope(claims.ledger(grid_frame(), full))
    assert f["paper recipe, shortened: ResNet-56 (A) − ResNet-20 (A)"].category == "not yet tested"


def test_depth_is_tested_at_every_step_and_a_claim_true_at_one_step_is_partly_reproduced() -> None:
    acc = {"resnet20-A": [0.700, 0.702, 0.698, 0.701, 0.699], "resnet32-A": [0.750, 0.752, 0.748, 0.751, 0.749],
           "resnet44-A": [0.720, 0.722, 0.718, 0.721, 0.719], "resnet56-A": [0.720, 0.730, 0.710, 0.725, 0.715]}
    df = make_results(acc, seeds=5, epochs=2)
    lines = [x for x in claims.ledger(df) if x.claim.key == "depth"]
    got = {x.scope: x.verdict for x in lines}
    assert got == {"step 20 → 32: accuracy, ResNet-32 − ResNet-20": "reproduced",
                   "step 32 → 44: accuracy, ResNet-44 − ResNet-32": "contradicted",
                   "step 44 → 56: accuracy, ResNet-56 − ResNet-44": "inconclusive",
                   # make_results: loss = 2 (1 - acc) + 0.1, so the loss steps mirror the accuracy steps
                   "step 20 → 32: loss, ResNet-32 − ResNet-20": "reproduced",
                   "step 32 → 44: loss, ResNet-44 − ResNet-32": "contradicted",
                   "step 44 → 56: loss, ResNet-56 − ResNet-44": "inconclusive"}
    verdict, why = claims.claim_verdict(lines)
    assert verdict == "partly reproduced"
    assert why.startswith("reproduced: step 20 → 32: accuracy, ResNet-32 − ResNet-20; step 20 → 32: loss")
    assert "step 32 → 44: accuracy, ResNet-44 − ResNet-32: contradicted" in why
    assert claims.claim_verdict(lines[1:2]) == ("contradicted", "contradicted: " + lines[1].scope)
    assert claims.claim_verdict(lines[:1])[0] == "reproduced"
    assert claims.claim_verdict([dataclasses.replace(lines[0], verdict="not tested")]) == ("not tested", "no records")


@pytest.mark.slow
def test_one_test_one_count() -> None:
    df = grid_frame(rng_seed=4)
    findings = claims.ledger(df)
    assert len({x.line for x in findings}) == len(findings)
    # ResNet-56 − ResNet-20 in test accuracy is one test (the stated 1.3 %), not also a separate direction line
    direct = claims.paired(df, "resnet56-A", "resnet20-A", "test_acc")
    same = [x for x in findings if x.comparison is not None and x.comparison.estimate == pytest.approx(direct.estimate)
            and x.comparison.test == "paired t"]
    assert [x.scope for x in same] == ["accuracy: ResNet-56 − ResNet-20 (stated 1.3 %)"]


def _fake(verdict: str, origin: str, key: str = "k") -> claims.Finding:
    claim = claims.Claim(key, "report §9", "text", "08_conclusion", origin)  # type: ignore[arg-type]
    cmp = None if verdict == "not tested" else stats.Comparison(1.0, 0.5, 1.5, (5,), "paired t")
    return claims.Finding(claim, f"{origin} {verdict} {id(claim)}", "m", cmp, verdict, "why")  # type: ignore[arg-type]


def test_counts_keep_categories_apart_and_add_up() -> None:
    findings = ([_fake("reproduced", "report")] * 3 + [_fake("not matched", "report")] * 2
                + [_fake("inconclusive", "report")] + [_fake("contradicted", "extension")]
                + [_fake("reproduced", "paper")] + [_fake("not tested", "paper")] * 4 + [_fake("not tested", "report")])
    table = claims.category_counts(findings)
    assert table["report claim"] == {"reproduced": 3, "contradicted": 0, "not matched": 2, "inconclusive": 1,
                                     "not tested": 0}
    assert table["our extension"]["contradicted"] == 1 and sum(table["our extension"].values()) == 1
    assert table["paper claim"] == {"reproduced": 1, "contradicted": 0, "not matched": 0, "inconclusive": 0,
                                    "not tested": 0}
    assert sum(table["not yet tested"].values()) == 5  # lines without records: never counted as inconclusive
    assert sum(sum(v.values()) for v in table.values()) == len(findings)
    text = claims.counts_markdown(findings)
    assert text.startswith("**13 lines, one test each**: 8 tested, 5 not yet tested (no records).")
    assert "* **report claims**: 6 tested: 3 reproduced, 2 not matched, 1 inconclusive." in text
    assert "* **our extensions**: 1 tested: 1 contradicted." in text
    assert "* **paper claims**: 1 tested: 1 reproduced." in text


@pytest.mark.slow
def test_stated_figures_are_judged_under_every_reading_and_not_matched_when_none_fits() -> None:
    f = by_scope(claims.ledger(grid_frame()))
    acc = f[ACC28]
    assert acc.rule.tolerance == 1.5 and acc.region_text() == "28 ± 1.5 %"
    assert [i.name for i in acc.interpretations] == [
        "test accuracy, % of the plain net's", "test accuracy, points", "test error, % removed",
        "training accuracy, % of the plain net's", "training accuracy, points", "training error, % removed"]
    # synthetic plain nets lose 8-22 points of ~80: no reading comes near 28 ± 1.5 (all intervals narrow)
    assert {i.verdict for i in acc.interpretations} == {"contradicted"}
    assert acc.verdict == "not matched" and acc.reason == "no reading of the figure meets 28 ± 1.5 (6 readings tried)"
    table = claims.interpretation_table(claims.ledger(grid_frame()))
    assert len(table) == 6 + 4 + 4 + 4
    assert list(table[table["stated"].str.startswith("about 28")]["this reading"]) == ["misses the band"] * 6
    rule = claims.Value("28", True, ())
    yes = claims.Interpretation("train", None, "reproduced", "")
    no = claims.Interpretation("test", None, "contradicted", "")
    open_ = claims.Interpretation("pts", None, "inconclusive", "")
    assert claims.value_over_readings([no, yes], rule) == ("reproduced", "28 ± 1.5 is met under: train")
    assert claims.value_over_readings([no, no], rule)[0] == "not matched"
    assert claims.value_over_readings([no], rule) == ("contradicted", "")  # one reading: its own verdict
    assert claims.value_over_readings([no, open_], rule) == ("inconclusive", "28 ± 1.5 is not ruled out under: pts")


@pytest.mark.slow
def test_ledger_numbers_match_a_direct_computation() -> None:
    df = grid_frame(rng_seed=4)
    f = by_scope(claims.ledger(df))
    last = df[df["epoch"] == 2]
    r = last[last["model"] == "resnet56-A"].set_index("seed")["test_acc"]
    p = last[last["model"] == "plain56"].set_index("seed")["test_acc"]
    d = 100 * (r - p)
    finding = f["depth 56: ResNet (A) − plain"]
    assert finding.comparison.estimate == pytest.approx(d.mean())
    half = 2.7764451052 * d.std(ddof=1) / math.sqrt(5)
    assert finding.comparison.lo == pytest.approx(d.mean() - half)
    assert finding.n_text() == "5"
    # the averaged relative improvement: mean over depths of 100 (R - P) / P from the seed means
    means = last.groupby("model")["test_acc"].mean()
    expected = np.mean([100 * (means[f"resnet{k}-A"] - means[f"plain{k}"]) / means[f"plain{k}"]
                        for k in claims.REPORT_DEPTHS])
    imp = f[ACC28]
    assert imp.comparison.estimate == pytest.approx(expected)
    assert imp.comparison.lo < expected < imp.comparison.hi
    points = np.mean([100 * (means[f"resnet{k}-A"] - means[f"plain{k}"]) for k in claims.REPORT_DEPTHS])
    error = np.mean([100 * (means[f"resnet{k}-A"] - means[f"plain{k}"]) / (1 - means[f"plain{k}"])
                     for k in claims.REPORT_DEPTHS])
    by_name = {i.name: i.comparison.estimate for i in imp.interpretations}
    assert by_name["test accuracy, points"] == pytest.approx(points)
    assert by_name["test error, % removed"] == pytest.approx(error)


@pytest.mark.slow
def test_ten_epochs_reads_the_end_of_each_curve() -> None:
    df = grid_frame()
    f = by_scope(claims.ledger(df))
    line = f["plain: test accuracy, epoch 10 − epoch 7 (mean over depths; > 0: not yet falling)"]
    assert line.comparison is None and line.verdict == "not tested"  # 2 epochs: no epoch 3 back
    long = make_results({m: [0.7 + 0.01 * k for k in range(5)] for d in claims.REPORT_DEPTHS
                         for m in (f"plain{d}", f"resnet{d}-A")}, seeds=5, epochs=10)
    g = by_scope(claims.ledger(long))
    rising = g["plain: test accuracy, epoch 10 − epoch 7 (mean over depths; > 0: not yet falling)"]
    # make_results: accuracy = final · epoch / 10, so epoch 10 − epoch 7 = 0.3 · final, in points
    assert rising.comparison.estimate == pytest.approx(30 * np.mean([0.7 + 0.01 * k for k in range(5)]))
    assert rising.verdict == "reproduced" and "after epoch 10 the records say nothing" in rising.note


def test_one_seed_is_inconclusive_and_no_records_is_not_tested() -> None:
    findings = claims.ledger(grid_frame(seeds=1))
    assert {x.verdict for x in findings} == {"inconclusive", "not tested"}
    assert all(("fewer than 3" in x.reason) or x.reason in ("no records", "no interval")
               or "not ruled out" in x.reason for x in findings)
    empty = claims.ledger(grid_frame().iloc[0:0])
    assert all(x.estimate_text() == "no records" and x.category == "not yet tested" for x in empty)


@pytest.mark.slow
def test_ledger_table_has_no_missing_values_and_chapter_text() -> None:
    findings = claims.ledger(grid_frame())
    table = claims.ledger_table(findings)
    assert not table.isna().any().any() and len(table) == len(findings)
    assert set(table["verdict"]) <= set(claims.LINE_VERDICTS) and set(table["category"]) <= set(claims.CATEGORIES)
    text = claims.chapter_findings(findings, "07_resnet_vs_plain")
    assert text.startswith("**What the records show**") and text.count("\n* ") == 11
    assert "**reproduced**" in text and "report §2.5" in text
    assert "* *our extension of §2.3.1*, ResNet-18 with a CIFAR stem" in claims.chapter_findings(findings, "04_torchvision")
    assert "*paper §4.2, Fig. 6 (left)* [not yet tested], paper recipe, shortened" in claims.chapter_findings(findings,
                                                                                                   "02_degradation")
    assert "No claim" in claims.chapter_findings(findings, "03_residual_blocks")
    assert sum(claims.verdict_counts(findings).values()) == len(findings)


def test_seed_check_prediction_interval() -> None:
    df = make_results({"plain56": [0.50, 0.52, 0.53, 0.51, 0.40]}, seeds=5, epochs=1)
    check = claims.seed_check(df, "plain56", 4)
    others = [50.0, 52.0, 53.0, 51.0]
    half = 3.1824463 * float(np.std(others, ddof=1)) * math.sqrt(1 + 1 / 4)  # t_{3, 0.975}
    assert check.value == pytest.approx(40.0) and check.verdict == "outside"
    assert (check.lo, check.hi) == (pytest.approx(51.5 - half), pytest.approx(51.5 + half))
    assert claims.seed_check(df, "plain56", 0).verdict == "inside"
    assert "outside" in check.text() and "40.00" in check.text()
    few = claims.seed_check(make_results({"plain56": [0.5, 0.4]}, seeds=2, epochs=1), "plain56", 0)
    assert few.verdict == "too few other seeds" and "too few" in few.text()
    assert claims.seed_check(df, "plain56", 9) is None


def _precision_frame(model: str, accs: list[float], precision: str, grid: str = "precision10", device: str = "CPU",
                     epochs: int = 1, first_seed: int = 0) -> pd.DataFrame:
    """Records of ``model`` in one precision (final test accuracies as fractions, seeds from ``first_seed``)."""
    frame = make_results({model: [0.0] * first_seed + accs}, seeds=first_seed + len(accs), epochs=epochs,
                         device=device)
    frame = frame[frame["seed"] >= first_seed].copy()
    frame["grid"], frame["precision"] = grid, precision
    tag = f"_{precision}" if grid.startswith("precision") else ""
    frame["run_id"] = [f"{model}_report{tag}_s{k}" for k in frame["seed"]]
    return frame


def test_precision_effect_pairs_fp32_with_bf16_by_seed() -> None:
    df = pd.concat([_precision_frame("resnet20-A", [0.60, 0.62, 0.64], "fp32"),
                    _precision_frame("resnet20-A", [0.61, 0.62, 0.66], "bf16")], ignore_index=True)
    cmp = claims.precision_effect(df, "resnet20-A")
    assert cmp.estimate == pytest.approx(-1.0) and cmp.n == (3,) and cmp.test == "paired t"
    assert claims.precision_effect(df, "plain56") is None
    # a seed whose two runs ran on different devices does not pair: its difference is not the precision's alone
    df.loc[(df["precision"] == "fp32") & (df["seed"] == 2), "device_name"] = "Other GPU"
    cmp = claims.precision_effect(df, "resnet20-A")
    assert cmp.n == (2,) and cmp.estimate == pytest.approx(-0.5)  # seeds 0, 1: -1 and 0 points
    df["device_name"] = np.where(df["precision"] == "fp32", "CPU", "GPU")
    assert claims.precision_effect(df, "resnet20-A") is None
    assert claims.precision_sentence(df, "resnet20-A", "Grid `p`") \
        == "Grid `p`, resnet20-A: no seed has both precisions on one device yet."


def test_precision_pairs_borrow_the_report_grids_bf16_run_of_the_same_seed_and_device() -> None:
    """On a CPU the report's records are bf16: a precision10 fp32 run pairs with the report run of its seed."""
    frames = [
        _precision_frame("plain56", [0.58, 0.59, 0.60], "bf16", grid="report", epochs=2),  # seeds 0-2, CPU
        _precision_frame("plain56", [0.48], "fp32", grid="report", device="GPU", epochs=2),  # GPU seed 0: no GPU bf16
        _precision_frame("plain56", [0.44, 0.50], "fp32", epochs=2),  # precision10 fp32, seeds 0-1, CPU
        _precision_frame("plain56", [0.56], "bf16", epochs=2),  # precision10 bf16, seed 0, CPU
        _precision_frame("plain56", [0.30], "fp32", epochs=1, first_seed=2),  # 1 epoch: pairs with nothing
    ]
    pairs = claims.precision_pairs(frames, "plain56")
    assert list(pairs["seed"]) == [0, 1] and set(pairs["device"]) == {"CPU"}
    # seed 0: the designed pair (both precision10), not the report's bf16 run; seed 1: the report's bf16 run
    assert list(pairs["grid bf16"]) == ["precision10", "report"] and list(pairs["grid fp32"]) == ["precision10"] * 2
    assert list(pairs["fp32"]) == pytest.approx([44.0, 50.0]) and list(pairs["bf16"]) == pytest.approx([56.0, 59.0])
    cmp = claims.precision_effect(frames, "plain56")
    assert cmp.n == (2,) and cmp.estimate == pytest.approx(-10.5)
    text = claims.precision_sentence(frames, "plain56", "10 epochs")
    assert text.startswith("10 epochs, plain56: fp32 − bf16 test accuracy -10.50 points, 95 % interval [")
    assert "over 2 seed pairs on the same device (seeds 0, 1, CPU; 1 bf16 run from grid `report`; paired t" in text
    one = claims.precision_sentence(frames[:2] + [_precision_frame("plain56", [0.44], "fp32", epochs=2)], "plain56",
                                    "10 epochs")
    assert one == ("10 epochs, plain56: fp32 − bf16 test accuracy -14.00 points on one seed pair (seed 0, CPU; 1 bf16 "
                   "run from grid `report`): one run per precision, no interval, no test.")
    assert claims.precision_pairs([frames[0].iloc[0:0]], "plain56").empty


def test_precision_pair_table_lists_each_models_pairs_under_its_name() -> None:
    frames = [_precision_frame("plain56", [0.44, 0.50], "fp32", epochs=2),
              _precision_frame("plain56", [0.56, 0.59], "bf16", epochs=2),
              _precision_frame("resnet56-A", [0.80], "fp32", epochs=2, first_seed=1),
              _precision_frame("resnet56-A", [0.79, 0.78], "bf16", epochs=2)]
    table = claims.precision_pair_table(frames, ["resnet56-A", "plain56", "resnet20-A"])
    assert list(table.columns) == ["model", "seed", "device", "grid fp32", "grid bf16", "fp32", "bf16"]
    assert list(zip(table["model"], table["seed"])) == [("resnet56-A", 1), ("plain56", 0), ("plain56", 1)]
    assert list(table["fp32"]) == pytest.approx([80.0, 44.0, 50.0])
    assert list(table["bf16"]) == pytest.approx([78.0, 56.0, 59.0])
    empty = claims.precision_pair_table(frames, ["resnet20-A"])
    assert empty.empty and list(empty.columns) == list(table.columns)


def test_precision_sentence_says_its_n_and_gives_no_interval_for_one_pair() -> None:
    df = pd.concat([_precision_frame("plain56", [0.50, 0.56, 0.55], "fp32"),
                    _precision_frame("plain56", [0.58, 0.57, 0.59], "bf16")], ignore_index=True)
    text = claims.precision_sentence(df, "plain56", "10 epochs")
    cmp = claims.precision_effect(df, "plain56")
    assert text == (f"10 epochs, plain56: fp32 − bf16 test accuracy -4.33 points, 95 % interval [{cmp.lo:+.2f}, "
                    f"{cmp.hi:+.2f}] over 3 seed pairs on the same device (seeds 0, 1, 2, CPU; paired t, "
                    f"p = {cmp.p_value:.2g}). **Inconclusive** (the similarity rule of the ledger: ± 1 point; the 95 % "
                    "interval crosses ± 1): these pairs neither justify averaging the two precisions nor forbid it; "
                    "until they do, the conclusion page's reading without the seeds made in two settings is what the "
                    "means rest on.")
    one = claims.precision_sentence(df[df["seed"] == 0], "plain56", "10 epochs", metric="test_loss")
    assert one.startswith("10 epochs, plain56: fp32 − bf16 test loss +") and "one seed pair (seed 0, CPU)" in one
    assert "points" not in one  # a loss difference has no points


@pytest.mark.parametrize(("fp32", "bf16", "says"), [
    ([0.580, 0.590, 0.600], [0.581, 0.592, 0.598], "**The precisions agree**"),  # +0.0 [-0.6, +0.6] points
    ([0.500, 0.510, 0.520], [0.580, 0.592, 0.598], "**The precision matters**"),  # -8.0 [-11, -5]: outside ± 1
    ([0.500, 0.510], [0.580, 0.592], "**Inconclusive**"),  # 2 pairs: fewer than the 3 seeds a verdict needs
])
def test_precision_sentence_says_whether_the_pairs_justify_mixing(fp32, bf16, says) -> None:
    df = pd.concat([_precision_frame("plain56", fp32, "fp32"), _precision_frame("plain56", bf16, "bf16")],
                   ignore_index=True)
    text = claims.precision_sentence(df, "plain56", "10 epochs")
    assert says in text and text.count("**") == 2
    cmp = claims.precision_effect(df, "plain56")
    inside = -1 <= cmp.lo and cmp.hi <= 1
    assert inside == (says == "**The precisions agree**")


def _seed_frames(seed0: dict[tuple[str, str], float], others: list[float]) -> list[pd.DataFrame]:
    """The report grid (seed 0 on a GPU in fp32, the other seeds on a CPU in bf16) and a precision10 grid
    holding seed 0 in the given (device, precision) settings; final test accuracies as fractions."""
    report = make_results({"plain56": [0.0] + others}, seeds=1 + len(others), epochs=2, device="CPU")
    gpu = report["seed"] == 0
    report.loc[gpu, ["device_name", "precision"]] = ["GPU", "fp32"]
    report.loc[gpu & (report["epoch"] == 2), "test_acc"] = 0.48
    p10 = []
    for (device, precision), acc in seed0.items():
        one = make_results({"plain56": [acc]}, seeds=1, epochs=2, device=device)
        one["grid"], one["precision"] = "precision10", precision
        one["run_id"] = f"plain56_report_{precision}_s0"
        p10.append(one)
    return [report, pd.concat(p10, ignore_index=True) if p10 else report.iloc[0:0]]


def test_seed_settings_holds_the_seed_fixed_across_devices_and_precisions() -> None:
    others = [0.58, 0.59, 0.57]
    frames = _seed_frames({("CPU", "bf16"): 0.585, ("CPU", "fp32"): 0.575}, others)
    got = claims.seed_settings(frames, "plain56", 0)
    half = 4.3026527 * float(np.std([58.0, 59.0, 57.0], ddof=1)) * math.sqrt(1 + 1 / 3)  # t_{2, 0.975}
    assert (got.lo, got.hi) == (pytest.approx(58.0 - half), pytest.approx(58.0 + half))
    assert got.others == pytest.approx((58.0, 59.0, 57.0))
    table = got.runs.set_index(["device", "precision"])
    assert table.loc[("GPU", "fp32"), "test accuracy (%)"] == pytest.approx(48.0)
    assert table.loc[("CPU", "bf16"), "test accuracy (%)"] == pytest.approx(58.5)
    assert list(table["where"]) == ["outside", "inside", "inside"]
    assert list(got.runs["grid"]) == ["report", "precision10", "precision10"]
    text = got.text()
    assert "in 3 settings" in text and "moves it by 10.50 points" in text and "span 2.00" in text
    # GPU fp32 outside, CPU bf16 and CPU fp32 inside: the precision does not separate them, the device does
    assert ("Every run on GPU falls outside it and every run on CPU inside. That rests on one run per setting: the "
            "CPU runs alone, on bf16 and fp32, differ by 1.00 points, against 9.50 between the closest runs outside "
            "and inside; so the precision moves this seed too, and these runs cannot tell the device apart from the "
            "rest of the arithmetic.") in text and "cannot say whether GPU is worse on average" in text

    fp32_low = claims.seed_settings(_seed_frames({("CPU", "bf16"): 0.585, ("CPU", "fp32"): 0.44}, others), "plain56", 0)
    assert list(fp32_low.runs["where"]) == ["outside", "inside", "outside"]
    assert ("Every run in fp32 falls outside it and every run in bf16 inside. That rests on one run per setting: "
            "the fp32 runs alone, on CPU and GPU, differ by 4.00 points, against 10.50 between the closest runs "
            "outside and inside") in fp32_low.text()
    assert "separates them" not in fp32_low.text()
    mixed = claims.seed_settings(_seed_frames({("CPU", "bf16"): 0.44, ("CPU", "fp32"): 0.585, ("GPU", "bf16"): 0.58},
                                              others), "plain56", 0)
    assert list(mixed.runs["where"]) == ["outside", "outside", "inside", "inside"]
    assert "Only GPU fp32, CPU bf16 fall outside it" in mixed.text() and "no single factor" in mixed.text()

    every = claims.seed_settings(_seed_frames({("CPU", "bf16"): 0.47}, others), "plain56", 0)
    assert list(every.runs["where"]) == ["outside", "outside"]
    assert "Every setting of seed 0 falls outside it: the unusual value follows the seed" in every.text()
    inside = claims.seed_settings(_seed_frames({("CPU", "bf16"): 0.58}, others), "plain56", 1)
    assert len(inside.runs) == 1 and "one setting so far" in inside.text() and "--only 'plain56_report_*_s1'" \
        in inside.text()
    few = claims.seed_settings(_seed_frames({("CPU", "bf16"): 0.58}, [0.58]), "plain56", 0)
    assert list(few.runs["where"]) == ["?", "?"] and "too few to compare with" in few.text()
    assert claims.seed_settings(frames, "plain56", 7) is None
    assert claims.seed_settings(frames, "resnet20-A", 0) is None


@pytest.mark.slow
def test_ledger_markdown_quotes_each_claim_once_and_shows_categories_apart() -> None:
    findings = claims.ledger(grid_frame())
    text = claims.ledger_markdown(findings)
    assert text.startswith(claims.counts_markdown(findings))
    assert text.count("> " + claims.REPORT_CLAIMS["plain_worse"].text) == 1
    assert text.count("\n* ") == len(findings) + 4  # one bullet per line, and the four lines of counts
    report, extension = text.index("### Report claims"), text.index("### Our extensions")
    assert report < text.index(TV) < extension < text.index(STEM) < text.index("### Paper claims")
    assert text.index("### Not yet tested") < text.index("paper recipe, shortened: plain-20 − plain-56")


def test_rank_sentence_and_run_table() -> None:
    df = make_results({"resnet20-A": [0.80, 0.82], "plain20": [0.60, 0.62], "tv-resnet18-cifar": [0.85]})
    text = claims.rank_sentence(df, "tv-resnet18-cifar")
    assert "ranks 1 of 3 configurations by test accuracy (85.00 %" in text and "3 of 3 by test loss" not in text
    assert "ranks 1 of 3" in text and "(n = 1)" in text
    assert claims.rank_sentence(df, "plain56") == "plain56: no records."
    table = claims.run_table(df, "plain20")
    assert list(table.index) == [0, 1] and list(table["test accuracy (%)"]) == [60.0, 62.0]
    assert list(table["device"]) == ["Test GPU", "Test GPU"]


def test_derived_relative_figures_match_their_definitions() -> None:
    """Every derived figure of the ledger from its definition, on seed means: relative improvement of
    accuracy 100 (R − P) / P and of loss 100 (P − R) / P, loss in hundredths 100 (P − R), accuracy in points,
    the error removed 100 (R − P) / (100 − P) (R, P in %), and the deep-vs-shallow loss reduction 100 (shallow − deep) / shallow (for
    accuracy 100 (deep − shallow) / shallow)."""
    df = grid_frame(rng_seed=7, seeds=4, noise=1.0)
    last = df[df["epoch"] == 2]
    acc = last.groupby("model")["test_acc"].mean()
    loss = last.groupby("model")["test_loss"].mean()
    depths = claims.REPORT_DEPTHS

    def mean_over_depths(f) -> float:  # noqa: ANN001
        return float(np.mean([f(f"resnet{d}-A", f"plain{d}") for d in depths]))

    expected = {
        ("test_acc", "relative"): mean_over_depths(lambda r, p: 100 * (acc[r] - acc[p]) / acc[p]),
        ("test_loss", "relative"): mean_over_depths(lambda r, p: 100 * (loss[p] - loss[r]) / loss[p]),
        ("test_loss", "points"): mean_over_depths(lambda r, p: 100 * (loss[p] - loss[r])),
        ("test_acc", "points"): mean_over_depths(lambda r, p: 100 * (acc[r] - acc[p])),  # accuracies in points
        ("test_acc", "error"): mean_over_depths(lambda r, p: 100 * (acc[r] - acc[p]) / (1 - acc[p])),
    }
    for (metric, quantity), value in expected.items():
        got = claims.improvement_pct(df, metric, n_boot=50, quantity=quantity)
        assert got.estimate == pytest.approx(value), (metric, quantity)
        assert got.n == (4,) * 2 * len(depths)
    deep, shallow = "plain56", "plain20"
    got = claims.loss_reduction_pct(df, deep, shallow, n_boot=50)
    assert got.estimate == pytest.approx(100 * (loss[shallow] - loss[deep]) / loss[shallow]) and got.estimate < 0
    got = claims.loss_reduction_pct(df, deep, shallow, n_boot=50, metric="test_acc")
    assert got.estimate == pytest.approx(100 * (acc[deep] - acc[shallow]) / acc[shallow]) and got.estimate < 0
    assert claims.loss_reduction_pct(df, "resnet20-A", "plain20", n_boot=50).estimate > 0
