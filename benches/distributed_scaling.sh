#!/usr/bin/env bash
# The data-parallel scaling benchmark (a benchmark, not a test): the same
# global batch in one process on one thread (A) and in two processes on one
# thread each (B, `--nproc 2`), alternated A/B/A/B so that the machine's
# drift falls on both, for the search's epochs (weight steps, then weight
# and architecture steps) and for `searcher train`. Prints each round's
# images per second and the ratio B/A, then the median ratio per workload.
#
# Usage: bash benches/distributed_scaling.sh [ROUNDS]   (default 3)
# Environment: SCALING_BATCH (global batch, default 32), SCALING_IMAGES
# (embedded images, default 400), SCALING_RESOLUTION (default 32),
# SCALING_WORKLOADS (default "search train").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-3}
batch=${SCALING_BATCH:-32}
images=${SCALING_IMAGES:-400}
res=${SCALING_RESOLUTION:-32}
cargo build --release -q -p searcher
S=./target/release/searcher
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

common=(--embedded-images "$images" --resolution "$res" --batch-size "$batch"
  --device cpu --threads 1 --restart)
# The search: one warm-up epoch (weight steps) and one with architecture
# steps, on the default space with the MAC-count proxy table.
search_args=(--target-ms 20 --epochs 2 --warmup-epochs 1 "${common[@]}")
train_args=(train --arch tests/fixtures/tfnas_a.json --epochs 3 "${common[@]}")

# Seconds of the epochs a run logged (the last field of each epoch line).
epoch_seconds() {
  grep '^epoch ' "$1" | sed -E 's/.*, ([0-9.]+) ?s$/\1/' | awk '{s += $1} END {print s}'
}

# Training images a run's epochs went through: the search trains on 80% of
# the images each epoch (whole batches), training the same.
trained_images() {
  local epochs=$1
  echo $(( (images * 8 / 10) / batch * batch * epochs ))
}

run_one() { # workload nproc log
  local workload=$1 nproc=$2 log=$3 args
  if [ "$workload" = search ]; then
    args=("${search_args[@]}" --out "$work/search-$nproc.json")
  else
    args=("${train_args[@]}" --out "$work/train-$nproc.safetensors")
  fi
  "$S" "${args[@]}" --nproc "$nproc" >/dev/null 2>"$log"
}

for workload in ${SCALING_WORKLOADS:-search train}; do
  epochs=$([ "$workload" = search ] && echo 2 || echo 3)
  n=$(trained_images "$epochs")
  ratios=()
  for round in $(seq 1 "$rounds"); do
    run_one "$workload" 1 "$work/a.log"
    run_one "$workload" 2 "$work/b.log"
    a=$(epoch_seconds "$work/a.log")
    b=$(epoch_seconds "$work/b.log")
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}')
    ratios+=("$ratio")
    awk -v w="$workload" -v r="$round" -v n="$n" -v a="$a" -v b="$b" -v q="$ratio" 'BEGIN {
      printf "%s round %d: 1 process %.1f images/s (%.2f s), 2 processes %.1f images/s (%.2f s): ratio %s\n",
        w, r, n / a, a, n / b, b, q }'
  done
  median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
  echo "ratio: $workload throughput, 2 processes x 1 thread / 1 process x 1 thread = $median (median of $rounds; global batch $batch, ${res}x$res)"
done
