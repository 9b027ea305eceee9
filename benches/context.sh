#!/usr/bin/env bash
# The context benchmark (a benchmark, not a test): does a CPU table price
# network A against network B as they measure, timed in turns, and how
# much of the difference is the network around the blocks? For each of
# ROUNDS rounds, `profiler validate --arch` times the two in six pass pairs
# (the main job's verdict: 2 s each), once with A first and once with B
# first, and prints per run:
#
#   - the raw ratio's error: the predicted ratio A/B over the median of the
#     pass pairs' raw ratios, less 1 (what a user of the two would see);
#   - the same at the table's speed (every run scaled by its fixed parts'
#     time, as `validate` reports the table's error);
#   - the fixed parts' time inside A over inside B (from each run's speed
#     factor, the median over pairs): the stem, second stem and head are
#     the same blocks in every network, so a ratio away from 1 is the
#     network around them, which the speed gauge takes for the machine.
#
# and at the end the mean of each over the runs. Docs:
# docs/benchmarks/cpu.md, "Where the ranking bias lived".
#
# Usage: bash benches/context.sh TABLE A.json B.json [ROUNDS]
#   TABLE: a CPU table built `--cache network` (the main job's, for
#   instance: tables/local/cpu-network-w32-calibrated.csv); A and B:
#   architecture JSON (the main job's arch.json and
#   tests/fixtures/tfnas_a_up8.json). ROUNDS: 3. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Refusals: one `error:` line, status 2, nothing left behind (the work
# folder goes with the trap below).
refuse() {
  echo "error: $*" >&2
  exit 2
}
[ $# -ge 3 ] && [ $# -le 4 ] || refuse "usage: bash benches/context.sh TABLE A.json B.json [ROUNDS] (see the comment at its top)"
table=$1 a=$2 b=$3 rounds=${4:-3}
for f in "$table" "$a" "$b"; do
  [ -f "$f" ] || refuse "$f: no such file"
done
[[ $rounds =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] && [ "$rounds" -le 100 ] \
  || refuse "ROUNDS $rounds: a whole number in 1..=100"
cargo build --release -q -p profiler-cli -p profiler-cpu
P=./target/release/profiler
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for round in $(seq 1 "$rounds"); do
  for order in "$a $b" "$b $a"; do
    # shellcheck disable=SC2086 # two paths, split on purpose
    set -- $order
    rows=$work/rows-$round-$(basename "$1" .json).csv
    # Its progress lines are dropped; a refusal keeps its own error line.
    if ! "$P" validate --device cpu --table "$table" --arch "$1" "$2" \
      --passes 6 --cap-ms 2000 --out "$rows" >/dev/null 2>"$work/stderr"; then
      grep -m1 '^error:' "$work/stderr" >&2 || refuse "profiler validate failed: $(tail -1 "$work/stderr")"
      exit 2
    fi
    python3 - "$rows" "$1" "$a" >>"$work/summary" <<'PY'
import statistics as st
import sys

rows, first, a = sys.argv[1:]
raw, pred, scaled = {}, {}, {}
for line in open(rows):
    if line.startswith("#") or line.startswith("index"):
        continue
    f = line.split(",")
    i, p = int(f[0]), int(f[1])
    raw[i, p] = float(f[10])
    scaled[i, p] = float(f[4])
    pred[i] = float(f[3])
ia, ib = (0, 1) if first == a else (1, 0)
passes = sorted({p for _, p in raw})
ratios = [raw[ia, p] / raw[ib, p] for p in passes]
predicted = pred[ia] / pred[ib]
raw_err = (predicted / st.median(ratios) - 1) * 100
at_speed = st.mean(scaled[ia, p] for p in passes) / st.mean(scaled[ib, p] for p in passes)
speed_err = (predicted / at_speed - 1) * 100
# factor = scaled / raw = reference / fixed: fixed(A) / fixed(B) is
# factor(B) / factor(A).
fixed = st.median((scaled[ib, p] / raw[ib, p]) / (scaled[ia, p] / raw[ia, p]) for p in passes)
label = "A first" if first == a else "B first"
print(f"{label}: raw ratio {raw_err:+.2f}% off (pairs {min(ratios):.3f}..{max(ratios):.3f}), "
      f"at the table's speed {speed_err:+.2f}% off, fixed parts inside A / inside B {fixed:.4f}")
PY
    tail -1 "$work/summary"
  done
done
awk '{ for (i = 1; i <= NF; i++) {
         if ($i == "ratio" && $(i - 1) == "raw") { r += $(i + 1); n++ }
         if ($i == "speed") s += $(i + 1)
         if ($i == "B") f += $(i + 1) } }
     END { printf "mean of %d runs: raw ratio %+.2f%% off, at the table'"'"'s speed %+.2f%% off, fixed parts inside A / inside B %.4f\n", n, r / n, s / n, f / n }' \
  "$work/summary"
