#!/usr/bin/env bash
# The profiler's GPU check (issues 3 and 17):
#
#   scripts/gpu-check.sh build          # here, with cargo: release binaries into target/gpu-check/
#   scripts/gpu-check.sh run            # on the GPU machine (no Rust there), from the repo root
#   scripts/gpu-check.sh plan           # anywhere, no GPU: the steps `run` would take with the
#                                       # same settings, each with its time cap, none run
#   scripts/gpu-check.sh targets DIR    # re-print the targets from logs.tgz unpacked into DIR
#   scripts/gpu-check.sh libpath        # the LD_LIBRARY_PATH `run` gives the profiler
#   scripts/gpu-check.sh environment    # what `run` logs first about the machine
#
# `build` writes target/gpu-check/{profiler,profiler-unit-tests,searcher,
# search_step,c10d-unit-tests,BUILD_INFO} (about 25 MB; the searcher needs the libtorch that
# scripts/setup.sh installs); carry that folder to the GPU machine. The device
# hands back at most 8 files from $OUT, so `run` keeps every log and file of
# its steps in a folder of its own (GPU_CHECK_WORK, else a new one under
# /tmp) and after each step rewrites two files in $OUT (./gpu-check-out when
# unset): summary.txt, one line per step (PASS, FAIL, TIMEOUT, SKIP) and the
# issue's target ratios, also printed last; and logs.tgz, every log. FULL=1
# adds its table, $OUT/table.csv. A call cut short still brings back the
# summary and logs of the steps that ended.
#
# `run` never stops at a failing step: each step has its own time cap, and
# the whole run keeps within GPU_CHECK_BUDGET seconds (default 330; VALIDATE=1
# without it allows 380 s more, at most 540 s in all); a step that no longer
# fits is cut to what is left, or skipped below 15 s, and says so. The steps
# are in two calls (GPU_CHECK_CALL=1 or 2 runs one of them; unset, both, in
# order, as far as the budget goes), most informative first:
#
#   call 1, GPU_CHECK_BUDGET=250: environment (25 s cap), open-one-block
#     (30: the engine opens and one stem block is prepared, captured and
#     timed, after a capture that allocates has failed cleanly),
#     measure-graph (75: TF-NAS-A at batch 32, per block and end to end),
#     pytorch (85: the same blocks and network in PyTorch with CUDA graphs;
#     target 1), verify (30: every block kind against the CPU reference).
#     The caps add up to 245 s; the test `tests/gpu_check_script.rs` holds
#     them to the budget. Expected: about 2 to 3 minutes.
#   call 2: unit-tests (90 s cap: the three GPU unit tests call 1 did not
#     run, every convolution candidate preferred in turn among them),
#     measure-versus (TF-NAS-A/8 against TF-NAS-A in turns, the main job's
#     ratio), repeat-a/b/compare (target 3), subset-1/2/check (the rate for
#     target 4), measure-cold, verify-network (TF-NAS-A at batch 1),
#     measure-eager, verify-eager, bad-device, refuse-other-batch, oom,
#     oom-rows: 635 s of caps, so with the budget that is left (below) the
#     last ones may be skipped; `plan` shows which.
#
# The device calls, with 15 minutes of device time in all (the machine's
# start, 35-75 s, and idle time between calls included; the machine goes
# back 30 s after a call ends, so have the second call ready to send):
#   0. here: bash scripts/gpu-check.sh build  (commit first: BUILD_INFO names the commit)
#   1. run(command="GPU_CHECK_BUDGET=250 GPU_CHECK_CALL=1 bash scripts/gpu-check.sh run",
#          carry=["target/gpu-check"], timeout_s=300): about 3-5 minutes with the start
#   2. run(command="GPU_CHECK_BUDGET=400 GPU_CHECK_CALL=2 bash scripts/gpu-check.sh run",
#          carry=["target/gpu-check"], timeout_s=450) at once after call 1: about 7
#          minutes; with less device time left, a budget of what `status` says is left
#          less 100 s, and timeout_s the budget plus 50 (the untimed work between steps,
#          nvidia-smi and the summary, takes up to about 30 s).
#   Then give_back. These two fill one session's 15 minutes; FULL=1, VALIDATE=1 and
#   SEARCHER=1 (below) each need a session of their own. `plan` with the same
#   settings prints a call's steps and caps here first.
#
# Library path: `run` logs LD_LIBRARY_PATH before and after, and gives the
# profiler only the entries that provide libcuda, never torch's folders (its
# lib/ or pip's nvidia/ wheels: docs/gpu-facts.md pitfall 1, pip's cuDNN on the path
# breaks the system one); with none left it is unset, which is how the
# profiler was shown to run there (libcuda from the loader's cache).
# python3 is the machine's torch venv. The SEARCHER=1 steps put torch's lib/
# in front of that path (extending it, not replacing it).
#
# FULL=1 also builds the full default table into $OUT/table.csv (a session
# of its own: FULL=1 GPU_CHECK_BUDGET=550 GPU_CHECK_ONLY="full-table
# full-check full-validate full-fit probe transfer", timeout_s 600); a build
# the budget cuts short comes back partial, and TABLE_FROM=that-file (copied
# into the repository, under a folder .git/info/exclude ignores, and carried)
# in the next call resumes it. Then a 15% probe of the H100 reference, timed here,
# transferred and scored against that table (issue 23's GPU pair). The
# summary then says whether issue 4's goal is met, what a fitted boundary
# (`fit --model boundary`) would change out of sample, and the pair's
# errors.
# MAIN_JOB=1 runs the main job's GPU branch, `bash scripts/run.sh` with the
# carried binaries (RUN_BIN) and the machine's libtorch for the searcher (a
# session of its own: MAIN_JOB=1 GPU_CHECK_BUDGET=550 GPU_CHECK_ONLY=main-job,
# timeout_s 600); its table and arch.json come back in logs.tgz.
# VALIDATE=1 also runs issue 4's whole-network checks (about 5 minutes more;
# give it a call of its own, e.g. VALIDATE=1 GPU_CHECK_ONLY="table-two-ops
# validate validate-resume validate-refuse fit"): the whole table of a
# two-op space at width step 64, 20 sampled networks validated against it,
# a resume, a refused other seed, and a fitted correction; before them
# (add "interp-early interp-late" to GPU_CHECK_ONLY), 40 consecutive widths
# of two curves, to measure the error of interpolating at width step 8.
# SEARCHER=1 also runs issue 5's GPU checks (a call of its own, about 6
# minutes: SEARCHER=1 GPU_CHECK_BUDGET=550 GPU_CHECK_ONLY="searcher-demo
# search-step search-step-torch c10d-nccl search-solo search-group-nccl
# search-group search-table measure-derived"): the main
# job's short search on cuda:0; one weight and one arch step at batch 32 of
# 224x224 against benches/pytorch_search_step.py; the c10d binding's NCCL
# tests and a short search alone, as a 1-rank NCCL group and as a 1-rank
# Gloo group (issue 25); and with TABLE=a complete
# GPU table, a search against it and the derived network measured end to
# end against SEARCH_TARGET_MS (default 4).
# GPU_CHECK_ONLY="step names" runs only those steps (a focused rerun; the
# environment step always runs).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# GPU_CHECK_BIN: where `build` puts the binaries and `run` finds them (tests
# point it at stubs).
bin=${GPU_CHECK_BIN:-target/gpu-check}

# executable WHAT KIND NAME CARGO-ARGS...: builds with `cargo CARGO-ARGS
# --no-run` and prints the path of the executable cargo made for target NAME
# of kind KIND (lib: its unit tests; test; bench), or fails naming WHAT.
executable() {
    local what=$1 kind=$2 name=$3 path
    shift 3
    path=$(cargo "$@" --no-run --message-format=json 2>/dev/null |
        KIND="$kind" NAME="$name" python3 -c 'import os, sys, json
for line in sys.stdin:
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and os.environ["KIND"] in m["target"]["kind"] and m["target"]["name"] == os.environ["NAME"]):
        print(m["executable"])')
    if [ -z "$path" ] || [ ! -x "$path" ]; then
        echo "build: could not find $what" >&2
        return 1
    fi
    echo "$path"
}

build() {
    set -e
    cargo build --release -p profiler-cli
    # The library's unit tests as one binary: the GPU tests in it (named
    # gpu_*) are #[ignore]d, so a plain `cargo test` without a GPU reports
    # them ignored rather than passed; `run` passes --ignored or
    # --include-ignored to run them there.
    local exe bench c10d
    exe=$(executable "the profiler's unit-test binary" lib profiler test --release -p profiler --lib)
    # The searcher (tch, libtorch from .venv: scripts/setup.sh) and its
    # step benchmark, for SEARCHER=1.
    cargo build --release -p searcher
    bench=$(executable "the search_step bench binary" bench search_step bench -p searcher --bench search_step)
    # The c10d binding's one-rank tests (NCCL on cuda:0, #[ignore]d here).
    c10d=$(executable "c10d-tch's one_rank test binary" test one_rank test --release -p c10d-tch --test one_rank)
    rm -rf "$bin"
    mkdir -p "$bin"
    # Debug info stripped: the carried folder must stay small (64 MiB at most).
    strip --strip-debug -o "$bin/profiler" target/release/profiler
    strip --strip-debug -o "$bin/profiler-unit-tests" "$exe"
    strip --strip-debug -o "$bin/searcher" target/release/searcher
    strip --strip-debug -o "$bin/search_step" "$bench"
    strip --strip-debug -o "$bin/c10d-unit-tests" "$c10d"
    {
        echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
        echo "git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
        echo "unit tests from $exe"
        sha256sum "$bin/profiler" "$bin/profiler-unit-tests" "$bin/searcher" "$bin/search_step" \
            "$bin/c10d-unit-tests"
    } >"$bin/BUILD_INFO"
    cat "$bin/BUILD_INFO"
    du -sh "$bin"
}

# Prints the PATH-like list $1 less every entry that does not provide
# libcuda and every folder of torch's (its lib/, libtorch, pip's nvidia/
# wheels with their cuDNN: gpu-facts pitfall 1), each kept entry once, in
# order, joined by ':' (empty when nothing is left).
profiler_libpath() {
    local IFS=: d
    local -a parts kept=()
    read -r -a parts <<<"${1:-}"
    for d in "${parts[@]}"; do
        [ -n "$d" ] || continue
        case "$d" in
        *torch* | */site-packages/nvidia | */site-packages/nvidia/*) continue ;;
        esac
        compgen -G "$d/libcuda.so*" >/dev/null || continue
        [[ ":${kept[*]}:" == *":$d:"* ]] && continue
        kept+=("$d")
    done
    echo "${kept[*]}"
}

# What is there: the GPU, the libraries, the binaries. Nothing here touches
# the GPU's state; `run` bounds it with the environment step's cap.
environment() {
    local p=$bin/profiler
    date -u
    uname -a
    cat "$bin/BUILD_INFO" 2>/dev/null || echo "no $bin/BUILD_INFO: run 'scripts/gpu-check.sh build' and carry $bin"
    ls -l "$bin" 2>&1
    timeout 10 nvidia-smi --query-gpu=name,uuid,driver_version,clocks.sm,clocks.max.sm,clocks.applications.graphics,temperature.gpu,power.draw,clocks_event_reasons.active,mig.mode.current --format=csv 2>&1 ||
        timeout 5 nvidia-smi 2>&1
    echo "--- LD_LIBRARY_PATH the profiler runs with: ${LD_LIBRARY_PATH:-(unset)}"
    echo "--- libraries the loader finds"
    { /sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null; } | grep -E "libcuda\.so|libcudnn\.so|libcudnn_cnn|libnvrtc\.so|libcublas|libnvidia-ml" | head -20
    echo "--- ldd profiler"
    ldd "$p" 2>&1 | head -20
    command -v python3 && timeout 8 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
    # What failed above is in the log; the step itself passes.
    true
}

# The steps of both calls, for `run` (mode=run) and `plan` (mode=plan:
# printed with their caps, nothing run).
checks() {
    local p=$bin/profiler
    local arch=tests/fixtures/tfnas_a.json
    local pyt=benches/pytorch_reference.py
    call=0
    step environment 25 bash scripts/gpu-check.sh environment
    if [ "$mode" = run ]; then
        cut -c1-300 "$WORK/environment.log"
        if [ ! -x "$p" ] || [ ! -x "$bin/profiler-unit-tests" ]; then
            echo "error: $bin/profiler or $bin/profiler-unit-tests missing: build and carry $bin" | tee -a "$steps_file"
            return 1
        fi
        # The size of the default table, for target 4's projection.
        FULL_ENTRIES=$("$p" plan --width-step 8 --align 8 2>&1 | sed -n 's/^table plan at width step 8: \([0-9]*\) entries.*/\1/p')
        export FULL_ENTRIES
    fi

    # Call 1: what the first run must show whatever else fails.
    call=1
    # 1. The engine opens, a capture that allocates fails cleanly (the
    #    capture mode), and one block (the stem) is prepared, captured and
    #    timed; the second test reopens the device and gets its one context.
    #    Matched by name, not path, and both must have run (--ignored: the
    #    GPU tests are ignored where there is no GPU).
    step open-one-block 30 "expect=0:test result: ok. 2 passed" "$bin/profiler-unit-tests" --ignored --test-threads=1 --nocapture \
        gpu_a_capture_that_allocates_fails_cleanly_and_the_engine_goes_on gpu_opening_again_gets_the_same_context
    # 2. TF-NAS-A end to end and per block (target 2), in graph mode, with
    #    every convolution choice and its candidates' times in the log.
    PROFILER_LOG_CHOICES=1 step measure-graph 75 "$p" measure --arch "$arch" --device 0 --per-block --cap-ms 1000
    # 3. PyTorch on the same blocks and network (target 1). Falls back to
    #    the blocks from `predict` when the measurement above failed, so the
    #    PyTorch numbers come whatever the engine did.
    [ "$mode" = run ] && "$p" predict --table tests/fixtures/tfnas_a_synthetic.csv --arch "$arch" --blocks >"$WORK/tfnas_a_blocks.txt" 2>&1
    step pytorch 85 python3 "$pyt" "$WORK/measure-graph.log" --keys "$WORK/tfnas_a_blocks.txt" --batch 32
    # 4. Every block kind against the CPU reference, graph mode.
    step verify 30 "$p" verify --device 0

    # Call 2: the long unit tests, then the targets' repeats and the rest.
    call=2
    # 5. The GPU unit tests call 1 did not run: every block kind against
    #    the CPU reference, graph and eager, every way of running a
    #    convolution preferred in turn, and the boundary. The CPU tests
    #    (`cargo test` here) are left out: they pass here, and two of them
    #    read files by this checkout's path.
    step unit-tests 90 "expect=0:test result: ok. 3 passed" "$bin/profiler-unit-tests" --ignored \
        --skip gpu_a_capture_that_allocates_fails_cleanly_and_the_engine_goes_on \
        --skip gpu_opening_again_gets_the_same_context --test-threads=1 --nocapture
    # Two networks in turns, run by run, each on an engine of its own (two
    # engines in one process: never run on a GPU before; the main job's
    # ratio on a GPU comes from this).
    step measure-versus 40 "$p" measure --arch "$arch" --device 0 --versus tests/fixtures/tfnas_a_up8.json \
        --passes 2 --cap-ms 500
    # 6. Repeatability (target 3): the same 20 entries twice.
    step repeat-a 45 "$p" --device 0 --width-step 64 --limit 20 --out "$WORK/repeat-a.csv"
    step repeat-b 45 "$p" --device 0 --width-step 64 --limit 20 --out "$WORK/repeat-b.csv"
    # How many of the 20 differ beyond their medians' 95% intervals (no GPU).
    step repeat-compare 15 "$p" compare "$WORK/repeat-a.csv" "$WORK/repeat-b.csv" --top 5
    # 7. A table subset cut by --limit and resumed, then checked; the
    #    speed of the build (target 4).
    step subset-1 45 "$p" --device 0 --width-step 64 --limit 30 --out "$WORK/subset.csv"
    step subset-2 45 "$p" --device 0 --width-step 64 --limit 30 --out "$WORK/subset.csv"
    step subset-check 15 "$p" check --table "$WORK/subset.csv"
    # 8. The cold L2 (read flush), TF-NAS-A at batch 1 against the CPU, the
    #    eager mode, and refusals.
    step measure-cold 50 "$p" measure --arch "$arch" --device 0 --l2 cold --cap-ms 500
    step verify-network 50 "$p" verify --device 0 --network
    step measure-eager 50 "$p" measure --arch "$arch" --device 0 --launch eager --cap-ms 500
    step verify-eager 45 "$p" verify --device 0 --launch eager
    step bad-device 15 "expect=2:no CUDA device 7" "$p" verify --device 7
    # Without the subset (a focused rerun), this would build a new table.
    if [ "$mode" = run ] && [ ! -f "$WORK/subset.csv" ]; then
        skip_step refuse-other-batch "no subset.csv to refuse appending to: subset-1 did not run"
    else
        step refuse-other-batch 25 "expect=2:refusing to append" "$p" --device 0 --width-step 64 --batch 16 --out "$WORK/subset.csv"
    fi
    # 9. Out of GPU memory: a space whose one searchable block needs over
    #    141 GB (tests/fixtures/space_oom.json). The build must keep the two
    #    finished rows, write none for that block, and exit 2 naming it.
    step oom 50 "expect=2:out of GPU memory while preparing mbconv_r112_i16_o16_s1_k3_m128000" \
        "$p" --device 0 --space tests/fixtures/space_oom.json --out "$WORK/oom.csv"
    step oom-rows 10 bash -c 'rows=$(grep -v "^#" "$1" | cut -d, -f1); echo "$rows";
        [ "$(echo "$rows" | tr "\n" " ")" = "key stem_r224_i3_o16_s2_k3_m0_se0_relu fixed_r112_i16_o16_s1_k3_m16_se0_relu " ]' \
        oom-rows "$WORK/oom.csv"

    # Each of these is a call of its own, run only when asked for.
    call=extra
    # The machine's libtorch, asked once for both modes that run the
    # searcher (their steps put it in front of its library path).
    local tlib=""
    if [ "${SEARCHER:-0}" = 1 ] || [ "${MAIN_JOB:-0}" = 1 ]; then
        tlib=$(torch_lib)
    fi
    if [ "${SEARCHER:-0}" = 1 ]; then
        # Issue 5's GPU checks. The tch binaries need the machine's libtorch
        # first on LD_LIBRARY_PATH (the profiler must not have it: pitfall
        # 1), before what the profiler kept.
        local tpath="$tlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        # The main job's short search, on the GPU; --restart because a
        # checkpoint left by an earlier check would otherwise be resumed.
        step searcher-demo 180 env LD_LIBRARY_PATH="$tpath" "$bin/searcher" --device cuda:0 \
            --epochs 11 --warmup-epochs 9 --embedded-images 1000 --resolution 48 --target-ms 5 \
            --out "$WORK/arch-demo.json" --checkpoint /tmp/gpu-check-demo.ckpt --restart
        # One weight and one arch step at the method's batch 32 of 224x224,
        # against PyTorch on the same GPU.
        step search-step 150 env LD_LIBRARY_PATH="$tpath" SEARCH_STEP_DEVICE=cuda:0 \
            SEARCH_STEP_BATCH=32 SEARCH_STEP_RESOLUTION=224 "$bin/search_step" --bench
        step search-step-torch 120 python3 benches/pytorch_search_step.py --device cuda \
            --batch 32 --resolution 224
        # The data-parallel layer on the GPU (docs/distributed.md): the
        # binding's NCCL tests on cuda:0 (every collective, CPU numbers
        # carried there and back, batch norm), then three short epochs
        # alone, as a 1-rank group on NCCL (the default on a GPU) and on
        # Gloo with CUDA tensors; the summary compares their epoch seconds.
        local loopback=(NCCL_SOCKET_IFNAME=lo GLOO_SOCKET_IFNAME=lo)
        step c10d-nccl 60 "expect=0:test result: ok. 1 passed" env LD_LIBRARY_PATH="$tpath" "${loopback[@]}" \
            "$bin/c10d-unit-tests" --ignored --test-threads=1 --nocapture
        local short=(--device cuda:0 --epochs 3 --warmup-epochs 1 --embedded-images 1000
            --resolution 48 --target-ms 5 --restart)
        local group=(WORLD_SIZE=1 RANK=0 MASTER_ADDR=127.0.0.1 "${loopback[@]}")
        step search-solo 90 env LD_LIBRARY_PATH="$tpath" "$bin/searcher" "${short[@]}" \
            --out "$WORK/arch-solo.json" --checkpoint /tmp/gpu-check-solo.ckpt
        step search-group-nccl 90 env LD_LIBRARY_PATH="$tpath" "${group[@]}" MASTER_PORT=29532 \
            "$bin/searcher" "${short[@]}" --out "$WORK/arch-group-nccl.json" \
            --checkpoint /tmp/gpu-check-group-nccl.ckpt
        step search-group 90 env LD_LIBRARY_PATH="$tpath" "${group[@]}" MASTER_PORT=29531 \
            "$bin/searcher" "${short[@]}" --dist-backend gloo --out "$WORK/arch-group.json" \
            --checkpoint /tmp/gpu-check-group.ckpt
        # With a complete GPU table (TABLE=path): search against it, then
        # measure the derived network end to end (the goal: within 2% of
        # the target, SEARCH_TARGET_MS, 4 ms by default).
        if [ -n "${TABLE:-}" ] && [ -f "$TABLE" ]; then
            step search-table 200 env LD_LIBRARY_PATH="$tpath" "$bin/searcher" --device cuda:0 \
                --table "$TABLE" --target-ms "${SEARCH_TARGET_MS:-4}" --epochs 11 --warmup-epochs 9 \
                --embedded-images 1000 --resolution 48 --out "$WORK/arch-table.json" \
                --checkpoint /tmp/gpu-check-table.ckpt --restart
            step measure-derived 60 "$p" measure --arch "$WORK/arch-table.json" --device 0
        elif [ -n "${TABLE:-}" ]; then
            skip_step search-table "TABLE=$TABLE not found (carry it inside the repository)"
            skip_step measure-derived "no table to search against"
        fi
    fi
    if [ "${MAIN_JOB:-0}" = 1 ]; then
        # The main job's GPU branch (scripts/run.sh with the carried
        # binaries and the machine's libtorch for the searcher): a table at
        # width step 32, its level, the search, and the verdict on the
        # searched network measured on the GPU. Its table and network come
        # back in logs.tgz.
        step main-job 500 env RUN_BIN="$bin" RUN_SEARCHER_LIBS="$tlib" bash scripts/run.sh
        [ "$mode" = run ] && cp tables/local/gpu0-w32*.csv arch.json "$WORK/" 2>/dev/null
    fi
    if [ "${VALIDATE:-0}" = 1 ]; then
        # 380 s more for these steps, never past 540 s in all (a device
        # call stops at 600 s); an explicit GPU_CHECK_BUDGET rules.
        local used
        used=$(elapsed)
        budget=${GPU_CHECK_BUDGET:-$(((used + 380) < 540 ? used + 380 : 540))}
        local two=tests/fixtures/space_two_ops.json
        # How far linear interpolation between widths 8 apart is from
        # widths measured one by one (alignment can make latency a sawtooth
        # in the width): 40 consecutive widths of the space's first curve
        # (112x112) and of a stage-5-like layer at 14x14 -> 7x7.
        step interp-early 45 "$p" --device 0 --width-step 1 --limit 42 --out "$WORK/interp-early.csv"
        step interp-late 45 "$p" --device 0 --space tests/fixtures/space_late_stage.json --width-step 1 --limit 42 --out "$WORK/interp-late.csv"
        step table-two-ops 90 "$p" --device 0 --space "$two" --width-step 64 --out "$WORK/two-ops.csv"
        step validate 150 "$p" validate --table "$WORK/two-ops.csv" --space "$two" --device 0 --samples 20 --seed 1 --out "$WORK/validate.csv" --plot "$WORK/validate.svg"
        step validate-resume 40 "$p" validate --table "$WORK/two-ops.csv" --space "$two" --device 0 --samples 22 --seed 1 --out "$WORK/validate.csv"
        step validate-refuse 30 "expect=2:seed: file has '1', this run '2'" "$p" validate --table "$WORK/two-ops.csv" --space "$two" --device 0 --samples 20 --seed 2 --out "$WORK/validate.csv"
        step fit 20 "$p" fit --validation "$WORK/validate.csv" --table "$WORK/two-ops.csv" --out "$WORK/two-ops-corrected.csv"
    fi
    if [ "${FULL:-0}" = 1 ]; then
        # Within the budget (no extension: a device call stops at 600 s, and
        # the summary must be written before that). The table is written
        # under $OUT as it grows, so a cut build still comes back; carry it
        # into the next call as TABLE_FROM=path and the build resumes it.
        if [ "$mode" = run ] && [ -n "${TABLE_FROM:-}" ] && [ -f "$TABLE_FROM" ] && [ ! -f "$OUT/table.csv" ]; then
            cp "$TABLE_FROM" "$OUT/table.csv"
            echo "== full-table resumes $TABLE_FROM ($(grep -vc '^#' "$OUT/table.csv") lines)"
        fi
        step full-table 900 "$p" --device 0 --out "$OUT/table.csv"
        step full-check 30 "$p" check --table "$OUT/table.csv"
        step full-validate 150 "$p" validate --table "$OUT/table.csv" --device 0 --samples 20 --seed 1 --out "$WORK/validate-full.csv" --plot "$WORK/validate-full.svg"
        # What a fitted boundary would change, out of sample (no GPU).
        step full-fit 20 "$p" fit --validation "$WORK/validate-full.csv" --table "$OUT/table.csv" --model boundary
        # Issue 23's GPU pair: a 15% probe of the H100 reference timed on
        # this GPU minutes after its full table, and the table transferred
        # from it scored against that full table (entries, networks,
        # TF-NAS-A, and the model alone: the probe's keys at the full
        # table's prices). No GPU in the second step.
        local reference=tables/reference/h100-pytorch-2.11-graph.csv
        step probe 120 "$p" probe --device 0 --reference "$reference" --fraction 0.15 --out "$WORK/probe.csv"
        step transfer 30 "$p" transfer --reference "$reference" --probe "$WORK/probe.csv" --evaluate "$OUT/table.csv" --out "$WORK/transferred.csv"
    fi
    return 0
}

# The machine's libtorch folder for the searcher (its python3's torch, asked
# within 30 s, else where the image keeps it: docs/gpu-facts.md), logged;
# a placeholder in a plan.
torch_lib() {
    if [ "$mode" != run ]; then
        echo /torch/lib/of/the/machine
        return
    fi
    local tlib
    tlib=$(timeout 30 python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>>"$WORK/library-path.log")
    [ -n "$tlib" ] && [ -d "$tlib" ] || tlib=/opt/torch/.venv/lib/python3.12/site-packages/torch/lib
    echo "libtorch for the searcher: $tlib$([ -e "$tlib/libtorch_cuda.so" ] || echo ' (no libtorch_cuda.so there: the searcher steps will fail)')" >>"$WORK/library-path.log"
    echo "$tlib"
}

# Seconds since the run (or plan) began: in a plan, the caps of the steps so
# far, as if each took all of its cap (the worst case).
elapsed() {
    if [ "$mode" = plan ]; then
        echo "$planned"
    else
        echo $((SECONDS - t_start))
    fi
}

# not_selected NAME: why step NAME is not to run (another call than
# GPU_CHECK_CALL, or not in GPU_CHECK_ONLY; call 0, the environment, always
# runs), or nothing.
not_selected() {
    [ "$call" = 0 ] && return 0
    if [ -n "${GPU_CHECK_CALL:-}" ] && [ "$call" != extra ] && [ "$call" != "$GPU_CHECK_CALL" ]; then
        echo "not in call $GPU_CHECK_CALL"
    elif [ -n "${GPU_CHECK_ONLY:-}" ] && [[ " $GPU_CHECK_ONLY " != *" $1 "* ]]; then
        echo "not in GPU_CHECK_ONLY"
    fi
}

# skip_step NAME WHY: a selected step that cannot run here, noted as SKIP
# with the reason (in a plan, a line of its own).
skip_step() {
    [ -n "$(not_selected "$1")" ] && return 0
    if [ "$mode" = plan ]; then
        printf 'skip %-6s %-22s %s\n' "$call" "$1" "$2"
        return 0
    fi
    echo "== $1: SKIP ($2)"
    printf '%-22s SKIP     (%s)\n' "$1" "$2" >>"$steps_file"
}

# step NAME SECONDS [expect=RC[:TEXT]] CMD...: runs CMD with its output in
# $WORK/NAME.log (the last lines also on stdout), within SECONDS and the
# budget left; notes PASS/FAIL/TIMEOUT/SKIP in steps.txt, then saves the
# summary and the logs into $OUT. A step expected to fail passes on exit
# status RC with TEXT in its log (so that failing for another reason is a
# FAIL). Steps not selected (not_selected) are skipped. In a plan, prints
# the step's call, cap and the worst-case time it ends at.
step() {
    local name=$1 secs=$2 cap=$2 want=0 text=""
    shift 2
    case "${1:-}" in expect=*)
        want=${1#expect=}
        shift
        case "$want" in *:*)
            text=${want#*:}
            want=${want%%:*}
            ;;
        esac
        ;;
    esac
    local skip
    skip=$(not_selected "$name")
    if [ -n "$skip" ]; then
        [ "$mode" = run ] && printf '%-22s SKIP     (%s)\n' "$name" "$skip" >>"$steps_file"
        return 0
    fi
    local left=$((budget - $(elapsed)))
    if [ "$mode" = plan ]; then
        local verdict=fits
        if [ "$left" -lt 15 ]; then
            verdict="skipped unless earlier steps end early"
            secs=0
        elif [ "$secs" -gt "$left" ]; then
            verdict="cut to ${left} s unless earlier steps end early"
            secs=$left
        fi
        planned=$((planned + secs))
        printf 'step %-6s %-22s cap %4s s  ends by %4s s  %s\n' "$call" "$name" "$cap" "$planned" "$verdict"
        return 0
    fi
    if [ "$left" -lt 15 ]; then
        echo "== $name: SKIP (budget spent)"
        printf '%-22s SKIP     (the %s s budget was spent)\n' "$name" "$budget" >>"$steps_file"
        return 0
    fi
    [ "$secs" -gt "$left" ] && secs=$left
    echo "== $name (timeout ${secs}s): $*"
    local t0=$SECONDS
    timeout -k 5 "$secs" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    local took=$((SECONDS - t0)) verdict
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        verdict=TIMEOUT
    elif [ "$rc" -eq "$want" ] && { [ -z "$text" ] || grep -q -- "$text" "$WORK/$name.log"; }; then
        verdict=PASS
    else
        verdict=FAIL
    fi
    tail -n 12 "$WORK/$name.log" | cut -c1-300
    echo "   $name: $verdict (exit $rc, want $want) after ${took}s"
    # The first error line, where there is one, for the summary.
    local why=""
    if [ "$verdict" != PASS ]; then
        why=$(grep -m1 -E "^error|panicked|FAIL|Error|error:" "$WORK/$name.log" | cut -c1-160)
        [ -n "$text" ] && why="want exit $want and '$text'; $why"
    fi
    printf '%-22s %-8s exit %-3s %4ss  %s\n' "$name" "$verdict" "$rc" "$took" "$why" >>"$steps_file"
    save
}

# The steps `run` would take with these settings and their caps, nothing
# run: each step's call, its cap, and when it ends if every step before it
# takes all of its cap (a step that would start with under 15 s left is
# skipped, one with less than its cap left is cut).
plan() {
    mode=plan
    OUT=${OUT:-$PWD/gpu-check-out}
    WORK=${GPU_CHECK_WORK:-(a new folder under ${TMPDIR:-/tmp})}
    budget=${GPU_CHECK_BUDGET:-330}
    planned=0
    echo "plan: budget ${budget} s, call ${GPU_CHECK_CALL:-1 and 2}${GPU_CHECK_ONLY:+, only $GPU_CHECK_ONLY}"
    if [ "${VALIDATE:-0}" = 1 ] && [ -z "${GPU_CHECK_BUDGET:-}" ]; then
        echo "plan: VALIDATE=1 without GPU_CHECK_BUDGET raises the budget when its steps begin (380 s more, 540 s at most): give the call timeout_s 600, or set the budget"
    fi
    checks
    echo "total: ${planned} s of ${budget} s if every step takes all of its cap"
}

run() {
    mode=run
    OUT=${OUT:-$PWD/gpu-check-out}
    mkdir -p "$OUT"
    # The device machine hands back at most 8 files from $OUT: every log
    # and file of the steps goes to a folder outside it, packed into
    # $OUT/logs.tgz after each step beside $OUT/summary.txt; the full table
    # (FULL=1) alone is written into $OUT, so that a cut build comes back.
    WORK=${GPU_CHECK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}
    mkdir -p "$WORK"
    # A step cut at its cap must not lose what Python had printed.
    export PYTHONUNBUFFERED=1
    budget=${GPU_CHECK_BUDGET:-330}
    t_start=$SECONDS
    summary=$OUT/summary.txt
    steps_file=$WORK/steps.txt
    : >"$steps_file"
    # Only the entries that provide libcuda, never torch's folders; both
    # logged, and in the environment.
    local before=${LD_LIBRARY_PATH-}
    local kept
    kept=$(profiler_libpath "$before")
    if [ -n "$kept" ]; then
        export LD_LIBRARY_PATH=$kept
    else
        unset LD_LIBRARY_PATH
    fi
    {
        echo "LD_LIBRARY_PATH before: ${before:-(unset or empty)}"
        echo "LD_LIBRARY_PATH for the profiler (entries providing libcuda, torch's folders dropped): ${LD_LIBRARY_PATH:-(unset)}"
    } | tee "$WORK/library-path.log"

    local rc=0
    checks || rc=1
    timeout 20 nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw,clocks_event_reasons.active --format=csv >"$WORK/nvidia-smi-after.csv" 2>&1
    save
    echo
    echo "================ SUMMARY ================"
    cat "$summary"
    return $rc
}

# The summary so far into $OUT/summary.txt and every log packed into
# $OUT/logs.tgz, each through a temporary file and a rename, so that a
# call cut short still brings back the last complete ones.
save() {
    summarize >"$summary.tmp" 2>&1 && mv -f "$summary.tmp" "$summary"
    tar -czf "$OUT/logs.tgz.tmp" -C "$WORK" . 2>/dev/null && mv -f "$OUT/logs.tgz.tmp" "$OUT/logs.tgz"
}

# The summary: every step so far, then the targets.
summarize() {
    echo "GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - t_start)) s of a $budget s budget (call ${GPU_CHECK_CALL:-1 and 2}); every log in $OUT/logs.tgz (tar xzf it into DIR, then scripts/gpu-check.sh targets DIR)"
    grep -m1 -A1 "^name, uuid" "$WORK/environment.log" 2>/dev/null | tail -n 1
    cat "$WORK/library-path.log"
    echo "--- steps"
    cat "$steps_file"
    echo "--- targets"
    targets "$WORK"
}

# Prints the four target lines from the logs in $1; never fails.
targets() {
    local out=$1
    # Issue 4's goal, where VALIDATE=1 or FULL=1 ran (median |error| <= 1%,
    # >= 95% within +-3%).
    local f
    for f in validate validate-full; do
        [ -f "$out/$f.log" ] && grep -h -A2 "^validated " "$out/$f.log" | sed "s/^/$f: /"
        [ -f "$out/$f.log" ] && grep -h "^as plain sums\|^with the table's correction" "$out/$f.log" | sed "s/^/$f: /"
    done
    [ -f "$out/full-fit.log" ] && grep -h -A2 "^boundary: " "$out/full-fit.log" | sed "s/^/full-fit: /"
    # Issue 23's GPU pair (goal at 15%: median <= 0.5%, p90 <= 2% per entry;
    # TF-NAS-A and the sampled networks' median within 0.5%).
    [ -f "$out/transfer.log" ] && grep -h -E "^  (entries|networks|TF-NAS-A|the model alone)" "$out/transfer.log" | sed "s/^ */transfer: /"
    if [ -f "$out/validate-full.log" ]; then
        python3 - "$out/validate-full.log" <<'EOF' 2>&1 || echo "issue 4 goal: python3 failed"
import re, sys
text = open(sys.argv[1]).read()
med = re.search(r"^MAPE [0-9.]+%, median \|error\| ([0-9.]+)%( \(95% CI [0-9.]+\.\.[0-9.]+%\))?", text, re.M)
w3 = re.search(r"^within .*?±3%: ([0-9.]+)%( \([0-9.]+\.\.[0-9.]+%\))?", text, re.M)
if med and w3:
    ok = float(med.group(1)) <= 1.0 and float(w3.group(1)) >= 95.0
    print(f"issue 4 goal (full table): median |error| {med.group(1)}%{med.group(2) or ''} (want <= 1%), "
          f"within ±3% {w3.group(1)}%{w3.group(2) or ''} (want >= 95%): {'MET' if ok else 'NOT MET'} on this sample")
else:
    print("issue 4 goal: no result (see validate-full.log)")
EOF
    fi
    # Interpolation at width step 8 against widths measured one by one,
    # where VALIDATE=1 ran.
    python3 - "$out" <<'EOF' 2>&1 || echo "interpolation: python3 failed"
import csv, os, re, statistics, sys
out = sys.argv[1]
for name in ("interp-early", "interp-late"):
    path = os.path.join(out, name + ".csv")
    if not os.path.exists(path):
        continue
    curves = {}
    with open(path) as f:
        for r in csv.DictReader(l for l in f if not l.startswith("#")):
            m = re.search(r"_m([0-9]+)_", r["key"])
            curves.setdefault(re.sub(r"_m[0-9]+_", "_m*_", r["key"]), {})[int(m.group(1))] = float(r["median_ms"])
    for curve, points in curves.items():
        anchors = sorted(w for w in points if w % 8 == 0)
        errs = []
        for w, ms in sorted(points.items()):
            lo = [a for a in anchors if a < w]
            hi = [a for a in anchors if a > w]
            if w % 8 == 0 or not lo or not hi:
                continue
            a0, a1 = lo[-1], hi[0]
            guess = points[a0] + (w - a0) / (a1 - a0) * (points[a1] - points[a0])
            errs.append((w, 100 * (guess / ms - 1)))
        if len(errs) < 5:
            continue
        worst = max(errs, key=lambda e: abs(e[1]))
        by4 = [abs(e) for w, e in errs if w % 4 == 0]
        rest = [abs(e) for w, e in errs if w % 4 != 0]
        med = lambda xs: statistics.median(xs) if xs else float("nan")
        print(f"{name}: {curve} widths {min(points)}..{max(points)}: step-8 interpolation against each width measured: "
              f"median |err| {med([abs(e) for _, e in errs]):.2f}%, worst {worst[1]:+.2f}% at m{worst[0]}; "
              f"at widths 4 mod 8 {med(by4):.2f}%, not a multiple of 4 {med(rest):.2f}%")
EOF
    # Issue 5, where SEARCHER=1 ran.
    if [ -f "$out/search-step.log" ] || [ -f "$out/measure-derived.log" ] || [ -f "$out/search-solo.log" ]; then
        SEARCH_TARGET_MS=${SEARCH_TARGET_MS:-4} python3 - "$out" <<'EOF' 2>&1
import os, re, sys
out = sys.argv[1]
def read(name):
    try:
        return open(os.path.join(out, name)).read()
    except OSError:
        return ""
def criterion_ms(text, what):
    # The middle of criterion's "time: [low estimate high]".
    m = re.search(re.escape(what) + r".*?\n\s*time:\s*\[\S+ \S+ (\S+) (\w+)", text, re.S)
    if not m:
        return None
    scale = {"s": 1000.0, "ms": 1.0, "µs": 1e-3, "us": 1e-3, "ns": 1e-6}
    return float(m.group(1)) * scale.get(m.group(2), float("nan"))
rust, torch = read("search-step.log"), read("search-step-torch.log")
tw = re.search(r"weight step ([0-9.]+) ms, arch step ([0-9.]+) ms", torch)
if rust or torch:
    for name, i in (("weight step", 1), ("arch step", 2)):
        r = criterion_ms(rust, name)
        t = float(tw.group(i)) if tw else None
        if r is None or t is None:
            print(f"searcher {name}: no result (tch {r}, PyTorch {t}; see search-step*.log)")
        else:
            print(f"searcher {name} at batch 32 of 224x224: tch {r:.1f} ms, PyTorch {t:.1f} ms, ratio {r / t:.2f} (want <= 1)")
# Issue 25: the same short search alone and as 1-rank groups.
def epoch_seconds(text):
    return [float(x) for x in re.findall(r"^epoch \d+/\d+: .*, ([0-9.]+)s$", text, re.M)]
solo = epoch_seconds(read("search-solo.log"))
for log, what in (("search-group-nccl.log", "NCCL"), ("search-group.log", "Gloo")):
    group = epoch_seconds(read(log))
    if solo and group:
        # The first epoch holds the start-up (cuDNN's choices, NCCL's
        # communicator); the last two are the steady state.
        s, g = sum(solo[1:]) or solo[0], sum(group[1:]) or group[0]
        print(f"search as a 1-rank {what} group: {g:.1f} s for epochs 2-3 against {s:.1f} s alone, ratio {g / s:.2f}")
    elif read(log):
        print(f"search as a 1-rank {what} group: no epoch lines (see {log} and search-solo.log)")
derived = read("measure-derived.log")
m = re.search(r": median ([0-9.]+) ms", derived)
target = float(os.environ["SEARCH_TARGET_MS"])
if m:
    ms = float(m.group(1))
    print(f"derived network: measured {ms:.4f} ms against the {target} ms target, {100 * (ms / target - 1):+.2f}% (want within +-2%)")
elif derived or read("search-table.log"):
    print("derived network: no result (see search-table.log and measure-derived.log)")
EOF
    fi
    # 1. engine / PyTorch graph, end to end.
    grep -h "^target 1" "$out/pytorch.log" 2>/dev/null || echo "target 1: no result (see pytorch.log and measure-graph.log)"
    # 2. The table's prediction (per-block medians less the measured
    #    boundary, see profiler/src/measure/boundary.rs) against the end to end; the
    #    plain sum of medians beside it.
    local predicted_line sum_line
    predicted_line=$(grep -h "^table prediction" "$out/measure-graph.log" 2>/dev/null)
    sum_line=$(grep -h "^sum of per-block medians" "$out/measure-graph.log" 2>/dev/null)
    if [ -n "$predicted_line" ]; then
        echo "target 2: $predicted_line (want within +-2%)"
    else
        echo "target 2: no result (see measure-graph.log)"
    fi
    if [ -n "$sum_line" ]; then
        echo "          without the boundary: $sum_line"
    fi
    grep -h "^torch .*: sum of blocks" "$out/pytorch.log" 2>/dev/null | sed 's/^/          reference: /'
    # 3 and 4 need a little arithmetic.
    python3 - "$out" <<'EOF' 2>&1 || echo "targets 3 and 4: python3 failed"
import csv, os, re, statistics, sys

out = sys.argv[1]

def rows(p):
    with open(p) as f:
        return {r["key"]: float(r["median_ms"]) for r in csv.DictReader(l for l in f if not l.startswith("#"))}

try:
    a, b = rows(os.path.join(out, "repeat-a.csv")), rows(os.path.join(out, "repeat-b.csv"))
    d = [abs(a[k] / b[k] - 1) for k in a if k in b and b[k] > 0]
    if d:
        print(f"target 3: {len(d)} entries measured twice, median |a/b-1| = {100 * statistics.median(d):.3f}% "
              f"(want <= 0.5%), max {100 * max(d):.3f}%")
        try:
            with open(os.path.join(out, "repeat-compare.log")) as f:
                m = re.search(r"^Beyond measurement noise .*?: (\d+ of \d+) common entries", f.read(), re.M)
            if m:
                print(f"          {m.group(1)} differ beyond their medians' 95% intervals")
        except OSError:
            pass
    else:
        print("target 3: no entry measured in both repeat-a.csv and repeat-b.csv")
except Exception as e:  # a missing or broken table: say which
    print(f"target 3: no result ({type(e).__name__}: {e})")

rates = []
for name in ("subset-1", "subset-2", "repeat-a", "repeat-b", "full-table"):
    try:
        with open(os.path.join(out, name + ".log")) as f:
            for line in f:
                m = re.search(r"measured (\d+) entries .* in ([0-9.]+) s, ([0-9.]+) entries/s", line)
                if m and int(m.group(1)) > 0:
                    rates.append(float(m.group(3)))
    except OSError:
        pass
full = int(os.environ.get("FULL_ENTRIES") or 2981)  # `profiler plan --width-step 8 --align 8`: the grid and the GPU engine's unaligned probes
if rates:
    r = statistics.median(rates)
    print(f"target 4: {r:.2f} entries/s (median of {len(rates)} runs) -> the full default table "
          f"({full} entries) in about {full / r / 60:.1f} min (want < 10 min)")
else:
    print("target 4: no entries/s reported (see subset-*.log)")
EOF
}

case "${1:-}" in
build) build ;;
run) run ;;
plan) plan ;;
targets)
    [ -n "${2:-}" ] || {
        echo "error: targets needs DIR, a folder of the logs (tar xzf OUT/logs.tgz -C DIR), e.g. $0 targets DIR" >&2
        exit 2
    }
    targets "$2"
    ;;
libpath)
    echo "LD_LIBRARY_PATH before: ${LD_LIBRARY_PATH:-(unset or empty)}" >&2
    profiler_libpath "${LD_LIBRARY_PATH-}"
    ;;
environment) environment ;;
*)
    echo "usage: $0 build|run|plan|targets DIR|libpath|environment" >&2
    exit 2
    ;;
esac
