#!/usr/bin/env bash
# Train what is left of one or more grids on this machine's CPU, in the background.
#
#   scripts/cpu_lanes.sh LANES GRID[:GLOBS] [...]    e.g. scripts/cpu_lanes.sh 2 report precision10
#
# GRID:GLOBS takes only the grid's runs whose ids match the comma-separated globs (`grid run --only`),
# e.g. `paper8k paper:resnet20-A_paper_s0,plain20_paper_s0` (the shortened grid, then two full-length runs).
#
# LANES processes of one thread each, under `nice` (NICE, default 10: the lanes take every idle cycle, and
# the tests and builds of the person working beside them come first), so the machine stays usable:
# on a 2-core CPU two one-thread lanes finish more runs per hour than one process with two
# threads (these nets are small: on the Intel machine a second thread speeds one ResNet-20 run up 1.64x,
# a second lane adds 1.94x; benchmarks/cpu-intel-lanes/). Each lane
# runs `grid run GRID` for each GRID in turn; the runner's locks make the lanes take different runs
# (a run another lane holds is skipped for the next one, partial runs first), so nothing is trained
# twice. Records land in this checkout's results/ (RESULTS overrides), checkpoints in the package's
# cache, so stopping loses at most the epoch in progress and a later call resumes.
#
# The lanes run a frozen worktree of HEAD (LANES_DIR/worktree-<sha>, default .lanes/): editing the
# checkout while they train does not change the code a run started with, and the records name that
# commit. Uncommitted changes to resnet_nb/ are therefore not in the lanes: a warning says so.
# A run longer than a session (the full-length paper runs) survives a fresh machine through the repository:
# `python -m resnet_nb grid park GRID` copies unfinished runs' checkpoints into carry/ (commit them), and this
# script unparks them into the cache before the lanes start (a newer checkpoint in the cache is kept).
# Logs: LANES_DIR/logs/. The script returns once the lanes have started (WAIT=1: once they end);
# each lane is its own process group, printed with the command that stops it.
# Needs RESNET_NB_DATA (or internet for the torchvision download).
set -euo pipefail
usage="usage: scripts/cpu_lanes.sh LANES GRID[:GLOBS] [...]   (LANES: a whole number >= 1)"
[ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }
lanes=$1; shift
case $lanes in ''|*[!0-9]*) echo "LANES must be a whole number, got '$lanes'; $usage" >&2; exit 2;; esac
[ "$lanes" -ge 1 ] || { echo "LANES must be at least 1, got $lanes; $usage" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$repo/.venv/bin/python}
[ -x "$py" ] || py=$(command -v python3)
results=$(mkdir -p "${RESULTS:-$repo/results}" && cd "${RESULTS:-$repo/results}" && pwd)
work=${LANES_DIR:-$repo/.lanes}
sha=$(git -C "$repo" rev-parse --short=12 HEAD)
frozen=$work/worktree-$sha
if [ ! -d "$frozen" ]; then
  git -C "$repo" worktree add --quiet --detach "$frozen" HEAD
fi
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no -- resnet_nb)" ]; then
  echo "warning: resnet_nb/ has uncommitted changes; the lanes run HEAD ($sha) without them" >&2
fi
for sel in "$@"; do  # a bad grid name (or selection) fails here, before any lane starts
  only=(); [ "${sel#*:}" = "$sel" ] || only=(--only "${sel#*:}")
  (cd "$frozen" && "$py" -m resnet_nb grid list "${sel%%:*}" "${only[@]}" --ids --results "$results" >/dev/null)
done
for sel in "$@"; do  # unfinished runs carried in the repository (`grid park`) resume where they were parked
  only=(); [ "${sel#*:}" = "$sel" ] || only=(--only "${sel#*:}")
  if [ -d "$repo/carry/${sel%%:*}" ]; then
    (cd "$frozen" && "$py" -m resnet_nb grid unpark "${sel%%:*}" "${only[@]}" --results "$results" \
      --carry "$repo/carry") || echo "warning: could not unpark carry/${sel%%:*} (see above); the lanes start without it" >&2
  fi
done
mkdir -p "$work/logs"
stamp=$(date +%Y%m%dT%H%M%S)
pids=()
for i in $(seq 1 "$lanes"); do
  log=$work/logs/$stamp-lane$i.log
  # setsid: the lane is its own process group (stopped as one) and outlives this shell
  setsid nohup env OMP_NUM_THREADS=1 bash -c '
    cd "$1" || exit 1
    py=$2 results=$3 nice=$4; shift 4
    for sel in "$@"; do
      only=(); [ "${sel#*:}" = "$sel" ] || only=(--only "${sel#*:}")
      echo "=== grid $sel $(date -Is)"
      nice -n "$nice" "$py" -m resnet_nb grid run "${sel%%:*}" "${only[@]}" --results "$results" --quiet
      echo "=== grid $sel exit $? $(date -Is)"
    done' lane "$frozen" "$py" "$results" "${NICE:-10}" "$@" >"$log" 2>&1 </dev/null &
  pids+=($!)
  echo "lane $i: process group $! (stop: kill -- -$!), log $log"
  [ "$i" -eq "$lanes" ] || sleep "${STAGGER:-5}"  # the next lane starts once this one has claimed a run
done
echo "code: $frozen (HEAD $sha); records: $results"
if [ -n "${WAIT:-}" ]; then
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 1; done
  done
fi
