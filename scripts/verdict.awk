# The main job's verdict (scripts/run.sh, step 5) from `profiler validate
# --out` rows of networks timed in turns: 0 the searched network, 1
# TF-NAS-A/8, 2 and on (if any) the level's networks, those the table's
# correction was fitted on (step 2), whose measured over predicted times
# give the table's level in these passes (level_errors). Variables: t the
# target (ms), a the table's correction factor (validate's rows hold the
# sum of blocks), sp " at the table's speed" or "" (a GPU), s the seconds
# since the job began, unstable 1 when validate named a network with
# several latency modes, tf the file of `profiler measure --arch
# TF-NAS-A/8 --versus SEARCHED` (the two timed in turns, run by run), read
# after the rows, lf the level step's `validate --out` rows (empty: none),
# read for the machine's speed in them alone: awk -f verdict.awk ROWS
# TURNS [LEVEL_ROWS].
#
# With level networks, the searched network is judged at the level of
# these passes (its error at the level step's factor stays printed): a
# level fitted in one step held only minutes on the development VM. With
# drift (points: the sd of the level's move between the level step and
# these passes expected), at that level and step 2's weighted by their
# variances instead: within a run's minutes on the development VM the
# level of the passes alone was no better than step 2's (nine landings of
# twelve each), each better where the other was poorly known.
#
# Each figure comes with its interval, so that a miss inside the noise is
# told from one beyond it: a network's mean over its passes with a 95%
# Student t interval (with the runs in turns, over both networks' passes,
# the other's brought over by the ratio: see END). The ratio: from the
# runs in turns when tf has them, the median of its passes' ratios, with
# an interval from the lowest to the highest end of their 95% intervals;
# else the median of the rows' pass pairs, with the interval from their
# smallest to their largest value,
# which holds the median with probability 1 - 2 * 0.5^k for k pairs (97%
# for six). Runs in turns hold the ratio five times tighter than passes
# (docs/benchmarks/cpu.md, "Paired runs").

# Sorts v[1..k] in place (insertion sort: six values) and returns their median.
function median(v, k,    x, y, w) {
  for (x = 2; x <= k; x++) { w = v[x]; for (y = x - 1; y >= 1 && v[y] > w; y--) v[y + 1] = v[y]; v[y + 1] = w }
  return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
}
# Student's t at 97.5% for df degrees of freedom (1..30, then the normal's).
function t975(df) {
  split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228 2.201 2.179 2.160 2.145 2.131 2.120 2.110 2.101 2.093 2.086 2.080 2.074 2.069 2.064 2.060 2.056 2.052 2.048 2.045 2.042", tt, " ")
  return (df >= 1 && df <= 30) ? tt[df] : 1.96
}
# The error (%) of prediction p against the mean of x[1..c], and its 95%
# interval through the mean's (Student's t): emean, elo, ehi, and the
# mean's half-width eh.
function error_of(x, c, p,    j, ss, h) {
  emean = 0; ss = 0
  for (j = 1; j <= c; j++) emean += x[j]
  emean /= c
  for (j = 1; j <= c; j++) ss += (x[j] - emean) ^ 2
  h = c > 1 ? t975(c - 1) * sqrt(ss / (c - 1) / c) : 0
  eh = h
  elo = (p / (emean + h) - 1) * 100
  ehi = (emean > h) ? (p / (emean - h) - 1) * 100 : 1e9
  return (p / emean - 1) * 100
}
# The table's level in these passes and each network's error at it. The
# level is the factor `fit --model scale` would fit on the level's
# networks (index 2 and on) here: L = sum p*m / sum p^2 over their means
# over every pass (a pass pair left out above is left out for its two
# networks' sake; the level's eight were timed steadily or not on their
# own), its interval from the passes' own levels (each pass's L alike).
# A network's error at it is p*L over its mean time (errors_at). Not each
# pass divided by its own level: on seven checks on the development VM
# the two ways' intervals differed by 0.2-1.9 points,
# the division's narrower in four and wider in three, and one level,
# printed and applied, reads plainer.
# Sets nl (0: no level networks), lmean, lh, and le, llo, lhi, lm per
# network; with drift, nw, sl, wk, lw, hw and we, wlo, whi, wm alike.
function level_errors(    i, j, c, na, mi, spm, spp, ss, lbar, tau) {
  nl = 0; spm = 0; spp = 0; na = 0
  for (j in passes) na++
  for (i in lvl) {
    mi = 0; c = 0
    for (j in passes) if ((i, j) in sc) { mi += sc[i, j]; c++ }
    if (c > 0) { nl++; spm += p[i] * mi / c; spp += p[i] ^ 2 }
  }
  if (nl == 0 || spp <= 0) { nl = 0; return }
  lmean = spm / spp; lbar = 0; ss = 0
  for (j in passes) {
    spm = 0; spp = 0
    for (i in lvl) if ((i, j) in sc) { spm += p[i] * sc[i, j]; spp += p[i] ^ 2 }
    L[j] = spp > 0 ? spm / spp : lmean; lbar += L[j] / na
  }
  for (j in passes) ss += (L[j] - lbar) ^ 2
  lh = na > 1 ? t975(na - 1) * sqrt(ss / (na - 1) / na) : 0
  errors_at(lmean, lh, le, llo, lhi, lm)
  # Weighted with step 2's level (1) by their variances: drift is the
  # prior sd (points) of the level's move between the two steps, these
  # passes' from their interval; the weighted level is the move measured
  # here shrunk by how well these passes know it (the posterior mean of
  # the move under a normal prior), its sd the posterior's.
  nw = 0
  if (drift > 0 && na > 1) {
    nw = 1; tau = drift / 100; sl = lh / t975(na - 1)
    wk = sl > 0 ? tau ^ 2 / (tau ^ 2 + sl ^ 2) : 1
    lw = 1 + wk * (lmean - 1); hw = 1.96 * sqrt(wk) * sl
    errors_at(lw, hw, we, wlo, whi, wm)
  }
}
# Networks 0 and 1's errors at level L (95% half-width hl): p*L over the
# network's mean time, the interval its own and the level's relative
# half-widths in quadrature (as if the two were independent: each network
# is gauged by its own turns with the standard). Sets ee, elo2, ehi2 and
# em (the time at L) per network.
function errors_at(L, hl, ee, elo2, ehi2, em,    i, r) {
  for (i = 0; i <= 1; i++) {
    r = sqrt((hm[i] / m[i]) ^ 2 + (hl / L) ^ 2)
    ee[i] = (p[i] * L / m[i] - 1) * 100; em[i] = m[i] / L
    elo2[i] = (p[i] * L / (m[i] * (1 + r)) - 1) * 100
    ehi2[i] = r < 1 ? (p[i] * L / (m[i] * (1 - r)) - 1) * 100 : 1e9
  }
}
# A pass of the runs in turns: "pass 1/3, run by run: ... SEARCHED +1.81%
# (95% CI +1.50..+2.47%, 20 pairs) against TF-NAS-A/8".
FILENAME == tf {
  if ($0 !~ /^pass [0-9]+\/[0-9]+, run by run: /) next
  if (!match($0, /[-+][0-9.]+% \(95% CI [-+][0-9.]+\.\.[-+][0-9.]+%, [0-9]+ pairs\)/)) next
  f = substr($0, RSTART, RLENGTH); gsub(/\.\./, " ", f); gsub(/[()%,]/, " ", f)
  split(f, w, " ")
  tq[++tk] = 1 + w[1] / 100; tlo[tk] = 1 + w[4] / 100; thi[tk] = 1 + w[5] / 100
  next
}
/^#/ || $1 == "index" { next }
# The machine's speed against the table's in each row (its time at the
# table's speed over its raw time), here and in the level step's rows
# (lf), for the line beside the verdict.
$11 > 0 { src = FILENAME == lf ? "level" : "here"; speed[src] += $5 / $11; nspeed[src]++ }
FILENAME == lf { next }
# A pass pair either of whose passes validate marked throttled (a GPU
# that throttled; on a CPU, a pass whose median at the table's speed is
# known no better than ±3%, timed in turns with the speed standard) is
# left out whole, so both networks keep the same passes;
# unless fewer than 3 steady pairs would be left: then every pair is kept
# (on the development VM one run had 5 of 6 pairs unsteady, and a verdict
# on one pass is none), and the intervals carry the noise.
# A level network's throttled pass is kept: the level is a sum over eight.
{ p[$1] = a * $4; sc[$1, $2] = $5; raw[$1, $2] = $11; if ($10 == 1 && $1 <= 1) out[$2] = 1; passes[$2] = 1; if ($1 >= 2) lvl[$1] = 1 }
END {
  whole = 0; steady = 0
  for (j in passes) if (((0, j) in raw) && ((1, j) in raw)) { whole++; if (!(j in out)) steady++ }
  strict = steady >= 3
  left = 0; k = 0
  for (j in passes) {
    if ((strict && (j in out)) || !((0, j) in raw) || !((1, j) in raw)) { left++; continue }
    for (i = 0; i <= 1; i++) v[i, ++n[i]] = sc[i, j]
    # The raw ratio of each pass pair (timed back to back); their median
    # below, robust to a pass the machine slowed.
    q[++k] = raw[0, j] / raw[1, j]
  }
  if (k == 0) { print "verdict: UNSURE: every pass pair was throttled"; exit }
  # Each network's error from its own passes.
  for (i = 0; i <= 1; i++) {
    for (j = 1; j <= n[i]; j++) x[j] = v[i, j]
    own[i] = error_of(x, n[i], p[i]); m[i] = emean; hm[i] = eh; lo[i] = elo; hi[i] = ehi; e[i] = own[i]
  }
  rm = m[0] / m[1]; mo0 = m[0]; mo1 = m[1]
  if (tk > 0) {
    rr = median(tq, tk); qlo = tlo[1]; qhi = thi[1]
    for (j = 2; j <= tk; j++) { if (tlo[j] < qlo) qlo = tlo[j]; if (thi[j] > qhi) qhi = thi[j] }
    how = sprintf("in turns run by run, the median of %d passes (their 95%% intervals within %.4f..%.4f", tk, qlo, qhi)
    # With the ratio in turns, each network's time at the table's speed
    # from both networks' passes: its own, and the other's times (or over)
    # the ratio. Each pass is gauged by the speed standard in its own
    # turns, whose noise (1-3% a pass on the development VM) is the largest in
    # a network's error; twice the passes halve its variance, and the
    # ratio in turns (0.2-0.8% between preparations) splits the level.
    for (i = 0; i <= 1; i++) {
      for (j = 1; j <= n[i]; j++) { x[j] = v[i, j]; x[n[i] + j] = i == 0 ? v[1, j] * rr : v[0, j] / rr }
      e[i] = error_of(x, 2 * n[i], p[i]); m[i] = emean; hm[i] = eh; lo[i] = elo; hi[i] = ehi
    }
    from = sprintf("its %d passes and the other's %d through their ratio in turns%s", n[0], n[1], sp)
  } else {
    # q sorted by median(): the median's interval is q[1]..q[k].
    rr = median(q, k); qlo = q[1]; qhi = q[k]
    how = sprintf("the median of %d pass pairs (range %.4f..%.4f, a %.0f%% interval", k, qlo, qhi, (1 - 2 * 0.5 ^ k) * 100)
    from = sprintf("mean of %d passes%s", n[0], sp)
  }
  level_errors()
  # The figure the verdict judges: the searched network's error at the
  # weighted level (with drift), else at the level of these passes (with
  # level networks), else at step 2's factor; the others stay printed.
  if (nw) { je = we[0]; jlo = wlo[0]; jhi = whi[0]; at = " at the weighted level" }
  else if (nl > 0) { je = le[0]; jlo = llo[0]; jhi = lhi[0]; at = " at the level of these passes" }
  else { je = e[0]; jlo = lo[0]; jhi = hi[0]; at = "" }
  rp = p[0] / p[1]; rs = (rp / rm - 1) * 100
  re = (rp / rr - 1) * 100; rlo = (rp / qhi - 1) * 100; rhi = (rp / qlo - 1) * 100
  printf "target     %.4f ms (TF-NAS-A/8 as the table predicts it)\n", t
  if (left > 0) printf "left out: %d of %d pass pairs, throttled\n", left, left + k
  if (!strict && whole > steady) printf "kept: %d of %d pass pairs throttled, as only %d steady would be left\n", whole - steady, whole, steady
  printf "searched   predicted %.4f ms, measured %.4f ms (%s): table error %+.2f%% (95%% interval %+.2f..%+.2f%%)", p[0], m[0], from, e[0], lo[0], hi[0]
  if (tk > 0) printf "; its own passes alone %.4f ms, %+.2f%%", mo0, own[0]
  printf "\n"
  printf "TF-NAS-A/8 predicted %.4f ms, measured %.4f ms (%s): table error %+.2f%% (95%% interval %+.2f..%+.2f%%)", p[1], m[1], from, e[1], lo[1], hi[1]
  if (tk > 0) printf "; its own passes alone %.4f ms, %+.2f%%", mo1, own[1]
  printf "\n"
  if (nl > 0) {
    printf "level      measured over predicted on the %d networks the table's correction was fitted on (step 2), in these passes: %.4f (95%% interval %.4f..%.4f): the level %+.2f%% from step 2's\n", nl, lmean, lmean - lh, lmean + lh, (lmean - 1) * 100
    printf "searched   at the level of these passes: measured %.4f ms at it, table error %+.2f%% (95%% interval %+.2f..%+.2f%%)\n", lm[0], le[0], llo[0], lhi[0]
    printf "TF-NAS-A/8 at the level of these passes: measured %.4f ms at it, table error %+.2f%% (95%% interval %+.2f..%+.2f%%)\n", lm[1], le[1], llo[1], lhi[1]
  }
  if (nw) {
    printf "weighted   level, step 2's and these passes' by their variances (a move of %.2f points sd expected between the steps, these passes' level known to %.2f): %.4f (95%% interval %.4f..%.4f), weight %.2f on these passes\n", drift, sl * 100, lw, lw - hw, lw + hw, wk
    printf "searched   at the weighted level: measured %.4f ms at it, table error %+.2f%% (95%% interval %+.2f..%+.2f%%)\n", wm[0], we[0], wlo[0], whi[0]
    printf "TF-NAS-A/8 at the weighted level: measured %.4f ms at it, table error %+.2f%% (95%% interval %+.2f..%+.2f%%)\n", wm[1], we[1], wlo[1], whi[1]
  }
  printf "ratio searched/TF-NAS-A/8: predicted %.4f, measured %.4f raw, %s): %+.2f%% (interval %+.2f..%+.2f%%)", rp, rr, how, re, rlo, rhi
  if (sp != "") printf "; %.4f at the table's speed (%+.2f%%)", rm, rs
  printf "\n"
  printf "searched against target: %+.2f%% measured\n", (m[0] / t - 1) * 100
  # Where the level a check reads may have moved: the host's speed here
  # and in the level step's passes (lf; none: not known).
  if (sp != "" && nspeed["here"] > 0) {
    printf "machine speed: %.3fx the table's in these passes", speed["here"] / nspeed["here"]
    if (nspeed["level"] > 0) printf ", %.3fx in the level step's (step 2)", speed["level"] / nspeed["level"]
    printf "\n"
  }
  ok = (je <= 2 && je >= -2 && re <= 2 && re >= -2)
  # Beyond the noise: the 2% band and a figure's interval do not overlap.
  beyond = (jlo > 2 || jhi < -2 || rlo > 2 || rhi < -2)
  # A landing whose intervals stay inside the band is one the noise could
  # not have made; one whose interval reaches past it (on the development
  # VM in a busy spell, intervals 6-7 points wide) is said to be so, as a
  # miss inside the noise is.
  inside = (jlo >= -2 && jhi <= 2 && rlo >= -2 && rhi <= 2)
  landed = inside ? "LANDED" : "LANDED (within the noise: an interval reaches past the 2% band)"
  verdict = unstable ? "UNSURE (a network above has several latency modes)" : k < 3 ? "UNSURE (fewer than 3 pass pairs left)" : ok ? landed : beyond ? "MISSED" : "MISSED (within the noise: each figure's interval reaches into the 2% band)"
  printf "verdict: %s: the searched network is %+.2f%% off its prediction%s and its ratio to TF-NAS-A/8 %+.2f%% off (both must lie within 2%%)\n", verdict, je, at, re
  printf "wall time after setup: %d s\n", s
}
