#!/usr/bin/env bash
# Target sweep: N latency targets spread evenly from 5% to 95% of a table's
# range (its smallest to its largest network), a short search for each, and
# per target the derived network's predicted latency, its error against the
# target, and what the landing extension changed; then how many landed at or
# under their target within 1%.
#
#   benches/targets.sh TABLE N [extra searcher arguments...]
#
# The short search is set by the environment (defaults in brackets):
#   EPOCHS [3], WARMUP [1], IMAGES [300] embedded images, RES [48],
#   THREADS [1] libtorch threads, SEED [2],
#   ONLY   [all] space-separated target indices (0-based) to run, for a
#          partial sweep when a full one does not fit the time there is,
#   OUTDIR [a fresh temporary folder] per-target logs and architectures,
#   SEARCHER [target/release/searcher, else target/debug/searcher].
# Extra arguments go to every search (e.g. --method-strict).
#
# Prints one markdown table row per target as it finishes, so a run cut
# short still leaves every finished row.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 TABLE N [searcher arguments...]" >&2
    exit 2
fi
table=$1
n=$2
shift 2
if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
    echo "error: N must be a positive whole number, got '$n'" >&2
    exit 2
fi
if [ ! -r "$table" ]; then
    echo "error: cannot read the table '$table'" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
searcher=${SEARCHER:-}
if [ -z "$searcher" ]; then
    if [ -x "$root/target/release/searcher" ]; then
        searcher=$root/target/release/searcher
    else
        searcher=$root/target/debug/searcher
    fi
fi
if [ ! -x "$searcher" ]; then
    echo "error: no searcher binary at $searcher (cargo build -p searcher --release)" >&2
    exit 2
fi
epochs=${EPOCHS:-3}
warmup=${WARMUP:-1}
images=${IMAGES:-300}
res=${RES:-48}
threads=${THREADS:-1}
seed=${SEED:-2}
outdir=${OUTDIR:-$(mktemp -d "${TMPDIR:-/tmp}/targets.XXXXXX")}
mkdir -p "$outdir"

# The table's range, as the searcher states it when refusing a target far
# above it ("the smallest network costs X ms and the largest Y ms").
refusal=$("$searcher" --table "$table" --target-ms 1000000 --device cpu "$@" 2>&1 >/dev/null || true)
min=$(sed -n 's/.*smallest network costs \([0-9.]*\) ms.*/\1/p' <<<"$refusal")
max=$(sed -n 's/.*the largest \([0-9.]*\) ms.*/\1/p' <<<"$refusal")
if [ -z "$min" ] || [ -z "$max" ]; then
    echo "error: could not read the table's range from the searcher: $refusal" >&2
    exit 2
fi

only=${ONLY:-$(seq -s ' ' 0 $((n - 1)))}
echo "table $table: networks from $min to $max ms; $n targets from 5% to 95% of that range"
echo "search: $epochs epochs ($warmup warm-up), $images embedded images at ${res}x${res}, CPU, $threads thread(s), seed $seed${*:+, extra: $*}"
echo "binary: $searcher; logs: $outdir"
echo "machine: $(nproc) cores, $(uname -m); started $(date -u +%FT%TZ)"
echo
echo "| # | target ms | method's network ms | derived ms | error | within 1% under | seconds | what the extension changed |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
ran=0
landed=0
for k in $only; do
    if [ "$k" -ge "$n" ]; then
        continue
    fi
    # Evenly from 5% to 95% (one target: the middle).
    target=$(awk -v a="$min" -v b="$max" -v k="$k" -v n="$n" \
        'BEGIN { f = (n > 1) ? 0.05 + 0.9 * k / (n - 1) : 0.5; printf "%.4f", a + (b - a) * f }')
    log=$outdir/target-$k.log
    start=$(date +%s)
    status=0
    "$searcher" --table "$table" --target-ms "$target" --epochs "$epochs" \
        --warmup-epochs "$warmup" --embedded-images "$images" --resolution "$res" \
        --device cpu --threads "$threads" --seed "$seed" \
        --out "$outdir/arch-$k.json" "$@" >"$log" 2>&1 || status=$?
    seconds=$(($(date +%s) - start))
    ran=$((ran + 1))
    derived=$(sed -n 's/^predicted latency \([0-9.]*\) ms.*/\1/p' "$log")
    if [ -z "$derived" ]; then
        echo "| $k | $target | | (failed, exit $status) | | no | $seconds | $(tail -n 1 "$log") |"
        continue
    fi
    # The argmax network as elasticity scaling left it, before the extension
    # (the same search: the extension acts only on the derived network).
    method=$(sed -n "s/.*the method's network costs \([0-9.]*\) ms.*/\1/p; s/.*the method's network lands (\([0-9.]*\) ms.*/\1/p; s/.*elasticity scaling left it, \([0-9.]*\) ms.*/\1/p" "$log")
    read -r error within < <(awk -v d="$derived" -v t="$target" \
        'BEGIN { e = 100 * (d / t - 1); printf "%+.3f%% %s\n", e, (d <= t && d >= 0.99 * t) ? "yes" : "no" }')
    if [ "$within" = yes ] && [ "$status" -eq 0 ]; then
        landed=$((landed + 1))
    fi
    changes=$(sed -n 's/^  \(stage [0-9]* \(depth\|block\) .*\|widths .*\)$/\1/p' "$log" | sed 's/ to reach the target (.*)$//; s/ (the \(cheaper\|dearer\) op α ranks next)//; s/, channel step by channel step:.*$//' | paste -sd ';' - | sed 's/;/; /g')
    if grep -q "^--method-strict" "$log"; then
        changes="(--method-strict)"
    elif [ -z "$changes" ]; then
        changes="nothing (the method landed)"
    fi
    echo "| $k | $target | $method | $derived | $error | $within | $seconds | $changes |"
done
echo
echo "$landed of $ran targets landed at or under the target within 1% ($(date -u +%FT%TZ))"
