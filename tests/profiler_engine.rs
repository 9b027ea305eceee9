//! The profiler's library as another engine's crate uses it: a table built,
//! a network measured and a table validated through the public API with the
//! shared fake engine (feature `test-util`), and the layering gate's own
//! test.

use std::path::Path;
use std::time::Duration;

use profiler::measure::fake::{FakeEngine, FakeMonitor};
use profiler::measure::{Boundary, EngineConfig, StopRule, TimingRule};
use profiler::table::{build_table, BuildSettings, LogOnly, Output};
use profiler::validate::network::{sum_of_blocks_alone, table_prediction, time_network};
use profiler::validate::{run_validation, sha256_16, stats, Job, Sampling};
use space::{meta, Architecture, LatencyTable, SearchSpaceConfig};

fn quick() -> TimingRule {
    TimingRule {
        warmup: Duration::ZERO,
        stop: StopRule {
            cap: Duration::from_secs(60),
            ..StopRule::default()
        },
    }
}

/// A table of the whole default space at width step 32, built by the fake.
fn build(path: &Path) -> LatencyTable {
    let settings = BuildSettings {
        space: SearchSpaceConfig::default(),
        width_step: 32,
        timing: quick(),
        command: "profiler_engine test".into(),
        limit: None,
        in_network: None,
        probe: None,
    };
    let mut engine = FakeEngine::new(EngineConfig::default());
    let report = build_table(
        &mut engine,
        &mut FakeMonitor::default(),
        &settings,
        Output::File(path),
        &LogOnly,
    )
    .unwrap();
    assert!(
        report.complete && report.measured == report.planned,
        "{report:?}"
    );
    LatencyTable::from_path(path).unwrap()
}

#[test]
fn a_table_built_with_an_engine_predicts_the_networks_that_engine_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.csv");
    let table = build(&path);
    assert_eq!(table.metadata().get(meta::ENGINE), Some("fake/1"));
    assert!(table.boundary_ms() > 0.0);

    let job = Job::new(
        &table,
        sha256_16(&std::fs::read(&path).unwrap()),
        SearchSpaceConfig::default(),
        EngineConfig::default(),
        Sampling {
            seed: 8,
            samples: 12,
            width_multiple: 1,
        },
        quick(),
        "profiler_engine test".into(),
    )
    .unwrap();
    let rows_path = dir.path().join("rows.csv");
    let mut engine = FakeEngine::new(EngineConfig::default());
    let mut monitor = FakeMonitor::default();
    let rows = run_validation(
        &mut engine,
        None,
        &mut monitor,
        &job,
        Some(&rows_path),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(rows.len(), 12);
    assert_eq!(engine.networks, 12, "each network timed whole once");
    // The fake times a network as its blocks less one boundary per block
    // but one, which is how the table prices it: only the fake's ±0.05%
    // jitter and the interpolation between measured widths remain.
    let s = stats(&rows).unwrap();
    assert!(s.mape_pct < 1.0, "{s:?}");
    let back = profiler::analysis::rows::read(&rows_path).unwrap();
    assert_eq!(back.rows, rows);
}

#[test]
fn a_network_is_measured_whole_and_block_by_block_with_any_engine() {
    let space = SearchSpaceConfig::default();
    let blocks = Architecture::sample_nth(&space, 3, 0)
        .unwrap()
        .block_specs()
        .unwrap();
    let mut engine = FakeEngine::new(EngineConfig::default());
    let mut monitor = FakeMonitor::default();
    let (_, whole) =
        time_network(&mut engine, &mut monitor, "n".into(), &blocks, &quick()).unwrap();
    let mut count = 0;
    let sum = sum_of_blocks_alone(&mut engine, &mut monitor, &blocks, &quick(), &mut |_, _| {
        count += 1
    })
    .unwrap();
    assert_eq!(count, blocks.len());
    let boundary = Boundary::measure(&mut engine, &mut monitor, &quick()).unwrap();
    let (_, predicted) = table_prediction(sum, blocks.len(), boundary.ms);
    assert!((predicted / whole.summary.median - 1.0).abs() < 2e-3);
}

/// scripts/check-layers.sh passes on the sources and, on a copy with each
/// rule broken in turn, fails (its `--self-test`).
#[test]
fn the_layering_gate_holds_and_refuses_each_broken_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/check-layers.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("--self-test")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The profiler's layers (10 cases, reference/ included) and the
    // engines' rules (7, blocks-tch's included).
    assert_eq!(
        text.matches("is refused, as it must be").count(),
        17,
        "{text}"
    );
}
