"""The claims ledger: every claim of the student report (quoted, with its section) and the paper's
CIFAR-10 claims, each with our number, its 95 % interval, n, the test and a verdict, computed from
the result records by the rule of :mod:`resnet_nb.stats`.

The report's claims are quoted verbatim from its full text (``../shared/report/``; a test checks
each quote against it). The paper's claims are paraphrased with their table or figure. Nothing
here is a measurement except what :func:`ledger` computes from the records it is given.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import stats
from .analysis import improvement_pct as improvement_of
from .stats import Comparison, Verdict

# He et al. 2015, Table 6: CIFAR-10 test error (%) of the option-A ResNets (110: best of 5 runs).
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
# He et al. 2015, Table 6: parameters as the paper prints them.
PAPER_PARAMS = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M"}
REPORT_DEPTHS = (20, 32, 44, 56)
# "Very similar" (report, section 2.4) made testable: A and B final test accuracies within 1 point.
SIMILAR_MARGIN_PT = 1.0


@dataclass(frozen=True)
class Claim:
    """A claim as its source states it."""

    key: str
    source: str  # "report §2.4", "paper Fig. 6"
    text: str  # the report: verbatim; the paper: a paraphrase
    chapter: str  # the book page that examines it


@dataclass(frozen=True)
class Finding:
    """One row of the ledger: a claim (or one depth of it) judged on the records."""

    claim: Claim
    scope: str  # "depth 56", "mean over depths 20–56", ...
    measure: str  # what was measured, with units
    comparison: Comparison | None  # None: no records
    verdict: Verdict
    reason: str
    unit: str = "pt"

    def estimate_text(self) -> str:
        c = self.comparison
        if c is None or math.isnan(c.estimate):
            return "no records"
        if math.isnan(c.lo):
            return f"{_num(c.estimate, self.unit)} (no interval)"
        return f"{_num(c.estimate, self.unit)} [{_num(c.lo, self.unit)}, {_num(c.hi, self.unit)}]"

    def n_text(self) -> str:
        return "0" if self.comparison is None else "/".join(map(str, self.comparison.n))

    def test_text(self) -> str:
        c = self.comparison
        if c is None:
            return "—"
        return c.test + ("" if math.isnan(c.p_value) else f", p = {c.p_value:.2g}")


def _num(x: float, unit: str) -> str:
    return f"{x:+.2f} {unit}" if unit in ("pt", "%") else f"{x:+.3f}"


REPORT_CLAIMS = {
    "torchvision": Claim("torchvision", "report §2.3.1",
                         "Surprisingly, the implementation of the ResNet with PyTorch seems from the figure 2.6 to be "
                         "much less efficient than the one we made.", "04_torchvision"),
    "depth": Claim("depth", "report §2.3.2",
                   "The figure 2.7 shows that the deeper our ResNet network is the better its performances are.",
                   "05_depth"),
    "depth_numbers": Claim("depth_numbers", "report §2.3.2",
                           "The difference in accuracy and loss between our 20-layer and 56-layer networks are "
                           "respectively 1.3% and 2.2% after 10 epochs.", "05_depth"),
    "options_similar": Claim("options_similar", "report §2.4",
                             "the two shortcut options are very similar (especially after some epochs)",
                             "06_shortcut_options"),
    "option_a_better": Claim("option_a_better", "report §2.4",
                             "Moreover, option (A) offers slightly better overall performance than option (B).",
                             "06_shortcut_options"),
    "plain_worse": Claim("plain_worse", "report §2.5",
                         "We can see with the figure 2.9 that ResNet performs much better than the CNN, especially "
                         "when the depth is large.", "07_resnet_vs_plain"),
    "improvement": Claim("improvement", "report §2.5",
                         "According to our results, ResNet improves on average the accuracy and loss of the CNN by "
                         "about 28% and 43% after 10 epochs.", "07_resnet_vs_plain"),
}
PAPER_CLAIMS = {
    "degradation": Claim("degradation", "paper §4.2, Fig. 6 (left)",
                         "Deeper plain nets have higher training error: plain-56 trains worse than plain-20.",
                         "02_degradation"),
    "resnet_depth": Claim("resnet_depth", "paper §4.2, Table 6, Fig. 6 (middle)",
                          "Deeper ResNets reach lower test error: 8.75 % (20 layers) to 6.97 % (56 layers).",
                          "05_depth"),
    "table6": Claim("table6", "paper Table 6",
                    "Test error with the paper's protocol: ResNet-20 8.75 %, 32 7.51 %, 44 7.17 %, 56 6.97 %, "
                    "110 6.43 % (best of 5).", "08_conclusion"),
}


# --- per-seed values from the long results frame ----------------------------------------------

def final_values(df: pd.DataFrame, model: str, metric: str) -> pd.Series:
    """``metric`` at each run's last epoch for ``model``, indexed by seed (accuracies as fractions)."""
    sub = df[df["model"] == model] if len(df) else df
    if sub.empty:
        return pd.Series(dtype=float, name=metric)
    last = sub[sub["epoch"] == sub.groupby("run_id")["epoch"].transform("max")]
    return last.set_index("seed")[metric].sort_index().astype(float)


def _scale(metric: str) -> float:
    return 100.0 if metric.endswith("_acc") else 1.0


def paired(df: pd.DataFrame, x_model: str, y_model: str, metric: str) -> Comparison | None:
    """x − y over the seeds both have (same seed: same data order), in points for accuracies."""
    x, y = final_values(df, x_model, metric), final_values(df, y_model, metric)
    seeds = x.index.intersection(y.index)
    if len(seeds) == 0:
        return None
    s = _scale(metric)
    return stats.paired_t(list(x[seeds] * s), list(y[seeds] * s))


def improvement_pct(df: pd.DataFrame, metric: str, depths: Sequence[int] = REPORT_DEPTHS,
                    n_boot: int = 10_000) -> Comparison | None:
    """The report's averaged relative improvement of ResNet (A) over plain, with the wider of a bootstrap
    and a delta-method interval (:func:`stats.derived_interval`).

    Accuracy: mean over depths of 100 (acc_R − acc_P) / acc_P; loss: of 100 (loss_P − loss_R) / loss_P,
    each from the seed means at the last epoch. Only depths with both nets count.
    """
    samples: dict[str, list[float]] = {}
    used = []
    for d in depths:
        r, p = final_values(df, f"resnet{d}-A", metric), final_values(df, f"plain{d}", metric)
        if len(r) and len(p):
            samples[f"R{d}"], samples[f"P{d}"] = list(r), list(p)
            used.append(d)
    if not used:
        return None
    lower = not metric.endswith("_acc")

    def statistic(s: Mapping[str, np.ndarray]) -> float:
        return float(np.mean([improvement_of(s[f"R{d}"].mean(), s[f"P{d}"].mean(), lower) for d in used]))

    result = stats.derived_interval(samples, statistic, n_boot=n_boot, unit=" %")
    return dataclasses.replace(result, test=f"{result.test}, depths {', '.join(map(str, used))}")


def loss_reduction_pct(df: pd.DataFrame, deep: str, shallow: str, n_boot: int = 10_000) -> Comparison | None:
    """100 (loss_shallow − loss_deep) / loss_shallow at the last epoch, with the wider of a bootstrap and
    a delta-method interval (:func:`stats.derived_interval`)."""
    a, b = final_values(df, deep, "test_loss"), final_values(df, shallow, "test_loss")
    if not len(a) or not len(b):
        return None
    return stats.derived_interval({"deep": list(a), "shallow": list(b)},
                                  lambda s: float(100 * (s["shallow"].mean() - s["deep"].mean()) / s["shallow"].mean()),
                                  n_boot=n_boot, unit=" %")


def seed_means_over_depths(df: pd.DataFrame, x_family: Callable[[int], str], y_family: Callable[[int], str],
                           metric: str, depths: Sequence[int] = REPORT_DEPTHS) -> Comparison | None:
    """Paired over seeds of (mean over depths of x) − (mean over depths of y); seeds with every depth only."""
    per_depth = []
    for d in depths:
        x, y = final_values(df, x_family(d), metric), final_values(df, y_family(d), metric)
        per_depth.append((x, y))
    seeds = None
    for x, y in per_depth:
        common = set(x.index) & set(y.index)
        seeds = common if seeds is None else seeds & common
    if not seeds:
        return None
    order = sorted(seeds)
    s = _scale(metric)
    xs = [s * float(np.mean([x[k] for x, _ in per_depth])) for k in order]
    ys = [s * float(np.mean([y[k] for _, y in per_depth])) for k in order]
    return stats.paired_t(xs, ys)


# --- the ledger --------------------------------------------------------------------------------

def finding(claim: Claim, scope: str, measure: str, cmp: Comparison | None,
            judge: Callable[[Comparison], tuple[Verdict, str]], unit: str = "pt") -> Finding:
    """``claim`` judged on ``cmp`` by ``judge`` (a rule of :mod:`.stats`); no comparison: inconclusive."""
    if cmp is None:
        return Finding(claim, scope, measure, None, "inconclusive", "no records", unit)
    verdict, reason = judge(cmp)
    return Finding(claim, scope, measure, cmp, verdict, reason, unit)


def more(sign: int = 1) -> Callable[[Comparison], tuple[Verdict, str]]:
    """The direction rule: the difference is > 0 (``sign`` +1) or < 0 (-1)."""
    return lambda c: stats.direction_verdict(c, sign)


def ledger(df: pd.DataFrame, paper_df: pd.DataFrame | None = None) -> list[Finding]:
    """Every claim judged on the report-protocol records ``df`` (and the paper grid's, if given)."""
    rc, pc = REPORT_CLAIMS, PAPER_CLAIMS
    acc = "final test accuracy, points"
    rows = [
        finding(rc["torchvision"], "ResNet-20 (A) − torchvision ResNet-18 (ImageNet stem)", acc,
                 paired(df, "resnet20-A", "tv-resnet18-imagenet", "test_acc"), more()),
        finding(rc["torchvision"], "same, CIFAR stem: ResNet-20 (A) − ResNet-18 (CIFAR stem)", acc,
                 paired(df, "resnet20-A", "tv-resnet18-cifar", "test_acc"), more()),
        finding(rc["depth"], "ResNet-56 (A) − ResNet-20 (A)", acc,
                 paired(df, "resnet56-A", "resnet20-A", "test_acc"), more()),
        finding(rc["depth_numbers"], "accuracy: ResNet-56 − ResNet-20 (read as points; claimed 1.3)", acc,
                 paired(df, "resnet56-A", "resnet20-A", "test_acc"), lambda c: stats.value_verdict(c, 1.3)),
        finding(rc["depth_numbers"], "loss: relative reduction 20 → 56 layers (claimed 2.2 %)",
                 "final test loss, % of ResNet-20's", loss_reduction_pct(df, "resnet56-A", "resnet20-A"),
                 lambda c: stats.value_verdict(c, 2.2), unit="%"),
    ]
    for d in REPORT_DEPTHS:
        rows.append(finding(rc["options_similar"], f"depth {d}: A − B (similar: within ± {SIMILAR_MARGIN_PT:g} pt)",
                             acc, paired(df, f"resnet{d}-A", f"resnet{d}-B", "test_acc"),
                             lambda c: stats.equivalence_verdict(c, SIMILAR_MARGIN_PT)))
    rows.append(finding(rc["option_a_better"], "A − B, mean over depths 20–56 per seed", acc,
                         seed_means_over_depths(df, lambda d: f"resnet{d}-A", lambda d: f"resnet{d}-B", "test_acc"),
                         more()))
    for d in REPORT_DEPTHS:
        rows.append(finding(rc["plain_worse"], f"depth {d}: ResNet (A) − plain", acc,
                             paired(df, f"resnet{d}-A", f"plain{d}", "test_acc"), more()))
    rows.append(finding(rc["plain_worse"], "'especially when the depth is large': gap at 56 − gap at 20", acc,
                         _gap_growth(df, 56, 20), more()))
    rows.append(finding(rc["improvement"], "accuracy improvement, mean over depths (claimed 28 %)",
                         "relative, % of the plain net's", improvement_pct(df, "test_acc"),
                         lambda c: stats.value_verdict(c, 28.0), unit="%"))
    rows.append(finding(rc["improvement"], "loss improvement, mean over depths (claimed 43 %)",
                         "relative, % of the plain net's", improvement_pct(df, "test_loss"),
                         lambda c: stats.value_verdict(c, 43.0), unit="%"))
    rows.append(finding(pc["degradation"], "report protocol: plain-20 − plain-56",
                         "final training accuracy, points", paired(df, "plain20", "plain56", "train_acc"), more()))
    paper_df = paper_df if paper_df is not None else df.iloc[0:0]
    rows.append(finding(pc["degradation"], "paper protocol: plain-20 − plain-56", "final training accuracy, points",
                         paired(paper_df, "plain20", "plain56", "train_acc"), more()))
    rows.append(finding(pc["resnet_depth"], "paper protocol: ResNet-56 (A) − ResNet-20 (A)", acc,
                         paired(paper_df, "resnet56-A", "resnet20-A", "test_acc"), more()))
    for d in (20, 56, 110):
        errors = final_values(paper_df, f"resnet{d}-A", "test_acc")
        cmp = None if errors.empty else _as_comparison(stats.t_interval(list(100 * (1 - errors))))
        rows.append(finding(pc["table6"], f"paper protocol: ResNet-{d} test error (paper {PAPER_TEST_ERROR[d]} %)",
                             "test error, %", cmp, lambda c, d=d: stats.value_verdict(c, PAPER_TEST_ERROR[d]),
                             unit="%"))
    return rows


def _as_comparison(iv: stats.Interval) -> Comparison:
    return Comparison(iv.mean, iv.lo, iv.hi, (iv.n,), "t-interval of the mean", math.nan, iv.level)


def _gap_growth(df: pd.DataFrame, deep: int, shallow: int) -> Comparison | None:
    """Welch on per-seed ResNet − plain gaps: is the gap at ``deep`` larger than at ``shallow``?"""
    gaps = []
    for d in (deep, shallow):
        r, p = final_values(df, f"resnet{d}-A", "test_acc"), final_values(df, f"plain{d}", "test_acc")
        seeds = r.index.intersection(p.index)
        if len(seeds) == 0:
            return None
        gaps.append(list(100 * (r[seeds] - p[seeds])))
    return stats.welch_t(gaps[0], gaps[1])


def ledger_table(findings: Sequence[Finding]) -> pd.DataFrame:
    """The ledger as a table: claim (source), what was compared, estimate [95 % interval], n, test, verdict."""
    rows = [{"source": f.claim.source, "claim": f.claim.text, "compared": f.scope, "measure": f.measure,
             "estimate [95 % CI]": f.estimate_text(), "n (seeds)": f.n_text(), "test": f.test_text(),
             "verdict": f.verdict, "why": f.reason} for f in findings]
    return pd.DataFrame(rows, columns=["source", "claim", "compared", "measure", "estimate [95 % CI]", "n (seeds)",
                                       "test", "verdict", "why"])


def verdict_counts(findings: Sequence[Finding]) -> dict[str, int]:
    counts = {"reproduced": 0, "contradicted": 0, "inconclusive": 0}
    for f in findings:
        counts[f.verdict] += 1
    return counts


def chapter_findings(findings: Sequence[Finding], chapter: str) -> str:
    """Markdown: "What the records show" for one chapter, one bullet per finding, generated."""
    mine = [f for f in findings if f.claim.chapter == chapter]
    if not mine:
        return "**What the records show.** No claim of the report or the paper is judged on this page."
    lines = ["**What the records show** (computed from the records; the verdict rule is on the conclusion page):", ""]
    for f in mine:
        lines.append(f"* *{f.claim.source}*, {f.scope}: {f.estimate_text()} (n = {f.n_text()}; {f.test_text()}) "
                     f"→ **{f.verdict}** ({f.reason}).")
    return "\n".join(lines)


# --- does a verdict rest on mixing devices and precisions? ----------------------------------------

# Record subsets for :func:`mixing_check`: each leaves out one kind of record that the means mix in.
RECORD_SUBSETS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "bf16 records only": lambda df: df[df["precision"] == "bf16"] if len(df) else df,
    "CPU records only": lambda df: df[df["device"] == "cpu"] if len(df) else df,
}


def mixing_check(df: pd.DataFrame, paper_df: pd.DataFrame | None = None,
                 subsets: Mapping[str, Callable[[pd.DataFrame], pd.DataFrame]] = RECORD_SUBSETS) -> pd.DataFrame:
    """Every finding's verdict on all records and on each subset of them (with n), and how they differ.

    ``difference``: ``none``; ``flips`` (reproduced on one set, contradicted on another: the conclusion
    depends on the mix); ``too few seeds in a subset`` (a subset loses the seeds a verdict needs, which
    says nothing about the mix); or ``decided on one set only`` (both have enough seeds, one interval
    decides and the other does not: at this n, which records are mixed in matters).
    """
    base = ledger(df, paper_df)
    others = {name: ledger(pick(df), None if paper_df is None else pick(paper_df)) for name, pick in subsets.items()}
    rows = []
    for i, f in enumerate(base):
        row = {"source": f.claim.source, "compared": f.scope, "all records": f"{f.verdict} (n = {f.n_text()})"}
        changed = []
        for name, findings in others.items():
            g = findings[i]
            assert g.scope == f.scope  # one ledger, one order
            row[name] = f"{g.verdict} (n = {g.n_text()})"
            if g.verdict != f.verdict:
                changed.append(g)
        verdicts = {f.verdict, *(g.verdict for g in changed)}
        if not changed:
            row["difference"] = "none"
        elif {"reproduced", "contradicted"} <= verdicts:
            row["difference"] = "flips"
        elif all(g.verdict == "inconclusive" and _min_n(g) < stats.MIN_SEEDS for g in changed):
            row["difference"] = "too few seeds in a subset"
        else:
            row["difference"] = "decided on one set only"
        rows.append(row)
    return pd.DataFrame(rows, columns=["source", "compared", "all records", *subsets, "difference"])


def _verb(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


def _min_n(f: Finding) -> int:
    return 0 if f.comparison is None else min(f.comparison.n)


def mixing_summary(table: pd.DataFrame) -> str:
    """One Markdown paragraph on :func:`mixing_check`'s table, generated from it."""
    if table.empty:
        return "No findings to check."
    subsets = [c for c in table.columns if c not in ("source", "compared", "all records", "difference")]
    kinds = table["difference"].value_counts()
    flips, few, one = (int(kinds.get(k, 0)) for k in ("flips", "too few seeds in a subset", "decided on one set only"))
    text = (f"Judged again on {' and on '.join(f'*{s}*' for s in subsets)}, **{flips} of {len(table)} verdicts "
            f"{_verb(flips, 'flips', 'flip')}** between reproduced and contradicted; {few} "
            f"{_verb(few, 'loses', 'lose')} the 3 seeds a verdict needs in a subset (which says nothing about the "
            f"mix); {one} {_verb(one, 'is', 'are')} decided on one set of records and not on another although both "
            "have 3 seeds or more.")
    if flips == 0 and one == 0:
        return text + " At this n, the mix of devices and precisions decides no verdict."
    return text + (" For those, which records are mixed in matters at this n: the precision check "
                   "(`precision10`) is what settles it.")


# --- single-run questions: is one seed an outlier, does precision matter? -------------------------

@dataclass(frozen=True)
class SeedCheck:
    """One run against the other seeds of its configuration."""

    model: str
    seed: int
    metric: str
    value: float  # in points for accuracies
    others: tuple[float, ...]
    lo: float  # 95 % prediction interval for one more run, from the other seeds
    hi: float
    verdict: str  # "inside", "outside", "too few other seeds"

    def text(self) -> str:
        what = claims_metric_name(self.metric)
        if self.verdict == "too few other seeds":
            return (f"{self.model} seed {self.seed}: {what} {self.value:.2f}; {len(self.others)} other seed(s) "
                    "so far, too few to say whether it is unusual (2 or more needed).")
        mean = float(np.mean(self.others))
        return (f"{self.model} seed {self.seed}: {what} {self.value:.2f}, against {mean:.2f} on average over the "
                f"{len(self.others)} other seeds; a further run is expected in [{self.lo:.2f}, {self.hi:.2f}] "
                f"(95 % prediction interval), so seed {self.seed} is **{self.verdict}** it.")


def claims_metric_name(metric: str) -> str:
    return {"test_acc": "test accuracy (%)", "train_acc": "training accuracy (%)", "test_loss": "test loss",
            "train_loss": "training loss"}.get(metric, metric)


def seed_check(df: pd.DataFrame, model: str, seed: int, metric: str = "test_acc") -> SeedCheck | None:
    """Is ``seed`` of ``model`` within the 95 % prediction interval of its other seeds? None: no such run."""
    values = final_values(df, model, metric) * _scale(metric)
    if seed not in values.index:
        return None
    others = tuple(float(v) for k, v in values.items() if k != seed)
    value = float(values[seed])
    if len(others) < 2:
        return SeedCheck(model, seed, metric, value, others, math.nan, math.nan, "too few other seeds")
    lo, hi = stats.prediction_interval(others)
    return SeedCheck(model, seed, metric, value, others, lo, hi, "inside" if lo <= value <= hi else "outside")


Frames = pd.DataFrame | Sequence[pd.DataFrame]


def _combined(frames: Frames) -> pd.DataFrame:
    """One long frame from one or several ``load_results`` frames (empty ones skipped)."""
    if isinstance(frames, pd.DataFrame):
        return frames
    full = [f for f in frames if len(f)]
    return pd.concat(full, ignore_index=True) if full else pd.DataFrame(columns=["model", "grid", "run_id", "epoch"])


def _last_epochs(df: pd.DataFrame) -> pd.DataFrame:
    """Each run's last row; runs are told apart by grid too (several grids are combined here)."""
    return df[df["epoch"] == df.groupby(["grid", "run_id"])["epoch"].transform("max")]


def precision_pairs(frames: Frames, model: str, metric: str = "test_acc") -> pd.DataFrame:
    """fp32 and bf16 runs of ``model`` that pair: same seed, same device, same recipe and epochs.

    Same seed: same initial weights and batches; same device: the difference is the precision's
    alone. The runs may come from different grids: on a CPU whose report records are bf16, a
    ``precision10`` fp32 run pairs with the report's bf16 run of its seed, which is the same run as
    the grid's own bf16 one would be. One pair per seed, preferring runs of a precision grid
    (``precision*``), then the first device by name. Columns: seed, device, the two grids, the two
    values (points for accuracies).
    """
    df = _combined(frames)
    columns = ["seed", "device", "grid fp32", "grid bf16", "fp32", "bf16"]
    sub = df[df["model"] == model] if len(df) else df
    if sub.empty:
        return pd.DataFrame(columns=columns)
    last = _last_epochs(sub)
    keys = ["seed", "device_name", "recipe", "epoch"]
    fp32, bf16 = (last[last["precision"] == p][keys + ["grid", metric]] for p in ("fp32", "bf16"))
    pairs = fp32.merge(bf16, on=keys, suffixes=(" fp32", " bf16"))
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    designed = pairs["grid fp32"].str.startswith("precision") & pairs["grid bf16"].str.startswith("precision")
    pairs = (pairs.assign(_designed=~designed).sort_values(["seed", "_designed", "device_name"])
             .drop_duplicates("seed"))
    scale = _scale(metric)
    return pd.DataFrame({"seed": pairs["seed"].astype(int), "device": pairs["device_name"],
                         "grid fp32": pairs["grid fp32"], "grid bf16": pairs["grid bf16"],
                         "fp32": pairs[f"{metric} fp32"].astype(float) * scale,
                         "bf16": pairs[f"{metric} bf16"].astype(float) * scale}).reset_index(drop=True)


def precision_pair_table(frames: Frames, models: Sequence[str], metric: str = "test_acc") -> pd.DataFrame:
    """:func:`precision_pairs` of each of ``models``, in that order, in one table with a ``model`` column
    first (a model without a pair has no row)."""
    tables = [precision_pairs(frames, m, metric).assign(model=m) for m in models]
    columns = ["model", "seed", "device", "grid fp32", "grid bf16", "fp32", "bf16"]
    rows = [t[columns] for t in tables if not t.empty]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)


def precision_effect(frames: Frames, model: str, metric: str = "test_acc") -> Comparison | None:
    """fp32 − bf16 at the last epoch over the seeds that pair (:func:`precision_pairs`); paired t."""
    pairs = precision_pairs(frames, model, metric)
    if pairs.empty:
        return None
    return stats.paired_t(list(pairs["fp32"]), list(pairs["bf16"]))


def precision_sentence(frames: Frames, model: str, what: str, metric: str = "test_acc") -> str:
    """One Markdown sentence: fp32 − bf16 of ``model`` over its seed pairs (``what`` names the records)."""
    pairs = precision_pairs(frames, model, metric)
    name = claims_metric_name(metric).removesuffix(" (%)")
    if pairs.empty:
        return f"{what}, {model}: no seed has both precisions on one device yet."
    effect = stats.paired_t(list(pairs["fp32"]), list(pairs["bf16"]))
    unit = " points" if metric.endswith("_acc") else ""
    seeds = ", ".join(str(k) for k in pairs["seed"])
    devices = ", ".join(sorted(set(pairs["device"])))
    borrowed = int((~pairs["grid bf16"].str.startswith("precision")).sum())
    where = f"seed{'s' if len(pairs) > 1 else ''} {seeds}, {devices}" + (
        f"; {borrowed} bf16 run{'s' if borrowed > 1 else ''} from grid `report`" if borrowed else "")
    text = f"{what}, {model}: fp32 − bf16 {name} {effect.estimate:+.2f}{unit}"
    if effect.n[0] < 2:
        return text + f" on one seed pair ({where}): one run per precision, no interval, no test."
    text += (f", 95 % interval [{effect.lo:+.2f}, {effect.hi:+.2f}] over {effect.n[0]} seed pairs on the same "
             f"device ({where}; paired t, p = {effect.p_value:.2g}).")
    return text + (" " + _mixing_reading(effect) if metric.endswith("_acc") else "")


def _mixing_reading(effect: stats.Comparison) -> str:
    """Whether fp32 − bf16 pairs justify averaging the two precisions: the ledger's rule for "very similar"
    (± :data:`SIMILAR_MARGIN_PT` points, at least 3 seeds), applied to the precision's effect."""
    verdict, why = stats.equivalence_verdict(effect, SIMILAR_MARGIN_PT)
    rule = f"(the similarity rule of the ledger: ± {SIMILAR_MARGIN_PT:g} point; {why})"
    if verdict == "reproduced":
        return (f"**The precisions agree** {rule}: records of both may share one mean, as far as the precision "
                "goes (each pair holds the device fixed).")
    if verdict == "contradicted":
        return f"**The precision matters** {rule}: records of the two precisions should not share one mean."
    return (f"**Undecided** {rule}: these pairs neither justify averaging the two precisions nor forbid it; "
            "until they do, the mixing check on the conclusion page is what the means rest on.")


@dataclass(frozen=True)
class SeedSettings:
    """One seed of one model trained in several settings (device, precision).

    Every setting starts from the same weights and sees the same batches in the same order: both are
    drawn on the CPU from the seed (``train.fit``, ``data.Loader``). Only the arithmetic differs, so
    the spread across settings is what arithmetic alone does to a run.
    """

    model: str
    seed: int
    metric: str
    runs: pd.DataFrame  # one row per record of that seed: grid, device, precision, value, where it falls
    others: tuple[float, ...]  # the other seeds of the report grid, in points for accuracies
    lo: float  # their 95 % prediction interval for one more run
    hi: float

    def text(self) -> str:
        what, seed = claims_metric_name(self.metric), self.seed
        if len(self.runs) < 2:
            return (f"{self.model} seed {seed} has been trained in one setting so far; "
                    f"`python -m resnet_nb grid run precision10 --only '{self.model}_report_*_s{seed}'` trains it "
                    "in fp32 and in bf16 on this machine (a report record of it made here counts as one of them).")
        values = self.runs[what]
        parts = "; ".join(f"{r.device} {r.precision}: {r[what]:.2f}" for _, r in self.runs.iterrows())
        text = (f"{self.model} seed {seed} in {len(self.runs)} settings (one run each), {what}: {parts}. "
                f"Same weights, same batches: the arithmetic alone moves it by {values.max() - values.min():.2f} "
                "points")
        if math.isnan(self.lo):
            return text + f", and {len(self.others)} other seed(s) are too few to compare with (2 or more needed)."
        text += (f", where the {len(self.others)} other seeds span {max(self.others) - min(self.others):.2f} "
                 f"(a further seed is expected in [{self.lo:.2f}, {self.hi:.2f}], 95 % prediction interval). ")
        outside = self.runs[self.runs["where"] == "outside"]
        if len(outside) == len(self.runs):
            return text + (f"Every setting of seed {seed} falls outside it: the unusual value follows the seed (its "
                           "initial weights and batch order), not the device or the precision.")
        if outside.empty:
            return text + f"Every setting of seed {seed} falls inside it: seed {seed} is not unusual in any of them."
        inside = self.runs[self.runs["where"] == "inside"]
        caveat = ("One run per setting cannot say whether {what} is worse on average or whether, in a net this "
                  "unstable, a small difference in arithmetic grows into a different run; more seeds in each "
                  "setting (`grid precision10`) can.")
        for column in ("precision", "device"):  # does one factor alone separate the runs outside from those inside?
            low, ok = sorted(set(outside[column])), sorted(set(inside[column]))
            if not set(low) & set(ok):
                names, prep = " or ".join(low), "in" if column == "precision" else "on"
                return text + (f"Every run {prep} {names} falls outside it and every run {prep} {' or '.join(ok)} inside: "
                               f"with the seed held fixed, the {column} separates them. "
                               + caveat.format(what=names))
        out = ", ".join(f"{r.device} {r.precision}" for _, r in outside.iterrows())
        verb = "falls" if len(outside) == 1 else "fall"
        return text + (f"Only {out} {verb} outside it: with the seed held fixed, the arithmetic decides, but no single "
                       "factor (device or precision) separates the runs. " + caveat.format(what="a setting"))


def seed_settings(frames: Sequence[pd.DataFrame], model: str, seed: int, metric: str = "test_acc",
                  reference: str = "report") -> SeedSettings | None:
    """Every record of ``model``'s ``seed`` in ``frames`` (e.g. the report and precision10 grids), each
    placed against the 95 % prediction interval of the ``reference`` grid's other seeds. None: no record."""
    rows = _combined(frames)
    rows = rows[rows["model"] == model] if len(rows) else rows
    if rows.empty:
        return None
    last = _last_epochs(rows)
    mine = last[last["seed"] == seed]
    if mine.empty:
        return None
    scale, what = _scale(metric), claims_metric_name(metric)
    ref = last[(last["grid"] == reference) & (last["seed"] != seed)]
    others = tuple(float(v) * scale for v in ref.sort_values("seed")[metric])
    lo, hi = stats.prediction_interval(others)
    values = mine[metric].astype(float) * scale
    where = ["?" if math.isnan(lo) else "inside" if lo <= v <= hi else "outside" for v in values]
    table = pd.DataFrame({"grid": mine["grid"].to_numpy(), "device": mine["device_name"].to_numpy(),
                          "precision": mine["precision"].to_numpy(), what: values.round(2).to_numpy(),
                          "where": where})
    return SeedSettings(model, seed, metric, table, others, lo, hi)


def ledger_markdown(findings: Sequence[Finding]) -> str:
    """The ledger for the conclusion page: each claim quoted once, then one bullet per finding."""
    counts = verdict_counts(findings)
    lines = [f"**{len(findings)} findings**: {counts['reproduced']} reproduced, {counts['contradicted']} "
             f"contradicted, {counts['inconclusive']} inconclusive.", ""]
    seen: list[str] = []
    for f in findings:
        key = f"{f.claim.source}|{f.claim.key}"
        if key not in seen:
            seen.append(key)
            kind = "quoted" if f.claim.source.startswith("report") else "paraphrased"
            lines += ["", f"*{f.claim.source}* ({kind}):", "", f"> {f.claim.text}", ""]
        lines.append(f"* {f.scope} ({f.measure}): {f.estimate_text()}, n = {f.n_text()}, {f.test_text()} "
                     f"→ **{f.verdict}** ({f.reason})")
    return "\n".join(lines)


def rank_sentence(df: pd.DataFrame, model: str) -> str:
    """Where ``model`` ranks among every configuration of ``df`` by mean final test accuracy and test loss."""
    last = df[df["epoch"] == df.groupby("run_id")["epoch"].transform("max")] if len(df) else df
    if last.empty or model not in set(last["model"]):
        return f"{model}: no records."
    means = last.groupby("model")[["test_acc", "test_loss", "train_acc"]].mean()
    n = int((last["model"] == model).sum())
    acc_rank = int(means["test_acc"].rank(ascending=False, method="min")[model])
    loss_rank = int(means["test_loss"].rank(ascending=True, method="min")[model])
    row = means.loc[model]
    return (f"{model} (n = {n}) ranks {acc_rank} of {len(means)} configurations by test accuracy "
            f"({100 * row['test_acc']:.2f} %, highest first) and {loss_rank} of {len(means)} by test loss "
            f"({row['test_loss']:.3f}, lowest first); its training accuracy is {100 * row['train_acc']:.2f} %.")


def run_table(df: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per seed of ``model``: device, precision, final training and test accuracy (%)."""
    last = df[(df["model"] == model)] if len(df) else df
    if last.empty:
        return pd.DataFrame(columns=["seed", "device", "precision", "training accuracy (%)", "test accuracy (%)"])
    last = last[last["epoch"] == last.groupby("run_id")["epoch"].transform("max")].sort_values("seed")
    return pd.DataFrame({"seed": last["seed"].astype(int), "device": last["device_name"],
                         "precision": last["precision"],
                         "training accuracy (%)": (100 * last["train_acc"]).round(2),
                         "test accuracy (%)": (100 * last["test_acc"]).round(2)}).set_index("seed")
