"""The claims ledger: every testable claim of the student report (quoted, with its section), the paper's
CIFAR-10 claims, and the book's own extensions, each line with our number, its 95 % interval, n, the
test and a verdict, computed from the result records by the rules of :mod:`resnet_nb.stats` under a
:class:`~resnet_nb.readings.Reading` (the planned one unless another is given).

Every line has a **category**: *report claim*, *paper claim*, *our extension* (a question the report
never asked: shown apart, never counted among the report's verdicts) or *not yet tested* (no records:
no verdict, counted apart). One line is one test and counts once.

The report's claims are quoted verbatim from its full text (``../shared/report/``; a test checks
each quote against it). The paper's claims are paraphrased with their table or figure. The report's
statements *about the paper* are checked against the paper's text in :mod:`resnet_nb.facts`.
Nothing here is a measurement except what :func:`ledger` computes from the records it is given.

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from . import stats
from .readings import PLANNED, Reading, at_epoch, common_seeds, compare, mean_over, run_values, samples
from .readings import paired as paired_under
from .stats import LEVEL, Comparison
from .stats import improvement_pct as improvement_of

# He et al. 2015, Table 6: CIFAR-10 test error (%) of the option-A ResNets (110: best of 5 runs).
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
# He et al. 2015, Table 6: parameters as the paper prints them.
PAPER_PARAMS = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M"}
REPORT_DEPTHS = (20, 32, 44, 56)
# "Very similar" (report, section 2.4) made testable: A and B final test accuracies within 1 point.
SIMILAR_MARGIN_PT = 1.0
# §2.5's "from this point onwards ... decrease": the change over the last this-many epochs of each run.
LATE_EPOCHS = 3

Origin = Literal["report", "paper", "extension"]
Category = Literal["report claim", "paper claim", "our extension", "not yet tested"]
LineVerdict = Literal["reproduced", "contradicted", "inconclusive", "not matched", "not tested"]
CATEGORIES: tuple[Category, ...] = ("report claim", "paper claim", "our extension", "not yet tested")
LINE_VERDICTS: tuple[LineVerdict, ...] = ("reproduced", "contradicted", "not matched", "inconclusive", "not tested")
_CATEGORY: dict[str, Category] = {"report": "report claim", "paper": "paper claim", "extension": "our extension"}

Compute = Callable[[pd.DataFrame, pd.DataFrame, Reading, float], "Comparison | None"]


@dataclass(frozen=True)
class Claim:
    """A claim as its source states it (or, for our extensions, the question the book asks)."""

    key: str
    source: str  # "report §2.4", "paper Fig. 6", "our extension of §2.3.1"
    text: str  # the report: verbatim; the paper: a paraphrase; an extension: our question
    chapter: str  # the book page that examines it
    origin: Origin = "report"


@dataclass(frozen=True)
class Direction:
    """"x − y is > 0" (``sign`` +1) or "< 0" (-1)."""

    sign: int = 1


@dataclass(frozen=True)
class Similar:
    """"x − y lies within ± margin"."""

    margin: float = SIMILAR_MARGIN_PT


@dataclass(frozen=True)
class Value:
    """"The figure is ``claimed``" as the source states it (``stated``, with or without "about"); the
    tolerance comes from that wording alone (:func:`stats.stated_tolerance`). ``readings``: each
    reasonable reading of an ambiguous figure (name, computation); the first is the book's."""

    stated: str
    about: bool
    readings: tuple[tuple[str, Compute], ...]

    @property
    def claimed(self) -> float:
        return float(self.stated)

    @property
    def tolerance(self) -> float:
        return stats.stated_tolerance(self.stated, self.about)


Rule = Direction | Similar | Value


@dataclass(frozen=True)
class Interpretation:
    """One reading of a stated figure: our estimate under it and its verdict by the value rule."""

    name: str
    comparison: Comparison | None
    verdict: LineVerdict
    reason: str


@dataclass(frozen=True)
class Finding:
    """One line of the ledger: one test of a claim (or of one step or depth of it) on the records."""

    claim: Claim
    scope: str  # "depth 56", "mean over depths 20–56", ...
    measure: str  # what was measured, with units
    comparison: Comparison | None  # None: no records
    verdict: LineVerdict
    reason: str
    unit: str = "pt"
    rule: Rule | None = None
    interpretations: tuple[Interpretation, ...] = ()
    robustness: str = ""  # "robust", "fragile" or "" (not judged under other readings, or not tested)
    flips: tuple[str, ...] = ()  # "reading: verdict" for each reading that changes the verdict
    note: str = ""  # what the records cannot say (e.g. beyond their last epoch)

    @property
    def line(self) -> str:
        """The line's identity in the ledger (stable across readings)."""
        return f"{self.claim.key}|{self.scope}"

    @property
    def category(self) -> Category:
        return "not yet tested" if self.verdict == "not tested" else _CATEGORY[self.claim.origin]

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

    def region_text(self) -> str:
        """The claim's region on the line's scale: the claimed side of zero, the ± band, the value ± tolerance."""
        r = self.rule
        if isinstance(r, Direction):
            return "> 0" if r.sign > 0 else "< 0"
        if isinstance(r, Similar):
            return f"within ± {r.margin:g} {self.unit}"
        if isinstance(r, Value):
            return f"{r.claimed:g} ± {r.tolerance:g} {self.unit}"
        return "—"


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
    "ten_epochs": Claim("ten_epochs", "report §2.5",
                        "we have limited our experiments to 10 epochs for computational reasons, as it is generally "
                        "from this point onwards that the performances of both networks decrease.",
                        "07_resnet_vs_plain"),
    "plain_worse": Claim("plain_worse", "report §2.5",
                         "We can see with the figure 2.9 that ResNet performs much better than the CNN, especially "
                         "when the depth is large.", "07_resnet_vs_plain"),
    "improvement": Claim("improvement", "report §2.5",
                         "According to our results, ResNet improves on average the accuracy and loss of the CNN by "
                         "about 28% and 43% after 10 epochs.", "07_resnet_vs_plain"),
}
EXTENSION_CLAIMS = {
    "cifar_stem": Claim("cifar_stem", "our extension of §2.3.1",
                        "The report ran torchvision's ResNet as it is. Is its ImageNet stem what makes it worse? "
                        "If so, "
                        "ResNet-18 with a CIFAR stem should beat ResNet-20.", "04_torchvision", "extension"),
}
PAPER_CLAIMS = {
    "degradation": Claim("degradation", "paper §4.2, Fig. 6 (left)",
                         "Deeper plain nets have higher training error: plain-56 trains worse than plain-20.",
                         "02_degradation", "paper"),
    "resnet_depth": Claim("resnet_depth", "paper §4.2, Table 6, Fig. 6 (middle)",
                          "Deeper ResNets reach lower test error: 8.75 % (20 layers) to 6.97 % (56 layers).",
                          "05_depth", "paper"),
    "table6": Claim("table6", "paper Table 6",
                    "Test error with the paper's protocol: ResNet-20 8.75 %, 32 7.51 %, 44 7.17 %, 56 6.97 %, "
                    "110 6.43 % (best of 5).", "08_conclusion", "paper"),
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
    return paired_under(df, x_model, y_model, metric)


def improvement_pct(df: pd.DataFrame, metric: str, depths: Sequence[int] = REPORT_DEPTHS,
                    n_boot: int = 10_000, reading: Reading = PLANNED, level: float = LEVEL,
                    quantity: str = "relative") -> Comparison | None:
    """The report's averaged improvement of ResNet (A) over plain, with the wider of a bootstrap and a
    delta-method interval (:func:`stats.derived_interval`).

    ``quantity`` (R: ResNet, P: plain, seed means by the reading's epoch rule; mean over depths):
    ``relative``: 100 (R − P) / P for accuracies, 100 (P − R) / P for losses; ``points``: R − P in points
    (accuracies) or 100 (P − R) for losses (a loss difference read in hundredths); ``error``:
    100 (R − P) / (100 − P), the relative reduction of the error (accuracies only). Only depths with both
    nets count.
    """
    lower = not metric.endswith("_acc")
    data: dict[str, list[float]] = {}
    used = []
    for d in depths:
        pair = samples(df, [f"resnet{d}-A", f"plain{d}"], metric, reading)
        if pair is not None:
            data[f"R{d}"], data[f"P{d}"] = pair[f"resnet{d}-A"], pair[f"plain{d}"]
            used.append(d)
    if not used:
        return None

    def one(r: float, p: float) -> float:
        if quantity == "relative":
            return improvement_of(r, p, lower)
        if quantity == "points":
            return 100 * (p - r) if lower else r - p
        if quantity == "error":
            return 100 * (r - p) / (100 - p)
        raise ValueError(f"unknown quantity {quantity!r}")

    def statistic(s: Mapping[str, np.ndarray]) -> float:
        return float(np.mean([one(s[f"R{d}"].mean(), s[f"P{d}"].mean()) for d in used]))

    result = stats.derived_interval(data, statistic, n_boot=n_boot, level=level, unit=" %")
    return dataclasses.replace(result, test=f"{result.test}, depths {', '.join(map(str, used))}")


def loss_reduction_pct(df: pd.DataFrame, deep: str, shallow: str, n_boot: int = 10_000, reading: Reading = PLANNED,
                       level: float = LEVEL, metric: str = "test_loss") -> Comparison | None:
    """100 (shallow − deep) / shallow at the reading's epoch (losses; for accuracies 100 (deep − shallow) /
    shallow), with the wider of a bootstrap and a delta-method interval (:func:`stats.derived_interval`)."""
    pair = samples(df, [deep, shallow], metric, reading)
    if pair is None:
        return None
    sign = -1.0 if metric.endswith("_acc") else 1.0
    return stats.derived_interval(
        {"deep": pair[deep], "shallow": pair[shallow]},
        lambda s: float(sign * 100 * (s["shallow"].mean() - s["deep"].mean()) / s["shallow"].mean()),
        n_boot=n_boot, level=level, unit=" %")


def seed_means_over_depths(df: pd.DataFrame, x_family: Callable[[int], str], y_family: Callable[[int], str],
                           metric: str, depths: Sequence[int] = REPORT_DEPTHS, reading: Reading = PLANNED,
                           level: float = LEVEL) -> Comparison | None:
    """Per seed, (mean over depths of x) − (mean over depths of y); seeds with every depth only."""
    return mean_over(df, [x_family(d) for d in depths], [y_family(d) for d in depths], metric, reading, level)


def late_change(df: pd.DataFrame, family: Callable[[int], str], metric: str, back: int = LATE_EPOCHS,
                depths: Sequence[int] = REPORT_DEPTHS, reading: Reading = PLANNED,
                level: float = LEVEL) -> Comparison | None:
    """Per seed, the mean over depths of ``metric`` at the last epoch minus ``back`` epochs before it (points
    for accuracies): is the curve still rising, flat or already falling when the runs stop?"""
    ends, starts, tables = [], [], []
    for d in depths:
        model = family(d)
        tables.append(run_values(df, model, metric))
        ends.append(at_epoch(df, model, metric, 0))
        starts.append(at_epoch(df, model, metric, back))
    if any(t.empty for t in tables):
        return None
    seeds = [k for k in common_seeds(tables, reading.same_setting) if all(k in s.index for s in starts)]
    if not seeds:
        return None
    x = [float(np.mean([e[k] for e in ends])) for k in seeds]
    y = [float(np.mean([s[k] for s in starts])) for k in seeds]
    return compare(x, y, reading.test, level)


def gap_growth(df: pd.DataFrame, deep: int, shallow: int, reading: Reading = PLANNED,
               level: float = LEVEL) -> Comparison | None:
    """Welch on per-seed ResNet − plain gaps: is the gap at ``deep`` larger than at ``shallow``?"""
    gaps = []
    for d in (deep, shallow):
        r, p = (run_values(df, m, "test_acc", reading.epoch) for m in (f"resnet{d}-A", f"plain{d}"))
        seeds = common_seeds([r, p], reading.same_setting)
        if not seeds:
            return None
        gaps.append(list(r.loc[seeds, "value"] - p.loc[seeds, "value"]))
    return stats.welch_t(gaps[0], gaps[1], level)


def table6_error(df: pd.DataFrame, model: str, reading: Reading = PLANNED, level: float = LEVEL) -> Comparison | None:
    """Test error (%) of ``model`` by the reading's epoch rule, with its t-interval over seeds."""
    values = run_values(df, model, "test_acc", reading.epoch)
    if values.empty:
        return None
    iv = stats.t_interval(list(100 - values["value"]), level)
    return Comparison(iv.mean, iv.lo, iv.hi, (iv.n,), "t-interval of the mean", math.nan, iv.level)


# --- judging ---------------------------------------------------------------------------------------

def judge(rule: Rule, cmp: Comparison) -> tuple[LineVerdict, str]:
    """One comparison by the rule of :mod:`.stats` its claim calls for."""
    if isinstance(rule, Direction):
        return stats.direction_verdict(cmp, rule.sign)
    if isinstance(rule, Similar):
        return stats.equivalence_verdict(cmp, rule.margin)
    return stats.value_verdict(cmp, rule.claimed, rule.tolerance)


def value_over_readings(interpretations: Sequence[Interpretation], rule: Value) -> tuple[LineVerdict, str]:
    """A stated figure judged under every reading of it: reproduced when one reading reproduces it (named);
    with one reading only, that reading's verdict; with several and none meeting the band, **not matched**
    (the figure cannot be reconstructed from these records: a statement about the report's arithmetic, not
    a contradiction of its finding); otherwise inconclusive."""
    tested = [i for i in interpretations if i.verdict != "not tested"]
    if not tested:
        return "not tested", "no records"
    band = f"{rule.claimed:g} ± {rule.tolerance:g}"
    hits = [i.name for i in tested if i.verdict == "reproduced"]
    if hits:
        return "reproduced", f"{band} is met under: {'; '.join(hits)}"
    if len(interpretations) == 1:
        return tested[0].verdict, tested[0].reason
    if all(i.verdict == "contradicted" for i in tested):
        return "not matched", f"no reading of the figure meets {band} ({len(tested)} readings tried)"
    open_ = [i.name for i in tested if i.verdict == "inconclusive"]
    return "inconclusive", f"{band} is not ruled out under: {'; '.join(open_)}"


@dataclass(frozen=True)
class Spec:
    """A ledger line before it is judged: what it tests and how to compute it."""

    claim: Claim
    scope: str
    measure: str
    rule: Rule
    compute: Compute  # (report-protocol records, paper-protocol records, reading, level) -> comparison
    unit: str = "pt"
    note: str = ""

    @property
    def line(self) -> str:
        return f"{self.claim.key}|{self.scope}"


def evaluate(spec: Spec, df: pd.DataFrame, paper_df: pd.DataFrame, reading: Reading = PLANNED) -> Finding:
    """``spec`` judged on the records under ``reading``; no records: **not tested**."""
    level = reading.level(spec.line)
    if isinstance(spec.rule, Value):
        interps = []
        for name, compute in spec.rule.readings:
            cmp = compute(df, paper_df, reading, level)
            verdict, why = ("not tested", "no records") if cmp is None else judge(spec.rule, cmp)
            interps.append(Interpretation(name, cmp, verdict, why))
        verdict, reason = value_over_readings(interps, spec.rule)
        return Finding(spec.claim, spec.scope, spec.measure, interps[0].comparison, verdict, reason, spec.unit,
                       spec.rule, tuple(interps), note=spec.note)
    cmp = spec.compute(df, paper_df, reading, level)
    if cmp is None:
        return Finding(spec.claim, spec.scope, spec.measure, None, "not tested", "no records", spec.unit, spec.rule,
                       note=spec.note)
    verdict, reason = judge(spec.rule, cmp)
    return Finding(spec.claim, spec.scope, spec.measure, cmp, verdict, reason, spec.unit, spec.rule, note=spec.note)


def finding(claim: Claim, scope: str, measure: str, cmp: Comparison | None,
            judge_: Callable[[Comparison], tuple[str, str]], unit: str = "pt") -> Finding:
    """``claim`` judged on ``cmp`` by ``judge_`` (a rule of :mod:`.stats`); no comparison: not tested."""
    if cmp is None:
        return Finding(claim, scope, measure, None, "not tested", "no records", unit)
    verdict, reason = judge_(cmp)
    return Finding(claim, scope, measure, cmp, verdict, reason, unit)  # type: ignore[arg-type]


def more(sign: int = 1) -> Callable[[Comparison], tuple[str, str]]:
    """The direction rule: the difference is > 0 (``sign`` +1) or < 0 (-1)."""
    return lambda c: stats.direction_verdict(c, sign)


# --- the lines -------------------------------------------------------------------------------------

def _pair(x: str, y: str, metric: str, paper: bool = False) -> Compute:
    return lambda df, pdf, r, lv: paired_under(shortened_runs(pdf) if paper else df, x, y, metric, r, lv)


def shortened_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The runs of the paper's recipe at a fraction of its length (an ``_it<N>`` iteration override in
    their id: grid ``paper8k``): what the book's CPUs train, and what the paper-recipe lines judge."""
    return df[df["config_id"].str.contains("_it", regex=False)] if len(df) else df


def full_length_runs(df: pd.DataFrame) -> pd.DataFrame:
    """The runs of the paper's recipe at its full length: the only ones held against Table 6's values."""
    return df[~df["config_id"].str.contains("_it", regex=False)] if len(df) else df


def _improvement(metric: str, quantity: str, n_boot: int) -> Compute:
    return lambda df, pdf, r, lv: improvement_pct(df, metric, n_boot=n_boot, reading=r, level=lv, quantity=quantity)


def _relative(deep: str, shallow: str, metric: str, n_boot: int) -> Compute:
    return lambda df, pdf, r, lv: loss_reduction_pct(df, deep, shallow, n_boot, r, lv, metric)


def _hundredths(x: str, y: str, metric: str) -> Compute:
    """100 (x − y) of a loss: a loss difference read in hundredths ("2.2 %" as 0.022)."""
    def compute(df: pd.DataFrame, pdf: pd.DataFrame, r: Reading, lv: float) -> Comparison | None:
        c = paired_under(df, x, y, metric, r, lv)
        return None if c is None else dataclasses.replace(c, estimate=100 * c.estimate, lo=100 * c.lo, hi=100 * c.hi)
    return compute


def specs(n_boot: int = 10_000) -> list[Spec]:
    """Every line of the ledger, in the book's order."""
    rc, pc, ec = REPORT_CLAIMS, PAPER_CLAIMS, EXTENSION_CLAIMS
    acc, loss = "final test accuracy, points", "final test loss, nats"
    lines = [
        Spec(rc["torchvision"], "ResNet-20 (A) − torchvision ResNet-18, ImageNet stem (our reading of "
             "`models.resnet()`)", acc, Direction(), _pair("resnet20-A", "tv-resnet18-imagenet", "test_acc")),
        Spec(ec["cifar_stem"], "ResNet-18 with a CIFAR stem − ResNet-20 (A)", acc, Direction(),
             _pair("tv-resnet18-cifar", "resnet20-A", "test_acc")),
    ]
    for shallow, deep in zip(REPORT_DEPTHS, REPORT_DEPTHS[1:]):
        lines.append(Spec(rc["depth"], f"step {shallow} → {deep}: accuracy, ResNet-{deep} − ResNet-{shallow}", acc,
                          Direction(), _pair(f"resnet{deep}-A", f"resnet{shallow}-A", "test_acc")))
    for shallow, deep in zip(REPORT_DEPTHS, REPORT_DEPTHS[1:]):
        lines.append(Spec(rc["depth"], f"step {shallow} → {deep}: loss, ResNet-{deep} − ResNet-{shallow}", loss,
                          Direction(-1), _pair(f"resnet{deep}-A", f"resnet{shallow}-A", "test_loss"), unit="nats"))
    lines += [
        Spec(rc["depth_numbers"], "accuracy: ResNet-56 − ResNet-20 (stated 1.3 %)", acc,
             Value("1.3", False, (
                 ("test accuracy, points (paired)", _pair("resnet56-A", "resnet20-A", "test_acc")),
                 ("test accuracy, % of ResNet-20's", _relative("resnet56-A", "resnet20-A", "test_acc", n_boot)),
                 ("training accuracy, points (paired)", _pair("resnet56-A", "resnet20-A", "train_acc")),
                 ("training accuracy, % of ResNet-20's", _relative("resnet56-A", "resnet20-A", "train_acc", n_boot)),
             )), _pair("resnet56-A", "resnet20-A", "test_acc")),
        Spec(rc["depth_numbers"], "loss: ResNet-20 − ResNet-56 (stated 2.2 %)", "final test loss, % of ResNet-20's",
             Value("2.2", False, (
                 ("test loss, % of ResNet-20's", _relative("resnet56-A", "resnet20-A", "test_loss", n_boot)),
                 ("test loss, hundredths of a nat (paired)", _hundredths("resnet20-A", "resnet56-A", "test_loss")),
                 ("training loss, % of ResNet-20's", _relative("resnet56-A", "resnet20-A", "train_loss", n_boot)),
                 ("training loss, hundredths of a nat (paired)", _hundredths("resnet20-A", "resnet56-A",
                                                                             "train_loss")),
             )), _relative("resnet56-A", "resnet20-A", "test_loss", n_boot), unit="%"),
    ]
    for d in REPORT_DEPTHS:
        lines.append(Spec(rc["options_similar"], f"depth {d}: A − B (similar: within ± {SIMILAR_MARGIN_PT:g} pt)",
                          acc, Similar(), _pair(f"resnet{d}-A", f"resnet{d}-B", "test_acc")))
    lines.append(Spec(rc["option_a_better"], "A − B, mean over depths 20–56 per seed", acc, Direction(),
                      lambda df, pdf, r, lv: seed_means_over_depths(df, lambda d: f"resnet{d}-A",
                                                                    lambda d: f"resnet{d}-B", "test_acc", reading=r,
                                                                    level=lv)))
    beyond = "after epoch 10 the records say nothing: every run stops there"
    for name, family in (("ResNet (A)", lambda d: f"resnet{d}-A"), ("plain", lambda d: f"plain{d}")):
        lines.append(Spec(rc["ten_epochs"], f"{name}: test accuracy, epoch 10 − epoch {10 - LATE_EPOCHS} "
                          "(mean over depths; > 0: not yet falling)", "test accuracy change, points", Direction(),
                          lambda df, pdf, r, lv, f=family: late_change(df, f, "test_acc", reading=r, level=lv),
                          note=beyond))
        lines.append(Spec(rc["ten_epochs"], f"{name}: test loss, epoch 10 − epoch {10 - LATE_EPOCHS} "
                          "(mean over depths; < 0: not yet rising)", "test loss change, nats", Direction(-1),
                          lambda df, pdf, r, lv, f=family: late_change(df, f, "test_loss", reading=r, level=lv),
                          unit="nats", note=beyond))
    for d in REPORT_DEPTHS:
        lines.append(Spec(rc["plain_worse"], f"depth {d}: ResNet (A) − plain", acc, Direction(),
                          _pair(f"resnet{d}-A", f"plain{d}", "test_acc")))
    lines.append(Spec(rc["plain_worse"], "'especially when the depth is large': gap at 56 − gap at 20", acc,
                      Direction(), lambda df, pdf, r, lv: gap_growth(df, 56, 20, r, lv)))
    lines.append(Spec(rc["improvement"], "accuracy improvement, mean over depths (stated about 28 %)",
                      "relative, % of the plain net's", Value("28", True, (
                          ("test accuracy, % of the plain net's", _improvement("test_acc", "relative", n_boot)),
                          ("test accuracy, points", _improvement("test_acc", "points", n_boot)),
                          ("test error, % removed", _improvement("test_acc", "error", n_boot)),
                          ("training accuracy, % of the plain net's", _improvement("train_acc", "relative", n_boot)),
                          ("training accuracy, points", _improvement("train_acc", "points", n_boot)),
                          ("training error, % removed", _improvement("train_acc", "error", n_boot)),
                      )), _improvement("test_acc", "relative", n_boot), unit="%"))
    lines.append(Spec(rc["improvement"], "loss improvement, mean over depths (stated about 43 %)",
                      "relative, % of the plain net's", Value("43", True, (
                          ("test loss, % of the plain net's", _improvement("test_loss", "relative", n_boot)),
                          ("test loss, hundredths of a nat", _improvement("test_loss", "points", n_boot)),
                          ("training loss, % of the plain net's", _improvement("train_loss", "relative", n_boot)),
                          ("training loss, hundredths of a nat", _improvement("train_loss", "points", n_boot)),
                      )), _improvement("test_loss", "relative", n_boot), unit="%"))
    train = "final training accuracy, points"
    lines.append(Spec(pc["degradation"], "report protocol: plain-20 − plain-56", train, Direction(),
                      _pair("plain20", "plain56", "train_acc")))
    # the paper's recipe as this book's CPUs train it: shortened (chapter 10 tests every depth step);
    # its absolute errors are held against Table 6 only at full length
    lines.append(Spec(pc["degradation"], "paper recipe, shortened: plain-20 − plain-56", train, Direction(),
                      _pair("plain20", "plain56", "train_acc", paper=True)))
    lines.append(Spec(pc["resnet_depth"], "paper recipe, shortened: ResNet-56 (A) − ResNet-20 (A)", acc,
                      Direction(), _pair("resnet56-A", "resnet20-A", "test_acc", paper=True)))
    for d in (20, 56, 110):
        error: Compute = lambda df, pdf, r, lv, d=d: table6_error(full_length_runs(pdf), f"resnet{d}-A", r, lv)
        lines.append(Spec(pc["table6"], f"paper recipe, full length: ResNet-{d} test error (paper {PAPER_TEST_ERROR[d]} %)",
                          "test error, %", Value(f"{PAPER_TEST_ERROR[d]:.2f}", False, (("test error, %", error),)),
                          error, unit="%"))
    return lines


def ledger(df: pd.DataFrame, paper_df: pd.DataFrame | None = None, reading: Reading = PLANNED,
           n_boot: int = 10_000) -> list[Finding]:
    """Every line judged on the report-protocol records ``df`` (and the paper grid's, if given) under
    ``reading``. A line whose records are missing is **not tested**."""
    paper_df = paper_df if paper_df is not None else df.iloc[0:0]
    return [evaluate(s, df, paper_df, reading) for s in specs(n_boot)]


# --- reading the ledger ------------------------------------------------------------------------

def ledger_table(findings: Sequence[Finding]) -> pd.DataFrame:
    """The ledger as a table: category, source, what was compared, estimate [95 % interval], n, test,
    the claim's region, verdict, robustness."""
    rows = [{"category": f.category, "source": f.claim.source, "claim": f.claim.text, "compared": f.scope,
             "measure": f.measure, "estimate [95 % CI]": f.estimate_text(), "n (seeds)": f.n_text(),
             "test": f.test_text(), "claimed": f.region_text(), "verdict": f.verdict, "why": f.reason,
             "robustness": f.robustness or "—", "flips under": "; ".join(f.flips) or "—"} for f in findings]
    columns = ["category", "source", "claim", "compared", "measure", "estimate [95 % CI]", "n (seeds)", "test",
               "claimed", "verdict", "why", "robustness", "flips under"]
    return pd.DataFrame(rows, columns=columns)


def verdict_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """Lines per verdict (every line counts once)."""
    counts = {v: 0 for v in LINE_VERDICTS}
    for f in findings:
        counts[f.verdict] += 1
    return counts


def category_counts(findings: Sequence[Finding]) -> dict[str, dict[str, int]]:
    """Per category, lines per verdict: tested lines by the category of their claim, lines without records
    under *not yet tested*. Each line counts once; the totals add up to ``len(findings)``."""
    table = {c: {v: 0 for v in LINE_VERDICTS} for c in CATEGORIES}
    for f in findings:
        table[f.category][f.verdict] += 1
    return table


ClaimVerdict = Literal["reproduced", "partly reproduced", "contradicted", "not matched", "inconclusive",
                       "not tested"]


def claim_verdict(findings: Sequence[Finding]) -> tuple[ClaimVerdict, str]:
    """One claim's verdict from its lines (e.g. the steps of "the deeper the better"): all tested lines
    reproduced: reproduced; some: **partly reproduced**, naming which; none reproduced and some
    contradicted: contradicted; every tested line not matched: not matched; no records: not tested."""
    tested = [f for f in findings if f.verdict != "not tested"]
    if not tested:
        return "not tested", "no records"
    yes = [f.scope for f in tested if f.verdict == "reproduced"]
    no = [f.scope for f in tested if f.verdict == "contradicted"]
    if len(yes) == len(tested):
        return "reproduced", f"all {len(tested)} line(s) reproduced"
    if yes:
        other = [f"{f.scope}: {f.verdict}" for f in tested if f.verdict != "reproduced"]
        return "partly reproduced", f"reproduced: {'; '.join(yes)}; not: {'; '.join(other)}"
    if all(f.verdict == "not matched" for f in tested):
        return "not matched", tested[0].reason if len(tested) == 1 else "no line's figure can be reconstructed"
    if no:
        return "contradicted", f"contradicted: {'; '.join(no)}"
    if any(f.verdict == "not matched" for f in tested):
        return "not matched", "; ".join(f"{f.scope}: {f.verdict}" for f in tested)
    return "inconclusive", f"no line decided ({len(tested)} tested)"


def claim_summary(findings: Sequence[Finding]) -> pd.DataFrame:
    """One row per claim: category (of its source), source, the quote, lines tested, verdict and why."""
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.claim.key, []).append(f)
    rows = []
    for fs in groups.values():
        c = fs[0].claim
        verdict, why = claim_verdict(fs)
        tested = sum(f.verdict != "not tested" for f in fs)
        rows.append({"category": _CATEGORY[c.origin] if tested else "not yet tested", "source": c.source,
                     "claim": c.text, "lines tested": f"{tested} of {len(fs)}", "verdict": verdict, "why": why})
    return pd.DataFrame(rows, columns=["category", "source", "claim", "lines tested", "verdict", "why"])


def _counts_text(counts: Mapping[str, int]) -> str:
    parts = [f"{n} {v}" for v, n in counts.items() if n and v != "not tested"]
    return ", ".join(parts) if parts else "none"


def counts_markdown(findings: Sequence[Finding]) -> str:
    """The ledger's counts, one line per category, each test counted once; they add up to the total."""
    table = category_counts(findings)
    tested = {c: sum(v.values()) for c, v in table.items() if c != "not yet tested"}
    untested = sum(table["not yet tested"].values())
    lines = [f"**{len(findings)} lines, one test each**: {sum(tested.values())} tested, {untested} not yet tested "
             "(no records).", ""]
    for c in ("report claim", "paper claim", "our extension"):
        lines.append(f"* **{c}s**: {tested[c]} tested: {_counts_text(table[c])}.")
    if untested:
        names = sorted({f.claim.source for f in findings if f.category == "not yet tested"})
        lines.append(f"* **not yet tested**: {untested} (no records: {'; '.join(names)}); no verdict, not counted "
                     "above.")
    return "\n".join(lines)


def chapter_findings(findings: Sequence[Finding], chapter: str) -> str:
    """Markdown: "What the records show" for one chapter, one bullet per finding, generated."""
    mine = [f for f in findings if f.claim.chapter == chapter]
    if not mine:
        return "**What the records show.** No claim of the report or the paper is judged on this page."
    lines = ["**What the records show** (computed from the records; the verdict rule is on the conclusion page):", ""]
    for f in mine:
        tag = " [not yet tested]" if f.category == "not yet tested" else ""  # the source names the others
        lines.append(f"* *{f.claim.source}*{tag}, {f.scope}: {f.estimate_text()} (n = {f.n_text()}; {f.test_text()}) "
                     f"→ **{f.verdict}** ({f.reason}{'; ' + f.note if f.note else ''}).")
    return "\n".join(lines)


# One reading of a stated figure, in words: a reading that misses the band does not contradict the claim (the
# figure as a whole is *not matched* when every reading misses it).
READING_WORDS = {"reproduced": "reproduces it", "contradicted": "misses the band",
                 "inconclusive": "meets the band, too wide to pin it", "not tested": "no records"}


def interpretation_table(findings: Sequence[Finding]) -> pd.DataFrame:
    """Every reading of every stated figure: the figure, the reading, our estimate [95 % CI], what this reading
    says (:data:`READING_WORDS`)."""
    rows = []
    for f in findings:
        if not isinstance(f.rule, Value) or len(f.interpretations) < 2:
            continue
        for i in f.interpretations:
            shown = dataclasses.replace(f, comparison=i.comparison, unit="")
            rows.append({"stated": f"{'about ' if f.rule.about else ''}{f.rule.stated} % ({f.claim.source})",
                         "band": f"{f.rule.claimed:g} ± {f.rule.tolerance:g}", "reading": i.name,
                         "estimate [95 % CI]": _plain_estimate(shown), "this reading": READING_WORDS[i.verdict]})
    return pd.DataFrame(rows, columns=["stated", "band", "reading", "estimate [95 % CI]", "this reading"])


def _plain_estimate(f: Finding) -> str:
    c = f.comparison
    if c is None:
        return "no records"
    if math.isnan(c.lo):
        return f"{c.estimate:.2f} (no interval)"
    return f"{c.estimate:.2f} [{c.lo:.2f}, {c.hi:.2f}]"


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
    return (f"**Inconclusive** {rule}: these pairs neither justify averaging the two precisions nor forbid it; "
            "until they do, the conclusion page's reading without the seeds made in two settings is what the means "
            "rest on.")


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
                return text + (f"Every run {prep} {names} falls outside it and every run {prep} {' or '.join(ok)} "
                               "inside. " + _other_factor(self.runs, column, what, outside, inside)
                               + caveat.format(what=names))
        out = ", ".join(f"{r.device} {r.precision}" for _, r in outside.iterrows())
        verb = "falls" if len(outside) == 1 else "fall"
        return text + (f"Only {out} {verb} outside it: with the seed held fixed, the arithmetic decides, but no single "
                       "factor (device or precision) separates the runs. " + caveat.format(what="a setting"))


def _other_factor(runs: pd.DataFrame, column: str, what: str, outside: pd.DataFrame, inside: pd.DataFrame) -> str:
    """What the other factor does among runs that share ``column``'s value, against the gap between the
    runs outside and inside: with one run per setting, ``column`` cannot be told apart from it."""
    other = "device" if column == "precision" else "precision"
    gap = min(abs(float(a) - float(b)) for a in outside[what] for b in inside[what])
    spreads = []
    for value, group in runs.groupby(column):
        if group[other].nunique() > 1:
            values = group[what]
            spreads.append((float(values.max() - values.min()), value, " and ".join(sorted(set(group[other])))))
    if not spreads:
        return (f"That rests on one run per setting, and each {column} ran in one {other} only: these runs cannot "
                f"tell the {column} apart from the {other}. ")
    spread, value, where = max(spreads)
    return (f"That rests on one run per setting: the {value} runs alone, on {where}, differ by {spread:.2f} points, "
            f"against {gap:.2f} between the closest runs outside and inside; so the {other} moves this seed too, and "
            f"these runs cannot tell the {column} apart from the rest of the arithmetic. ")


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


def _line_markdown(f: Finding) -> str:
    robust = "" if not f.robustness else f"; **{f.robustness}**" + (f" (changes under {'; '.join(f.flips)})"
                                                                    if f.flips else "")
    note = f"; {f.note}" if f.note else ""
    return (f"* {f.scope} ({f.measure}; claimed {f.region_text()}): {f.estimate_text()}, n = {f.n_text()}, "
            f"{f.test_text()} → **{f.verdict}** ({f.reason}{note}{robust})")


LEDGER_SECTIONS = (("report claim", "Report claims, judged on the records"),
                   ("our extension",
                    "Our extensions (questions the report did not ask: not counted among its verdicts)"),
                   ("paper claim", "Paper claims, judged on the records"),
                   ("not yet tested", "Not yet tested (no records: no verdict)"))


def ledger_markdown(findings: Sequence[Finding], counts: bool = True) -> str:
    """The ledger for the conclusion page: the counts (unless ``counts`` is False), then one section per
    category, each claim quoted once and one bullet per line (with its robustness when it has been judged)."""
    lines = [counts_markdown(findings)] if counts else []
    for category, title in LEDGER_SECTIONS:
        mine = [f for f in findings if f.category == category]
        if not mine:
            continue
        lines += ["", f"### {title}", ""] if lines else [f"### {title}", ""]
        seen: list[str] = []
        for f in mine:
            if f.claim.key not in seen:
                seen.append(f.claim.key)
                kind = {"report": "quoted", "paper": "paraphrased", "extension": "our question"}[f.claim.origin]
                lines += ["", f"*{f.claim.source}* ({kind}):", "", f"> {f.claim.text}", ""]
            lines.append(_line_markdown(f))
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
