#!/usr/bin/env bash
# One GPU lease, prepared in advance and resumable across leases:
#   1. the CUDA tests (CUDA graphs, seed-parallel equivalence on CUDA),
#   2. a short benchmark: ResNet-20 report recipe, single-seed step vs seed-parallel K = 1, 2, 5, 10,
#   3. as much of the grids in GRIDS as fits, in that order (default "report precision10 paper": the
#      report's missing seeds first, then the precision check, then the paper's protocol), each
#      grid's seed-parallel groups handed to WORKERS processes,
#   4. records, the unfinished runs' checkpoints and the logs packed into OUTDIR.
#
#   scripts/gpu_session.sh SECONDS OUTDIR [WORKERS]        (scripts/gpu_paper_session.sh: GRIDS=paper)
#
# SECONDS is the whole command's budget (stay under the lease's per-command limit); the grid
# gets what the tests and bench leave, minus RESERVE seconds (default 30) for packing up.
# Resume: carry the previous lease's OUTDIR/checkpoints.tgz as CARRY_CKPT (default
# gpu_carry/checkpoints.tgz) and its records into results/<grid>/: each grid starts from the records
# in RESULTS_SRC/<grid>/ (default results/), so done runs are skipped and the packed records hold
# them too. Environment: RESNET_NB_DATA
# (the dataset zip), RESNET_NB_GIT_COMMIT where .git does not travel, SEED_PARALLEL
# (default auto: up to 10 seeds of a config per group on a GPU), SKIP_BENCH=1 to go straight
# to the grid. pytest is installed from carried wheels in .whl/ if missing.
set -u
total=$1; out=$2; workers=${3:-3}
start=$(date +%s)
py=${PYTHON:-python3}
reserve=${RESERVE:-30}
carry=${CARRY_CKPT:-gpu_carry/checkpoints.tgz}
export RESNET_NB_CACHE=${RESNET_NB_CACHE:-/tmp/resnet_nb_cache}
export CKPT=${CKPT:-/tmp/resnet_nb_ckpt}
elapsed() { echo $(( $(date +%s) - start )); }
mkdir -p "$out" "$CKPT"
log="$out/session.txt"
$py -c "import pytest" 2>/dev/null || $py -m pip install -q --no-index --no-deps .whl/*.whl
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
if [ -f "$carry" ]; then
  tar xzf "$carry" -C "$CKPT" && echo "resumed checkpoints: $(find "$CKPT" -name '*.pt' | wc -l)" | tee -a "$log"
fi
timeout 120 $py -m resnet_nb data >"$out/data.txt" 2>&1  # decode the dataset cache once, before the timed steps
echo "data: exit $? at $(elapsed) s" | tee -a "$log"
timeout 120 $py -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py tests/test_stacked.py -k "cuda or graph" \
  >"$out/pytest_cuda.txt" 2>&1
tests=$?
graph=auto; [ "$tests" = 0 ] || graph=off  # a failing graph test: train eagerly rather than not at all
echo "cuda tests: exit $tests -> --cuda-graph $graph at $(elapsed) s" | tee -a "$log"
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  timeout 90 $py -m resnet_nb bench --models resnet20-A --recipes report --variants ours --seed-parallel 1,2,5,10 \
    --steps 30 --repeats 3 --eval-images 0 --json "$out/bench_seed_parallel.json" >"$out/bench.txt" 2>&1
  echo "bench: exit $? at $(elapsed) s" | tee -a "$log"
fi
grids=${GRIDS:-report precision10 paper}
work=${WORK:-/tmp/gpu_session}; rm -rf "$work"
for grid in $grids; do  # seed each grid with its existing records, so that done runs are skipped
  mkdir -p "$work/results/$grid" "$work/logs"
  cp "${RESULTS_SRC:-results}/$grid"/*.json "$work/results/$grid/" 2>/dev/null
done
for grid in $grids; do
  left=$(( total - $(elapsed) - reserve ))
  [ "$left" -gt "${MIN_LEFT:-60}" ] || { echo "grid $grid: not started, $left s left" | tee -a "$log"; continue; }
  echo "grid $grid: $left s, $workers workers, --seed-parallel ${SEED_PARALLEL:-auto}" | tee -a "$log"
  # one OUTDIR for every grid: records land in $work/results/<grid>/, logs (named by run id) in $work/logs/
  bash scripts/gpu_grid.sh "$grid" "$left" "$workers" "$work" --seed-parallel "${SEED_PARALLEL:-auto}" \
    --cuda-graph "$graph" >"$out/grid_$grid.txt" 2>&1
done
tar czf "$out/records.tgz" -C "$work/results" .
tar czf "$out/checkpoints.tgz" -C "$CKPT" .  # unfinished runs: carry this file to the next lease
tar czf "$out/logs.tgz" -C "$work" logs 2>/dev/null
echo "records: $(find "$work/results" -name '*.json' | wc -l) in all; done after $(elapsed) s" | tee -a "$log"
