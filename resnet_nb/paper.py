"""The paper's protocol in the book: Table 6 side by side (ours, the paper's, the akamaster nets on
our test copy), the degradation verdict per protocol, and Figure 7 from trained nets.

Everything is built from records (``results/paper/``, ``results/report/``, ``results/akamaster/``);
a missing piece says what is missing and the command that makes it.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .akamaster import IMAGENET_MEAN, IMAGENET_STD, checkpoints, load_akamaster
from .claims import PAPER_PARAMS, PAPER_TEST_ERROR, Claim, Finding, final_values, finding, more, paired
from .data import Cifar10
from .grids import PAPER_PRIORITY, grid_runs
from .models import ModelSpec
from .readings import PLANNED, READINGS, Reading
from .readings import paired as paired_reading
from .records import summarize
from .robustness import holm_reading, mark_robustness
from .train import get_recipe

PAPER_DEPTHS = (20, 32, 44, 56, 110)
GPU_COMMAND = "bash scripts/gpu_paper_session.sh 540 $OUT 3"


def grid_command(model: str) -> str:
    """The command that makes the paper-grid records of ``model`` (any device; on a GPU seeds train together)."""
    return f"python -m resnet_nb grid run paper --only '{model}_paper_s*'"


def _ours(df: pd.DataFrame, model: str) -> str:
    want = sum(r.model == model for r in grid_runs("paper"))
    summary = summarize(df[df["model"] == model], metrics=("test_acc",)) if len(df) else pd.DataFrame()
    if summary.empty:
        return f"missing (0 of {want} seeds)"
    row = summary.iloc[0]
    mean, std, n = 100 * (1 - row["test_acc_mean"]), 100 * row["test_acc_std"], int(row["test_acc_n"])
    spread = "" if n < 2 or math.isnan(std) else f" ± {std:.2f}"
    return f"{mean:.2f}{spread} (n={n}" + (f" of {want})" if n < want else ")")


def table6(df: pd.DataFrame, akamaster: list[dict[str, Any]]) -> pd.DataFrame:
    """Test error (%) per net: ours (mean ± std over seeds, paper recipe), the paper's Table 6, akamaster's
    published number, and akamaster's checkpoint evaluated on our (JPEG) test copy."""
    aka = {r["model"]: r for r in akamaster}
    rows = []
    for spec in sorted(PAPER_PRIORITY, key=lambda s: (s.arch != "resnet", s.depth)):
        rec = aka.get(spec.key)
        jpeg = f"{rec['test_error_pct']:.2f}" if rec else ("no checkpoint" if spec.arch == "resnet" else "—")
        published = f"{rec['published_test_error_pct']:.2f}" if rec and rec["published_test_error_pct"] else "—"
        effect = f"+{rec['test_error_pct'] - rec['published_test_error_pct']:.2f}" if rec else "—"
        rows.append({"model": spec.key, "params (paper)": PAPER_PARAMS.get(spec.depth, "—") if spec.arch == "resnet"
                     else "same as ResNet",
                     "paper (%)": f"{PAPER_TEST_ERROR[spec.depth]:.2f}" if spec.arch == "resnet" else "— (Fig. 6 only)",
                     "ours, paper recipe (%)": _ours(df, spec.key),
                     "akamaster, published (%)": published, "akamaster on our JPEG copy (%)": jpeg,
                     "JPEG copy effect (points)": effect})
    return pd.DataFrame(rows).set_index("model")


def missing_commands(df: pd.DataFrame) -> str:
    """Markdown: each paper-grid config without all its seeds, and the command that makes them."""
    lines = []
    for spec in PAPER_PRIORITY:
        want = sum(r.model == spec.key for r in grid_runs("paper"))
        have = int(df[df["model"] == spec.key]["seed"].nunique()) if len(df) else 0
        if have < want:
            lines.append(f"- {spec.key} ({have} of {want} seeds): `{grid_command(spec.key)}`")
    if not lines:
        return "Every run of the paper grid has its record."
    return ("Missing, in the grid's priority order (all at once: `python -m resnet_nb grid run paper`; "
            f"one GPU lease: `{GPU_COMMAND}`):\n\n" + "\n".join(lines))


def degradation_verdict(df: pd.DataFrame, grid: str) -> str:
    """One sentence: does plain-56 train worse than plain-20 under ``grid``'s records, judged by the book's
    verdict rule (paired over seeds, 95 % interval, at least 3 seeds: :mod:`resnet_nb.stats`)?"""
    from .claims import PAPER_CLAIMS, finding, more, paired

    sub = df[df["grid"] == grid] if len(df) else df
    missing = [m for m in ("plain20", "plain56") if not len(sub) or m not in set(sub["model"])]
    if missing:
        return (f"**{grid} protocol:** no verdict yet, {', '.join(missing)} missing: "
                f"`python -m resnet_nb grid run {grid} --only '{','.join(m + '_*' for m in missing)}'`.")
    cmp = paired(sub, "plain20", "plain56", "train_acc")
    if cmp is None:
        return f"**{grid} protocol:** no verdict yet: plain-20 and plain-56 share no seed."
    f = finding(PAPER_CLAIMS["degradation"], grid, "training accuracy", cmp, more())
    return (f"**{grid} protocol:** final training accuracy plain-20 − plain-56 {f.estimate_text()} "
            f"(n = {f.n_text()}; {f.test_text()}) → degradation **{f.verdict}** ({f.reason}).")


def balanced_test_indices(data: Cifar10, n: int) -> torch.Tensor:
    """The first ``n // 10`` test images of every class in turn: the batch both Figure 7 normalisations use."""
    per_class = max(1, n // 10)
    return torch.cat([torch.nonzero(data.test_y == c).flatten()[:per_class] for c in range(10)])


def imagenet_normalised(data: Cifar10, n: int = 500) -> torch.Tensor:
    """The first ``n`` test images of every class in turn (a balanced batch), normalised as akamaster trained."""
    x = data.test_x[balanced_test_indices(data, n)].float() / 255
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def akamaster_models(folder: Path) -> dict[str, torch.nn.Module]:
    """The published nets as our models, keyed like ours (``resnet20-A``)."""
    return {f"resnet{d}-A": load_akamaster(path, d)[0] for d, path in checkpoints(folder).items()}


def akamaster_folder() -> Path | None:
    """The checkpoint folder if this machine has it (``$RESNET_NB_AKAMASTER`` or the shared copy), else None."""
    from .akamaster import checkpoint_dir

    try:
        return checkpoint_dir()
    except FileNotFoundError:
        return None


def akamaster_responses(folder: Path, data: Cifar10, keys: tuple[str, ...] = ("resnet20-A", "resnet56-A"),
                        n: int = 500) -> pd.DataFrame:
    """Fig. 7 data: :func:`resnet_nb.analysis.response_table` of the published nets on ``n`` test images."""
    from .analysis import response_table

    nets = {k: m for k, m in akamaster_models(folder).items() if k in keys}
    return response_table(nets, imagenet_normalised(data, n))


# ---------------------------------------------------------------- the paper's recipe, shortened (paper8k)

SHORT_GRID = "paper8k"
FULL_GRID = "paper"
SHORT_DEPTHS = (20, 32, 44, 56)


def shortened_recipe_text() -> str:
    """Markdown: what the shortened grid changes in the paper's recipe (from the grid's own definition)."""
    run = grid_runs(SHORT_GRID)[0]
    short, full = run.recipe_obj(), get_recipe(run.recipe)
    assert short.iterations is not None and full.iterations is not None
    steps = math.ceil(50_000 / short.batch_size)
    drops = " and ".join(f"{round(f * short.iterations):,}" for f in short.lr_milestones)
    full_drops = " and ".join(f"{round(f * full.iterations):,}" for f in full.lr_milestones)
    return (f"**What is shortened.** The paper trains {full.iterations:,} iterations (about "
            f"{full.iterations / steps:.0f} epochs) and divides the learning rate by 10 at {full_drops}. The runs of "
            f"this chapter train **{short.iterations:,} iterations, 1/{full.iterations // short.iterations} of that** "
            f"(about {short.iterations / steps:.1f} epochs), dividing it at {drops}: the same fractions of the run. "
            "Everything else is the paper's recipe (below). Why: this book's runs are trained on two CPU cores, "
            "one run per core, and a full-length grid does not fit them (the cost table below gives the hours, "
            f"measured per run); the shortened grid of {len(grid_runs(SHORT_GRID))} runs fits the machine. What the shortening costs is "
            "measured, not assumed: ResNet-20 and plain-20 also train at full length.")


def _n_of(df: pd.DataFrame, model: str, grid: str) -> tuple[int, int]:
    want = sum(r.model == model for r in grid_runs(grid))
    have = int(df[df["model"] == model]["seed"].nunique()) if len(df) else 0
    return have, want


def _mean_sd(df: pd.DataFrame, model: str, grid: str, metric: str = "test_acc") -> str:
    """``error mean ± sd (n=k of K)`` in %, over the seeds of ``model`` in ``df``; ``not run`` without any."""
    have, want = _n_of(df, model, grid)
    if not have:
        return f"not run yet (0 of {want})"
    summary = summarize(df[df["model"] == model], metrics=(metric,)).iloc[0]
    mean, std = 100 * (1 - summary[f"{metric}_mean"]), 100 * summary[f"{metric}_std"]
    spread = "" if have < 2 or math.isnan(std) else f" ± {std:.2f}"
    return f"{mean:.2f}{spread} (n={have}" + (f" of {want})" if have < want else ")")


def _short_models() -> list[tuple[int, str]]:
    """(depth, model key) of the shortened grid's configurations, ResNets first, in the book's table order."""
    return [(d, ModelSpec(arch, d, "A" if arch == "resnet" else None).key)
            for arch in ("resnet", "plain") for d in SHORT_DEPTHS]


def table6_shortened(short: pd.DataFrame, full: pd.DataFrame, akamaster: list[dict[str, Any]]) -> pd.DataFrame:
    """Test error (%) per net: ours at 1/8 length (mean ± sd, n), ours at full length (the depth-20 anchors),
    the paper's Table 6, and the published akamaster nets (their number, and on our JPEG test copy)."""
    aka = {r["model"]: r for r in akamaster}
    rows = []
    for d, key in _short_models():
        rec = aka.get(key)
        full_text = _mean_sd(full, key, FULL_GRID) if len(full) and key in set(full["model"]) else (
            "not run (depth 20 only)" if d != 20 else "not finished yet")
        rows.append({"model": key,
                     "ours, 1/8 recipe: test error (%)": _mean_sd(short, key, SHORT_GRID),
                     "ours, 1/8 recipe: training error (%)": _mean_sd(short, key, SHORT_GRID, "train_acc"),
                     "ours, full length (%)": full_text,
                     "paper (%)": f"{PAPER_TEST_ERROR[d]:.2f}" if key.startswith("resnet") else "— (Fig. 6 only)",
                     "akamaster, published (%)": f"{rec['published_test_error_pct']:.2f}" if rec else "—",
                     "akamaster on our JPEG copy (%)": f"{rec['test_error_pct']:.2f}" if rec else "—"})
    return pd.DataFrame(rows).set_index("model")


def cost_table(short: pd.DataFrame, full: pd.DataFrame) -> pd.DataFrame:
    """Measured hours per run (sum of its epochs, one CPU thread) and what each grid would take.

    Full-length hours are measured where a full-length run finished, else 8x the 1/8 run (the same
    steps, eight times as many; evaluation after each epoch scales with it). ResNet-110, never run here,
    is scaled from ResNet-56 by multiply-accumulates per image.
    """
    ratio = _full_over_short()
    rows = []
    for arch in ("resnet", "plain"):
        for d in (*SHORT_DEPTHS, 110):
            if arch == "plain" and d == 110:
                continue
            key = ModelSpec(arch, d, "A" if arch == "resnet" else None).key
            short_h = _mean_hours(short, key)
            full_h = _mean_hours(full, key)
            basis = "measured" if not math.isnan(full_h) else "8 × the 1/8 run"
            if d == 110:
                short_h = _mean_hours(short, "resnet56-A") * _macs("resnet110-A") / _macs("resnet56-A")
                basis = "scaled from ResNet-56 by MACs"
            full_est = full_h if not math.isnan(full_h) else short_h * ratio
            have, want = _n_of(short, key, SHORT_GRID) if d != 110 else (0, 0)
            rows.append({"model": key, "1/8 runs done": f"{have} of {want}" if want else "not in the grid",
                         "hours per 1/8 run": short_h, "hours per full run": full_est, "full-length basis": basis,
                         "lane-hours, 3 seeds at full length": 3 * full_est})
    return pd.DataFrame(rows).set_index("model")


def _full_over_short() -> float:
    short = grid_runs(SHORT_GRID)[0].recipe_obj()
    return (get_recipe(FULL_GRID).iterations or 0) / (short.iterations or 1)


def _mean_hours(df: pd.DataFrame, model: str) -> float:
    sub = df[df["model"] == model] if len(df) else df
    return float(sub.groupby("run_id")["wall_seconds"].first().mean() / 3600) if len(sub) else math.nan


def _macs(key: str) -> int:
    from .models import build_model, count_macs

    return count_macs(build_model(ModelSpec.from_key(key)))


# The paper's CIFAR-10 claims, as the shortened grid tests them (ledger rule: paired over seeds, 95 %
# interval, at least 3 seeds). Fixed before any paper8k record existed: training error for degradation
# (the paper's claim is about optimisation), test error for depth and for ResNet vs plain (Table 6).
SHORT_CLAIMS = {
    "degradation": Claim("degradation", "paper §4.2, Fig. 6 (left)",
                         "Deeper plain nets have higher training error (the degradation problem).", "10_paper_protocol"),
    "resnet_depth": Claim("resnet_depth", "paper §4.2, Table 6, Fig. 6 (middle)",
                          "Deeper ResNets reach lower error: 8.75 % (20 layers) … 6.97 % (56 layers).",
                          "10_paper_protocol"),
    "resnet_vs_plain": Claim("resnet_vs_plain", "paper §4.2, Fig. 6",
                             "At every depth the ResNet has lower error than the plain net.", "10_paper_protocol"),
}
DEPTH_STEPS = ((20, 32), (32, 44), (44, 56), (20, 56))


def _short_comparisons() -> list[tuple[Claim, str, str, str, str, str]]:
    """(claim, scope, measure, x model, y model, metric) of every comparison, x − y, in the chapter's order."""
    c, train, test = SHORT_CLAIMS, "final training accuracy, points", "final test accuracy, points"
    return ([(c["degradation"], f"plain-{a} − plain-{b}", train, f"plain{a}", f"plain{b}", "train_acc")
             for a, b in DEPTH_STEPS]
            + [(c["resnet_depth"], f"ResNet-{b} − ResNet-{a}", test, f"resnet{b}-A", f"resnet{a}-A", "test_acc")
               for a, b in DEPTH_STEPS]
            + [(c["resnet_vs_plain"], f"depth {d}: ResNet − plain", measure, f"resnet{d}-A", f"plain{d}", metric)
               for measure, metric in ((test, "test_acc"), (train, "train_acc")) for d in SHORT_DEPTHS])


def _comparison_key(f: Finding) -> str:
    """A comparison's identity across readings (ResNet vs plain is tested on two measures per depth)."""
    return _key(f.claim, f.scope, f.measure)


def _key(claim: Claim, scope: str, measure: str) -> str:
    return f"{claim.key}|{scope}|{measure}"  # Finding.line, then the measure


def shortened_findings(df: pd.DataFrame, reading: Reading = PLANNED) -> list[Finding]:
    """Every comparison of :data:`SHORT_CLAIMS` on the records ``df`` (either protocol: the same tests),
    judged under ``reading`` (the planned one unless told: final epoch, paired t, 95 %)."""
    return [finding(claim, scope, measure,
                    paired_reading(df, x, y, metric, reading, reading.level(_key(claim, scope, measure))), more())
            for claim, scope, measure, x, y, metric in _short_comparisons()]


def shortened_robustness(df: pd.DataFrame) -> tuple[list[Finding], dict[str, list[Finding]]]:
    """The planned findings marked robust or fragile, and the findings under each alternative reading of
    :data:`resnet_nb.readings.READINGS` (fixed before any record existed; Holm over this chapter's comparisons)."""
    planned = shortened_findings(df)
    others: dict[str, list[Finding]] = {}
    for r in READINGS:
        if r.holm:
            r = dataclasses.replace(holm_reading(planned, r, _comparison_key),
                                    name="Holm-adjusted over these comparisons")
        others[r.name] = shortened_findings(df, r)
    return mark_robustness(planned, others, _comparison_key), others


def shortened_robustness_table(findings: list[Finding], others: dict[str, list[Finding]]) -> pd.DataFrame:
    """One row per tested comparison: the planned verdict, the verdict under each reading (``≠`` marks a
    change) and robust or fragile."""
    rows = []
    for i, f in enumerate(findings):
        if f.comparison is None:
            continue
        row = {"comparison": f.scope, "measure": f.measure.split(",")[0], "planned": f.verdict}
        for name, fs in others.items():
            row[name] = fs[i].verdict if fs[i].verdict == f.verdict else f"≠ {fs[i].verdict}"
        rows.append(row | {"robustness": f.robustness})
    return pd.DataFrame(rows, columns=["comparison", "measure", "planned", *others, "robustness"])


def shortened_robustness_text(findings: list[Finding], others: dict[str, list[Finding]]) -> str:
    """Markdown: how many tested comparisons keep their verdict under every reading, and what changes the others."""
    tested = [f for f in findings if f.comparison is not None]
    if not tested:
        return "No comparison has records yet: nothing to judge again."
    fragile = [f for f in tested if f.robustness == "fragile"]
    text = (f"**Robustness.** Each tested comparison judged again under {len(others)} other readings "
            f"({'; '.join(others)}): {len(tested) - len(fragile)} of {len(tested)} keep their planned verdict under "
            "every one of them.")
    if fragile:
        text += " Fragile: " + "; ".join(f"{f.scope} ({f.measure.split(',')[0]}, planned **{f.verdict}**): "
                                          + ", ".join(f.flips) for f in fragile) + "."
    return text


def protocol_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The same comparisons under several protocols side by side: ``estimate [95 % CI] (n) → verdict``."""
    per = {label: shortened_findings(df) for label, df in frames.items()}
    first = next(iter(per.values()))
    rows = []
    for i, f in enumerate(first):
        row = {"claim": f.claim.key.replace("_", " "), "comparison": f.scope, "measure": f.measure}
        for label, findings in per.items():
            g = findings[i]
            row[label] = "not run yet" if g.comparison is None else \
                f"{g.estimate_text()} (n={g.n_text()}) → {g.verdict}"
        rows.append(row)
    return pd.DataFrame(rows)


def claim_summary(findings: list[Finding], key: str) -> str:
    """One sentence per claim: at how many of its comparisons it is reproduced, and which."""
    rows = [f for f in findings if f.claim.key == key]
    tested = [f for f in rows if f.comparison is not None]
    parts = ", ".join(f"{f.scope} ({f.measure.split(',')[0]}): **{f.verdict}**" for f in tested)
    if not tested:
        return f"*{SHORT_CLAIMS[key].text}* No records yet."
    counts = {v: sum(f.verdict == v for f in tested) for v in ("reproduced", "contradicted", "inconclusive")}
    missing = len(rows) - len(tested)
    tail = f"; {missing} comparison(s) await their records" if missing else ""
    return (f"*{SHORT_CLAIMS[key].text}* Reproduced at {counts['reproduced']} of {len(rows)} comparisons, "
            f"contradicted at {counts['contradicted']}, inconclusive at {counts['inconclusive']}{tail}: {parts}.")


def shortening_table(short: pd.DataFrame, full: pd.DataFrame, models: tuple[str, ...] = ("resnet20-A", "plain20"),
                     seed: int = 0) -> pd.DataFrame:
    """Final errors of the same net and seed at 1/8 and at full length (one run each: no interval)."""
    rows = []
    for model in models:
        for metric, what in (("test_acc", "test error (%)"), ("train_acc", "training error (%)")):
            vals = {}
            for label, df in (("1/8 length", short), ("full length", full)):
                v = final_values(df, model, metric)
                vals[label] = 100 * (1 - float(v[seed])) if seed in v.index else math.nan
            rows.append({"model": model, "measure": what, **vals,
                         "full − 1/8 (points)": vals["full length"] - vals["1/8 length"]})
    return pd.DataFrame(rows)


SETTLE_LAST_EPOCHS = 3


def _phase_ends(run: pd.DataFrame) -> list[float]:
    """A run's (rows sorted by epoch) training accuracy at the last epoch that ends before each of its learning-rate drops, and at its
    final epoch (``nan`` for a drop that comes before the first epoch ends). The drops are the record's own."""
    ends = []
    for drop in run["lr_drops"].iloc[0]:
        before = run[run["iteration"] <= drop]
        ends.append(float(before["train_acc"].iloc[-1]) if len(before) else math.nan)
    return [*ends, float(run["train_acc"].iloc[-1])]


def settling_table(df: pd.DataFrame) -> pd.DataFrame:
    """Has each run settled where its schedule leaves it? Training accuracy (%, mean over seeds; the running
    accuracy of each epoch, augmented, in training mode) before each learning-rate drop and at the end, the gain
    over the last phase (after the last drop), and the largest move of any seed over its last epochs."""
    rows = []
    for _, key in _short_models():
        runs = [g.sort_values("epoch") for _, g in df[df["model"] == key].groupby("run_id")] if len(df) else []
        if not runs:
            continue
        ends = pd.DataFrame([_phase_ends(r) for r in runs])
        last = [r["train_acc"].iloc[-SETTLE_LAST_EPOCHS:] for r in runs]
        row: dict[str, Any] = {"model": key, "runs": len(runs)}
        for i in range(ends.shape[1] - 1):
            row[f"before drop {i + 1} (%)"] = 100 * ends[i].mean()
        row["final (%)"] = 100 * ends.iloc[:, -1].mean()
        row["last phase (points)"] = 100 * (ends.iloc[:, -1] - ends.iloc[:, -2]).mean()
        row[f"last {SETTLE_LAST_EPOCHS} epochs, largest move (points)"] = 100 * max(s.max() - s.min() for s in last)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def settling_text(df: pd.DataFrame) -> str:
    """What :func:`settling_table` says, and what it does not: where a longer schedule would leave the nets."""
    table = settling_table(df)
    if table.empty:
        return "No records of the shortened grid yet."
    gain, move = table["last phase (points)"], table[f"last {SETTLE_LAST_EPOCHS} epochs, largest move (points)"]
    text = (f"In the last phase of the run (after the second drop, at a hundredth of the "
            f"starting learning rate) the training accuracy of the {len(table)} configurations with records changes by "
            f"{gain.min():+.1f} to {gain.max():+.1f} points, and no run moves by more than {move.max():.1f} points "
            f"over its last {SETTLE_LAST_EPOCHS} epochs: each run ends where this schedule leaves it, not caught "
            "mid-climb. What this does not show is where the same nets would settle with eight times as many "
            "iterations before the drops.")
    if {"plain20", "plain56"} <= set(table.index):
        e20, e56 = (100 - table.loc[k, "final (%)"] for k in ("plain20", "plain56"))
        text += (f" That matters most for the deep plain nets: plain-56 ends at {e56:.1f} % training error against "
                 f"plain-20's {e20:.1f} %, so the shortened grid can show the sign of the degradation gap, while its "
                 "size at full length is not measured here (only depth 20 is trained at full length, below).")
    return text


def _depth_pairs(df: pd.DataFrame) -> list[tuple[Finding, Finding]]:
    """For each step of :data:`DEPTH_STEPS` with records: (deeper − shallower test accuracy, the same in
    training accuracy), each judged "the deeper net is better" by the chapter's rule."""
    claim, pairs = SHORT_CLAIMS["resnet_depth"], []
    for a, b in DEPTH_STEPS:
        scope, x, y = f"ResNet-{b} − ResNet-{a}", f"resnet{b}-A", f"resnet{a}-A"
        test, train = (finding(claim, scope, measure, paired(df, x, y, metric), more())
                       for measure, metric in (("final test accuracy, points", "test_acc"),
                                               ("final training accuracy, points", "train_acc")))
        if test.comparison is not None and train.comparison is not None:
            pairs.append((test, train))
    return pairs


def resnet_depth_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per depth step of the ResNets: the test and the training accuracy difference (deeper − shallower,
    paired over seeds, 95 % interval) with the verdicts "deeper scores better" and "deeper fits better"."""
    rows = [{"comparison": test.scope, "n": test.n_text(), "test accuracy (points)": test.estimate_text(),
             "deeper scores better": test.verdict, "training accuracy (points)": train.estimate_text(),
             "deeper fits better": train.verdict} for test, train in _depth_pairs(df)]
    return pd.DataFrame(rows, columns=["comparison", "n", "test accuracy (points)", "deeper scores better",
                                       "training accuracy (points)", "deeper fits better"])


def resnet_depth_text(df: pd.DataFrame) -> str:
    """Markdown: where the deeper ResNet does not score better on the test images, whether it fits its
    training images better (its extra depth goes into fitting) or not (the run is too short for it to pay)."""
    pairs = _depth_pairs(df)
    if not pairs:
        return "No two ResNet depths have a seed in common yet: nothing to compare."
    errors = ", ".join(f"ResNet-{d} {_mean_sd(df, f'resnet{d}-A', SHORT_GRID)}" for d in SHORT_DEPTHS
                       if _n_of(df, f"resnet{d}-A", SHORT_GRID)[0])
    short = grid_runs(SHORT_GRID)[0].recipe_obj().iterations or 0
    text = f"Test error (%) by depth at {short:,} iterations: {errors}."
    worse = [(t, f) for t, f in pairs if t.verdict != "reproduced"]
    if not worse:
        return text + " At every step with records the deeper ResNet scores better, as in the paper's Table 6."
    fits = [t.scope for t, f in worse if f.verdict == "reproduced"]
    unfit = [t.scope for t, f in worse if f.verdict == "contradicted"]
    text += (f" In {len(worse)} of {len(pairs)} comparisons the records do not show the deeper ResNet scoring better "
             f"on the test images ({', '.join(t.scope for t, _ in worse)}).")
    text += (f" In {len(fits)} of them it fits its training images better ({', '.join(fits)}): there its extra depth "
             "goes into fitting, not into generalising." if fits else
             " In none of them do the records show it fitting its training images better either.")
    if unfit:
        text += (f" In {len(unfit)} they show it fitting them worse ({', '.join(unfit)}): the deeper net has not "
                 "caught up with the shallower one in training error by the end of the run.")
    if len(fits) < len(worse):
        text += (" Where the deeper net fits no better, the records give no sign that its extra depth goes into "
                 f"over-fitting: at {short:,} iterations the extra layers have not turned into a better fit at all. "
                 f"Whether they would with {_full_over_short():.0f}x the iterations, as in the paper's Table 6, is not "
                 "measured here: only depth 20 trains at full length. (Training accuracy here is the running accuracy "
                 "over each epoch's augmented batches.)")
    return text


def kept_weights(results: Path, grid: str, keys: tuple[str, ...], seed: int = 0) -> dict[str, torch.nn.Module]:
    """The nets whose final weights ``grid`` kept (seed 0), as eval-mode models; missing ones are left out."""
    from .checkpoints import load_weights
    from .grids import weights_path
    from .models import build_model

    nets = {}
    for run in grid_runs(grid, seeds=[seed]):
        path = weights_path(run, results)
        if run.model in keys and path is not None and path.exists():
            model = build_model(run.spec)
            model.load_state_dict(load_weights(path, run.run_id))
            nets[run.model] = model.eval()
    return nets


def normalised_as_trained(data: Cifar10, n: int = 500) -> torch.Tensor:
    """The balanced batch of :func:`imagenet_normalised`, normalised as our runs train (channel mean and std of
    the full training set, ``train.make_loaders``)."""
    from .data import channel_stats

    mean, std = channel_stats(data.train_x)
    x = data.test_x[balanced_test_indices(data, n)].float() / 255
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def figure7_responses(results: Path, data: Cifar10, akamaster_dir: Path | None,
                      keys: tuple[str, ...] = ("plain20", "plain56", "resnet20-A", "resnet56-A"),
                      n: int = 500) -> pd.DataFrame:
    """Fig. 7 data: layer responses of the nets the shortened grid kept and of the published akamaster nets
    (``source`` says which), each on ``n`` test images normalised as that net was trained."""
    from .analysis import response_table

    frames = []
    ours = kept_weights(results, SHORT_GRID, keys)
    if ours:
        frames.append(response_table(ours, normalised_as_trained(data, n)).assign(source="ours, 1/8 recipe"))
    if akamaster_dir is not None:
        frames.append(akamaster_responses(akamaster_dir, data, n=n).assign(source="akamaster"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


ANCHORS = ("resnet20-A", "plain20")  # the full-length runs that measure what the shortening costs


def anchor_command() -> str:
    return f"python -m resnet_nb grid run {FULL_GRID} --only '{','.join(m + '_paper_s0' for m in ANCHORS)}'"


def progress_text(short: pd.DataFrame, full: pd.DataFrame) -> str:
    """Markdown: how much of the shortened grid and of the two full-length anchors has a record."""
    runs = grid_runs(SHORT_GRID)
    own = set(short["run_id"]) if len(short) else set()
    done = sum(r.run_id in own for r in runs)
    full_done = [m for m in ANCHORS if len(full) and f"{m}_paper_s0" in set(full["run_id"])]
    text = f"**Records so far:** {done} of {len(runs)} runs of the shortened grid (`{SHORT_GRID}`)"
    text += f", {len(full_done)} of {len(ANCHORS)} full-length depth-20 runs (seed 0)."
    if done < len(runs) or len(full_done) < len(ANCHORS):
        text += (f" The rest: `python -m resnet_nb grid run {SHORT_GRID}` and `{anchor_command()}` "
                 f"(`python -m resnet_nb grid list {SHORT_GRID}` estimates the time; this book's CPUs train them in "
                 f"background lanes: `scripts/cpu_lanes.sh 2 {SHORT_GRID} '{FULL_GRID}:"
                 f"{','.join(m + '_paper_s0' for m in ANCHORS)}'`). Every table and verdict below counts only the "
                 "runs that have a record, and says how many.")
    return text


def recipe_table() -> pd.DataFrame:
    """The report's recipe, the paper's and this chapter's, field by field, from the recipe objects the runs
    train with."""
    import dataclasses

    full, report = get_recipe(FULL_GRID), get_recipe("report")
    short = grid_runs(SHORT_GRID)[0].recipe_obj()
    rows = [{"setting": k.replace("_", " "), "report (chapters 2–8)": _show(getattr(report, k)),
             "paper (§4.2)": _show(v), "this chapter": _show(getattr(short, k))}
            for k, v in dataclasses.asdict(full).items() if k != "name"]
    return pd.DataFrame(rows).set_index("setting")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(f"{v:g}" for v in value) or "—"
    if isinstance(value, float):
        return f"{value:g}"
    return "—" if value is None else f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
