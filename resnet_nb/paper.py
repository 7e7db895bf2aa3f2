"""The paper's protocol in the book: Table 6 side by side (ours, the paper's, the akamaster nets on
our test copy), the degradation verdict per protocol, and Figure 7 from trained nets.

Everything is built from records (``results/paper/``, ``results/report/``, ``results/akamaster/``);
a missing piece says what is missing and the command that makes it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .akamaster import IMAGENET_MEAN, IMAGENET_STD, checkpoints, load_akamaster
from .claims import PAPER_PARAMS, PAPER_TEST_ERROR
from .data import Cifar10
from .grids import PAPER_PRIORITY, grid_runs
from .records import summarize

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


def imagenet_normalised(data: Cifar10, n: int = 500) -> torch.Tensor:
    """The first ``n`` test images of every class in turn (a balanced batch), normalised as akamaster trained."""
    per_class = max(1, n // 10)
    idx = torch.cat([torch.nonzero(data.test_y == c).flatten()[:per_class] for c in range(10)])
    x = data.test_x[idx].float() / 255
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def akamaster_models(folder: Path) -> dict[str, torch.nn.Module]:
    """The published nets as our models, keyed like ours (``resnet20-A``)."""
    return {f"resnet{d}-A": load_akamaster(path, d)[0] for d, path in checkpoints(folder).items()}


def jpeg_effect_text(akamaster: list[dict[str, Any]]) -> str:
    """One Markdown sentence: the published nets' error on our JPEG copy vs the error their README reports."""
    if not akamaster:
        return ("No akamaster evaluation records yet: `python -m resnet_nb akamaster` writes them "
                "(needs the checkpoints and CIFAR-10).")
    parts = [f"ResNet-{r['depth']} {r['test_error_pct']:.2f} % vs {r['published_test_error_pct']:.2f} %"
             for r in akamaster]
    effects = [r["test_error_pct"] - r["published_test_error_pct"] for r in akamaster]
    variant = akamaster[0]["provenance"]["dataset_variant"]
    return (f"On our test copy ({variant}, {akamaster[0]['test_images']:,} images) the published nets err "
            f"{min(effects):.1f} to {max(effects):.1f} points more than their README reports on the original "
            f"pixels ({'; '.join(parts)}). That is the cost of the copy alone: the weights are the same.")


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
