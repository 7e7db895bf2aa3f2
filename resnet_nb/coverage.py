"""Coverage of the records: which runs of a grid have one, what is missing (and the command that
makes it), and where the records came from (hardware, precision, data, wall time).

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .vocab import STAND_INS, grid_runs, stand_in_run
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


def grid_status(df: pd.DataFrame, grid: str, other: pd.DataFrame | None = None) -> str:
    """One Markdown sentence: how many runs of ``grid`` have a record, and the command that makes the rest.

    ``other``: the records of the grid whose runs stand in for ``grid``'s (:data:`grids.STAND_INS`).
    One of them counts for a missing run when it is that run at the precision the run fixes, made on a
    machine that made records of ``grid`` itself, as :func:`grids.stand_in` decides for ``grid list``.
    """
    runs = grid_runs(grid)
    own = set(df["run_id"]) if len(df) else set()
    done = sum(r.run_id in own for r in runs)
    if done == len(runs):
        return f"Grid `{grid}`: all {len(runs)} runs have a record."
    name = STAND_INS.get(grid)
    rest = (f"`python -m resnet_nb grid run {grid}` makes the rest (`python -m resnet_nb grid list {grid}` estimates "
            "how long on your machine; on a GPU, `scripts/gpu_session.sh`).")
    if name is None:
        return f"Grid `{grid}`: {done} of {len(runs)} runs have a record; {rest}"
    devices = sorted(set(df["device_name"])) if len(df) else []
    made = set() if other is None or not len(other) else set(
        zip(other["run_id"], other["precision"], other["device_name"]))
    twins = [(r, stand_in_run(r)) for r in runs if r.run_id not in own]
    covered = sum(twin is not None and any((twin.run_id, r.precision, d) in made for d in devices)
                  for r, twin in twins)
    text = f"Grid `{grid}`: {done} of {len(runs)} runs have a record of their own"
    if covered:
        text += (f", and grid `{name}`'s records stand in for {covered} more (the same run at the same precision, "
                 f"made on {' / '.join(devices)}, where this grid's own runs ran; `grid list` marks them covered)")
    if done + covered == len(runs):
        return text + (f": none is left to train on that machine. On another, `python -m resnet_nb grid run {grid}` "
                       "makes its own pairs (`python -m resnet_nb grid list {grid}` says which and how long).")
    return text + (f"; where grid `{name}` has made one of them at the same precision on the machine you run on, its "
                   f"record stands in (`grid list` marks the run covered); {rest}")
