//! The boundary of a timed run: what timing a block alone adds over the
//! same block inside a network.
//!
//! A block timed alone pays a run's start (the graph reaching its first
//! kernel after the start event) and end (its last kernel to the end event);
//! inside a network, between two blocks, it pays only one gap between
//! kernels. So a sum of `n` blocks exceeds the network by `n - 1` times
//! `start + end - gap`. PyTorch's CUDA-graph sums ran +2.0% over TF-NAS-A on
//! the H100 (gpu-facts.md), about 3.6 us per block, which alone would spend
//! the whole of a 2% error budget.
//!
//! Those three terms cannot be timed one at a time, but their combination
//! can, with the same engine and timing as the entries: a run of one empty
//! kernel takes `T1 = start + k + end`, a run of `n` takes
//! `Tn = start + n·k + (n - 1)·gap + end`, so
//! `(n·T1 - Tn) / (n - 1) = start + end - gap`. The table keeps its measured
//! medians and records this in its header; the reader prices each block at
//! its median less the boundary and a network at that sum plus one boundary
//! (`space::LatencyTable::boundary_ms`).

use space::{meta, Metadata};

use crate::engine::{Engine, Workload};
use crate::error::{ProfilerError, Result};
use crate::monitor::Monitor;
use crate::stats::Summary;
use crate::timing::{time_workload, TimingRule};

/// Empty kernels in the long probe: the boundary's error from `T1` is
/// multiplied by `n / (n - 1)` and from `Tn` by `1 / (n - 1)`, so more
/// kernels only help a little past this.
pub const KERNELS: u32 = 16;

/// The probes are microseconds long, so they get more samples than an entry:
/// an event's resolution is about half a microsecond, and the median of many
/// samples settles between its steps.
const MIN_SAMPLES: u64 = 400;

/// A measured boundary, with the two runs it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Boundary {
    /// `start + end - gap`, at least 0.
    pub ms: f64,
    /// Its 95% interval, from the intervals of the two medians (each bound
    /// taken at the pair of ends that moves it most, so at least 90%).
    pub ci_low: f64,
    pub ci_high: f64,
    pub one: Summary,
    pub many: Summary,
    pub kernels: u32,
}

impl Boundary {
    /// `(n·T1 - Tn) / (n - 1)` from the two runs' medians. A negative
    /// result (the probes' noise, or a GPU whose runs cost nothing to start)
    /// is 0: the table then prices blocks at their medians, as before.
    pub fn from_runs(one: Summary, many: Summary, kernels: u32) -> Result<Self> {
        if kernels < 2 {
            return Err(ProfilerError::Invalid(format!(
                "the boundary probe needs at least 2 kernels, not {kernels}"
            )));
        }
        let n = f64::from(kernels);
        let at = |t1: f64, tn: f64| ((n * t1 - tn) / (n - 1.0)).max(0.0);
        Ok(Boundary {
            ms: at(one.median, many.median),
            ci_low: at(one.ci_low, many.ci_high),
            ci_high: at(one.ci_high, many.ci_low),
            one,
            many,
            kernels,
        })
    }

    /// Times one and [`KERNELS`] empty kernels with `engine`, warm-up and
    /// throttle handling as for an entry, with more samples.
    pub fn measure(
        engine: &mut dyn Engine,
        monitor: &mut dyn Monitor,
        rule: &TimingRule,
    ) -> Result<Self> {
        let mut rule = *rule;
        rule.stop.min_samples = rule.stop.min_samples.max(MIN_SAMPLES);
        rule.stop.max_samples = rule.stop.max_samples.max(MIN_SAMPLES);
        let mut time = |kernels| {
            time_workload(engine, monitor, &Workload::Empty { kernels }, &rule).map(|t| t.summary)
        };
        let one = time(1)?;
        let many = time(KERNELS)?;
        Self::from_runs(one, many, KERNELS)
    }

    /// The two header lines: the value the reader applies and how it was
    /// measured.
    pub fn set_header(&self, m: &mut Metadata) {
        m.set(meta::BOUNDARY_MS, format!("{:.6}", self.ms)).set(
            meta::BOUNDARY,
            format!(
                "(n*T1 - Tn)/(n - 1) with n = {}: T1 {:.6} ms ({} runs), Tn {:.6} ms ({} runs), 95% CI {:.6}..{:.6} ms; subtracted from each block, added once per network",
                self.kernels,
                self.one.median,
                self.one.samples,
                self.many.median,
                self.many.samples,
                self.ci_low,
                self.ci_high
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(median: f64, half: f64) -> Summary {
        Summary {
            median,
            p10: median - half,
            p90: median + half,
            ci_low: median - half,
            ci_high: median + half,
            samples: 400,
            ci_exact: true,
        }
    }

    #[test]
    fn the_boundary_is_start_plus_end_less_one_gap() {
        // start + end = 4 us, an empty kernel 1 us, a gap 0.5 us.
        let (start_end, k, gap) = (0.004, 0.001, 0.0005);
        let t1 = start_end + k;
        let t16 = start_end + 16.0 * k + 15.0 * gap;
        let b = Boundary::from_runs(summary(t1, 0.0), summary(t16, 0.0), 16).unwrap();
        assert!((b.ms - (start_end - gap)).abs() < 1e-12, "{}", b.ms);
        assert_eq!((b.ci_low, b.ci_high), (b.ms, b.ms));
    }

    #[test]
    fn its_interval_widens_with_the_runs_and_it_never_goes_negative() {
        let b = Boundary::from_runs(summary(0.005, 0.0001), summary(0.0275, 0.0002), 16).unwrap();
        assert!(b.ci_low < b.ms && b.ms < b.ci_high);
        // T1's interval counts 16/15 times, Tn's 1/15.
        let half = (16.0 * 0.0001 + 0.0002) / 15.0;
        assert!((b.ci_high - b.ms - half).abs() < 1e-12);
        // Runs that cost nothing to start: 0, not a negative boundary.
        let b = Boundary::from_runs(summary(0.001, 0.0), summary(0.020, 0.0), 16).unwrap();
        assert_eq!(b.ms, 0.0);
        assert!(Boundary::from_runs(summary(0.001, 0.0), summary(0.001, 0.0), 1).is_err());
    }

    /// On the GPU: the probe runs in the CUDA engine, a run of 16 empty
    /// kernels takes longer than one, and the boundary lies between 0 and a
    /// whole run of one. Skips where there is no CUDA.
    #[test]
    fn gpu_the_boundary_is_measured_and_smaller_than_a_run() {
        if !crate::cuda::device::driver_present() {
            eprintln!("skipped: no CUDA driver on this machine");
            return;
        }
        for launch in [crate::engine::Launch::Graph, crate::engine::Launch::Eager] {
            let config = crate::engine::EngineConfig {
                launch,
                ..Default::default()
            };
            let mut engine = match crate::cuda::CudaEngine::open(0, config) {
                Ok(e) => e,
                Err(e) => panic!("device 0 does not open: {e}"),
            };
            let b = Boundary::measure(
                &mut engine,
                &mut crate::monitor::Unmonitored {
                    why: "not needed".into(),
                },
                &TimingRule::default(),
            )
            .unwrap();
            eprintln!(
                "{launch}: boundary {:.6} ms (95% CI {:.6}..{:.6}), T1 {:.6} ms, T16 {:.6} ms",
                b.ms, b.ci_low, b.ci_high, b.one.median, b.many.median
            );
            assert!(b.many.median > b.one.median, "{b:?}");
            assert!(b.ms < b.one.median, "{b:?}");
        }
    }

    #[test]
    fn the_header_holds_a_value_the_reader_accepts() {
        let b = Boundary::from_runs(summary(0.005, 0.0001), summary(0.0275, 0.0002), 16).unwrap();
        let mut m = Metadata::new();
        b.set_header(&mut m);
        assert_eq!(m.get(meta::BOUNDARY_MS), Some("0.003500"));
        assert!(m.get(meta::BOUNDARY).unwrap().contains("n = 16"));
    }
}
