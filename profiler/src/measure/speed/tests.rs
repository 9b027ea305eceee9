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

#[test]
fn the_standard_keeps_a_networks_own_context_which_the_fixed_parts_scale_away() {
    let space = space::SearchSpaceConfig::default();
    let net = |i| {
        space::Architecture::sample_nth(&space, 3, i)
            .unwrap()
            .block_specs()
            .unwrap()
    };
    let (standard, timed) = (net(0), net(1));
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
    let at = |engine: &mut FakeEngine, gauge: &Gauge| {
        time_at_reference(engine, &workload, rule.warmup, &rule.stop, gauge).unwrap()
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
    let (before, after) = by_standard.standard.unwrap();
    assert!((before / after - 1.0).abs() < 1e-12);
    assert!(by_standard
        .standard_note()
        .contains("by its speed standard"));
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
    assert!(by_fixed.standard.is_none());
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
fn a_standard_that_moved_over_three_percent_around_a_network_names_it_unsteady() {
    let s = summarize(&[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]).unwrap();
    let with = |standard, tries| AtReference {
        scaled: s,
        raw: s,
        factor: 1.0,
        blocks: Vec::new(),
        standard,
        tries,
    };
    let steady = with(Some((10.0, 10.29)), 1);
    assert!(!steady.unsteady());
    assert_eq!(
        steady.standard_note(),
        " by its speed standard, 10.0000 ms before and 10.2900 ms after"
    );
    let moved = with(Some((10.0, 10.5)), 2);
    assert!(moved.unsteady());
    assert_eq!(
        moved.standard_note(),
        " by its speed standard, 10.0000 ms before and 10.5000 ms after, timed 2 times, UNSTEADY: the machine's speed moved +5.0% meanwhile"
    );
    let fixed_parts = with(None, 1);
    assert!(!fixed_parts.unsteady() && fixed_parts.standard_note().is_empty());
}

/// The fake, with the speed standard's every window at the next speed of
/// `windows` (the machine stepping between windows) and the timed network
/// at speed 1.
struct Windows {
    fake: FakeEngine,
    windows: std::collections::VecDeque<f64>,
}

impl Engine for Windows {
    fn info(&self) -> &crate::measure::engine::EngineInfo {
        self.fake.info()
    }
    fn config(&self) -> &EngineConfig {
        self.fake.config()
    }
    fn prepare(&mut self, workload: &Workload) -> Result<()> {
        let standard =
            matches!(workload, Workload::Network { name, .. } if name == "speed standard");
        self.fake.speeds = match standard {
            true => vec![self.windows.pop_front().expect("a window left")],
            false => vec![1.0],
        };
        self.fake.prepare(workload)
    }
    fn run_timed(&mut self) -> Result<f64> {
        self.fake.run_timed()
    }
    fn run_timed_blocks(&mut self) -> Result<Vec<f64>> {
        self.fake.run_timed_blocks()
    }
}

#[test]
fn a_network_timed_again_gets_two_fresh_windows_not_the_stray_one() {
    let blocks = network();
    let standard_ms: f64 = blocks.iter().map(FakeEngine::latency).sum();
    let gauge = Gauge::Standard {
        reference_ms: 1.0,
        standard_ms,
        blocks: blocks.clone(),
    };
    let workload = Workload::Network {
        name: "timed".into(),
        blocks: blocks.clone(),
    };
    let rule = crate::measure::timing::TimingRule::default();
    // The first try's "after" strays 10% slow; the machine is at speed 1
    // otherwise. Reused as the second try's "before", it would leave the
    // pair 10% apart and the factor 4.7% low.
    let mut engine = Windows {
        fake: FakeEngine::new(EngineConfig::default()),
        windows: [1.0, 1.1, 1.0, 1.0].into(),
    };
    let t = time_at_reference(&mut engine, &workload, rule.warmup, &rule.stop, &gauge).unwrap();
    assert_eq!(t.tries, 2);
    assert!(engine.windows.is_empty());
    let (before, after) = t.standard.unwrap();
    assert!((before / standard_ms - 1.0).abs() < 1e-9, "{t:?}");
    assert!((after / standard_ms - 1.0).abs() < 1e-9, "{t:?}");
    assert!(!t.unsteady() && (t.factor - 1.0).abs() < 1e-9, "{t:?}");
}
