#!/usr/bin/env bash
# One GPU lease, prepared in advance: the CUDA-only tests, a short benchmark, then as much
# of the report grid as fits. Everything comes back as a few files in OUTDIR.
#
#   scripts/gpu_session.sh SECONDS OUTDIR [K]
#
# Expects RESNET_NB_DATA (the dataset zip carried along) and, where .git does not travel,
# RESNET_NB_GIT_COMMIT. pytest is installed from carried wheels in .whl/ if missing.
set -u
total=$1; out=$2; k=${3:-6}
start=$(date +%s)
py=${PYTHON:-python3}
export RESNET_NB_CACHE=${RESNET_NB_CACHE:-/tmp/resnet_nb_cache}
mkdir -p "$out"
$py -c "import pytest" 2>/dev/null || $py -m pip install -q --no-index --no-deps .whl/*.whl
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
timeout --kill-after=10 150 $py -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py >"$out/pytest_cuda.txt" 2>&1
graph_ok=$?
graph=auto; [ "$graph_ok" = 0 ] || { graph=off; k=12; }  # eager: more workers fill the launch gaps
echo "cuda graph tests: exit $graph_ok -> --cuda-graph $graph, $k workers" | tee -a "$out/gpu.txt"
timeout --kill-after=10 120 $py -m resnet_nb bench --models resnet20-A,resnet56-A --recipes report \
  --variants "baseline,ours,ours -cuda_graph" --steps 40 --repeats 3 --json "$out/bench_gpu.json" \
  >"$out/bench.txt" 2>&1
work=/tmp/gpu_grid; rm -rf "$work"; mkdir -p "$work/results"; cp -r results/report "$work/results/"
left=$(( total - ($(date +%s) - start) - 20 ))
bash scripts/gpu_grid.sh report "$left" "$k" "$work" --seeds 0-4 --cuda-graph "$graph" >"$out/grid.txt" 2>&1
tar czf "$out/records.tgz" -C "$work/results" report
tar czf "$out/logs.tgz" -C "$work" logs
echo "done after $(( $(date +%s) - start )) s" >>"$out/gpu.txt"
