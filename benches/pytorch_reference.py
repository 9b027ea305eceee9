#!/usr/bin/env python3
"""Times the blocks and the network the profiler timed, in PyTorch, on the
same GPU, and prints the ratios the issue's targets are stated in.

Input: the stdout of `profiler measure --arch A.json --per-block` (its
`block KEY MS ms` lines give the network's blocks in order and the
profiler's per-block medians; its first line the end-to-end median).

PyTorch runs each block and the whole network in eval mode, fp32, NCHW,
cudnn.benchmark=True (TF32 convolutions allowed, PyTorch's default), eager
and replaying a CUDA graph, median of CUDA-event-timed runs.

Usage: python3 benches/pytorch_reference.py PROFILER_LOG [--batch 32] [--runs 200]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("profiler_log")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()

    keys, engine_block, engine_e2e = [], {}, None
    for line in open(args.profiler_log):
        m = re.match(r"^block (\S+) ([0-9.]+) ms", line)
        if m:
            keys.append(m.group(1))
            engine_block[m.group(1)] = float(m.group(2))
        m = re.match(r"^network .*: median ([0-9.]+) ms", line)
        if m and engine_e2e is None:
            engine_e2e = float(m.group(1))
    if not keys or engine_e2e is None:
        raise SystemExit(f"{args.profiler_log}: no 'network ...' and 'block ...' lines (run profiler measure --per-block)")

    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name()}, batch {args.batch}")
    mods = []
    sums = {False: 0.0, True: 0.0}
    done = {}
    for key in keys:
        mod, (c, r) = block(key)
        mod = mod.to(dev).eval()
        mods.append(mod)
        if key not in done:
            x = torch.randn(args.batch, c, r, r, device=dev)
            done[key] = (time_module(mod, x, args.runs, False), time_module(mod, x, args.runs, True))
        eager, graph = done[key]
        sums[False] += eager
        sums[True] += graph
        print(f"block {key}: torch eager {eager:.4f} ms, graph {graph:.4f} ms, engine {engine_block[key]:.4f} ms (engine/graph {engine_block[key] / graph:.3f})")

    net = nn.Sequential(*mods).eval()
    c, r = block(keys[0])[1]
    x = torch.randn(args.batch, c, r, r, device=dev)
    e2e = {g: time_module(net, x, args.runs, g) for g in (False, True)}
    engine_sum = sum(engine_block[k] for k in keys)
    print(f"network: torch eager {e2e[False]:.4f} ms, torch graph {e2e[True]:.4f} ms, engine {engine_e2e:.4f} ms")
    print(f"target 1: engine / torch graph end to end = {engine_e2e / e2e[True]:.3f} (want <= 1)")
    print(f"target 2: engine table sum / engine end to end = {engine_sum / engine_e2e:.4f} (want within 0.98..1.02)")
    for g, name in ((False, "eager"), (True, "graph")):
        print(f"torch {name}: sum of blocks / end to end = {sums[g] / e2e[g]:.4f}")


if __name__ == "__main__":
    sys.exit(main())
