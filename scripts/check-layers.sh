#!/usr/bin/env bash
# The profiler's layering rules (issue 13), checked by grep:
#   - analysis/, stats/, measure/, reference/, table/ and validate/ never
#     use the CUDA engine (crate::cuda), clap or anyhow: they are library
#     code generic over the engine and return the crate's error type;
#   - stats/ imports nothing from the rest of the crate;
#   - the import graph of profiler/src has no circle and at most 7 floors
#     (scripts/import-floors.py says how it is drawn);
# and the engines' rules (issue 26):
#   - the shared command line (profiler-cli/src but its bin/) names no
#     engine: not the CUDA engine, the CPU engine or tch;
#   - space, profiler and profiler-cli, the crates the `profiler` binary
#     links, depend on neither tch, torch-sys, profiler-cpu, blocks-tch nor c10d-tch
#     (a process holding libtorch's cuDNN cannot use the system cuDNN);
#   - an engine crate (profiler-cpu, profiler-fake) declares no commands of
#     its own: its binary is a plug-in of profiler_cli.
# Comment lines are skipped, so the docs may name what the code must not use.
#
# Usage: scripts/check-layers.sh [ROOT]    check the workspace at ROOT (default: this one)
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
    local root=$1 src=$1/profiler/src failed=0 hits layer
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
    check_engines "$root" || failed=1
    return $failed
}

# The engines' rules (see the top of this file).
check_engines() {
    local root=$1 failed=0 hits crate
    hits=$(find "$root/profiler-cli/src" -path "$root/profiler-cli/src/bin" -prune -o -name '*.rs' -print |
        while read -r f; do code_matches "$f" '\bprofiler::cuda\b|\btch\b|\bprofiler_cpu\b'; done)
    if [ -n "$hits" ]; then
        echo "check-layers: the shared command line (profiler-cli/src but bin/) must name no engine:" >&2
        echo "$hits" >&2
        failed=1
    fi
    for crate in space profiler profiler-cli; do
        hits=$(grep -HnP '^\s*(tch|torch-sys|profiler-cpu|blocks-tch|c10d-tch)\b' "$root/$crate/Cargo.toml" || true)
        if [ -n "$hits" ]; then
            echo "check-layers: $crate, linked by the profiler binary, must not depend on libtorch or the CPU engine:" >&2
            echo "$hits" >&2
            failed=1
        fi
    done
    for crate in profiler-cpu profiler-fake; do
        hits=$(code_matches "$root/$crate/src" '\bderive\([^)]*\b(Parser|Subcommand)\b')
        if [ -n "$hits" ]; then
            echo "check-layers: $crate must declare no commands of its own (they are profiler_cli's):" >&2
            echo "$hits" >&2
            failed=1
        fi
    done
    return $failed
}

# Each broken rule, injected into a copy of the sources, must fail the check.
self_test() {
    local root=$1 tmp status=0 name file line part
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    if ! check "$root" >/dev/null 2>&1; then
        echo "self-test: the sources themselves fail the check" >&2
        return 1
    fi
    while IFS='|' read -r name file line; do
        rm -rf "$tmp/root"
        for part in profiler/src profiler-cli/src profiler-cpu/src profiler-fake/src \
            space/Cargo.toml profiler/Cargo.toml profiler-cli/Cargo.toml; do
            mkdir -p "$tmp/root/$(dirname "$part")"
            cp -r "$root/$part" "$tmp/root/$part"
        done
        printf '%s\n' "$line" >>"$tmp/root/$file"
        if check "$tmp/root" >/dev/null 2>&1; then
            echo "self-test FAILED: '$line' in $file passed the check" >&2
            status=1
        else
            echo "self-test: '$line' in $file is refused, as it must be ($name)"
        fi
    done <<'CASES'
cuda in measure|profiler/src/measure/mod.rs|use crate::cuda::CudaEngine;
cuda in a group in table|profiler/src/table/mod.rs|use crate::{cuda, measure};
clap in analysis|profiler/src/analysis/fit.rs|use clap::Args;
cuda in reference|profiler/src/reference/check.rs|use crate::cuda::CudaEngine;
anyhow in reference|profiler/src/reference/forward.rs|fn f() -> anyhow::Result<()> { Ok(()) }
anyhow in validate|profiler/src/validate/mod.rs|fn f() -> anyhow::Result<()> { Ok(()) }
anyhow in stats|profiler/src/stats/rank.rs|use anyhow::bail;
crate in stats|profiler/src/stats/summary.rs|use crate::error::Result;
super from stats/mod.rs|profiler/src/stats/mod.rs|use super::measure;
a circle between measure and table|profiler/src/measure/engine.rs|use crate::table::build::BuildReport;
the CUDA engine in the shared command line|profiler-cli/src/build.rs|use profiler::cuda::CudaEngine;
tch in the shared command line|profiler-cli/src/flags.rs|fn f(_: tch::Tensor) {}
tch in the profiler library's dependencies|profiler/Cargo.toml|tch.workspace = true
the CPU engine in the shared command line's dependencies|profiler-cli/Cargo.toml|profiler-cpu = { path = "../profiler-cpu" }
libtorch's ops in the profiler library's dependencies|profiler/Cargo.toml|blocks-tch.workspace = true
a command of the CPU engine's own|profiler-cpu/src/settings.rs|#[derive(clap::Subcommand)] enum Extra { A }
a parser of the fake engine's own|profiler-fake/src/main.rs|#[derive(Debug, clap::Parser)] struct Own;
CASES
    return $status
}

cd "$here/.."
if [ "${1:-}" = "--self-test" ]; then
    self_test .
else
    check "${1:-.}" && echo "check-layers: the layering rules hold"
fi
