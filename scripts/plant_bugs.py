#!/usr/bin/env python3
"""Plant plausible one-line bugs in the code the book's numbers come from, one at a time, and check
that the unit tests catch each: a suite's worth is the bugs it catches.

    python scripts/plant_bugs.py              # every bug (about 20 min on 2 cores)
    python scripts/plant_bugs.py eval-mode    # some, by name
    python scripts/plant_bugs.py --list

Each bug is applied to the working tree, the relevant tests run (``-x``), and the file is restored
(also on Ctrl-C). ``tests/test_structure.py`` checks that every pattern below still occurs exactly
once, so the list cannot silently stop planting anything when the code changes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_arithmetic.py", "tests/test_train.py", "tests/test_data.py", "tests/test_models.py",
         "tests/test_stats.py", "tests/test_claims.py", "tests/test_analysis.py", "tests/test_plots.py",
         "tests/test_records.py", "tests/test_stacked.py", "tests/test_grids.py", "tests/test_robustness.py", "tests/test_files.py",
         "tests/test_integrity.py"]

# (name, file, the line(s) as they are, the bug); the first four are the examples of issue 12
MUTANTS = [
 ("test-loss-averaged-twice", "resnet_nb/train.py", 'loss_sum += F.cross_entropy(out.float(), y, reduction="sum")', 'loss_sum += F.cross_entropy(out.float(), y, reduction="mean")'),
 ("he-init-not-applied", "resnet_nb/train.py", "        he_init(model)", "        pass"),
 ("sgd-weight-decay-dropped", "resnet_nb/train.py", "weight_decay=recipe.weight_decay, **fused)", "weight_decay=0.0, **fused)"),
 ("eval-accuracy-constant", "resnet_nb/train.py", "    n = len(loader.y)\n    return loss_sum.item() / n, correct.item() / n\n", "    n = len(loader.y)\n    return loss_sum.item() / n, 0.5\n"),
 ("eval-mode", "resnet_nb/train.py", '    """Mean cross-entropy and accuracy over a loader, in eval mode."""\n    model.eval()', '    """Mean cross-entropy and accuracy over a loader, in eval mode."""\n    model.train()'),
 ("no-flip", "resnet_nb/data.py", "cols = torch.where(flips.view(b, 1), cols.flip(1), cols)", "cols = torch.where(flips.view(b, 1), cols, cols)"),
 ("pad-2", "resnet_nb/data.py", "def random_crop_flip(x: torch.Tensor, g: torch.Generator, pad: int = 4)", "def random_crop_flip(x: torch.Tensor, g: torch.Generator, pad: int = 2)"),
 ("norm-std-swap", "resnet_nb/data.py", "xb = (self.x[idx].float() - self.mean) / self.std", "xb = (self.x[idx].float() - self.mean) / self.std.flip(1)"),
 ("milestone-gt", "resnet_nb/vocab.py", "drops = sum(iteration >= frac * total_iterations", "drops = sum(iteration > frac * total_iterations"),
 ("lr-drop-0.2", "resnet_nb/vocab.py", "return self.lr * 0.1**drops", "return self.lr * 0.2**drops"),
 ("t-dof-n", "resnet_nb/stats.py", "half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)", "half = float(sps.t.ppf(0.5 + level / 2, n)) * std / math.sqrt(n)"),
 ("min-seeds-2", "resnet_nb/stats.py", "MIN_SEEDS = 3", "MIN_SEEDS = 2"),
 ("optionA-odd", "resnet_nb/models.py", "F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))", "F.pad(x[:, :, 1::2, 1::2], (0, 0, 0, 0, p, p))"),
 ("optionA-pad-one-side", "resnet_nb/models.py", "F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))", "F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, 2 * p))"),
 ("relu-before-add", "resnet_nb/models.py", "        if self.residual:\n            out = out + self.shortcut(x)\n        return F.relu(out)", "        out = F.relu(out)\n        if self.residual:\n            out = out + self.shortcut(x)\n        return out"),
 ("he-fan-in", "resnet_nb/models.py", 'nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")', 'nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")'),
 ("sgd-no-momentum", "resnet_nb/train.py", "return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,", "return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.0,"),
 ("train-acc-wrong", "resnet_nb/train.py", "                correct += batch_correct\n", "                correct += batch_correct if iteration % 2 else 0\n"),
 ("summarize-first-epoch", "resnet_nb/records.py", 'df.groupby("run_id")["epoch"].transform("max")', 'df.groupby("run_id")["epoch"].transform("min")'),
 ("summarize-std-of-means", "resnet_nb/records.py", 'out.columns = [f"{m}_{stat if stat != \'count\' else \'n\'}" for m, stat in out.columns]', 'out.columns = [f"{m}_{stat if stat != \'count\' else \'n\'}" for m, stat in out.columns]\n    out.loc[:, [c for c in out.columns if c.endswith("_std")]] /= 2'),
 ("t-interval-ddof0", "resnet_nb/stats.py", "    std = float(x.std(ddof=1))\n    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)", "    std = float(x.std(ddof=0))\n    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)"),
 ("subset-unbalanced", "resnet_nb/data.py", "per_class = [size // n_classes + (1 if c < size % n_classes else 0) for c in range(n_classes)]", "per_class = [size // n_classes for c in range(n_classes)]"),
 ("eval-n-batches", "resnet_nb/train.py", "    n = len(loader.y)\n    return loss_sum.item() / n, correct.item() / n", "    n = len(loader.y)\n    return loss_sum.item() / n, correct.item() / len(loader.y[:-1])"),
 ("warmup-all-depths", "resnet_nb/vocab.py", 'warmup_iterations=400, warmup_lr=0.01, warmup_min_depth=110', 'warmup_iterations=400, warmup_lr=0.01, warmup_min_depth=20'),
 ("paper-wd-5e-4", "resnet_nb/vocab.py", 'momentum=0.9, weight_decay=1e-4, batch_size=128,', 'momentum=0.9, weight_decay=5e-4, batch_size=128,'),
 ("welch-dof-pooled", "resnet_nb/stats.py", "half = float(sps.t.ppf(0.5 + level / 2, dof)) * se", "half = float(sps.t.ppf(0.5 + level / 2, 1e9)) * se"),
 ("value-verdict-ignores-zero", "resnet_nb/stats.py", "    if lo < cmp.lo and cmp.hi < hi:\n", "    if True:\n"),
 ("about-adds-nothing", "resnet_nb/stats.py", "unit / 2 + (unit if about else 0.0)", "unit / 2"),
 ("best-epoch-is-lowest-accuracy", "resnet_nb/readings.py", 'values = groups[metric].max() if metric.endswith("_acc") else groups[metric].min()', 'values = groups[metric].min() if metric.endswith("_acc") else groups[metric].max()'),
 ("same-setting-keeps-every-seed", "resnet_nb/readings.py", '        seeds = {k for k in seeds if len({t.loc[k, "setting"] for t in tables}) == 1}\n', "        seeds = set(seeds)\n"),
 ("holm-is-bonferroni", "resnet_nb/readings.py", "levels = {key: 1 - alpha / (m - k) for k, (_, key) in enumerate(ranked)}", "levels = {key: 1 - alpha / m for k, (_, key) in enumerate(ranked)}"),
 ("no-records-count-as-inconclusive", "resnet_nb/claims.py", 'return "not yet tested" if self.verdict == "not tested" else _CATEGORY[self.claim.origin]', "return _CATEGORY[self.claim.origin]"),
 ("fragile-never-flagged", "resnet_nb/robustness.py", "            if g.verdict != f.verdict:\n", "            if False:\n"),
 ("not-matched-is-contradicted", "resnet_nb/claims.py", '        return "not matched", f"no reading of the figure meets {band} ({len(tested)} readings tried)"', '        return "contradicted", f"no reading of the figure meets {band} ({len(tested)} readings tried)"'),
 ("pred-interval-no-1", "resnet_nb/stats.py", "math.sqrt(1 + 1 / n)", "math.sqrt(1 / n)"),
 ("precision-pairs-any-length", "resnet_nb/claims.py", 'keys = ["seed", "device_name", "recipe", "epoch"]', 'keys = ["seed", "device_name", "recipe"]'),
 ("precision-pairs-across-devices", "resnet_nb/claims.py", 'pairs = fp32.merge(bf16, on=keys, suffixes=(" fp32", " bf16"))', 'pairs = fp32.merge(bf16.assign(device_name=fp32["device_name"].iloc[0] if len(fp32) else None), on=keys, suffixes=(" fp32", " bf16"))'),
 ("seed-settings-vs-all-seeds", "resnet_nb/claims.py", 'ref = last[(last["grid"] == reference) & (last["seed"] != seed)]', 'ref = last[last["grid"] == reference]'),
 ("derived-bootstrap-only", "resnet_nb/stats.py", "min(boot.lo, delta.lo), max(boot.hi, delta.hi)", "boot.lo, boot.hi"),
 ("delta-dof-pooled", "resnet_nb/stats.py", "    dof = var**2 / sum(c**2 / d for c, d in parts)\n", "    dof = sum(d for _, d in parts)\n"),
 ("resume-forgets-segments", "resnet_nb/checkpoints.py", 'earlier = [dict(s) for s in (state or {}).get("segments") or []]', "earlier = []"),
 ("trained-on-final-device", "resnet_nb/records.py", 'names = list(dict.fromkeys(canonical_device_name(s["device_name"]) for s in logged)) \\\n        or [canonical_device_name(provenance["device_name"])]', 'names = [canonical_device_name(provenance["device_name"])]'),
 ("one-thread-spelt-two-ways", "resnet_nb/vocab.py", 'return re.sub(r" \\(1 threads\\)$", " (1 thread)", name)', "return name"),
 ("stand-in-from-any-device", "resnet_nb/grids.py", 'same = (prov["precision"], trained_on(prov)[1]) == (run.precision, canonical_device_name(device_name))', 'same = prov["precision"] == run.precision'),
 ("precision-margin-10pt", "resnet_nb/claims.py", "verdict, why = stats.equivalence_verdict(effect, SIMILAR_MARGIN_PT)", "verdict, why = stats.equivalence_verdict(effect, 10 * SIMILAR_MARGIN_PT)"),
 ("seed-count-reads-first-arm", "resnet_nb/stats.py", "    if min(cmp.n) < min_seeds:", "    if cmp.n[0] < min_seeds:"),
 ("loss-improvement-sign-ignored", "resnet_nb/stats.py", "return 100 * ((plain - resnet) if lower_is_better else (resnet - plain)) / plain", "return 100 * (resnet - plain) / plain"),
 ("loss-reduction-over-deep", "resnet_nb/claims.py", 'lambda s: float(sign * 100 * (s["shallow"].mean() - s["deep"].mean()) / s["shallow"].mean()),', 'lambda s: float(sign * 100 * (s["shallow"].mean() - s["deep"].mean()) / s["deep"].mean()),'),
 ("group-identity-counts-seeds", "resnet_nb/stacked.py", '"seeds": seeds, "precision": prec,', '"seeds": len(seeds), "precision": prec,'),
 ("release-removes-any-lock", "resnet_nb/files.py", 'if info is not None and info.get("token") == self.token:', "if info is not None:"),
 ("other-host-judged-by-local-pid", "resnet_nb/files.py", 'return info["age"] > max_age  # another host', 'return info["age"] > max_age or not pid_alive(info["pid"])  # another host'),
 ("local-lock-judged-by-age", "resnet_nb/files.py", 'return not pid_alive(info["pid"]) or _pid_reused(info)', 'return not pid_alive(info["pid"]) or _pid_reused(info) or info["age"] > max_age'),
 ("identity-compares-shared-keys-only", "resnet_nb/checkpoints.py", "for k in sorted(set(theirs) | set(ours)):", "for k in sorted(set(theirs) & set(ours)):"),
 ("zip-cache-keyed-by-mtime", "resnet_nb/data.py", "    if p.is_file():\n        return \"zip-\" + _file_sha256(p)[:16]\n", ""),
 ("shape-facts-projection-without-bn", "resnet_nb/vocab.py", "params += width * planes + 2 * planes", "params += width * planes"),
 ("loop-counts-batches-not-images", "resnet_nb/train.py", "            seen += y.shape[-1]\n", "            seen += 1\n"),
 ("stacked-tally-unweighted", "resnet_nb/stacked.py", "(per_seed_loss(out.float(), y) * y.shape[1],", "(per_seed_loss(out.float(), y),"),
 ("runner-groups-only-above-two", "resnet_nb/grids.py", "stacked = seed_parallel or len(runs) > 1 or", "stacked = seed_parallel or len(runs) > 2 or"),
 ("library-accepts-auto", "resnet_nb/train.py", 'if device == "auto":', 'if device == "auto" and False:'),
 ("group-ignores-max-runs", "resnet_nb/grids.py", "for run in group[: limit - done]:", "for run in group:"),
]


def plant(name: str, path: str, old: str, new: str) -> str:
    """Apply one bug, run the tests, restore the file; ``CAUGHT <first failure>`` or ``SURVIVED``."""
    file = ROOT / path
    source = file.read_text()
    if source.count(old) != 1:
        return f"pattern found {source.count(old)} times: update this list"
    file.write_text(source.replace(old, new))
    try:
        run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
                             cwd=ROOT, capture_output=True, text=True, timeout=1800)
    finally:
        file.write_text(source)
    failed = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return f"CAUGHT {failed[0]}" if run.returncode else "SURVIVED"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        print("\n".join(name for name, *_ in MUTANTS))
        return 0
    chosen = [m for m in MUTANTS if not argv or m[0] in argv]
    survived = 0
    for name, path, old, new in chosen:
        verdict = plant(name, path, old, new)
        survived += not verdict.startswith("CAUGHT")
        print(f"{name}: {verdict}", flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} planted bugs caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
