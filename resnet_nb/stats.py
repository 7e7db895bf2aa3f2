"""Statistics for the book's findings: intervals over seeds, paired and Welch tests, bootstrap and
delta-method intervals for derived figures (the wider of the two), and the one verdict rule every
finding is judged by.

Every finding is a comparison over seeds (independent training runs). The rule, stated once:

* fewer than :data:`MIN_SEEDS` seeds in any arm: **inconclusive** (too few runs to judge);
* a claim of direction ("X beats Y"): **reproduced** when the 95 % interval of the difference
  lies on the claimed side of zero, **contradicted** when it lies on the other side, else
  **inconclusive** (two-sided 5 % level; the interval and the p-value say the same thing);
* a claimed value ("about 28 %"): the claim stands for a band, its value ± a tolerance fixed from
  its own wording before any record is read (:func:`stated_tolerance`: half a unit of its last
  digit for the rounding, one more unit when it says "about"). **contradicted** when our 95 %
  interval misses the band; **reproduced** when it meets the band and lies strictly between zero and
  twice the claimed value (the effect is there, and the data tell the claimed size from none and from
  double); **inconclusive** when it meets the band but is too wide for that. A figure whose
  quantity the source leaves open is judged under each reasonable reading: *not matched* when no
  reading meets the band (:mod:`resnet_nb.claims`);
* a claim of similarity ("A and B are very similar"): **reproduced** when the whole 95 % interval
  of the difference lies within ± the stated margin, **contradicted** when the interval lies
  entirely outside it, else **inconclusive**.

The planned reading applies no correction for multiple comparisons; the Holm-adjusted reading of
:mod:`resnet_nb.readings` is one of the alternatives every verdict is re-judged under.

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

LEVEL = 0.95
MIN_SEEDS = 3  # below this, an interval over seeds is too wide (t quantile 4.3 at n=3) to judge anything
Verdict = Literal["reproduced", "contradicted", "inconclusive"]


@dataclass(frozen=True)
class Interval:
    """Mean of ``n`` values with the two-sided ``level`` t-interval (NaN bounds for n < 2)."""

    mean: float
    lo: float
    hi: float
    n: int
    std: float  # sample standard deviation (ddof 1); NaN for n < 2
    level: float = LEVEL


@dataclass(frozen=True)
class Comparison:
    """An estimated difference (or derived figure) with its interval, test and sizes."""

    estimate: float
    lo: float
    hi: float
    n: tuple[int, ...]  # seeds in each arm (paired: the number of pairs, once)
    test: str  # "paired t", "Welch t", "bootstrap" ...
    p_value: float = math.nan  # two-sided, for H0: difference = 0 (NaN where no test applies)
    level: float = LEVEL


def _clean(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"non-finite values in a sample: {array.tolist()}")
    return array


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean with a Student-t interval: mean ± t_{n-1} · s / √n."""
    x = _clean(values)
    n = len(x)
    if n == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, math.nan, level)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, std, level)


def paired_t(x: Sequence[float], y: Sequence[float], level: float = LEVEL) -> Comparison:
    """Mean of x − y over pairs (the same seed: same data order) with its t-interval and p-value."""
    a, b = _clean(x), _clean(y)
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    diff = t_interval(a - b, level)
    p = math.nan
    if diff.n >= 2:
        p = 1.0 if diff.std == 0 and diff.mean == 0 else (0.0 if diff.std == 0 else
                                                          float(sps.ttest_rel(a, b).pvalue))
    return Comparison(diff.mean, diff.lo, diff.hi, (diff.n,), "paired t", p, level)


def welch_t(x: Sequence[float], y: Sequence[float], level: float = LEVEL) -> Comparison:
    """Difference of means x̄ − ȳ with the Welch (unequal variances) interval and p-value."""
    a, b = _clean(x), _clean(y)
    na, nb = len(a), len(b)
    est = float(a.mean() - b.mean()) if na and nb else math.nan
    if na < 2 or nb < 2:
        return Comparison(est, math.nan, math.nan, (na, nb), "Welch t", math.nan, level)
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return Comparison(est, est, est, (na, nb), "Welch t", 1.0 if est == 0 else 0.0, level)
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = float(sps.t.ppf(0.5 + level / 2, dof)) * se
    p = float(sps.ttest_ind(a, b, equal_var=False).pvalue)
    return Comparison(est, est - half, est + half, (na, nb), "Welch t", p, level)


def bootstrap(samples: Mapping[str, Sequence[float]], statistic: Callable[[Mapping[str, np.ndarray]], float],
              n_boot: int = 10_000, seed: int = 0, level: float = LEVEL) -> Comparison:
    """Percentile bootstrap interval of ``statistic`` over independent resamples of each named sample.

    Each sample (the seeds of one configuration) is resampled with replacement on its own, so
    the interval covers the seed-to-seed noise of every configuration the statistic uses. The
    generator is seeded: the same records give the same interval on every machine.
    """
    data = {k: _clean(v) for k, v in samples.items()}
    sizes = tuple(len(v) for v in data.values())
    estimate = float(statistic(data))
    if min(sizes, default=0) < 2:
        return Comparison(estimate, math.nan, math.nan, sizes, "bootstrap", math.nan, level)
    rng = np.random.default_rng(seed)
    draws = {k: v[rng.integers(0, len(v), size=(n_boot, len(v)))] for k, v in data.items()}
    values = np.array([statistic({k: d[i] for k, d in draws.items()}) for i in range(n_boot)])
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return Comparison(estimate, float(lo), float(hi), sizes, "bootstrap", math.nan, level)


def delta_method(samples: Mapping[str, Sequence[float]], statistic: Callable[[Mapping[str, np.ndarray]], float],
                 level: float = LEVEL) -> Comparison:
    """t-interval of a smooth function of the samples' *means*, by propagation of uncertainty.

    Var ≈ Σ_k g_k² s_k² / n_k, with g_k the derivative of ``statistic`` with respect to sample k's
    mean (central differences, by shifting the whole sample) and s_k² its variance; the t quantile
    takes Welch–Satterthwaite degrees of freedom, so for x̄ − ȳ this *is* Welch's interval and test
    (H0: the statistic is 0). ``statistic`` must depend on the samples only through their means.
    """
    data = {k: _clean(v) for k, v in samples.items()}
    sizes = tuple(len(v) for v in data.values())
    estimate = float(statistic(data))
    if min(sizes, default=0) < 2:
        return Comparison(estimate, math.nan, math.nan, sizes, "delta-method t", math.nan, level)
    parts = []  # (variance contribution, degrees of freedom) per sample
    for k, v in data.items():
        h = 1e-6 * max(1.0, abs(float(v.mean())))
        slope = (statistic({**data, k: v + h}) - statistic({**data, k: v - h})) / (2 * h)
        parts.append((slope**2 * float(v.var(ddof=1)) / len(v), len(v) - 1))
    var = sum(c for c, _ in parts)
    if var == 0:
        return Comparison(estimate, estimate, estimate, sizes, "delta-method t", 1.0 if estimate == 0 else 0.0, level)
    dof = var**2 / sum(c**2 / d for c, d in parts)
    se = math.sqrt(var)
    quantile = float(sps.t.ppf(0.5 + level / 2, dof))
    half = quantile * se
    p = float(2 * sps.t.sf(abs(estimate) / se, dof))
    return Comparison(estimate, estimate - half, estimate + half, sizes, f"delta-method t (dof {dof:.1f})", p, level)


def derived_interval(samples: Mapping[str, Sequence[float]], statistic: Callable[[Mapping[str, np.ndarray]], float],
                     n_boot: int = 10_000, seed: int = 0, level: float = LEVEL, unit: str = "") -> Comparison:
    """A derived figure (a function of several configurations' means) with the wider of two intervals.

    The percentile :func:`bootstrap` is too narrow with the 3 seeds most configurations have: a
    resampled mean varies by (n − 1)/n of s²/n, and its quantiles have no t tails, so at n = 3 its
    "95 %" interval covers far less. The :func:`delta_method` t-interval has the tails but rests on a
    linearisation. The verdict takes the union of the two, so it never rests on the narrower; the
    test names both. The p-value is the delta method's.
    """
    boot = bootstrap(samples, statistic, n_boot=n_boot, seed=seed, level=level)
    delta = delta_method(samples, statistic, level=level)
    if math.isnan(boot.lo) or math.isnan(delta.lo):
        return Comparison(boot.estimate, math.nan, math.nan, boot.n, "bootstrap and delta-method t", math.nan, level)

    def span(c: Comparison) -> str:
        return f"[{c.lo:+.2f}{unit}, {c.hi:+.2f}{unit}]"

    test = f"the wider of bootstrap {span(boot)} and {delta.test} {span(delta)}"
    return Comparison(boot.estimate, min(boot.lo, delta.lo), max(boot.hi, delta.hi), boot.n, test, delta.p_value,
                      level)


def prediction_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Where one more run of the same configuration should fall: x̄ ± t_{n-1} · s · √(1 + 1/n)."""
    x = _clean(values)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * float(x.std(ddof=1)) * math.sqrt(1 + 1 / n)
    return float(x.mean()) - half, float(x.mean()) + half


def _too_few(cmp: Comparison, min_seeds: int) -> str | None:
    if min(cmp.n) < min_seeds:
        return f"n = {'/'.join(map(str, cmp.n))} seed(s), fewer than {min_seeds}"
    if math.isnan(cmp.lo) or math.isnan(cmp.hi):
        return "no interval"
    return None


def direction_verdict(cmp: Comparison, sign: int = 1, min_seeds: int = MIN_SEEDS) -> tuple[Verdict, str]:
    """Verdict on "the difference is > 0" (``sign=+1``) or "< 0" (``sign=-1``), with the reason."""
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign}")
    if (why := _too_few(cmp, min_seeds)) is not None:
        return "inconclusive", why
    lo, hi = (cmp.lo, cmp.hi) if sign == 1 else (-cmp.hi, -cmp.lo)
    if lo > 0:
        return "reproduced", "the 95 % interval lies on the claimed side of zero"
    if hi < 0:
        return "contradicted", "the 95 % interval lies on the opposite side of zero"
    return "inconclusive", "the 95 % interval contains zero"


def stated_tolerance(stated: str, about: bool = False) -> float:
    """The band a stated figure stands for, from its own wording: half a unit of its last digit (it was
    rounded there), plus one more unit when the source says "about". ``"28"`` about: ± 1.5;
    ``"1.3"``: ± 0.05."""
    digits = stated.strip().lstrip("+-")
    if not digits.replace(".", "", 1).isdigit():
        raise ValueError(f"not a stated number: {stated!r}")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    unit = 10.0 ** -decimals
    return round(unit / 2 + (unit if about else 0.0), decimals + 2)


def value_verdict(cmp: Comparison, claimed: float, tolerance: float = 0.0,
                  min_seeds: int = MIN_SEEDS) -> tuple[Verdict, str]:
    """Verdict on "the figure is ``claimed`` ± ``tolerance``" (a non-zero effect): does our interval meet
    the band, and is it narrow enough to tell the claimed size from none and from twice as much?"""
    if (why := _too_few(cmp, min_seeds)) is not None:
        return "inconclusive", why
    if claimed == 0:
        raise ValueError("a claimed value of zero is a claim of similarity: use equivalence_verdict")
    band = f"{claimed:g} ± {tolerance:g}" if tolerance else f"{claimed:g}"
    if cmp.hi < claimed - tolerance or cmp.lo > claimed + tolerance:
        return "contradicted", f"the 95 % interval misses {band}"
    lo, hi = sorted((0.0, 2 * claimed))
    if lo < cmp.lo and cmp.hi < hi:
        return "reproduced", f"the 95 % interval meets {band} and lies between 0 and {2 * claimed:g}"
    held = "zero" if cmp.lo <= 0 <= cmp.hi else f"{2 * claimed:g}" if cmp.lo <= 2 * claimed <= cmp.hi else (
        "values beyond 0 or twice the figure")
    return "inconclusive", f"the 95 % interval meets {band} but also holds {held}: too wide to pin the figure"


def seeds_for_similarity(estimate: float, std: float, margin: float, level: float = LEVEL,
                         limit: int = 10_000) -> int | None:
    """Seeds (paired differences) a "within ± ``margin``" verdict would need if the mean difference and its
    spread stayed at ``estimate`` and ``std``: the least n with |estimate| + t_{n-1} · std / √n ≤ margin.
    None when no n up to ``limit`` reaches it (|estimate| ≥ margin: never)."""
    room = margin - abs(estimate)
    if room <= 0 or math.isnan(std):
        return None
    if std == 0:
        return 2
    for n in range(2, limit + 1):
        if float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n) <= room:
            return n
    return None


def equivalence_verdict(cmp: Comparison, margin: float, min_seeds: int = MIN_SEEDS) -> tuple[Verdict, str]:
    """Verdict on "no difference larger than ± ``margin``" (two one-sided tests at 2.5 % each)."""
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if (why := _too_few(cmp, min_seeds)) is not None:
        return "inconclusive", why
    if -margin <= cmp.lo and cmp.hi <= margin:
        return "reproduced", f"the whole 95 % interval lies within ± {margin:g}"
    if cmp.lo > margin or cmp.hi < -margin:
        return "contradicted", f"the whole 95 % interval lies outside ± {margin:g}"
    return "inconclusive", f"the 95 % interval crosses ± {margin:g}"


def improvement_pct(resnet: float, plain: float, lower_is_better: bool = False) -> float:
    """The report's relative improvement of a ResNet over its plain net, in % of the plain net's value:
    100 (R − P) / P for accuracies, 100 (P − R) / P for losses (``lower_is_better``)."""
    return 100 * ((plain - resnet) if lower_is_better else (resnet - plain)) / plain
