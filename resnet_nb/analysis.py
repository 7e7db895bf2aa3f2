"""Live computations for the book: gradients and layer responses, feature-map sizes, MACs, and
the comparisons the student report made (ResNet vs plain improvement, option A vs B distance).

Everything returns a pandas DataFrame. Quantities computed live from models are rounded to
4 significant digits (:func:`sig`), so stored notebook outputs compare equal across machines
whose float arithmetic differs in the last bits; quantities from records are not rounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from .models import ModelSpec, build_model, count_macs, forward_probe, he_init, model_table
from .records import summarize
from .stats import improvement_pct  # noqa: F401 - re-exported: its home before the evidence half stood alone

SIG_DIGITS = 4


def sig(x: float, digits: int = SIG_DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits."""
    return float(f"{x:.{digits}g}")


def main_path_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Convs and linears on the main path in forward order (shortcut projections excluded), as the paper counts."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and "shortcut" not in name and "downsample" not in name]


def _stage(name: str) -> str:
    return name.split(".")[0] if name.startswith("layer") else ("stem" if name in ("conv1", "bn1") else "head")


def random_batch(batch_size: int = 32, seed: int = 0, dtype: torch.dtype = torch.float64,
                 image_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal images (what normalised inputs look like on average) and uniform labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, image_size, image_size, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (batch_size,), generator=g)
    return x, y


def gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, Any]]:
    """Frobenius norm of dL/dW for every main-path layer after one forward/backward in train mode.

    L is the mean cross-entropy of the batch; train mode means BN uses batch statistics,
    as in the first step of training.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    rows = []
    for index, (name, module) in enumerate(main_path_layers(model), 1):
        grad = module.weight.grad
        assert grad is not None, name
        rows.append({"layer": index, "name": name, "stage": _stage(name),
                     "grad_norm": sig(grad.norm().item()),
                     "relative_grad_norm": sig(grad.norm().item() / module.weight.norm().item())})
    return rows


def init_gradients(depths: Sequence[int] = (20, 56), archs: Sequence[str] = ("plain", "resnet"),
                   batch_size: int = 32, seed: int = 0, inits: Sequence[str] = ("default",)) -> pd.DataFrame:
    """Per-layer gradient norms at initialisation (float64), plain vs residual, for each init scheme.

    ``inits``: ``default`` (PyTorch's: what the report used) and/or ``he`` (Kaiming normal, fan-out:
    what the paper used). Each model is built after ``torch.manual_seed(seed)`` and sees the same
    random batch. A random batch measures how the architecture and the init scale gradients on
    the way back, before any learning; it cannot show how gradients behave on real images or
    after training has started.
    """
    x, y = random_batch(batch_size, seed)
    frames = []
    for init in inits:
        if init not in ("default", "he"):
            raise ValueError(f"init must be 'default' or 'he', got {init!r}")
        for depth in depths:
            for arch in archs:
                spec = ModelSpec("resnet", depth, "A") if arch == "resnet" else ModelSpec("plain", depth)
                torch.manual_seed(seed)
                model = build_model(spec)
                if init == "he":
                    he_init(model)
                rows = gradient_norms(model.double(), x, y)
                frames.append(pd.DataFrame(rows).assign(model=spec.key, arch=spec.arch, depth=depth, init=init))
    return pd.concat(frames, ignore_index=True)


def gradient_summary(grads: pd.DataFrame) -> pd.DataFrame:
    """Per model and init: gradient norm at the first conv, the last conv and the classifier, and first/last.

    A first/last ratio far above 1 means the gradient *grows* on its way back to the input
    (exploding), far below 1 that it shrinks (vanishing); near 1, it keeps its size.
    """
    rows = []
    init_col = grads["init"] if "init" in grads else pd.Series("default", index=grads.index)
    for (init, model), g in grads.assign(init=init_col).groupby(["init", "model"], sort=False):
        convs = g.iloc[:-1]  # every main-path layer but the classifier
        first, last = convs["grad_norm"].iloc[0], convs["grad_norm"].iloc[-1]
        rows.append({"init": init, "model": model, "depth": int(g["depth"].iloc[0]), "first conv": first,
                     "last conv": last, "classifier": g["grad_norm"].iloc[-1], "first / last conv": sig(first / last)})
    return pd.DataFrame(rows)


def gradient_reading(summary: pd.DataFrame) -> str:
    """Markdown: what the first/last ratios in ``summary`` say, per init, generated from the numbers."""
    lines = []
    for init, g in summary.groupby("init", sort=False):
        family = g["model"].map(lambda k: ModelSpec.from_key(k).arch)
        plain = g[family == "plain"].sort_values("depth")
        res = g[family == "resnet"].sort_values("depth")
        if plain.empty or res.empty:
            continue
        deep_p, deep_r = plain.iloc[-1], res.iloc[-1]
        name = "PyTorch default init" if init == "default" else "He init"
        trend = ("grows with depth" if plain["first / last conv"].is_monotonic_increasing else "changes with depth")
        lines.append(f"* **{name}**: in the plain nets the ratio {trend}, from {plain.iloc[0]['first / last conv']:g} "
                     f"(depth {int(plain.iloc[0]['depth'])}) to {deep_p['first / last conv']:g} (depth "
                     f"{int(deep_p['depth'])}): the gradient at the first layer is "
                     f"{_times(deep_p['first / last conv'])} the last conv's. In the ResNet of depth "
                     f"{int(deep_r['depth'])} it is {_times(deep_r['first / last conv'])}.")
    return "\n".join(lines)


def _times(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:,.0f}×"
    return f"{ratio:.3g}×" if ratio >= 1 else f"1/{1 / ratio:.3g} of"


def layer_responses(model: nn.Module, x: torch.Tensor) -> pd.DataFrame:
    """Paper Fig. 7: std of each 3x3 layer's response, i.e. its BN output before the addition/ReLU.

    Eval mode (BN with running statistics, as for a trained model); the std is taken over all
    elements of the layer's output for the batch ``x``. Shortcut projections are excluded.
    """
    bns = [(name, m) for name, m in model.named_modules()
           if isinstance(m, nn.BatchNorm2d) and "shortcut" not in name and "downsample" not in name]
    stds: dict[str, float] = {}
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: stds.__setitem__(name, out.float().std().item()))
               for name, m in bns]
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    rows = [{"layer": i, "name": name, "stage": _stage(name), "response_std": sig(stds[name])}
            for i, (name, _) in enumerate(bns, 1)]
    frame = pd.DataFrame(rows)
    frame["rank"] = frame["response_std"].rank(ascending=False, method="first").astype(int)
    return frame


def response_table(models: dict[str, nn.Module], x: torch.Tensor) -> pd.DataFrame:
    """:func:`layer_responses` of several (trained) models keyed by model key, on the same batch."""
    frames = [layer_responses(model, x).assign(model=key, depth=ModelSpec.from_key(key).depth)
              for key, model in models.items()]
    return pd.concat(frames, ignore_index=True)


def feature_map_shapes(model: nn.Module, image_size: int = 32) -> pd.DataFrame:
    """Output shape (C, H, W) of the stem and each stage for one ``image_size`` image.

    Modules looked for, in order: ``conv1``, ``maxpool``, ``layer1..4``, ``avgpool``; a model
    without an ``avgpool`` module (our CIFAR ResNet pools functionally) reports the input of
    its classifier as ``avgpool``.
    """
    names = ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name in names:
        if name in modules:
            handles.append(modules[name].register_forward_hook(
                lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))))
    if "avgpool" not in modules:
        head = modules.get("linear") or modules.get("fc")
        if head is not None:
            handles.append(head.register_forward_pre_hook(
                lambda _m, inp: shapes.__setitem__("avgpool", (inp[0].shape[1], 1, 1))))
    forward_probe(model, handles, image_size)
    rows = [{"module": "input", "channels": 3, "height": image_size, "width": image_size}]
    rows += [{"module": n, "channels": shapes[n][0], "height": shapes[n][1], "width": shapes[n][2]}
             for n in names if n in shapes]
    return pd.DataFrame(rows)


def stem_comparison(keys: Iterable[str] = ("tv-resnet18-imagenet", "tv-resnet18-cifar", "resnet20-A"),
                    image_size: int = 32) -> pd.DataFrame:
    """One row per module, one column per model: the feature map as ``C × H × W`` ("" where absent)."""
    columns = {}
    for key in keys:
        shapes = feature_map_shapes(build_model(ModelSpec.from_key(key)), image_size)
        columns[key] = {r.module: f"{r.channels} × {r.height} × {r.width}" for r in shapes.itertuples()}
    order = ["input", "conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"]
    table = pd.DataFrame(columns).reindex([m for m in order if any(m in c for c in columns.values())])
    table.index.name = "module"
    return table.fillna("")


def parameter_table(depths: Sequence[int] = (20, 32, 44, 56, 110), paper: dict[int, str] | None = None) -> pd.DataFrame:
    """Per depth: n, weight layers, parameters of option A, option B and the plain net, B − A, and the paper's count."""
    rows = []
    for depth in depths:
        counts = {r["model"]: r for r in model_table([ModelSpec("resnet", depth, "A"), ModelSpec("resnet", depth, "B"),
                                                        ModelSpec("plain", depth)])}
        a, b, p = counts[f"resnet{depth}-A"], counts[f"resnet{depth}-B"], counts[f"plain{depth}"]
        row = {"depth": depth, "n (blocks per stage)": (depth - 2) // 6, "weight layers": a["weight_layers"],
               "params A": a["params"], "params B": b["params"], "params plain": p["params"],
               "B − A": int(b["params"]) - int(a["params"])}
        if paper is not None:
            row["paper (Table 6)"] = paper.get(depth, "")
        rows.append(row)
    return pd.DataFrame(rows).set_index("depth")


def cost_table(keys: Iterable[str], image_size: int = 32) -> pd.DataFrame:
    """Per model key: parameters, millions of MACs per image, and MACs relative to the first model."""
    rows = []
    for key in keys:
        model = build_model(ModelSpec.from_key(key))
        rows.append({"model": key, "params": sum(p.numel() for p in model.parameters()),
                     "macs": count_macs(model, image_size)})
    table = pd.DataFrame(rows).set_index("model")
    table["MMACs per image"] = (table["macs"] / 1e6).round(1)
    table[f"MACs / {table.index[0]}"] = (table["macs"] / table["macs"].iloc[0]).round(2)
    return table.drop(columns="macs")


def relative_improvement(df: pd.DataFrame, shortcut: str = "A", split: str = "test",
                         epoch: int | None = None) -> pd.DataFrame:
    """ResNet over plain net of the same depth, from the mean over seeds at ``epoch`` (default: last).

    Definitions (R = ResNet with ``shortcut``, P = plain net, both seed means):
    accuracy improvement % = 100 (acc_R - acc_P) / acc_P; loss improvement % = 100 (loss_P - loss_R) / loss_P.
    A last row ``mean`` averages the per-depth rows (depths with both nets only).
    """
    columns = ["depth", "n_resnet", "n_plain", "acc_resnet_%", "acc_plain_%", "acc_improvement_%",
               "loss_resnet", "loss_plain", "loss_improvement_%"]
    summary = summarize(df, epoch=epoch)
    if summary.empty:
        return pd.DataFrame(columns=columns).set_index("depth")
    rows = []
    for depth in sorted(summary["depth"].unique()):
        res = summary[summary["model"] == f"resnet{depth}-{shortcut}"]
        plain = summary[summary["model"] == f"plain{depth}"]
        if res.empty or plain.empty:
            continue
        r, p = res.iloc[0], plain.iloc[0]
        acc_r, acc_p = r[f"{split}_acc_mean"], p[f"{split}_acc_mean"]
        loss_r, loss_p = r[f"{split}_loss_mean"], p[f"{split}_loss_mean"]
        rows.append({"depth": str(depth), "n_resnet": int(r[f"{split}_acc_n"]), "n_plain": int(p[f"{split}_acc_n"]),
                     "acc_resnet_%": 100 * acc_r, "acc_plain_%": 100 * acc_p,
                     "acc_improvement_%": improvement_pct(acc_r, acc_p),
                     "loss_resnet": loss_r, "loss_plain": loss_p,
                     "loss_improvement_%": improvement_pct(loss_r, loss_p, lower_is_better=True)})
    out = pd.DataFrame(rows, columns=columns)
    if out.empty:
        return out.set_index("depth")
    mean = out.drop(columns=["depth"]).mean()
    mean[["n_resnet", "n_plain"]] = float("nan")
    out = pd.concat([out, pd.DataFrame([{"depth": "mean", **mean.to_dict()}])], ignore_index=True)
    return out.astype({"n_resnet": "Int64", "n_plain": "Int64"}).set_index("depth")


def mean_curves(df: pd.DataFrame, model: str, metric: str) -> pd.DataFrame:
    """Per epoch: mean, sample variance and number of seeds of ``metric`` for ``model``."""
    sub = df[df["model"] == model]
    return sub.groupby("epoch")[metric].agg(["mean", "var", "count"]).sort_index()


def option_distance(df: pd.DataFrame, metric: str = "test_acc") -> pd.DataFrame:
    """Sum of squared residuals (SSR) between the option A and option B mean curves, per depth.

    SSR = sum over epochs e of (mean_A(e) - mean_B(e))^2, with accuracies in percentage points
    (so SSR is in %^2) and losses as they are. ``noise_ssr`` is the SSR expected from seed
    noise alone if A and B had the same true curve: sum_e var_A(e)/n_A + var_B(e)/n_B (needs
    >= 2 seeds of each). ``rms_gap`` = sqrt(SSR / epochs), in the metric's units.
    """
    scale = 100.0 if metric.endswith("_acc") else 1.0
    rows = []
    for depth in sorted(df["depth"].unique()) if len(df) else []:
        a, b = mean_curves(df, f"resnet{depth}-A", metric), mean_curves(df, f"resnet{depth}-B", metric)
        epochs = a.index.intersection(b.index)
        if len(epochs) == 0:
            continue
        a, b = a.loc[epochs], b.loc[epochs]
        ssr = float((((a["mean"] - b["mean"]) * scale) ** 2).sum())
        both_varied = a["count"].min() >= 2 and b["count"].min() >= 2
        noise = float(((a["var"] / a["count"] + b["var"] / b["count"]) * scale**2).sum()) if both_varied else float("nan")
        rows.append({"depth": int(depth), "epochs": len(epochs), "n_A": int(a["count"].min()),
                     "n_B": int(b["count"].min()), "ssr": ssr, "noise_ssr": noise,
                     "rms_gap": (ssr / len(epochs)) ** 0.5})
    return pd.DataFrame(rows, columns=["depth", "epochs", "n_A", "n_B", "ssr", "noise_ssr", "rms_gap"]).set_index("depth")


def option_distance_reading(table: pd.DataFrame) -> str:
    """One Markdown sentence reading :func:`option_distance`: at which depths the A and B mean curves are
    further apart than seed noise alone would put them (SSR / noise_ssr), and what that ratio is not."""
    usable = table.dropna(subset=["noise_ssr"]) if len(table) else table
    usable = usable[usable["noise_ssr"] > 0] if len(usable) else usable
    if usable.empty:
        return "No depth has two seeds of each option yet: no noise level to read the distances against."
    ratio = usable["ssr"] / usable["noise_ssr"]
    far = [f"{d} ({r:.1f}×)" for d, r in ratio.items() if r >= 2]
    near = [f"{d} ({r:.1f}×)" for d, r in ratio.items() if r < 2]
    text = "**Reading the distances.** SSR divided by the noise level: "
    if far:
        text += (f"at {_depths(far)} the A and B mean curves are at least twice as far apart as seed noise alone "
                 "would put them")
    if near:
        text += ("; " if far else "") + (f"at {_depths(near)} they are not" if far else
                                         f"at {_depths(near)} the A and B mean curves are less than twice as far "
                                         "apart as seed noise alone would put them")
    text += (". By the report's own measure, then, the options are not equally similar at every depth." if far else
             ". By this measure no depth stands out.")
    text += (" The ratio is a description, not a test: the epochs of one run are correlated, so how far it strays "
             "from 1 when A "
             "and B do not differ is not known here; the paired test below decides on the last epoch.")
    return text


def _depths(items: list[str]) -> str:
    return ("depth " + items[0]) if len(items) == 1 else "depths " + ", ".join(items[:-1]) + " and " + items[-1]
