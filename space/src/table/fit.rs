//! How a table prices the widths it measured (header line `curve_fit`).
//!
//! - `none` (a table without the line): a measured width at its own
//!   median.
//! - `affine`: each curve (one op at one position, the mid width varying)
//!   is priced on the straight line through its measured widths, fitted by
//!   least squares on relative residuals. A block's cost is affine in its
//!   mid width (the expansion and projection convolutions, the depthwise
//!   convolution and SE all scale with it), while one entry timed inside
//!   networks on a CPU strays 1-2% from build to build. On the 2-core
//!   development VM (AVX-512), a width-step-8 table's 16-aligned widths
//!   depart from their curve's line by 1.34% (RMS) with no pattern along
//!   the curve (mean residual -0.08..+0.12% in each fifth), as much as the
//!   entries' own noise; priced from the line through the width-step-32
//!   entries, the other widths came out 0.85% off (median) against 1.05%
//!   from the entries themselves, and two builds agreed on TF-NAS-A's price
//!   twice as closely (docs/benchmarks/cpu.md).
//!
//! Under the `align N` width model only the aligned widths are fitted (an
//! unaligned one pays its layer's surcharge over the line instead); a curve
//! with fewer than [`CurveFit::MIN_POINTS`] of them keeps its entries.
//!
//! A line is only as good as the curve is straight, and that is the
//! device's, not the format's: the official TF-NAS Xeon 6130 table's curves
//! bend where a layer leaves a cache (5% median residual from their lines
//! at width step 32), the H100 reference's depart by about 1% where its
//! entries are known to 0.05%. So `affine` prices by the lines only where
//! the table's own entries allow it: each fitted curve's residuals over its
//! entries' standard errors (from their 95% intervals) give a reduced χ²,
//! and the lines price the table when the median of those over its curves
//! is at most [`CurveFit::MAX_STRAY`]; otherwise every measured width keeps
//! its entry, and [`CurveCheck`] says why. Fresh CPU tables of the
//! development VM come out at 1.15-2.11 (docs/table-format.md); the
//! H100 reference at about 1,300, the official tables far beyond.

/// The header's `curve_fit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CurveFit {
    /// Every measured width at its own median.
    #[default]
    None,
    /// Measured widths on their curve's least-squares line.
    Affine,
}

impl CurveFit {
    /// The fewest points a line is fitted through: with two it would pass
    /// through both and change nothing.
    pub const MIN_POINTS: usize = 3;

    /// The most a table's curves may stray from their lines, as the median
    /// over curves of their reduced χ² in their entries' noise, for
    /// `affine` to price by the lines: straight curves give about 1; four
    /// leaves room for intervals a little narrower than the noise between
    /// builds, and none for a bend of several entries' noise.
    pub const MAX_STRAY: f64 = 4.0;

    /// Parses a header value; the error says what is allowed.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "none" => Ok(CurveFit::None),
            "affine" => Ok(CurveFit::Affine),
            _ => Err(format!("'{value}' is not a curve fit: `none` or `affine`")),
        }
    }

    /// The header value this fit is written as.
    pub fn describe(&self) -> &'static str {
        match self {
            CurveFit::None => "none",
            CurveFit::Affine => "affine",
        }
    }

    /// `points` (sorted by width) with those `keep` accepts moved onto
    /// their least-squares line, when there are at least
    /// [`MIN_POINTS`](Self::MIN_POINTS) of them; the others as they are.
    pub(super) fn apply(
        &self,
        points: &[(u32, f64)],
        keep: impl Fn(u32) -> bool,
    ) -> Vec<(u32, f64)> {
        let fitted: Vec<(f64, f64)> = points
            .iter()
            .filter(|&&(m, _)| keep(m))
            .map(|&(m, ms)| (f64::from(m), ms))
            .collect();
        let line = match self {
            CurveFit::Affine if fitted.len() >= Self::MIN_POINTS => relative_line(&fitted),
            _ => None,
        };
        let Some((a, b)) = line else {
            return points.to_vec();
        };
        points
            .iter()
            .map(|&(m, ms)| {
                if keep(m) {
                    (m, a + b * f64::from(m))
                } else {
                    (m, ms)
                }
            })
            .collect()
    }
}

/// How far a table's curves stray from their lines, in their entries'
/// noise, and whether `affine` therefore prices by the lines.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurveCheck {
    /// Curves with at least [`CurveFit::MIN_POINTS`] fitted widths.
    pub curves: usize,
    /// The median over those curves of Σ(residual / standard error)² / (n − 2).
    pub stray: f64,
    /// `stray` ≤ [`CurveFit::MAX_STRAY`]: the lines price the table.
    pub applied: bool,
}

impl CurveCheck {
    /// From each fitted curve's `(width, ms, standard error)` points;
    /// `None` where no curve has enough of them to test a line.
    pub(super) fn of(curves: &[Vec<(f64, f64, f64)>]) -> Option<CurveCheck> {
        let mut strays: Vec<f64> = curves
            .iter()
            .filter(|c| c.len() >= CurveFit::MIN_POINTS)
            .filter_map(|c| reduced_chi_square(c))
            .collect();
        if strays.is_empty() {
            return None;
        }
        strays.sort_by(f64::total_cmp);
        let n = strays.len();
        let stray = if n % 2 == 1 {
            strays[n / 2]
        } else {
            (strays[n / 2 - 1] + strays[n / 2]) / 2.0
        };
        Some(CurveCheck {
            curves: n,
            stray,
            applied: stray <= CurveFit::MAX_STRAY,
        })
    }
}

/// Σ((y − line) / se)² / (n − 2) over `points` (`(x, y, se)`), the line
/// fitted as [`CurveFit::apply`] fits it; `None` where no line is fitted.
/// A point off the line whose entry claims no error at all counts as
/// infinitely far.
fn reduced_chi_square(points: &[(f64, f64, f64)]) -> Option<f64> {
    let xy: Vec<(f64, f64)> = points.iter().map(|&(x, y, _)| (x, y)).collect();
    let (a, b) = relative_line(&xy)?;
    let sum: f64 = points
        .iter()
        .map(|&(x, y, se)| {
            let r = y - (a + b * x);
            if r.abs() <= 1e-12 * y.abs() {
                0.0
            } else if se > 0.0 {
                (r / se).powi(2)
            } else {
                f64::INFINITY
            }
        })
        .sum();
    Some(sum / (points.len() - 2) as f64)
}

/// The line `a + b·x` minimising Σ((y − a − b·x) / y)², whose errors are
/// relative as an entry's noise is; `None` where the points cannot fix one
/// (a single width, a non-positive time) or the line leaves a point at or
/// below zero.
fn relative_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.iter().any(|&(_, y)| y <= 0.0) {
        return None;
    }
    // Weighted least squares with weights 1/y².
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(x, y) in points {
        let w = 1.0 / (y * y);
        sw += w;
        sx += w * x;
        sy += w * y;
        sxx += w * x * x;
        sxy += w * x * y;
    }
    let det = sw * sxx - sx * sx;
    if det.abs() <= f64::EPSILON * sw * sxx {
        return None;
    }
    let b = (sw * sxy - sx * sy) / det;
    let a = (sy - b * sx) / sw;
    points
        .iter()
        .all(|&(x, _)| a + b * x > 0.0)
        .then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_within_their_noise_pass_the_check_and_a_bend_beyond_it_does_not() {
        // A line, each point ±1% off it, its standard error 1%: straight.
        let straight: Vec<(f64, f64, f64)> = (1..=6)
            .map(|i| {
                let y = 1.0 + 0.5 * f64::from(i);
                let off = if i % 2 == 0 { 1.01 } else { 0.99 };
                (f64::from(i), y * off, 0.01 * y)
            })
            .collect();
        let check = CurveCheck::of(&[straight.clone(), straight.clone()]).unwrap();
        assert!(check.applied && check.stray < 2.0, "{check:?}");
        assert_eq!(check.curves, 2);
        // A parabola known to 0.1%: its bend is many times its noise.
        let bent: Vec<(f64, f64, f64)> = (1..=6)
            .map(|i| {
                let y = 1.0 + 0.1 * f64::from(i * i);
                (f64::from(i), y, 0.001 * y)
            })
            .collect();
        let check = CurveCheck::of(&[bent.clone(), bent, straight]).unwrap();
        assert!(
            !check.applied && check.stray > CurveFit::MAX_STRAY,
            "{check:?}"
        );
        // Two points fix a line and test nothing.
        assert_eq!(
            CurveCheck::of(&[vec![(1.0, 1.0, 0.0), (2.0, 3.0, 0.0)]]),
            None
        );
    }

    #[test]
    fn an_exact_entry_off_its_line_is_infinitely_far() {
        let points = [(1.0, 1.0, 0.0), (2.0, 2.5, 0.0), (3.0, 3.0, 0.0)];
        assert_eq!(reduced_chi_square(&points), Some(f64::INFINITY));
        let on_line = [(1.0, 1.0, 0.0), (2.0, 2.0, 0.0), (3.0, 3.0, 0.0)];
        assert_eq!(reduced_chi_square(&on_line), Some(0.0));
    }

    #[test]
    fn curve_fits_parse_and_print_back() {
        for text in ["none", "affine"] {
            assert_eq!(CurveFit::parse(text).unwrap().describe(), text);
        }
        let e = CurveFit::parse("quadratic").unwrap_err();
        assert!(e.contains("`none` or `affine`"), "{e}");
    }

    #[test]
    fn points_on_a_line_stay_where_they_are() {
        let points = [(8, 1.0), (16, 2.0), (24, 3.0), (32, 4.0)];
        let fitted = CurveFit::Affine.apply(&points, |_| true);
        for ((m, y), (n, z)) in points.iter().zip(&fitted) {
            assert_eq!(m, n);
            assert!((y - z).abs() < 1e-12, "{y} {z}");
        }
    }

    #[test]
    fn a_point_off_the_line_is_pulled_onto_the_relative_least_squares_line() {
        // Three points; the middle one 10% high. Weighted by 1/y², the
        // line passes closer to the small times than to the large one.
        let points = [(10, 1.0), (20, 2.2), (30, 3.0)];
        let fitted = CurveFit::Affine.apply(&points, |_| true);
        let (a, b) = relative_line(&[(10.0, 1.0), (20.0, 2.2), (30.0, 3.0)]).unwrap();
        // Normal equations by hand: w = 1, 1/4.84, 1/9.
        let w = [1.0, 1.0 / 4.84, 1.0 / 9.0];
        let (x, y) = ([10.0, 20.0, 30.0], [1.0, 2.2, 3.0]);
        let sw: f64 = w.iter().sum();
        let sx: f64 = (0..3).map(|i| w[i] * x[i]).sum();
        let sy: f64 = (0..3).map(|i| w[i] * y[i]).sum();
        let sxx: f64 = (0..3).map(|i| w[i] * x[i] * x[i]).sum();
        let sxy: f64 = (0..3).map(|i| w[i] * x[i] * y[i]).sum();
        let b0 = (sw * sxy - sx * sy) / (sw * sxx - sx * sx);
        let a0 = (sy - b0 * sx) / sw;
        assert!((a - a0).abs() < 1e-12 && (b - b0).abs() < 1e-12);
        assert!((fitted[1].1 - (a0 + 20.0 * b0)).abs() < 1e-12);
        assert!(fitted[1].1 < 2.2 && fitted[0].1 > 1.0, "{fitted:?}");
    }

    #[test]
    fn only_the_kept_widths_are_fitted_and_too_few_are_left_alone() {
        let points = [(16, 1.0), (20, 9.0), (32, 2.2), (48, 3.0)];
        let fitted = CurveFit::Affine.apply(&points, |m| m % 16 == 0);
        assert_eq!(fitted[1], (20, 9.0));
        assert!((fitted[1].1 - 9.0).abs() < 1e-12 && fitted[2].1 < 2.2);
        let two = [(16, 1.0), (20, 9.0), (32, 2.2)];
        assert_eq!(CurveFit::Affine.apply(&two, |m| m % 16 == 0), two.to_vec());
        assert_eq!(CurveFit::None.apply(&points, |_| true), points.to_vec());
    }
}
