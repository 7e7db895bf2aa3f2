"""The conclusion's table: each claim as the paper states it, as the student report states it, and
what this book measured, the last column built from the records (or saying that they are missing).

The paper's and the report's numbers below are quotations, not measurements: the paper's from
He et al. 2015 (Table 3, Table 6, Fig. 6), the report's as summarised in the book's brief.
"""

from __future__ import annotations

import pandas as pd

from .analysis import cost_table, option_distance, relative_improvement, stem_comparison
from .experiments import summarize

# He et al. 2015, Table 6: CIFAR-10 test error (%) of the option-A ResNets (110: best of 5 runs).
PAPER_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
# He et al. 2015, Table 6: parameters as the paper prints them.
PAPER_PARAMS = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M"}
# The student report's quantitative claims (ResNet over plain, average after 10 epochs).
REPORT_IMPROVEMENT = {"accuracy": "~28 %", "loss": "~43 %"}


def final_metric(df: pd.DataFrame, model: str, metric: str) -> tuple[float, float, int] | None:
    """(mean, std, n) of ``metric`` at the last epoch over the seeds of ``model``, or None."""
    summary = summarize(df[df["model"] == model], metrics=(metric,)) if len(df) else pd.DataFrame()
    if summary.empty:
        return None
    row = summary.iloc[0]
    return float(row[f"{metric}_mean"]), float(row[f"{metric}_std"]), int(row[f"{metric}_n"])


def _pct(df: pd.DataFrame, model: str, metric: str) -> str:
    value = final_metric(df, model, metric)
    if value is None:
        return f"{model}: no records yet"
    mean, std, n = value
    spread = "" if n < 2 else f" ± {100 * std:.2f}"
    return f"{model} {100 * mean:.2f}{spread} % (n={n})"


def _compare(df: pd.DataFrame, models: list[str], metric: str, label: str) -> str:
    """``label after N epochs: model mean ± std % (n); ...`` or which records are missing."""
    sub = df[df["model"].isin(models)] if len(df) else df
    if sub.empty:
        return f"no records yet for {', '.join(models)}"
    return f"{label} after {int(sub['epoch'].max())} epochs: " + "; ".join(_pct(df, m, metric) for m in models)


def _degradation(df: pd.DataFrame) -> str:
    return _compare(df, ["plain20", "plain56"], "train_acc", "training accuracy")


def _depth(df: pd.DataFrame) -> str:
    return _compare(df, ["resnet20-A", "resnet56-A"], "test_acc", "test accuracy")


def improvement_summary(df: pd.DataFrame) -> str:
    """The measured mean improvement of ResNet (A) over plain, in one sentence (Markdown), next to the report's."""
    return (f"**This book (measured):** {_improvement(df)}. **The report:** {REPORT_IMPROVEMENT['accuracy']} "
            f"accuracy, {REPORT_IMPROVEMENT['loss']} loss.")


def _improvement(df: pd.DataFrame) -> str:
    table = relative_improvement(df)
    if table.empty:
        return "no pair of ResNet-A / plain records of the same depth yet"
    mean, per_depth = table.loc["mean"], table.drop(index="mean")
    text = f"test accuracy +{mean['acc_improvement_%']:.1f} %, test loss −{mean['loss_improvement_%']:.1f} %"
    if len(per_depth) == 1:
        return f"{text} (depth {per_depth.index[0]} only)"
    acc, loss = per_depth["acc_improvement_%"], per_depth["loss_improvement_%"]
    return (f"{text} (mean over depths {', '.join(per_depth.index)}; per depth: accuracy {acc.min():.1f} to "
            f"{acc.max():.1f} %, loss {loss.min():.1f} to {loss.max():.1f} %)")


def _options(df: pd.DataFrame) -> str:
    table = option_distance(df)
    if table.empty:
        return "no depth with both option A and option B records yet"
    parts = []
    for depth, row in table.iterrows():
        noise = "" if pd.isna(row["noise_ssr"]) else f" vs {row['noise_ssr']:.2f} expected from seed noise"
        parts.append(f"depth {depth}: SSR {row['ssr']:.2f} %²{noise}")
    return "test-accuracy curves, " + "; ".join(parts)


def _torchvision(df: pd.DataFrame) -> str:
    shapes = stem_comparison(("tv-resnet18-imagenet",))
    macs = cost_table(("tv-resnet18-imagenet", "tv-resnet18-cifar", "resnet20-A"))["MMACs per image"]
    return (f"ImageNet stem: 32×32 input is {shapes.loc['layer1', 'tv-resnet18-imagenet']} after the stem; "
            f"MACs per image {macs['tv-resnet18-imagenet']:.1f} M (ImageNet stem), "
            f"{macs['tv-resnet18-cifar']:.1f} M (CIFAR stem), {macs['resnet20-A']:.1f} M (ResNet-20). "
            + _compare(df, ["tv-resnet18-imagenet", "tv-resnet18-cifar", "resnet20-A"], "test_acc", "Test accuracy"))


def _level(df: pd.DataFrame) -> str:
    value = final_metric(df, "resnet56-A", "test_acc")
    if value is None:
        return "no records yet for resnet56-A"
    epochs = int(df[df["model"] == "resnet56-A"]["epoch"].max())
    return f"ResNet-56 (A) test error after {epochs} epochs: {100 * (1 - value[0]):.2f} % (n={value[2]})"


def conclusion_table(df: pd.DataFrame) -> pd.DataFrame:
    """Claim · paper · report · this book (measured) · note."""
    rows = [
        ("Deeper plain nets train worse (degradation)",
         "plain-56 has higher training error than plain-20 (Fig. 6)", "—", _degradation(df),
         "10 epochs of Adam are far from the paper's ~164 epochs of SGD"),
        ("Deeper ResNets are more accurate",
         f"test error {PAPER_TEST_ERROR[20]} % (20 layers) → {PAPER_TEST_ERROR[56]} % (56) (Table 6)", "—", _depth(df),
         "paper: augmentation, SGD, ~164 epochs; here: the report's recipe"),
        ("A ResNet beats the plain net of the same depth", "yes, at every depth (Fig. 6)",
         f"{REPORT_IMPROVEMENT['accuracy']} higher accuracy, {REPORT_IMPROVEMENT['loss']} lower loss (average, "
         "after 10 epochs)", _improvement(df), "relative to the plain net; defined in 'ResNet vs plain CNN'"),
        ("Shortcut option A vs B", "B marginally better than A on ImageNet (Table 3); the CIFAR-10 nets use A",
         "compared A and B curves with a sum of squared residuals", _options(df),
         "SSR and its noise level are defined in 'Option A vs option B'"),
        ("torchvision's ResNet-18 is much less efficient on CIFAR-10", "—", "much less efficient than its own ResNet",
         _torchvision(df), "its ImageNet stem shrinks 32×32 images to 8×8 before the first block"),
        ("Accuracy at the paper's level", f"ResNet-56: {PAPER_TEST_ERROR[56]} % test error (Table 6)", "—", _level(df),
         "different protocol and the JPEG copy of CIFAR-10: not comparable one to one"),
    ]
    return pd.DataFrame(rows, columns=["claim", "paper", "report", "this book (measured)", "note"]).set_index("claim")
