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
    let reference = calibrate(&mut engine, &blocks, rule.warmup, &thirty).unwrap();
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
        reference.median,
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
