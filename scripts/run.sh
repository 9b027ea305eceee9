#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing
# (scripts/setup.sh), builds, and runs the searcher. Extra arguments go to it.
#
# With no arguments it runs a short search that finishes in a few minutes on
# 2 CPU cores: the embedded pattern set (1000 images) at 48x48, 11 epochs (9
# of them warm-up), a 5 ms target, against the in-memory MAC-count proxy
# table (no GPU table is measured yet; the searcher says so), writing
# arch.json. 48x48, not less: the space downsamples 32x, and below 33x33
# the last stages and the head run at 1x1, where batch norm on batch
# statistics normalises each channel over the batch alone and the sampled
# paths learn nothing in a short run. The searcher's own
# defaults are the method's (90 epochs, 10 warm-up, ...): pass any argument
# to use them, e.g. `bash scripts/run.sh --table tables/h100.csv --target-ms 4`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release -p searcher -p profiler
if [ "$#" -eq 0 ]; then
  set -- --epochs 11 --warmup-epochs 9 --embedded-images 1000 --resolution 48 \
    --target-ms 5 --out arch.json
fi
exec ./target/release/searcher "$@"
