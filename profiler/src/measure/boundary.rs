//! The boundary of a timed run: what timing a block alone adds over the
//! same block inside a network.
//!
//! A block timed alone pays a run's start (the graph reaching its first
//! kernel after the start event) and end (its last kernel to the end event);
//! inside a network, between two blocks, it pays only one gap between
//! kernels. So a sum of `n` blocks exceeds the network by `n - 1` times
//! `start + end - gap`. PyTorch's CUDA-graph sums ran +2.0% over TF-NAS-A on
//! the H100 (docs/gpu-facts.md), about 4 us per block, which alone would spend
//! the whole of a 2% error budget.
//!
//! Those three terms cannot be timed one at a time, but their combination
//! can, with the same engine and timing as the entries: a run of `n` empty
//! kernels takes `Tn = start + n·k + (n - 1)·gap + end
//! = (start + end - gap) + n·(k + gap)`, a line in `n` whose intercept is
//! the boundary. It is fitted by least squares through runs of 1, 2, 4, 8
//! and 16 kernels. The table keeps its measured medians and records the
//! boundary in its header; the reader prices each block at its median less
//! the boundary and a network at that sum plus one boundary
//! (`space::LatencyTable::boundary_ms`).

use space::{meta, Metadata};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::error::{ProfilerError, Result};
use crate::measure::engine::{Engine, Workload};
use crate::measure::monitor::{GpuState, Monitor};
use crate::measure::timing::{time_workload, TimingRule};
use crate::stats::summary::{Summary, CONFIDENCE};

/// Empty kernels per probe run: spread out so that the intercept is pinned
/// by more than its nearest point.
pub const KERNELS: [u32; 5] = [1, 2, 4, 8, 16];

/// The probes are microseconds long, near the event timer's resolution, so
/// they get more samples than an entry, and the fit uses their trimmed
/// means (see [`Summary::trimmed_mean`]).
const MIN_SAMPLES: u64 = 400;

/// A measured boundary, with the runs it was fitted to.
#[derive(Clone, Debug, PartialEq)]
pub struct Boundary {
    /// The intercept, `start + end - gap`, at least 0.
    pub ms: f64,
    /// Its 95% confidence interval from the fit's residuals (Student's t),
    /// each end at least 0.
    pub ci_low: f64,
    pub ci_high: f64,
    /// The slope: what each more kernel adds (`k + gap`).
    pub per_kernel_ms: f64,
    /// `(kernels, summary)` of each probe run.
    pub runs: Vec<(u32, Summary)>,
    /// Whether the GPU reported a slowdown during a probe (after a retry).
    pub throttled: bool,
    /// The GPU's state before and after each probe, for the table's clocks.
    pub states: Vec<GpuState>,
}

impl Boundary {
    /// Fits `trimmed_mean = boundary + kernels · per_kernel` by least
    /// squares. A negative intercept (noise, or a GPU whose runs cost
    /// nothing to start) is 0: the table then prices blocks at their
    /// medians, as before.
    pub fn fit(runs: Vec<(u32, Summary)>) -> Result<Self> {
        let k = runs.len();
        let distinct = {
            let mut n: Vec<u32> = runs.iter().map(|r| r.0).collect();
            n.sort_unstable();
            n.dedup();
            n.len()
        };
        if k < 3 || distinct < 2 {
            return Err(ProfilerError::Invalid(format!(
                "the boundary fit needs at least 3 runs of 2 or more kernel counts, not {k}"
            )));
        }
        let points: Vec<(f64, f64)> = runs
            .iter()
            .map(|(n, s)| (f64::from(*n), s.trimmed_mean))
            .collect();
        let kf = k as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / kf;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / kf;
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
        let slope = sxy / sxx;
        let intercept = mean_y - slope * mean_x;
        let ssr: f64 = points
            .iter()
            .map(|p| (p.1 - intercept - slope * p.0).powi(2))
            .sum();
        let dof = kf - 2.0;
        let se = (ssr / dof * (1.0 / kf + mean_x * mean_x / sxx)).sqrt();
        let t = StudentsT::new(0.0, 1.0, dof)
            .map_err(|e| ProfilerError::Invalid(format!("boundary fit: {e}")))?
            .inverse_cdf(0.5 + CONFIDENCE / 2.0);
        Ok(Boundary {
            ms: intercept.max(0.0),
            ci_low: (intercept - t * se).max(0.0),
            ci_high: (intercept + t * se).max(0.0),
            per_kernel_ms: slope,
            runs,
            throttled: false,
            states: Vec::new(),
        })
    }

    /// Times runs of [`KERNELS`] empty kernels with `engine`, warm-up and
    /// throttle handling as for an entry, with more samples, and fits them.
    pub fn measure(
        engine: &mut dyn Engine,
        monitor: &mut dyn Monitor,
        rule: &TimingRule,
    ) -> Result<Self> {
        let mut rule = *rule;
        rule.stop.min_samples = rule.stop.min_samples.max(MIN_SAMPLES);
        rule.stop.max_samples = rule.stop.max_samples.max(MIN_SAMPLES);
        let (mut runs, mut states, mut throttled) = (Vec::new(), Vec::new(), false);
        for kernels in KERNELS {
            let timed = time_workload(engine, monitor, &Workload::Empty { kernels }, &rule)?;
            throttled |= timed.throttled();
            states.extend([timed.before, timed.after]);
            runs.push((kernels, timed.summary));
        }
        let mut b = Self::fit(runs)?;
        b.throttled = throttled;
        b.states = states;
        Ok(b)
    }

    /// The two header lines: the value the reader applies and how it was
    /// measured.
    pub fn set_header(&self, m: &mut Metadata) {
        let runs: Vec<String> = self
            .runs
            .iter()
            .map(|(n, s)| format!("{n}: {:.6}", s.trimmed_mean))
            .collect();
        m.set(meta::BOUNDARY_MS, format!("{:.6}", self.ms)).set(
            meta::BOUNDARY,
            format!(
                "intercept of a least-squares line through runs of empty kernels (trimmed means, ms; {}), 95% CI {:.6}..{:.6} ms, {:.6} ms per kernel{}; subtracted from each block, added once per network",
                runs.join(", "),
                self.ci_low,
                self.ci_high,
                self.per_kernel_ms,
                if self.throttled { ", THROTTLED" } else { "" }
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(trimmed_mean: f64) -> Summary {
        Summary {
            median: trimmed_mean,
            trimmed_mean,
            p10: trimmed_mean,
            p90: trimmed_mean,
            ci_low: trimmed_mean,
            ci_high: trimmed_mean,
            samples: 400,
            ci_exact: true,
        }
    }

    /// Runs of the GPU model in the module doc, plus `noise[i]` on run i.
    fn runs(start_end: f64, k: f64, gap: f64, noise: [f64; 5]) -> Vec<(u32, Summary)> {
        KERNELS
            .iter()
            .zip(noise)
            .map(|(&n, e)| {
                let n_f = f64::from(n);
                (n, summary(start_end + n_f * k + (n_f - 1.0) * gap + e))
            })
            .collect()
    }

    #[test]
    fn the_boundary_is_start_plus_end_less_one_gap() {
        // start + end = 4 us, an empty kernel 1 us, a gap 0.5 us.
        let b = Boundary::fit(runs(0.004, 0.001, 0.0005, [0.0; 5])).unwrap();
        assert!((b.ms - 0.0035).abs() < 1e-12, "{}", b.ms);
        assert!((b.per_kernel_ms - 0.0015).abs() < 1e-12);
        // A perfect line: no residual, no width.
        assert!((b.ci_high - b.ci_low).abs() < 1e-12);
    }

    #[test]
    fn noise_widens_the_interval_around_the_intercept() {
        let noise = [0.0002, -0.0001, 0.0001, -0.0002, 0.0001];
        let b = Boundary::fit(runs(0.004, 0.001, 0.0005, noise)).unwrap();
        assert!(b.ci_low < b.ms && b.ms < b.ci_high, "{b:?}");
        assert!(b.ci_low < 0.0035 && 0.0035 < b.ci_high, "{b:?}");
        // Hand check of the fit: x = 1,2,4,8,16 (mean 6.2, Sxx = 148.8),
        // y = line + noise; the intercept moves by Σ(1/k - x̄(x-x̄)/Sxx)·e.
        let (xs, mean) = ([1.0, 2.0, 4.0, 8.0, 16.0], 6.2);
        let shift: f64 = xs
            .iter()
            .zip(noise)
            .map(|(x, e)| (0.2 - mean * (x - mean) / 148.8) * e)
            .sum();
        assert!(
            (b.ms - (0.0035 + shift)).abs() < 1e-12,
            "{} vs {}",
            b.ms,
            shift
        );
    }

    #[test]
    fn it_never_goes_negative_and_needs_a_line() {
        // Runs that cost nothing to start: 0, not a negative boundary.
        let b = Boundary::fit(runs(0.0, 0.001, 0.0005, [0.0; 5])).unwrap();
        assert_eq!(b.ms, 0.0);
        let one = vec![
            (1, summary(0.004)),
            (1, summary(0.004)),
            (1, summary(0.004)),
        ];
        assert!(Boundary::fit(one).is_err());
        assert!(Boundary::fit(runs(0.004, 0.001, 0.0005, [0.0; 5])[..2].to_vec()).is_err());
    }

    #[test]
    fn the_header_holds_a_value_the_reader_accepts() {
        let b = Boundary::fit(runs(0.004, 0.001, 0.0005, [0.0; 5])).unwrap();
        let mut m = Metadata::new();
        b.set_header(&mut m);
        assert_eq!(m.get(meta::BOUNDARY_MS), Some("0.003500"));
        let how = m.get(meta::BOUNDARY).unwrap();
        assert!(
            how.contains("16: 0.027500") && !how.contains("THROTTLED"),
            "{how}"
        );
    }
}
