#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then runs
# every test of the workspace. Tests that need a GPU skip with a reason here;
# scripts/gpu-check.sh runs them on the GPU machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if [ -d .venv/nvrtc ]; then
  # The kernel compile tests must run, not skip, where setup found NVRTC.
  export LD_LIBRARY_PATH="$PWD/.venv/nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PROFILER_REQUIRE_NVRTC=1
fi
# setup.sh installed torch and onnxruntime: the export round trips must run.
export SEARCHER_REQUIRE_PYTHON=1
cargo test --workspace
