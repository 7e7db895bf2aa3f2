"""The budget switch, live runs and the ipywidgets explorers (without a kernel)."""

from __future__ import annotations

import pytest

from resnet_nb import live, plots, widgets
from resnet_nb.data import Cifar10
from resnet_nb.train import FitResult

from .conftest import RESULT_COLUMNS, make_results


def test_book_budget_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(live.ENV_BUDGET, raising=False)
    assert live.book_budget().name == "full"
    monkeypatch.setenv(live.ENV_BUDGET, "smoke")
    smoke = live.book_budget()
    assert smoke.name == "smoke" and smoke.train_size <= 1000 and 0 < smoke.test_size < 10_000
    assert smoke.recipe().epochs == smoke.epochs and smoke.recipe().train_size == smoke.train_size
    monkeypatch.setenv(live.ENV_BUDGET, "huge")
    with pytest.raises(ValueError, match="smoke, full"):
        live.book_budget()


def test_shrink_test_split_is_stratified(tiny_data: Cifar10) -> None:
    small = live.shrink_test_split(tiny_data, 20)
    assert len(small.test_y) == 20 and small.test_y.bincount().tolist() == [2] * 10
    assert live.shrink_test_split(tiny_data, None) is tiny_data


def test_book_data_without_data_prints_the_fix(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                               tmp_path) -> None:  # noqa: ANN001
    assert live.book_data(live.BUDGETS["smoke"], source=str(tmp_path / "missing.zip")) is None
    assert "Live training is skipped" in capsys.readouterr().out


def test_live_fit_gives_a_results_frame(tiny_data: Cifar10) -> None:
    budget = live.Budget("test", train_size=100, epochs=1, test_size=None, depths=(8,))
    result, frame = live.live_fit("resnet8-A", tiny_data, budget, progress=False)
    assert list(frame.columns) == RESULT_COLUMNS
    assert frame["grid"].unique().tolist() == ["live"] and frame["epoch"].tolist() == [1]
    assert frame["dataset_variant"].iloc[0] == tiny_data.variant
    x = live.test_batch(tiny_data, budget, size=20)
    assert x.shape == (20, 3, 32, 32) and abs(float(x.mean())) < 1.0


def test_trainer_without_data_disables_training() -> None:
    box = widgets.trainer(None, live.BUDGETS["smoke"])
    button = box.children[0].children[-1]
    assert button.description == "Train" and button.disabled


def test_trainer_click_trains_the_chosen_model(tiny_data: Cifar10, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_fit(spec, recipe, data, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append((spec.key, recipe.name, recipe.epochs, recipe.train_size))
        history = [{"epoch": 1, "train_loss": 2.0, "train_acc": 0.2, "test_loss": 2.1, "test_acc": 0.2, "seconds": 1.0}]
        return FitResult(model=None, history=history, setup={"device": "cpu", "precision": "fp32"})

    monkeypatch.setattr(widgets, "fit", fake_fit)
    box = widgets.trainer(tiny_data, live.BUDGETS["smoke"])
    (row1, row2, epochs, train_size, button) = box.children[0].children
    arch, depth = row1.children
    shortcut, recipe = row2.children
    arch.value = "plain"
    assert shortcut.disabled  # a plain net has no shortcut
    depth.value, recipe.value, epochs.value = 32, "paper", 2
    button.click()
    assert calls == [("plain32", "paper", 2, live.BUDGETS["smoke"].train_size)]
    assert not button.disabled


def test_results_explorer_rerenders_on_change() -> None:
    box = widgets.results_explorer(make_results())
    (controls, shown), out = box.children[0].children, box.children[1]
    depth, metric = controls.children
    assert [v for _, v in depth.options] == [0, 20, 56]

    def shown_figure() -> dict:
        (output,) = out.outputs
        assert "Plotly.newPlot" in output["data"]["text/html"]
        return output["data"]["application/vnd.plotly.v1+json"]

    assert len(shown_figure()["data"]) == 12  # six models, band + line each
    depth.value = 56
    metric.value = "train_loss"
    shown.value = ("plain",)
    figure = shown_figure()
    assert [t["name"] for t in figure["data"] if t.get("mode")] == ["plain56 (n=2)"]
    assert figure["layout"]["yaxis"]["title"]["text"] == plots.METRICS["train_loss"]
    empty = widgets.results_explorer(make_results().iloc[0:0])
    (empty_controls, _), empty_out = empty.children[0].children, empty.children[1]
    assert [v for _, v in empty_controls.children[0].options] == [0]  # no depth to pick
    (empty_output,) = empty_out.outputs
    assert "No records for this selection yet." in empty_output["data"]["text/html"]
    assert widgets.model_family("resnet44-B") == "resnet-B" and widgets.model_family("plain56") == "plain"


def test_smoke_check_names_structure_not_numbers_and_refuses_malformed_runs() -> None:
    budget = live.BUDGETS["smoke"]
    frame = make_results({"resnet20-A": [0.3]}, seeds=1, epochs=budget.epochs)
    line = live.smoke_check(frame, budget)
    assert line == ("resnet20-A: trained live for 2 epoch(s) on 500 images (budget 'smoke'): history complete, "
                    "metrics finite, accuracies in [0, 1].")
    short = frame[frame["epoch"] == 1]
    with pytest.raises(AssertionError, match="expected 1..2"):
        live.smoke_check(short, budget)
    bad = frame.copy()
    bad.loc[bad.index[-1], "test_loss"] = float("nan")
    with pytest.raises(AssertionError, match="non-finite test_loss"):
        live.smoke_check(bad, budget)
