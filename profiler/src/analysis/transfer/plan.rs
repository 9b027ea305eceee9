//! The probe plan: which keys of the reference to measure on a new device
//! so that the rest is predicted best, within a share of the reference.
//!
//! In order, while the budget lasts (the fixed parts always):
//!
//! 1. every fixed part (a shape at one width: the stems, the head);
//! 2. each curve's widest point, curves by their total cost, dearest first
//!    (an unprobed curve borrows its neighbours' ratio);
//! 3. each curve's narrowest point, in the same order;
//! 4. one point at a time, the one where the reference's curve bends most:
//!    the largest |ln A − the interpolation of ln A| through the points
//!    already chosen on its curve. Where A bends, a ratio interpolated
//!    between chosen points is least sure.

use space::BlockSpec;

use super::{model::interpolate, Reference};

/// The keys to measure, in the reference's row order, and what they cover.
#[derive(Clone, Debug)]
pub struct Plan {
    pub keys: Vec<BlockSpec>,
    pub budget: usize,
    pub fixed: usize,
    pub curves: usize,
    /// Curves with at least one point, and with both ends.
    pub curves_touched: usize,
    pub curves_with_ends: usize,
}

impl Plan {
    pub fn describe(&self, total: usize) -> String {
        format!(
            "probe: {} of {total} entries ({:.1}%): {} fixed parts, {} of {} curves probed, {} with both ends, the rest where the reference's curves bend{}",
            self.keys.len(),
            100.0 * self.keys.len() as f64 / total.max(1) as f64,
            self.fixed,
            self.curves_touched,
            self.curves,
            self.curves_with_ends,
            if self.keys.len() > self.budget {
                format!(" (over the budget of {}: the fixed parts are always measured)", self.budget)
            } else {
                String::new()
            }
        )
    }
}

/// The plan for `fraction` (0 < fraction ≤ 1) of the reference's entries.
pub fn plan(reference: &Reference, fraction: f64) -> Plan {
    let budget = (fraction * reference.len() as f64).ceil() as usize;
    let mut chosen: Vec<Vec<usize>> = vec![Vec::new(); reference.curves.len()];
    let mut count = reference.fixed.len();
    let mut order: Vec<usize> = (0..reference.curves.len()).collect();
    let cost = |c: usize| -> f64 { reference.curves[c].points.iter().map(|p| p.1).sum() };
    order.sort_by(|&x, &y| cost(y).total_cmp(&cost(x)));
    for end in [Last, First] {
        for &c in &order {
            if count >= budget {
                break;
            }
            let n = reference.curves[c].points.len();
            let i = if end == Last { n - 1 } else { 0 };
            if !chosen[c].contains(&i) {
                chosen[c].push(i);
                count += 1;
            }
        }
    }
    let mut best: Vec<Option<(f64, usize)>> = (0..reference.curves.len())
        .map(|c| bend_of(reference, c, &chosen[c]))
        .collect();
    while count < budget {
        let pick = best
            .iter()
            .enumerate()
            .filter_map(|(c, b)| b.map(|(score, i)| (score, c, i)))
            .max_by(|x, y| x.0.total_cmp(&y.0));
        let Some((_, c, i)) = pick else {
            break;
        };
        chosen[c].push(i);
        best[c] = bend_of(reference, c, &chosen[c]);
        count += 1;
    }
    finish(reference, chosen, budget)
}

#[derive(PartialEq, Clone, Copy)]
enum End {
    First,
    Last,
}
use End::{First, Last};

/// Curve `c`'s unchosen point whose ln A lies farthest from the
/// interpolation of ln A through the chosen points, with that distance
/// (infinite on a curve with none); `None` when all are chosen.
fn bend_of(reference: &Reference, c: usize, chosen: &[usize]) -> Option<(f64, usize)> {
    let curve = &reference.curves[c];
    let ln = |i: usize| curve.points[i].1.max(1e-12).ln();
    let mut known: Vec<(f64, f64)> = chosen
        .iter()
        .map(|&i| (f64::from(curve.points[i].0), ln(i)))
        .collect();
    known.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut best: Option<(f64, usize)> = None;
    for i in (0..curve.points.len()).filter(|i| !chosen.contains(i)) {
        let score = if known.is_empty() {
            f64::INFINITY
        } else {
            (ln(i) - interpolate(&known, f64::from(curve.points[i].0))).abs()
        };
        if best.is_none_or(|b| score > b.0) {
            best = Some((score, i));
        }
    }
    best
}

fn finish(reference: &Reference, chosen: Vec<Vec<usize>>, budget: usize) -> Plan {
    let mut keys: std::collections::HashSet<BlockSpec> = reference.fixed.iter().copied().collect();
    let mut with_ends = 0;
    for (c, points) in chosen.iter().enumerate() {
        let curve = &reference.curves[c];
        for &i in points {
            keys.insert(curve.shape.at(curve.points[i].0));
        }
        if points.contains(&0) && points.contains(&(curve.points.len() - 1)) {
            with_ends += 1;
        }
    }
    Plan {
        keys: reference
            .order
            .iter()
            .filter(|s| keys.contains(s))
            .copied()
            .collect(),
        budget,
        fixed: reference.fixed.len(),
        curves: reference.curves.len(),
        curves_touched: chosen.iter().filter(|p| !p.is_empty()).count(),
        curves_with_ends: with_ends,
    }
}
