#!/usr/bin/env bash
# The project's test command (README, .ci/run, .github/workflows/tests.yml):
# unit tests, the notebooks under nbval, and a strict offline build of the book.
# Run it inside the environment made from requirements.txt. The live training cells of
# the notebooks use the smoke budget and need CIFAR-10 (RESNET_NB_DATA, or internet).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
export RESNET_NB_BUDGET=${RESNET_NB_BUDGET:-smoke}

echo "== unit tests"
"$py" -m pytest tests -q -p no:cacheprovider

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
