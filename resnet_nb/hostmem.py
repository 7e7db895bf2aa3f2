"""The C allocator's settings for CPU training: keep freed activation memory in the process.

Why: one CPU training step allocates and frees tens of MB of activations and gradients. With
glibc's defaults, blocks above its mmap threshold are mapped and unmapped every step, and free
memory above its trim threshold at the top of the heap is handed back to the OS, so the next step
page-faults the same memory in again. Measured on the 2-core Intel machine (ResNet-20, paper
recipe, batch 128, bf16, one thread): about 3x fewer minor page faults and 10-15 % more images/s
(``python -m resnet_nb bench --variants "ours -malloc,ours"`` shows it side by side). The
numbers the net computes do not change: only where freed memory waits.

This is what jemalloc/tcmalloc are preloaded for in CPU tuning guides; ``mallopt`` gives the
same effect in-process, with nothing to install. Only glibc (Linux) has it: elsewhere, and with
``RESNET_NB_MALLOC=default``, nothing is changed. The setting is process-wide and cannot be undone
exactly (setting a threshold switches glibc's adaptive threshold off for good), so the benchmark
measures the variants that must not have it first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
# 32 MiB is the largest mmap threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2); every activation
# of these nets at batch 128 (the largest, 16 x 32 x 32 x 128 fp32, is 8 MiB) stays below it.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of free heap instead of returning it every step
TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps

OPT_OUT = "RESNET_NB_MALLOC"
_state: str | None = None  # what keep_freed_memory() decided in this process


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it (musl, macOS: no mallopt of this kind)
        libc.mallopt
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> str:
    """Set glibc's thresholds so freed memory is reused, not returned and faulted in again; idempotent.

    Returns the state recorded with a run: ``"kept"`` (set now or earlier in this process),
    ``"default"`` (opted out with ``RESNET_NB_MALLOC=default``) or ``"unsupported"`` (not glibc).
    """
    global _state
    if _state is not None:
        return _state
    choice = os.environ.get(OPT_OUT, "").strip().lower()
    if choice not in ("", "keep", "default"):
        raise ValueError(f"{OPT_OUT}={os.environ[OPT_OUT]!r}: use 'keep' (the default) or 'default' "
                         "(leave the C allocator as it is)")
    if choice == "default":
        _state = "default"
        return _state
    libc = _glibc()
    if libc is None:
        _state = "unsupported"
        return _state
    ok = all(libc.mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    _state = "kept" if ok else "unsupported"
    return _state


def allocator_state() -> str:
    """What this process runs with: ``kept``, ``default`` or ``unsupported``; ``untouched`` before
    :func:`keep_freed_memory` was called."""
    return _state or "untouched"
