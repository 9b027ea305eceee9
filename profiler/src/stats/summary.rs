//! Summary statistics of one table entry's samples: median, percentiles,
//! the median's confidence interval, and the Wilson interval of a share.
//!
//! Latency samples are skewed (a run can only be slowed down, never sped up,
//! by interference), so the table records the median and percentiles rather
//! than a mean, and the 95% confidence interval of the median from order
//! statistics, which assumes nothing about the shape of the distribution:
//! the number of samples below the true median is Binomial(n, 1/2), so
//! `[x_(j), x_(n+1-j)]` covers it with probability `1 - 2·P(B ≤ j-1)`.

use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

/// Confidence level of the interval around the median.
pub const CONFIDENCE: f64 = 0.95;

/// Summary statistics of a set of samples, in the samples' unit (ms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub samples: u64,
    /// The mean of the samples left when the lowest and highest tenth (by
    /// count, rounded down) are dropped. Not in the table: the boundary
    /// probe uses it because its microsecond runs are near the event
    /// timer's resolution, where a median is one of a few quantised values
    /// and a mean over the jitter is not.
    pub trimmed_mean: f64,
    /// Whether `[ci_low, ci_high]` reaches the requested confidence. Below
    /// six samples no pair of order statistics does, and the interval is
    /// the full range `[min, max]` instead.
    pub ci_exact: bool,
}

impl Summary {
    /// Half the width of the confidence interval relative to the median.
    pub fn relative_half_width(&self) -> f64 {
        if self.median > 0.0 {
            (self.ci_high - self.ci_low) / 2.0 / self.median
        } else {
            f64::INFINITY
        }
    }
}

/// 0-based indices `(lo, hi)` into the sorted samples of the distribution-
/// free confidence interval of the median at level `confidence`, or `None`
/// when `n` samples are too few for any interval to reach it.
///
/// `lo` is the largest `j-1` with `P(B ≤ j-1) ≤ (1-confidence)/2` for
/// `B ~ Binomial(n, 1/2)`, and `hi = n-1-lo` by symmetry.
pub fn median_ci_indices(n: usize, confidence: f64) -> Option<(usize, usize)> {
    if n == 0 {
        return None;
    }
    let tail = (1.0 - confidence) / 2.0;
    let binomial = Binomial::new(0.5, n as u64).expect("p = 0.5 and n > 0 are valid");
    // Largest k with cdf(k) <= tail, searched over 0..n/2 (cdf increases).
    if binomial.cdf(0) > tail {
        return None;
    }
    let (mut ok, mut bad) = (0u64, n as u64 / 2 + 1);
    while bad - ok > 1 {
        let mid = (ok + bad) / 2;
        if binomial.cdf(mid) <= tail {
            ok = mid;
        } else {
            bad = mid;
        }
    }
    // The interval is [x_(k+1), x_(n-k)] 1-based, i.e. k..n-1-k 0-based.
    let lo = ok as usize;
    Some((lo, n - 1 - lo))
}

/// The Wilson score interval of a share, `successes` of `n`, at level
/// `confidence`: unlike the normal approximation it stays within 0..=1 and
/// is honest at the extremes, where a validation's shares sit (20 of 20
/// networks within ±3% still allows a true share of 84%). `None` for
/// `n = 0`.
pub fn wilson_interval(successes: usize, n: usize, confidence: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n {
        return None;
    }
    let z = Normal::standard().inverse_cdf(0.5 + confidence / 2.0);
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let z2n = z * z / n;
    let centre = (p + z2n / 2.0) / (1.0 + z2n);
    let half = z / (1.0 + z2n) * (p * (1.0 - p) / n + z2n / (4.0 * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Linear-interpolated percentile of sorted samples (NumPy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let frac = pos - i as f64;
    match sorted.get(i + 1) {
        Some(&next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

/// Summarizes samples; `None` when there are none or one is not finite.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = percentile(&sorted, 0.5);
    let (ci_low, ci_high, ci_exact) = match median_ci_indices(n, CONFIDENCE) {
        Some((lo, hi)) => (sorted[lo], sorted[hi], true),
        None => (sorted[0], sorted[n - 1], false),
    };
    let cut = n / 10;
    let kept = &sorted[cut..n - cut];
    Some(Summary {
        median,
        trimmed_mean: kept.iter().sum::<f64>() / kept.len() as f64,
        p10: percentile(&sorted, 0.1),
        p90: percentile(&sorted, 0.9),
        ci_low,
        ci_high,
        samples: n as u64,
        ci_exact,
    })
}

/// The `q`-quantile of sorted, non-empty `sorted`, interpolating linearly
/// (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    if lo == hi {
        sorted[lo]
    } else {
        sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_intervals_match_hand_values() {
        let close = |a: f64, b: f64| (a - b).abs() < 5e-5;
        // 5 of 10: centre 0.5, half-width 1.96/1.38415·√(0.025 + 0.0096037).
        let (lo, hi) = wilson_interval(5, 10, 0.95).unwrap();
        assert!(close(lo, 0.23659) && close(hi, 0.76341), "{lo} {hi}");
        // All 20: the upper end is 1, the lower 1/(1 + z²/20).
        let (lo, hi) = wilson_interval(20, 20, 0.95).unwrap();
        assert!(close(lo, 0.83887) && close(hi, 1.0), "{lo} {hi}");
        // None of 10: 0 up to z²/n/(1 + z²/n).
        let (lo, hi) = wilson_interval(0, 10, 0.95).unwrap();
        assert!(close(lo, 0.0) && close(hi, 0.27753), "{lo} {hi}");
        assert_eq!(wilson_interval(0, 0, 0.95), None);
        assert_eq!(wilson_interval(3, 2, 0.95), None);
    }

    #[test]
    fn ci_indices_match_the_binomial_tables() {
        // n = 10: P(B ≤ 1) = 11/1024 ≈ 0.0107 ≤ 0.025 < P(B ≤ 2) = 56/1024,
        // so the interval is [x_(2), x_(9)] 1-based, coverage 97.9%.
        assert_eq!(median_ci_indices(10, 0.95), Some((1, 8)));
        // n = 100: P(B ≤ 39) ≈ 0.0176 ≤ 0.025 < P(B ≤ 40) ≈ 0.0284, so
        // [x_(40), x_(61)] 1-based, the textbook interval.
        assert_eq!(median_ci_indices(100, 0.95), Some((39, 60)));
        // n = 6: P(B ≤ 0) = 1/64 ≈ 0.0156, the smallest n with an interval.
        assert_eq!(median_ci_indices(6, 0.95), Some((0, 5)));
        assert_eq!(median_ci_indices(5, 0.95), None);
        assert_eq!(median_ci_indices(0, 0.95), None);
    }

    #[test]
    fn summary_of_known_samples() {
        // 1..=10 shuffled: median 5.5, p10 = 1 + 0.9·1 = 1.9, p90 = 9.1,
        // CI [x_(2), x_(9)] = [2, 9].
        let xs = [7.0, 3.0, 10.0, 1.0, 5.0, 9.0, 2.0, 8.0, 6.0, 4.0];
        let s = summarize(&xs).unwrap();
        assert_eq!(s.median, 5.5);
        assert!((s.p10 - 1.9).abs() < 1e-12, "{}", s.p10);
        assert!((s.p90 - 9.1).abs() < 1e-12, "{}", s.p90);
        assert_eq!((s.ci_low, s.ci_high), (2.0, 9.0));
        assert_eq!(s.samples, 10);
        assert!(s.ci_exact);
        // 1 and 10 dropped: the mean of 2..=9.
        assert_eq!(s.trimmed_mean, 5.5);
        // An outlier moves the median's neighbours, not the trimmed mean's
        // kept values: 1..=9 and 1000 drop 1 and 1000.
        let xs = [1000.0, 3.0, 2.0, 1.0, 5.0, 9.0, 7.0, 8.0, 6.0, 4.0];
        assert_eq!(summarize(&xs).unwrap().trimmed_mean, 5.5);
        // Quantised samples (half on 2, half on 3): the median is one of
        // them or their midpoint, the trimmed mean their average.
        let xs = [2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 2.0, 3.0, 3.0];
        assert_eq!(summarize(&xs).unwrap().median, 3.0);
        assert!((summarize(&xs).unwrap().trimmed_mean - 2.625).abs() < 1e-12);

        // 1..=100: median 50.5, CI [40, 61].
        let xs: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = summarize(&xs).unwrap();
        assert_eq!(s.median, 50.5);
        assert_eq!((s.ci_low, s.ci_high), (40.0, 61.0));
        assert!((s.relative_half_width() - 10.5 / 50.5).abs() < 1e-12);
    }

    #[test]
    fn too_few_samples_give_the_range_and_bad_samples_nothing() {
        let s = summarize(&[2.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.ci_low, s.ci_high), (2.0, 1.0, 3.0));
        assert!(!s.ci_exact);
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[1.0, f64::NAN]).is_none());
    }
}
