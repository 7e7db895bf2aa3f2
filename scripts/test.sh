#!/usr/bin/env bash
# The project's test command (README, .ci/run, .github/workflows/tests.yml):
# unit tests, the notebooks under nbval, a strict offline build of the book, then the built pages in
# headless Chromium (tests/test_browser.py; skipped with the reason when Chromium is missing).
# Runs in the active environment, else in .venv (made by scripts/book.sh), else with `python`.
# The live training cells of the notebooks use the smoke budget and need CIFAR-10 (RESNET_NB_DATA, or internet).
set -euo pipefail
. "$(dirname "$0")/data_env.sh"  # a relative RESNET_NB_DATA made absolute, before the cd
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ] && [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then
  PYTHON=.venv/bin/python
fi
py=${PYTHON:-python}
bin=$(dirname "$(command -v "$py")")
export PATH="$bin:$PATH"  # jupyter-book and the notebook kernels from the same environment
export RESNET_NB_BUDGET=${RESNET_NB_BUDGET:-smoke}

# the notebooks' stored outputs were made with CIFAR-10 present: without it every live cell would differ, so
# say why before the unit tests, not after them
if ! "$py" -m resnet_nb data >/dev/null; then
  echo "nbval needs CIFAR-10 (the stored notebook outputs were made with it): set RESNET_NB_DATA to a folder or .zip" \
       "of <split>/<class>/<image> (README, 'Data'), or run where torchvision can download it" >&2
  exit 1
fi

echo "== unit tests"
"$py" -m pytest tests -q -p no:cacheprovider --ignore=tests/test_browser.py

echo "== notebooks (nbval, budget $RESNET_NB_BUDGET)"
start=$(date +%s)
"$py" -m pytest --nbval book -q -p no:cacheprovider --nbval-cell-timeout=600
echo "nbval took $(( $(date +%s) - start )) s"

echo "== strict book build"
bash scripts/fetch_widget_js.sh
rm -rf _build
jupyter-book build -W -n --keep-going . 2>&1 | tail -n 25
[ "${PIPESTATUS[0]}" -eq 0 ]
test -f _build/html/index.html

echo "== the built pages in a browser (screenshots in _build/browser-artifacts/)"
"$py" -m pytest tests/test_browser.py -q -p no:cacheprovider -rs
