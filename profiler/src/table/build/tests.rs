//! The table builder against the fake engine: output, fingerprint, resume
//! after a kill, refusing other settings, throttling and bad samples.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::error::ProfilerError;
use crate::measure::boundary;
use crate::measure::engine::{EngineConfig, L2};
use crate::measure::fake::{hot, FakeEngine, FakeMonitor};
use crate::measure::speed;
use crate::measure::stop::StopRule;
use crate::table::progress::LogOnly;

/// One stage (16 → 24, two layers) and two ops: a plan of a few dozen
/// entries, quick to "time".
fn settings() -> BuildSettings {
    let mut space = SearchSpaceConfig {
        name: "tiny".into(),
        ..SearchSpaceConfig::default()
    };
    space.stages.truncate(1);
    space.ops.truncate(2);
    BuildSettings {
        space,
        width_step: 8,
        timing: TimingRule {
            warmup: Duration::ZERO,
            stop: StopRule {
                cap: Duration::from_secs(60),
                ..StopRule::default()
            },
        },
        command: "profiler --device 0 --out t.csv".into(),
        limit: None,
        in_network: None,
        probe: None,
    }
}

fn plan_len() -> usize {
    let s = settings();
    s.space.table_plan(s.width_step).unwrap().len()
}

fn build_file(
    engine: &mut FakeEngine,
    monitor: &mut FakeMonitor,
    path: &Path,
) -> Result<BuildReport> {
    build_table(engine, monitor, &settings(), Output::File(path), &LogOnly)
}

/// A whole table built by `engine` to a stream: the report and the text.
fn stream_build(engine: &mut FakeEngine) -> (BuildReport, String) {
    stream_build_with(engine, &settings())
}

/// [`stream_build`] under `settings`.
fn stream_build_with(engine: &mut FakeEngine, settings: &BuildSettings) -> (BuildReport, String) {
    let mut out = Vec::new();
    let report = build_table(
        engine,
        &mut FakeMonitor::default(),
        settings,
        Output::Stream(&mut out),
        &LogOnly,
    )
    .unwrap();
    (report, String::from_utf8(out).unwrap())
}

/// A whole table built by a fresh fake engine to a stream, read back.
fn whole_table() -> LatencyTable {
    let (_, text) = stream_build(&mut FakeEngine::new(EngineConfig::default()));
    LatencyTable::parse(&text, "stream").unwrap()
}

fn keys(table: &LatencyTable) -> Vec<String> {
    table.entries().iter().map(|e| e.spec.key()).collect()
}

#[test]
fn an_engine_that_pads_channels_gets_unaligned_probes_and_says_its_width_model() {
    let mut engine = FakeEngine::new(EngineConfig::default());
    engine.info.width_align = Some(8);
    let (report, text) = stream_build(&mut engine);
    let aligned = settings().space.table_plan_aligned(8, Some(8)).unwrap();
    assert!(aligned.len() > plan_len());
    assert_eq!(report.planned, aligned.len());
    let table = LatencyTable::parse(&text, "stream").unwrap();
    assert_eq!(table.metadata().get(meta::WIDTH_MODEL), Some("align 8"));
    assert_eq!(
        table.width_model(),
        space::WidthModel::Align { multiple: 8 }
    );
    let want: Vec<String> = aligned.blocks.iter().map(|b| b.key()).collect();
    assert_eq!(keys(&table), want);
    // An engine without an alignment: the grid alone, priced linearly.
    assert_eq!(whole_table().len(), plan_len());
    assert_eq!(whole_table().width_model(), space::WidthModel::Linear);
    assert_eq!(
        whole_table().metadata().get(meta::WIDTH_MODEL),
        Some("linear")
    );
}

#[test]
fn an_engine_whose_entries_are_noisy_says_its_curve_fit_and_the_table_prices_by_it() {
    let mut engine = FakeEngine::new(EngineConfig::default());
    engine.info.curve_fit = space::CurveFit::Affine;
    let (_, text) = stream_build(&mut engine);
    let table = LatencyTable::parse(&text, "stream").unwrap();
    assert_eq!(table.metadata().get(meta::CURVE_FIT), Some("affine"));
    assert_eq!(table.curve_fit(), space::CurveFit::Affine);
    // An engine without one: every width at its entry.
    assert_eq!(whole_table().metadata().get(meta::CURVE_FIT), Some("none"));
    assert_eq!(whole_table().curve_fit(), space::CurveFit::None);
}

#[test]
fn writes_every_planned_entry_with_the_fingerprint() {
    let mut engine = FakeEngine::new(EngineConfig::default());
    let (report, text) = stream_build(&mut engine);
    let n = plan_len();
    assert!(n > 10, "{n}");
    assert_eq!((report.planned, report.measured, report.skipped), (n, n, 0));

    let table = LatencyTable::parse(&text, "stdout").unwrap();
    let plan = settings().space.table_plan(8).unwrap();
    let want: Vec<String> = plan.blocks.iter().map(|b| b.key()).collect();
    assert_eq!(keys(&table), want, "rows in plan order");
    for e in table.entries() {
        let truth = FakeEngine::latency(&e.spec);
        assert!((e.stats.median_ms - truth).abs() <= truth * 0.0005);
        assert!(e.stats.ci_low_ms <= e.stats.median_ms && e.stats.median_ms <= e.stats.ci_high_ms);
        assert_eq!(e.stats.samples, 10);
        assert!(!e.stats.throttled);
    }

    let md = table.metadata();
    let space = settings().space;
    let expect = [
        (meta::FORMAT, space::table::FORMAT.to_string()),
        (meta::DEVICE_NAME, "Fake GPU 80GB".into()),
        (
            meta::DEVICE_UUID,
            "GPU-00000000-1111-2222-3333-444444444444".into(),
        ),
        (meta::DRIVER, "580.0".into()),
        (meta::CUDA, "13.0".into()),
        (meta::CUDNN, "9.14.0".into()),
        (meta::ENGINE, "fake/1".into()),
        (meta::LAUNCH, "graph".into()),
        (meta::L2, "warm".into()),
        (meta::DTYPE, "fp32".into()),
        (meta::LAYOUT, "nchw".into()),
        (meta::BATCH, "32".into()),
        (meta::WIDTH_STEP, "8".into()),
        (meta::SPACE, "tiny".into()),
        (meta::SPACE_DIGEST, space.digest()),
        (meta::PROFILER_VERSION, env!("CARGO_PKG_VERSION").into()),
        (meta::COMMAND, "profiler --device 0 --out t.csv".into()),
        (
            meta::CLOCKS,
            "sm_mhz 1980..1980, temp_c 45..45, throttled_entries 0".into(),
        ),
        (
            meta::GPU_SETTINGS,
            "graphics_app_mhz 1980, mem_app_mhz 2619, sm_max_mhz 1980, mem_max_mhz 2619, power_limit_w 700, power_default_w 700, mig off, persistence unknown".into(),
        ),
    ];
    for (k, v) in expect {
        assert_eq!(md.get(k), Some(v.as_str()), "header {k}");
    }
    for k in [meta::STARTED, meta::FINISHED] {
        let t = md.get(k).unwrap();
        assert!(
            t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{k}: {t}"
        );
    }
    assert!(md.get(TIMING_KEY).unwrap().contains("0.5%"));
    // The fake's run starts and ends in 4 us and has 0.5 us between
    // kernels: a 3.5 us boundary, within the jitter.
    assert_eq!(engine.empties, boundary::KERNELS.len());
    let boundary = table.boundary_ms();
    assert!((boundary - 0.0035).abs() < 0.0035 * 0.01, "{boundary}");
    assert!(md.get(meta::BOUNDARY).unwrap().contains("least-squares"));
    // The header comes first, `finished` last.
    assert!(text.starts_with("# format: "));
    assert!(text
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with("# finished: "));
}

#[test]
fn resumes_after_a_kill_without_duplicates_or_losses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let n = plan_len();

    // The first run dies while preparing its 6th entry.
    let mut engine = FakeEngine::new(EngineConfig::default());
    engine.fail_after = Some(5);
    let err = build_file(&mut engine, &mut FakeMonitor::default(), &path).unwrap_err();
    assert!(matches!(err, ProfilerError::Cuda { .. }), "{err}");
    let partial = LatencyTable::from_path(&path).unwrap();
    assert_eq!(partial.len(), 5);
    assert!(partial.metadata().get(meta::FINISHED).is_none());

    // The rerun times only the rest.
    let mut engine = FakeEngine::new(EngineConfig::default());
    let report = build_file(&mut engine, &mut FakeMonitor::default(), &path).unwrap();
    assert_eq!((report.skipped, report.measured), (5, n - 5));
    assert_eq!(engine.prepared.len(), n - 5);
    let done: BTreeSet<_> = partial.entries().iter().map(|e| e.spec).collect();
    assert!(engine.prepared.iter().all(|s| !done.contains(s)));

    // Same rows as one uninterrupted run (the reader refuses duplicates).
    let resumed = LatencyTable::from_path(&path).unwrap();
    let whole = whole_table();
    let set = |t: &LatencyTable| keys(t).into_iter().collect::<BTreeSet<_>>();
    assert_eq!(set(&resumed), set(&whole));
    assert_eq!(resumed.len(), n);
    assert!(resumed.metadata().get(meta::FINISHED).is_some());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("# started:").count(), 1);
    assert_eq!(text.matches("# resumed ").count(), 1);
    // The boundary was measured once, by the first run; the rerun keeps it.
    assert_eq!(engine.empties, 0);
    assert_eq!(text.matches("# boundary_ms:").count(), 1);
    assert_eq!(resumed.boundary_ms(), partial.boundary_ms());
}

#[test]
fn the_table_predicts_a_run_of_blocks_as_the_engine_times_it() {
    let table = whole_table();
    let plan = settings().space.table_plan(8).unwrap();
    for n in [1, 2, 7, 20] {
        let blocks: Vec<BlockSpec> = plan.blocks.iter().copied().take(n).collect();
        let truth = FakeEngine::run_latency(&Workload::Network {
            name: "run".into(),
            blocks: blocks.clone(),
        });
        let predicted = table.predict_blocks(&blocks).unwrap().total_ms;
        assert!(
            (predicted - truth).abs() < truth * 0.001,
            "{n} blocks: {predicted} vs {truth}"
        );
        // The plain sum of medians is off by one boundary per extra block.
        let sum: f64 = blocks
            .iter()
            .map(|b| table.entry(b).unwrap().stats.median_ms)
            .sum();
        let excess = (n - 1) as f64 * 0.0035;
        assert!((sum - truth - excess).abs() < truth * 0.001, "{n} blocks");
    }
}

#[test]
fn resumes_after_a_kill_mid_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let n = plan_len();
    build_file(
        &mut FakeEngine::new(EngineConfig::default()),
        &mut FakeMonitor::default(),
        &path,
    )
    .unwrap();
    // Keep the header and 7 rows, then half of the 8th row.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let columns = lines.iter().position(|l| l.starts_with("key,")).unwrap();
    let mut cut: String = lines[..=columns + 7]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    let eighth = lines[columns + 8];
    cut.push_str(&eighth[..eighth.len() / 2]);
    std::fs::write(&path, &cut).unwrap();
    // The reader alone refuses such a file.
    assert!(LatencyTable::from_path(&path).is_err());

    let mut engine = FakeEngine::new(EngineConfig::default());
    let report = build_file(&mut engine, &mut FakeMonitor::default(), &path).unwrap();
    assert_eq!((report.skipped, report.measured), (7, n - 7));
    assert_eq!(engine.prepared[0].key(), eighth.split(',').next().unwrap());
    let table = LatencyTable::from_path(&path).unwrap();
    assert_eq!(table.len(), n);
}

#[test]
fn a_finished_table_reruns_to_nothing_and_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    build_file(
        &mut FakeEngine::new(EngineConfig::default()),
        &mut FakeMonitor::default(),
        &path,
    )
    .unwrap();
    let mut engine = FakeEngine::new(EngineConfig::default());
    let report = build_file(&mut engine, &mut FakeMonitor::default(), &path).unwrap();
    assert_eq!((report.measured, report.skipped), (0, plan_len()));
    assert!(engine.prepared.is_empty());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("# finished:").count(), 1);
    assert_eq!(text.matches("# clocks:").count(), 1);
    LatencyTable::parse(&text, "t").unwrap();
}

#[test]
fn refuses_to_append_under_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let mut engine = FakeEngine::new(EngineConfig::default());
    engine.fail_after = Some(3);
    build_file(&mut engine, &mut FakeMonitor::default(), &path).unwrap_err();
    let before = std::fs::read_to_string(&path).unwrap();

    let mut other = FakeEngine::new(EngineConfig {
        batch: 16,
        l2: L2::Cold,
        ..EngineConfig::default()
    });
    other.info.device_uuid = "GPU-ffffffff-1111-2222-3333-444444444444".into();
    let err = build_file(&mut other, &mut FakeMonitor::default(), &path).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ProfilerError::SettingsDiffer { .. }), "{msg}");
    for part in [
        "batch: file has '32', this run '16'",
        "l2: file has 'warm', this run 'cold'",
        "device_uuid",
        "refusing to append",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
    assert!(!msg.contains("dtype"), "{msg}");
    assert!(other.prepared.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    // A different width step changes the plan: refused too.
    let mut s = settings();
    s.width_step = 16;
    let err = build_table(
        &mut FakeEngine::new(EngineConfig::default()),
        &mut FakeMonitor::default(),
        &s,
        Output::File(&path),
        &LogOnly,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("width_step: file has '8', this run '16'"),
        "{err}"
    );
}

#[test]
fn refuses_to_overwrite_a_file_that_is_not_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.csv");
    std::fs::write(&path, "my,precious\ndata,1\n").unwrap();
    let err = build_file(
        &mut FakeEngine::new(EngineConfig::default()),
        &mut FakeMonitor::default(),
        &path,
    )
    .unwrap_err();
    assert!(matches!(err, ProfilerError::CannotResume { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "my,precious\ndata,1\n"
    );

    let comments = dir.path().join("comments.csv");
    std::fs::write(&comments, "# my notes: keep\n").unwrap();
    let err = build_file(
        &mut FakeEngine::new(EngineConfig::default()),
        &mut FakeMonitor::default(),
        &comments,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a latency table"), "{err}");
}

#[test]
fn a_header_cut_short_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    std::fs::write(
        &path,
        format!("# format: {}\n# device_na", space::table::FORMAT),
    )
    .unwrap();
    let report = build_file(
        &mut FakeEngine::new(EngineConfig::default()),
        &mut FakeMonitor::default(),
        &path,
    )
    .unwrap();
    assert_eq!(report.measured, plan_len());
    assert_eq!(LatencyTable::from_path(&path).unwrap().len(), plan_len());
}

#[test]
fn a_power_violation_between_two_calm_readings_remeasures_the_entry() {
    // Both instants of the first entry's first try are calm, but NVML's
    // power violation counter grew by 5 ms over its 100 ms: a slowdown the
    // instant reasons missed. The second try's counter stands still.
    use crate::measure::monitor::{GpuState, Violation};
    let at = |at_us: u64, total_ns: u64| GpuState {
        violations: vec![Violation {
            policy: "power",
            at_us,
            total_ns,
        }],
        ..crate::measure::fake::calm()
    };
    let probes = 2 * boundary::KERNELS.len();
    let script = std::iter::repeat_n(crate::measure::fake::calm(), probes)
        .chain([
            at(1_000_000, 0),
            at(1_100_000, 5_000_000),
            at(1_200_000, 5_000_000),
            at(1_300_000, 5_000_000),
        ])
        .collect();
    let mut monitor = FakeMonitor {
        script,
        ..FakeMonitor::default()
    };
    let mut out = Vec::new();
    let report = build_table(
        &mut FakeEngine::new(EngineConfig::default()),
        &mut monitor,
        &settings(),
        Output::Stream(&mut out),
        &LogOnly,
    )
    .unwrap();
    assert_eq!((report.remeasured, report.throttled), (1, 0));
}

#[test]
fn throttled_entries_are_remeasured_once_and_flagged_if_still_hot() {
    // Entry 1: hot after its first try, calm on the second: kept unflagged.
    // Entry 2: hot on both tries: flagged. (The boundary probes read first,
    // twice each.)
    let probes = 2 * boundary::KERNELS.len();
    let script = std::iter::repeat_n(crate::measure::fake::calm(), probes)
        .chain([
            crate::measure::fake::calm(),
            hot(),
            crate::measure::fake::calm(),
            crate::measure::fake::calm(),
            hot(),
            hot(),
            hot(),
            crate::measure::fake::calm(),
        ])
        .collect();
    let mut monitor = FakeMonitor {
        script,
        ..FakeMonitor::default()
    };
    let mut engine = FakeEngine::new(EngineConfig::default());
    let mut out = Vec::new();
    let report = build_table(
        &mut engine,
        &mut monitor,
        &settings(),
        Output::Stream(&mut out),
        &LogOnly,
    )
    .unwrap();
    assert_eq!((report.remeasured, report.throttled), (2, 1));
    // Two reads per try: 2 + 2 entries with two tries, the rest one, and
    // the two probes.
    assert_eq!(monitor.reads, 2 * (plan_len() + 2) + probes);
    let table = LatencyTable::parse(std::str::from_utf8(&out).unwrap(), "t").unwrap();
    let flags: Vec<bool> = table.entries().iter().map(|e| e.stats.throttled).collect();
    assert!(!flags[0] && flags[1] && flags[2..].iter().all(|f| !f));
    assert_eq!(
        table.metadata().get(meta::CLOCKS),
        Some("sm_mhz 1410..1980, temp_c 45..87, throttled_entries 1")
    );
}

#[test]
fn a_bad_sample_stops_the_build_before_any_row_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let third = settings().space.table_plan(8).unwrap().blocks[2];
    for bad in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
        let mut engine = FakeEngine::new(EngineConfig::default());
        engine.bad_sample = Some((third, bad));
        let _ = std::fs::remove_file(&path);
        let err = build_file(&mut engine, &mut FakeMonitor::default(), &path).unwrap_err();
        assert!(matches!(err, ProfilerError::BadSample { .. }), "{err}");
        assert!(err.to_string().contains(&third.key()), "{err}");
        let table = LatencyTable::from_path(&path).unwrap();
        assert_eq!(table.len(), 2);
        assert!(table.entry(&third).is_none());
    }
}

#[test]
fn a_limited_run_leaves_the_table_unfinished_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let n = plan_len();
    let limited = BuildSettings {
        limit: Some(4),
        ..settings()
    };
    for round in 1..=2 {
        let report = build_table(
            &mut FakeEngine::new(EngineConfig::default()),
            &mut FakeMonitor::default(),
            &limited,
            Output::File(&path),
            &LogOnly,
        )
        .unwrap();
        assert_eq!((report.measured, report.complete), (4, false));
        let table = LatencyTable::from_path(&path).unwrap();
        assert_eq!(table.len(), 4 * round);
        assert!(table.metadata().get(meta::FINISHED).is_none());
    }
    let report = build_file(
        &mut FakeEngine::new(EngineConfig::default()),
        &mut FakeMonitor::default(),
        &path,
    )
    .unwrap();
    assert_eq!((report.measured, report.complete), (n - 8, true));
    assert!(LatencyTable::from_path(&path)
        .unwrap()
        .metadata()
        .get(meta::FINISHED)
        .is_some());
}

#[test]
fn an_entry_below_the_boundary_stops_the_build_before_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let third = settings().space.table_plan(8).unwrap().blocks[2];
    let mut engine = FakeEngine::new(EngineConfig::default());
    // 1 us: positive and finite, but under the fake's 3.5 us boundary.
    engine.bad_sample = Some((third, 0.001));
    let err = build_file(&mut engine, &mut FakeMonitor::default(), &path).unwrap_err();
    assert!(matches!(err, ProfilerError::BelowBoundary { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&third.key()) && msg.contains("t.csv"), "{msg}");
    let table = LatencyTable::from_path(&path).unwrap();
    assert_eq!(table.len(), 2);
}

#[test]
fn a_table_begun_without_a_boundary_is_resumed_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let mut engine = FakeEngine::new(EngineConfig::default());
    engine.fail_after = Some(4);
    build_file(&mut engine, &mut FakeMonitor::default(), &path).unwrap_err();
    // As an older profiler wrote it: no boundary lines.
    let text = std::fs::read_to_string(&path).unwrap();
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("# boundary"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, old).unwrap();

    let mut engine = FakeEngine::new(EngineConfig::default());
    let report = build_file(&mut engine, &mut FakeMonitor::default(), &path).unwrap();
    assert_eq!((report.skipped, report.measured), (4, plan_len() - 4));
    assert_eq!(
        engine.empties, 0,
        "no probe for a table that has no boundary"
    );
    let table = LatencyTable::from_path(&path).unwrap();
    assert!(table.metadata().get(meta::BOUNDARY_MS).is_none());
    assert_eq!(table.boundary_ms(), 0.0);
}

fn in_network_settings() -> BuildSettings {
    BuildSettings {
        in_network: Some(InNetwork::DEFAULT),
        ..settings()
    }
}

/// A machine whose speed swings by 60% from run to run.
fn drifting_engine() -> FakeEngine {
    let mut engine = FakeEngine::new(EngineConfig::default());
    engine.speeds = vec![1.0, 1.3, 0.8, 1.1, 0.9];
    engine
}

#[test]
fn an_in_network_table_prices_every_entry_at_one_speed_however_the_machine_drifts() {
    let mut engine = drifting_engine();
    let (report, text) = stream_build_with(&mut engine, &in_network_settings());
    assert!(report.complete && report.measured == plan_len());
    let table = LatencyTable::parse(&text, "stream").unwrap();
    assert_eq!(table.len(), plan_len());
    assert_eq!(engine.prepared.len(), 0, "no block was timed alone");
    let md = table.metadata();
    assert_eq!(md.get(meta::BOUNDARY_MS), Some("0"));
    assert!(md.get(IN_NETWORK_KEY).is_some());
    // The reference is the fixed parts at the calibration's median speed (1).
    let fixed: f64 = settings()
        .space
        .fixed_parts()
        .all()
        .iter()
        .map(FakeEngine::latency)
        .sum();
    let reference: f64 = md.get(speed::REFERENCE_KEY).unwrap().parse().unwrap();
    assert!(
        (reference / fixed - 1.0).abs() < 1e-5,
        "{reference} vs {fixed}"
    );
    // The speed standard: the same network's whole time at that speed, and
    // its blocks, which `measure` and `validate` time beside a network.
    let s = settings();
    let plan = s.space.table_plan(s.width_step).unwrap();
    let standard = reference_network(&s.space, &plan).unwrap();
    let whole: f64 = standard.iter().map(FakeEngine::latency).sum();
    match speed::Gauge::of(&table, true).unwrap() {
        Some(speed::Gauge::Standard {
            standard_ms,
            blocks,
            ..
        }) => {
            assert!((standard_ms / whole - 1.0).abs() < 1e-5, "{standard_ms}");
            assert_eq!(blocks, standard);
        }
        other => panic!("{other:?}"),
    }
    let how = InNetwork::DEFAULT;
    for e in table.entries() {
        let want = FakeEngine::latency(&e.spec);
        assert!(
            (e.stats.median_ms / want - 1.0).abs() < 1e-5,
            "{}: {} vs {want}",
            e.spec,
            e.stats.median_ms
        );
        assert!(
            e.stats.samples >= u64::from(how.min_networks * how.runs_per_network),
            "{}: {} samples",
            e.spec,
            e.stats.samples
        );
    }
}

/// The rows of a table's text, by key: median and samples.
fn rows_by_key(text: &str) -> Vec<(String, String, String)> {
    let table = LatencyTable::parse(text, "text").unwrap();
    let mut rows: Vec<_> = table
        .entries()
        .iter()
        .map(|e| {
            let s = &e.stats;
            (e.spec.key(), s.median_ms.to_string(), s.samples.to_string())
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn an_entry_written_early_goes_on_gathering_as_context_and_its_row_is_rewritten_when_the_build_ends(
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let how = InNetwork::DEFAULT;
    let settings = in_network_settings();
    let report = build_table(
        &mut drifting_engine(),
        &mut FakeMonitor::default(),
        &settings,
        Output::File(&path),
        &LogOnly,
    )
    .unwrap();
    assert!(report.complete && report.measured == plan_len());
    let text = std::fs::read_to_string(&path).unwrap();
    let table = LatencyTable::parse(&text, "file").unwrap();
    assert!(table.metadata().get(meta::FINISHED).is_some(), "{text}");
    // The fixed parts are in every network: written after the most
    // networks allowed, they gathered every network's runs by the end.
    let most = u64::from(how.max_networks * how.runs_per_network);
    let stem = settings.space.fixed_parts().stem;
    let stem_samples = table.entry(&stem).unwrap().stats.samples;
    assert!(stem_samples > most, "{stem_samples} samples");
    for e in table.entries() {
        let want = FakeEngine::latency(&e.spec);
        assert!((e.stats.median_ms / want - 1.0).abs() < 1e-5, "{}", e.spec);
    }
    // A stream cannot be rewritten: it gets the same rows, once, at the end.
    let (_, streamed) = stream_build_with(&mut drifting_engine(), &settings);
    assert_eq!(rows_by_key(&streamed), rows_by_key(&text));
    let rows = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(rows(&streamed), rows(&text), "one row per entry in each");
}

#[test]
fn an_in_network_table_resumes_on_its_own_reference_and_never_on_a_file_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let limited = BuildSettings {
        limit: Some(4),
        ..in_network_settings()
    };
    let mut monitor = FakeMonitor::default();
    let report = build_table(
        &mut drifting_engine(),
        &mut monitor,
        &limited,
        Output::File(&path),
        &LogOnly,
    )
    .unwrap();
    assert_eq!((report.measured, report.complete), (4, false));
    let first = LatencyTable::from_path(&path).unwrap();
    let reference = first
        .metadata()
        .get(speed::REFERENCE_KEY)
        .unwrap()
        .to_string();
    // A machine twice as slow now: the file's reference still rules, so the
    // entries timed now are priced as those timed before.
    let mut slow = FakeEngine::new(EngineConfig::default());
    slow.speeds = vec![2.0];
    let report = build_table(
        &mut slow,
        &mut monitor,
        &in_network_settings(),
        Output::File(&path),
        &LogOnly,
    )
    .unwrap();
    assert!(report.complete && report.skipped == 4);
    let table = LatencyTable::from_path(&path).unwrap();
    assert_eq!(
        table.metadata().get(speed::REFERENCE_KEY),
        Some(&*reference)
    );
    for e in table.entries() {
        let want = FakeEngine::latency(&e.spec);
        assert!((e.stats.median_ms / want - 1.0).abs() < 1e-5, "{}", e.spec);
    }

    // A table of blocks timed alone has no reference to go on with.
    let alone = dir.path().join("alone.csv");
    let limited_alone = BuildSettings {
        limit: Some(2),
        ..settings()
    };
    build_table(
        &mut FakeEngine::new(EngineConfig::default()),
        &mut monitor,
        &limited_alone,
        Output::File(&alone),
        &LogOnly,
    )
    .unwrap();
    let before = std::fs::read_to_string(&alone).unwrap();
    let err = build_table(
        &mut drifting_engine(),
        &mut monitor,
        &in_network_settings(),
        Output::File(&alone),
        &LogOnly,
    )
    .unwrap_err();
    assert!(
        matches!(&err, ProfilerError::CannotResume { reason, .. } if reason.contains("speed_reference_ms")),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&alone).unwrap(), before);
}

#[test]
fn an_entry_no_network_position_takes_is_refused_not_waited_for() {
    let s = in_network_settings();
    let plan = s.space.table_plan(s.width_step).unwrap();
    // A block of the full default space: not in the one-stage space.
    let stray = SearchSpaceConfig::default().table_plan(8).unwrap().blocks[200];
    assert!(!plan.blocks.contains(&stray));
    let err = crate::table::in_network::time_in_networks(
        &mut drifting_engine(),
        &s.space,
        &plan,
        &[stray],
        &s.timing,
        &InNetwork::DEFAULT,
        None,
        &LogOnly,
        &mut |_| Ok(()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no position"), "{err}");
}

/// Every third key of the plan, and one width the plan lacks (off the
/// width-step grid): a probe as `profiler probe` might choose it.
fn probe_keys() -> ProbeKeys {
    let plan = settings().space.table_plan(8).unwrap();
    let mut keys: Vec<BlockSpec> = plan.blocks.iter().step_by(3).copied().collect();
    // A width inside a curve's range that the grid skips.
    let same = |b: &BlockSpec, mid: u32| {
        plan.blocks
            .iter()
            .any(|o| o.shape == b.shape && o.mid_channels == mid)
    };
    let inside = |b: &BlockSpec| {
        plan.blocks
            .iter()
            .any(|o| o.shape == b.shape && o.mid_channels > b.mid_channels + 3)
    };
    let searchable = *plan
        .blocks
        .iter()
        .find(|b| inside(b) && !same(b, b.mid_channels + 3))
        .unwrap();
    let off_grid = BlockSpec {
        mid_channels: searchable.mid_channels + 3,
        ..searchable
    };
    keys.push(off_grid);
    ProbeKeys {
        keys,
        of: "a.csv sha256:00 (Other GPU), 12 of 34 entries (35.3%)".into(),
    }
}

#[test]
fn a_probe_build_times_exactly_its_keys_and_names_its_reference() {
    let probe = probe_keys();
    for in_network in [None, Some(InNetwork::DEFAULT)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.csv");
        let probed = BuildSettings {
            probe: Some(probe.clone()),
            in_network,
            ..settings()
        };
        let mut engine = FakeEngine::new(EngineConfig::default());
        let mut monitor = FakeMonitor::default();
        let report = build_table(
            &mut engine,
            &mut monitor,
            &probed,
            Output::File(&path),
            &LogOnly,
        )
        .unwrap();
        assert_eq!(report.planned, probe.keys.len());
        assert!(report.complete);
        let table = LatencyTable::from_path(&path).unwrap();
        // Alone, in the probe's order; inside networks, as each is final.
        let want: BTreeSet<String> = probe.keys.iter().map(|b| b.key()).collect();
        let got: BTreeSet<String> = keys(&table).into_iter().collect();
        assert_eq!(got, want, "{in_network:?}");
        assert_eq!(table.len(), probe.keys.len());
        assert_eq!(
            table.metadata().get(meta::PROBE_OF),
            Some(probe.of.as_str())
        );
        // A rerun resumes to nothing; a build of the whole plan, or of
        // another probe, must not append to it.
        let again = build_table(
            &mut engine,
            &mut monitor,
            &probed,
            Output::File(&path),
            &LogOnly,
        )
        .unwrap();
        assert_eq!((again.measured, again.skipped), (0, probe.keys.len()));
        let whole = BuildSettings {
            in_network,
            ..settings()
        };
        let err = build_table(
            &mut engine,
            &mut monitor,
            &whole,
            Output::File(&path),
            &LogOnly,
        )
        .unwrap_err();
        assert!(matches!(err, ProfilerError::SettingsDiffer { .. }), "{err}");
        assert!(err.to_string().contains(meta::PROBE_OF), "{err}");
    }
}
