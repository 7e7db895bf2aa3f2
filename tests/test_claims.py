"""The claims ledger: verbatim quotes, verdicts computed from (synthetic) records, generated text."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resnet_nb import claims

from .conftest import make_results

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
    headings = [(m.start(), m.group(1)) for m in re.finditer(r" (\d(?:\.\d)+) [A-Z]", text)]
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


def test_ledger_verdicts_on_clear_synthetic_records() -> None:
    f = by_scope(claims.ledger(grid_frame()))
    assert f["ResNet-20 (A) − torchvision ResNet-18 (ImageNet stem)"].verdict == "reproduced"
    assert f["same, CIFAR stem: ResNet-20 (A) − ResNet-18 (CIFAR stem)"].verdict == "contradicted"
    assert f["ResNet-56 (A) − ResNet-20 (A)"].verdict == "reproduced"  # +1.8 pt with 0.3 pt noise
    for d in claims.REPORT_DEPTHS:
        assert f[f"depth {d}: ResNet (A) − plain"].verdict == "reproduced"
        assert f[f"depth {d}: A − B (similar: within ± 1 pt)"].verdict == "reproduced"
    assert f["'especially when the depth is large': gap at 56 − gap at 20"].verdict == "reproduced"
    assert f["report protocol: plain-20 − plain-56"].verdict == "reproduced"
    assert f["paper protocol: plain-20 − plain-56"].verdict == "inconclusive"
    assert f["paper protocol: plain-20 − plain-56"].reason == "no records"


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
    imp = f["accuracy improvement, mean over depths (claimed 28 %)"]
    assert imp.comparison.estimate == pytest.approx(expected)
    assert imp.comparison.lo < expected < imp.comparison.hi


def test_value_claims_can_be_contradicted_and_b_better_contradicts_a_better() -> None:
    f = by_scope(claims.ledger(grid_frame(b_offset=1.5)))
    assert f["A − B, mean over depths 20–56 per seed"].verdict == "contradicted"
    assert f["depth 20: A − B (similar: within ± 1 pt)"].verdict in ("contradicted", "inconclusive")
    # the synthetic plain nets lose 8-22 points: the mean relative improvement is far from 28 % at 5 seeds
    assert f["accuracy improvement, mean over depths (claimed 28 %)"].verdict == "contradicted"


def test_one_seed_is_inconclusive_and_no_records_is_said() -> None:
    findings = claims.ledger(grid_frame(seeds=1))
    assert {x.verdict for x in findings} == {"inconclusive"}
    assert all(("fewer than 3" in x.reason) or x.reason in ("no records", "no interval") for x in findings)
    empty = claims.ledger(grid_frame().iloc[0:0])
    assert all(x.estimate_text() == "no records" for x in empty)


def test_ledger_table_has_no_missing_values_and_chapter_text() -> None:
    findings = claims.ledger(grid_frame())
    table = claims.ledger_table(findings)
    assert not table.isna().any().any() and len(table) == len(findings)
    assert set(table["verdict"]) <= {"reproduced", "contradicted", "inconclusive"}
    text = claims.chapter_findings(findings, "07_resnet_vs_plain")
    assert text.startswith("**What the records show**") and text.count("\n* ") == 7
    assert "**reproduced**" in text and "report §2.5" in text
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
                    f"p = {cmp.p_value:.2g}). **Undecided** (the similarity rule of the ledger: ± 1 point; the 95 % "
                    "interval crosses ± 1): these pairs neither justify averaging the two precisions nor forbid it; "
                    "until they do, the mixing check on the conclusion page is what the means rest on.")
    one = claims.precision_sentence(df[df["seed"] == 0], "plain56", "10 epochs", metric="test_loss")
    assert one.startswith("10 epochs, plain56: fp32 − bf16 test loss +") and "one seed pair (seed 0, CPU)" in one
    assert "points" not in one  # a loss difference has no points


@pytest.mark.parametrize(("fp32", "bf16", "says"), [
    ([0.580, 0.590, 0.600], [0.581, 0.592, 0.598], "**The precisions agree**"),  # +0.0 [-0.6, +0.6] points
    ([0.500, 0.510, 0.520], [0.580, 0.592, 0.598], "**The precision matters**"),  # -8.0 [-11, -5]: outside ± 1
    ([0.500, 0.510], [0.580, 0.592], "**Undecided**"),  # 2 pairs: fewer than the 3 seeds a verdict needs
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
    assert "Every run on GPU falls outside it and every run on CPU inside: with the seed held fixed, the device " \
           "separates them." in text and "cannot say whether GPU is worse on average" in text

    fp32_low = claims.seed_settings(_seed_frames({("CPU", "bf16"): 0.585, ("CPU", "fp32"): 0.44}, others), "plain56", 0)
    assert list(fp32_low.runs["where"]) == ["outside", "inside", "outside"]
    assert "Every run in fp32 falls outside it and every run in bf16 inside: with the seed held fixed, the " \
           "precision separates them." in fp32_low.text()
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


def test_ledger_markdown_quotes_each_claim_once_and_counts_verdicts() -> None:
    findings = claims.ledger(grid_frame())
    text = claims.ledger_markdown(findings)
    counts = claims.verdict_counts(findings)
    assert text.startswith(f"**{len(findings)} findings**: {counts['reproduced']} reproduced")
    assert text.count("> " + claims.REPORT_CLAIMS["plain_worse"].text) == 1
    assert text.count("\n* ") == len(findings)


def test_rank_sentence_and_run_table() -> None:
    df = make_results({"resnet20-A": [0.80, 0.82], "plain20": [0.60, 0.62], "tv-resnet18-cifar": [0.85]})
    text = claims.rank_sentence(df, "tv-resnet18-cifar")
    assert "ranks 1 of 3 configurations by test accuracy (85.00 %" in text and "3 of 3 by test loss" not in text
    assert "ranks 1 of 3" in text and "(n = 1)" in text
    assert claims.rank_sentence(df, "plain56") == "plain56: no records."
    table = claims.run_table(df, "plain20")
    assert list(table.index) == [0, 1] and list(table["test accuracy (%)"]) == [60.0, 62.0]
    assert list(table["device"]) == ["Test GPU", "Test GPU"]


def test_mixing_check_tells_flips_from_lost_seeds() -> None:
    df = grid_frame(seeds=6)
    last = df["epoch"] == df["epoch"].max()
    # plain-56 beats ResNet-56 by ~5 pt on seeds 0-2 and loses by ~5 pt on seeds 3-5 (same curves otherwise)
    for seed, shift in ((0, 0.21), (1, 0.20), (2, 0.22), (3, 0.11), (4, 0.10), (5, 0.12)):
        rows = (df["model"] == "plain56") & (df["seed"] == seed)
        df.loc[rows & last, "test_acc"] = df.loc[(df["model"] == "resnet56-A") & (df["seed"] == seed) & last,
                                                 "test_acc"].iloc[0] + shift - 0.16
    halves = {"seeds 0-2": lambda d: d[d["seed"] < 3], "seeds 3-5": lambda d: d[d["seed"] >= 3]}
    table = claims.mixing_check(df, subsets=halves).set_index("compared")
    assert list(table.columns) == ["source", "all records", "seeds 0-2", "seeds 3-5", "difference"]
    row = table.loc["depth 56: ResNet (A) − plain"]
    assert row["seeds 0-2"] == "contradicted (n = 3)" and row["seeds 3-5"] == "reproduced (n = 3)"
    assert row["difference"] == "flips" and row["all records"].endswith("(n = 6)")
    assert table.loc["depth 20: ResNet (A) − plain", "difference"] == "none"
    flipped = set(table.index[table["difference"] == "flips"])
    assert "depth 56: ResNet (A) − plain" in flipped and "depth 20: ResNet (A) − plain" not in flipped
    text = claims.mixing_summary(table.reset_index())
    assert f"**{len(flipped)} of 23 verdicts flip**" in text and "matters at this n" in text

    one_seed = claims.mixing_check(grid_frame(seeds=6), subsets={"seed 0": lambda d: d[d["seed"] == 0]})
    decided = one_seed[one_seed["all records"].str.startswith(("reproduced", "contradicted"))]
    assert len(decided) > 0 and set(decided["difference"]) == {"too few seeds in a subset"}
    assert "**0 of 23 verdicts flip**" in claims.mixing_summary(one_seed)


def test_mixing_check_default_subsets_use_precision_and_device() -> None:
    df = grid_frame(seeds=5)
    df.loc[df["seed"] == 0, "precision"] = "fp32"
    df.loc[df["seed"].isin([0, 1]), "device"] = "cpu"
    table = claims.mixing_check(df).set_index("compared")
    row = table.loc["depth 20: ResNet (A) − plain"]
    assert (row["all records"], row["bf16 records only"], row["CPU records only"]) == (
        "reproduced (n = 5)", "reproduced (n = 4)", "inconclusive (n = 2)")
    assert row["difference"] == "too few seeds in a subset"
    same = claims.mixing_check(grid_frame(seeds=5))  # every record bf16 on one GPU: the CPU subset is empty
    assert set(same["CPU records only"].str.endswith("(n = 0)")) == {True}
    assert "decides no verdict" in claims.mixing_summary(same)  # nothing flips, nothing decided on one set only
