"""Coverage of the records: which runs of a grid have one, what is missing (and the command that
makes it), and where the records came from (hardware, precision, data, wall time).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .grids import STAND_INS, grid_runs
from .stats import MIN_SEEDS


def expected_seeds(grid: str) -> dict[str, int]:
    """Seeds per model key that the named grid runs by default."""
    counts: dict[str, int] = {}
    for run in grid_runs(grid):
        counts[run.model] = counts.get(run.model, 0) + 1
    return counts


def coverage(df: pd.DataFrame, models: Sequence[str], grid: str = "report") -> pd.DataFrame:
    """Per model: finished runs found (distinct seeds) and runs the grid asks for."""
    want = expected_seeds(grid)
    sub = df[df["grid"] == grid] if len(df) else df
    found = sub.groupby("model")["seed"].nunique() if len(sub) else pd.Series(dtype=int)
    return pd.DataFrame({"model": list(models), "seeds found": [int(found.get(m, 0)) for m in models],
                         "seeds in grid": [want.get(m, 0) for m in models]}).set_index("model")


def missing_note(df: pd.DataFrame, models: Sequence[str], grid: str = "report") -> str:
    """One Markdown sentence: all records present, or which are missing and the command that makes them."""
    cov = coverage(df, models, grid)
    absent = [m for m in cov.index if cov.loc[m, "seeds found"] == 0]
    partial = [m for m in cov.index if 0 < cov.loc[m, "seeds found"] < cov.loc[m, "seeds in grid"]]
    if not absent and not partial:
        seeds = sorted(set(cov["seeds found"]))
        return (f"Records: all {len(cov)} configurations shown here are complete "
                f"({' / '.join(map(str, seeds))} seeds each, grid `{grid}`).")
    parts = []
    if absent and (len(absent) > 4 or set(absent) >= set(expected_seeds(grid))):
        parts.append(f"**No records yet** for {', '.join(absent)}: run `python -m resnet_nb grid run {grid}` "
                     "(it trains every run of the grid that has no record).")
    elif absent:
        patterns = ",".join(f"{m}*" for m in absent)
        parts.append(f"**No records yet** for {', '.join(absent)}: run "
                     f"`python -m resnet_nb grid run {grid} --only '{patterns}'`.")
    if partial:
        have = ", ".join(f"{m} ({cov.loc[m, 'seeds found']} of {cov.loc[m, 'seeds in grid']} seeds)" for m in partial)
        parts.append(f"Incomplete: {have}; `python -m resnet_nb grid run {grid}` finishes them.")
    return " ".join(parts)


def seeds_note(df: pd.DataFrame, grid: str = "report", needed: int = MIN_SEEDS) -> str:
    """One Markdown sentence: how many configurations of ``grid`` have the ``needed`` seeds a verdict needs,
    and which have fewer (with their count)."""
    cov = coverage(df, list(expected_seeds(grid)), grid)
    short = cov[cov["seeds found"] < needed]
    text = f"**Seeds.** {len(cov) - len(short)} of {len(cov)} configurations of grid `{grid}` have the {needed} seeds a verdict needs"
    if short.empty:
        return text + "."
    listed = ", ".join(f"{m} ({int(n)})" for m, n in short["seeds found"].items())
    return (text + f"; these have fewer: {listed}. The ledger marks every finding that rests on them inconclusive "
            "rather than reading a trend into single runs.")


def provenance_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per grid, device and precision: runs, models, seeds, dataset variant, total and mean wall time."""
    columns = ["grid", "device", "precision", "dataset", "runs", "models", "seeds", "total hours", "mean minutes per run"]
    if df.empty:
        return pd.DataFrame(columns=columns).set_index("grid")
    runs = df.drop_duplicates("run_id")
    rows = []
    for (grid, dev, prec, variant), g in runs.groupby(["grid", "device_name", "precision", "dataset_variant"]):
        rows.append({"grid": grid, "device": dev, "precision": prec, "dataset": f"CIFAR-10 ({variant})",
                     "runs": len(g), "models": g["model"].nunique(),
                     "seeds": f"{g['seed'].min()}–{g['seed'].max()}" if g["seed"].nunique() > 1 else str(g["seed"].iloc[0]),
                     "total hours": round(g["wall_seconds"].sum() / 3600, 2),
                     "mean minutes per run": round(g["wall_seconds"].mean() / 60, 1)})
    return pd.DataFrame(rows, columns=columns).set_index("grid")


def hardware_text(df: pd.DataFrame) -> str:
    """``NVIDIA H100 (bf16), ...``: the devices and precisions of the records, for prose."""
    if df.empty:
        return "no records yet"
    pairs = df[["device_name", "precision"]].drop_duplicates().sort_values(["device_name", "precision"])
    return ", ".join(f"{dev} ({prec})" for dev, prec in pairs.itertuples(index=False))


def grid_status(df: pd.DataFrame, grid: str) -> str:
    """One Markdown sentence: how many runs of ``grid`` have a record, and the command that makes the rest."""
    runs = grid_runs(grid)
    done = len(set(df["run_id"]) & {r.run_id for r in runs}) if len(df) else 0
    if done == len(runs):
        return f"Grid `{grid}`: all {len(runs)} runs have a record."
    other = STAND_INS.get(grid)
    borrowed = (f" of their own; where grid `{other}` has made one of them at the same precision on the machine "
                "you run on, its record stands in (`grid list` marks the run covered)") if other else ""
    return (f"Grid `{grid}`: {done} of {len(runs)} runs have a record{borrowed}; `python -m resnet_nb grid run "
            f"{grid}` makes the rest (`python -m resnet_nb grid list {grid}` estimates how long on your machine; "
            "on a GPU, `scripts/gpu_session.sh`).")
