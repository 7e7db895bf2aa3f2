"""The run's vocabulary: what a run is, named without torch.

Model keys and :class:`ModelSpec`, :class:`Recipe` with its schedule (``lr_at``, ``num_epochs``,
``total_iterations``) and :data:`RECIPES`, :class:`RunConfig` (a run's identity and ``run_id``) and the
named grids (:func:`grid_runs`, :data:`GRIDS`, priorities, :data:`KEEP_WEIGHTS`, :data:`STAND_INS`).

This module is the bottom of the package: it imports nothing of it and no torch, so both halves stand
on it. The training half (``models``, ``data``, ``train``, ``stacked``, ``grids``' runner, ``__main__``)
turns these names into nets and records; the evidence half (``records``' reading, ``stats``, ``readings``,
``claims``, ``robustness``, ``forest``, ``facts``, ``coverage``, ``plots``, ``tables``) reads the records
by them. The old homes (``models.ModelSpec``, ``train.Recipe``, ``records.RunConfig``, ``grids.grid_runs``,
...) re-export these names, so notebooks and scripts keep working.

What is pinned here is pinned in checkpoints and records too: ``dataclasses.asdict(recipe)`` is part of a
checkpoint's identity and ``run_id`` names every record, so the fields, their order and the recipes'
values must not change (``tests/test_grids.py::test_paper8k_checkpoint_identity_is_pinned``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Shortcut = Literal["A", "B"]
Arch = Literal["resnet", "plain", "torchvision"]
Stem = Literal["imagenet", "cifar"]

NUM_CLASSES = 10
TORCHVISION_DEPTHS = (18, 34)
MAX_SEED = 2**31 - 1  # seeds are 0..MAX_SEED: every generator (torch, numpy, the loaders' seed*1e6+epoch) takes them


def blocks_per_stage(depth: int) -> int:
    """n for a 6n+2 network; a clear error for any other depth."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(
            f"depth must be of the form 6n+2 with n >= 1 (20, 32, 44, 56, 110, 1202, ...), got {depth!r}"
        )
    return (depth - 2) // 6


@dataclass(frozen=True)
class ModelSpec:
    """What to build. ``arch``: ``resnet`` (needs ``shortcut``), ``plain``, ``torchvision`` (needs ``stem``)."""

    arch: Arch
    depth: int
    shortcut: Shortcut | None = None
    stem: Stem | None = None

    def __post_init__(self) -> None:
        if self.arch == "resnet":
            blocks_per_stage(self.depth)
            if self.shortcut not in ("A", "B"):
                raise ValueError(f"a resnet needs shortcut 'A' or 'B', got {self.shortcut!r}")
            if self.stem is not None:
                raise ValueError("stem applies to torchvision models only")
        elif self.arch == "plain":
            blocks_per_stage(self.depth)
            if self.shortcut is not None or self.stem is not None:
                raise ValueError("a plain net has no shortcut and no stem option")
        elif self.arch == "torchvision":
            if self.depth not in TORCHVISION_DEPTHS:
                raise ValueError(f"torchvision depth must be one of {TORCHVISION_DEPTHS}, got {self.depth!r}")
            if self.stem not in ("imagenet", "cifar"):
                raise ValueError(f"a torchvision model needs stem 'imagenet' or 'cifar', got {self.stem!r}")
            if self.shortcut is not None:
                raise ValueError("torchvision models use their own (projection) shortcuts; leave shortcut unset")
        else:
            raise ValueError(f"arch must be 'resnet', 'plain' or 'torchvision', got {self.arch!r}")

    @property
    def key(self) -> str:
        """Short stable name: ``resnet20-A``, ``plain56``, ``tv-resnet18-cifar``."""
        if self.arch == "resnet":
            return f"resnet{self.depth}-{self.shortcut}"
        if self.arch == "plain":
            return f"plain{self.depth}"
        return f"tv-resnet{self.depth}-{self.stem}"

    @property
    def family(self) -> str:
        """``resnet-A``, ``resnet-B``, ``plain``, ``tv-imagenet`` or ``tv-cifar``: what colours and lines follow."""
        if self.arch == "resnet":
            return f"resnet-{self.shortcut}"
        return "plain" if self.arch == "plain" else f"tv-{self.stem}"

    @property
    def label(self) -> str:
        """For readers: ``ResNet-20 (A)``, ``plain-56``, ``torchvision ResNet-18 (CIFAR stem)``."""
        if self.arch == "resnet":
            return f"ResNet-{self.depth} ({self.shortcut})"
        if self.arch == "plain":
            return f"plain-{self.depth}"
        return f"torchvision ResNet-{self.depth} ({'CIFAR' if self.stem == 'cifar' else 'ImageNet'} stem)"

    @classmethod
    def from_key(cls, key: str) -> "ModelSpec":
        """Inverse of :attr:`key`."""
        try:
            if key.startswith("tv-resnet"):
                depth, stem = key.removeprefix("tv-resnet").split("-")
                return cls("torchvision", int(depth), stem=stem)  # type: ignore[arg-type]
            if key.startswith("plain"):
                return cls("plain", int(key.removeprefix("plain")))
            if key.startswith("resnet"):
                depth, shortcut = key.removeprefix("resnet").split("-")
                return cls("resnet", int(depth), shortcut=shortcut)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"not a model key: {key!r} ({exc})") from None
        raise ValueError(f"not a model key: {key!r} (e.g. resnet20-A, plain56, tv-resnet18-cifar)")


def standard_specs() -> list[ModelSpec]:
    """Every model the book compares: 20/32/44/56/110 x (A, B, plain) and torchvision 18/34 x stems."""
    specs: list[ModelSpec] = []
    for depth in (20, 32, 44, 56, 110):
        specs += [ModelSpec("resnet", depth, "A"), ModelSpec("resnet", depth, "B"), ModelSpec("plain", depth)]
    for depth in TORCHVISION_DEPTHS:
        specs += [ModelSpec("torchvision", depth, stem="imagenet"), ModelSpec("torchvision", depth, stem="cifar")]
    return specs


TORCHVISION_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}  # basic blocks per stage, as torchvision builds them


def shape_facts(spec: ModelSpec) -> dict[str, int]:
    """``params`` and ``weight_layers`` of the net ``spec`` names, counted from its shape without building it
    (so ``python -m resnet_nb models`` answers without torch); ``tests/test_models.py`` checks every
    standard model against the count of the built net.

    Every net here is a stem conv + BN, stages of basic blocks (two 3x3 conv + BN), global pooling and a
    linear layer; a block that changes width or stride has a 1x1 projection + BN in option B and in
    torchvision's nets (not counted as a weight layer, as in the paper), none in option A or a plain net.
    """
    if spec.arch == "torchvision":
        stem_kernel, stem_width, widths = (7 if spec.stem == "imagenet" else 3), 64, (64, 128, 256, 512)
        blocks, projection = TORCHVISION_BLOCKS[spec.depth], True
    else:
        n = blocks_per_stage(spec.depth)
        stem_kernel, stem_width, widths, blocks = 3, 16, (16, 32, 64), (n, n, n)
        projection = spec.arch == "resnet" and spec.shortcut == "B"
    params = 3 * stem_width * stem_kernel**2 + 2 * stem_width  # stem conv (no bias) + BN (weight, bias)
    width = stem_width
    for stage, (planes, count) in enumerate(zip(widths, blocks, strict=True)):
        for block in range(count):
            changes = block == 0 and (stage > 0 or width != planes)
            params += width * planes * 9 + 2 * planes + planes * planes * 9 + 2 * planes
            if projection and changes:
                params += width * planes + 2 * planes
            width = planes
    params += width * NUM_CLASSES + NUM_CLASSES
    return {"params": params, "weight_layers": 2 + 2 * sum(blocks)}


def model_table(specs: list[ModelSpec] | None = None) -> list[dict[str, object]]:
    """One row per model: key, arch, depth, shortcut, stem, params, weight layers (:func:`shape_facts`)."""
    return [{"model": spec.key, "arch": spec.arch, "depth": spec.depth, "shortcut": spec.shortcut or "-",
             "stem": spec.stem or "-", **shape_facts(spec)} for spec in specs or standard_specs()]


@dataclass(frozen=True)
class Recipe:
    """A training protocol. Override fields with :meth:`with_overrides`."""

    name: str
    optimizer: Literal["adam", "sgd"]
    lr: float
    batch_size: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    epochs: int | None = None  # None: derive from ``iterations``
    iterations: int | None = None
    lr_milestones: tuple[float, ...] = ()  # fractions of the total iterations where lr is divided by 10
    augment: bool = False
    init: Literal["default", "he"] = "default"
    warmup_iterations: int = 0  # at ``warmup_lr``, only for depth >= ``warmup_min_depth``
    warmup_lr: float = 0.0
    warmup_min_depth: int = 0
    train_size: int | None = None  # None: all 50,000 training images

    def with_overrides(self, **changes: Any) -> "Recipe":
        """A copy with some fields changed; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def num_epochs(self, steps_per_epoch: int) -> int:
        if self.epochs is not None:
            return self.epochs
        assert self.iterations is not None
        return math.ceil(self.iterations / steps_per_epoch)

    def total_iterations(self, steps_per_epoch: int) -> int:
        """Steps the whole run takes: the epochs' steps, or the recipe's iteration count (the paper's 64k)."""
        if self.epochs is not None:
            return self.epochs * steps_per_epoch
        assert self.iterations is not None
        return self.iterations

    def lr_at(self, iteration: int, total_iterations: int, depth: int) -> float:
        if self.warmup_iterations and depth >= self.warmup_min_depth and iteration < self.warmup_iterations:
            return self.warmup_lr
        drops = sum(iteration >= frac * total_iterations for frac in self.lr_milestones)
        return self.lr * 0.1**drops


RECIPES: dict[str, Recipe] = {
    # The student report: PyTorch's Adam defaults, small batches, no augmentation.
    "report": Recipe(name="report", optimizer="adam", lr=1e-3, batch_size=32, epochs=10),
    # The paper, section 4.2: SGD + momentum, lr 0.1 divided by 10 at 32k and 48k of 64k
    # iterations (milestones 0.5 and 0.75 of training), weight decay 1e-4, batch 128,
    # pad-4 crop + flip, He init. ResNet-110 warms up at lr 0.01 for ~400 iterations
    # because 0.1 is "slightly too large to start converging".
    "paper": Recipe(name="paper", optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128,
                    iterations=64_000, lr_milestones=(0.5, 0.75), augment=True, init="he",
                    warmup_iterations=400, warmup_lr=0.01, warmup_min_depth=110),
}


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """A named recipe with some fields overridden (``None`` keeps the recipe's own value).

    ``iterations`` shortens (or lengthens) a recipe given in iterations: its learning-rate drops stay at
    the same fractions of the run (the paper's 50 % and 75 %).
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    if overrides.get("iterations") is not None:
        if recipe.iterations is None:
            raise ValueError(f"recipe {name!r} is given in epochs; override its epochs, not its iterations")
        if int(overrides["iterations"]) < 1:
            raise ValueError(f"iterations must be >= 1, got {overrides['iterations']}")
    return recipe.with_overrides(**overrides)


@dataclass(frozen=True)
class RunConfig:
    grid: str
    model: str  # ModelSpec.key
    recipe: str
    seed: int
    epochs: int | None = None  # None: the recipe's own
    train_size: int | None = None  # None: all training images
    precision: str | None = None  # None: the device's default (recorded in provenance); else fixed
    iterations: int | None = None  # None: the recipe's own; else a shortened (or longer) run of it

    def __post_init__(self) -> None:
        """A run is named by its fields (``run_id``): a seed or a count of the wrong kind is refused here,
        before any data is loaded, not deep in training (or as a second name for the same run)."""
        for name in ("grid", "model", "recipe"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be a whole number from 0 to {MAX_SEED}, got {self.seed!r}")
        for name in ("epochs", "train_size", "iterations"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1 (or None: the recipe's), got {value!r}")
        if self.precision not in (None, "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16, fp16 or None, got {self.precision!r}")

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_key(self.model)

    @property
    def run_id(self) -> str:
        extra = (f"_e{self.epochs}" if self.epochs is not None else "") + (
            f"_it{self.iterations}" if self.iterations is not None else "") + (
            f"_n{self.train_size}" if self.train_size is not None else "") + (
            f"_{self.precision}" if self.precision is not None else "")
        return f"{self.model}_{self.recipe}{extra}_s{self.seed}"  # the seed last: config_id strips it

    @property
    def config_id(self) -> str:
        """The run without its seed: what seeds are averaged over."""
        return self.run_id.rsplit("_s", 1)[0]

    def recipe_obj(self) -> Recipe:
        return get_recipe(self.recipe, epochs=self.epochs, train_size=self.train_size, iterations=self.iterations)


def recipe_fraction(run: RunConfig) -> float | None:
    """The share of its recipe's iterations a run trains (1/8 for the shortened paper grid); None when the
    run keeps its recipe's length."""
    full = get_recipe(run.recipe).iterations
    return None if run.iterations is None or not full else run.iterations / full


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def canonical_device_name(name: str) -> str:
    """``name`` as :func:`device_name` writes it now: records made before spell one thread ``(1 threads)``.

    Records are never rewritten, so every reader that groups or compares device names goes through
    this (``records.trained_on``), and old and new records of one device stay one device.
    """
    return re.sub(r" \(1 threads\)$", " (1 thread)", name)


# The report grid: depth priority 20 and 56 first (the two ends of the comparison).
REPORT_DEPTHS = (20, 56, 32, 44)


def grid_runs(name: str, seeds: Iterable[int] | None = None) -> list[RunConfig]:
    """Every run of a named grid, in priority order: seed-major, then depth priority, then model."""
    if name == "report":
        models = [spec.key for d in REPORT_DEPTHS
                  for spec in (ModelSpec("resnet", d, "A"), ModelSpec("plain", d), ModelSpec("resnet", d, "B"))]
        models += [ModelSpec("torchvision", 18, stem="imagenet").key, ModelSpec("torchvision", 18, stem="cifar").key]
        recipe, default_seeds = "report", range(5)
    elif name == "paper":
        return paper_runs(seeds)
    elif name == "paper8k":
        return paper8k_runs(seeds)
    elif name == "precision":
        # Does mixed precision cost accuracy? ResNet-20, report recipe, 1 epoch, fp32 vs bf16.
        seeds = list(range(3) if seeds is None else seeds)
        return [RunConfig(name, "resnet20-A", "report", s, epochs=1, precision=p)
                for s in seeds for p in ("fp32", "bf16")]
    elif name == "precision10":
        # Can CPU-bf16 and GPU-fp32 records share one mean? The report recipe's full 10 epochs, at the
        # depth where the records disagree most (plain-56) and its ResNet, fp32 vs bf16, 3 seeds each.
        seeds = list(range(3) if seeds is None else seeds)
        return [RunConfig(name, m, "report", s, precision=p)
                for s in seeds for m in ("plain56", "resnet56-A") for p in ("fp32", "bf16")]
    else:
        raise ValueError(f"unknown grid {name!r}; choose one of: {', '.join(GRIDS)}")
    seeds = list(default_seeds if seeds is None else seeds)
    return [RunConfig(name, m, recipe, s) for s in seeds for m in models]


GRIDS = ("report", "paper", "paper8k", "precision", "precision10")


# The paper grid (Table 6, Figure 6), in the order a GPU lease takes it: the pairs of the
# degradation figure at both ends of the depth range first, then ResNet-110, then the rest.
PAPER_PRIORITY = (ModelSpec("resnet", 20, "A"), ModelSpec("plain", 20), ModelSpec("resnet", 56, "A"),
                  ModelSpec("plain", 56), ModelSpec("resnet", 110, "A"), ModelSpec("resnet", 32, "A"),
                  ModelSpec("plain", 32), ModelSpec("resnet", 44, "A"), ModelSpec("plain", 44))
PAPER_SEEDS = 3
PAPER_SEEDS_110 = 5  # the paper reports ResNet-110's best and mean ± std of 5 runs


def paper_runs(seeds: Iterable[int] | None = None) -> list[RunConfig]:
    """The paper grid, config by config in :data:`PAPER_PRIORITY` (so a config's seeds can train as one
    seed-parallel group); 3 seeds each, 5 for ResNet-110, unless ``seeds`` is given."""
    chosen = None if seeds is None else list(seeds)
    runs = []
    for spec in PAPER_PRIORITY:
        default = range(PAPER_SEEDS_110 if spec.depth == 110 else PAPER_SEEDS)
        runs += [RunConfig("paper", spec.key, "paper", s) for s in (default if chosen is None else chosen)]
    return runs


# The paper's recipe at 1/8 of its length, for two CPU cores: 8,000 iterations (~20.5 epochs) instead of
# 64,000, the learning rate divided by 10 at the same fractions (50 %, 75 %: 4,000 and 6,000). Everything
# else is the paper's. Plain and ResNet (A) at depths 20-56, 3 seeds; the order makes the chapter
# informative early: seed 0's depth-20 and depth-56 pairs, then its other depths, then the other seeds.
PAPER8K_ITERATIONS = 8_000
PAPER8K_DEPTHS = (20, 56, 32, 44)


def paper8k_runs(seeds: Iterable[int] | None = None) -> list[RunConfig]:
    """The shortened paper grid, seed-major in :data:`PAPER8K_DEPTHS` order, ResNet before plain."""
    chosen = list(range(PAPER_SEEDS) if seeds is None else seeds)
    return [RunConfig("paper8k", spec.key, "paper", s, iterations=PAPER8K_ITERATIONS)
            for s in chosen for d in PAPER8K_DEPTHS for spec in (ModelSpec("resnet", d, "A"), ModelSpec("plain", d))]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/k"`` with 1 <= i <= k."""
    try:
        i, k = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/k (e.g. 2/4), got {text!r}") from None
    if not 1 <= i <= k:
        raise ValueError(f"shard i/k needs 1 <= i <= k, got {text!r}")
    return i, k


def shard(runs: list[RunConfig], i: int, k: int) -> list[RunConfig]:
    """Round-robin over the priority order: shards are disjoint, cover the grid, and each gets a mix."""
    return [r for n, r in enumerate(runs) if n % k == i - 1]


# Grids whose runs of these seeds keep their final weights next to their records (fp16, sealed, loaded
# without running code): the paper's Figure 7 (layer responses) is computed from the nets themselves.
KEEP_WEIGHTS: dict[str, tuple[int, ...]] = {"paper": (0,), "paper8k": (0,)}


# A grid whose runs fix the precision may find them already trained by another grid that leaves it to
# the device: where the device's default is bf16 (these CPUs), the report grid's runs are precision10's
# bf16 runs; where it is fp32 (a GPU), its fp32 runs. Same model, recipe, seed, epochs and data: the same
# run, provided it ran on the same device (thread count included), since precision10 pairs its fp32 and
# bf16 runs of a seed on one device.
STAND_INS = {"precision10": "report"}


def stand_in_run(run: RunConfig) -> RunConfig | None:
    """The run of another grid (:data:`STAND_INS`) that is ``run`` when made at ``run``'s precision, or None."""
    other = STAND_INS.get(run.grid)
    if other is None or run.precision is None:
        return None
    return dataclasses.replace(run, grid=other, precision=None)


# The benchmark's variants (:mod:`resnet_nb.bench`), here so that the command line lists them without torch.
BENCH_VARIANTS = ("baseline", "ours", "ours -resident", "ours -channels_last", "ours -mixed_precision",
                  "ours -cuda_graph", "ours +compile")
BENCH_CUDA_ONLY = ("ours -cuda_graph", "ours +compile")
