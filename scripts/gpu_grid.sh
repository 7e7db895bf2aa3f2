#!/usr/bin/env bash
# Run as much of a grid as fits in a time budget on one GPU machine.
#
#   scripts/gpu_grid.sh GRID SECONDS K OUTDIR [grid args, e.g. --seeds 0-4 --only 'resnet*']
#
# K worker processes share the GPU. Each takes the next run still to do, in the order
# `grid run` would take them (`grid list --ids`), so long and short runs balance out;
# a run is not started with less than MIN_LEFT seconds (default 60) of the budget left.
# A run still going GRACE seconds (default 30) before the deadline gets SIGTERM (the
# package stops like Ctrl-C: finished epochs stay checkpointed, its lock is released), and
# SIGKILL at the deadline if it has not stopped: no worker outlives the budget. `timeout`
# runs each worker in its own process group and signals the whole group, so backgrounded
# workers (which ignore SIGINT) and their children stop too. The checkpoint stays in CKPT
# (default $TMPDIR/resnet_nb_ckpt), so a later call on the same machine resumes it.
# Records are written to OUTDIR/results/GRID/ (seed OUTDIR/results with the existing
# records so that done runs are skipped); logs to OUTDIR/logs/. Results merge by copying
# the record files. Needs RESNET_NB_DATA (or internet for the torchvision download).
set -u
grid=$1; budget=$2; k=$3; out=$4; shift 4
export PY=${PYTHON:-python3} GRID=$grid OUT=$out BUDGET=$budget END=$(( $(date +%s) + budget )) MIN_LEFT=${MIN_LEFT:-60}
export GRACE=${GRACE:-30}
[ "$MIN_LEFT" -gt "$GRACE" ] || { echo "MIN_LEFT ($MIN_LEFT s) must exceed GRACE ($GRACE s)" >&2; exit 2; }
export CKPT=${CKPT:-${TMPDIR:-/tmp}/resnet_nb_ckpt}
mkdir -p "$out/results" "$out/logs"
nvidia-smi -L || true
$PY -m resnet_nb data >"$out/logs/data.txt" 2>&1 || { cat "$out/logs/data.txt"; exit 1; }  # build the cache once
$PY -m resnet_nb grid list "$grid" --ids --results "$out/results" --checkpoints "$CKPT" "$@" >"$out/logs/queue.txt" \
  || exit 1
echo "$(wc -l <"$out/logs/queue.txt") run(s) queued for $k workers, $budget s"
worker() {  # $1: run id; the rest: grid args
  local id=$1 left; shift
  left=$(( END - $(date +%s) ))
  [ "$left" -ge "$MIN_LEFT" ] || { echo "$id: skipped, ${left} s left" >>"$OUT/logs/skipped.txt"; return 0; }
  # SIGTERM at the deadline minus GRACE, SIGKILL at the deadline (exit 124: stopped, 137: killed)
  OMP_NUM_THREADS=1 timeout --signal=TERM --kill-after="$GRACE" "$(( left - GRACE ))" \
    "$PY" -m resnet_nb grid run "$GRID" --only "$id" --quiet \
    --results "$OUT/results" --checkpoints "$CKPT" "$@" >"$OUT/logs/$id.txt" 2>&1
  echo "$id: exit $? at $(( $(date +%s) - END + BUDGET )) s" >>"$OUT/logs/workers.txt"
}
export -f worker
xargs -a "$out/logs/queue.txt" -P "$k" -I{} bash -c 'worker "$@"' _ {} "$@"
echo "records written: $(find "$out/results/$grid" -name '*.json' -newer "$out/logs/queue.txt" | wc -l)"
