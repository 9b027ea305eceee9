#!/usr/bin/env python3
"""Times the blocks and the network the profiler timed, in PyTorch, on the
same GPU, and prints the ratios the issue's targets are stated in.

Input: the stdout of `profiler measure --arch A.json --per-block` (its
`block KEY MS ms` lines give the network's blocks in order and the
profiler's per-block medians; its first line the end-to-end median).

PyTorch runs each block and the whole network in eval mode, fp32, NCHW,
cudnn.benchmark=True (TF32 convolutions allowed, PyTorch's default), eager
and replaying a CUDA graph, median of CUDA-event-timed runs.

Usage: python3 benches/pytorch_reference.py PROFILER_LOG [--keys FILE] [--batch 32] [--runs 200]
       python3 benches/pytorch_reference.py PROFILER_LOG --keys FILE --dry-run   # CPU: checks the blocks chain

CPU mode (`--device cpu`): PyTorch eager on the CPU (eval, no_grad, fp32,
NCHW, BN not folded: what a user's model runs), under the engine's glibc
malloc tunables (the script re-executes itself with them), timed by the
engine's clock (thread_time with one thread, else perf_counter), at
batch 1 and `--threads 1` unless told. With `--profiler BIN --arch A.json`
it first runs `BIN measure --device cpu --arch A.json --per-block` itself
into PROFILER_LOG, so both are timed in the same run, on the same CPUs
(pin the whole script with `taskset -c N`):

       taskset -c 1 .venv/bin/python benches/pytorch_reference.py /tmp/cpu.log --device cpu \
           --profiler target/release/profiler --arch tests/fixtures/tfnas_a.json
"""

import argparse
import re
import statistics
import sys

import torch
from torch import nn

KEY = re.compile(
    r"^(stem|fixed|mbconv|head)_r(\d+)_i(\d+)_o(\d+)_s(\d+)_k(\d+)_m(\d+)_se(\d+)_(relu|swish|hswish)$"
)


def act(name):
    return {"relu": nn.ReLU(inplace=True), "swish": nn.SiLU(inplace=True), "hswish": nn.Hardswish(inplace=True)}[name]


def conv_bn(cin, cout, k, s, groups=1):
    return [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class SE(nn.Module):
    def __init__(self, c, se, a):
        super().__init__()
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, se, 1), act(a), nn.Conv2d(se, c, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x)


class MBConv(nn.Module):
    def __init__(self, r, i, o, s, k, m, se, a):
        super().__init__()
        layers = []
        mid = i
        if m > i:
            layers += conv_bn(i, m, 1, 1) + [act(a)]
            mid = m
        layers += conv_bn(mid, mid, k, s, groups=mid) + [act(a)]
        if se > 0:
            layers.append(SE(mid, se, a))
        layers += conv_bn(mid, o, 1, 1)
        self.body = nn.Sequential(*layers)
        self.residual = s == 1 and i == o

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def block(key):
    m = KEY.match(key)
    if not m:
        raise SystemExit(f"not a block key: {key}")
    kind, a = m.group(1), m.group(9)
    r, i, o, s, k, mid, se = map(int, m.groups()[1:8])
    if kind == "stem":
        mod = nn.Sequential(*conv_bn(i, o, k, s), act(a))
    elif kind == "head":
        mod = nn.Sequential(*conv_bn(i, mid, 1, 1), act(a), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(mid, o))
    else:
        mod = MBConv(r, i, o, s, k, mid, se, a)
    return mod, (i, r)


def time_module(mod, x, runs, graph):
    """Median ms of `runs` CUDA-event-timed runs, eager or graph replay."""
    with torch.no_grad():
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(20):
                mod(x)
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        run = lambda: mod(x)
        if graph:
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                mod(x)
            run = g.replay
            for _ in range(10):
                run()
        times = []
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(runs):
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)


def time_cpu(mod, x, runs, clock):
    """Median ms of `runs` timed runs on the CPU, after a warm-up; `clock` is
    time.thread_time (the engine's default `--timer thread` with one thread:
    the thread's CPU time, blind to other processes on a shared core) or
    time.perf_counter (`--timer wall`)."""
    with torch.no_grad():
        for _ in range(5):
            mod(x)
        times = []
        for _ in range(runs):
            t = clock()
            mod(x)
            times.append((clock() - t) * 1e3)
        return statistics.median(times)


def cpu_main(args, keys, engine_block, engine_e2e):
    """PyTorch eager on the CPU against the CPU engine's numbers."""
    import time
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    print(f"torch {torch.__version__} CPU eager, {args.threads} thread(s), batch {args.batch}, fp32, "
          f"capability {torch.backends.cpu.get_cpu_capability()}, clock {clock.__name__}")
    mods, done, total = [], {}, 0.0
    for key in keys:
        mod, (c, r) = block(key)
        mod = mod.eval()
        mods.append(mod)
        if key not in done:
            done[key] = time_cpu(mod, torch.randn(args.batch, c, r, r), args.runs, clock)
        total += done[key]
        mine = engine_block.get(key)
        vs = f"engine {mine:.4f} ms (engine/torch {mine / done[key]:.3f})" if mine else "engine n/a"
        print(f"block {key}: torch eager {done[key]:.4f} ms, {vs}")
    net = nn.Sequential(*mods).eval()
    c, r = block(keys[0])[1]
    e2e = time_cpu(net, torch.randn(args.batch, c, r, r), args.runs, clock)
    print(f"network: torch eager {e2e:.4f} ms, engine {engine_e2e if engine_e2e else 'n/a'} ms")
    if engine_e2e:
        print(f"ratio: engine / torch eager end to end = {engine_e2e / e2e:.3f} "
              f"({engine_e2e:.4f} / {e2e:.4f} ms; want <= 1)")
    if all(k in engine_block for k in keys):
        esum = sum(engine_block[k] for k in keys)
        print(f"ratio: engine / torch eager, sum of blocks = {esum / total:.3f} ({esum:.4f} / {total:.4f} ms)")
    print(f"torch eager: sum of blocks / end to end = {total / e2e:.4f}")
    return 0


def keys_from(path, pattern):
    """Block keys in `path`, in order: group 1 of each line that `pattern` matches."""
    keys = []
    try:
        with open(path) as f:
            for line in f:
                m = pattern.match(line)
                if m:
                    keys.append(m.group(1))
    except OSError as e:
        print(f"note: cannot read {path}: {e}", file=sys.stderr)
    return keys


def engine_numbers(path):
    """The engine's per-block medians and end-to-end median from `profiler measure --per-block`."""
    blocks, e2e = {}, None
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r"^block (\S+) ([0-9.]+) ms", line)
                if m:
                    blocks[m.group(1)] = float(m.group(2))
                m = re.match(r"^network .*: median ([0-9.]+) ms", line)
                if m and e2e is None:
                    e2e = float(m.group(1))
    except OSError as e:
        print(f"note: cannot read {path}: {e}", file=sys.stderr)
    return blocks, e2e


# The engine's glibc malloc tunables (profiler-cpu/src/memory.rs): PyTorch
# eager gets the same allocator, so the ratio compares kernels, not page
# faults. glibc reads them at start-up: re-execute once with them set.
TUNABLES = ("glibc.malloc.hugetlb=1", "glibc.malloc.mmap_threshold=33554432",
            "glibc.malloc.trim_threshold=4294967296")


def same_memory_as_the_engine():
    import os
    have = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t]
    missing = [t for t in TUNABLES if t.split("=")[0] not in {h.split("=")[0] for h in have}]
    if missing and "PYTORCH_REFERENCE_TUNED" not in os.environ:
        env = dict(os.environ, GLIBC_TUNABLES=":".join(have + missing), PYTORCH_REFERENCE_TUNED="1")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("profiler_log", help="stdout of `profiler measure --arch A.json --per-block`")
    ap.add_argument("--keys", help="the network's block keys in order, as `profiler predict --blocks` prints them; "
                    "with it PyTorch is timed whatever the engine did")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU: build every block and the network and run them once on the CPU at batch 1")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, default=1, help="CPU mode: torch's threads (the engine's --threads)")
    ap.add_argument("--profiler", help="CPU mode: run `PROFILER measure --device cpu --arch ARCH --per-block` first")
    ap.add_argument("--arch", help="CPU mode: the architecture JSON for --profiler")
    args = ap.parse_args()
    if args.device == "cpu":
        same_memory_as_the_engine()
    if args.device == "cpu" and args.batch == 32 and "--batch" not in sys.argv:
        args.batch = 1
    if args.profiler:
        import subprocess
        cmd = [args.profiler, "measure", "--device", "cpu", "--arch", args.arch, "--per-block",
               "--batch", str(args.batch), "--threads", str(args.threads)]
        with open(args.profiler_log, "w") as log:
            subprocess.run(cmd, stdout=log, check=True)

    # The network's blocks: from --keys when given (complete even when the
    # profiler's run stopped half-way), else from the profiler's log.
    keys = keys_from(args.keys, re.compile(r"^\s*[0-9.]+ ms\s+(\S+)\s")) if args.keys else []
    logged = keys_from(args.profiler_log, re.compile(r"^block (\S+) [0-9.]+ ms"))
    engine_block, engine_e2e = engine_numbers(args.profiler_log)
    if not keys:
        keys = logged
    elif logged and logged != keys:
        print(f"note: {args.profiler_log} has {len(logged)} block lines, {args.keys} {len(keys)} blocks; "
              f"using {args.keys}")
    if not keys:
        raise SystemExit(f"{args.profiler_log}: no 'block KEY MS ms' lines (run profiler measure --per-block), "
                         "and no usable --keys file")

    if args.dry_run:
        mods = []
        x = None
        with torch.no_grad():
            for key in keys:
                mod, (c, r) = block(key)
                mod = mod.eval()
                if x is None:
                    x = torch.randn(1, c, r, r)
                if x.shape[1:] != (c, r, r):
                    raise SystemExit(f"{key}: input {tuple(x.shape)} does not fit ({c}, {r}, {r})")
                x = mod(x)
                mods.append(mod)
            print(f"dry run: {len(keys)} blocks chain to output {tuple(x.shape)}; engine e2e {engine_e2e}, "
                  f"{len(engine_block)} engine block medians")
        return 0

    if args.device == "cpu":
        return cpu_main(args, keys, engine_block, engine_e2e)
    if not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device (use --dry-run to check the script on a CPU)")
    torch.backends.cudnn.benchmark = True
    # PyTorch's defaults, stated: TF32 in cuDNN convolutions (the engine's
    # cuDNN math allows it too), full fp32 in matmuls (the Linear layer).
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name()}, "
          f"batch {args.batch}, fp32, cudnn.benchmark, TF32 convs allowed")
    mods = []
    sums = {False: 0.0, True: 0.0}
    done = {}
    failed = 0
    for key in keys:
        mod, (c, r) = block(key)
        mod = mod.to(dev).eval()
        mods.append(mod)
        if key not in done:
            try:
                x = torch.randn(args.batch, c, r, r, device=dev)
                done[key] = (time_module(mod, x, args.runs, False), time_module(mod, x, args.runs, True))
            except Exception as e:  # report and go on: one run should say everything
                print(f"block {key}: FAILED in PyTorch: {type(e).__name__}: {e}")
                done[key] = None
        if done[key] is None:
            failed += 1
            continue
        eager, graph = done[key]
        sums[False] += eager
        sums[True] += graph
        mine = engine_block.get(key)
        vs = f"engine {mine:.4f} ms (engine/graph {mine / graph:.3f})" if mine else "engine n/a"
        print(f"block {key}: torch eager {eager:.4f} ms, graph {graph:.4f} ms, {vs}")

    net = nn.Sequential(*mods).eval()
    c, r = block(keys[0])[1]
    x = torch.randn(args.batch, c, r, r, device=dev)
    e2e = {g: time_module(net, x, args.runs, g) for g in (False, True)}
    engine = f"{engine_e2e:.4f} ms" if engine_e2e else "n/a"
    print(f"network: torch eager {e2e[False]:.4f} ms, torch graph {e2e[True]:.4f} ms, engine {engine}")
    if engine_e2e:
        print(f"target 1: engine / torch graph end to end = {engine_e2e / e2e[True]:.3f} "
              f"({engine_e2e:.4f} / {e2e[True]:.4f} ms; want <= 1)")
    else:
        print(f"target 1: no engine end-to-end time in {args.profiler_log}; torch graph {e2e[True]:.4f} ms")
    if engine_e2e and all(k in engine_block for k in keys):
        engine_sum = sum(engine_block[k] for k in keys)
        print(f"target 2: engine table sum / engine end to end = {engine_sum / engine_e2e:.4f} (want within 0.98..1.02)")
    if failed == 0:
        for g, name in ((False, "eager"), (True, "graph")):
            print(f"torch {name}: sum of blocks / end to end = {sums[g] / e2e[g]:.4f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
