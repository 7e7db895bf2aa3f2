"""ipywidgets explorers for live sessions (JupyterLab, Colab): a trainer and a results explorer.

In the static book the widgets show their saved state but do not react: they need a kernel.
Notebooks only call :func:`trainer` or :func:`results_explorer`; all logic lives here.
"""

from __future__ import annotations

import sys

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

from . import plots
from .data import Cifar10
from .live import Budget, book_budget, history_frame
from .models import ModelSpec
from .train import RECIPES, fit, get_recipe, resolve_device

DEPTHS = (20, 32, 44, 56)


def model_family(model: str) -> str:
    """``resnet-A``, ``resnet-B``, ``plain`` or ``torchvision`` for a model key."""
    spec = ModelSpec.from_key(model)
    return "torchvision" if spec.arch == "torchvision" else spec.family


def show(out: w.Output, fig: go.Figure) -> None:
    """Replace what ``out`` shows by ``fig``.

    The Output's content is set directly (no capture of display messages): every frontend draws
    it, and a notebook executed in batch saves it in the widget state, so the static book shows
    it. Colab draws plotly only through its own renderer, so there the figure is displayed.
    """
    if "google.colab" in sys.modules:
        out.clear_output(wait=True)
        with out:
            display(fig)
        return
    out.outputs = ({"output_type": "display_data", "data": plots.mime_bundle(fig), "metadata": {}},)


def _spec(arch: str, depth: int, shortcut: str) -> ModelSpec:
    return ModelSpec("resnet", depth, shortcut) if arch == "resnet" else ModelSpec("plain", depth)


def trainer(data: Cifar10 | None, budget: Budget | None = None, seed: int = 0) -> w.VBox:
    """Pick a model and a recipe, press Train: a progress bar, then the run's learning curves.

    Epochs and training-set size start at the budget's (``RESNET_NB_BUDGET``); the test split
    is whatever ``data`` holds (see :func:`resnet_nb.live.book_data`).
    """
    budget = budget or book_budget()
    style, narrow, wide = {"description_width": "90px"}, {"width": "300px"}, {"width": "600px"}
    arch = w.Dropdown(options=[("ResNet", "resnet"), ("plain CNN", "plain")], value="resnet", description="model",
                      style=style, layout=narrow)
    depth = w.Dropdown(options=list(DEPTHS), value=20, description="depth", style=style, layout=narrow)
    shortcut = w.Dropdown(options=[("A: zero-pad identity", "A"), ("B: 1x1 projection", "B")], value="A",
                          description="shortcut", style=style, layout=narrow)
    recipe = w.Dropdown(options=list(RECIPES), value="report", description="recipe", style=style, layout=narrow)
    epochs = w.IntSlider(value=budget.epochs, min=1, max=20, description="epochs", style=style, layout=wide)
    train_size = w.IntSlider(value=budget.train_size, min=500, max=50_000, step=500, description="train images",
                             style=style, layout=wide)
    button = w.Button(description="Train", button_style="primary", icon="play", disabled=data is None)
    log, plot = w.Output(), w.Output()
    if data is None:
        with log:
            print("No CIFAR-10 here: set RESNET_NB_DATA (or allow the torchvision download) and rerun the page.")

    def sync_shortcut(_change: object = None) -> None:
        shortcut.disabled = arch.value == "plain"

    arch.observe(sync_shortcut, names="value")
    sync_shortcut()

    def train(_button: w.Button) -> None:
        assert data is not None
        spec = _spec(arch.value, depth.value, shortcut.value)
        rec = get_recipe(recipe.value, epochs=epochs.value, train_size=train_size.value)
        button.disabled = True
        log.clear_output()
        plot.clear_output()
        try:
            with log:
                print(f"training {spec.key} with the '{rec.name}' recipe: {rec.epochs} epoch(s), "
                      f"{rec.train_size:,} training images, {len(data.test_y):,} test images")
                # the device is decided where this training starts, as the command line decides it
                result = fit(spec, rec, data, seed=seed, device=resolve_device(), progress=True)
            frame = history_frame(result, spec, rec, data, seed)
            show(plot, plots.learning_curves(frame, title=f"{spec.key}, trained live"))
        finally:
            button.disabled = False

    button.on_click(train)
    controls = w.VBox([w.HBox([arch, depth]), w.HBox([shortcut, recipe]), epochs, train_size, button])
    return w.VBox([controls, log, plot])


def results_explorer(df: pd.DataFrame, families: tuple[str, ...] = ("resnet-A", "resnet-B", "plain")) -> w.VBox:
    """Pick a depth, a metric and which families to show; the learning-curve figure re-renders."""
    depths = sorted(int(d) for d in df["depth"].unique()) if len(df) else []
    style = {"description_width": "60px"}
    depth = w.Dropdown(options=[("all", 0)] + [(str(d), d) for d in depths], value=0, description="depth",
                       style=style, layout={"width": "160px"})
    metric = w.Dropdown(options=[(label, key) for key, label in plots.METRICS.items()], value="test_acc",
                        description="metric", style=style, layout={"width": "340px"})
    shown = w.SelectMultiple(options=list(families), value=list(families), description="nets", rows=len(families),
                             style=style, layout={"width": "200px"})
    out = w.Output()

    def render(_change: object = None) -> None:
        sub = df[[model_family(m) in shown.value for m in df["model"]]] if len(df) else df
        if depth.value:
            sub = sub[sub["depth"] == depth.value]
        show(out, plots.learning_curves(sub, metrics=(metric.value,), title="Learning curves (explorer)")
             if len(sub) else plots.empty_figure("No records for this selection yet."))

    for control in (depth, metric, shown):
        control.observe(render, names="value")
    render()
    return w.VBox([w.HBox([w.VBox([depth, metric]), shown]), out])
