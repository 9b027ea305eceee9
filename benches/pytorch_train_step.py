#!/usr/bin/env python3
"""One training step of a derived network in PyTorch, the reference for
benches/train_step.rs (which runs this script in the same run and prints
both).

The network is built from the block list the Rust bench writes (the
`BlockSpec`s of `space::Architecture::block_specs()`), as TF-NAS's
`models/model_eval.py` builds it: ConvLayer stem, MBInvertedResBlocks
(expansion only when mid > in, depthwise, SE with biases, projection,
residual with drop-connect), feature-mix 1x1 conv, pool, dropout, linear.
The step is the recipe's: label-smoothed cross-entropy, clip 5, SGD with
momentum 0.9 and weight decay 1e-5.

    .venv/bin/python benches/pytorch_train_step.py --blocks blocks.json \
        --batch 32 --resolution 48 --steps 20 --warmup 3 --threads 2
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def act(name):
    return {"relu": nn.ReLU(), "swish": nn.SiLU(), "hswish": nn.Hardswish()}[name]


def conv_bn(cin, cout, k, stride, groups, activation):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if activation:
        layers.append(act(activation))
    return nn.Sequential(*layers)


class Block(nn.Module):
    def __init__(self, b, drop_connect):
        super().__init__()
        cin, mid, out = b["in"], b["mid"], b["out"]
        self.expand = conv_bn(cin, mid, 1, 1, 1, b["act"]) if mid > cin else None
        mid = mid if mid > cin else cin
        self.dw = conv_bn(mid, mid, b["kernel"], b["stride"], mid, b["act"])
        self.se = None
        if b["se"] > 0:
            self.se = nn.Sequential(nn.Conv2d(mid, b["se"], 1), act(b["act"]),
                                    nn.Conv2d(b["se"], mid, 1))
        self.project = conv_bn(mid, out, 1, 1, 1, None)
        self.residual = b["stride"] == 1 and cin == out
        self.drop_connect = drop_connect

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.dw(y)
        if self.se is not None:
            y = y * torch.sigmoid(self.se(F.adaptive_avg_pool2d(y, 1)))
        y = self.project(y)
        if not self.residual:
            return y
        if self.training and self.drop_connect > 0:
            keep = 1 - self.drop_connect
            mask = torch.floor(keep + torch.rand(y.size(0), 1, 1, 1, dtype=y.dtype))
            y = y / keep * mask
        return y + x


class Network(nn.Module):
    def __init__(self, blocks, classes, dropout=0.2, drop_connect=0.2):
        super().__init__()
        stem, middle, head = blocks[0], blocks[1:-1], blocks[-1]
        self.stem = conv_bn(stem["in"], stem["out"], stem["kernel"], stem["stride"], 1, stem["act"])
        n = len(middle)
        self.blocks = nn.Sequential(*[Block(b, drop_connect * (i + 1) / n)
                                      for i, b in enumerate(middle)])
        self.head = conv_bn(head["in"], head["mid"], 1, 1, 1, head["act"])
        self.dropout = dropout
        self.classifier = nn.Linear(head["mid"], classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(F.dropout(x, self.dropout, self.training))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--blocks", required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--resolution", type=int, default=48)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = Network(json.load(open(args.blocks)), args.classes).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-5)
    x = torch.randn(args.batch, 3, args.resolution, args.resolution)
    y = torch.randint(0, args.classes, (args.batch,))

    def step():
        loss = F.cross_entropy(net(x), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    ms = 1e3 * (time.perf_counter() - start) / args.steps
    print(f"pytorch {torch.__version__} train step {ms:.2f} ms "
          f"(batch {args.batch}, {args.resolution}x{args.resolution}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
