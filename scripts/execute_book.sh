#!/usr/bin/env bash
# Re-execute the book's notebooks in place (default: all of book/[0-9]*.ipynb), saving their
# outputs and widget state: what is committed, what the static book shows and what
# `pytest --nbval book` compares against. Live training cells use RESNET_NB_BUDGET (default
# here: smoke). Needs CIFAR-10: RESNET_NB_DATA=<folder or zip>, or internet for torchvision.
#
#   scripts/execute_book.sh                       # all chapters
#   scripts/execute_book.sh book/05_depth.ipynb   # one chapter
set -euo pipefail
. "$(dirname "$0")/data_env.sh"  # a relative RESNET_NB_DATA made absolute, before the cd
cd "$(dirname "$0")/.."
export RESNET_NB_BUDGET=${RESNET_NB_BUDGET:-smoke}
# one thread, as under nbval (book/conftest.py): oversubscribed cores make multi-threaded torch crawl
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
# the published pages must show live cells that ran: no data is an error here, not a skip
"$py" -m resnet_nb data >/dev/null || { echo "no CIFAR-10 (see the error above): set RESNET_NB_DATA" >&2; exit 1; }
notebooks=("$@")
[ ${#notebooks[@]} -gt 0 ] || notebooks=(book/[0-9]*.ipynb)
run() {  # one notebook; 15 min at most (a kernel that never answers must not block forever)
  timeout 900 "$py" -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 \
    --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.record_timing=False "$1" >"$log" 2>&1
}
log=$(mktemp); trap 'rm -f "$log"' EXIT
for nb in "${notebooks[@]}"; do
  start=$(date +%s)
  # record_timing off: no timestamps in cell metadata, so re-running changes only what changed
  if ! run "$nb"; then
    echo "retrying $nb once (first attempt failed or timed out):" >&2; tail -5 "$log" >&2
    run "$nb" || { grep -v -e '^\[NbConvertApp\]' -e 'Kernel is running over TCP' "$log" >&2; echo "FAILED: $nb" >&2; exit 1; }
  fi
  echo "executed $nb in $(( $(date +%s) - start )) s (budget $RESNET_NB_BUDGET)"
done
