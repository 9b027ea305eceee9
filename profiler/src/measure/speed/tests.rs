//! The speed reference on the fake engine, whose speed drifts run by run.
use super::*;
use crate::measure::engine::EngineConfig;
use crate::measure::fake::FakeEngine;

fn network() -> Vec<BlockSpec> {
    let space = space::SearchSpaceConfig::default();
    space::Architecture::sample_nth(&space, 1, 0)
        .unwrap()
        .block_specs()
        .unwrap()
}

#[test]
fn a_machine_that_drifts_is_timed_at_one_speed() {
    let blocks = network();
    let mut engine = FakeEngine::new(EngineConfig::default());
    // Every run a different speed, up to 60% apart.
    engine.speeds = vec![1.0, 1.3, 0.8, 1.1, 0.9];
    let rule = crate::measure::timing::TimingRule::default();
    // Thirty runs: six of the fake's five-speed cycles.
    let thirty = StopRule {
        max_samples: 30,
        ..CALIBRATION
    };
    let reference = calibrate(&mut engine, &blocks, rule.warmup, &thirty)
        .unwrap()
        .fixed;
    let at_1: f64 = blocks
        .iter()
        .filter(|b| is_fixed(b))
        .map(FakeEngine::latency)
        .sum();
    // The median speed of the calibration runs is 1.0.
    assert!((reference.median / at_1 - 1.0).abs() < 1e-9);
    let workload = Workload::Network {
        name: "n".into(),
        blocks: blocks.clone(),
    };
    let t = time_at_reference(
        &mut engine,
        None,
        &workload,
        rule.warmup,
        &rule.stop,
        &Gauge::FixedParts {
            reference_ms: reference.median,
        },
    )
    .unwrap();
    let true_ms: f64 = blocks.iter().map(FakeEngine::latency).sum();
    // Scaled, every run is the network at speed 1: no spread at all.
    assert!((t.scaled.median / true_ms - 1.0).abs() < 1e-9, "{t:?}");
    assert!((t.scaled.p90 - t.scaled.p10).abs() < 1e-9, "{t:?}");
    // The raw times keep the drift.
    assert!(t.raw.p90 / t.raw.p10 > 1.2, "{t:?}");
    // Each block at speed 1 too, in network order.
    assert_eq!(t.blocks.len(), blocks.len());
    for (spec, ms) in blocks.iter().zip(&t.blocks) {
        let want = FakeEngine::latency(spec);
        assert!(
            (ms / want - 1.0).abs() < 1e-9,
            "{spec}: {ms} against {want}"
        );
    }
}

#[test]
fn a_run_without_fixed_parts_cannot_be_scaled() {
    let blocks: Vec<BlockSpec> = network().into_iter().filter(|b| !is_fixed(b)).collect();
    let times = vec![1.0; blocks.len()];
    let err = factor(&blocks, &times, 2.0).unwrap_err().to_string();
    assert!(err.contains("without fixed parts"), "{err}");
}

/// Every block of a network slowed by its own mid channels: 1% per 10 000
/// (the fake's stand-in for a CPU's caches).
fn by_width(blocks: &[BlockSpec]) -> f64 {
    1.0 + 1e-6
        * blocks
            .iter()
            .map(|b| f64::from(b.mid_channels))
            .sum::<f64>()
}

/// Two networks of the space, seed 3: a standard and a network to time.
fn standard_and_timed() -> (Vec<BlockSpec>, Vec<BlockSpec>) {
    let space = space::SearchSpaceConfig::default();
    let net = |i| {
        space::Architecture::sample_nth(&space, 3, i)
            .unwrap()
            .block_specs()
            .unwrap()
    };
    (net(0), net(1))
}

#[test]
fn the_standard_keeps_a_networks_own_context_which_the_fixed_parts_scale_away() {
    let (standard, timed) = standard_and_timed();
    assert!(by_width(&standard) != by_width(&timed));
    let mut engine = FakeEngine::new(EngineConfig::default());
    engine.context = Some(by_width);
    let rule = crate::measure::timing::TimingRule::default();
    let thirty = StopRule {
        max_samples: 30,
        ..CALIBRATION
    };
    // Calibrated at speed 1, timed on a machine 1.25 times slower.
    let c = calibrate(&mut engine, &standard, rule.warmup, &thirty).unwrap();
    let whole = |b: &[BlockSpec]| b.iter().map(FakeEngine::latency).sum::<f64>();
    assert!((c.standard_ms / (whole(&standard) * by_width(&standard)) - 1.0).abs() < 1e-9);
    engine.speeds = vec![1.25];
    let workload = Workload::Network {
        name: "timed".into(),
        blocks: timed.clone(),
    };
    // The standard on an engine of its own, on the same slower machine.
    let mut standard_engine = FakeEngine::new(EngineConfig::default());
    standard_engine.context = Some(by_width);
    standard_engine.speeds = vec![1.25];
    let mut at = |engine: &mut FakeEngine, gauge: &Gauge| {
        let se: Option<&mut dyn Engine> = match gauge {
            Gauge::Standard { .. } => Some(&mut standard_engine),
            Gauge::FixedParts { .. } => None,
        };
        time_at_reference(engine, se, &workload, rule.warmup, &rule.stop, gauge).unwrap()
    };
    let by_standard = at(
        &mut engine,
        &Gauge::Standard {
            reference_ms: c.fixed.median,
            standard_ms: c.standard_ms,
            blocks: standard.clone(),
        },
    );
    // The standard: the machine's 1.25 gone, the network's own context kept.
    let own = whole(&timed) * by_width(&timed);
    assert!(
        (by_standard.scaled.median / own - 1.0).abs() < 1e-9,
        "{by_standard:?}"
    );
    assert!((by_standard.factor - 0.8).abs() < 1e-9);
    let raw_standard = by_standard.standard_ms.unwrap();
    assert!((raw_standard / (c.standard_ms * 1.25) - 1.0).abs() < 1e-9);
    assert!(by_standard
        .standard_note()
        .contains("by its speed standard in turns"));
    assert!(!by_standard.unsteady());
    // The fixed parts: the network's context replaced by the standard's.
    let by_fixed = at(
        &mut engine,
        &Gauge::FixedParts {
            reference_ms: c.fixed.median,
        },
    );
    let theirs = whole(&timed) * by_width(&standard);
    assert!(
        (by_fixed.scaled.median / theirs - 1.0).abs() < 1e-9,
        "{by_fixed:?}"
    );
    assert!(by_fixed.standard_ms.is_none());
}

#[test]
fn the_standard_gauges_only_when_asked_and_only_a_table_that_has_one() {
    let table = |lines: &str| {
        space::LatencyTable::parse(
            &format!(
                "# format: tfnas-latency-table/1\n{lines}key,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\nstem_r224_i3_o32_s2_k3_m0_se0_relu,1,0.1,0.1,0.1,0.1,0.1,5,0\n"
            ),
            "t.csv",
        )
        .unwrap()
    };
    let old = table("# speed_reference_ms: 2.5\n");
    let new = table("# speed_reference_ms: 2.5\n# speed_standard_ms: 13.25\n# speed_standard_network: stem_r224_i3_o32_s2_k3_m0_se0_relu\n");
    let none = table("");
    assert_eq!(
        Gauge::of(&new, false).unwrap(),
        Some(Gauge::FixedParts { reference_ms: 2.5 })
    );
    match Gauge::of(&new, true).unwrap() {
        Some(Gauge::Standard {
            standard_ms,
            blocks,
            ..
        }) => assert_eq!((standard_ms, blocks.len()), (13.25, 1)),
        other => panic!("{other:?}"),
    }
    let err = Gauge::of(&old, true).unwrap_err().to_string();
    assert!(err.contains("t.csv: no 'speed_standard_ms' line"), "{err}");
    assert_eq!(Gauge::of(&none, false).unwrap(), None);
    let err = Gauge::of(&none, true).unwrap_err().to_string();
    assert!(err.contains("no 'speed_reference_ms' line"), "{err}");
}

#[test]
fn a_pass_whose_median_is_known_no_better_than_three_percent_is_unsteady() {
    let with = |runs: &[f64], standard_ms| AtReference {
        scaled: summarize(runs).unwrap(),
        raw: summarize(runs).unwrap(),
        factor: 1.0,
        blocks: Vec::new(),
        standard_ms,
    };
    let steady = with(&[10.0; 12], Some(11.0));
    assert!(!steady.unsteady());
    assert_eq!(
        steady.standard_note(),
        " by its speed standard in turns (11.0000 ms, 12 pairs)"
    );
    // Runs spread 8-12 ms: the median's interval reaches far past 3%.
    let spread: Vec<f64> = (0..12).map(|i| 8.0 + 4.0 * f64::from(i) / 11.0).collect();
    let moved = with(&spread, Some(11.0));
    assert!(moved.unsteady());
    let note = moved.standard_note();
    assert!(
        note.starts_with(" by its speed standard in turns (11.0000 ms, 12 pairs), UNSTEADY: its 95% interval spans ±"),
        "{note}"
    );
    // The fixed parts follow the machine run by run: never unsteady here.
    let fixed_parts = with(&spread, None);
    assert!(!fixed_parts.unsteady() && fixed_parts.standard_note().is_empty());
}

/// The fake on a machine slowing by `slope` per run of either engine
/// sharing `clock` (runs counted by the turn's timed and untimed alike).
struct Slowing {
    fake: FakeEngine,
    slope: f64,
    clock: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Engine for Slowing {
    fn info(&self) -> &crate::measure::engine::EngineInfo {
        self.fake.info()
    }
    fn config(&self) -> &EngineConfig {
        self.fake.config()
    }
    fn prepare(&mut self, workload: &Workload) -> Result<()> {
        self.fake.prepare(workload)
    }
    fn run_timed(&mut self) -> Result<f64> {
        unreachable!("the gauge times blocks")
    }
    fn run_timed_blocks(&mut self) -> Result<Vec<f64>> {
        let t = self.clock.get();
        self.clock.set(t + 1);
        let f = 1.0 + self.slope * t as f64;
        Ok(self
            .fake
            .run_timed_blocks()?
            .iter()
            .map(|b| b * f)
            .collect())
    }
}

#[test]
fn a_machine_slowing_steadily_leaves_the_network_at_the_tables_speed() {
    let (standard, timed) = standard_and_timed();
    let clock = std::rc::Rc::new(std::cell::Cell::new(0));
    let slowing = || Slowing {
        fake: FakeEngine::new(EngineConfig::default()),
        slope: 0.01,
        clock: clock.clone(),
    };
    let (mut engine, mut se) = (slowing(), slowing());
    let whole = |b: &[BlockSpec]| b.iter().map(FakeEngine::latency).sum::<f64>();
    let gauge = Gauge::Standard {
        reference_ms: 1.0,
        standard_ms: whole(&standard),
        blocks: standard,
    };
    let workload = Workload::Network {
        name: "timed".into(),
        blocks: timed.clone(),
    };
    let rule = crate::measure::timing::TimingRule::default();
    let t = time_at_reference(
        &mut engine,
        Some(&mut se),
        &workload,
        rule.warmup,
        &rule.stop,
        &gauge,
    )
    .unwrap();
    // Each run against the standard's either side: the slowing cancels.
    assert!(
        (t.scaled.median / whole(&timed) - 1.0).abs() < 1e-9,
        "{t:?}"
    );
    assert!((t.scaled.p90 / t.scaled.p10 - 1.0).abs() < 1e-9, "{t:?}");
    // Raw, the network ran several times slower than the table's speed
    // by then (the warm-up's 100 ms of runs already slowed the machine).
    assert!(
        t.raw.median > 2.0 * whole(&timed) && t.factor < 0.5,
        "{t:?}"
    );
    // Two runs a turn: every engine ran twice per timed run, and more.
    assert!(clock.get() >= 4 * t.scaled.samples, "{}", clock.get());
    // Without an engine for the standard the gauge is refused.
    let err = time_at_reference(
        &mut engine,
        None,
        &workload,
        rule.warmup,
        &rule.stop,
        &gauge,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("an engine of its own"), "{err}");
}
