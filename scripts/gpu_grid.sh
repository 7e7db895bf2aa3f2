#!/usr/bin/env bash
# Run as much of a grid as fits in a time budget on one GPU machine, with K worker
# processes sharing the GPU (small CIFAR nets at batch 32 leave a big GPU mostly idle,
# so several runs side by side multiply throughput). Each worker takes one shard
# (--shard i/K); results merge by copying the record files.
#
#   scripts/gpu_grid.sh GRID SECONDS K OUTDIR [extra grid-run args...]
#
# Needs RESNET_NB_DATA (or internet for the torchvision download). Records of runs
# that did not finish in time are not written (the runner only writes finished runs).
set -u
grid=$1; budget=$2; k=$3; out=$4; shift 4
py=${PYTHON:-python3}
mkdir -p "$out/results" "$out/logs"
nvidia-smi -L || true
$py -m resnet_nb data --source "${RESNET_NB_DATA:-torchvision}" >"$out/logs/data.txt" 2>&1 || { cat "$out/logs/data.txt"; exit 1; }
for i in $(seq 1 "$k"); do
  OMP_NUM_THREADS=1 timeout --signal=INT "$budget" \
    $py -m resnet_nb grid run "$grid" --shard "$i/$k" --quiet --results "$out/results" \
      --checkpoints "${TMPDIR:-/tmp}/resnet_nb_ckpt" "$@" >"$out/logs/shard$i.txt" 2>&1 &
done
wait
echo "records written: $(find "$out/results" -name '*.json' | wc -l)"
