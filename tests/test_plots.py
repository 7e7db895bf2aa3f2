"""Figure builders: traces, menus, captions and the offline renderer, on synthetic result frames."""

from __future__ import annotations

import pandas as pd
import plotly.io as pio
import pytest

from resnet_nb import plots

from .conftest import make_paper_results, make_results

def test_caption_names_protocol_seeds_hardware_and_data() -> None:
    text = plots.caption(make_results())
    assert "'report' recipe" in text and "Adam" in text and "batch 32" in text and "3 epochs" in text
    assert "2 seeds per configuration (mean and its 95 % t-interval)" in text
    assert "Test GPU (bf16)" in text
    assert "JPEG" in text


def test_caption_with_uneven_seeds_and_original_data() -> None:
    df = make_results({"resnet20-A": [0.8, 0.8, 0.8], "plain20": [0.5]}, seeds=3, variant="original")
    text = plots.caption(df)
    assert "1–3 seeds per configuration" in text and "original batches" in text


def test_learning_curves_traces_menus_and_units() -> None:
    df = make_results()
    fig = plots.learning_curves(df, ["resnet20-A", "plain20", "resnet56-A"], depth_menu=True)
    assert len(fig.data) == 6  # a band and a mean line per model
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["resnet20-A (n=2)", "plain20 (n=2)", "resnet56-A (n=2)"]
    assert lines[0].y[-1] == pytest.approx(81.0)  # mean of 80 and 82, in %
    metric_menu, depth_menu = fig.layout.updatemenus
    assert [b.label for b in metric_menu.buttons] == [plots.METRICS[m] for m in
                                                       ("test_acc", "test_loss", "train_acc", "train_loss")]
    assert [b.label for b in depth_menu.buttons] == ["all depths", "depth 20", "depth 56"]
    assert fig.layout.xaxis.title.text == "epoch" and "%" in fig.layout.yaxis.title.text
    assert "Test GPU" in fig.layout.annotations[-1].text  # the caption is part of the figure


def test_learning_curves_band_only_with_several_seeds() -> None:
    fig = plots.learning_curves(make_results(seeds=1), ["resnet20-A"])
    assert fig.data[0].opacity == 0  # std of one seed is undefined: no band


def test_missing_models_give_a_figure_that_says_so() -> None:
    fig = plots.learning_curves(make_results(), ["plain44"])
    assert "No records" in fig.layout.annotations[0].text
    empty = make_results().iloc[0:0]
    assert "No records" in plots.final_metric_chart(empty).layout.annotations[0].text
    assert plots.caption(empty) == "no records"


def test_final_metric_chart_error_bars() -> None:
    fig = plots.final_metric_chart(make_results(), ["resnet20-A", "resnet56-A", "plain20", "plain56"])
    names = [t.name for t in fig.data]
    assert names == ["ResNet, option A (n=2)", "plain (n=2)"] or sorted(names) == sorted(
        ["ResNet, option A (n=2)", "plain (n=2)"])
    resnet = next(t for t in fig.data if t.name.startswith("ResNet"))
    assert list(resnet.x) == ["20", "56"] and resnet.mode == "lines+markers"
    # 95 % t-interval of a mean of 2 seeds: t_{1, 0.975} = 12.7062 times s / sqrt(2)
    assert resnet.error_y.array[0] == pytest.approx(12.7062047 * pd.Series([80.0, 82.0]).std() / 2 ** 0.5)
    assert "95 % t-interval" in fig.layout.annotations[-1].text


def test_final_metric_chart_does_not_join_single_seed_points() -> None:
    df = make_results({"resnet20-A": [0.80, 0.82, 0.81], "resnet56-A": [0.79]}, seeds=3)
    fig = plots.final_metric_chart(df, ["resnet20-A", "resnet56-A"])
    (trace,) = fig.data
    assert trace.mode == "markers" and trace.name == "ResNet, option A (n=1–3)"
    assert list(trace.marker.symbol) == ["circle", "circle-open"]
    assert trace.error_y.array[1] == 0  # one seed: no interval


def test_learning_curve_band_is_the_95_interval() -> None:
    df = make_results({"resnet20-A": [0.80, 0.82, 0.84]}, seeds=3, epochs=1)
    band = plots.learning_curves(df, ["resnet20-A"]).data[0]
    half = 4.30265273 * 2.0 / 3 ** 0.5  # t_{2, 0.975} * s / sqrt(n), s = 2 points
    assert max(band.y) == pytest.approx(82.0 + half) and min(band.y) == pytest.approx(82.0 - half)


def test_colours_are_stable_and_distinct() -> None:
    keys = ["resnet20-A", "resnet56-A", "resnet20-B", "plain20", "plain56", "tv-resnet18-imagenet", "tv-resnet18-cifar"]
    colours = [plots.config_color(k) for k in keys]
    assert len(set(colours)) == len(keys)
    assert colours == [plots.config_color(k) for k in keys]


def test_wrap_keeps_lines_short() -> None:
    text = " · ".join(["a" * 40, "b " * 60, "c" * 10])
    assert all(len(line) <= 97 for line in plots._wrap(text).split("<br>"))


def test_book_renderer_html_is_offline_and_deterministic() -> None:
    previous = pio.renderers.default
    try:
        plots.use_book_renderer()
        assert pio.renderers.default == "plotly_mimetype+book_html"
        fig = plots.empty_figure("nothing")
        html = plots.book_html(fig.to_dict())
        assert html == plots.book_html(fig.to_dict())
        assert "cdn" not in html.lower() and "mathjax" not in html.lower()
        assert "Plotly.newPlot" in html and len(html) < 20_000  # plotly.js itself is not inlined
    finally:
        pio.renderers.default = previous


def test_analysis_figures() -> None:
    grads = pd.DataFrame({"model": ["plain8"] * 2 + ["resnet8-A"] * 2, "depth": 8, "layer": [1, 2, 1, 2],
                          "grad_norm": [1.0, 2.0, 1.5, 1.0]})
    assert len(plots.gradient_figure(grads).data) == 2
    two = plots.gradient_figure(pd.concat([grads.assign(init="default"), grads.assign(init="he")]))
    assert [t.visible for t in two.data] == [True, True, False, False]  # opens on the default init
    assert [b.label for b in two.layout.updatemenus[0].buttons] == [
        "PyTorch default init", "He init (the paper's)", "both inits"]
    responses = grads.rename(columns={"grad_norm": "response_std"}).assign(rank=[2, 1, 1, 2])
    assert len(plots.response_figure(responses, note="n").layout.updatemenus[0].buttons) == 2


def test_interval_table_formats_means_intervals_and_single_seeds() -> None:
    df = make_results({"resnet20-A": [0.80, 0.82, 0.84], "plain20": [0.60]}, seeds=3)
    table = plots.interval_table(df, ["resnet20-A", "plain20", "plain56"])
    acc = plots.METRICS["test_acc"]
    half = 4.30265273 * 2.0 / 3 ** 0.5
    assert table.loc["resnet20-A", acc] == f"82.00 [{82 - half:.2f}, {82 + half:.2f}]"
    assert table.loc["plain20", acc] == "60.00 (one seed)"
    assert table.loc["plain56", acc] == "no records" and table.loc["plain56", "seeds"] == 0
    assert list(table["seeds"]) == [3, 1, 0] and not table.isna().any().any()


def test_caption_uses_each_records_own_recipe() -> None:
    from resnet_nb.records import describe_recipe

    df = make_results(seeds=1)
    df.loc[df["model"] == "plain20", "recipe_desc"] = "SGD lr 0.1, momentum 0.9, batch 128, pad-4 crop + flip"
    text = plots.caption(df)
    assert "'report' recipe (Adam lr 0.001, batch 32, no augmentation, 3 epochs)" in text
    assert "'report' recipe (SGD lr 0.1, momentum 0.9, batch 128, pad-4 crop + flip, 3 epochs)" in text
    paper = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 128, "augment": True}
    assert describe_recipe(paper) == "SGD lr 0.1, momentum 0.9, weight decay 0.0001, batch 128, pad-4 crop + flip"

def test_paper_error_curves_from_records() -> None:
    from resnet_nb.plots import paper_error_curves

    df = make_paper_results({"plain20": 2, "resnet20-A": 3}, epochs=3, grid="paper8k", total=1000, drops=(500, 750))
    fig = paper_error_curves(df, pairs=(("plain20", "resnet20-A"),))
    lines = [t for t in fig.data if t.name]
    assert [t.name for t in lines] == ["plain20 train (n=2)", "plain20 test (n=2)", "resnet20-A train (n=3)",
                                       "resnet20-A test (n=3)"]
    assert sum(t.fill == "toself" for t in fig.data) == 4  # a 95 % band under every curve (n >= 2)
    train = lines[0]
    assert train.line.dash == "dash" and lines[1].line.dash == "solid"
    # x = the iteration each epoch ended at, in thousands; the last epoch stops at the run's 1,000
    assert list(train.x) == pytest.approx([0.391, 0.782, 1.0])
    # error = 100 - mean accuracy over the seeds: epoch 1, seeds 0 and 1 -> acc 60.0 and 61.0 %
    assert train.y[0] == pytest.approx(39.5)
    # the drops come from the records (here 500 and 750), not from the recipe table (32k, 48k)
    assert [s.x0 for s in fig.layout.shapes] == [0.5, 0.75, 0.5, 0.75]
    notes = " ".join(a.text.replace("<br>", " ") for a in fig.layout.annotations)
    assert "at 1,000 iterations" in notes and "÷10 at iteration 500 and 750" in notes


def test_paper_error_curves_say_what_is_missing() -> None:
    from resnet_nb.plots import paper_error_curves

    empty = paper_error_curves(make_paper_results({}))
    assert "No records of these nets yet" in empty.layout.annotations[0].text
    assert empty.layout.annotations[0].text.endswith("Make them with: python -m resnet_nb grid run paper")
    part = paper_error_curves(make_paper_results({"resnet20-A": 1}))
    assert len(part.data) == 2
    notes = " ".join(a.text.replace("<br>", " ") for a in part.layout.annotations)
    assert "Not yet run: plain20, plain32, resnet32-A, plain44, resnet44-A, plain56, resnet56-A" in notes


def test_shortening_curves_align_runs_of_two_lengths_by_fraction() -> None:
    from resnet_nb.plots import shortening_curves

    short = make_paper_results({"resnet20-A": 1}, epochs=3, grid="paper8k", total=1000, drops=(500, 750))
    full = make_paper_results({"resnet20-A": 1}, epochs=6, total=2000, steps=391, drops=(1000, 1500))
    fig = shortening_curves({"1/8 length": short, "full length": full}, ("resnet20-A", "plain20"))
    assert [t.name for t in fig.data] == ["resnet20-A train, 1/8 length (n=1)", "resnet20-A test, 1/8 length (n=1)",
                                          "resnet20-A train, full length (n=1)", "resnet20-A test, full length (n=1)"]
    assert list(fig.data[0].x) == pytest.approx([0.391, 0.782, 1.0])  # iteration / the run's own total
    assert list(fig.data[2].x) == pytest.approx([0.1955, 0.391, 0.5865, 0.782, 0.9775, 1.0])
    assert fig.data[0].line.dash == "solid" and fig.data[2].line.dash == "dash"
    assert fig.data[1].y[0] == pytest.approx(42.0)  # 100 - (0.5 + 0.08) * 100
    empty = shortening_curves({"1/8 length": short.iloc[0:0]}, ("resnet20-A",))
    assert "No records" in empty.layout.annotations[0].text
