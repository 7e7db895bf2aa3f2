"""The C allocator setting for CPU training (resnet_nb.hostmem): its effect, its opt-out, its record, and the
benchmark measuring the variants without it first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from resnet_nb import hostmem

ROOT = Path(__file__).resolve().parent.parent
glibc = pytest.mark.skipif(hostmem._glibc() is None, reason="mallopt is glibc's (Linux)")

# A fresh interpreter: the state before and after the call, as JSON (the setting is process-wide).
_PROBE = """
import json, sys
from resnet_nb import hostmem
before = hostmem.allocator_state()
print(json.dumps({"before": before, "state": hostmem.keep_freed_memory(), "again": hostmem.keep_freed_memory()}))
"""


def _probe(env_value: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != hostmem.OPT_OUT}
    if env_value is not None:
        env[hostmem.OPT_OUT] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@glibc
def test_glibc_accepts_the_settings_and_the_opt_out_leaves_them() -> None:
    """The real mallopt takes every value (a threshold above glibc's 32 MiB limit would be refused: 'unsupported');
    its effect on speed is measured by ``bench --variants "ours -malloc,ours"``, not here."""
    assert _probe() == {"before": "untouched", "state": "kept", "again": "kept"}
    assert _probe("keep") == {"before": "untouched", "state": "kept", "again": "kept"}
    assert _probe("default") == {"before": "untouched", "state": "default", "again": "default"}


class _FakeLibc:
    def __init__(self, accept: bool) -> None:
        self.calls: list[tuple[int, int]] = []
        self.accept = accept

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1 if self.accept else 0


@pytest.mark.parametrize("accept", [True, False])
def test_the_three_thresholds_are_set_once(monkeypatch: pytest.MonkeyPatch, accept: bool) -> None:
    libc = _FakeLibc(accept)
    monkeypatch.setattr(hostmem, "_state", None)
    monkeypatch.delenv(hostmem.OPT_OUT, raising=False)
    monkeypatch.setattr(hostmem, "_glibc", lambda: libc)
    want = "kept" if accept else "unsupported"
    assert hostmem.keep_freed_memory() == want and hostmem.keep_freed_memory() == want
    # M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB, M_TOP_PAD 64 MiB; the second call changes nothing
    assert libc.calls == ([(-3, 32 << 20), (-1, 1 << 30), (-2, 64 << 20)] if accept else [(-3, 32 << 20)])


def test_a_bad_opt_out_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmem, "_state", None)
    monkeypatch.setenv(hostmem.OPT_OUT, "off")
    with pytest.raises(ValueError, match=r"RESNET_NB_MALLOC='off'.*'keep'.*'default'"):
        hostmem.keep_freed_memory()
    assert hostmem.allocator_state() == "untouched"  # nothing decided on bad input


def test_without_glibc_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmem, "_state", None)
    monkeypatch.delenv(hostmem.OPT_OUT, raising=False)
    monkeypatch.setattr(hostmem, "_glibc", lambda: None)
    assert hostmem.keep_freed_memory() == "unsupported" and hostmem.allocator_state() == "unsupported"


@glibc
def test_fit_on_the_cpu_records_the_setting_with_its_segment(tiny_data) -> None:
    from resnet_nb.train import Recipe, fit
    from resnet_nb.vocab import ModelSpec

    recipe = Recipe("tiny", optimizer="sgd", lr=0.05, batch_size=64, epochs=1)
    result = fit(ModelSpec("resnet", 8, "A"), recipe, tiny_data, device="cpu", progress=False)
    assert [s["cpu_allocator"] for s in result.setup["segments"]] == ["kept"]
    assert hostmem.allocator_state() == "kept"


class _FakeAllocator:
    """Stands in for hostmem in bench: records when the setting would be made."""

    def __init__(self) -> None:
        self.state = "untouched"

    def keep(self) -> str:
        self.state = "kept"
        return self.state


def test_bench_measures_the_variants_without_the_setting_first(monkeypatch: pytest.MonkeyPatch, tiny_data) -> None:
    from resnet_nb import bench

    fake = _FakeAllocator()
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(bench, "keep_freed_memory", fake.keep)
    monkeypatch.setattr(bench, "allocator_state", lambda: fake.state)
    real = bench.measure_variant

    def spy(variant, *args, **kwargs):
        m = real(variant, *args, **kwargs)
        seen.append((variant, m.allocator))
        return m

    monkeypatch.setattr(bench, "measure_variant", spy)
    asked = ["ours", "baseline", "ours -channels_last", "ours -malloc"]
    got = bench.run_benchmark(tiny_data, torch.device("cpu"), ["resnet8-A"], ["report"], asked, steps=1, warmup=0,
                              repeats=1, eval_images=0, log=lambda s: None)
    assert [m.variant for m in got] == asked  # reported in the order asked for
    assert seen == [("baseline", "untouched"), ("ours -malloc", "untouched"), ("ours", "kept"),
                    ("ours -channels_last", "kept")]


def test_a_variant_without_the_setting_after_it_is_refused(monkeypatch: pytest.MonkeyPatch, tiny_data) -> None:
    from resnet_nb import bench
    from resnet_nb.train import get_recipe
    from resnet_nb.vocab import ModelSpec

    monkeypatch.setattr(bench, "allocator_state", lambda: "kept")
    with pytest.raises(RuntimeError, match="'baseline' must be measured before"):
        bench.measure_variant("baseline", ModelSpec.from_key("resnet8-A"), get_recipe("report"), tiny_data,
                              torch.device("cpu"), steps=1, warmup=0, repeats=1, eval_images=0)


def test_bench_cli_refuses_the_cpu_only_variant_elsewhere(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    from resnet_nb import bench
    from resnet_nb.__main__ import main

    monkeypatch.setattr(bench, "resolve_device", lambda name: torch.device("meta"))
    assert main(["bench", "--variants", "ours,ours -malloc", "--device", "cpu"]) == 2
    assert "['ours -malloc'] compare a CPU-only setting; drop them on meta" in capsys.readouterr().err
