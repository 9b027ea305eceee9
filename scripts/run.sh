#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing
# (scripts/setup.sh), builds, and runs the searcher. Extra arguments go to it.
#
# With no arguments it runs a short search that finishes in a few minutes on
# 2 CPU cores: the embedded pattern set (1000 images) at 16x16, 6 epochs (3
# of them warm-up), a 5 ms target, against the in-memory MAC-count proxy
# table (no GPU table is measured yet; the searcher says so), writing
# arch.json. The searcher's own
# defaults are the method's (90 epochs, 10 warm-up, ...): pass any argument
# to use them, e.g. `bash scripts/run.sh --table tables/h100.csv --target-ms 4`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release -p searcher -p profiler
if [ "$#" -eq 0 ]; then
  set -- --epochs 6 --warmup-epochs 3 --embedded-images 1000 --resolution 16 \
    --target-ms 5 --out arch.json
fi
exec ./target/release/searcher "$@"
