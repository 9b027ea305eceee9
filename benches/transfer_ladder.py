#!/usr/bin/env python3
"""The probe ladder of `profiler transfer`, and its plot.

    benches/transfer_ladder.py run --label NAME --reference A.csv --full B.csv \
        [--allow-batch] [--fractions 0.02,0.05,0.10,0.15,0.25] [--json OUT.json]
    benches/transfer_ladder.py plot --out ladder.svg OUT.json [OUT.json ...]

`run`: for each fraction, the keys `profiler probe --reference A --fraction F
--keys` prints are cut from the full table B (its header lines and those
rows, so the probe's values are B's own), then `profiler transfer
--reference A --probe P --evaluate B --json` scores the predicted table
against B. Prints one markdown row per fraction in the columns of
docs/transfer.md, and with --json writes every evaluation.

`plot`: probe fraction against the per-entry median and p90 |error| of the
predicted rows, one line per pair, as an SVG of two panels on a log scale
(0 drawn at the floor, 0.01%), with the issue's goals marked.

The binary is $PROFILER, else target/release/profiler, else
target/debug/profiler (under $CARGO_TARGET_DIR when set).
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def profiler_binary():
    if os.environ.get("PROFILER"):
        return os.environ["PROFILER"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    for kind in ("release", "debug"):
        path = os.path.join(target, kind, "profiler")
        if os.access(path, os.X_OK):
            return path
    sys.exit("error: no profiler binary (cargo build --release -p profiler-cli)")


def cut_probe(full, keys, out):
    """The full table's header lines and the rows whose key is in `keys`."""
    wanted = set(keys)
    found = 0
    with open(full) as src, open(out, "w") as dst:
        for line in src:
            if line.startswith("#") or line.startswith("key,"):
                dst.write(line)
            elif line.split(",", 1)[0] in wanted:
                dst.write(line)
                found += 1
    if found != len(wanted):
        sys.exit(f"error: the full table has {found} of the {len(wanted)} probe keys")


def one_fraction(binary, args, fraction, workdir):
    keys = subprocess.run(
        [binary, "probe", "--reference", args.reference, "--fraction", str(fraction), "--keys"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    probe = os.path.join(workdir, f"probe-{fraction}.csv")
    cut_probe(args.full, keys, probe)
    command = [binary, "transfer", "--reference", args.reference, "--probe", probe,
               "--evaluate", args.full, "--json"]
    if args.allow_batch:
        command.append("--allow-batch")
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    evaluation = json.loads(done.stdout)
    measured = re.search(r"(\d+) measured", done.stderr)
    loo = re.search(r"p90 ([0-9.]+)%", done.stderr)
    weight = re.search(r"weighted ([0-9.]+)", done.stderr)
    evaluation.update(
        fraction=fraction,
        measured=int(measured.group(1)) if measured else None,
        loo_p90_pct=float(loo.group(1)) if loo else None,
        detail_weight=float(weight.group(1)) if weight else None,
    )
    return evaluation


def pct(x, signed=False):
    if x is None:
        return ""
    text = f"{x:+.2f}%" if signed else f"{x:.2f}%"
    return text.replace("-", "−")


def markdown_row(e):
    ent, nets = e.get("entries") or {}, e.get("networks") or {}
    tfnas = e.get("tfnas_a")
    cells = [
        f"{100 * e['fraction']:g}%",
        f"{e['measured']:,}" if e["measured"] is not None else "",
        pct(ent.get("median_abs_pct")), pct(ent.get("p90_abs_pct")), pct(ent.get("max_abs_pct")),
        f"{ent.get('within_1_pct', 0):.1f}%", f"{ent.get('within_2_pct', 0):.1f}%",
        f"{ent.get('within_5_pct', 0):.1f}%",
        f"{e['kendall_tau']:.3f}" if e.get("kendall_tau") is not None else "",
        pct(nets.get("median_abs_pct")), pct(nets.get("p90_abs_pct")),
        pct(tfnas[2], signed=True) if tfnas else "",
        f"{e['loo_p90_pct']:.1f}%" if e["loo_p90_pct"] is not None else "",
        f"{e['detail_weight']:.2f}" if e["detail_weight"] is not None else "",
    ]
    return "| " + " | ".join(cells) + " |"


def run(args):
    binary = profiler_binary()
    fractions = [float(f) for f in args.fractions.split(",")]
    print(f"{args.label}: A {args.reference}, truth {args.full}, binary {binary}")
    print("| probe | rows measured | median \\|err\\| | p90 \\|err\\| | max | ±1% | ±2% | ±5% "
          "| τ | nets median | nets p90 | TF-NAS-A | LOO p90 | w |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ladder = []
    with tempfile.TemporaryDirectory() as workdir:
        for fraction in fractions:
            evaluation = one_fraction(binary, args, fraction, workdir)
            ladder.append(evaluation)
            print(markdown_row(evaluation), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"label": args.label, "reference": args.reference,
                       "full": args.full, "ladder": ladder}, out, indent=1)


COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
FLOOR, CEIL = 0.01, 100.0
GOALS = {"median_abs_pct": [(5, 1.0), (15, 0.5)], "p90_abs_pct": [(5, 3.0), (15, 2.0)]}


def panel(x0, y0, w, h, title, metric, pairs, xmax):
    """One panel's SVG elements: axes, grid, each pair's line, the goals."""
    def px(x):
        return x0 + w * x / xmax

    def py(y):
        y = min(max(y, FLOOR), CEIL)
        span = math.log10(CEIL) - math.log10(FLOOR)
        return y0 + h * (math.log10(CEIL) - math.log10(y)) / span

    out = [f'<text x="{x0 + w / 2}" y="{y0 - 10}" text-anchor="middle" '
           f'font-weight="bold">{title}</text>',
           f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="black"/>']
    for exp in range(-2, 3):
        y = 10.0 ** exp
        out.append(f'<line x1="{x0}" y1="{py(y):.1f}" x2="{x0 + w}" y2="{py(y):.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}%</text>')
    for x in range(0, int(xmax) + 1, 5):
        out.append(f'<line x1="{px(x):.1f}" y1="{y0}" x2="{px(x):.1f}" y2="{y0 + h}" '
                   'stroke="#eee"/>')
        out.append(f'<text x="{px(x):.1f}" y="{y0 + h + 16}" text-anchor="middle">{x}%</text>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" text-anchor="middle">'
               'probe (share of the reference\'s entries)</text>')
    for colour, pair in zip(COLOURS, pairs):
        points = [(100 * e["fraction"], (e.get("entries") or {}).get(metric)) for e in pair["ladder"]]
        points = [(x, y) for x, y in points if y is not None]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{colour}"/>'
                for x, y in points]
    for x, y in GOALS[metric]:
        out.append(f'<path d="M{px(x) - 7:.1f},{py(y):.1f} h14" stroke="black" stroke-width="2.5"/>')
        out.append(f'<text x="{px(x) + 9:.1f}" y="{py(y) - 4:.1f}" font-size="11">goal {y:g}%</text>')
    return out


def plot(args):
    pairs = []
    for path in args.inputs:
        with open(path) as f:
            pairs.append(json.load(f))
    xmax = max(25.0, max(100 * e["fraction"] for p in pairs for e in p["ladder"]))
    width, height = 980, 470 + 20 * len(pairs)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    svg += panel(70, 40, 380, 330, "per-entry median |error| (predicted rows)",
                 "median_abs_pct", pairs, xmax)
    svg += panel(570, 40, 380, 330, "per-entry p90 |error| (predicted rows)",
                 "p90_abs_pct", pairs, xmax)
    for i, (colour, pair) in enumerate(zip(COLOURS, pairs)):
        y = 430 + 20 * i
        svg.append(f'<line x1="70" y1="{y - 4}" x2="100" y2="{y - 4}" stroke="{colour}" '
                   'stroke-width="2"/>')
        svg.append(f'<text x="108" y="{y}">{pair["label"]}</text>')
    svg.append(f'<text x="{width - 10}" y="{height - 8}" text-anchor="end" font-size="11">'
               f'log scale; 0 drawn at {FLOOR}%; goals: issue 23</text>')
    svg.append("</svg>")
    with open(args.out, "w") as out:
        out.write("\n".join(svg) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--label", required=True)
    r.add_argument("--reference", required=True)
    r.add_argument("--full", required=True)
    r.add_argument("--allow-batch", action="store_true")
    r.add_argument("--fractions", default="0.02,0.05,0.10,0.15,0.25")
    r.add_argument("--json")
    p = sub.add_parser("plot")
    p.add_argument("--out", required=True)
    p.add_argument("inputs", nargs="+")
    args = parser.parse_args()
    run(args) if args.command == "run" else plot(args)


if __name__ == "__main__":
    main()
