#!/usr/bin/env python3
"""The searcher's two steps in PyTorch, as the reference for benches/search_step.rs.

Builds the same supernet as searcher/src/supernet.rs (every op at its maximum
width with a 0/1 channel mask, batch norm on batch statistics without affine
parameters, sink-connecting stages) over the default TF-NAS space or a space
JSON (`profiler space > s.json`), and times:

- a weight step: path A by Gumbel-max from alpha, path B uniformly among the
  other ops, CE(A) + CE(B), clip 5, SGD (momentum 0.9, wd 1e-5);
- an architecture step: every op mixed by a soft Gumbel-softmax sample,
  CE + lambda * |LAT / target - 1| (LAT from fixed per-op latencies), clip 5,
  Adam (betas 0.5, 0.999, wd 5e-4), alpha and beta re-projected by
  log_softmax.

It prints milliseconds per step and the peak memory (CUDA: max allocated;
CPU: peak resident set of this process).

    .venv/bin/python benches/pytorch_search_step.py --device cpu --batch 8 --resolution 16

The defaults match the criterion bench (batch 8, 16x16, CPU). The optimiser
and loss code mirror the Rust code, not the official repository.
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F


def default_space():
    def op(name, k, e, se):
        mx = 8 if e == 6 else 4
        return dict(name=name, kernel=k, expansion=e, min_expansion=mx // 2, max_expansion=mx,
                    se_ratio=se)

    ops = [op("k3_e3", 3, 3, 0), op("k3_e6", 3, 6, 0), op("k5_e3", 5, 3, 0), op("k5_e6", 5, 6, 0),
           op("k3_e3_se", 3, 3, 1), op("k3_e6_se", 3, 6, 2), op("k5_e3_se", 5, 3, 1),
           op("k5_e6_se", 5, 6, 2)]
    stage = lambda out, depth, stride, act: dict(out_channels=out, max_depth=depth, stride=stride,
                                                 activation=act)
    return dict(
        input_channels=3,
        stem=dict(out_channels=32, kernel=3, stride=2, activation="relu"),
        second_stem=dict(out_channels=16, mid_channels=32, se_channels=8, kernel=3, stride=1,
                         activation="relu"),
        stages=[stage(24, 2, 2, "relu"), stage(40, 3, 2, "swish"), stage(80, 4, 2, "swish"),
                stage(112, 4, 1, "swish"), stage(192, 4, 2, "swish"), stage(320, 1, 1, "swish")],
        ops=ops,
        head=dict(feature_channels=1280, activation="swish"),
    )


def act(x, name):
    return {"relu": F.relu, "swish": F.silu, "hswish": F.hardswish}[name](x)


def bn(x):
    return F.batch_norm(x, None, None, training=True, momentum=0.1, eps=1e-5)


def param(shape, fan_in, device):
    bound = 1.0 / math.sqrt(fan_in)
    return torch.empty(shape, device=device).uniform_(-bound, bound).requires_grad_()


class MBConv:
    def __init__(self, cin, cout, mid, se, k, stride, activation, expand, device):
        self.expand = param((mid, cin, 1, 1), cin, device) if expand else None
        self.dw = param((mid, 1, k, k), k * k, device)
        self.se = [param((se, mid, 1, 1), mid, device), param((se,), mid, device),
                   param((mid, se, 1, 1), se, device), param((mid,), se, device)] if se else None
        self.pw = param((cout, mid, 1, 1), mid, device)
        self.stride, self.act, self.residual = stride, activation, stride == 1 and cin == cout

    def params(self):
        return [p for p in [self.expand, self.dw, self.pw] + (self.se or []) if p is not None]

    def __call__(self, x, mask):
        h = x
        if self.expand is not None:
            h = act(bn(F.conv2d(x, self.expand)), self.act)
            h = h * mask if mask is not None else h
        k = self.dw.shape[2]
        h = act(bn(F.conv2d(h, self.dw, stride=self.stride, padding=k // 2, groups=self.dw.shape[0])),
                self.act)
        h = h * mask if mask is not None else h
        if self.se is not None:
            rw, rb, ew, eb = self.se
            s = act(F.conv2d(F.adaptive_avg_pool2d(h, 1), rw, rb), self.act)
            h = h * torch.sigmoid(F.conv2d(s, ew, eb))
        out = bn(F.conv2d(h, self.pw))
        return out + x if self.residual else out


class Supernet:
    def __init__(self, space, classes, device):
        st = space["stem"]
        self.space = space
        self.stem = param((st["out_channels"], space["input_channels"], st["kernel"], st["kernel"]),
                          space["input_channels"] * st["kernel"] ** 2, device)
        s2 = space["second_stem"]
        self.second = MBConv(st["out_channels"], s2["out_channels"], s2["mid_channels"],
                             s2["se_channels"], s2["kernel"], s2["stride"], s2["activation"],
                             s2["mid_channels"] > st["out_channels"], device)
        self.layers, self.masks, self.alphas, self.betas, self.lat = [], [], [], [], []
        cin = s2["out_channels"]
        n_ops = len(space["ops"])
        gen = torch.Generator().manual_seed(0)
        for stage in space["stages"]:
            layers, masks = [], []
            for b in range(stage["max_depth"]):
                stride = stage["stride"] if b == 0 else 1
                ops, op_masks = [], []
                for o in space["ops"]:
                    mx = o["max_expansion"] * cin
                    ops.append(MBConv(cin, stage["out_channels"], mx, o["se_ratio"] * cin,
                                      o["kernel"], stride, stage["activation"], True, device))
                    m = torch.zeros(1, mx, 1, 1, device=device)
                    m[:, : o["expansion"] * cin] = 1.0
                    op_masks.append(m)
                layers.append(ops)
                masks.append(op_masks)
                self.alphas.append(torch.full((n_ops,), -math.log(n_ops), device=device,
                                              requires_grad=True))
                self.lat.append(torch.rand(n_ops, generator=gen).to(device))
                cin = stage["out_channels"]
            self.layers.append(layers)
            self.masks.append(masks)
            self.betas.append(torch.zeros(stage["max_depth"], device=device, requires_grad=True))
        feat = space["head"]["feature_channels"]
        self.head = param((feat, cin, 1, 1), cin, device)
        self.fc_w = param((classes, feat), feat, device)
        self.fc_b = param((classes,), feat, device)

    def weights(self):
        ws = [self.stem, self.head, self.fc_w, self.fc_b] + self.second.params()
        for stage in self.layers:
            for ops in stage:
                for op in ops:
                    ws += op.params()
        return ws

    def forward(self, x, path=None, mixed=None):
        sp = self.space
        h = act(bn(F.conv2d(x, self.stem, stride=sp["stem"]["stride"],
                            padding=sp["stem"]["kernel"] // 2)), sp["stem"]["activation"])
        h = self.second(h, None)
        n = 0
        for s, stage in enumerate(self.layers):
            depth = F.softmax(self.betas[s], 0)
            sink = 0
            for b, ops in enumerate(stage):
                if path is not None:
                    k = path[n]
                    h = ops[k](h, self.masks[s][b][k])
                else:
                    h = sum(ops[k](h, self.masks[s][b][k]) * mixed[n][k] for k in range(len(ops)))
                sink = sink + h * depth[b]
                n += 1
            h = sink
        h = act(bn(F.conv2d(h, self.head)), sp["head"]["activation"])
        return F.linear(F.adaptive_avg_pool2d(h, 1).flatten(1), self.fc_w, self.fc_b)

    def expected_latency(self, mixed):
        total, n = 0.0, 0
        for s, stage in enumerate(self.layers):
            per_block = []
            for _ in stage:
                per_block.append((mixed[n] * self.lat[n]).sum())
                n += 1
            total = total + (F.softmax(self.betas[s], 0) * torch.stack(per_block).cumsum(0)).sum()
        return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--space", help="space JSON (profiler space); the TF-NAS default otherwise")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    space = json.load(open(args.space)) if args.space else default_space()
    net = Supernet(space, 10, device)
    weights = net.weights()
    arch = net.alphas + net.betas
    sgd = torch.optim.SGD(weights, lr=0.01, momentum=0.9, weight_decay=1e-5)
    adam = torch.optim.Adam(arch, lr=0.01, betas=(0.5, 0.999), weight_decay=5e-4)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    n_ops = len(space["ops"])
    n_layers = len(net.alphas)

    def weight_step():
        a = [int((F.log_softmax(al.detach(), 0) - torch.empty_like(al).exponential_().log()).argmax())
             for al in net.alphas]
        b = []
        for k in a:  # uniformly among the other ops
            r = int(torch.randint(0, n_ops - 1, ()))
            b.append(r + 1 if r >= k else r)
        loss = F.cross_entropy(net.forward(x, path=a), y) + F.cross_entropy(net.forward(x, path=b), y)
        sgd.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([w for w in weights if w.grad is not None], 5.0)
        sgd.step()

    def arch_step():
        mixed = [F.gumbel_softmax(F.log_softmax(al, 0), tau=1.0, hard=False) for al in net.alphas]
        ce = F.cross_entropy(net.forward(x, mixed=mixed), y)
        lat = net.expected_latency(mixed)
        loss = ce + 0.1 * (lat / 5.0 - 1.0).abs()
        adam.zero_grad(set_to_none=True)
        for w in weights:
            w.requires_grad_(False)
        loss.backward()
        for w in weights:
            w.requires_grad_(True)
        torch.nn.utils.clip_grad_norm_(arch, 5.0)
        adam.step()
        with torch.no_grad():
            for p in arch:
                p.copy_(F.log_softmax(p, 0))

    def timed(step):
        for _ in range(args.warmup):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t) * 1000 / args.steps

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    w_ms = timed(weight_step)
    a_ms = timed(arch_step)
    if device.type == "cuda":
        peak = f"peak CUDA memory allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    else:
        peak = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    print(f"pytorch {torch.__version__} on {device}, batch {args.batch}, "
          f"{args.resolution}x{args.resolution}, {n_layers} layers x {n_ops} ops: "
          f"weight step {w_ms:.1f} ms, arch step {a_ms:.1f} ms, {peak}")


if __name__ == "__main__":
    main()
