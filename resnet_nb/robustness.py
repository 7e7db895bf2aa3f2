"""Is a verdict robust? Every line of the ledger judged again under each alternative reading of
:data:`resnet_nb.readings.READINGS` (fixed before any number was read): **robust** when every reading
gives the planned verdict, **fragile** otherwise, with the readings that change it. And for claims of
similarity, how many seeds a verdict would need at the spread the records show.

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import pandas as pd
from scipy import stats as sps

from .claims import Finding, Similar, ledger
from .readings import PLANNED, READINGS, Reading, holm_levels
from .stats import MIN_SEEDS, seeds_for_similarity


def _p_value(f: Finding) -> float:
    return math.nan if f.comparison is None else f.comparison.p_value


def _line(f: Finding) -> str:
    return f.line


def holm_reading(planned: Sequence[Finding], reading: Reading, key: Callable[[Finding], str] = _line) -> Reading:
    """``reading`` with each tested line's Holm level (by ``key``, the ledger's line id unless told),
    ranked by the planned p-values against zero."""
    levels = holm_levels({key(f): _p_value(f) for f in planned if f.verdict != "not tested"})
    return dataclasses.replace(reading, levels=levels)


def mark_robustness(planned: Sequence[Finding], others: dict[str, list[Finding]],
                    key: Callable[[Finding], str] = _line) -> list[Finding]:
    """``planned`` with each tested line marked robust (every other reading gives its verdict) or fragile,
    with the flips; ``others`` holds the same lines, in the same order, under each reading (by its name)."""
    marked = []
    for i, f in enumerate(planned):
        if f.verdict == "not tested":
            marked.append(f)
            continue
        flips = []
        for name, findings in others.items():
            g = findings[i]
            assert key(g) == key(f)  # one list of lines, one order
            if g.verdict != f.verdict:
                flips.append(f"{name}: {g.verdict} (n = {g.n_text()})")
        marked.append(dataclasses.replace(f, robustness="fragile" if flips else "robust", flips=tuple(flips)))
    return marked


def robust_ledger(df: pd.DataFrame, paper_df: pd.DataFrame | None = None,
                  readings: Sequence[Reading] = READINGS, n_boot: int = 10_000
                  ) -> tuple[list[Finding], dict[str, list[Finding]]]:
    """The planned ledger with each line's robustness and flips filled in, and the ledger under each
    alternative reading (by its name). A line not tested under the planned reading stays unmarked."""
    planned = ledger(df, paper_df, PLANNED, n_boot)
    others: dict[str, list[Finding]] = {}
    for r in readings:
        r = holm_reading(planned, r) if r.holm else r
        others[r.name] = ledger(df, paper_df, r, n_boot)
    return mark_robustness(planned, others), others


def robustness_table(findings: Sequence[Finding], others: dict[str, list[Finding]]) -> pd.DataFrame:
    """One row per tested line: the planned verdict, the verdict under each reading (``≠`` marks a change),
    robust or fragile."""
    rows = []
    for i, f in enumerate(findings):
        if f.verdict == "not tested":
            continue
        row = {"category": f.category, "source": f.claim.source, "compared": f.scope, "planned": f.verdict}
        for name, fs in others.items():
            g = fs[i]
            row[name] = g.verdict if g.verdict == f.verdict else f"≠ {g.verdict}"
        row["robustness"] = f.robustness
        rows.append(row)
    return pd.DataFrame(rows, columns=["category", "source", "compared", "planned", *others, "robustness"])


def robustness_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """Tested lines that are robust and fragile (each line once)."""
    tested = [f for f in findings if f.verdict != "not tested"]
    return {"robust": sum(f.robustness == "robust" for f in tested),
            "fragile": sum(f.robustness == "fragile" for f in tested)}


def robustness_sentence(findings: Sequence[Finding], readings: Sequence[Reading] = READINGS) -> str:
    """One Markdown sentence: how many tested lines keep their verdict under every reading, per category."""
    tested = [f for f in findings if f.verdict != "not tested"]
    if not tested:
        return "No line has records yet: nothing to re-judge."
    parts = []
    for category in ("report claim", "paper claim", "our extension"):
        mine = [f for f in tested if f.category == category]
        if mine:
            robust = sum(f.robustness == "robust" for f in mine)
            parts.append(f"{robust} of {len(mine)} {category} line{'s' if len(mine) > 1 else ''} robust")
    names = "; ".join(r.name for r in readings)
    return (f"**Robustness.** Each tested line judged again under {len(readings)} other readings ({names}): "
            f"{', '.join(parts)}. The others are fragile: a reading changes their verdict (the table below says "
            "which).")


def similarity_seeds(findings: Sequence[Finding]) -> pd.DataFrame:
    """For each similarity line: the measured mean difference and its spread over seeds (paired), and the
    seeds a "within ± margin" verdict would need if both stayed as measured (none: never, the mean
    difference itself is at or beyond the margin)."""
    rows = []
    for f in findings:
        if not isinstance(f.rule, Similar) or f.comparison is None or len(f.comparison.n) != 1:
            continue
        c, n = f.comparison, f.comparison.n[0]
        if n < 2 or math.isnan(c.lo):
            continue
        std = (c.hi - c.estimate) * math.sqrt(n) / float(sps.t.ppf(0.5 + c.level / 2, n - 1))
        need = seeds_for_similarity(c.estimate, std, f.rule.margin, c.level)
        rows.append({"compared": f.scope, "n": n, "mean difference (pt)": round(c.estimate, 2),
                     "spread over seeds (pt, sd)": round(std, 2),
                     "seeds needed for ± 1 pt": "never (the mean is outside the band)" if need is None else need})
    return pd.DataFrame(rows, columns=["compared", "n", "mean difference (pt)", "spread over seeds (pt, sd)",
                                       "seeds needed for ± 1 pt"])


def similarity_sentence(table: pd.DataFrame, margin: float = 1.0) -> str:
    """One Markdown sentence on :func:`similarity_seeds`."""
    if table.empty:
        return "No similarity line has an interval yet."
    needs = [v for v in table["seeds needed for ± 1 pt"] if isinstance(v, int)]
    n = int(table["n"].max())
    text = (f"**How many seeds would *very similar* need?** A verdict of ± {margin:g} point needs the whole 95 % "
            "interval inside the band")
    if needs:
        reach = "out of reach" if min(needs) > n else "within reach for some depths"
        text += (f"; at the mean differences and spreads these records show, that takes {min(needs)} to "
                 f"{max(needs)} seeds per option (paired), so at n = {n} it is {reach}")
    never = int((table["seeds needed for ± 1 pt"].astype(str).str.startswith("never")).sum())
    if never:
        text += f"; for {never} depth(s) no number of seeds would do, their mean difference being beyond the band"
    return text + (f". An *inconclusive* here is what {n} seeds can say, not evidence that the options differ "
                   f"(a verdict needs at least {MIN_SEEDS} seeds, and far more for a band this narrow).")
