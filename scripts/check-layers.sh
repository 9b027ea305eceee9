#!/usr/bin/env bash
# The profiler's layering rules (issue 13), checked by grep:
#   - analysis/, stats/, measure/, reference/, table/ and validate/ never
#     use the CUDA engine (crate::cuda), clap or anyhow: they are library
#     code generic over the engine and return the crate's error type;
#   - stats/ imports nothing from the rest of the crate;
#   - the import graph of profiler/src has no circle and at most 7 floors
#     (scripts/import-floors.py says how it is drawn).
# Comment lines are skipped, so the docs may name what the code must not use.
#
# Usage: scripts/check-layers.sh [SRC]     check SRC (default profiler/src)
#        scripts/check-layers.sh --self-test
#                      shows on a copy that each rule fails when broken
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Code lines of the .rs files at or under $1 matching the PCRE $2, as file:line:text.
code_matches() {
    local dir=$1 pattern=$2
    [ -e "$dir" ] || return 0
    find "$dir" -name '*.rs' -exec grep -HnP "$pattern" {} + | grep -vP '^[^:]+:\d+:\s*//' || true
}

check() {
    local src=$1 failed=0 hits layer
    if [ ! -f "$src/lib.rs" ]; then
        echo "check-layers: $src/lib.rs not found" >&2
        return 2
    fi
    for layer in analysis stats measure reference table validate; do
        hits=$(code_matches "$src/$layer" '\b(crate|profiler)::(cuda\b|\{[^}]*\bcuda\b)|\bclap\b|\banyhow\b')
        if [ -n "$hits" ]; then
            echo "check-layers: $layer/ must not use the CUDA engine, clap or anyhow:" >&2
            echo "$hits" >&2
            failed=1
        fi
    done
    # stats/ only: crate:: outside stats, and super:: from stats/mod.rs
    # (whose parent is the crate root).
    hits=$(code_matches "$src/stats" '\b(crate|profiler)::(?!stats\b)|\bsuper::super::super::')
    if [ -f "$src/stats/mod.rs" ]; then
        hits+=$(code_matches "$src/stats/mod.rs" '\bsuper::')
    fi
    if [ -n "$hits" ]; then
        echo "check-layers: stats/ must import nothing from the rest of the crate:" >&2
        echo "$hits" >&2
        failed=1
    fi
    if ! python3 "$here/import-floors.py" "$src" 7 >&2; then
        echo "check-layers: the import graph must have no circle and at most 7 floors" >&2
        failed=1
    fi
    return $failed
}

# Each broken rule, injected into a copy of the sources, must fail the check.
self_test() {
    local src=$1 tmp status=0 name file line
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    if ! check "$src" >/dev/null 2>&1; then
        echo "self-test: the sources themselves fail the check" >&2
        return 1
    fi
    while IFS='|' read -r name file line; do
        rm -rf "$tmp/src"
        cp -r "$src" "$tmp/src"
        printf '%s\n' "$line" >>"$tmp/src/$file"
        if check "$tmp/src" >/dev/null 2>&1; then
            echo "self-test FAILED: '$line' in $file passed the check" >&2
            status=1
        else
            echo "self-test: '$line' in $file is refused, as it must be ($name)"
        fi
    done <<'CASES'
cuda in measure|measure/mod.rs|use crate::cuda::CudaEngine;
cuda in a group in table|table/mod.rs|use crate::{cuda, measure};
clap in analysis|analysis/fit.rs|use clap::Args;
cuda in reference|reference/check.rs|use crate::cuda::CudaEngine;
anyhow in reference|reference/forward.rs|fn f() -> anyhow::Result<()> { Ok(()) }
anyhow in validate|validate/mod.rs|fn f() -> anyhow::Result<()> { Ok(()) }
anyhow in stats|stats/rank.rs|use anyhow::bail;
crate in stats|stats/summary.rs|use crate::error::Result;
super from stats/mod.rs|stats/mod.rs|use super::measure;
a circle between measure and table|measure/engine.rs|use crate::table::build::BuildReport;
CASES
    return $status
}

cd "$here/.."
if [ "${1:-}" = "--self-test" ]; then
    self_test profiler/src
else
    check "${1:-profiler/src}" && echo "check-layers: the layering rules hold"
fi
