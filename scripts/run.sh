#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing
# (scripts/setup.sh), builds, and runs the searcher. Extra arguments go to it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release -p searcher -p profiler
exec ./target/release/searcher "$@"
