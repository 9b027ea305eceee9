//! `profiler validate` through the binary: what fails before the GPU is
//! touched (bad arguments, tables, settings) and the clean exit without a
//! CUDA driver. The measuring itself is tested with a fake engine in
//! `profiler/src/validate/tests.rs` and on the GPU by scripts/gpu-check.sh.

#[path = "support/mod.rs"]
mod support;
use support::*;

use std::path::{Path, PathBuf};

use space::{meta, SearchSpaceConfig};

/// A complete synthetic table of the default space with every setting in
/// its header.
fn full_table(dir: &Path) -> PathBuf {
    let space = SearchSpaceConfig::default();
    let rows: Vec<_> = space
        .table_plan(8)
        .unwrap()
        .blocks
        .into_iter()
        .map(|spec| (spec, 0.01 + 1e-5 * f64::from(spec.mid_channels)))
        .collect();
    let header = settings_header(&space, "SYNTHETIC");
    write_table(&dir.join("full.csv"), 32, &header, &rows, exact)
}

/// Every setting a GPU table's header states, for `space`.
fn settings_header(space: &SearchSpaceConfig, device: &str) -> Vec<(&'static str, String)> {
    [
        (meta::DEVICE_NAME, device.to_string()),
        (meta::LAUNCH, "graph".into()),
        (meta::L2, "warm".into()),
        (meta::DTYPE, "fp32".into()),
        (meta::LAYOUT, "nchw".into()),
        (meta::BATCH, "32".into()),
        (meta::SPACE_DIGEST, space.digest()),
    ]
    .into()
}

#[test]
fn bad_arguments_and_tables_exit_2_before_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let full = full_table(dir.path());
    let full = full.to_str().unwrap();
    fails_with(
        &profiler(&["validate", "--table", full, "--samples", "0"]),
        &["--samples must be a number in [1, 100000], got 0"],
    );
    fails_with(
        &profiler(&["validate", "--table", full, "--samples", "1000000"]),
        &["--samples must be a number in [1, 100000], got 1000000"],
    );
    for seed in ["--seed=-1", "--seed=abc", "--seed=1.5"] {
        let out = profiler(&["validate", "--table", full, seed]);
        assert_eq!(out.status.code(), Some(2), "{seed}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("invalid value") && err.contains("--seed"),
            "{err}"
        );
    }
    fails_with(
        &profiler(&["validate", "--table", "/nonexistent/t.csv"]),
        &["/nonexistent/t.csv"],
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "# format: tfnas-latency-table/1\nkey,batch\n").unwrap();
    fails_with(
        &profiler(&["validate", "--table", bad.to_str().unwrap()]),
        &["bad.csv"],
    );
    fails_with(
        &profiler(&["validate", "--table", full, "--plot", "x.pdf"]),
        &[".svg or .png"],
    );
}

#[test]
fn settings_that_differ_from_the_table_are_refused_naming_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let full = full_table(dir.path());
    fails_with(
        &profiler(&[
            "validate",
            "--table",
            full.to_str().unwrap(),
            "--launch",
            "eager",
            "--batch",
            "1",
        ]),
        &[
            "launch: table 'graph', flag 'eager'",
            "batch: table '32', flag '1'",
        ],
    );
    // The TF-NAS-A fixture says neither launch mode nor L2 policy.
    let fixture = fixture("tfnas_a_synthetic.csv");
    let fixture = fixture.to_str().unwrap();
    fails_with(
        &profiler(&["validate", "--table", fixture]),
        &["does not say launch, l2", "--launch --l2"],
    );
    // With them given, it still cannot predict sampled networks: it only
    // holds TF-NAS-A's blocks.
    fails_with(
        &profiler(&[
            "validate", "--table", fixture, "--launch", "graph", "--l2", "warm",
        ]),
        &["cannot predict", "lacks", "nothing was measured"],
    );
}

#[test]
fn without_a_driver_validate_fails_cleanly_with_status_2() {
    if profiler::cuda::device::driver_present() {
        eprintln!("skipped: a CUDA driver is present; this test covers machines without one");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = full_table(dir.path());
    let out_file = dir.path().join("rows.csv");
    fails_with(
        &profiler(&[
            "validate",
            "--table",
            full.to_str().unwrap(),
            "--samples",
            "5",
            "--out",
            out_file.to_str().unwrap(),
        ]),
        &["no CUDA driver"],
    );
    assert!(!out_file.exists(), "no rows file without a device");
}

/// A rows file as `validate --out` writes it, for `fit` (no GPU needed).
fn rows_file(dir: &Path, table: &Path, rows: &[(f64, f64)]) -> PathBuf {
    let rows: Vec<(f64, f64, String)> = rows.iter().map(|&(p, m)| (p, m, "a:1".into())).collect();
    rows_file_with_archs(dir, table, &rows)
}

/// The same with each row's architecture code.
fn rows_file_with_archs(dir: &Path, table: &Path, rows: &[(f64, f64, String)]) -> PathBuf {
    use sha2::{Digest, Sha256};
    let sha: String = Sha256::digest(std::fs::read(table).unwrap())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut text = format!(
        "# format: tfnas-validation/3\n# table_sha256: {sha}\n\
         index,pass,seed,predicted_ms,measured_ms,error_pct,measured_p10_ms,measured_p90_ms,samples,throttled,raw_ms,arch\n"
    );
    for (i, (p, m, arch)) in rows.iter().enumerate() {
        text.push_str(&format!("{i},0,1,{p},{m},0,{m},{m},10,0,{m},{arch}\n"));
    }
    let path = dir.join("rows.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// `profiler fit` on `rows` of `table` with `extra` arguments.
fn fit(rows: &Path, table: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "fit",
        "--validation",
        rows.to_str().unwrap(),
        "--table",
        table.to_str().unwrap(),
    ];
    args.extend(extra);
    profiler(&args)
}

/// The stdout of a run that must succeed.
fn succeeded(run: &std::process::Output) -> String {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

#[test]
fn fit_writes_a_boundary_into_a_copy_of_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let table = full_table(dir.path());
    // Networks of 4 to 7 blocks, each measured 2 us per block but one
    // under its prediction: the table's boundary (none, 0) is 2 us short.
    let rows: Vec<(f64, f64, String)> = (0..10)
        .map(|i| {
            let kept = i % 4 + 1;
            let code = vec!["k3_e3:40"; kept].join("+");
            let p = 4.0 + i as f64 * 0.25;
            (p, p - (kept + 2) as f64 * 0.002, code)
        })
        .collect();
    let rows = rows_file_with_archs(dir.path(), &table, &rows);
    let out = dir.path().join("bounded.csv");
    let stdout = succeeded(&fit(
        &rows,
        &table,
        &["--model", "boundary", "--out", out.to_str().unwrap()],
    ));
    assert!(
        stdout.contains("boundary raised by 0.002000 ms"),
        "{stdout}"
    );
    let bounded = space::LatencyTable::from_path(&out).unwrap();
    assert!((bounded.boundary_ms() - 0.002).abs() < 1e-9);
    assert_eq!(bounded.correction(), None);
    assert!(bounded.metadata().get("boundary_source").is_some());
    // A boundary that would price the cheapest entry (0.01 ms) at nothing
    // is refused, and nothing is written.
    let rows: Vec<(f64, f64, String)> = (0..10)
        .map(|i| (4.0 + i as f64, 2.0, vec!["k3_e3:40"; i % 4 + 1].join("+")))
        .collect();
    let rows = rows_file_with_archs(dir.path(), &table, &rows);
    let refused = dir.path().join("refused.csv");
    fails_with(
        &fit(
            &rows,
            &table,
            &["--model", "boundary", "--out", refused.to_str().unwrap()],
        ),
        &["cheapest entry", "no copy written"],
    );
    assert!(!refused.exists());
}

#[test]
fn fit_writes_the_correction_into_a_copy_of_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let table = full_table(dir.path());
    // measured = 1.1 · predicted + 0.2, exactly.
    let pairs: Vec<(f64, f64)> = (0..10)
        .map(|i| {
            let p = 4.0 + f64::from(i) * 0.25;
            (p, 1.1 * p + 0.2)
        })
        .collect();
    let rows = rows_file(dir.path(), &table, &pairs);
    let out = dir.path().join("corrected.csv");
    let stdout = succeeded(&fit(&rows, &table, &["--out", out.to_str().unwrap()]));
    assert!(
        stdout.contains("measured ≈ 1.100000 · predicted +0.200000 ms"),
        "{stdout}"
    );
    assert!(stdout.contains("tested on the other 5"), "{stdout}");
    let corrected = space::LatencyTable::from_path(&out).unwrap();
    let c = corrected.correction().unwrap();
    assert!((c.a - 1.1).abs() < 1e-9 && (c.b - 0.2).abs() < 1e-9);
    assert!((corrected.corrected_total(10.0) - 11.2).abs() < 1e-9);
    // predict reports the corrected latency beside the sum.
    let arch = fixture("tfnas_a.json");
    let shown = succeeded(&profiler(&[
        "predict",
        "--table",
        out.to_str().unwrap(),
        "--arch",
        arch.to_str().unwrap(),
    ]));
    let sum = corrected
        .predict(&space::Architecture::from_path(&arch).unwrap())
        .unwrap()
        .total_ms;
    assert!(
        shown.contains("with the table's correction (linear a=1.1")
            && shown.contains(&format!("): {:.4} ms", 1.1 * sum + 0.2)),
        "{shown}"
    );

    // Not over the measured table, and not with another table's rows.
    fails_with(
        &fit(&rows, &table, &["--out", table.to_str().unwrap()]),
        &["another file"],
    );
    fails_with(&fit(&rows, &out, &[]), &["validated another table"]);
    fails_with(&fit(&table, &table, &[]), &["not a validation rows file"]);
}

/// `tests/fixtures/space_two_ops.json` is the default space with only k3_e3
/// and k5_e6: scripts/gpu-check.sh builds its whole table at width step 64
/// (137 entries, about half a minute) and validates on it, a quick end-to-end
/// check that fits the GPU check's budget. Its size is pinned here so the
/// script's timeouts stay right.
#[test]
fn the_two_op_space_fixture_is_small_and_validates_against_its_table() {
    let path = fixture("space_two_ops.json");
    let space = SearchSpaceConfig::from_path(&path).unwrap();
    let names: Vec<&str> = space.ops.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["k3_e3", "k5_e6"]);
    let default = SearchSpaceConfig::default();
    assert_eq!(space.stages, default.stages);
    assert_eq!(space.table_plan(64).unwrap().len(), 137);
    // A table of that space is refused with the default space, and the
    // message says to pass --space.
    let dir = tempfile::tempdir().unwrap();
    let mut header = settings_header(&space, "SYNTHETIC");
    header.remove(0);
    let table = write_table(&dir.path().join("two.csv"), 32, &header, &[], exact);
    fails_with(
        &profiler(&["validate", "--table", table.to_str().unwrap()]),
        &["space digest", "--space"],
    );
    // With --space it gets as far as the missing entries (the table is empty).
    fails_with(
        &profiler(&[
            "validate",
            "--table",
            table.to_str().unwrap(),
            "--space",
            path.to_str().unwrap(),
        ]),
        &["cannot predict", "nothing was measured"],
    );
}

#[test]
fn fit_names_the_file_line_of_a_bad_row_after_comment_lines() {
    let dir = tempfile::tempdir().unwrap();
    let table = full_table(dir.path());
    let rows = rows_file(dir.path(), &table, &[(4.0, 4.1), (5.0, 5.2)]);
    let text = std::fs::read_to_string(&rows).unwrap();
    // Lines 1-3 header and columns, 4 and 5 comments, 6 and 7 rows.
    let text = text.replacen("0,0,1,", "# a note\n# another\n0,0,1,", 1);
    let text = text.replacen(",5.2,0,5.2,", ",banana,0,5.2,", 1);
    std::fs::write(&rows, text).unwrap();
    fails_with(&fit(&rows, &table, &[]), &["line 7", "banana"]);
}

#[test]
fn fit_refuses_an_output_that_is_an_input_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let table = full_table(dir.path());
    let points: Vec<(f64, f64)> = (0..10).map(|i| (4.0 + i as f64, 5.0 + i as f64)).collect();
    let rows = rows_file(dir.path(), &table, &points);
    let before = std::fs::read(&rows).unwrap();
    fails_with(
        &fit(&rows, &table, &["--out", rows.to_str().unwrap()]),
        &["is also the validation rows"],
    );
    assert_eq!(std::fs::read(&rows).unwrap(), before);
    fails_with(
        &fit(&rows, &table, &["--out", "/nonexistent/dir/t.csv"]),
        &["does not exist"],
    );
    let out = dir.path().join("corrected.csv");
    succeeded(&fit(&rows, &table, &["--out", out.to_str().unwrap()]));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let table_name = table.file_name().unwrap().to_string_lossy().into_owned();
    let mut expected = vec![
        "corrected.csv".to_string(),
        "rows.csv".to_string(),
        table_name,
    ];
    expected.sort();
    assert_eq!(names, expected);
}
