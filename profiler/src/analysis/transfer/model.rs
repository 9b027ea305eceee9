//! The ratio model: what a block costs on the probe's device relative to
//! the reference, as a function of its curve and its place on the curve.
//!
//! Each curve of the reference (one block shape, the mid width varying)
//! gets a log-ratio `y(t) = prior(t) + r(t)`, with `t` the mid width's
//! place between the curve's ends (0 at its narrowest, 1 at its widest):
//!
//! - `prior` is a line in `t` fitted to the probe's points on *other*
//!   curves: those of the same position in the network (the same
//!   resolution, widths and stride: the other kernels and SE choices), or,
//!   with fewer than two there, those at the same resolution, or all;
//! - `r` interpolates linearly in `t` the curve's own residuals (its probed
//!   points less the prior), constant beyond its outermost probed points.
//!
//! A curve probed at two or more widths is thus priced by interpolating its
//! own ratio (the prior only shapes it between and beyond them); a curve
//! probed once is the prior shifted through that point; an unprobed curve
//! is the prior. Leaving one probed point out changes its own curve's
//! residuals only, because a curve's prior never uses the curve itself.

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
    /// Per curve, the probe's `(t, log ratio)` points sorted by `t`.
    pub observed: Vec<Vec<(f64, f64)>>,
    /// Per curve, its prior and where it came from.
    pub priors: Vec<(Line, PriorLevel)>,
    /// The median log ratio over every probed curve point.
    pub global: f64,
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
    pub fn fit(reference: &Reference, mut observed: Vec<Vec<(f64, f64)>>) -> Option<RatioModel> {
        for points in &mut observed {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let mut all: Vec<f64> = observed.iter().flatten().map(|p| p.1).collect();
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
        Some(RatioModel {
            observed,
            priors,
            global,
        })
    }

    /// The log ratio of curve `c` at `t`.
    pub fn log_ratio(&self, c: usize, t: f64) -> f64 {
        self.log_ratio_without(c, t, None)
    }

    /// The log ratio of curve `c` at `t`, leaving out its probed point
    /// `skip` (an index into `observed[c]`), for cross-validation.
    pub fn log_ratio_without(&self, c: usize, t: f64, skip: Option<usize>) -> f64 {
        let prior = self.priors[c].0;
        let residuals: Vec<(f64, f64)> = self.observed[c]
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, &(pt, y))| (pt, y - prior.at(pt)))
            .collect();
        prior.at(t) + interpolate(&residuals, t)
    }

    /// Leave-one-out: for every probed curve point, the relative error of
    /// its prediction from the rest (predicted / measured − 1).
    pub fn cross_validate(&self) -> Vec<f64> {
        let mut errors = Vec::new();
        for (c, points) in self.observed.iter().enumerate() {
            for (i, &(t, y)) in points.iter().enumerate() {
                errors.push((self.log_ratio_without(c, t, Some(i)) - y).exp() - 1.0);
            }
        }
        errors
    }
}

/// The points of the curves `members` other than `c`.
fn others(
    observed: &[Vec<(f64, f64)>],
    members: impl Iterator<Item = usize>,
    c: usize,
) -> Vec<(f64, f64)> {
    members
        .filter(|&m| m != c)
        .flat_map(|m| observed[m].iter().copied())
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
