"""pytest settings for validating the book's notebooks with nbval: ``pytest --nbval book`` (or
``pytest tests book --nbval`` from the repository root) needs no other option.

* outputs are sanitized with ``book/nbval_sanitize.cfg`` unless ``--nbval-sanitize-with`` names a file;
* kernels run in the environment pytest runs in (``--nbval-current-env``);
* a cell may run 300 s at most (nbval's default is 2000 s; pass another ``--nbval-cell-timeout`` to change it);
* live training cells run with the ``smoke`` budget unless ``RESNET_NB_BUDGET`` is set (the stored
  outputs were made with it; the kernels nbval starts inherit this environment);
* kernels use one CPU thread unless ``OMP_NUM_THREADS`` is set: on a shared machine (CI, or a
  training job beside the tests) multi-threaded PyTorch can slow down fifty-fold, one thread never does.

The notebooks also need CIFAR-10: ``RESNET_NB_DATA=<folder or zip>`` (or internet for torchvision).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
CELL_TIMEOUT_S = 300.0
NBVAL_DEFAULT_CELL_TIMEOUT_S = 2000.0


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if not getattr(option, "nbval", False) and not getattr(option, "nbval_lax", False):
        return
    if getattr(option, "nbval_sanitize_with", None) is None:
        option.nbval_sanitize_with = str(SANITIZE)
    if not getattr(option, "nbval_kernel_name", None):
        option.nbval_current_env = True
    if getattr(option, "nbval_cell_timeout", None) == NBVAL_DEFAULT_CELL_TIMEOUT_S:
        option.nbval_cell_timeout = CELL_TIMEOUT_S
    os.environ.setdefault("RESNET_NB_BUDGET", "smoke")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
