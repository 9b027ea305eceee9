#!/usr/bin/env bash
# The profiler's GPU check (issue 3), in two halves:
#
#   scripts/gpu-check.sh build   # here, with cargo: release binaries into target/gpu-check/
#   scripts/gpu-check.sh run     # on the GPU machine (no Rust there), from the repo root
#
# `run` needs target/gpu-check/ carried over, and writes every log under
# $OUT (./gpu-check-out when unset), with a summary in $OUT/summary.txt.
# About 3-5 minutes on an H100. FULL=1 also builds the full default table
# (about 10 minutes more) into $OUT/table.csv.
#
# The profiler runs with no LD_LIBRARY_PATH (gpu-facts pitfall 1: pip's cuDNN
# on the path breaks the system one); python3 is the machine's torch venv.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=target/gpu-check

build() {
    set -e
    cargo build --release -p profiler
    # The library's unit tests as one binary: the GPU tests in it skip
    # without CUDA here and run there.
    local exe
    exe=$(cargo test --release -p profiler --lib --no-run --message-format=json 2>/dev/null |
        python3 -c 'import sys, json
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
    mkdir -p "$bin"
    # Debug info stripped: the carried folder must stay small.
    strip --strip-debug -o "$bin/profiler" target/release/profiler
    strip --strip-debug -o "$bin/profiler-unit-tests" "$exe"
    ls -l "$bin"
}

run() {
    OUT=${OUT:-$PWD/gpu-check-out}
    mkdir -p "$OUT"
    unset LD_LIBRARY_PATH
    local summary=$OUT/summary.txt
    : >"$summary"
    step() { # step NAME SECONDS CMD...: runs CMD, tees its log, notes its status
        local name=$1 secs=$2
        shift 2
        echo "== $name: $*" | tee -a "$summary"
        local t0=$SECONDS
        timeout "$secs" "$@" >"$OUT/$name.log" 2>&1
        local rc=$?
        tail -n 30 "$OUT/$name.log"
        echo "   $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$summary"
    }
    nvidia-smi --query-gpu=name,uuid,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,clocks_throttle_reasons.active --format=csv >"$OUT/nvidia-smi.csv" 2>&1
    local p=$bin/profiler

    # 1. The GPU unit tests (numerics of every block kind against the CPU).
    step unit-tests 180 "$bin/profiler-unit-tests" --test-threads=1
    # 2. The same check from the binary, plus TF-NAS-A end to end; and the
    #    eager path.
    step verify 180 "$p" verify --device 0 --network
    step verify-eager 120 "$p" verify --device 0 --launch eager
    # 3. A table subset, killed by --limit and resumed, then checked.
    step subset-1 120 "$p" --device 0 --width-step 64 --limit 40 --out "$OUT/subset.csv"
    step subset-2 120 "$p" --device 0 --width-step 64 --limit 40 --out "$OUT/subset.csv"
    step subset-check 30 "$p" check --table "$OUT/subset.csv"
    step refuse-other-batch 30 "$p" --device 0 --width-step 64 --batch 16 --out "$OUT/subset.csv"
    # 4. Repeatability: the same 20 entries twice.
    step repeat-a 120 "$p" --device 0 --width-step 64 --limit 20 --out "$OUT/repeat-a.csv"
    step repeat-b 120 "$p" --device 0 --width-step 64 --limit 20 --out "$OUT/repeat-b.csv"
    python3 - "$OUT/repeat-a.csv" "$OUT/repeat-b.csv" <<'EOF' | tee -a "$summary"
import csv, statistics, sys
def rows(p):
    return {r["key"]: float(r["median_ms"]) for r in csv.DictReader(l for l in open(p) if not l.startswith("#"))}
a, b = rows(sys.argv[1]), rows(sys.argv[2])
d = [abs(a[k] / b[k] - 1) for k in a if k in b]
print(f"target 3: {len(d)} entries measured twice, median |a/b-1| = {100 * statistics.median(d):.3f}% (want <= 0.5%), max {100 * max(d):.3f}%")
EOF
    # 5. TF-NAS-A end to end and per block, graph and eager, warm and cold L2.
    local arch=tests/fixtures/tfnas_a.json
    step measure-graph 180 "$p" measure --arch "$arch" --device 0 --per-block --cap-ms 1000
    step measure-eager 180 "$p" measure --arch "$arch" --device 0 --launch eager --cap-ms 1000
    step measure-cold 180 "$p" measure --arch "$arch" --device 0 --l2 cold --cap-ms 1000
    # 6. PyTorch on the same blocks and network, with the ratios.
    step pytorch 300 python3 benches/pytorch_reference.py "$OUT/measure-graph.log" --batch 32
    # 7. Speed of the table build, projected to the full default table.
    grep -h "entries/s" "$OUT"/subset-*.log | tee -a "$summary"
    "$p" plan --width-step 8 2>&1 | grep "table plan" | tee -a "$summary"
    if [ "${FULL:-0}" = 1 ]; then
        step full-table 900 "$p" --device 0 --out "$OUT/table.csv"
        step full-check 30 "$p" check --table "$OUT/table.csv"
    fi
    echo "logs in $OUT" | tee -a "$summary"
}

case "${1:-}" in
build) build ;;
run) run ;;
*)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac
