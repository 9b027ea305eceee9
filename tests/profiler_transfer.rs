//! End-to-end tests of `profiler probe` and `profiler transfer` on
//! synthetic tables written into a temporary folder (never under tables/).
//! Every latency here is made up; the device names say so.

#[path = "support/mod.rs"]
mod support;
use support::*;

use std::path::{Path, PathBuf};

use space::{meta, BlockSpec, SearchSpaceConfig};

fn write(path: &Path, batch: u32, space_name: &str, rows: &[(BlockSpec, f64)]) -> PathBuf {
    let header = [
        (
            meta::DEVICE_NAME,
            "SYNTHETIC: test data, not a measurement".to_string(),
        ),
        (meta::BATCH, batch.to_string()),
        (meta::SPACE, space_name.to_string()),
        (meta::WIDTH_STEP, "32".to_string()),
    ];
    write_table(path, batch, &header, rows, exact)
}

/// The default space at width step 32, with a made-up latency.
fn rows(scale: f64) -> Vec<(BlockSpec, f64)> {
    SearchSpaceConfig::default()
        .table_plan(32)
        .unwrap()
        .blocks
        .into_iter()
        .map(|s| (s, scale * (0.01 + 1e-4 * f64::from(s.mid_channels))))
        .collect()
}

/// A reference and a probe of it (the keys `probe --keys` names), 3x slower.
fn setup(dir: &Path, batch: u32, space_name: &str) -> (PathBuf, PathBuf) {
    let a = write(&dir.join("a.csv"), 32, "tfnas-imagenet", &rows(1.0));
    let out = profiler(&[
        "probe",
        "--reference",
        a.to_str().unwrap(),
        "--fraction",
        "0.15",
        "--keys",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("curves probed"));
    let keys: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    let probe: Vec<(BlockSpec, f64)> = rows(3.0)
        .into_iter()
        .filter(|(s, _)| keys.contains(&s.key()))
        .collect();
    assert_eq!(probe.len(), keys.len());
    let p = write(&dir.join("p.csv"), batch, space_name, &probe);
    (a, p)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `profiler transfer --reference a --probe p` and then `more`.
fn transfer(a: &Path, p: &Path, more: &[&str]) -> std::process::Output {
    let mut args = vec!["transfer", "--reference", s(a), "--probe", s(p)];
    args.extend_from_slice(more);
    profiler(&args)
}

#[test]
fn transfer_writes_a_predicted_table_that_check_reports_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (a, p) = setup(dir.path(), 32, "tfnas-imagenet");
    let b = dir.path().join("b.csv");
    let out = transfer(&a, &p, &["--out", s(&b)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("measured (the probe's)"));
    let table = space::LatencyTable::from_path(&b).unwrap();
    assert_eq!(table.len(), rows(1.0).len());
    for (spec, ms) in rows(3.0) {
        let got = table.entry(&spec).unwrap().stats.median_ms;
        assert!((got / ms - 1.0).abs() < 1e-9, "{spec}: {got} vs {ms}");
    }
    let md = table.metadata();
    assert!(md
        .get(meta::PREDICTED)
        .unwrap()
        .contains("not a measurement"));
    assert!(md
        .get(meta::TRANSFER_PROBE)
        .unwrap()
        .starts_with("p.csv sha256 "));
    let check = profiler(&["check", "--table", s(&b)]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let said = text(&check.stdout);
    assert!(
        said.contains("predicted table (profiler transfer)"),
        "{said}"
    );
    assert!(said.contains("estimated error: leave-one-out"), "{said}");
    // The evaluation against the truth: exact.
    let full = write(
        &dir.path().join("full.csv"),
        32,
        "tfnas-imagenet",
        &rows(3.0),
    );
    let ev = transfer(&a, &p, &["--evaluate", s(&full), "--networks", "20"]);
    assert!(ev.status.success(), "{}", text(&ev.stderr));
    assert!(
        text(&ev.stdout).contains("median |error|   0.00%"),
        "{}",
        text(&ev.stdout)
    );
    // The probe's rows are the full table's: nothing of its own to take out.
    assert!(
        text(&ev.stdout).contains("the model alone: the same"),
        "{}",
        text(&ev.stdout)
    );
}

#[test]
fn transfer_refuses_another_batch_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, p) = setup(dir.path(), 1, "tfnas-imagenet");
    let b = dir.path().join("b.csv");
    let out = transfer(&a, &p, &["--out", s(&b)]);
    fails_with(&out, &["batch 32", "batch 1", "--allow-batch"]);
    assert!(!b.exists());
    let out = transfer(&a, &p, &["--out", s(&b), "--allow-batch"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(space::LatencyTable::from_path(&b).unwrap().batch(), 1);
}

#[test]
fn transfer_refuses_another_space() {
    let dir = tempfile::tempdir().unwrap();
    let (a, p) = setup(dir.path(), 32, "another-space");
    let b = dir.path().join("b.csv");
    let out = transfer(&a, &p, &["--out", s(&b)]);
    fails_with(&out, &["space", "another-space", "one space"]);
    assert!(!b.exists());
}

#[test]
fn transfer_refuses_a_probe_with_keys_the_reference_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        &dir.path().join("a.csv"),
        32,
        "tfnas-imagenet",
        &rows(1.0)[..200],
    );
    let p = write(
        &dir.path().join("p.csv"),
        32,
        "tfnas-imagenet",
        &rows(3.0)[150..250],
    );
    let b = dir.path().join("b.csv");
    let out = transfer(&a, &p, &["--out", s(&b)]);
    fails_with(&out, &["50 keys the reference", "lacks"]);
    assert!(!b.exists());
}

#[test]
fn probe_and_transfer_check_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (a, p) = setup(dir.path(), 32, "tfnas-imagenet");
    let out = profiler(&["probe", "--reference", s(&a), "--fraction", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--fraction must be a number in"));
    let out = transfer(&a, &p, &[]);
    fails_with(&out, &["--out", "--evaluate"]);
    let out = transfer(&a, &p, &["--out", s(&p)]);
    fails_with(&out, &["is also the probe"]);
}
