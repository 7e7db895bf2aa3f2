"""Readings of the records: which epoch's value a run contributes, which test compares two arms,
which seeds count, at which level. The ledger (:mod:`resnet_nb.claims`) is judged under the planned
reading and again under each alternative of :data:`READINGS`, fixed here before any number was read
(:mod:`resnet_nb.robustness` compares the verdicts).

* epoch: the run's value at its **final** epoch (planned), at its **best** epoch (highest accuracy,
  lowest loss), or the **mean of its last 3** epochs;
* test: **paired** t over the seeds both arms have (planned; same seed, same initial weights and
  batch order) or **Welch** t on the same seeds taken as independent samples;
* seeds: all of them (planned), or only the seeds whose records in the comparison were all made in
  **one setting** (device type and precision): a seed whose arms ran on a GPU in fp32 and on a CPU in
  bf16 differs by its arithmetic as well as by the compared factor;
* level: 95 % (planned), or the **Holm** step-down level of the line's rank among the ledger's tests
  (its p-value against zero ranks it; the k-th smallest of m is judged at 1 − 0.05 / (m − k + 1)).

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from . import stats
from .stats import LEVEL, Comparison

EpochRule = Literal["final", "best", "last3"]
TestRule = Literal["paired", "welch"]


@dataclass(frozen=True)
class Reading:
    """One way of reading the records; the defaults are the planned reading."""

    name: str = "planned: final epoch, paired t, all seeds, 95 %"
    epoch: EpochRule = "final"
    test: TestRule = "paired"
    same_setting: bool = False
    holm: bool = False
    levels: Mapping[str, float] = field(default_factory=dict)  # per-line level (Holm), by line id

    def level(self, line: str) -> float:
        return self.levels.get(line, LEVEL)


PLANNED = Reading()
READINGS: tuple[Reading, ...] = (
    Reading("best epoch", epoch="best"),
    Reading("mean of the last 3 epochs", epoch="last3"),
    Reading("Welch t instead of paired", test="welch"),
    Reading("only seeds made in one setting", same_setting=True),
    Reading("Holm-adjusted over the ledger", holm=True),
)


def _scale(metric: str) -> float:
    return 100.0 if metric.endswith("_acc") else 1.0


def run_values(df: pd.DataFrame, model: str, metric: str, epoch: EpochRule = "final") -> pd.DataFrame:
    """One row per seed of ``model``: ``value`` (``metric`` by the epoch rule, points for accuracies) and
    ``setting`` (device type and precision of the record). Empty when ``model`` has no record."""
    sub = df[df["model"] == model] if len(df) else df
    if sub.empty:
        return pd.DataFrame({"value": pd.Series(dtype=float), "setting": pd.Series(dtype=str)})
    sub = sub.sort_values(["seed", "epoch"])
    groups = sub.groupby("seed")
    if epoch == "final":
        values = groups[metric].last()
    elif epoch == "best":
        values = groups[metric].max() if metric.endswith("_acc") else groups[metric].min()
    elif epoch == "last3":
        values = groups[metric].apply(lambda s: float(s.tail(3).mean()))
    else:
        raise ValueError(f"unknown epoch rule {epoch!r}")
    last = groups.last()
    setting = last["device"].astype(str) + " " + last["precision"].astype(str)
    return pd.DataFrame({"value": values.astype(float) * _scale(metric), "setting": setting})


def at_epoch(df: pd.DataFrame, model: str, metric: str, back: int) -> pd.Series:
    """``metric`` of each run of ``model`` ``back`` epochs before its last (0: the last), by seed, in points
    for accuracies; runs shorter than that are left out."""
    sub = df[df["model"] == model] if len(df) else df
    if sub.empty:
        return pd.Series(dtype=float)
    sub = sub.sort_values(["seed", "epoch"])
    picked = sub.groupby("seed")[metric].apply(lambda s: float(s.iloc[-1 - back]) if len(s) > back else np.nan)
    return picked.dropna().astype(float) * _scale(metric)


def common_seeds(tables: Sequence[pd.DataFrame], same_setting: bool) -> list[int]:
    """The seeds every table has; with ``same_setting``, only those whose rows share one setting."""
    if not tables:
        return []
    seeds = set(tables[0].index)
    for t in tables[1:]:
        seeds &= set(t.index)
    if same_setting:
        seeds = {k for k in seeds if len({t.loc[k, "setting"] for t in tables}) == 1}
    return sorted(seeds)


def compare(x: Sequence[float], y: Sequence[float], test: TestRule, level: float) -> Comparison:
    """x − y by the reading's test."""
    return stats.paired_t(x, y, level) if test == "paired" else stats.welch_t(x, y, level)


def paired(df: pd.DataFrame, x_model: str, y_model: str, metric: str, reading: Reading = PLANNED,
           level: float = LEVEL) -> Comparison | None:
    """x − y over the seeds both have (points for accuracies) under ``reading``; None: no common seed."""
    x, y = (run_values(df, m, metric, reading.epoch) for m in (x_model, y_model))
    seeds = common_seeds([x, y], reading.same_setting)
    if not seeds:
        return None
    return compare(list(x.loc[seeds, "value"]), list(y.loc[seeds, "value"]), reading.test, level)


def mean_over(df: pd.DataFrame, x_models: Sequence[str], y_models: Sequence[str], metric: str,
              reading: Reading = PLANNED, level: float = LEVEL) -> Comparison | None:
    """Per seed, (mean of the x models) − (mean of the y models); seeds with every model only."""
    xs = [run_values(df, m, metric, reading.epoch) for m in x_models]
    ys = [run_values(df, m, metric, reading.epoch) for m in y_models]
    seeds = common_seeds(xs + ys, reading.same_setting)
    if not seeds:
        return None
    xm = [float(np.mean([t.loc[k, "value"] for t in xs])) for k in seeds]
    ym = [float(np.mean([t.loc[k, "value"] for t in ys])) for k in seeds]
    return compare(xm, ym, reading.test, level)


def samples(df: pd.DataFrame, models: Sequence[str], metric: str, reading: Reading = PLANNED
            ) -> dict[str, list[float]] | None:
    """Each model's per-seed values (for a derived figure over independent samples); None: one is missing.
    With ``same_setting`` only the seeds whose records of all ``models`` share one setting count."""
    tables = {m: run_values(df, m, metric, reading.epoch) for m in models}
    if any(t.empty for t in tables.values()):
        return None
    if reading.same_setting:
        seeds = common_seeds(list(tables.values()), True)
        return {m: list(t.loc[seeds, "value"]) for m, t in tables.items()} if seeds else None
    return {m: list(t["value"]) for m, t in tables.items()}


def holm_levels(p_values: Mapping[str, float], alpha: float = 1 - LEVEL) -> dict[str, float]:
    """Holm's step-down levels: the k-th smallest of m p-values (k from 1) is judged at 1 − α / (m − k + 1).
    NaN p-values (no test) take no rank and keep the plain level."""
    ranked = sorted((p, key) for key, p in p_values.items() if not np.isnan(p))
    m = len(ranked)
    levels = {key: 1 - alpha / (m - k) for k, (_, key) in enumerate(ranked)}
    return {key: levels.get(key, 1 - alpha) for key in p_values}
