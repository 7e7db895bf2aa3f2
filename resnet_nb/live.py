"""Live training in the book: the ``RESNET_NB_BUDGET`` switch, data for live cells, small runs.

``smoke`` is for CI and ``pytest --nbval``: live training cells use a tiny slice of the real
data (seconds per cell on two CPU cores). ``full`` (the default for readers) is bigger but
still laptop-sized. Neither reproduces the paper: the shipped records in ``results/`` do that.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .data import Cifar10, DataError, channel_stats, load_cifar10, stratified_subset
from .records import HISTORY_KEYS, describe_recipe
from .models import ModelSpec
from .provenance import device_name
from .train import FitResult, Recipe, fit, get_recipe, resolve_device

ENV_BUDGET = "RESNET_NB_BUDGET"


@dataclass(frozen=True)
class Budget:
    """Sizes of the live (in-notebook) training runs."""

    name: str
    train_size: int  # stratified slice of the 50,000 training images
    epochs: int
    test_size: int | None  # stratified slice of the 10,000 test images; None: all of them
    depths: tuple[int, ...]  # depths trained live where a chapter compares depths
    progress: bool = True  # progress bars; off for smoke runs, whose stored outputs should stay small

    def recipe(self, name: str = "report") -> Recipe:
        """The named recipe (``report`` or ``paper``) shrunk to this budget."""
        return get_recipe(name, epochs=self.epochs, train_size=self.train_size)

    def describe(self) -> str:
        test = "all 10,000" if self.test_size is None else f"{self.test_size:,}"
        return (f"budget '{self.name}': {self.train_size:,} training images, {self.epochs} epoch(s), "
                f"{test} test images")


BUDGETS: dict[str, Budget] = {
    # CI: each live cell must stay well under a minute on 2 shared CPU cores.
    "smoke": Budget("smoke", train_size=500, epochs=2, test_size=1000, depths=(20,), progress=False),
    # Readers: a few minutes per run on a laptop CPU, enough for curves to take shape.
    "full": Budget("full", train_size=5000, epochs=3, test_size=None, depths=(20, 56)),
}


def book_budget(name: str | None = None) -> Budget:
    """The budget named by ``name``, else by ``$RESNET_NB_BUDGET``; unset or empty means ``full``."""
    chosen = name if name is not None else (os.environ.get(ENV_BUDGET) or "full")
    if chosen not in BUDGETS:
        raise ValueError(f"{ENV_BUDGET} must be one of {', '.join(BUDGETS)}, got {chosen!r}")
    return BUDGETS[chosen]


def shrink_test_split(data: Cifar10, test_size: int | None) -> Cifar10:
    """The same data with a stratified (fixed) slice of the test split; ``None`` keeps all of it."""
    if test_size is None or test_size >= len(data.test_y):
        return data
    idx = stratified_subset(data.test_y, test_size)
    return dataclasses.replace(data, test_x=data.test_x[idx], test_y=data.test_y[idx])


def book_data(budget: Budget | None = None, source: str | None = None) -> Cifar10 | None:
    """CIFAR-10 for the live cells (test split shrunk to the budget), or ``None`` with a printed fix.

    Returning ``None`` instead of raising keeps a chapter executable (its record-based
    figures still render) on a machine without the data.
    """
    budget = budget or book_budget()
    try:
        data = load_cifar10(source, progress=False)
    except DataError as exc:
        print(f"Live training is skipped: no CIFAR-10 here ({exc})")
        return None
    return shrink_test_split(data, budget.test_size)


def history_frame(result: FitResult, spec: ModelSpec, recipe: Recipe, data: Cifar10, seed: int = 0) -> pd.DataFrame:
    """A live run's history in the long format of ``load_results``, so the same figures apply."""
    config_id = f"{spec.key}_{recipe.name}_e{recipe.epochs}_n{recipe.train_size} (live)"
    device = torch.device(result.setup["device"])
    base = {"grid": "live", "run_id": f"{config_id}_s{seed}", "config_id": config_id, "model": spec.key,
            "arch": spec.arch, "depth": spec.depth, "shortcut": spec.shortcut, "stem": spec.stem,
            "recipe": recipe.name, "seed": seed, "device": device.type,
            "device_name": device_name(device), "precision": result.setup["precision"],
            "dataset_variant": data.variant, "wall_seconds": sum(r["seconds"] for r in result.history),
            "recipe_desc": describe_recipe(dataclasses.asdict(recipe))}
    # the schedule as trained, as load_results gives it from a record
    steps, total = result.setup["steps_per_epoch"], result.setup["total_iterations"]
    base |= {"total_iterations": total, "lr_drops": tuple(round(f * total) for f in recipe.lr_milestones)}
    return pd.DataFrame([base | {k: row[k] for k in HISTORY_KEYS} | {"iteration": min(row["epoch"] * steps, total)}
                         for row in result.history])


def live_fit(key: str, data: Cifar10, budget: Budget | None = None, recipe: str = "report", seed: int = 0,
             progress: bool | None = None, device: torch.device | None = None) -> tuple[FitResult, pd.DataFrame]:
    """Train the model ``key`` (e.g. ``resnet20-A``) with ``recipe`` shrunk to the budget; (result, history frame).

    A notebook's training starts here, so the device is decided here when the caller has not (CUDA, then
    MPS, then the CPU). Progress bars follow the budget unless ``progress`` says otherwise.
    """
    budget = budget or book_budget()
    spec, rec = ModelSpec.from_key(key), budget.recipe(recipe)
    result = fit(spec, rec, data, seed=seed, device=device if device is not None else resolve_device(),
                 progress=budget.progress if progress is None else progress)
    return result, history_frame(result, spec, rec, data, seed)


def test_batch(data: Cifar10, budget: Budget | None = None, size: int = 500) -> torch.Tensor:
    """The first ``size`` test images (stratified), normalised as :func:`live_fit` normalises them."""
    budget = budget or book_budget()
    train_x = data.train_x[stratified_subset(data.train_y, budget.train_size)]
    mean, std = channel_stats(train_x)
    x = data.test_x[stratified_subset(data.test_y, min(size, len(data.test_y)))].float() / 255
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def smoke_check(frame: pd.DataFrame, budget: Budget) -> str:
    """One line about a live run's *structure* (epochs, finite metrics in range), never its numbers.

    Under the ``smoke`` budget a live cell trains for real, but on 500 images for 2 epochs: its
    numbers are noise and differ between machines, so the published page prints this line (which
    nbval compares) and shows a shipped record instead. Raises if the run is malformed.
    """
    problems = []
    if frame["epoch"].tolist() != list(range(1, budget.epochs + 1)):
        problems.append(f"epochs {frame['epoch'].tolist()}, expected 1..{budget.epochs}")
    finite = np.isfinite(frame[list(HISTORY_KEYS[1:])].astype(float)).all()
    problems += [f"non-finite {col}" for col, ok in finite.items() if not ok]
    if not frame[["train_acc", "test_acc"]].stack().between(0, 1).all():
        problems.append("accuracy outside [0, 1]")
    if problems:
        raise AssertionError(f"live run of {frame['model'].iloc[0]} is malformed: {'; '.join(problems)}")
    return (f"{frame['model'].iloc[0]}: trained live for {budget.epochs} epoch(s) on {budget.train_size:,} images "
            f"(budget '{budget.name}'): history complete, metrics finite, accuracies in [0, 1].")
