//! The stopping rule of one timing: sample until the median's 95% interval
//! is narrow enough, the time cap passes, or the sample bound is reached.

use std::time::{Duration, Instant};

use crate::stats::summary::{summarize, Summary};

/// When to stop timing one entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StopRule {
    /// Stop once the CI half-width is within this fraction of the median.
    pub rel_half_width: f64,
    /// Never stop with fewer samples (the CI needs at least 6).
    pub min_samples: u64,
    /// A hard bound on samples, whatever the time.
    pub max_samples: u64,
    /// Stop sampling after this long, converged or not (warm-up excluded).
    pub cap: Duration,
}

impl Default for StopRule {
    fn default() -> Self {
        StopRule {
            rel_half_width: 0.005,
            min_samples: 10,
            max_samples: 100_000,
            cap: Duration::from_millis(500),
        }
    }
}

/// Why sampling stopped; recorded in the log, not in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Converged,
    TimeCap,
    MaxSamples,
}

/// A source of elapsed time, so that tests can run the time cap without
/// waiting.
pub trait Clock {
    fn elapsed(&self) -> Duration;
}

/// Wall-clock time since creation.
pub struct WallClock(Instant);

impl WallClock {
    pub fn start() -> Self {
        WallClock(Instant::now())
    }
}

impl Clock for WallClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Calls `run` until `warmup` has passed, at least once: the untimed runs
/// before an entry or a network is sampled.
pub fn warm_up<E>(warmup: Duration, mut run: impl FnMut() -> Result<(), E>) -> Result<(), E> {
    let warm = Instant::now();
    loop {
        run()?;
        if warm.elapsed() >= warmup {
            return Ok(());
        }
    }
}

/// Calls `sample` until `rule` says stop. Convergence is checked at the
/// minimum count and then after every 10% more samples, so that sorting
/// stays a small part of the cost however long the run.
pub fn sample_until<E>(
    rule: &StopRule,
    clock: &dyn Clock,
    mut sample: impl FnMut() -> Result<f64, E>,
) -> Result<(Summary, StopReason), E> {
    let min = rule.min_samples.max(1);
    let mut samples: Vec<f64> = Vec::new();
    let mut next_check = min;
    loop {
        samples.push(sample()?);
        let n = samples.len() as u64;
        let reason = if n >= rule.max_samples {
            Some(StopReason::MaxSamples)
        } else if n >= min && clock.elapsed() >= rule.cap {
            Some(StopReason::TimeCap)
        } else if n >= next_check {
            next_check = n + (n / 10).max(1);
            summarize(&samples)
                .filter(|s| s.ci_exact && s.relative_half_width() <= rule.rel_half_width)
                .map(|_| StopReason::Converged)
        } else {
            None
        };
        if let Some(reason) = reason {
            // Finite samples only reach here: a non-finite one makes
            // `summarize` fail, which the caller checks per sample.
            let summary = summarize(&samples).expect("at least one finite sample");
            return Ok((summary, reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A clock that advances by `step` at every reading.
    struct Ticking {
        now: Cell<Duration>,
        step: Duration,
    }

    impl Clock for Ticking {
        fn elapsed(&self) -> Duration {
            let t = self.now.get() + self.step;
            self.now.set(t);
            t
        }
    }

    fn ticking(step_us: u64) -> Ticking {
        Ticking {
            now: Cell::new(Duration::ZERO),
            step: Duration::from_micros(step_us),
        }
    }

    #[test]
    fn a_tight_sequence_stops_early_converged() {
        // ±0.1% around 1 ms: converged at the first check.
        let mut i = 0u32;
        let rule = StopRule::default();
        let (s, why) = sample_until::<()>(&rule, &ticking(1), || {
            i += 1;
            Ok(1.0 + 0.001 * f64::from(i % 3) - 0.001)
        })
        .unwrap();
        assert_eq!(why, StopReason::Converged);
        assert_eq!(s.samples, rule.min_samples);
        assert!(s.relative_half_width() <= 0.005);
    }

    /// A clock that each sample advances by the time it "took".
    struct SampleTime(Cell<Duration>);

    impl Clock for SampleTime {
        fn elapsed(&self) -> Duration {
            self.0.get()
        }
    }

    #[test]
    fn a_noisy_sequence_runs_into_the_time_cap() {
        // Alternating 1 ms and 2 ms: the CI always spans both values, so it
        // never converges; each sample takes 1 ms of a 100 ms cap.
        let clock = SampleTime(Cell::new(Duration::ZERO));
        let mut i = 0u32;
        let rule = StopRule {
            cap: Duration::from_millis(100),
            ..StopRule::default()
        };
        let (s, why) = sample_until::<()>(&rule, &clock, || {
            i += 1;
            clock.0.set(clock.0.get() + Duration::from_millis(1));
            Ok(if i % 2 == 0 { 1.0 } else { 2.0 })
        })
        .unwrap();
        assert_eq!(why, StopReason::TimeCap);
        assert_eq!(s.samples, 100);
        assert_eq!((s.ci_low, s.ci_high), (1.0, 2.0));
        assert_eq!(s.median, 1.5);
    }

    #[test]
    fn the_time_cap_never_cuts_below_the_minimum_count() {
        let clock = SampleTime(Cell::new(Duration::from_secs(1)));
        let rule = StopRule {
            cap: Duration::from_millis(1),
            ..StopRule::default()
        };
        let mut i = 0u32;
        let (s, why) = sample_until::<()>(&rule, &clock, || {
            i += 1;
            Ok(f64::from(i))
        })
        .unwrap();
        assert_eq!((why, s.samples), (StopReason::TimeCap, rule.min_samples));
    }

    #[test]
    fn moderate_noise_converges_after_more_samples() {
        // A deterministic spread of ±5% (21 levels visited in turn): the
        // CI of the median narrows as n grows and meets 0.5% well before
        // the sample bound.
        let mut i = 0u32;
        let rule = StopRule {
            cap: Duration::from_secs(3600),
            ..StopRule::default()
        };
        let (s, why) = sample_until::<()>(&rule, &ticking(1), || {
            i += 1;
            Ok(1.0 + 0.005 * (f64::from((i * 8) % 21) - 10.0))
        })
        .unwrap();
        assert_eq!(why, StopReason::Converged);
        assert!(s.samples > rule.min_samples, "{}", s.samples);
        assert!(s.relative_half_width() <= 0.005);
        assert!((s.median - 1.0).abs() < 0.006);
    }

    #[test]
    fn the_sample_bound_and_errors_stop_sampling() {
        let rule = StopRule {
            max_samples: 7,
            cap: Duration::from_secs(3600),
            ..StopRule::default()
        };
        let mut i = 0u32;
        let (s, why) = sample_until::<()>(&rule, &ticking(1), || {
            i += 1;
            Ok(f64::from(i))
        })
        .unwrap();
        assert_eq!((why, s.samples), (StopReason::MaxSamples, 7));

        let mut calls = 0;
        let err = sample_until(&StopRule::default(), &ticking(1), || {
            calls += 1;
            if calls == 3 {
                Err("device lost")
            } else {
                Ok(1.0)
            }
        });
        assert_eq!(err.unwrap_err(), "device lost");
    }
}
