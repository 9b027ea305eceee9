//! `validate` end to end on CPU: a fake engine whose whole-network time is
//! the table's own sum times a known factor, with a known ±2% noise, so the
//! statistics have values computed here by hand.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::measure::engine::{EngineConfig, Launch, L2};
use crate::measure::fake::FakeEngine;
use crate::measure::monitor::Unmonitored;
use crate::measure::stop::StopRule;
use crate::measure::timing::TimingRule;
use space::{
    meta, Architecture, BlockSpec, Entry, LatencyStats, LatencyTable, Metadata, SearchSpaceConfig,
    TableWriter,
};

use super::*;
use crate::analysis::{fit, rows};
use crate::error::Result;
use crate::measure::speed;

/// The synthetic latency of a block, as a table would hold it.
fn block_ms(spec: &BlockSpec) -> f64 {
    0.01 + 1e-5 * f64::from(spec.mid_channels + spec.shape.in_channels + spec.shape.resolution)
}

fn table_header(space: &SearchSpaceConfig) -> Metadata {
    let mut m = Metadata::new();
    m.set(meta::FORMAT, space::table::FORMAT)
        .set(meta::DEVICE_NAME, "Fake GPU 80GB")
        .set(meta::DEVICE_UUID, "GPU-fake-0")
        .set(meta::ENGINE, "fake/1")
        .set(meta::LAUNCH, "graph")
        .set(meta::L2, "warm")
        .set(meta::DTYPE, "fp32")
        .set(meta::LAYOUT, "nchw")
        .set(meta::BATCH, 32)
        .set(meta::WIDTH_STEP, 8)
        .set(meta::SPACE, &space.name)
        .set(meta::SPACE_DIGEST, space.digest());
    m
}

/// Writes the whole table of `space` (every planned entry but those `skip`
/// rejects) under `header` and reads it back.
fn write_table(
    dir: &Path,
    name: &str,
    space: &SearchSpaceConfig,
    header: &Metadata,
    keep: impl Fn(&BlockSpec) -> bool,
) -> (PathBuf, LatencyTable) {
    let plan = space.table_plan(8).unwrap();
    write_plan(dir, name, header, &plan, |spec| {
        keep(spec).then(|| block_ms(spec))
    })
}

/// Writes an entry of `ms(spec)` for every block of `plan` it prices
/// (`None` leaves the block out) under `header`, and reads the table back.
fn write_plan(
    dir: &Path,
    name: &str,
    header: &Metadata,
    plan: &space::TablePlan,
    ms: impl Fn(&BlockSpec) -> Option<f64>,
) -> (PathBuf, LatencyTable) {
    let mut w = TableWriter::new(Vec::new(), header).unwrap();
    for spec in &plan.blocks {
        if let Some(ms) = ms(spec) {
            // Each median known to ±5%, as a curve fit needs to judge its lines.
            let stats = LatencyStats {
                ci_low_ms: ms * 0.95,
                ci_high_ms: ms * 1.05,
                ..LatencyStats::exact(ms, 10)
            };
            w.write(&Entry {
                spec: *spec,
                batch: 32,
                stats,
            })
            .unwrap();
        }
    }
    let bytes = w.finish(&Metadata::new()).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let table = LatencyTable::from_path(&path).unwrap();
    (path, table)
}

const FACTOR: f64 = 1.25;

/// ±2% by the parity of the predicted time's 0.1 µs digit: fixed per
/// network, so a resumed run measures what an uninterrupted one does.
fn noise(predicted_ms: f64) -> f64 {
    if ((predicted_ms * 1e4).round() as u64) % 2 == 0 {
        0.02
    } else {
        -0.02
    }
}

/// The shared fake engine, timing a network as `FACTOR × (table sum) ×
/// (1 + noise)`, on the device the test tables name.
fn net_engine(table: &LatencyTable) -> FakeEngine {
    model_engine(table, |sum| FACTOR * sum * (1.0 + noise(sum)))
}

/// A fake on the device the test tables name, timing a network as
/// `model(table sum)`.
fn model_engine(table: &LatencyTable, model: impl Fn(f64) -> f64 + 'static) -> FakeEngine {
    let table = table.clone();
    let mut engine = FakeEngine::new(EngineConfig::default());
    engine.info.device_uuid = "GPU-fake-0".into();
    engine.network_ms = Some(Box::new(move |blocks: &[BlockSpec]| {
        model(table.predict_blocks(blocks).unwrap().total_ms)
    }));
    engine
}

fn quick_timing() -> TimingRule {
    TimingRule {
        warmup: Duration::ZERO,
        stop: StopRule {
            min_samples: 3,
            cap: Duration::from_millis(20),
            ..StopRule::default()
        },
    }
}

fn job(table: &LatencyTable, path: &Path, seed: u64, samples: usize) -> Job {
    Job::new(
        table,
        sha256_16(&std::fs::read(path).unwrap()),
        SearchSpaceConfig::default(),
        EngineConfig::default(),
        Sampling {
            seed,
            samples,
            width_multiple: 1,
        },
        quick_timing(),
        "profiler validate (test)".into(),
    )
    .unwrap()
}

/// `run_validation` into `out`, unmonitored, and the lines it logged.
fn run_logged(engine: &mut FakeEngine, job: &Job, out: &Path) -> (Vec<Row>, Vec<String>) {
    let mut logs = Vec::new();
    let mut monitor = Unmonitored { why: "test".into() };
    let rows = run_validation(engine, None, &mut monitor, job, Some(out), &mut |m| {
        logs.push(m.to_string())
    })
    .unwrap();
    (rows, logs)
}

fn run(engine: &mut FakeEngine, job: &Job, out: Option<&Path>) -> Result<Vec<Row>> {
    let mut monitor = Unmonitored { why: "test".into() };
    run_validation(engine, None, &mut monitor, job, out, &mut |_| {})
}

fn setup() -> (tempfile::TempDir, PathBuf, LatencyTable) {
    let dir = tempfile::tempdir().unwrap();
    let space = SearchSpaceConfig::default();
    let (path, table) = write_table(dir.path(), "t.csv", &space, &table_header(&space), |_| true);
    (dir, path, table)
}

#[test]
fn a_known_factor_and_noise_give_the_expected_errors() {
    let (_dir, path, table) = setup();
    let job = job(&table, &path, 1, 40);
    let mut engine = net_engine(&table);
    let rows = run(&mut engine, &job, None).unwrap();
    assert_eq!(rows.len(), 40);
    // Measured = 1.25 × predicted × 1.02 or × 0.98, so each error is
    // 1/1.275 − 1 = −21.5686% or 1/1.225 − 1 = −18.3673%.
    let (hi, lo) = (1.0 / 1.275 - 1.0, 1.0 / 1.225 - 1.0);
    let n_hi = job
        .networks
        .iter()
        .filter(|n| noise(n.predicted_ms) > 0.0)
        .count() as f64;
    assert!(n_hi > 5.0 && n_hi < 35.0, "the noise takes both signs");
    let want_signed = (n_hi * hi + (40.0 - n_hi) * lo) / 40.0 * 100.0;
    let s = stats(&rows).unwrap();
    assert_eq!(s.count, 40);
    assert!((s.mean_signed_error_pct - want_signed).abs() < 1e-9);
    assert!(
        (s.mape_pct + want_signed).abs() < 1e-9,
        "all errors negative"
    );
    assert!((s.worst.error_pct - hi * 100.0).abs() < 1e-9);
    assert!(s.bands.iter().all(|b| b.share == 0.0), "all beyond ±10%");
    for (row, net) in rows.iter().zip(&job.networks) {
        assert_eq!(row.predicted_ms, net.predicted_ms);
        let want = FACTOR * net.predicted_ms * (1.0 + noise(net.predicted_ms));
        assert!((row.measured_ms - want).abs() < 1e-12);
        assert_eq!(row.arch, net.code);
    }
    // The predictions are the table's own for the sampled architectures.
    let arch = Architecture::sample_nth(&SearchSpaceConfig::default(), 1, 3).unwrap();
    assert_eq!(rows[3].predicted_ms, table.predict(&arch).unwrap().total_ms);
    // Without noise and at factor 1 the table would be exact; here the
    // ranking still mostly survives a ±2% noise.
    assert!(s.kendall_tau.unwrap() > 0.8, "{:?}", s.kendall_tau);
}

#[test]
fn a_killed_run_resumes_to_the_same_rows() {
    let (dir, path, table) = setup();
    let job = job(&table, &path, 1, 12);
    let whole = dir.path().join("whole.csv");
    let full = run(&mut net_engine(&table), &job, Some(&whole)).unwrap();

    let out = dir.path().join("rows.csv");
    let mut killed = net_engine(&table);
    killed.fail_after = Some(7);
    let err = run(&mut killed, &job, Some(&out)).unwrap_err();
    assert!(err.to_string().contains("simulated kill"), "{err}");
    // A kill mid-write: half of row 7, without its newline.
    let mut text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(rows::read(&out).unwrap().rows.len(), 7);
    text.push_str("7,1,0.51");
    std::fs::write(&out, &text).unwrap();

    let mut resumed = net_engine(&table);
    let (rows, logs) = run_logged(&mut resumed, &job, &out);
    assert_eq!(resumed.networks, 5, "only networks 7..12 are timed again");
    assert_eq!(rows, full);
    assert_eq!(rows::read(&out).unwrap().rows, full);
    assert!(logs.iter().any(|l| l.contains("truncated")), "{logs:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.matches("# finished:").count(), 1);

    // A finished file reruns without timing anything, and a larger
    // --samples extends it.
    let mut again = net_engine(&table);
    assert_eq!(run(&mut again, &job, Some(&out)).unwrap(), full);
    assert_eq!(again.networks, 0);
    let more = super::tests::job(&table, &path, 1, 15);
    let mut extend = net_engine(&table);
    let rows = run(&mut extend, &more, Some(&out)).unwrap();
    assert_eq!(extend.networks, 3);
    assert_eq!(&rows[..12], &full[..]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.matches("# finished:").count(), 1, "{text}");
    assert!(text.contains("# table_sha256: "));
    assert!(text.contains("# table_device_name: Fake GPU 80GB"));
}

#[test]
fn a_rerun_resumes_when_only_an_informative_fingerprint_line_differs() {
    let (dir, path, table) = setup();
    let out = dir.path().join("rows.csv");
    let mut first = net_engine(&table);
    first.info.extra = vec![(meta::CPU_CORES.to_string(), "2".into())];
    run(&mut first, &job(&table, &path, 1, 4), Some(&out)).unwrap();
    // The core count is written but is none of the engine's resume keys.
    let mut more_cores = net_engine(&table);
    more_cores.info.extra = vec![(meta::CPU_CORES.to_string(), "64".into())];
    let rows = run(&mut more_cores, &job(&table, &path, 1, 4), Some(&out)).unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(more_cores.networks, 0, "nothing was measured again");
    // Declared a resume key, the same difference is refused.
    let mut strict = net_engine(&table);
    strict.info.extra = vec![(meta::CPU_CORES.to_string(), "64".into())];
    strict.info.resume_keys = vec![meta::CPU_CORES];
    let err = run(&mut strict, &job(&table, &path, 1, 4), Some(&out)).unwrap_err();
    assert!(err.to_string().contains("cpu_cores: file has '2'"), "{err}");
}

#[test]
fn a_rerun_with_other_settings_is_refused() {
    let (dir, path, table) = setup();
    let out = dir.path().join("rows.csv");
    run(
        &mut net_engine(&table),
        &job(&table, &path, 1, 4),
        Some(&out),
    )
    .unwrap();
    let before = std::fs::read_to_string(&out).unwrap();

    let err = run(
        &mut net_engine(&table),
        &job(&table, &path, 2, 4),
        Some(&out),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("seed: file has '1', this run '2'"), "{err}");

    let mut other_gpu = net_engine(&table);
    other_gpu.info.device_uuid = "GPU-fake-1".into();
    let err = run(&mut other_gpu, &job(&table, &path, 1, 4), Some(&out))
        .unwrap_err()
        .to_string();
    assert!(err.contains("device_uuid"), "{err}");

    // Another CPU (or its cache, governor, vector unit, memory setting):
    // keys the engine says a resume must match.
    for key in [
        meta::CPU_MODEL,
        meta::LLC_BYTES,
        meta::CPU_GOVERNOR,
        meta::CPU_CAPABILITY,
        meta::CPU_MEMORY,
    ] {
        let mut other_cpu = net_engine(&table);
        other_cpu.info.extra = vec![(key.to_string(), "other".into())];
        other_cpu.info.resume_keys = vec![key];
        let err = run(&mut other_cpu, &job(&table, &path, 1, 4), Some(&out))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("{key}: file has")), "{err}");
    }

    // Another table (one more header line) is another table_sha256.
    let space = SearchSpaceConfig::default();
    let mut header = table_header(&space);
    header.set(meta::STARTED, "2026-11-27T10:00:00Z");
    let (path2, table2) = write_table(dir.path(), "t2.csv", &space, &header, |_| true);
    let err = run(
        &mut net_engine(&table2),
        &job(&table2, &path2, 1, 4),
        Some(&out),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("table_sha256"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), before, "untouched");

    // A file that is not a rows file is never overwritten.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "my notes\n").unwrap();
    let err = run(
        &mut net_engine(&table),
        &job(&table, &path, 1, 4),
        Some(&notes),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("refusing to overwrite"), "{err}");

    // Nor is a rows file of the format before passes, and it says so.
    let old = dir.path().join("old.csv");
    let text = "# format: tfnas-validation/1\nindex,seed\n0,1\n";
    std::fs::write(&old, text).unwrap();
    let err = run(
        &mut net_engine(&table),
        &job(&table, &path, 1, 4),
        Some(&old),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("format tfnas-validation/1") && err.contains("refusing to overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&old).unwrap(), text, "untouched");
}

#[test]
fn an_engine_with_other_settings_is_refused() {
    let (_dir, path, table) = setup();
    let mut engine = net_engine(&table);
    engine.config.launch = Launch::Eager;
    engine.config.l2 = L2::Cold;
    let err = run(&mut engine, &job(&table, &path, 1, 3), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("launch: table 'graph', engine 'eager'") && err.contains("l2"),
        "{err}"
    );
    assert_eq!(engine.networks, 0);
}

#[test]
fn settings_come_from_the_header_and_flags_may_only_fill_gaps() {
    let (dir, _path, table) = setup();
    let mut a = SettingFlags::default();
    assert_eq!(
        resolve_settings(&table, &a).unwrap(),
        EngineConfig::default()
    );
    a.launch = Some(Launch::Eager);
    a.batch = Some(8);
    let err = resolve_settings(&table, &a).unwrap_err().to_string();
    assert!(
        err.contains("launch: table 'graph', flag 'eager'")
            && err.contains("batch: table '32', flag '8'"),
        "{err}"
    );

    // A header without l2 and layout needs the flags.
    let space = SearchSpaceConfig::default();
    let mut header = Metadata::new();
    for (k, v) in table_header(&space).iter() {
        if k != meta::L2 && k != meta::LAYOUT {
            header.set(k, v);
        }
    }
    let (_, bare) = write_table(dir.path(), "bare.csv", &space, &header, |_| true);
    let mut a = SettingFlags::default();
    let err = resolve_settings(&bare, &a).unwrap_err().to_string();
    assert!(err.contains("does not say l2, layout") && err.contains("--l2 --layout"));
    a.l2 = Some(L2::Cold);
    a.layout = Some(crate::measure::engine::Layout::Nchw);
    let c = resolve_settings(&bare, &a).unwrap();
    assert_eq!(c.l2, L2::Cold);
}

#[test]
fn a_partial_table_stops_before_measuring_and_names_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let space = SearchSpaceConfig::default();
    // Without the head, no network can be predicted.
    let (path, table) = write_table(dir.path(), "p.csv", &space, &table_header(&space), |b| {
        b.shape.kind != space::BlockKind::Head
    });
    let err = Job::new(
        &table,
        sha256_16(&std::fs::read(&path).unwrap()),
        space.clone(),
        EngineConfig::default(),
        Sampling {
            seed: 1,
            samples: 5,
            width_multiple: 1,
        },
        quick_timing(),
        String::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("cannot predict 5 of the 5")
            && err.contains("lacks 1 entry: head_")
            && err.contains("nothing was measured"),
        "{err}"
    );

    // A table of another space is refused for its digest.
    let mut other = space.clone();
    other.name = "other".into();
    let err = Job::new(
        &table,
        String::new(),
        other,
        EngineConfig::default(),
        Sampling {
            seed: 1,
            samples: 5,
            width_multiple: 1,
        },
        quick_timing(),
        String::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("space digest") && err.contains("--space"),
        "{err}"
    );
}

#[test]
fn the_plot_and_the_text_report() {
    let (dir, path, table) = setup();
    let job = job(&table, &path, 1, 8);
    let rows = run(&mut net_engine(&table), &job, None).unwrap();
    let svg = dir.path().join("v.svg");
    plot(&svg, &rows).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let circles = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert!(circles >= 8, "one point per network: {circles}");
    let s = stats(&rows).unwrap();
    let report = render_text(&job, "Fake GPU", &rows, &s);
    assert!(report.contains("validated 8 networks"), "{report}");
    assert!(report.contains("MAPE") && report.contains("within ±1%: 0.0% (0.0..32.4%)"));
    // Eight networks give the median |error| an interval too.
    assert!(report.contains("median |error|") && report.contains("% (95% CI "));
    assert!(report.contains(&format!("worst: network {}", rows[s.worst.index].index)));
    assert!(!report.contains("correction"), "{report}");

    // A table whose header corrects by the known factor: the rows keep the
    // plain sums, the report adds the corrected errors (only the ±2% noise).
    let space = SearchSpaceConfig::default();
    let mut header = table_header(&space);
    header.set(meta::CORRECTION, "linear a=1.25 b=0");
    let (path2, table2) = write_table(dir.path(), "c.csv", &space, &header, |_| true);
    let job2 = super::tests::job(&table2, &path2, 1, 8);
    let rows2 = run(&mut net_engine(&table2), &job2, None).unwrap();
    assert_eq!(rows2, rows, "same sums, same measurements");
    let report = render_text(&job2, "Fake GPU", &rows2, &stats(&rows2).unwrap());
    let line = report
        .lines()
        .find(|l| l.starts_with("with the table's correction (linear a=1.25 b=0)"))
        .unwrap_or_else(|| panic!("{report}"));
    // Corrected errors are 1/1.02 − 1 = −1.96% or 1/0.98 − 1 = +2.04%.
    assert!(line.contains("within ±3%: 100.0%"), "{line}");
    assert!(!report.contains("plain sums"), "no boundary, no such line");

    // A table with a boundary: the rows hold its prediction, and the
    // report says how the plain sums of medians would have fared. With
    // every network measured exactly as predicted, a plain sum is high by
    // its blocks but one times the boundary.
    let mut header = table_header(&space);
    header.set(meta::BOUNDARY_MS, "0.002");
    let (path3, table3) = write_table(dir.path(), "b.csv", &space, &header, |_| true);
    let job3 = super::tests::job(&table3, &path3, 1, 8);
    let mut rows3 = run(&mut net_engine(&table3), &job3, None).unwrap();
    for r in &mut rows3 {
        r.measured_ms = r.predicted_ms;
    }
    let report = render_text(&job3, "Fake GPU", &rows3, &stats(&rows3).unwrap());
    assert!(report.contains("median |error| 0.000%"), "{report}");
    let line = report
        .lines()
        .find(|l| {
            l.starts_with("as plain sums of medians (without the table's boundary of 0.0020 ms")
        })
        .unwrap_or_else(|| panic!("{report}"));
    let signed = job3
        .networks
        .iter()
        .map(|n| (n.blocks.len() - 1) as f64 * 0.002 / n.predicted_ms * 100.0)
        .sum::<f64>()
        / 8.0;
    assert!(signed > 0.1, "{signed}");
    assert!(
        line.contains(&format!("mean signed error {signed:+.3}%")),
        "{line} vs {signed}"
    );
}

/// scripts/gpu-check.sh reads issue 4's goal from this report (FULL=1's
/// validate-full.log) with its own patterns: they must keep matching what
/// `render_text` writes, intervals included.
#[test]
fn gpu_check_reads_the_goal_from_the_report() {
    let (dir, path, table) = setup();
    let job = job(&table, &path, 1, 20);
    let rows = run(&mut net_engine(&table), &job, None).unwrap();
    let s = stats(&rows).unwrap();
    let logs = dir.path().join("out");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(
        logs.join("validate-full.log"),
        render_text(&job, "Fake GPU", &rows, &s),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu-check.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg("targets")
        .arg(&logs)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (lo, hi) = s.median_ape_ci_pct.unwrap();
    let within3 = s.bands.iter().find(|b| b.within_pct == 3.0).unwrap();
    let want = format!(
        "issue 4 goal (full table): median |error| {:.3}% (95% CI {lo:.3}..{hi:.3}%) (want <= 1%), within ±3% {:.1}% ({:.1}..{:.1}%) (want >= 95%): {} on this sample",
        s.median_ape_pct,
        within3.share * 100.0,
        within3.share_ci.0 * 100.0,
        within3.share_ci.1 * 100.0,
        if s.median_ape_pct <= 1.0 && within3.share >= 0.95 {
            "MET"
        } else {
            "NOT MET"
        }
    );
    assert!(text.contains(&want), "want {want}\nin\n{text}");
}

#[test]
fn fit_reads_the_rows_and_writes_a_corrected_table() {
    let (dir, path, table) = setup();
    let out = dir.path().join("rows.csv");
    run(
        &mut net_engine(&table),
        &job(&table, &path, 1, 30),
        Some(&out),
    )
    .unwrap();
    let corrected = dir.path().join("corrected.csv");
    let fitted = fit::run(&fit::FitArgs {
        validation: out.clone(),
        table: path.clone(),
        out: Some(corrected.clone()),
        model: fit::Model::Linear,
    })
    .unwrap();
    fit::write_copy(&corrected, &fitted.copy.unwrap()).unwrap();
    let t2 = LatencyTable::from_path(&corrected).unwrap();
    let c = t2.correction().expect("a correction line");
    // measured = 1.25 · predicted · (1 ± 2%). The predictions span a
    // narrow range, so the noise moves slope and intercept against each
    // other; the corrected value in the middle of the range is what the
    // fit pins down, to within the noise.
    let rows = rows::read(&out).unwrap().rows;
    let mean = rows.iter().map(|r| r.predicted_ms).sum::<f64>() / rows.len() as f64;
    let at_mean = c.apply(mean) / (FACTOR * mean);
    assert!((at_mean - 1.0).abs() < 0.02, "{c:?}: {at_mean}");
    assert!(c.a > 1.0 && c.a < 1.6, "{c:?}");
    assert_eq!(t2.len(), table.len(), "every entry kept");
    assert!(t2.corrected_total(10.0) > 12.0);
    // The rows name the original table, not the corrected copy.
    let err = fit::run(&fit::FitArgs {
        validation: out,
        table: corrected,
        out: None,
        model: fit::Model::Offset,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("validated another table"), "{err}");
}

#[test]
fn a_table_with_a_speed_reference_is_validated_at_its_speed_on_a_drifting_machine() {
    let dir = tempfile::tempdir().unwrap();
    let space = SearchSpaceConfig::default();
    let fixed: f64 = space.fixed_parts().all().iter().map(block_ms).sum();
    let mut header = table_header(&space);
    header.set(speed::REFERENCE_KEY, format!("{fixed:.9}"));
    let (path, table) = write_table(dir.path(), "t.csv", &space, &header, |_| true);
    let job = job(&table, &path, 1, 6);
    assert!((job.gauge.as_ref().unwrap().reference_ms() / fixed - 1.0).abs() < 1e-9);
    assert!(matches!(job.gauge, Some(speed::Gauge::FixedParts { .. })));
    let mut engine = FakeEngine::new(EngineConfig::default());
    // Run by run, up to 45% apart, mostly slower than the table's speed.
    engine.speeds = vec![1.2, 1.3, 0.9, 1.1, 1.25];
    let out = dir.path().join("rows.csv");
    let (rows, lines) = run_logged(&mut engine, &job, &out);
    for r in &rows {
        assert!(r.error_pct().abs() < 1e-4, "{r:?}");
        assert!(
            (r.measured_p90_ms - r.measured_p10_ms).abs() < 1e-9,
            "{r:?}"
        );
        // The raw median is the drifting clock's (mostly 1.1 to 1.3 times
        // the table's), not the scaled one.
        let raw = r.raw_ms / r.measured_ms;
        assert!((1.05..1.31).contains(&raw), "{r:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("at the table's speed (raw")),
        "{lines:?}"
    );
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains("# speed_reference_ms: "), "{written}");
}

#[test]
fn a_table_with_a_speed_standard_is_validated_in_turns_with_it_on_an_engine_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let space = SearchSpaceConfig::default();
    let fixed: f64 = space.fixed_parts().all().iter().map(block_ms).sum();
    let standard = space::Architecture::sample_nth(&space, 9, 0)
        .unwrap()
        .block_specs()
        .unwrap();
    let standard_ms: f64 = standard.iter().map(block_ms).sum();
    let keys: Vec<String> = standard.iter().map(|b| b.key()).collect();
    let mut header = table_header(&space);
    header.set(speed::REFERENCE_KEY, format!("{fixed:.9}"));
    header.set(space::meta::SPEED_STANDARD_MS, format!("{standard_ms:.9}"));
    header.set(space::meta::SPEED_STANDARD_NETWORK, keys.join(" "));
    let (path, table) = write_table(dir.path(), "t.csv", &space, &header, |_| true);
    let mut job = job(&table, &path, 1, 4);
    job.gauge = speed::Gauge::of(&table, true).unwrap();
    assert!(matches!(job.gauge, Some(speed::Gauge::Standard { .. })));
    // A machine 1.3 times slower than the table's, for both engines.
    let slow = || {
        let mut e = FakeEngine::new(EngineConfig::default());
        e.speeds = vec![1.3];
        e
    };
    let (mut engine, mut standard_engine) = (slow(), slow());
    let mut monitor = Unmonitored { why: "test".into() };
    let mut lines = Vec::new();
    let rows = run_validation(
        &mut engine,
        Some(&mut standard_engine),
        &mut monitor,
        &job,
        None,
        &mut |l| lines.push(l.to_string()),
    )
    .unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert!(r.error_pct().abs() < 1e-4, "{r:?}");
        assert!((r.raw_ms / r.measured_ms - 1.3).abs() < 1e-9, "{r:?}");
        assert!(!r.throttled, "{r:?}");
    }
    // One standard prepared beside each network, each on its own engine.
    assert_eq!((engine.networks, standard_engine.networks), (4, 4));
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("predicted") || l.contains("by its speed standard in turns (")),
        "{lines:?}"
    );
    // Without the standard's engine, the run is refused, not mis-gauged.
    let err = run(&mut slow(), &job, None).unwrap_err().to_string();
    assert!(err.contains("an engine of its own"), "{err}");
}

/// A fake whose networks run 10% slower from the second sweep on (the
/// test's log callback says when the first ends), to tell the passes apart.
fn drifting(table: &LatencyTable, slow: std::rc::Rc<std::cell::Cell<f64>>) -> FakeEngine {
    model_engine(table, move |sum| sum * slow.get())
}

#[test]
fn passes_sweep_every_network_in_turn_and_combine_into_their_mean() {
    let (dir, path, table) = setup();
    let job = job(&table, &path, 1, 3).with_passes(2).unwrap();
    let slow = std::rc::Rc::new(std::cell::Cell::new(1.0));
    let mut engine = drifting(&table, slow.clone());
    let mut monitor = Unmonitored { why: "test".into() };
    let mut logs = Vec::new();
    let out = dir.path().join("rows.csv");
    let rows = run_validation(
        &mut engine,
        None,
        &mut monitor,
        &job,
        Some(&out),
        &mut |m| {
            if m.starts_with("pass 1/2, 3/3:") {
                slow.set(1.1);
            }
            logs.push(m.to_string());
        },
    )
    .unwrap();
    let order: Vec<(u64, u32)> = rows.iter().map(|r| (r.index, r.pass)).collect();
    assert_eq!(order, [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]);
    assert_eq!(engine.networks, 6, "each network prepared once a pass");
    assert_eq!(rows::read(&out).unwrap().rows, rows);
    let combined = rows::combine(&rows);
    assert_eq!(combined.len(), 3);
    for (c, net) in combined.iter().zip(&job.networks) {
        let want = net.predicted_ms * 1.05;
        assert!((c.measured_ms - want).abs() < 1e-12, "{c:?}");
        assert_eq!(c.pass, 1);
    }
    // One pass strays ±1/21 from each mean of 1 and 1.1: squares
    // 2/441 per network, one degree of freedom each.
    let noise = rows::pass_noise(&rows).unwrap();
    assert!((noise.sd_pct - (2.0f64 / 441.0).sqrt() * 100.0).abs() < 1e-9);
    assert_eq!((noise.networks, noise.passes), (3, 2));
    let text = report(&job, "Fake", &rows, false).unwrap();
    assert!(text.contains("validated 3 networks"), "{text}");
    assert!(
        text.contains("measurement noise: one pass of a network strays 6.73%"),
        "{text}"
    );
    let json = report(&job, "Fake", &rows, true).unwrap();
    assert!(
        json.contains("\"pass_noise\"") && json.contains("\"count\": 3"),
        "{json}"
    );
}

#[test]
fn a_killed_run_of_passes_measures_only_the_missing_passes_again() {
    let (dir, path, table) = setup();
    let job = job(&table, &path, 1, 4).with_passes(3).unwrap();
    let out = dir.path().join("rows.csv");
    let mut killed = net_engine(&table);
    killed.fail_after = Some(6);
    assert!(run(&mut killed, &job, Some(&out)).is_err());
    assert_eq!(rows::read(&out).unwrap().rows.len(), 6);
    let mut resumed = net_engine(&table);
    let (rows, logs) = run_logged(&mut resumed, &job, &out);
    assert_eq!(
        resumed.networks, 6,
        "pass 2 of networks 3 and 4, pass 3 of all four"
    );
    assert_eq!(rows.len(), 12);
    assert!(
        logs.iter()
            .any(|l| l == "resuming: 6 of 12 network passes already measured"),
        "{logs:?}"
    );
    // One pass fewer reports the first two passes of the same file.
    let fewer = job.clone().with_passes(2).unwrap();
    let mut none = net_engine(&table);
    let two = run(&mut none, &fewer, Some(&out)).unwrap();
    assert_eq!((none.networks, two.len()), (0, 8));
    assert!(job.clone().with_passes(0).is_err() && job.with_passes(101).is_err());
}

/// A table that prices deep networks low: the engine times each network
/// 1% slower per searchable block than the table's sum. The report's split
/// by depth shows the bias where it lives: the deeper half's mean error is
/// the more negative (the table under-predicts it).
#[test]
fn the_report_splits_the_error_by_where_a_network_sits() {
    let (_dir, path, table) = setup();
    let mut engine = FakeEngine::new(EngineConfig::default());
    engine.info.device_uuid = "GPU-fake-0".into();
    let t = table.clone();
    engine.network_ms = Some(Box::new(move |blocks: &[BlockSpec]| {
        let depth = blocks
            .iter()
            .filter(|b| b.shape.kind == space::BlockKind::Mbconv)
            .count();
        t.predict_blocks(blocks).unwrap().total_ms * (1.0 + 0.01 * depth as f64)
    }));
    let job = job(&table, &path, 1, 12);
    let rows = run(&mut engine, &job, None).unwrap();
    let text = render_text(&job, "Fake", &rows, &stats(&rows).unwrap());
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("depth: <="))
        .unwrap_or_else(|| panic!("{text}"));
    let pct = |s: &str| -> f64 { s.trim().trim_end_matches('%').parse().unwrap() };
    let (low, high) = line.split_once("above:").unwrap();
    let low = pct(low.split(": ").nth(2).unwrap().split(" (").next().unwrap());
    let high = pct(high.split(" (").next().unwrap());
    assert!(low > high, "{line}");
}

#[test]
fn a_network_that_jumps_between_passes_is_reported_unstable() {
    let (_dir, path, table) = setup();
    let job = job(&table, &path, 1, 4).with_passes(2).unwrap();
    let slow = std::rc::Rc::new(std::cell::Cell::new(1.0));
    let mut engine = drifting(&table, slow.clone());
    let mut monitor = Unmonitored { why: "test".into() };
    // The last network's second pass runs 20% slower; every other pass of
    // every network takes the same time.
    let rows = run_validation(&mut engine, None, &mut monitor, &job, None, &mut |m| {
        if m.starts_with("pass 2/2, 3/4:") {
            slow.set(1.2);
        }
    })
    .unwrap();
    let text = report(&job, "Fake", &rows, false).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("unstable:"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("unstable: network 3 took "), "{text}");
    assert!(lines[0].contains("(20.0% apart"), "{text}");
    let json = report(&job, "Fake", &rows, true).unwrap();
    assert!(
        json.contains("\"unstable\"") && json.contains("\"index\": 3"),
        "{json}"
    );
}

#[test]
fn an_aligned_table_reports_what_linear_interpolation_would_have_said() {
    let dir = tempfile::tempdir().unwrap();
    let space = SearchSpaceConfig::default();
    let mut header = table_header(&space);
    header.set(meta::WIDTH_MODEL, "align 8");
    // Every unaligned width costs 10% over the line through its aligned
    // neighbours: the probes measure exactly that surcharge.
    let plan = space.table_plan_aligned(8, Some(8)).unwrap();
    let (path, table) = write_plan(dir.path(), "aligned.csv", &header, &plan, |spec| {
        let surcharge = if spec.mid_channels % 8 == 0 { 1.0 } else { 1.1 };
        Some(block_ms(spec) * surcharge)
    });
    // Networks of any width, timed exactly as the aligned model prices them.
    let aligned = job(&table, &path, 1, 6);
    assert!(aligned.networks.iter().all(|n| n.linear_ms.is_some()));
    let linear = other_prediction_line(
        &table,
        &aligned,
        "priced by linear interpolation instead of the table's width model (align 8)",
    );
    assert!(!linear.contains("MAPE 0.000%"), "{linear}");
    // A linear table has no such line.
    let plain_job = plain_job(dir.path(), &space);
    assert!(plain_job.networks.iter().all(|n| n.linear_ms.is_none()));
}

/// Runs `job` on an engine that times each network exactly as `table`
/// prices it, checks the report says so, and returns its line that starts
/// with `prefix`.
fn other_prediction_line(table: &LatencyTable, job: &Job, prefix: &str) -> String {
    let mut engine = model_engine(table, |sum| sum);
    let rows = run(&mut engine, job, None).unwrap();
    let text = report(job, "Fake", &rows, false).unwrap();
    assert!(text.contains("MAPE 0.000%"), "{text}");
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("{text}"))
        .to_string()
}

/// A job of two networks on a table of the default header (linear, no
/// curve fit).
fn plain_job(dir: &Path, space: &SearchSpaceConfig) -> Job {
    let (path, table) = write_table(dir, "plain.csv", space, &table_header(space), |_| true);
    job(&table, &path, 1, 2)
}

#[test]
fn a_fitted_table_reports_what_its_entries_alone_would_have_said() {
    let dir = tempfile::tempdir().unwrap();
    let space = SearchSpaceConfig::default();
    let mut header = table_header(&space);
    header.set(meta::CURVE_FIT, "affine");
    // Every other measured width (8 past a multiple of 16) 4% over its
    // block's cost: the fit pulls them towards the line, and networks are
    // timed as the fit prices them.
    let plan = space.table_plan(8).unwrap();
    let (path, table) = write_plan(dir.path(), "fitted.csv", &header, &plan, |spec| {
        let off = spec.shape.kind == space::BlockKind::Mbconv && spec.mid_channels % 16 == 8;
        Some(block_ms(spec) * if off { 1.04 } else { 1.0 })
    });
    assert_eq!(table.curve_fit(), space::CurveFit::Affine);
    let fitted = job(&table, &path, 1, 6);
    assert!(fitted.networks.iter().all(|n| n.unfitted_ms.is_some()));
    let raw = other_prediction_line(
        &table,
        &fitted,
        "each measured width at its own entry instead of on its curve's line (curve_fit affine)",
    );
    assert!(!raw.contains("MAPE 0.000%"), "{raw}");
    // A table without a fit has no such line.
    let plain_job = plain_job(dir.path(), &space);
    assert!(plain_job.networks.iter().all(|n| n.unfitted_ms.is_none()));
}
