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
