"""Plotly figure builders for the book: learning curves with 95 % interval bands, final-metric charts,
analysis figures, captions that name protocol, seeds, hardware and data, and summary tables.

Figures take the long DataFrame of :func:`resnet_nb.records.load_results` (one row per run
and epoch). Accuracies are stored as fractions and shown in %. Every builder draws something
even without records: a figure that says which records are missing.

Evidence half (README, "Architecture"): imports only :mod:`resnet_nb.vocab` and the other evidence modules, never torch
or the training half, so it loads and runs where torch is not installed (``tests/test_structure.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import textwrap
from collections.abc import Iterable, Sequence

import pandas as pd
import plotly.graph_objects as go

from .coverage import hardware_text
from .vocab import ModelSpec

METRICS: dict[str, str] = {
    "test_acc": "test accuracy (%)",
    "test_loss": "test loss (cross-entropy, nats)",
    "train_acc": "training accuracy (%)",
    "train_loss": "training loss (cross-entropy, nats)",
}
FONT = {"family": "Inter, Helvetica, Arial, sans-serif", "size": 14}

# One hue per family, darker for deeper nets: a config has the same colour in every chapter.
_SHADES = {
    "resnet-A": ["#6baed6", "#3182bd", "#08519c", "#08306b", "#041b3d"],
    "resnet-B": ["#74c476", "#31a354", "#006d2c", "#00441b", "#002910"],
    "plain": ["#fd8d3c", "#e6550d", "#a63603", "#7f2704", "#4d1702"],
}
_DEPTH_INDEX = {20: 0, 32: 1, 44: 2, 56: 3, 110: 4, 8: 0}
_TORCHVISION = {"tv-resnet18-imagenet": "#9467bd", "tv-resnet18-cifar": "#e377c2",
                "tv-resnet34-imagenet": "#6a3d9a", "tv-resnet34-cifar": "#c51b7d"}


def book_html(fig_dict: dict, div_id: str | None = None) -> str:
    """A figure as an HTML fragment that expects ``Plotly`` on the page (no plotly.js, no MathJax CDN).

    The div id is derived from the figure's content unless given, so re-executing a notebook
    changes its stored HTML only where the figure changed.
    """
    import plotly.io as pio

    if div_id is None:
        digest = hashlib.sha1(json.dumps(fig_dict, sort_keys=True, default=str).encode()).hexdigest()[:16]
        div_id = f"fig-{digest}"
    return pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False, div_id=div_id,
                       default_width="100%", default_height=525, validate=False, config={"displaylogo": False})


def mime_bundle(fig: go.Figure) -> dict[str, object]:
    """What the book's renderer displays for ``fig``: the plotly mimetype (JupyterLab) and the offline HTML."""
    fig_json = json.loads(fig.to_json())
    return {"application/vnd.plotly.v1+json": {"config": {"displaylogo": False}, **fig_json},
            "text/html": book_html(fig_json)}


def use_book_renderer() -> None:
    """Render figures so that JupyterLab, Colab and the static book all draw them offline.

    Each figure is stored twice: as the plotly mimetype (JupyterLab draws it) and as HTML that
    expects ``Plotly`` from the page (the book serves ``_static/plotly.min.js``), so plotly.js is
    not inlined into every notebook. Colab keeps its own renderer.
    """
    import plotly.io as pio
    from plotly.io._base_renderers import MimetypeRenderer

    if "google.colab" in sys.modules:
        pio.renderers.default = "colab"
        return

    class BookHtmlRenderer(MimetypeRenderer):
        def to_mimebundle(self, fig_dict: dict) -> dict[str, str]:
            return {"text/html": book_html(fig_dict)}

    pio.renderers["book_html"] = BookHtmlRenderer()
    pio.renderers.default = "plotly_mimetype+book_html"


def config_color(model: str) -> str:
    """The colour of a model key (``resnet20-A``, ``plain56``, ``tv-resnet18-cifar``...)."""
    if model in _TORCHVISION:
        return _TORCHVISION[model]
    spec = ModelSpec.from_key(model)
    return _SHADES[spec.family][_DEPTH_INDEX.get(spec.depth, 3)]


def _dash(model: str) -> str:
    family = ModelSpec.from_key(model).family
    return "dash" if family == "plain" else ("dot" if family == "resnet-B" else "solid")


def _recipe_text(name: str, desc: str, epochs: Iterable[int]) -> str:
    span = sorted(set(epochs))
    epochs_text = f"{span[0]}" if len(span) == 1 else f"{span[0]}–{span[-1]}"
    return f"'{name}' recipe ({desc}, {epochs_text} epoch{'' if span == [1] else 's'})"


def _shortened_text(df: pd.DataFrame) -> str:
    """`` at 8,000 iterations`` for runs whose iteration count overrides their recipe's (``_it`` in the id)."""
    totals = sorted({int(t) for c, t in zip(df["config_id"], df["total_iterations"]) if "_it" in c})
    return f" at {' / '.join(f'{t:,}' for t in totals)} iterations" if totals else ""


def caption(df: pd.DataFrame) -> str:
    """Protocol, seeds per configuration, hardware and dataset variant of the records in ``df``."""
    if df.empty:
        return "no records"
    last = df.groupby("run_id")["epoch"].max()
    recipes = "; ".join(_recipe_text(name, desc, last[g["run_id"].unique()]) + _shortened_text(g)
                        for (name, desc), g in df.groupby(["recipe", "recipe_desc"], sort=True))
    sizes = sorted({int(m.group(1)) for c in df["config_id"].unique() if (m := re.search(r"_n(\d+)", c))})
    if sizes:
        recipes += f" on {' / '.join(f'{n:,}' for n in sizes)} training images"
    if (df["grid"] == "live").any():
        recipes = f"trained live when this page was executed: {recipes}"
    seeds = df.groupby("config_id")["seed"].nunique()
    seeds_text = (f"{seeds.min()} seed{'s' if seeds.min() > 1 else ''} per configuration" if seeds.min() == seeds.max()
                  else f"{seeds.min()}–{seeds.max()} seeds per configuration")
    if seeds.max() > 1:
        seeds_text += " (mean and its 95 % t-interval)"
    hardware = hardware_text(df)
    variants = sorted(df["dataset_variant"].unique())
    data = ", ".join("CIFAR-10 JPEG copy (q≈75, not the original pixels)" if v == "jpeg"
                     else "CIFAR-10 (original batches)" if v == "original" else f"CIFAR-10 ({v})" for v in variants)
    return f"{recipes} · {seeds_text} · {hardware} · {data}"


def _wrap(text: str, width: int = 95) -> str:
    """Break a caption into lines of about ``width`` characters (plotly needs <br>): at ' · ', else at spaces."""
    words: list[str] = []
    for i, part in enumerate(text.split(" · ")):
        pieces = textwrap.wrap(part, width) or [""]
        words += [("· " if i and j == 0 else "") + p for j, p in enumerate(pieces)]
    lines, line = [], ""
    for piece in words:
        candidate = f"{line} {piece}" if line else piece
        if line and len(candidate) > width:
            lines.append(line)
            line = piece
        else:
            line = candidate
    return "<br>".join([*lines, line])


def _layout(fig: go.Figure, title: str, note: str, height: int = 560) -> go.Figure:
    """Title on top, dropdown menus under it (y 1.02 of the plot area), the caption under the x axis."""
    lines = _wrap(note).count("<br>") + 1 if note else 0
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "yref": "container", "y": 0.985, "yanchor": "top",
               "font": {"size": 17}},
        font=FONT, template="plotly_white", height=height + 16 * lines,
        margin={"l": 70, "r": 20, "t": 110 if fig.layout.updatemenus else 60, "b": 70 + 16 * lines},
        legend={"font": {"size": 12}}, hoverlabel={"font_size": 13},
    )
    for menu in fig.layout.updatemenus:
        menu.update(y=1.02, yanchor="bottom", pad={"t": 0, "b": 0})
    if note:
        fig.add_annotation(text=_wrap(note), xref="paper", yref="paper", x=0, y=0, yshift=-62, yanchor="top",
                           xanchor="left", showarrow=False, align="left", font={"size": 11, "color": "#555"})
    return fig


def empty_figure(message: str, title: str = "") -> go.Figure:
    """A figure that says why it is empty (e.g. which records are missing)."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 15, "color": "#a33"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title or "No records yet", "", height=260)


def _scale(metric: str) -> float:
    return 100.0 if metric.endswith("_acc") else 1.0


def ci_half_width(std: float, n: int, level: float = 0.95) -> float:
    """Half-width of the t-interval of a mean of ``n`` seeds (0 where n < 2: no interval to draw)."""
    from scipy import stats as sps

    if n < 2 or math.isnan(std):
        return 0.0
    return float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)


def _curve_stats(df: pd.DataFrame, model: str, metric: str) -> pd.DataFrame:
    stats = df[df["model"] == model].groupby("epoch")[metric].agg(["mean", "std", "count"]).sort_index()
    return stats * [_scale(metric), _scale(metric), 1]


def _band_xy(stats: pd.DataFrame) -> tuple[list[float], list[float]]:
    """The 95 % t-interval of the mean over seeds, per epoch, as a closed polygon."""
    half = pd.Series([ci_half_width(sd, int(n)) for sd, n in zip(stats["std"], stats["count"])], index=stats.index)
    x = list(stats.index) + list(stats.index[::-1])
    y = list(stats["mean"] + half) + list((stats["mean"] - half)[::-1])
    return x, y


def learning_curves(df: pd.DataFrame, models: Sequence[str] | None = None,
                    metrics: Sequence[str] = ("test_acc", "test_loss", "train_acc", "train_loss"),
                    depth_menu: bool = False, title: str = "Learning curves") -> go.Figure:
    """Metric vs epoch, one line per model (mean over seeds) with its 95 % interval band where n > 1.

    A dropdown switches the metric (first of ``metrics`` shown first); with ``depth_menu`` a
    second dropdown shows one depth at a time (or all).
    """
    models = [m for m in (models or sorted(df["model"].unique())) if m in set(df["model"])]
    if not models:
        return empty_figure("No records for these models yet.", title)
    fig = go.Figure()
    ys: dict[str, list[list[float]]] = {m: [] for m in metrics}
    depths: list[int] = []
    for model in models:
        color = config_color(model)
        base = _curve_stats(df, model, metrics[0])
        n = int(base["count"].max())
        group = f"{model} (n={n})"
        for metric in metrics:
            stats = _curve_stats(df, model, metric)
            ys[metric] += [_band_xy(stats)[1], list(stats["mean"])]
        depth = int(df[df["model"] == model]["depth"].iloc[0])
        depths += [depth, depth]
        bx, by = _band_xy(base)
        fig.add_trace(go.Scatter(x=bx, y=by, fill="toself", fillcolor=color, opacity=0.18 if n > 1 else 0,
                                 line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=group))
        fig.add_trace(go.Scatter(x=list(base.index), y=list(base["mean"]), name=group, legendgroup=group,
                                 mode="lines+markers", line={"color": color, "width": 2.5, "dash": _dash(model)},
                                 marker={"size": 6}, hovertemplate=f"{model}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>"))
    menus = []
    if len(metrics) > 1:
        menus.append({"buttons": [{"label": METRICS[m], "method": "update",
                                   "args": [{"y": ys[m]}, {"yaxis.title.text": METRICS[m]}]} for m in metrics],
                      "x": 0.0, "xanchor": "left", "showactive": True})
    unique_depths = sorted(set(depths))
    if depth_menu and len(unique_depths) > 1:
        buttons = [{"label": "all depths", "method": "restyle", "args": [{"visible": [True] * len(depths)}]}]
        buttons += [{"label": f"depth {d}", "method": "restyle",
                     "args": [{"visible": [dd == d for dd in depths]}]} for d in unique_depths]
        menus.append({"buttons": buttons, "x": 0.42, "xanchor": "left"})
    fig.update_layout(updatemenus=menus)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text=METRICS[metrics[0]])
    return _layout(fig, title, caption(df[df["model"].isin(models)]))


def final_metric_chart(df: pd.DataFrame, models: Sequence[str] | None = None,
                       metrics: Sequence[str] = ("test_acc", "test_loss", "train_acc", "train_loss"),
                       epoch: int | None = None, title: str = "After the last epoch") -> go.Figure:
    """Mean and 95 % t-interval (error bars) of each metric at ``epoch`` (default: last), x = depth.

    One trace per family. Points of a family are joined by a line only when every point has at
    least two seeds: a line through single runs would draw seed noise as a trend across depth.
    Single-seed points are drawn hollow, without error bars.
    """
    from .records import summarize

    sub = df[df["model"].isin(models)] if models else df
    summary = summarize(sub, metrics=metrics, epoch=epoch)
    if summary.empty:
        return empty_figure("No records for these models yet.", title)
    summary["family"] = [("plain" if a == "plain" else f"resnet-{s}" if a == "resnet" else m)
                         for a, s, m in zip(summary["arch"], summary["shortcut"], summary["model"])]
    names = {"plain": "plain", "resnet-A": "ResNet, option A", "resnet-B": "ResNet, option B"}
    fig = go.Figure()
    ys, errs = {m: [] for m in metrics}, {m: [] for m in metrics}
    for family, rows in summary.sort_values("depth").groupby("family", sort=True):
        first = rows["model"].iloc[-1]
        counts = rows[f"{metrics[0]}_n"].astype(int)
        n_text = f"n={counts.min()}" + (f"–{counts.max()}" if counts.nunique() > 1 else "")
        for m in metrics:
            ys[m].append(list(rows[f"{m}_mean"] * _scale(m)))
            errs[m].append({"type": "data", "visible": True,
                            "array": [ci_half_width(sd * _scale(m), int(n))
                                      for sd, n in zip(rows[f"{m}_std"], rows[f"{m}_n"])]})
        joined = bool((counts >= 2).all())
        fig.add_trace(go.Scatter(
            x=[str(d) for d in rows["depth"]], y=ys[metrics[0]][-1], error_y=errs[metrics[0]][-1],
            name=f"{names.get(family, family)} ({n_text})", mode="lines+markers" if joined else "markers",
            line={"color": config_color(first), "dash": _dash(first)},
            marker={"size": 10, "symbol": ["circle" if n >= 2 else "circle-open" for n in counts],
                    "line": {"width": 2, "color": config_color(first)}},
            customdata=list(counts), hovertemplate="depth %{x}: %{y:.2f} (n=%{customdata})<extra></extra>"))
    fig.update_layout(updatemenus=[{"buttons": [{"label": METRICS[m], "method": "update",
                                                 "args": [{"y": ys[m], "error_y": errs[m]}, {"yaxis.title.text": METRICS[m]}]}
                                                for m in metrics], "x": 0.0, "xanchor": "left",
                                    "yanchor": "bottom"}] if len(metrics) > 1 else [])
    fig.update_xaxes(title_text="depth (weight layers)", type="category")
    fig.update_yaxes(title_text=METRICS[metrics[0]])
    note = (caption(sub) + " · error bars: 95 % t-interval over seeds; hollow points: one seed, no interval, "
            "not joined")
    return _layout(fig, title, note, height=480)


def interval_table(df: pd.DataFrame, models: Sequence[str],
                   metrics: Sequence[str] = ("test_acc", "test_loss")) -> pd.DataFrame:
    """Per model (rows in the given order): each metric at the last epoch as ``mean [95 % interval]``, and n.

    Accuracies in %, losses in nats. One seed gives the value and "(one seed)" instead of an
    interval; a model without records says so. No NaN reaches the page.
    """
    from . import stats
    from .claims import final_values

    rows = []
    for model in models:
        row: dict[str, object] = {"model": model}
        n = 0
        for m in metrics:
            values = final_values(df, model, m) * _scale(m)
            n = max(n, len(values))
            digits = 2 if m.endswith("_acc") else 3
            if values.empty:
                row[METRICS[m]] = "no records"
            elif len(values) == 1:
                row[METRICS[m]] = f"{values.iloc[0]:.{digits}f} (one seed)"
            else:
                iv = stats.t_interval(list(values))
                row[METRICS[m]] = f"{iv.mean:.{digits}f} [{iv.lo:.{digits}f}, {iv.hi:.{digits}f}]"
        row["seeds"] = n
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def gradient_figure(grads: pd.DataFrame, value: str = "grad_norm") -> go.Figure:
    """Per-layer gradient norm vs layer index (log scale), one line per model and init, an init dropdown."""
    fig = go.Figure()
    inits = []
    init_col = grads["init"] if "init" in grads else pd.Series("default", index=grads.index)
    for (init, model), rows in grads.assign(init=init_col).groupby(["init", "model"], sort=False):
        fig.add_trace(go.Scatter(x=list(rows["layer"]), y=list(rows[value]), name=f"{model}, {init} init",
                                 mode="lines+markers", line={"color": config_color(model), "dash": _dash(model)},
                                 marker={"size": 5},
                                 hovertemplate=f"{model} ({init} init)<br>layer %{{x}}: %{{y:.4g}}<extra></extra>"))
        inits.append(init)
    labels = {"default": "PyTorch default init", "he": "He init (the paper's)"}
    buttons = [{"label": labels.get(i, i), "method": "restyle", "args": [{"visible": [j == i for j in inits]}]}
               for i in dict.fromkeys(inits)]
    if len(buttons) > 1:
        buttons.append({"label": "both inits", "method": "restyle", "args": [{"visible": [True] * len(inits)}]})
        for trace, init in zip(fig.data, inits):
            trace.visible = init == inits[0]
    fig.update_layout(updatemenus=[{"buttons": buttons, "x": 0.0, "xanchor": "left"}])
    fig.update_xaxes(title_text="weight layer (1 = first conv, last = classifier)")
    label = "‖∂L/∂W‖ (Frobenius norm)" if value == "grad_norm" else "‖∂L/∂W‖ / ‖W‖"
    fig.update_yaxes(title_text=label, type="log")
    note = ("computed live: one batch of standard-normal 32×32 images with random labels (not real images), "
            "float64, BN in training mode (the first step of training), before any update")
    return _layout(fig, "Gradient norms at initialisation", note)


def response_figure(responses: pd.DataFrame, note: str) -> go.Figure:
    """Paper Fig. 7 style: std of layer responses by layer index, and sorted by magnitude (dropdown)."""
    fig = go.Figure()
    by_index, by_rank = [], []
    # a ``source`` column (e.g. our nets next to the published ones) names each line; the published are dotted
    keys = ["source", "model"] if "source" in responses.columns else ["model"]
    for key, rows in responses.groupby(keys, sort=False):
        model, source = (key[1], key[0]) if len(keys) == 2 else (key[0] if isinstance(key, tuple) else key, None)
        ordered = rows.sort_values("rank")
        by_index.append((list(rows["layer"]), list(rows["response_std"])))
        by_rank.append((list(ordered["rank"]), list(ordered["response_std"])))
        dash = "dot" if source == "akamaster" else _dash(model)
        fig.add_trace(go.Scatter(x=by_index[-1][0], y=by_index[-1][1], mode="lines+markers",
                                 name=model if source is None else f"{model} ({source})",
                                 line={"color": config_color(model), "dash": dash}, marker={"size": 5}))
    fig.update_layout(updatemenus=[{"buttons": [
        {"label": "by layer index", "method": "update", "args": [{"x": [x for x, _ in by_index], "y": [y for _, y in by_index]},
                                                                {"xaxis.title.text": "layer index (3×3 convs, forward order)"}]},
        {"label": "sorted by magnitude", "method": "update", "args": [{"x": [x for x, _ in by_rank], "y": [y for _, y in by_rank]},
                                                                     {"xaxis.title.text": "rank (largest std first)"}]}],
        "x": 0.0, "xanchor": "left"}])
    fig.update_xaxes(title_text="layer index (3×3 convs, forward order)")
    fig.update_yaxes(title_text="response std (BN output)")
    return _layout(fig, "Layer responses", note)


def _iteration_stats(df: pd.DataFrame, model: str, metric: str) -> pd.DataFrame:
    """Mean, std and n over seeds of ``metric`` (in %) per epoch, indexed by the iteration that epoch ended at."""
    sub = df[df["model"] == model]
    stats = sub.groupby("epoch").agg(mean=(metric, "mean"), std=(metric, "std"), count=(metric, "count"),
                                     iteration=("iteration", "max")).sort_index()
    stats[["mean", "std"]] *= _scale(metric)
    return stats.set_index("iteration")


def _error_trace(stats: pd.DataFrame, x_scale: float, name: str, group: str, color: str, dash: str,
                 show_band: bool, x_text: str) -> list[go.Scatter]:
    """An error curve (100 − accuracy) with its 95 % band over seeds; x = iteration / ``x_scale``."""
    err = pd.DataFrame({"mean": 100 - stats["mean"].to_numpy(), "std": stats["std"].to_numpy(),
                        "count": stats["count"].to_numpy()}, index=stats.index.to_numpy() / x_scale)
    traces = []
    if show_band and int(err["count"].max()) > 1:
        bx, by = _band_xy(err)
        traces.append(go.Scatter(x=bx, y=by, fill="toself", fillcolor=color, opacity=0.15, line={"width": 0},
                                 hoverinfo="skip", showlegend=False, legendgroup=group))
    traces.append(go.Scatter(x=list(err.index), y=list(err["mean"]), name=name, legendgroup=group, mode="lines",
                             line={"color": color, "dash": dash, "width": 2},
                             hovertemplate=f"{name}<br>{x_text} %{{x:.3g}}: %{{y:.2f}} %<extra></extra>"))
    return traces


def paper_error_curves(df: pd.DataFrame, pairs: Sequence[tuple[str, str]] = (
        ("plain20", "resnet20-A"), ("plain32", "resnet32-A"), ("plain44", "resnet44-A"), ("plain56", "resnet56-A")),
                       title: str = "Figure 6: training and test error, paper recipe",
                       command: str = "python -m resnet_nb grid run paper") -> go.Figure:
    """The paper's Fig. 6 from records: error (%) vs iteration, plain nets left, ResNets right; training
    error dashed, test error solid, mean over seeds with its 95 % band; the learning-rate drops marked
    where the records say they were (``lr_drops``). Missing models are named, with ``command``."""
    from plotly.subplots import make_subplots

    have = set(df["model"]) if len(df) else set()
    missing = [m for pair in pairs for m in pair if m not in have]
    if len(missing) == 2 * len(pairs):
        return empty_figure(f"No records of these nets yet.<br>Make them with: {command}", title)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("plain", "ResNet (option A)"))
    for col, family in ((1, [p for p, _ in pairs]), (2, [r for _, r in pairs])):
        for model in family:
            if model not in have:
                continue
            n = int(df[df["model"] == model]["seed"].nunique())
            for metric, dash, name in (("train_acc", "dash", "train"), ("test_acc", "solid", "test")):
                for trace in _error_trace(_iteration_stats(df, model, metric), 1e3, f"{model} {name} (n={n})",
                                          model, config_color(model), dash, True, "iteration (k)"):
                    fig.add_trace(trace, row=1, col=col)
    sub = df[df["model"].isin(have & {m for pair in pairs for m in pair})]
    drops = sorted({d for run_drops in sub["lr_drops"] for d in run_drops})
    for col in (1, 2):
        for x in drops:
            fig.add_vline(x=x / 1e3, line={"color": "#888", "dash": "dot", "width": 1}, row=1, col=col)
        fig.update_xaxes(title_text="iterations (thousands)", row=1, col=col)
    if drops:
        fig.add_annotation(text="lr ÷10", x=drops[0] / 1e3, y=1, xref="x", yref="paper", showarrow=False,
                           yanchor="bottom", font={"size": 11, "color": "#666"})
    fig.update_yaxes(title_text="error (%)", rangemode="tozero", row=1, col=1)
    note = caption(sub) + f" · dotted: learning rate ÷10 at iteration {' and '.join(f'{d:,}' for d in drops)}"
    if missing:
        note += f" · Not yet run: {', '.join(missing)} ({command})"
    return _layout(fig, title, note)


def shortening_curves(frames: dict[str, pd.DataFrame], models: Sequence[str],
                      title: str = "What the shortening costs") -> go.Figure:
    """Error vs *fraction of the run* for the same nets under several lengths of one recipe (``frames``:
    label -> records), so the learning-rate drops (at the same fractions) line up; one seed or more."""
    fig = go.Figure()
    dashes = ("solid", "dash", "dot", "dashdot")
    drawn = []
    for i, (label, df) in enumerate(frames.items()):
        for model in models:
            sub = df[df["model"] == model] if len(df) else df
            if sub.empty:
                continue
            total = int(sub["total_iterations"].max())
            n = int(sub["seed"].nunique())
            for metric, what in (("train_acc", "train"), ("test_acc", "test")):
                stats = _iteration_stats(sub, model, metric)
                for trace in _error_trace(stats, total, f"{model} {what}, {label} (n={n})", f"{model} {label}",
                                          config_color(model), dashes[i % len(dashes)], False, "fraction of the run"):
                    if what == "train":
                        trace.update(opacity=0.55)
                    fig.add_trace(trace)
            drawn.append(sub)
    if not drawn:
        return empty_figure("No records of these nets at either length yet.", title)
    fig.update_xaxes(title_text="fraction of the run (iterations / the run's total)", range=[0, 1.0])
    fig.update_yaxes(title_text="error (%)", rangemode="tozero")
    return _layout(fig, title, caption(pd.concat(drawn)) + " · lighter: training error, darker: test error")
