"""Command line: ``python -m resnet_nb {models,data,train,grid,bench}``.

Errors in arguments or data print one line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path

from .data import DataError, load_cifar10
from .experiments import (GRIDS, RESULTS_DIR, RecordError, RunConfig, estimate_seconds, grid_runs,
                          parse_shard, pending, run_one, run_state, shard)
from .models import ModelSpec, model_table
from .provenance import device_name
from .stacked import group_runs, resolve_seed_parallel, run_group
from .train import RECIPES, resolve_cuda_graph, resolve_device, resolve_precision


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def parse_seeds(text: str) -> list[int]:
    """``"0-4"``, ``"0,2,3"`` or ``"1"``."""
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-"))
            return list(range(lo, hi + 1))
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"seeds must look like 0-4 or 0,2,3, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m resnet_nb", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    sub.add_parser("models", help="every model with its parameter count and weight layers")

    d = sub.add_parser("data", help="which CIFAR-10 source is used, split sizes, class counts, checksum")
    d.add_argument("--source", help="torchvision, or a folder/zip (default: $RESNET_NB_DATA, else torchvision)")

    t = sub.add_parser("train", help="train one model and write its result record")
    t.add_argument("--model", required=True, choices=["resnet", "plain", "torchvision"])
    t.add_argument("--depth", type=int, required=True)
    t.add_argument("--shortcut", choices=["A", "B"], help="resnet only")
    t.add_argument("--stem", choices=["imagenet", "cifar"], help="torchvision only")
    t.add_argument("--out", type=Path, required=True, help="result record (JSON)")
    _add_run_options(t)

    g = sub.add_parser("grid", help="list or run a named grid of runs")
    g.add_argument("action", choices=["list", "run"])
    g.add_argument("name", choices=GRIDS)
    g.add_argument("--seeds", type=parse_seeds, help="e.g. 0-4 or 0,1 (default: the grid's)")
    g.add_argument("--only", help="comma-separated glob(s) on run ids, e.g. 'resnet20*,plain20*'")
    g.add_argument("--shard", type=parse_shard, help="i/k: run the i-th of k disjoint parts (1 <= i <= k)")
    g.add_argument("--results", type=Path, default=RESULTS_DIR)
    g.add_argument("--checkpoints", type=Path, help="checkpoint folder (default: the cache folder)")
    g.add_argument("--max-runs", type=int, help="stop after this many runs")
    g.add_argument("--ids", action="store_true",
                   help="list: print only the run ids still to do, in the order `run` takes them "
                        "(one seed-parallel group per line, ids joined by commas)")
    g.add_argument("--seed-parallel", default="auto", metavar="auto|off|K",
                   help="train up to K pending seeds of a config as one seed-parallel group "
                        "(auto: off on the CPU, 10 on a GPU)")
    _add_training_options(g)

    a = sub.add_parser("akamaster", help="evaluate the published akamaster ResNets on our test copy; write records")
    a.add_argument("--dir", type=Path, help="checkpoint folder (default: $RESNET_NB_AKAMASTER or the shared copy)")
    a.add_argument("--out", type=Path, default=RESULTS_DIR / "akamaster")
    a.add_argument("--device", default="cpu")
    a.add_argument("--source", help="CIFAR-10 source (default: $RESNET_NB_DATA, else torchvision)")

    b = sub.add_parser("bench", help="training throughput: our trainer vs a plain PyTorch loop")
    from .bench import add_arguments

    add_arguments(b)
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="report", choices=list(RECIPES))
    p.add_argument("--epochs", type=int)
    p.add_argument("--train-size", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--checkpoints", type=Path, help="checkpoint folder (default: the cache folder)")
    _add_training_options(p)


def _add_training_options(p: argparse.ArgumentParser) -> None:
    """Device, precision, data source and output options shared by ``train`` and ``grid``."""
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p.add_argument("--cuda-graph", default="auto", choices=["auto", "on", "off"],
                   help="run each training step as one CUDA graph (default: on CUDA)")
    p.add_argument("--source", help="CIFAR-10 source (default: $RESNET_NB_DATA, else torchvision)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_models() -> None:
    rows = model_table()
    print(f"{'model':<22}{'arch':<12}{'depth':>6}  {'shortcut':<9}{'stem':<9}{'params':>12}{'weight layers':>15}")
    for r in rows:
        print(f"{r['model']:<22}{r['arch']:<12}{r['depth']:>6}  {r['shortcut']:<9}{r['stem']:<9}"
              f"{r['params']:>12,}{r['weight_layers']:>15}")


def cmd_data(args: argparse.Namespace) -> None:
    info = load_cifar10(args.source).info()
    for key, value in info.items():
        print(f"{key:<18} {value}")


def cmd_train(args: argparse.Namespace) -> None:
    if args.epochs is not None and args.epochs < 1:
        raise ValueError("--epochs must be >= 1")
    spec = ModelSpec(args.model, args.depth, args.shortcut, args.stem)
    run = RunConfig("cli", spec.key, args.recipe, args.seed, args.epochs, args.train_size,
                    None if args.precision == "auto" else args.precision)
    run.recipe_obj()  # validate overrides before loading data
    check_device_options(args)
    if args.out.exists():
        raise ValueError(f"{args.out} exists; results are never overwritten: choose another --out or delete it")
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
    dev = resolve_device(args.device)
    resolve_cuda_graph(args.cuda_graph, dev, resolve_precision(args.precision, dev), args.compile)


def select_runs(args: argparse.Namespace) -> list[RunConfig]:
    runs = grid_runs(args.name, args.seeds)
    if args.only:
        patterns = args.only.split(",")
        runs = [r for r in runs if any(fnmatch.fnmatch(r.run_id, p) for p in patterns)]
    if args.shard:
        runs = shard(runs, *args.shard)
    return runs


def grid_seed_parallel(args: argparse.Namespace) -> int:
    """Seeds per group for ``grid``: ``auto`` falls back to 1 where seed-parallel training does not apply."""
    k = resolve_seed_parallel(args.seed_parallel, resolve_device(args.device))
    blocker = "--compile" if args.compile else "--precision fp16" if args.precision == "fp16" else None
    if blocker and k > 1:
        if args.seed_parallel != "auto":
            raise ValueError(f"--seed-parallel {args.seed_parallel} does not combine with {blocker}; "
                             "use --seed-parallel off")
        return 1
    return k


def cmd_grid(args: argparse.Namespace) -> None:
    runs = select_runs(args)
    k = grid_seed_parallel(args)
    if args.action == "list" and args.ids:  # for scripts that hand runs (or groups) to parallel workers
        for group in group_runs(pending(runs, args.results, args.checkpoints), k):
            print(",".join(run.run_id for run in group))
        return
    if args.action == "list":
        dev_name = device_name(resolve_device(args.device))
        total, unknown = 0.0, 0
        print(f"{'run':<40}{'state':<9}{'time left':>10}   (estimates for {dev_name}; ~ = scaled by MACs "
              "from other models' records on this device)")
        states = {r: run_state(r, args.results, args.checkpoints) for r in runs}
        for r, state in states.items():
            est = None if state == "done" else estimate_seconds(r, dev_name, args.results, args.checkpoints)
            total += est[0] if est else 0
            unknown += state != "done" and est is None
            # "~": scaled from other models' speed on this device (no record of this config here yet)
            shown = "" if state == "done" else ("?" if est is None else f"{'~' if est[1] else ''}{est[0] / 60:.0f} min")
            print(f"{r.run_id:<40}{state:<9}{shown:>10}")
        done = sum(state == "done" for state in states.values())
        print(f"{done}/{len(runs)} done; about {total / 3600:.1f} h left on this device"
              + (f" plus {unknown} run(s) with no estimate yet" if unknown else ""))
        return
    todo = pending(runs, args.results, args.checkpoints)
    if args.max_runs is not None:
        todo = todo[: args.max_runs]
    print(f"{len(todo)} run(s) to do in grid {args.name!r}", flush=True)
    if not todo:
        return
    check_device_options(args)
    data = load_cifar10(args.source, progress=not args.quiet)
    done = 0
    for group in group_runs(todo, k):
        print(f"[{done + 1}{f'-{done + len(group)}' if len(group) > 1 else ''}/{len(todo)}] "
              f"{', '.join(r.run_id for r in group)}", flush=True)
        if len(group) == 1:
            records = [run_one(group[0], data, results=args.results, checkpoints=args.checkpoints,
                               device=args.device, precision=args.precision, compile=args.compile,
                               cuda_graph=args.cuda_graph, progress=not args.quiet)]
        else:
            records = run_group(group, data, results=args.results, checkpoints=args.checkpoints, device=args.device,
                                precision=args.precision, cuda_graph=args.cuda_graph, progress=not args.quiet)
        done += len(group)
        for record in records:
            last = record["history"][-1]
            print(f"  done: {record['run_id']} test acc {last['test_acc']:.4f} in "
                  f"{record['provenance']['wall_seconds']:.0f} s", flush=True)


def cmd_akamaster(args: argparse.Namespace) -> None:
    from .akamaster import checkpoint_dir, write_records

    folder = checkpoint_dir(args.dir)
    resolve_device(args.device)
    data = load_cifar10(args.source, progress=False)
    for rec in write_records(folder, data, args.out, args.device):
        print(f"{rec['model']}: test error {rec['test_error_pct']:.2f} % on {rec['test_images']} {data.variant} test "
              f"images (published: {rec['published_test_error_pct']} %); record: {args.out / (rec['model'] + '.json')}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "models":
            cmd_models()
        elif args.command == "data":
            cmd_data(args)
        elif args.command == "train":
            cmd_train(args)
        elif args.command == "grid":
            cmd_grid(args)
        elif args.command == "akamaster":
            cmd_akamaster(args)
        elif args.command == "bench":
            from .bench import run_from_args

            run_from_args(args)
    except (ValueError, DataError, RecordError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished epochs are checkpointed and resume on the next run", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
