//! The ratio model: what a block costs on the probe's device relative to
//! the reference, from its curve and its place on the curve.
//!
//! A curve of the reference is one block shape, the mid width varying; `t`
//! is a width's place between the curve's ends (0 narrowest, 1 widest).
//!
//! - **Between two probed widths** of a curve, the probe's latencies are
//!   interpolated linearly in milliseconds (a block's latency is close to
//!   linear in its mid width), times the reference's own departure from
//!   its interpolation through the same widths, raised to a weight `w`:
//!   `B = interp(B) · (A / interp(A))^w`. With `w = 1` the ratio B/A is
//!   interpolated (the devices share the reference's bends between probed
//!   widths); with `w = 0`, the probe alone. `w` in [0, 1] is fitted by
//!   least squares on the probe's inner points, each predicted from the
//!   others (leave-one-out), so the probe says how much of the reference's
//!   detail its device shares.
//! - **Elsewhere** (beyond a curve's outermost probed widths, or on a curve
//!   probed once or never), the log ratio is `prior(t) + r`: `prior` a line
//!   in `t` fitted to the probe's points on *other* curves (those at the
//!   same position in the network: the other kernels and SE choices; or,
//!   with fewer than two there, those at the same resolution; or all), `r`
//!   the curve's nearest probed residual (0 on an unprobed curve).
//!
//! Leaving one probed point out changes its own curve's prediction only,
//! because a curve's prior never uses the curve itself.

use std::collections::HashMap;

use space::BlockShape;

use super::Reference;

/// A line `a + b·t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    pub a: f64,
    pub b: f64,
}

impl Line {
    fn at(&self, t: f64) -> f64 {
        self.a + self.b * t
    }

    /// Least squares through `points` (`(t, y)`); a constant where the `t`
    /// do not spread or there are fewer than three points.
    fn fit(points: &[(f64, f64)]) -> Option<Line> {
        if points.is_empty() {
            return None;
        }
        let n = points.len() as f64;
        let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
        let my = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mt).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum();
        if points.len() < 3 || sxx < 1e-6 * n {
            return Some(Line { a: my, b: 0.0 });
        }
        let b = sxy / sxx;
        Some(Line { a: my - b * mt, b })
    }
}

/// How the prior of a curve was found (the first level with two points).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorLevel {
    Position,
    Resolution,
    All,
}

/// The fitted model over a reference's curves.
#[derive(Clone, Debug)]
pub struct RatioModel {
    /// Per curve, the probe's `(t, log ratio, ln A)` points sorted by `t`.
    pub observed: Vec<Vec<Obs>>,
    /// How much of the reference's own detail between probed points the
    /// probe's device shares (1: all of it, the ratio interpolated; 0: none,
    /// the probe's latencies interpolated), fitted by leave-one-out.
    pub detail_weight: f64,
    /// Per curve, its prior and where it came from.
    pub priors: Vec<(Line, PriorLevel)>,
    /// The median log ratio over every probed curve point.
    pub global: f64,
}

/// One probed point of a curve: where, the log ratio, and ln A there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Obs {
    pub t: f64,
    pub y: f64,
    pub ln_a: f64,
}

type PositionKey = (u32, u32, u32, u32, space::BlockKind);

fn position(s: &BlockShape) -> PositionKey {
    (
        s.resolution,
        s.in_channels,
        s.out_channels,
        s.stride,
        s.kind,
    )
}

impl RatioModel {
    /// Fits the model to `observed` (per curve of `reference`, the probe's
    /// `(t, log ratio)` points). `None` when no curve has a point.
    pub fn fit(reference: &Reference, mut observed: Vec<Vec<Obs>>) -> Option<RatioModel> {
        for points in &mut observed {
            points.sort_by(|a, b| a.t.total_cmp(&b.t));
        }
        let mut all: Vec<f64> = observed.iter().flatten().map(|p| p.y).collect();
        if all.is_empty() {
            return None;
        }
        all.sort_by(f64::total_cmp);
        let global = crate::stats::quantile(&all, 0.5);
        let mut by_position: HashMap<PositionKey, Vec<usize>> = HashMap::new();
        let mut by_resolution: HashMap<u32, Vec<usize>> = HashMap::new();
        for (c, curve) in reference.curves.iter().enumerate() {
            by_position
                .entry(position(&curve.shape))
                .or_default()
                .push(c);
            by_resolution
                .entry(curve.shape.resolution)
                .or_default()
                .push(c);
        }
        let priors = reference
            .curves
            .iter()
            .enumerate()
            .map(|(c, curve)| {
                let levels = [
                    (PriorLevel::Position, &by_position[&position(&curve.shape)]),
                    (
                        PriorLevel::Resolution,
                        &by_resolution[&curve.shape.resolution],
                    ),
                ];
                for (level, members) in levels {
                    let points = others(&observed, members.iter().copied(), c);
                    if points.len() >= 2 {
                        return (Line::fit(&points).expect("points"), level);
                    }
                }
                let points = others(&observed, 0..observed.len(), c);
                let line = Line::fit(&points).unwrap_or(Line { a: global, b: 0.0 });
                (line, PriorLevel::All)
            })
            .collect();
        let mut model = RatioModel {
            observed,
            priors,
            global,
            detail_weight: 1.0,
        };
        model.detail_weight = model.fit_detail_weight();
        Some(model)
    }

    /// The log ratio of curve `c` at `t`, where the reference has `ln_a`.
    pub fn log_ratio(&self, c: usize, t: f64, ln_a: f64) -> f64 {
        self.log_ratio_without(c, t, ln_a, None, self.detail_weight)
    }

    /// The log ratio of curve `c` at `t` (where the reference has `ln_a`),
    /// leaving out its probed point `skip` (an index into `observed[c]`),
    /// with the reference's detail weighted by `w`.
    ///
    /// Between two probed points: the probe's ln latency interpolated, plus
    /// `w` times the reference's departure from its own interpolation
    /// through the same points (`w = 1` interpolates the ratio). Elsewhere
    /// the prior, shifted by the nearest probed residual.
    pub fn log_ratio_without(
        &self,
        c: usize,
        t: f64,
        ln_a: f64,
        skip: Option<usize>,
        w: f64,
    ) -> f64 {
        let points: Vec<Obs> = self.observed[c]
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, o)| *o)
            .collect();
        if points.len() >= 2 && points[0].t <= t && t <= points[points.len() - 1].t {
            // In milliseconds: a block's latency is close to linear in its
            // mid width, its logarithm is not.
            let b: Vec<(f64, f64)> = points.iter().map(|o| (o.t, (o.ln_a + o.y).exp())).collect();
            let a: Vec<(f64, f64)> = points.iter().map(|o| (o.t, o.ln_a.exp())).collect();
            let detail = ln_a - interpolate(&a, t).ln();
            return interpolate(&b, t).ln() + w * detail - ln_a;
        }
        let prior = self.priors[c].0;
        let residuals: Vec<(f64, f64)> =
            points.iter().map(|o| (o.t, o.y - prior.at(o.t))).collect();
        prior.at(t) + interpolate(&residuals, t)
    }

    /// The detail weight that predicts the probe's inner points best from
    /// their neighbours (least squares, within [0, 1]); 1 without any.
    fn fit_detail_weight(&self) -> f64 {
        let (mut sdd, mut sde) = (0.0, 0.0);
        for (c, points) in self.observed.iter().enumerate() {
            let inner = points.len().saturating_sub(1);
            for (i, &o) in points.iter().enumerate().take(inner).skip(1) {
                // At w = 0 and w = 1, the prediction is linear in w.
                let p0 = self.log_ratio_without(c, o.t, o.ln_a, Some(i), 0.0);
                let p1 = self.log_ratio_without(c, o.t, o.ln_a, Some(i), 1.0);
                let d = p1 - p0;
                sdd += d * d;
                sde += d * (o.y - p0);
            }
        }
        if sdd <= 0.0 {
            return 1.0;
        }
        (sde / sdd).clamp(0.0, 1.0)
    }

    /// Leave-one-out: for every probed curve point, the relative error of
    /// its prediction from the rest (predicted / measured − 1).
    pub fn cross_validate(&self) -> Vec<f64> {
        let mut errors = Vec::new();
        for (c, points) in self.observed.iter().enumerate() {
            for (i, o) in points.iter().enumerate() {
                let p = self.log_ratio_without(c, o.t, o.ln_a, Some(i), self.detail_weight);
                errors.push((p - o.y).exp() - 1.0);
            }
        }
        errors
    }
}

/// The points of the curves `members` other than `c`.
fn others(
    observed: &[Vec<Obs>],
    members: impl Iterator<Item = usize>,
    c: usize,
) -> Vec<(f64, f64)> {
    members
        .filter(|&m| m != c)
        .flat_map(|m| observed[m].iter().map(|o| (o.t, o.y)))
        .collect()
}

/// Linear interpolation through `points` (sorted by `t`), constant beyond
/// the ends; 0 with no points.
pub fn interpolate(points: &[(f64, f64)], t: f64) -> f64 {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return 0.0;
    };
    if t <= first.0 {
        return first.1;
    }
    if t >= last.0 {
        return last.1;
    }
    let i = points.partition_point(|p| p.0 <= t);
    let (lo, hi) = (points[i - 1], points[i]);
    if hi.0 - lo.0 <= 0.0 {
        return lo.1;
    }
    lo.1 + (t - lo.0) / (hi.0 - lo.0) * (hi.1 - lo.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_is_linear_inside_and_flat_outside() {
        let p = [(0.0, 1.0), (0.5, 2.0), (1.0, 0.0)];
        assert_eq!(interpolate(&p, -1.0), 1.0);
        assert_eq!(interpolate(&p, 0.25), 1.5);
        assert_eq!(interpolate(&p, 0.75), 1.0);
        assert_eq!(interpolate(&p, 2.0), 0.0);
        assert_eq!(interpolate(&[], 0.3), 0.0);
    }

    #[test]
    fn lines_fit_exactly_and_fall_back_to_a_mean() {
        let l = Line::fit(&[(0.0, 1.0), (0.5, 2.0), (1.0, 3.0)]).unwrap();
        assert!((l.a - 1.0).abs() < 1e-12 && (l.b - 2.0).abs() < 1e-12);
        let c = Line::fit(&[(0.0, 1.0), (1.0, 3.0)]).unwrap();
        assert_eq!((c.a, c.b), (2.0, 0.0));
        assert!(Line::fit(&[]).is_none());
    }
}
