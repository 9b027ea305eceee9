//! Two workloads timed in turns, run by run (A B A B ...), for the ratio
//! of their latencies.
//!
//! Why run by run: a machine's speed wanders over seconds, and two
//! workloads timed in passes of a second each (A's pass, then B's) carry
//! that wandering into their ratio. On the 2-core development VM,
//! TF-NAS-A/32 against TF-NAS-A/8 in fifteen repeats of six seconds each,
//! three processes: by pass (three rounds of one second each) the ratio
//! came out 0.992–1.048 (sd 1.7%); by run in the same repeats 1.016–1.030
//! (sd 0.35%), and it held at 1.024 in a repeat where the machine slowed
//! 20% partway and the ratio of the two medians fell to 0.946
//! (docs/benchmarks/cpu.md, "Paired runs").
//!
//! Each of B's runs is set against the mean of the A runs either side of
//! it (`b_i / ((a_i + a_{i+1}) / 2)`), so a speed that drifts linearly over
//! the three runs cancels exactly, and each workload's run always follows
//! one of the other's (the same cache state for both). The ratios' median
//! and its distribution-free 95% interval are the result; sampling stops
//! under the rule's stop (the interval within its width, or its cap).
//! Neighbouring ratios share an A run, so that interval is somewhat
//! narrower than the truth; and it holds one preparation of the two: on
//! the development VM the ratio moved by up to 2.7% between preparations
//! (0.79% sd) against ±0.3-0.6% within one, which is why callers time
//! several passes, each prepared afresh.
//! Each workload needs its own prepared engine: an [`Engine`] holds one
//! prepared workload at a time, and preparing anew between runs would time
//! the preparation's aftermath.

use crate::error::Result;
use crate::measure::engine::{Engine, Workload};
use crate::measure::stop::{sample_until, warm_up, StopReason, WallClock};
use crate::measure::timing::{checked, TimingRule};
use crate::stats::summary::{summarize, Summary};

/// What [`time_paired`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Paired {
    /// A's runs, raw.
    pub a: Summary,
    /// B's runs, raw.
    pub b: Summary,
    /// B over A, each B run against the A runs either side of it.
    pub ratio: Summary,
    pub reason: StopReason,
}

impl Paired {
    /// The ratio's median and 95% interval as percentages of B against A.
    pub fn describe_ratio(&self) -> String {
        let pct = |r: f64| (r - 1.0) * 100.0;
        format!(
            "{:+.2}% (95% CI {:+.2}..{:+.2}%, {} pairs)",
            pct(self.ratio.median),
            pct(self.ratio.ci_low),
            pct(self.ratio.ci_high),
            self.ratio.samples
        )
    }
}

/// Prepares `wa` on `ea` and `wb` on `eb`, warms both in turns for the
/// rule's warm-up, then times them in turns (A, B, A, B, ..., A) until the
/// ratio's interval meets `rule.stop`.
pub fn time_paired(
    ea: &mut dyn Engine,
    wa: &Workload,
    eb: &mut dyn Engine,
    wb: &Workload,
    rule: &TimingRule,
) -> Result<Paired> {
    ea.prepare(wa)?;
    eb.prepare(wb)?;
    warm_up(rule.warmup, || {
        checked(ea, wa)?;
        checked(eb, wb).map(drop)
    })?;
    let (mut a, mut b) = (vec![checked(ea, wa)?], Vec::new());
    let clock = WallClock::start();
    let (ratio, reason) = sample_until(&rule.stop, &clock, || {
        let before = *a.last().expect("one A run first");
        let this = checked(eb, wb)?;
        let after = checked(ea, wa)?;
        a.push(after);
        b.push(this);
        Ok::<f64, crate::error::ProfilerError>(this / ((before + after) / 2.0))
    })?;
    Ok(Paired {
        a: summarize(&a).expect("checked samples are finite"),
        b: summarize(&b).expect("checked samples are finite"),
        ratio,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::measure::engine::{EngineConfig, EngineInfo};
    use crate::measure::fake::FakeEngine;
    use crate::measure::stop::StopRule;

    /// An engine whose every run takes `ms` times the machine's speed at
    /// that moment; the speed falls by `slope` per run of either engine
    /// sharing `clock`, as a machine slowing down.
    struct Drifting {
        info: EngineInfo,
        config: EngineConfig,
        ms: f64,
        slope: f64,
        clock: Rc<Cell<u64>>,
    }

    impl Engine for Drifting {
        fn info(&self) -> &EngineInfo {
            &self.info
        }
        fn config(&self) -> &EngineConfig {
            &self.config
        }
        fn prepare(&mut self, _: &Workload) -> Result<()> {
            Ok(())
        }
        fn run_timed(&mut self) -> Result<f64> {
            let t = self.clock.get();
            self.clock.set(t + 1);
            Ok(self.ms * (1.0 + self.slope * t as f64))
        }
    }

    fn drifting(ms: f64, slope: f64, clock: &Rc<Cell<u64>>) -> Drifting {
        let fake = FakeEngine::new(EngineConfig::default());
        Drifting {
            info: fake.info.clone(),
            config: fake.config,
            ms,
            slope,
            clock: clock.clone(),
        }
    }

    fn rule(samples: u64) -> TimingRule {
        TimingRule {
            warmup: std::time::Duration::ZERO,
            stop: StopRule {
                min_samples: samples,
                max_samples: samples,
                ..StopRule::default()
            },
        }
    }

    #[test]
    fn a_machine_slowing_steadily_leaves_the_ratio_exact_while_the_medians_drift() {
        let clock = Rc::new(Cell::new(0));
        let (mut a, mut b) = (drifting(10.0, 0.01, &clock), drifting(12.5, 0.01, &clock));
        let w = Workload::Empty { kernels: 1 };
        let p = time_paired(&mut a, &w, &mut b, &w, &rule(40)).unwrap();
        assert_eq!(p.ratio.samples, 40);
        assert_eq!((p.a.samples, p.b.samples), (41, 40));
        for r in [p.ratio.median, p.ratio.ci_low, p.ratio.ci_high] {
            assert!((r - 1.25).abs() < 1e-9, "{p:?}");
        }
        // Timed in turns but over a slowing machine, each side's median
        // moved by a third or more; their ratio alone stayed true.
        assert!(p.a.median > 13.0 && p.b.median > 16.0, "{p:?}");
        assert_eq!(
            p.describe_ratio(),
            "+25.00% (95% CI +25.00..+25.00%, 40 pairs)"
        );
    }

    #[test]
    fn both_workloads_are_prepared_each_on_its_own_engine() {
        let mut a = FakeEngine::new(EngineConfig::default());
        let mut b = FakeEngine::new(EngineConfig::default());
        let arch = space::Architecture::sample_nth(&space::SearchSpaceConfig::default(), 3, 0)
            .unwrap()
            .block_specs()
            .unwrap();
        let wa = Workload::Network {
            name: "a".into(),
            blocks: arch,
        };
        let wb = Workload::Empty { kernels: 4 };
        let p = time_paired(&mut a, &wa, &mut b, &wb, &rule(10)).unwrap();
        assert_eq!((a.networks, a.empties, b.networks, b.empties), (1, 0, 0, 1));
        let truth = FakeEngine::run_latency(&wb) / FakeEngine::run_latency(&wa);
        assert!(
            (p.ratio.median / truth - 1.0).abs() < 2e-3,
            "{truth} against {p:?}"
        );
    }
}
