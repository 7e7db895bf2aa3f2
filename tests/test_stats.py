"""resnet_nb.stats against hand-worked values and scipy's own intervals, and the verdict rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from resnet_nb import stats
from resnet_nb.stats import Comparison


def test_t_interval_hand_worked() -> None:
    # 1..5: mean 3, s = sqrt(2.5), t_{4, 0.975} = 2.7764451, half-width = 2.7764451 * sqrt(2.5) / sqrt(5)
    iv = stats.t_interval([1, 2, 3, 4, 5])
    half = 2.7764451052 * math.sqrt(2.5) / math.sqrt(5)
    assert iv.mean == 3 and iv.n == 5 and iv.std == pytest.approx(math.sqrt(2.5))
    assert (iv.lo, iv.hi) == (pytest.approx(3 - half, abs=1e-8), pytest.approx(3 + half, abs=1e-8))
    assert iv.hi - iv.lo == pytest.approx(3.926486, abs=1e-5)


def test_t_interval_one_value_has_no_interval_and_bad_input_raises() -> None:
    iv = stats.t_interval([0.7])
    assert iv.mean == 0.7 and iv.n == 1 and math.isnan(iv.lo) and math.isnan(iv.std)
    with pytest.raises(ValueError, match="at least one"):
        stats.t_interval([])
    with pytest.raises(ValueError, match="non-finite"):
        stats.t_interval([1.0, float("nan")])


def test_paired_t_hand_worked() -> None:
    # differences 1, 2, 3: mean 2, s = 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 dof: p = 0.07418
    c = stats.paired_t([1, 2, 3], [0, 0, 0])
    assert c.estimate == 2 and c.n == (3,) and c.test == "paired t"
    half = 4.30265273 / math.sqrt(3)
    assert (c.lo, c.hi) == (pytest.approx(2 - half, abs=1e-6), pytest.approx(2 + half, abs=1e-6))
    assert c.p_value == pytest.approx(0.074180, abs=1e-5)


def test_paired_t_uses_the_pairing() -> None:
    # a constant offset of 0.5 with large between-seed spread: paired is decisive, Welch is not
    x = [70.0, 80.0, 90.0, 75.0]
    y = [v - 0.5 + d for v, d in zip(x, (0.01, -0.01, 0.02, -0.02))]
    assert stats.paired_t(x, y).lo > 0
    assert stats.welch_t(x, y).lo < 0
    with pytest.raises(ValueError, match="differ in length"):
        stats.paired_t([1, 2], [1])


def test_welch_matches_scipy_interval_and_p() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(1.0, 1.0, 6), rng.normal(0.0, 2.5, 4)
    c = stats.welch_t(x, y)
    ref = sps.ttest_ind(x, y, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert c.estimate == pytest.approx(x.mean() - y.mean())
    assert (c.lo, c.hi) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert c.p_value == pytest.approx(ref.pvalue) and c.n == (6, 4)


def test_welch_needs_two_per_arm() -> None:
    c = stats.welch_t([1.0], [0.0, 1.0])
    assert c.estimate == 0.5 and math.isnan(c.lo) and c.n == (1, 2)


def test_bootstrap_is_seeded_covers_the_estimate_and_collapses_without_spread() -> None:
    samples = {"a": [1.0, 2.0, 3.0, 4.0], "b": [0.0, 0.5, 1.0]}
    diff = lambda s: float(s["a"].mean() - s["b"].mean())  # noqa: E731
    one, two = stats.bootstrap(samples, diff, n_boot=2000), stats.bootstrap(samples, diff, n_boot=2000)
    assert one == two and one.estimate == pytest.approx(2.0) and one.lo < 2.0 < one.hi
    # resampled means of {1..4} lie in [1, 4], of {0, .5, 1} in [0, 1]: the difference in [0, 4]
    assert 0 <= one.lo and one.hi <= 4
    flat = stats.bootstrap({"a": [2.0, 2.0, 2.0], "b": [1.0, 1.0]}, diff, n_boot=500)
    assert (flat.lo, flat.hi) == (1.0, 1.0)
    single = stats.bootstrap({"a": [2.0], "b": [1.0, 1.0]}, diff)
    assert math.isnan(single.lo) and single.n == (1, 2)


def test_bootstrap_interval_width_matches_the_normal_theory_roughly() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 40)
    c = stats.bootstrap({"a": a}, lambda s: float(s["a"].mean()), n_boot=4000)
    assert c.hi - c.lo == pytest.approx(2 * 1.96 * a.std(ddof=1) / math.sqrt(40), rel=0.15)


def test_delta_method_of_a_difference_of_means_is_welchs_test() -> None:
    a, b = [1.0, 2.5, 3.0, 4.2], [0.0, 0.4, 1.3]
    delta = stats.delta_method({"a": a, "b": b}, lambda s: float(s["a"].mean() - s["b"].mean()))
    welch = stats.welch_t(a, b)
    assert (delta.estimate, delta.lo, delta.hi, delta.p_value) == (
        pytest.approx(welch.estimate), pytest.approx(welch.lo), pytest.approx(welch.hi), pytest.approx(welch.p_value))
    assert delta.n == (4, 3) and delta.test.startswith("delta-method t (dof ")


def test_delta_method_of_a_ratio_hand_worked() -> None:
    """100 (r̄ − p̄) / p̄: gradient 100/p̄ for r̄ and −100 r̄/p̄² for p̄, Welch–Satterthwaite dof."""
    r, p = [0.80, 0.82, 0.79], [0.50, 0.60, 0.55, 0.45]
    got = stats.delta_method({"R": r, "P": p}, lambda s: float(100 * (s["R"].mean() - s["P"].mean()) / s["P"].mean()))
    mr, mp = np.mean(r), np.mean(p)
    cr, cp = (100 / mp) ** 2 * np.var(r, ddof=1) / 3, (100 * mr / mp**2) ** 2 * np.var(p, ddof=1) / 4
    dof = (cr + cp) ** 2 / (cr**2 / 2 + cp**2 / 3)
    half = sps.t.ppf(0.975, dof) * math.sqrt(cr + cp)
    est = 100 * (mr - mp) / mp
    assert (got.estimate, got.lo, got.hi) == (pytest.approx(est), pytest.approx(est - half, rel=1e-6),
                                              pytest.approx(est + half, rel=1e-6))
    assert got.test == f"delta-method t (dof {dof:.1f})"
    assert math.isnan(stats.delta_method({"R": [0.8], "P": p}, lambda s: float(s["R"].mean())).lo)
    flat = stats.delta_method({"R": [2.0, 2.0]}, lambda s: float(s["R"].mean()))
    assert (flat.lo, flat.hi, flat.p_value) == (2.0, 2.0, 0.0)


def test_derived_interval_is_the_wider_of_bootstrap_and_delta_method() -> None:
    """With 3 seeds the percentile bootstrap is narrower than the t-based interval: the union is the delta's."""
    samples = {"R": [0.80, 0.82, 0.79], "P": [0.50, 0.62, 0.55]}
    f = lambda s: float(100 * (s["R"].mean() - s["P"].mean()) / s["P"].mean())  # noqa: E731
    boot, delta = stats.bootstrap(samples, f), stats.delta_method(samples, f)
    got = stats.derived_interval(samples, f, unit=" %")
    assert delta.lo < boot.lo and boot.hi < delta.hi  # the bootstrap understates the spread at n = 3
    assert (got.lo, got.hi) == (min(boot.lo, delta.lo), max(boot.hi, delta.hi))
    assert got.estimate == pytest.approx(delta.estimate) and got.p_value == delta.p_value and got.n == (3, 3)
    assert got.test == (f"the wider of bootstrap [{boot.lo:+.2f} %, {boot.hi:+.2f} %] and {delta.test} "
                        f"[{delta.lo:+.2f} %, {delta.hi:+.2f} %]")
    assert math.isnan(stats.derived_interval({"R": [0.8], "P": [0.5, 0.6]}, f).lo)


def test_prediction_interval_hand_worked() -> None:
    lo, hi = stats.prediction_interval([1, 2, 3])
    half = 4.30265273 * 1.0 * math.sqrt(1 + 1 / 3)
    assert (lo, hi) == (pytest.approx(2 - half, abs=1e-6), pytest.approx(2 + half, abs=1e-6))


def cmp(lo: float, hi: float, n: tuple[int, ...] = (5,)) -> Comparison:
    return Comparison((lo + hi) / 2, lo, hi, n, "test")


@pytest.mark.parametrize(("lo", "hi", "sign", "verdict"), [
    (0.1, 2.0, 1, "reproduced"), (-2.0, -0.1, 1, "contradicted"), (-0.1, 2.0, 1, "inconclusive"),
    (-2.0, -0.1, -1, "reproduced"), (0.1, 2.0, -1, "contradicted"), (0.0, 2.0, 1, "inconclusive"),
])
def test_direction_verdict(lo: float, hi: float, sign: int, verdict: str) -> None:
    assert stats.direction_verdict(cmp(lo, hi), sign)[0] == verdict


def test_too_few_seeds_is_always_inconclusive() -> None:
    verdict, why = stats.direction_verdict(cmp(5.0, 6.0, (2,)))
    assert verdict == "inconclusive" and "fewer than 3" in why
    assert stats.value_verdict(cmp(0, 10, (5, 2)), 5)[0] == "inconclusive"
    assert stats.equivalence_verdict(cmp(-0.1, 0.1, (1,)), 1.0)[0] == "inconclusive"
    assert stats.direction_verdict(cmp(5.0, 6.0, (3,)))[0] == "reproduced"  # 3 is enough
    with pytest.raises(ValueError):
        stats.direction_verdict(cmp(0, 1), 0)


def test_value_verdict() -> None:
    assert stats.value_verdict(cmp(25.0, 31.0), 28.0) == (
        "reproduced", "the 95 % interval meets 28 and lies between 0 and 56")
    assert stats.value_verdict(cmp(29.0, 31.0), 28.0)[0] == "contradicted"
    assert stats.value_verdict(cmp(28.0, 31.0), 28.0)[0] == "reproduced"  # bounds count as inside
    # a wide interval holding the claim and no effect at all decides nothing (ResNet-56 − ResNet-20: 1.3 pt)
    assert stats.value_verdict(cmp(-0.5, 3.2), 1.3) == (
        "inconclusive", "the 95 % interval meets 1.3 but also holds zero: too wide to pin the figure")
    assert stats.value_verdict(cmp(-0.5, 1.0), 1.3)[0] == "contradicted"  # 1.3 ruled out, zero or not
    assert stats.value_verdict(cmp(-0.5, 1.0), 1.3, 0.5)[0] == "inconclusive"  # ... unless 1.3 ± 0.5 is meant
    assert stats.value_verdict(cmp(-31.0, -25.0), -28.0)[0] == "reproduced"  # a negative claimed value


@pytest.mark.parametrize(("lo", "hi", "verdict"), [
    (-0.5, 0.9, "reproduced"), (1.2, 3.0, "contradicted"), (-3.0, -1.1, "contradicted"), (-1.5, 0.2, "inconclusive"),
])
def test_equivalence_verdict(lo: float, hi: float, verdict: str) -> None:
    assert stats.equivalence_verdict(cmp(lo, hi), 1.0)[0] == verdict


@pytest.mark.parametrize("sizes", [(5, 2), (2, 5), (3, 2), (2, 3)])
def test_too_few_seeds_in_either_arm_is_inconclusive_whatever_the_other_has(sizes: tuple[int, int]) -> None:
    """The seed-count rule reads the smaller arm: five seeds against two is still two."""
    clear = Comparison(1.0, 0.5, 1.5, sizes, "Welch t", 0.01)
    for verdict, why in (stats.direction_verdict(clear), stats.equivalence_verdict(clear, 5.0),
                         stats.value_verdict(clear, 1.0, 0.2)):
        assert verdict == "inconclusive" and why == f"n = {sizes[0]}/{sizes[1]} seed(s), fewer than 3", why
    enough = Comparison(1.0, 0.5, 1.5, tuple(max(3, n) for n in sizes), "Welch t", 0.01)
    assert stats.direction_verdict(enough)[0] == "reproduced"
    assert stats.equivalence_verdict(enough, 5.0)[0] == "reproduced"
    assert stats.value_verdict(enough, 1.0, 0.2)[0] == "reproduced"


def test_unequal_arms_keep_their_own_sizes_and_degrees_of_freedom() -> None:
    """Welch with 5 seeds against 3: the sizes are (5, 3) in that order, the dof Welch–Satterthwaite's."""
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 9.0]
    cmp = stats.welch_t(x, y)
    assert cmp.n == (5, 3)
    va, vb = np.var(x, ddof=1) / 5, np.var(y, ddof=1) / 3
    dof = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 2)
    half = sps.t.ppf(0.975, dof) * math.sqrt(va + vb)
    assert cmp.estimate == pytest.approx(3.0 - 5.0) and cmp.hi - cmp.estimate == pytest.approx(half)
    derived = stats.derived_interval({"a": x, "b": y}, lambda s: float(s["a"].mean() - s["b"].mean()), n_boot=200)
    assert derived.n == (5, 3) and derived.lo <= cmp.lo + 1e-9 and derived.hi >= cmp.hi - 1e-9


@pytest.mark.parametrize(("resnet", "plain", "lower", "expected"),
                         [(0.9, 0.8, False, 12.5), (0.8, 0.9, False, -100 / 9), (0.5, 1.0, True, 50.0),
                          (1.5, 1.0, True, -50.0)])
def test_improvement_pct_is_relative_to_the_plain_net(resnet: float, plain: float, lower: bool,
                                                      expected: float) -> None:
    assert stats.improvement_pct(resnet, plain, lower_is_better=lower) == pytest.approx(expected)
