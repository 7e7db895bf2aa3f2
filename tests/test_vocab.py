"""The run's vocabulary (resnet_nb.vocab): one home for the names both halves use, the old homes re-exporting
the very same objects, and the schedule and grids that checkpoints and records are named by."""

from __future__ import annotations

import dataclasses

import pytest

from resnet_nb import vocab


def test_old_homes_re_export_the_same_objects() -> None:
    """Notebooks and scripts that import from the old modules get the vocabulary's objects, not copies
    (a copy of a dataclass would compare unequal to the other half's)."""
    from resnet_nb import coverage, grids, models, provenance, records, train

    assert models.ModelSpec is vocab.ModelSpec and models.standard_specs is vocab.standard_specs
    assert train.Recipe is vocab.Recipe and train.RECIPES is vocab.RECIPES and train.get_recipe is vocab.get_recipe
    assert records.RunConfig is vocab.RunConfig and records.MAX_SEED == vocab.MAX_SEED
    assert grids.grid_runs is vocab.grid_runs and grids.GRIDS is vocab.GRIDS and grids.STAND_INS is vocab.STAND_INS
    assert grids.KEEP_WEIGHTS is vocab.KEEP_WEIGHTS and grids.PAPER_PRIORITY is vocab.PAPER_PRIORITY
    assert provenance.canonical_device_name is vocab.canonical_device_name
    assert coverage.grid_runs is vocab.grid_runs


def test_the_paper_schedule_at_its_boundaries() -> None:
    """lr 0.1, /10 at 50 % and 75 % of the run (32k, 48k of 64k; 4k, 6k of the 8k grid), ResNet-110's
    warm-up at 0.01 for its first 400 iterations only."""
    paper = vocab.get_recipe("paper")
    for total in (64_000, 8_000):
        half, three_quarters = total // 2, total * 3 // 4
        got = [paper.lr_at(i, total, 20) for i in (0, half - 1, half, three_quarters - 1, three_quarters, total - 1)]
        assert got == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    assert paper.lr_at(399, 64_000, 110) == 0.01 and paper.lr_at(400, 64_000, 110) == 0.1
    assert paper.lr_at(0, 64_000, 56) == 0.1
    assert (paper.num_epochs(391), paper.total_iterations(391)) == (164, 64_000)
    report = vocab.get_recipe("report")
    assert (report.num_epochs(1563), report.total_iterations(1563)) == (10, 15_630)
    assert report.lr_at(15_000, 15_630, 20) == 0.001


def test_the_grids_runs_and_their_names() -> None:
    sizes = {name: len(vocab.grid_runs(name)) for name in vocab.GRIDS}
    assert sizes == {"report": 70, "paper": 29, "paper8k": 24, "precision": 6, "precision10": 12}
    ids = [r.run_id for r in vocab.grid_runs("paper8k")]
    assert ids[:4] == ["resnet20-A_paper_it8000_s0", "plain20_paper_it8000_s0", "resnet56-A_paper_it8000_s0",
                       "plain56_paper_it8000_s0"] and len(set(ids)) == 24
    assert [r.run_id for r in vocab.grid_runs("paper")][:3] == ["resnet20-A_paper_s0", "resnet20-A_paper_s1",
                                                              "resnet20-A_paper_s2"]
    run = vocab.grid_runs("precision10")[0]
    assert vocab.stand_in_run(run) == dataclasses.replace(run, grid="report", precision=None)
    assert vocab.recipe_fraction(vocab.grid_runs("paper8k")[0]) == 0.125
    assert vocab.recipe_fraction(vocab.grid_runs("paper")[0]) is None
    with pytest.raises(ValueError, match="unknown grid"):
        vocab.grid_runs("nope")


def test_model_keys_round_trip() -> None:
    for spec in vocab.standard_specs():
        assert vocab.ModelSpec.from_key(spec.key) == spec
    assert [s.key for s in vocab.standard_specs()][:3] == ["resnet20-A", "resnet20-B", "plain20"]
