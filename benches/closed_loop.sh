#!/usr/bin/env bash
# The closed-loop benchmark (a benchmark, not a test): how well a CPU table
# predicts networks where users land, each figure from `profiler validate`
# in passes, on this machine, now. Prints, per set of networks, the
# validation report (median |error|, shares within ±k%, mean signed error,
# the same networks priced by linear interpolation, unstable networks):
#
#   1. 30 networks sampled at --width-multiple 1 (any width);
#   2. TF-NAS-A and its widths rounded up to multiples of 8, 16 and 32, in
#      alternation (the order they measure against the order they are
#      priced);
#   3. 40 networks landed by `searcher land` on targets from 10% to 95% of
#      the table's range (networks like the search's outputs), timed by the
#      table's speed standard in turns; a factor fitted on 20 of them (`fit
#      --model scale`), the other 20's median |error|, share within ±5% and
#      mean signed error at it.
#
# Usage: bash benches/closed_loop.sh [TABLE]
#   CLOSED_LOOP_SETS=3 bash benches/closed_loop.sh TABLE runs set 3 alone.
#   TABLE: a CPU table built `--cache network` (default: builds or resumes
#   tables/local/closed-loop-w8.csv at the defaults, about 25 minutes on the
#   2-core development VM). Run it on a quiet machine: a build beside it
#   moves every figure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -q -p profiler-cli -p profiler-cpu -p searcher
P=./target/release/profiler
S=./target/release/searcher
mkdir -p tables/local
table=${1:-tables/local/closed-loop-w8.csv}
if [ $# -eq 0 ]; then
  echo "== table: $table (built or resumed at the defaults)"
  "$P" --device cpu --out "$table"
fi
stem=tables/local/closed-loop-$(basename "$table" .csv)
timing=(--passes 3 --cap-ms 2000)
# Which sets to run (CLOSED_LOOP_SETS=3: only where the searcher lands).
sets=${CLOSED_LOOP_SETS:-123}
# Fresh rows every run: a benchmark measures now, it does not resume.
rm -f "$stem-any-width.csv" "$stem-tfnas-a.csv" "$stem-landed.csv" "$stem-landed.fit"

if [[ $sets == *1* ]]; then
echo "== 1/3 any width: 30 networks at --width-multiple 1 (seed 7)"
"$P" validate --device cpu --table "$table" --width-multiple 1 --samples 30 --seed 7 \
  "${timing[@]}" --out "$stem-any-width.csv" 2>/dev/null

fi

if [[ $sets == *2* ]]; then
echo "== 2/3 TF-NAS-A and its widths rounded up to multiples of 8, 16, 32"
archs=(tests/fixtures/tfnas_a.json tests/fixtures/tfnas_a_up8.json
  tests/fixtures/tfnas_a_up16.json tests/fixtures/tfnas_a_up32.json)
"$P" validate --device cpu --table "$table" --arch "${archs[@]}" \
  "${timing[@]}" --out "$stem-tfnas-a.csv" 2>/dev/null
awk -F, -v names="TF-NAS-A,rounded up to 8,rounded up to 16,rounded up to 32" '
  BEGIN { split(names, name, ",") }
  /^#/ || $1 == "index" { next }
  { p[$1] = $4; m[$1] += $5; n[$1]++ }
  END {
    for (i = 0; i < 4; i++) {
      m[i] /= n[i]
      printf "  %-18s predicted %.4f ms, measured %.4f ms (%+.2f%%)\n", name[i + 1], p[i], m[i], (p[i] / m[i] - 1) * 100
    }
  }' "$stem-tfnas-a.csv"

fi

if [[ $sets == *3* ]]; then
echo "== 3/3 where the searcher lands: 40 networks on targets from 10% to 95% of the range, a factor fitted on 20, reported on the other 20"
# The table's level on networks like the search's outputs, fitted on one
# set and reported on another (fit's split: even indices fit, odd ones
# are held out; land's targets rise with the index, so both halves span
# the range), all timed in the same passes by the speed standard in turns
# (the main job's practice on a CPU).
landed=$stem-landed
rm -rf "$landed"
"$S" land --table "$table" --count 40 --out-dir "$landed" >/dev/null
"$P" validate --device cpu --gauge standard --table "$table" --arch "$landed" \
  "${timing[@]}" --out "$stem-landed.csv" 2>/dev/null
"$P" fit --validation "$stem-landed.csv" --table "$table" --model scale 2>/dev/null | tee "$stem-landed.fit"
# fit holds out the odd twenty: its "after" line is their figures at the
# factor fitted on the even twenty.
sed -n 's/^  after .*median |error| *\([0-9.]*\)%  mean signed *\([-+0-9.]*\)%.*±5% *\([0-9.]*\)%.*/held out at the factor: median |error| \1%, within ±5% \3%, mean signed \2% (goal: <= 2%, >= 90%, within ±1.5%)/p' "$stem-landed.fit"
fi
