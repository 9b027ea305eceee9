//! Timing one workload the way the table and `measure` both do: prepare,
//! warm up by time, sample adaptively, read the GPU's state before and after,
//! and re-measure once if it throttled meanwhile.

use std::time::Duration;

use crate::error::{ProfilerError, Result};
use crate::measure::engine::{Engine, Workload};
use crate::measure::monitor::{GpuState, Monitor};
use crate::measure::stop::{sample_until, warm_up, StopReason, StopRule, WallClock};
use crate::stats::summary::Summary;

/// How long to warm up and when to stop sampling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimingRule {
    /// Untimed runs until this much time has passed (at least one run), so
    /// that clocks ramp up and caches and allocators settle (like trtexec's
    /// `--warmUp`, by time rather than a count).
    pub warmup: Duration,
    pub stop: StopRule,
}

impl Default for TimingRule {
    fn default() -> Self {
        TimingRule {
            warmup: Duration::from_millis(50),
            stop: StopRule::default(),
        }
    }
}

impl TimingRule {
    /// A one-line description for the table header.
    pub fn describe(&self) -> String {
        format!(
            "warmup {} ms, stop at 95% CI of median within {}% or {} ms, min {} max {} samples",
            self.warmup.as_millis(),
            self.stop.rel_half_width * 100.0,
            self.stop.cap.as_millis(),
            self.stop.min_samples,
            self.stop.max_samples
        )
    }
}

/// The timing rule as the command line states it (`--warmup-ms`,
/// `--cap-ms`, `--ci-percent`, `--min-samples`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimingFlags {
    /// Untimed warm-up per entry, in milliseconds.
    pub warmup_ms: u64,
    /// Per-entry cap on sampling time, in milliseconds.
    pub cap_ms: u64,
    /// Stop once the 95% CI of the median is within this percentage of it.
    pub ci_percent: f64,
    /// Fewest timed runs per entry.
    pub min_samples: u64,
}

impl TimingFlags {
    /// The defaults of every engine's timing flags, stated once.
    pub const DEFAULT: TimingFlags = TimingFlags {
        warmup_ms: 20,
        cap_ms: 100,
        ci_percent: 0.5,
        min_samples: 10,
    };

    /// The largest warm-up and cap, in ms: an hour, beyond any sensible
    /// entry or network.
    pub const MAX_MS: u64 = 3_600_000;
    /// The most runs `--min-samples` may ask for: the minimum count
    /// overrides the cap, so a typo of a few more digits would time one
    /// entry for hours.
    pub const MAX_MIN_SAMPLES: u64 = 10_000;

    /// The rule; refuses a flag outside its range, in the words every
    /// binary uses.
    pub fn rule(&self) -> Result<TimingRule> {
        let out_of = |flag: &str, range: String, got: String| {
            Err(ProfilerError::Invalid(format!(
                "{flag} must be a number in {range}, got {got}"
            )))
        };
        if !(self.ci_percent > 0.0 && self.ci_percent <= 100.0) {
            return out_of(
                "--ci-percent",
                "(0, 100]".into(),
                self.ci_percent.to_string(),
            );
        }
        if self.warmup_ms > Self::MAX_MS {
            return out_of(
                "--warmup-ms",
                format!("[0, {}]", Self::MAX_MS),
                self.warmup_ms.to_string(),
            );
        }
        if !(1..=Self::MAX_MS).contains(&self.cap_ms) {
            return out_of(
                "--cap-ms",
                format!("[1, {}]", Self::MAX_MS),
                self.cap_ms.to_string(),
            );
        }
        if !(1..=Self::MAX_MIN_SAMPLES).contains(&self.min_samples) {
            let range = format!("[1, {}]", Self::MAX_MIN_SAMPLES);
            return out_of("--min-samples", range, self.min_samples.to_string());
        }
        Ok(TimingRule {
            warmup: Duration::from_millis(self.warmup_ms),
            stop: StopRule {
                rel_half_width: self.ci_percent / 100.0,
                min_samples: self.min_samples.max(1),
                cap: Duration::from_millis(self.cap_ms),
                ..StopRule::default()
            },
        })
    }
}

/// The result of timing one workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Timed {
    pub summary: Summary,
    pub reason: StopReason,
    pub before: GpuState,
    pub after: GpuState,
    /// Why the GPU ran slow around or during the final measurement
    /// ([`GpuState::slowdowns_until`]); empty when it did not.
    pub slowdowns: Vec<String>,
    /// Whether a first measurement was thrown away because it throttled.
    pub remeasured: bool,
}

impl Timed {
    /// Whether the GPU ran slow around or during the final measurement.
    pub fn throttled(&self) -> bool {
        !self.slowdowns.is_empty()
    }
}

/// One sample, refused unless it is a positive finite latency, so that no
/// NaN ever reaches the statistics or the table.
pub(crate) fn checked(engine: &mut dyn Engine, workload: &Workload) -> Result<f64> {
    let ms = engine.run_timed()?;
    if ms.is_finite() && ms > 0.0 {
        Ok(ms)
    } else {
        Err(ProfilerError::BadSample {
            block: workload.to_string(),
            value: ms,
        })
    }
}

fn measure_once(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    workload: &Workload,
    rule: &TimingRule,
) -> Result<Timed> {
    warm_up(rule.warmup, || checked(engine, workload).map(drop))?;
    let before = monitor.read();
    let clock = WallClock::start();
    let (summary, reason) = sample_until(&rule.stop, &clock, || checked(engine, workload))?;
    let after = monitor.read();
    Ok(Timed {
        summary,
        reason,
        slowdowns: before.slowdowns_until(&after),
        before,
        after,
        remeasured: false,
    })
}

/// Prepares and times `workload`; if the GPU throttled, times it once more
/// and keeps the second measurement, flagged if it throttled again.
pub fn time_workload(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    workload: &Workload,
    rule: &TimingRule,
) -> Result<Timed> {
    engine.prepare(workload)?;
    let first = measure_once(engine, monitor, workload, rule)?;
    if !first.throttled() {
        return Ok(first);
    }
    let mut second = measure_once(engine, monitor, workload, rule)?;
    second.remeasured = true;
    Ok(second)
}
