//! Landing on every feasible target: an extension of the method, on by
//! default (`--method-strict` turns it off).
//!
//! Elasticity scaling (`elastic.rs`, docs/method.md §3) only moves widths,
//! so when the argmax network's ops and depths are too slow even at their
//! narrowest widths, or too fast even at their widest, the method misses
//! its target (over it, or far under it). This module changes what width
//! scaling cannot:
//! 1. depth first: add or drop blocks, taking among the stages the depth
//!    β disfavours least relative to the current one;
//! 2. then, if depth alone cannot do it, ops: a block's op becomes the op α
//!    ranks highest among those cheaper (or dearer) than its current one;
//! 3. then the widths are scaled again by the method's own scaling, and, if
//!    that greedy walk stops more than 1% under the target, filled channel
//!    step by channel step up to it.
//!
//! A network the method's scaling already puts within 1% under the target
//! is left exactly as the method made it. Every change is reported with
//! its reason.
//!
//! Pure arithmetic on the table's latency curves, no tensors, so it is
//! tested exactly, on the real reference tables.

use std::collections::HashSet;
use std::fmt;

use crate::elastic::{self, ElasticBlock};
use crate::latency::{Choices, LatencyModel, Widths};

/// The band a landed network lies in: at or under the target, and no more
/// than this fraction under it.
pub const BAND: f64 = 0.01;

/// Structural changes tried before giving up (each one is a step through
/// at most a few hundred candidate networks, so this is cheap; real tables
/// need a handful).
const MAX_CHANGES: usize = 200;

/// Everything the extension reads: the table's latency curves, the
/// search's preferences (α per layer, β per stage) and the supernet's
/// current widths of every op, the target and the width multiple.
pub struct Problem<'a> {
    pub model: &'a LatencyModel,
    /// Op names, for the report.
    pub op_names: &'a [String],
    /// `[stage][block][op]` log-α.
    pub alphas: &'a [Vec<Vec<f64>>],
    /// `[stage][depth - 1]` β.
    pub betas: &'a [Vec<f64>],
    /// `[stage][block][op]` the supernet's current widths: a block the
    /// extension adds, or an op it switches to, starts from these.
    pub widths: &'a Widths,
    pub target_ms: f64,
    pub multiple: u32,
}

/// Why a structural change was made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reason {
    /// The network before the change cost this much at its narrowest widths,
    /// over the target.
    TooSlow { narrowest_ms: f64 },
    /// The network before the change cost this much at its widest widths,
    /// more than 1% under the target.
    TooFast { widest_ms: f64 },
    /// The target is in the network's range, but the width steps left
    /// (on the multiple) get no closer than this.
    Coarse { best_ms: f64 },
}

/// One thing the extension changed, in the order it changed them.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Stage `stage` (0-based) went from `from` to `to` blocks.
    Depth {
        stage: usize,
        from: usize,
        to: usize,
        reason: Reason,
    },
    /// Block `block` of stage `stage` (both 0-based) changed its op.
    Op {
        stage: usize,
        block: usize,
        from: String,
        to: String,
        /// Whether `to` is the cheaper op (else the dearer).
        cheaper: bool,
        reason: Reason,
    },
    /// Widths moved past where the method's greedy scaling stopped.
    Fill { from_ms: f64, to_ms: f64 },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::TooSlow { narrowest_ms } => write!(
                f,
                "its ops and depths cost {narrowest_ms:.4} ms even at their narrowest widths"
            ),
            Reason::TooFast { widest_ms } => write!(
                f,
                "its ops and depths cost only {widest_ms:.4} ms even at their widest widths"
            ),
            Reason::Coarse { best_ms } => {
                write!(f, "its width steps get no closer than {best_ms:.4} ms")
            }
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Depth {
                stage,
                from,
                to,
                reason,
            } => write!(
                f,
                "stage {} depth {from}->{to} to reach the target ({reason})",
                stage + 1
            ),
            Change::Op {
                stage,
                block,
                from,
                to,
                cheaper,
                reason,
            } => {
                let dir = if *cheaper { "cheaper" } else { "dearer" };
                write!(
                    f,
                    "stage {} block {} op {from}->{to} (the {dir} op α ranks next) to reach the target ({reason})",
                    stage + 1,
                    block + 1
                )
            }
            Change::Fill { from_ms, to_ms } => write!(
                f,
                "widths {from_ms:.4}->{to_ms:.4} ms, channel step by channel step: the method's scaling left the network outside 1% under the target"
            ),
        }
    }
}

/// The derived network and what the extension did to get it.
#[derive(Clone, Debug, PartialEq)]
pub struct Landing {
    pub choices: Choices,
    /// Empty when the method's network already landed (or with the
    /// extension off).
    pub changes: Vec<Change>,
    /// The method's network's table latency (sum of blocks).
    pub method_ms: f64,
    /// The derived network's.
    pub ms: f64,
}

impl Landing {
    /// At or under `target_ms` and within [`BAND`] of it.
    pub fn lands(&self, target_ms: f64) -> bool {
        in_band(self.ms, target_ms)
    }
}

fn in_band(ms: f64, target_ms: f64) -> bool {
    ms <= target_ms && ms >= (1.0 - BAND) * target_ms
}

/// The smallest and largest multiple of `m` in `[min, max]`.
fn bounds(min: u32, max: u32, m: u32) -> (u32, u32) {
    let m = m.max(1);
    (min.div_ceil(m) * m, max / m * m)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Depth,
    Op,
}

/// A structural change the next step may make.
struct Candidate {
    kind: Kind,
    /// How much less α or β favours the new choice than the current one.
    gap: f64,
    /// Tie-break: blocks added or dropped (depth), 0 for ops.
    size: usize,
    choices: Choices,
    change: Change,
    reach: (f64, f64),
}

impl Problem<'_> {
    /// The table latency of `choices` (sum of blocks, plus base).
    pub fn latency(&self, choices: &Choices) -> f64 {
        self.model.discrete_ms(choices)
    }

    /// Latency of `choices`' ops and depths at their narrowest and widest
    /// widths on the multiple.
    pub fn reach(&self, choices: &Choices) -> (f64, f64) {
        let (mut lo, mut hi) = (self.model.base_ms, self.model.base_ms);
        for (s, stage) in choices.iter().enumerate() {
            for (b, &(op, _)) in stage.iter().enumerate() {
                let c = self.model.curve(s, b, op);
                let (min, max) = bounds(c.range.min, c.range.max, self.multiple);
                lo += c.ms(min);
                hi += c.ms(max);
            }
        }
        (lo, hi)
    }

    fn feasible(&self, (lo, hi): (f64, f64)) -> bool {
        lo <= self.target_ms && hi >= (1.0 - BAND) * self.target_ms
    }

    /// The method's elasticity scaling of `choices`' widths
    /// ([`elastic::scale`], exactly as the search runs it every epoch).
    pub fn method_scale(&self, choices: &Choices) -> Choices {
        let mut blocks = self.elastic_blocks(choices);
        elastic::scale(
            self.model.base_ms,
            &mut blocks,
            choices.len(),
            self.target_ms,
            self.multiple,
        );
        self.with_widths(choices, &blocks)
    }

    fn elastic_blocks(&self, choices: &Choices) -> Vec<ElasticBlock> {
        let mut blocks = Vec::new();
        for (s, stage) in choices.iter().enumerate() {
            for (b, &(op, mid)) in stage.iter().enumerate() {
                let c = self.model.curve(s, b, op);
                blocks.push(ElasticBlock {
                    stage: s,
                    mid,
                    min: c.range.min,
                    max: c.range.max,
                    ms: c.all().to_vec(),
                });
            }
        }
        blocks
    }

    fn with_widths(&self, choices: &Choices, blocks: &[ElasticBlock]) -> Choices {
        let mut mids = blocks.iter().map(|b| b.mid);
        choices
            .iter()
            .map(|stage| {
                stage
                    .iter()
                    .map(|&(op, _)| (op, mids.next().expect("one block per choice")))
                    .collect()
            })
            .collect()
    }

    /// The derived network: `method` (the argmax network as the method's
    /// scaling left it) unchanged when it lands or when `extend` is off;
    /// otherwise changed as the module documentation says.
    pub fn land(&self, method: &Choices, extend: bool) -> Landing {
        let method_ms = self.latency(method);
        let mut landing = Landing {
            choices: method.clone(),
            changes: Vec::new(),
            method_ms,
            ms: method_ms,
        };
        if !extend || in_band(method_ms, self.target_ms) {
            return landing;
        }
        // Widths alone first: the method's greedy walk may stop short of a
        // target its ops and depths can reach.
        let mut cur = method.clone();
        self.fine_tune(&mut cur);
        if in_band(self.latency(&cur), self.target_ms) {
            landing.changes.push(Change::Fill {
                from_ms: method_ms,
                to_ms: self.latency(&cur),
            });
        } else {
            cur = method.clone();
            let mut visited = HashSet::new();
            visited.insert(structure(&cur));
            for _ in 0..MAX_CHANGES {
                let Some((next, landed)) = self.next_change(&cur, &visited) else {
                    break;
                };
                visited.insert(structure(&next.choices));
                landing.changes.push(next.change);
                cur = next.choices;
                if let Some(landed) = landed {
                    cur = landed;
                    break;
                }
            }
            if !in_band(self.latency(&cur), self.target_ms) {
                cur = self.fit_widths(&cur);
            }
        }
        landing.ms = self.latency(&cur);
        landing.choices = cur;
        landing
    }

    /// The method's scaling of `choices`' widths and, where it stops
    /// outside the band, [`fine_tune`](Self::fine_tune).
    fn fit_widths(&self, choices: &Choices) -> Choices {
        let mut out = self.method_scale(choices);
        if !in_band(self.latency(&out), self.target_ms) {
            self.fine_tune(&mut out);
        }
        out
    }

    /// Moves widths one multiple at a time to the largest latency at or
    /// under the target it finds: [`fill`](Self::fill) up; where that stops
    /// outside the band (only coarse steps left), every block in turn steps
    /// over the target and the others step back under it, keeping the best.
    fn fine_tune(&self, choices: &mut Choices) {
        let t = self.target_ms;
        self.fill(choices);
        if in_band(self.latency(choices), t) || self.latency(choices) > t {
            return;
        }
        let mut best = choices.clone();
        let mut best_ms = self.latency(choices);
        let positions: Vec<(usize, usize)> = choices
            .iter()
            .enumerate()
            .flat_map(|(s, stage)| (0..stage.len()).map(move |b| (s, b)))
            .collect();
        for &(s, b) in &positions {
            let mut trial = choices.clone();
            if !self.step(&mut trial, s, b, 1) {
                continue;
            }
            self.trim(&mut trial, (s, b));
            self.fill(&mut trial);
            let ms = self.latency(&trial);
            if ms <= t && ms > best_ms {
                best = trial;
                best_ms = ms;
                if in_band(ms, t) {
                    break;
                }
            }
        }
        *choices = best;
    }

    /// Moves block `(s, b)` one multiple up (`dir` 1) or down (-1) on the
    /// grid; false where it is at that bound.
    fn step(&self, choices: &mut Choices, s: usize, b: usize, dir: i32) -> bool {
        let m = self.multiple.max(1);
        let (op, mid) = choices[s][b];
        let c = self.model.curve(s, b, op);
        let (lo, hi) = bounds(c.range.min, c.range.max, m);
        let next = if dir > 0 {
            if mid < lo {
                lo
            } else {
                (mid / m + 1) * m
            }
        } else if mid > hi {
            hi
        } else {
            mid.saturating_sub(1) / m * m
        };
        if next < lo || next > hi || next == mid {
            return false;
        }
        choices[s][b].1 = next;
        true
    }

    /// Steps blocks other than `keep` down until the network is at or under
    /// the target: the step that alone gets there and removes least, else
    /// the step that removes most.
    fn trim(&self, choices: &mut Choices, keep: (usize, usize)) {
        let t = self.target_ms;
        loop {
            let lat = self.latency(choices);
            if lat <= t {
                return;
            }
            let mut enough: Option<(f64, Choices)> = None;
            let mut most: Option<(f64, Choices)> = None;
            for s in 0..choices.len() {
                for b in 0..choices[s].len() {
                    let mut trial = choices.clone();
                    if (s, b) == keep || !self.step(&mut trial, s, b, -1) {
                        continue;
                    }
                    let removed = lat - self.latency(&trial);
                    if lat - removed <= t && enough.as_ref().is_none_or(|(r, _)| removed < *r) {
                        enough = Some((removed, trial.clone()));
                    }
                    if most.as_ref().is_none_or(|(r, _)| removed > *r) {
                        most = Some((removed, trial));
                    }
                }
            }
            match (enough, most) {
                (Some((_, c)), _) => *choices = c,
                (None, Some((removed, c))) if removed > 0.0 => *choices = c,
                _ => return,
            }
        }
    }

    /// Raises widths one multiple at a time, each time on the block whose
    /// step adds the most latency that still fits, until no step fits. A
    /// network over the target (a non-monotone curve can leave the greedy
    /// shrink there) first drops to its narrowest widths.
    fn fill(&self, choices: &mut Choices) {
        let m = self.multiple.max(1);
        let t = self.target_ms;
        if self.latency(choices) > t && self.reach(choices).0 <= t {
            for (s, stage) in choices.iter_mut().enumerate() {
                for (b, (op, mid)) in stage.iter_mut().enumerate() {
                    let c = self.model.curve(s, b, *op);
                    *mid = bounds(c.range.min, c.range.max, m).0;
                }
            }
        }
        let mut lat = self.latency(choices);
        if lat > t {
            return;
        }
        loop {
            let mut best: Option<(usize, usize, u32, f64)> = None;
            for s in 0..choices.len() {
                for b in 0..choices[s].len() {
                    let mut trial = choices.clone();
                    if !self.step(&mut trial, s, b, 1) {
                        continue;
                    }
                    let (op, mid) = choices[s][b];
                    let next = trial[s][b].1;
                    let c = self.model.curve(s, b, op);
                    let delta = c.ms(next) - c.ms(mid);
                    if lat + delta <= t && best.is_none_or(|(_, _, _, d)| delta > d) {
                        best = Some((s, b, next, delta));
                    }
                }
            }
            let Some((s, b, next, delta)) = best else {
                return;
            };
            choices[s][b].1 = next;
            lat += delta;
        }
    }

    /// The next structural change from `cur`, with the landed network when
    /// the change lands: depth changes before op changes; among each, the
    /// first in the order α and β prefer that lands, else the first that
    /// gets closer; a step past the target only when nothing else is left.
    fn next_change(
        &self,
        cur: &Choices,
        visited: &HashSet<Vec<Vec<usize>>>,
    ) -> Option<(Candidate, Option<Choices>)> {
        let t = self.target_ms;
        let reach = self.reach(cur);
        let (down, reason) = if reach.0 > t {
            (
                true,
                Reason::TooSlow {
                    narrowest_ms: reach.0,
                },
            )
        } else if reach.1 < (1.0 - BAND) * t {
            (false, Reason::TooFast { widest_ms: reach.1 })
        } else {
            // Reachable in range, but the width steps left skip the band:
            // more latency to work with.
            let best_ms = self.latency(&self.fit_widths(cur));
            (best_ms > t, Reason::Coarse { best_ms })
        };
        let mut cands: Vec<Candidate> = self
            .depth_candidates(cur, down, reason)
            .into_iter()
            .chain(self.op_candidates(cur, down, reason))
            .filter(|c| !visited.contains(&structure(&c.choices)))
            .collect();
        cands.sort_by(|a, b| {
            a.kind
                .cmp(&b.kind)
                .then(a.gap.total_cmp(&b.gap))
                .then(a.size.cmp(&b.size))
        });
        let progresses = |c: &Candidate| {
            if down {
                c.reach.0 < reach.0 && c.reach.0 > t
            } else {
                c.reach.1 > reach.1 && c.reach.1 < (1.0 - BAND) * t
            }
        };
        for kind in [Kind::Depth, Kind::Op] {
            for i in 0..cands.len() {
                if cands[i].kind != kind || !self.feasible(cands[i].reach) {
                    continue;
                }
                let landed = self.fit_widths(&cands[i].choices);
                if in_band(self.latency(&landed), t) {
                    return Some((cands.swap_remove(i), Some(landed)));
                }
            }
            if let Some(i) = cands.iter().position(|c| c.kind == kind && progresses(c)) {
                return Some((cands.swap_remove(i), None));
            }
        }
        // Only steps past the target are left: take the most preferred and
        // come back from the other side.
        (!cands.is_empty()).then(|| (cands.swap_remove(0), None))
    }

    fn depth_candidates(&self, cur: &Choices, down: bool, reason: Reason) -> Vec<Candidate> {
        let mut out = Vec::new();
        for (s, stage) in cur.iter().enumerate() {
            let d = stage.len();
            let max = self.betas[s].len();
            let targets: Vec<usize> = if down {
                (1..d).collect()
            } else {
                (d + 1..=max).collect()
            };
            for to in targets {
                let mut choices = cur.clone();
                if to < d {
                    choices[s].truncate(to);
                } else {
                    for b in d..to {
                        let op = argmax(&self.alphas[s][b]);
                        choices[s].push((op, self.widths[s][b][op]));
                    }
                }
                let reach = self.reach(&choices);
                out.push(Candidate {
                    kind: Kind::Depth,
                    gap: self.betas[s][d - 1] - self.betas[s][to - 1],
                    size: d.abs_diff(to),
                    choices,
                    change: Change::Depth {
                        stage: s,
                        from: d,
                        to,
                        reason,
                    },
                    reach,
                });
            }
        }
        out
    }

    fn op_candidates(&self, cur: &Choices, down: bool, reason: Reason) -> Vec<Candidate> {
        let m = self.multiple;
        let cost = |s: usize, b: usize, op: usize| {
            let c = self.model.curve(s, b, op);
            let (lo, hi) = bounds(c.range.min, c.range.max, m);
            c.ms(if down { lo } else { hi })
        };
        let mut out = Vec::new();
        for (s, stage) in cur.iter().enumerate() {
            for (b, &(op, _)) in stage.iter().enumerate() {
                let alphas = &self.alphas[s][b];
                let mut order: Vec<usize> = (0..alphas.len()).filter(|&k| k != op).collect();
                order.sort_by(|&x, &y| alphas[y].total_cmp(&alphas[x]).then(x.cmp(&y)));
                let here = cost(s, b, op);
                let Some(&next) = order.iter().find(|&&k| {
                    let c = cost(s, b, k);
                    if down {
                        c < here
                    } else {
                        c > here
                    }
                }) else {
                    continue;
                };
                let mut choices = cur.clone();
                choices[s][b] = (next, self.widths[s][b][next]);
                let reach = self.reach(&choices);
                out.push(Candidate {
                    kind: Kind::Op,
                    gap: alphas[op] - alphas[next],
                    size: 0,
                    choices,
                    change: Change::Op {
                        stage: s,
                        block: b,
                        from: self.op_names[op].clone(),
                        to: self.op_names[next].clone(),
                        cheaper: down,
                        reason,
                    },
                    reach,
                });
            }
        }
        out
    }
}

/// Ops of every kept block: what the extension changes (widths aside).
fn structure(choices: &Choices) -> Vec<Vec<usize>> {
    choices
        .iter()
        .map(|s| s.iter().map(|&(op, _)| op).collect())
        .collect()
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (k, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = k;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::initial_widths;
    use space::{Architecture, LatencyTable, SearchSpaceConfig};

    fn reference(name: &str) -> LatencyTable {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tables/reference")
            .join(name);
        LatencyTable::from_path(&path).expect("reference table reads")
    }

    /// The real H100 reference table over the default space.
    struct Fixture {
        space: SearchSpaceConfig,
        model: LatencyModel,
        names: Vec<String>,
        widths: Widths,
    }

    fn h100() -> Fixture {
        on_table("h100-pytorch-2.11-graph.csv")
    }

    fn on_table(name: &str) -> Fixture {
        let space = SearchSpaceConfig::default();
        let table = reference(name);
        let model = LatencyModel::new(&space, &table).unwrap();
        let names = space.ops.iter().map(|o| o.name.clone()).collect();
        let widths = initial_widths(&space);
        Fixture {
            space,
            model,
            names,
            widths,
        }
    }

    /// Deterministic noise in [0, 1) (a 64-bit LCG), for preferences.
    fn noise(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Preferences that make `start` the argmax network: its ops and depths
    /// at 0, the rest at small random negative log-values.
    fn preferences(f: &Fixture, start: &Choices, seed: u64) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>) {
        let mut st = seed;
        let layers = f.space.layers();
        let alphas = layers
            .iter()
            .enumerate()
            .map(|(s, stage)| {
                (0..stage.len())
                    .map(|b| {
                        let chosen = start[s].get(b).map(|&(op, _)| op);
                        (0..f.names.len())
                            .map(|k| {
                                if Some(k) == chosen {
                                    0.0
                                } else {
                                    -0.1 - noise(&mut st)
                                }
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let betas = f
            .space
            .stages
            .iter()
            .enumerate()
            .map(|(s, stage)| {
                (1..=stage.max_depth as usize)
                    .map(|d| {
                        if d == start[s].len() {
                            0.0
                        } else {
                            -0.1 - noise(&mut st)
                        }
                    })
                    .collect()
            })
            .collect();
        (alphas, betas)
    }

    /// Per layer, the op cheapest at its narrowest width and the op dearest
    /// at its widest.
    fn extreme_op(f: &Fixture, s: usize, b: usize, dearest: bool) -> usize {
        let cost = |k: usize| {
            let c = f.model.curve(s, b, k);
            c.ms(if dearest { c.range.max } else { c.range.min })
        };
        let mut best = 0;
        for k in 1..f.names.len() {
            if (dearest && cost(k) > cost(best)) || (!dearest && cost(k) < cost(best)) {
                best = k;
            }
        }
        best
    }

    /// An argmax network: every stage at full depth or depth 1, every op
    /// the dearest or the cheapest, at the method's initial widths.
    fn start(f: &Fixture, full_depth: bool, dearest: bool) -> Choices {
        f.space
            .stages
            .iter()
            .enumerate()
            .map(|(s, stage)| {
                let depth = if full_depth {
                    stage.max_depth as usize
                } else {
                    1
                };
                (0..depth)
                    .map(|b| {
                        let op = extreme_op(f, s, b, dearest);
                        (op, f.widths[s][b][op])
                    })
                    .collect()
            })
            .collect()
    }

    fn problem<'a>(
        f: &'a Fixture,
        alphas: &'a [Vec<Vec<f64>>],
        betas: &'a [Vec<f64>],
        target_ms: f64,
        multiple: u32,
    ) -> Problem<'a> {
        Problem {
            model: &f.model,
            op_names: &f.names,
            alphas,
            betas,
            widths: &f.widths,
            target_ms,
            multiple,
        }
    }

    /// Lands `targets` targets spread over the table's whole range (both
    /// ends included) from four far-off argmax networks at each multiple;
    /// returns how many needed the extension.
    fn sweep(f: &Fixture, multiples: &[u32], targets: u32) -> usize {
        let (min, max) = f.model.bounds();
        // Far too deep and slow, far too shallow and fast, deep but cheap,
        // shallow but dear.
        let starts = [
            start(f, true, true),
            start(f, false, false),
            start(f, true, false),
            start(f, false, true),
        ];
        let mut extended = 0;
        for (i, argmax) in starts.iter().enumerate() {
            let (alphas, betas) = preferences(f, argmax, i as u64 + 1);
            for &multiple in multiples {
                for k in 0..=targets {
                    let target = min + (max - min) * f64::from(k) / f64::from(targets);
                    let p = problem(f, &alphas, &betas, target, multiple);
                    let method = p.method_scale(argmax);
                    let landing = p.land(&method, true);
                    assert!(
                        landing.lands(target),
                        "start {i}, multiple {multiple}: {} ms for target {target} (method {} ms); changes {:#?}",
                        landing.ms,
                        landing.method_ms,
                        landing.changes
                    );
                    assert_eq!(landing.ms, p.latency(&landing.choices));
                    assert_eq!(landing.method_ms, p.latency(&method));
                    Architecture::from_choices(&f.space, &landing.choices).unwrap();
                    assert!(landing
                        .choices
                        .iter()
                        .flatten()
                        .all(|&(_, mid)| mid % multiple == 0));
                    if !landing.changes.is_empty() {
                        extended += 1;
                    }
                }
            }
        }
        extended
    }

    #[test]
    fn every_target_across_the_h100_table_lands_within_one_percent_under_from_far_off_starts() {
        let extended = sweep(&h100(), &[1, 8], 100);
        // The starts are far off: most targets need the extension.
        assert!(extended > 500, "{extended}");
    }

    #[test]
    fn every_target_across_the_official_titan_rtx_table_lands_too() {
        let extended = sweep(&on_table("titanrtx-tfnas-official.csv"), &[1], 100);
        assert!(extended > 250, "{extended}");
    }

    #[test]
    fn the_method_strict_result_is_the_methods_and_a_landed_method_is_left_alone() {
        let f = h100();
        let argmax = start(&f, true, true);
        let (alphas, betas) = preferences(&f, &argmax, 7);
        let (min, max) = f.model.bounds();
        let mut landed_by_method = 0;
        for k in 1..20 {
            let target = min + (max - min) * f64::from(k) / 20.0;
            let p = problem(&f, &alphas, &betas, target, 1);
            let method = p.method_scale(&argmax);
            // Exactly the widths elasticity scaling gives on its own.
            let mut blocks = p.elastic_blocks(&argmax);
            elastic::scale(f.model.base_ms, &mut blocks, 6, target, 1);
            assert_eq!(method, p.with_widths(&argmax, &blocks));
            let strict = p.land(&method, false);
            assert_eq!(strict.choices, method);
            assert!(strict.changes.is_empty());
            assert_eq!(strict.ms, p.latency(&method));
            if in_band(p.latency(&method), target) {
                landed_by_method += 1;
                assert_eq!(p.land(&method, true), strict);
            }
        }
        assert!(landed_by_method > 0);
    }

    #[test]
    fn a_too_slow_network_drops_the_depth_beta_disfavours_least() {
        let f = h100();
        let argmax = start(&f, true, false);
        let (alphas, mut betas) = preferences(&f, &argmax, 3);
        // Every stage strongly prefers its full depth, except stage 5,
        // whose β ranks depth 4, then 2, then 1, then 3.
        for beta in betas.iter_mut() {
            let n = beta.len();
            for (d, v) in beta.iter_mut().enumerate() {
                *v = if d + 1 == n { 0.0 } else { -100.0 };
            }
        }
        betas[4] = vec![-10.0, -5.0, -15.0, 0.0];
        let p = problem(&f, &alphas, &betas, 1.0, 1);
        let (lo, _) = p.reach(&argmax);
        // Just under the narrowest: dropping any one block of stage 5 is
        // enough, so β's preference decides.
        let c = |b: usize| {
            let (op, _) = argmax[4][b];
            let curve = f.model.curve(4, b, op);
            curve.ms(curve.range.min)
        };
        let target = lo - 0.5 * c(3);
        let p = problem(&f, &alphas, &betas, target, 1);
        let method = p.method_scale(&argmax);
        assert!(p.latency(&method) > target, "the method alone misses");
        let landing = p.land(&method, true);
        assert!(landing.lands(target), "{landing:?}");
        assert_eq!(
            landing.changes[0],
            Change::Depth {
                stage: 4,
                from: 4,
                to: 2,
                reason: Reason::TooSlow { narrowest_ms: lo }
            }
        );
        assert_eq!(landing.choices[4].len(), 2);
        let line = landing.changes[0].to_string();
        assert!(
            line.starts_with("stage 5 depth 4->2 to reach the target"),
            "{line}"
        );
    }

    #[test]
    fn at_depth_one_a_too_slow_network_takes_the_cheaper_op_alpha_ranks_next() {
        let f = h100();
        let argmax = start(&f, false, true);
        let (mut alphas, betas) = preferences(&f, &argmax, 5);
        // Block 1 of stage 3: α ranks k5_e6 (dearer? no matter), then
        // k3_e6, then k3_e3; every other block's alternatives far behind.
        for (s, stage) in alphas.iter_mut().enumerate() {
            for (b, a) in stage.iter_mut().enumerate() {
                for (k, v) in a.iter_mut().enumerate() {
                    if argmax[s].get(b).map(|&(op, _)| op) != Some(k) {
                        *v = -100.0;
                    }
                }
            }
        }
        let (k3_e3, k3_e6) = (0, 1);
        let dear = argmax[2][0].0;
        assert!(dear != k3_e6 && dear != k3_e3);
        alphas[2][0][k3_e6] = -1.0;
        alphas[2][0][k3_e3] = -2.0;
        let p = problem(&f, &alphas, &betas, 1.0, 8);
        let (lo, _) = p.reach(&argmax);
        let target = 0.999 * lo;
        let p = problem(&f, &alphas, &betas, target, 8);
        let method = p.method_scale(&argmax);
        let landing = p.land(&method, true);
        assert!(landing.lands(target), "{landing:?}");
        assert_eq!(
            landing.changes[0],
            Change::Op {
                stage: 2,
                block: 0,
                from: f.names[dear].clone(),
                to: "k3_e6".into(),
                cheaper: true,
                reason: Reason::TooSlow { narrowest_ms: lo }
            }
        );
        assert_eq!(landing.changes.len(), 1, "{:?}", landing.changes);
    }

    #[test]
    fn a_too_fast_network_adds_depth_then_reports_it() {
        let f = h100();
        let argmax = start(&f, false, false);
        let (alphas, betas) = preferences(&f, &argmax, 9);
        let (_, max) = f.model.bounds();
        let target = 0.8 * max;
        let p = problem(&f, &alphas, &betas, target, 8);
        let method = p.method_scale(&argmax);
        let (_, widest) = p.reach(&argmax);
        assert!(p.latency(&method) < 0.99 * target);
        let landing = p.land(&method, true);
        assert!(landing.lands(target), "{landing:?}");
        assert!(
            matches!(landing.changes[0], Change::Depth { from: 1, reason: Reason::TooFast { widest_ms }, .. } if widest_ms == widest),
            "{:?}",
            landing.changes
        );
        let deeper: usize = landing.choices.iter().map(Vec::len).sum();
        assert!(deeper > 6);
    }

    #[test]
    fn a_greedy_stop_outside_the_band_is_filled_without_structural_changes() {
        // The method's proportional walk moves many blocks per step and
        // can stop more than 1% under a target that single steps reach.
        let f = h100();
        let argmax = start(&f, true, false);
        let (alphas, betas) = preferences(&f, &argmax, 11);
        let (min, max) = f.model.bounds();
        let mut filled = 0;
        for k in 1..40 {
            let target = min + (max - min) * f64::from(k) / 40.0;
            let p = problem(&f, &alphas, &betas, target, 8);
            let method = p.method_scale(&argmax);
            let landing = p.land(&method, true);
            assert!(landing.lands(target), "{target}: {landing:#?}");
            if let [Change::Fill { from_ms, to_ms }] = landing.changes.as_slice() {
                filled += 1;
                assert_eq!((*from_ms, *to_ms), (landing.method_ms, landing.ms));
                assert!(!in_band(*from_ms, target));
                // Only widths moved.
                assert_eq!(structure(&landing.choices), structure(&argmax));
            }
        }
        assert!(filled > 0);
        eprintln!("{filled} targets needed only the fill");
    }
}
