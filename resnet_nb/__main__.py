"""Command line: ``python -m resnet_nb {models,data,train,grid,bench}`` (see DESCRIPTION for --help).

Errors in arguments or data print one line and exit with status 2, never a traceback.
SIGTERM stops like Ctrl-C: finished epochs stay checkpointed and the run's lock is released.
A Ctrl-C or SIGTERM while the modules load (torch takes seconds to import) exits at once with one
line and status 130: the handler is installed before the heavy imports, and exits without
unwinding a half-imported torch (which can abort from C++).
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def _exit_while_loading(signum: int, frame: object) -> None:
    """Before ``main`` runs nothing is computed, held or half-written: leave at once, in one line."""
    os.write(2, b"interrupted while starting; nothing was done\n")
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # as a command only: an importing program keeps its own handlers
    for _sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(_sig, _exit_while_loading)

import argparse  # noqa: E402 - after the early handlers, on purpose
import fnmatch  # noqa: E402
import re  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

# Only the torch-free vocabulary at load time: `models` and --help answer without importing torch; each
# command imports the training half it needs (the device, data, runner) when it runs.
from .files import LockedError, check_writable, describe, lock_holder  # noqa: E402
from .records import MAX_SEED, RESULTS_DIR, RecordError, RunConfig, record_path  # noqa: E402
from .vocab import (BENCH_VARIANTS, GRIDS, RECIPES, STAND_INS, ModelSpec, grid_runs, model_table,  # noqa: E402
                    parse_shard, shard)

MAX_SEEDS = 1000  # a typo like 0-100000000 must not queue a hundred million runs
# Bounds that turn a typo into one line before any data is loaded, not hours of work or gigabytes of model:
MAX_DEPTH = 1202  # the deepest net of the paper (6n+2 with n = 200)
MAX_EPOCHS = 1000  # the paper's recipe is ~164 epochs
TRAIN_IMAGES = 50_000  # CIFAR-10's training split


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (None, a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002,ANN003
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, not usage + message
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_seeds(text: str) -> list[int]:
    """``"0-4"``, ``"0,2,3"`` or ``"1"``: at least one and at most ``MAX_SEEDS`` distinct seeds, each >= 0."""
    span = re.fullmatch(r"(\d+)-(\d+)", text.strip())
    if span:
        seeds: range | list[int] = range(int(span[1]), int(span[2]) + 1)
        if not seeds:
            raise ValueError(f"seed range {text!r} is empty (write low-high, e.g. 0-4)")
    elif re.fullmatch(r"\s*-?\d+\s*(,\s*-?\d+\s*)*", text):
        seeds = [int(v) for v in text.split(",")]
    else:
        raise ValueError(f"seeds must look like 0-4 or 0,2,3, got {text!r}")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"{len(seeds)} seeds in {text!r}; at most {MAX_SEEDS} per command")
    if min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise ValueError(f"seeds must be from 0 to {MAX_SEED}, got {text!r}")
    return list(dict.fromkeys(seeds))


def bounded_int(low: int, high: int | None = None):  # noqa: ANN201 - Callable[[str], int]
    """A parser of whole numbers in ``low..high`` whose error says the bound."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise ValueError(f"must be >= {low}, got {value}" if high is None else
                             f"must be from {low} to {high}, got {value}")
        return value
    return parse


positive_int = bounded_int(1)
seed_value = bounded_int(0, MAX_SEED)
depth_value = bounded_int(1, MAX_DEPTH)
epochs_value = bounded_int(1, MAX_EPOCHS)
train_size_value = bounded_int(1, TRAIN_IMAGES)


def argument_type(parse):  # noqa: ANN001,ANN201
    """``parse`` for argparse's ``type=``: its ValueError message is shown instead of 'invalid value'."""
    def wrapped(text: str):  # noqa: ANN202
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    wrapped.__name__ = parse.__name__
    return wrapped


DESCRIPTION = """Train and compare the CIFAR-10 ResNets of He et al. (2015) and the student report's models.

commands: models (list them), data (check CIFAR-10), train (one run), grid (list or run a named
grid of runs), akamaster (evaluate the published checkpoints), bench (training throughput). Bad input gives one line and exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m resnet_nb", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser, metavar="COMMAND")

    sub.add_parser("models", help="every model with its parameter count and weight layers",
                   description="Every model with its parameter count and weight layers.")

    d = sub.add_parser("data", help="which CIFAR-10 source is used, split sizes, class counts, checksum",
                       description="Load (and cache) CIFAR-10 and print its source, sizes and checksum.")
    _add_source_option(d)

    t = sub.add_parser("train", help="train one model and write its result record",
                       description="Train one model and write its result record (resumes its checkpoint).")
    t.add_argument("--model", required=True, choices=["resnet", "plain", "torchvision"],
                   help="architecture: the paper's ResNet, the plain net of the same layers, or torchvision's")
    t.add_argument("--depth", type=argument_type(depth_value), required=True,
                   help=f"resnet/plain: 6n+2 with n >= 1 (20, 32, 44, 56, 110, ... {MAX_DEPTH}); torchvision: 18")
    t.add_argument("--shortcut", choices=["A", "B"],
                   help="resnet only (required there): A = identity + zero padding, B = 1x1 projections")
    t.add_argument("--stem", choices=["imagenet", "cifar"],
                   help="torchvision only (required there): its ImageNet stem, or a 3x3 CIFAR stem")
    t.add_argument("--out", type=Path, required=True, help="result record to write (JSON; never overwritten)")
    t.add_argument("--recipe", default="report", choices=list(RECIPES), help="training protocol")
    t.add_argument("--epochs", type=argument_type(epochs_value), help=f"override the recipe's epochs (1..{MAX_EPOCHS})")
    t.add_argument("--train-size", type=argument_type(train_size_value),
                   help="train on a class-balanced subset of this many images (default: all 50,000)")
    t.add_argument("--seed", type=argument_type(seed_value), default=0,
                   help=f"seed of initialisation and batch order (0..{MAX_SEED})")
    t.add_argument("--no-channels-last", action="store_true", help="keep NCHW memory format")
    t.add_argument("--checkpoints", type=Path, help="checkpoint folder (default: <cache>/checkpoints)")
    _add_training_options(t)

    g = sub.add_parser("grid", help="list or run a named grid of runs",
                       description="List or run a named grid of runs: `grid list NAME`, `grid run NAME`.")
    actions = g.add_subparsers(dest="action", required=True, parser_class=ArgumentParser, metavar="ACTION")
    gl = actions.add_parser("list", help="each run's state and the time left",
                            description="Each run of the grid: done, partial, running, parked (its checkpoint is in the "
                                        "repository's carry/, not in the cache: `grid unpark` resumes it), invalid, "
                                        "todo, or covered "
                                        "(another grid's record is the same run, at the same precision, on this "
                                        "device: the report grid's runs stand in for precision10's), with an "
                                        "estimate of the time left on --device.")
    _add_selection_options(gl)
    gl.add_argument("--ids", action="store_true",
                    help="print only the run ids still to do, in the order `grid run` takes them "
                         "(one seed-parallel group per line, ids joined by commas)")
    _add_seed_parallel_option(gl)
    gl.add_argument("--device", default="auto", help="device to estimate the time for: auto, cpu, cuda[:N], mps")
    _add_training_options(gl, hidden=True)  # accepted, so that one set of grid args fits list and run
    gr = actions.add_parser("run", help="train every run of the grid that has no record",
                            description="Train every selected run that has no record, partial runs first. A run "
                                        "another process is training is skipped for the next one.")
    _add_selection_options(gr)
    gr.add_argument("--max-runs", type=argument_type(positive_int), help="stop after this many runs (>= 1)")
    _add_seed_parallel_option(gr)
    _add_training_options(gr)
    for action, short, long in (
            ("park", "copy unfinished runs' checkpoints into carry/, to commit",
             "Copy the checkpoint of each unfinished run into carry/<grid>/ (commit it: a fresh machine then "
             "resumes the run) and delete the carried files of runs that have their record."),
            ("unpark", "copy carried checkpoints into the checkpoint cache",
             "Copy the carried checkpoints of unfinished runs into the checkpoint cache, where `grid run` resumes "
             "them, unless the cache holds the same or a later epoch (scripts/cpu_lanes.sh does this first).")):
        c = actions.add_parser(action, help=short, description=long)
        _add_selection_options(c)
        c.add_argument("--carry", type=Path, default=None, help="the carry folder (default: the repository's carry/)")

    a = sub.add_parser("akamaster", help="evaluate the published akamaster ResNets on our test copy; write records",
                       description="Evaluate the published akamaster CIFAR ResNets on our test copy and write one "
                                   "record per checkpoint.")
    a.add_argument("--dir", type=Path, help="checkpoint folder (default: $RESNET_NB_AKAMASTER or the shared copy)")
    a.add_argument("--out", type=Path, default=RESULTS_DIR / "akamaster", help="folder for the records")
    a.add_argument("--device", default="cpu", help="auto, cpu, cuda[:N] or mps")
    a.add_argument("--source", help="CIFAR-10 source (default: $RESNET_NB_DATA, else torchvision)")

    b = sub.add_parser("bench", help="training throughput: our trainer vs a plain PyTorch loop",
                       description="Training throughput: our trainer vs a plain PyTorch loop.")
    _add_bench_options(b)
    return p


def _add_bench_options(p: argparse.ArgumentParser) -> None:
    """The options of ``bench`` (:mod:`resnet_nb.bench`)."""
    p.add_argument("--models", default="resnet20-A,resnet56-A", help="comma-separated model keys")
    p.add_argument("--recipes", default="report,paper")
    p.add_argument("--variants", help=f"comma-separated, from: {', '.join(BENCH_VARIANTS)} "
                                      "(default: all; -cuda_graph and +compile only on CUDA)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--eval-images", type=int, default=2000)
    p.add_argument("--device", default="auto")
    p.add_argument("--source", help="CIFAR-10 source (default: $RESNET_NB_DATA, else torchvision)")
    p.add_argument("--seed-parallel", default="", metavar="K,K,...",
                   help="also measure K seeds trained as one stacked step, e.g. 1,2,5,10 (aggregate img/s)")
    p.add_argument("--note", help="free text stored with --json (e.g. what else ran on the machine)")
    p.add_argument("--json", type=Path, help="also write the measurements and environment here")


def _add_source_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", help="CIFAR-10: 'torchvision' (download) or a folder/.zip laid out as "
                                            "<split>/<class>/<image> (default: $RESNET_NB_DATA, else torchvision)")


def _add_seed_parallel_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed-parallel", default="auto", metavar="auto|off|K",
                   help="train up to K pending seeds of a config as one seed-parallel group "
                        "(auto: off on the CPU, where it does not pay; 10 on a GPU)")


def _add_selection_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=GRIDS, help="the grid: report (the student report's), paper (the paper's "
                                               "CIFAR-10 table, 64k iterations), paper8k (the paper's recipe at 1/8 of its "
                                               "length: plain and ResNet-20..56, 3 seeds), precision (fp32 vs bf16, "
                                               "1 epoch), precision10 "
                                               "(fp32 vs bf16, plain-56 and ResNet-56, 10 epochs)")
    p.add_argument("--seeds", type=argument_type(parse_seeds),
                   help=f"e.g. 0-4 or 0,1; at most {MAX_SEEDS}, each 0..{MAX_SEED} (default: the grid's)")
    p.add_argument("--only", help="comma-separated glob(s) on run ids, e.g. 'resnet20*,plain20*' (must match a run)")
    p.add_argument("--shard", type=argument_type(parse_shard), help="i/k: the i-th of k disjoint parts (1 <= i <= k)")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="records folder (default: the repository's results/)")
    p.add_argument("--checkpoints", type=Path, help="checkpoint folder (default: <cache>/checkpoints)")


def _add_training_options(p: argparse.ArgumentParser, hidden: bool = False) -> None:
    """Device, precision, data source and output options shared by ``train`` and ``grid run``."""
    def helped(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    if not hidden:
        p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help=helped("auto: fp32 on CUDA, bf16 on CPUs with bf16 instructions, else fp32"))
    p.add_argument("--compile", action="store_true",
                   help=helped("torch.compile the model (CUDA and CPUs; ResNet-20 on a CPU: 1.27x, benchmarks/README.md)"))
    p.add_argument("--cuda-graph", default="auto", choices=["auto", "on", "off"],
                   help=helped("run each training step as one CUDA graph (auto: yes on CUDA, without --compile or fp16)"))
    p.add_argument("--source", help=helped("CIFAR-10: 'torchvision' or a folder/.zip "
                                           "(default: $RESNET_NB_DATA, else torchvision)"))
    p.add_argument("--quiet", action="store_true", help=helped("no progress bars"))


def cmd_models() -> None:
    rows = model_table()
    print(f"{'model':<22}{'arch':<12}{'depth':>6}  {'shortcut':<9}{'stem':<9}{'params':>12}{'weight layers':>15}")
    for r in rows:
        print(f"{r['model']:<22}{r['arch']:<12}{r['depth']:>6}  {r['shortcut']:<9}{r['stem']:<9}"
              f"{r['params']:>12,}{r['weight_layers']:>15}")


def cmd_data(args: argparse.Namespace) -> None:
    from .data import load_cifar10

    info = load_cifar10(args.source).info()
    for key, value in info.items():
        print(f"{key:<18} {value}")


def cmd_train(args: argparse.Namespace) -> None:
    from .data import load_cifar10
    from .estimate import estimate_text
    from .grids import checkpoint_path, run_one

    spec = ModelSpec(args.model, args.depth, args.shortcut, args.stem)
    run = RunConfig("cli", spec.key, args.recipe, args.seed, args.epochs, args.train_size,
                    None if args.precision == "auto" else args.precision)
    run.recipe_obj()  # validate overrides before loading data
    check_device_options(args)
    if args.out.exists():
        raise ValueError(f"{args.out} exists; results are never overwritten: choose another --out or delete it")
    check_writable(args.out.parent, "output")
    check_writable(checkpoint_path(run, args.checkpoints).parent, "checkpoint")
    print(estimate_text([run], args.device, checkpoints=args.checkpoints), flush=True)
    data = load_cifar10(args.source, progress=not args.quiet)
    record = run_one(run, data, checkpoints=args.checkpoints, device=args.device, precision=args.precision,
                     compile=args.compile, cuda_graph=args.cuda_graph, channels_last=not args.no_channels_last,
                     progress=not args.quiet, out=args.out)
    last, prov = record["history"][-1], record["provenance"]
    ips = sum(r["train_images_per_s"] for r in record["history"]) / len(record["history"])
    print(f"{spec.key} {args.recipe} seed {args.seed}: test acc {last['test_acc']:.4f}, test loss "
          f"{last['test_loss']:.4f} after {last['epoch']} epochs; {ips:.0f} train img/s on {prov['device_name']} "
          f"({prov['precision']}); wall {prov['wall_seconds']:.0f} s; record: {args.out}")


def check_device_options(args: argparse.Namespace) -> None:
    """Refuse impossible device/precision/graph combinations before any data is loaded."""
    from .train import resolve_cuda_graph, resolve_precision

    dev = args.device
    resolve_cuda_graph(args.cuda_graph, dev, resolve_precision(args.precision, dev), args.compile)


def select_runs(args: argparse.Namespace) -> list[RunConfig]:
    """The grid's runs after --only and --shard; an --only that matches nothing is an error (a typo)."""
    runs = grid_runs(args.name, args.seeds)
    if args.only:
        patterns = args.only.split(",")
        runs = [r for r in runs if any(fnmatch.fnmatch(r.run_id, p) for p in patterns)]
        if not runs:
            raise ValueError(f"--only {args.only!r} matches no run of grid {args.name!r}; "
                             f"see `python -m resnet_nb grid list {args.name}`")
    if args.shard:
        runs = shard(runs, *args.shard)
    return runs


def grid_seed_parallel(args: argparse.Namespace) -> int:
    """Seeds per group for ``grid``: ``auto`` falls back to 1 where seed-parallel training does not apply."""
    from .grids import resolve_seed_parallel

    k = resolve_seed_parallel(args.seed_parallel, args.device)
    blocker = "--compile" if args.compile else "--precision fp16" if args.precision == "fp16" else None
    if blocker and k > 1:
        if args.seed_parallel != "auto":
            raise ValueError(f"--seed-parallel {args.seed_parallel} does not combine with {blocker}; "
                             "use --seed-parallel off")
        return 1
    return k


def covered_text(states: dict[RunConfig, str]) -> str:
    """``", N covered by grid 'report' records"`` for the runs another grid's record stands in for, else ``""``."""
    covered = [r for r, state in states.items() if state == "covered"]
    if not covered:
        return ""
    grids = sorted({STAND_INS[r.grid] for r in covered})
    return f", {len(covered)} covered by grid {' / '.join(map(repr, grids))} records"


def parked_runs(states: dict[RunConfig, str]) -> list[RunConfig]:
    """The runs with no checkpoint in the cache (``todo``) whose progress is parked in the repository's carry/."""
    from .carry import carried

    return [r for r, state in states.items() if state == "todo" and carried(r)]


def parked_text(parked: list[RunConfig], grid: str) -> str:
    return (f"{len(parked)} run(s) parked in carry/ with no checkpoint in the cache ({', '.join(r.run_id for r in parked)}): "
            f"`python -m resnet_nb grid unpark {grid}` resumes them where they were parked (scripts/cpu_lanes.sh does "
            "it first); `grid run` alone would train them from scratch")


def cmd_grid(args: argparse.Namespace) -> int:
    from . import carry
    from .estimate import estimate_seconds, probe_seconds_left, run_precision
    from .grids import pending, plan_groups, run_states
    from .provenance import device_name

    runs = select_runs(args)
    if args.action in ("park", "unpark"):
        move = carry.park if args.action == "park" else carry.unpark
        for line in move(runs, results=args.results, checkpoints=args.checkpoints, carry=args.carry):
            print(line)
        return 0
    k = grid_seed_parallel(args)
    if args.action == "list" and args.ids:  # for scripts that hand runs (or groups) to parallel workers
        here = device_name(args.device)
        for group in plan_groups(pending(runs, args.results, args.checkpoints, here), k, args.checkpoints):
            print(",".join(run.run_id for run in group))
        return 0
    if args.action == "list":
        dev = args.device
        dev_name = device_name(dev)
        total = 0.0
        print(f"{'run':<40}{'state':<9}{'time left':>10}   (estimates for {dev_name}; ~ = scaled from this "
              "model on another device, else from other models by MACs; ≈ = from a step-time probe, no record "
              "here yet)")
        states = run_states(runs, args.results, args.checkpoints, dev_name)
        probed: set[tuple[str, str]] = set()
        parked = parked_runs(states)
        for r, state in states.items():
            holder = None if state == "done" else lock_holder(record_path(r, args.results))
            if holder is not None:
                state = "running"
                parked = [p for p in parked if p != r]  # another process has it: nothing to unpark
            elif r in parked:
                state = "parked"
            finished = state in ("done", "covered", "invalid")
            # a parked run's progress is in carry/, laid out like the cache (<grid>/<run id>.pt)
            progress = carry.CARRY_DIR if state == "parked" else args.checkpoints
            est = None if finished else estimate_seconds(
                r, dev_name, args.results, progress, run_precision(r, dev),
                elapsed=holder.get("age", 0.0) if holder else 0.0)
            if est is None and not finished:  # nothing ran here yet: time a few steps
                if (r.model, r.recipe) not in probed:  # seconds each: say so before, not after
                    probed.add((r.model, r.recipe))
                    print(f"(timing a few training steps of {r.model} at recipe {r.recipe} for its estimate: "
                          "nothing of it ran on this device yet)", file=sys.stderr, flush=True)
                est = (probe_seconds_left(r, dev, args.checkpoints), "probe")
            total += est[0] if est else 0
            # "~": scaled from another device or from other models' speed here; "≈": from a step-time probe
            mark = "" if est is None or not est[1] else ("≈" if est[1] == "probe" else "~")
            shown = "" if finished else f"{mark}{est[0] / 60:.0f} min"
            print(f"{r.run_id:<40}{state:<9}{shown:>10}", flush=True)
        done = sum(state == "done" for state in states.values())
        print(f"{done}/{len(runs)} done{covered_text(states)}; about {total / 3600:.1f} h left on this device")
        if parked:
            print(parked_text(parked, args.name))
        return 0
    return run_grid(args, runs)


def run_grid(args: argparse.Namespace, runs: list[RunConfig]) -> int:
    """Train the pending runs in order, up to --max-runs of them.

    A run another process holds is skipped for the next one; a run that is refused (diverged,
    a checkpoint of another run) is reported in one line and the grid goes on; the exit status
    is 1 when any run was refused.
    """
    from .data import load_cifar10
    from .estimate import estimate_text
    from .grids import checkpoint_path, pending, run_pending, run_states
    from .provenance import device_name

    here = device_name(args.device)
    states = run_states(runs, args.results, args.checkpoints, here)
    todo = pending(runs, states=states)
    limit = len(todo) if args.max_runs is None else min(args.max_runs, len(todo))
    covered = covered_text(states)
    print(f"{limit} run(s) to do in grid {args.name!r}{covered and f' ({covered[2:]}, not trained again)'}",
          flush=True)
    parked = parked_runs(states)
    if parked:
        print(f"warning: {parked_text(parked, args.name)}", file=sys.stderr, flush=True)
    if not todo:
        return 0
    check_device_options(args)
    check_writable(args.results / args.name, "results")
    check_writable(checkpoint_path(todo[0], args.checkpoints).parent, "checkpoint")
    k = grid_seed_parallel(args)
    print(estimate_text(todo[:limit], args.device, args.results, args.checkpoints)
          + ("" if k == 1 else f", before seed-parallel groups of up to {k}"), flush=True)
    data = load_cifar10(args.source, progress=not args.quiet)
    refused = run_pending(todo, data, device=args.device, seeds_per_group=k, limit=limit, results=args.results,
                          checkpoints=args.checkpoints, precision=args.precision, compile=args.compile,
                          cuda_graph=args.cuda_graph, progress=not args.quiet, say=lambda line: print(line, flush=True))
    if refused:
        print(f"error: {len(refused)} run(s) refused: {', '.join(refused)} (see above)", file=sys.stderr)
        return 1
    return 0


def cmd_akamaster(args: argparse.Namespace) -> int:
    from .akamaster import checkpoint_dir, write_records
    from .data import load_cifar10

    folder = checkpoint_dir(args.dir)
    data = load_cifar10(args.source, progress=False)
    for rec in write_records(folder, data, args.out, args.device):
        print(f"{rec['model']}: test error {rec['test_error_pct']:.2f} % on {rec['test_images']} {data.variant} test "
              f"images (published: {rec['published_test_error_pct']} %); record: {args.out / (rec['model'] + '.json')}")
    return 0


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"warning: {message}\n"


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # like Ctrl-C: unwinds (locks released, temp files removed), exit 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    saved = warnings.formatwarning, signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    warnings.formatwarning = _one_line_warning
    # from here on a signal unwinds (locks released, epochs checkpointed); not when a caller (a test,
    # a notebook) has a handler of its own
    if saved[1] in (signal.SIG_DFL, _exit_while_loading):
        signal.signal(signal.SIGTERM, _terminate)
    if saved[2] is _exit_while_loading:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _dispatch(args)
    except _reported_errors() as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished epochs are checkpointed and resume on the next run", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.formatwarning = saved[0]
        for sig, handler in ((signal.SIGTERM, saved[1]), (signal.SIGINT, saved[2])):
            if handler is not None and handler is not _exit_while_loading:  # its line would say nothing was done
                signal.signal(sig, handler)


def _reported_errors() -> tuple[type[BaseException], ...]:
    """The errors a command reports in one line (status 2): bad input, data, records, locks, a diverged run.

    Those of the training half exist only once the command has imported it, so they are looked up then.
    """
    errors: list[type[BaseException]] = [ValueError, RecordError, LockedError, OSError]
    for module, name in (("resnet_nb.data", "DataError"), ("resnet_nb.train", "DivergedError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def _dispatch(args: argparse.Namespace) -> int:
    # The one device decision: "auto" (or a name) becomes a torch.device here, where the command starts, and
    # travels down as that value; the libraries below take it as given.
    if getattr(args, "device", None) is not None:
        from .train import resolve_device

        args.device = resolve_device(args.device)
    if args.command == "models":
        cmd_models()
    elif args.command == "data":
        cmd_data(args)
    elif args.command == "train":
        cmd_train(args)
    elif args.command == "grid":
        return cmd_grid(args)
    elif args.command == "akamaster":
        return cmd_akamaster(args)
    elif args.command == "bench":
        from .bench import run_from_args

        run_from_args(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
