#!/usr/bin/env bash
# The main job. With no arguments it closes the loop on the machine at hand:
#   1. installs what is missing (scripts/setup.sh) and builds release binaries;
#   2. builds (or resumes) a coarse latency table of this machine in the
#      git-ignored tables/local/: the GPU (`--device 0`) where nvidia-smi
#      works and libcuda loads, else the CPU (`--device cpu`, one pinned
#      thread, batch 1, blocks timed inside networks at a speed reference),
#      at width step 32 (about 2 minutes on 2 cores);
#   3. takes the target from the table: TF-NAS-A's predicted latency;
#   4. searches on the embedded data against the table (1000 images at
#      48x48, 11 epochs of which 9 warm-up: a few minutes on 2 cores),
#      writing arch.json;
#   5. measures the searched network end to end with the same engine and
#      prints the target, the table's prediction, the measured latency and
#      the errors.
# 48x48, not less: the space downsamples 32x, and below 33x33 the last
# stages and the head run at 1x1, where batch norm on batch statistics
# normalises each channel over the batch alone and the sampled paths learn
# nothing in a short run.
#
# With arguments, it builds and runs the searcher with them, as before
# (its own defaults are the method's: 90 epochs, 10 warm-up, ...), e.g.
#   bash scripts/run.sh --table tables/reference/titanrtx-tfnas-official.csv --target-ms 18
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if [ "$#" -gt 0 ]; then
  cargo build --release -p searcher -p profiler-cli
  exec ./target/release/searcher "$@"
fi

start=$(date +%s)
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 \
  && { ldconfig -p 2>/dev/null | grep -q 'libcuda\.so'; }; then
  device=(--device 0)
  table=tables/local/gpu0-w32.csv
  cargo build --release -p searcher -p profiler-cli
else
  device=(--device cpu)
  table=tables/local/cpu-network-w32.csv
  cargo build --release -p searcher -p profiler-cli -p profiler-cpu
fi
mkdir -p tables/local
P=./target/release/profiler
echo "== 1/4 latency table of this machine (${device[*]}, width step 32): $table"
"$P" "${device[@]}" --width-step 32 --out "$table"

echo "== 2/4 target: TF-NAS-A as the table predicts it"
target=$("$P" predict --table "$table" --arch tests/fixtures/tfnas_a.json \
  | sed -n 's/^predicted \([0-9.]*\) ms.*/\1/p')
echo "target ${target} ms (TF-NAS-A's predicted latency on this table)"

echo "== 3/4 search on the embedded data against $table"
./target/release/searcher --epochs 11 --warmup-epochs 9 --embedded-images 1000 --resolution 48 \
  --table "$table" --target-ms "$target" --out arch.json

echo "== 4/4 the searched network, predicted and measured end to end (${device[*]})"
predicted=$("$P" predict --table "$table" --arch arch.json | sed -n 's/^predicted \([0-9.]*\) ms.*/\1/p')
# A longer cap than the table's: a network is one number, worth a tight
# interval. A CPU table also has a speed reference: the network is timed at
# it too (every run scaled by the fixed parts' time in that run, as the
# table's entries were), which is the number the table predicts on a
# machine whose speed drifts (docs/cpu.md, "Speed").
measure=("$P" measure "${device[@]}" --arch arch.json --cap-ms 2000)
[ "${device[1]}" = cpu ] && measure+=(--table "$table")
measured_out=$("${measure[@]}")
echo "$measured_out"
measured=$(echo "$measured_out" | sed -n 's/.*): median \([0-9.]*\) ms.*/\1/p' | head -1)
at_speed=$(echo "$measured_out" | sed -n "s/.*at the table's speed median \([0-9.]*\) ms.*/\1/p")
awk -v t="$target" -v p="$predicted" -v m="$measured" -v a="${at_speed:-}" -v s="$(( $(date +%s) - start ))" 'BEGIN {
  printf "target    %.4f ms (TF-NAS-A predicted by the table)\n", t
  printf "predicted %.4f ms (the searched network, by the table)\n", p
  printf "measured  %.4f ms (end to end, same engine)\n", m
  if (a != "") {
    printf "measured  %.4f ms at the table'"'"'s speed reference\n", a
    printf "table error %+.2f%% (predicted against measured at the table'"'"'s speed); at that speed against target %+.2f%%\n", (p / a - 1) * 100, (a / t - 1) * 100
    printf "raw: predicted against measured %+.2f%%, measured against target %+.2f%% (the machine'"'"'s speed now against the table'"'"'s)\n", (p / m - 1) * 100, (m / t - 1) * 100
  } else {
    printf "table error %+.2f%% (predicted against measured); measured against target %+.2f%%\n", (p / m - 1) * 100, (m / t - 1) * 100
  }
  printf "wall time after setup: %d s\n", s
}'
