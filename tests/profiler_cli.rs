//! End-to-end tests of the `profiler` binary on synthetic fixtures: what a
//! user sees for good and bad input, and the exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn profiler(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_profiler"))
        .args(args)
        .output()
        .expect("profiler runs")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn plan_prints_the_space_and_counts() {
    let out = profiler(&["plan", "--keys", "--width-step", "8"]);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("2805 entries"), "{err}");
    assert!(err.contains("66 curves"), "{err}");
    let keys = text(&out.stdout);
    assert_eq!(keys.lines().count(), 2805);
    assert_eq!(
        keys.lines().next(),
        Some("stem_r224_i3_o32_s2_k3_m0_se0_relu")
    );
}

#[test]
fn a_space_without_se_is_a_config_file() {
    let mut space = space::SearchSpaceConfig {
        name: "tfnas-wose".into(),
        ..Default::default()
    };
    space.ops.retain(|o| o.se_ratio == 0);
    space.second_stem.se_channels = 0;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wose.json");
    std::fs::write(&path, space.to_json_pretty()).unwrap();
    let out = profiler(&["plan", "--space", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    // 11 layer shapes × (k3, k5) without SE.
    assert!(err.contains("on 22 curves"), "{err}");
    assert!(
        err.contains("fixed_r112_i32_o16_s1_k3_m32_se0_relu"),
        "{err}"
    );
}

#[test]
fn predicts_tfnas_a_from_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("a.json");
    std::fs::write(&arch, space::Architecture::tfnas_a().to_json_pretty()).unwrap();
    let table = fixture("tfnas_a_synthetic.csv");
    let out = profiler(&[
        "predict",
        "--table",
        table.to_str().unwrap(),
        "--arch",
        arch.to_str().unwrap(),
        "--blocks",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("interpolated 80..88"), "{stdout}");
    assert!(stdout.contains("at batch 32"), "{stdout}");
    assert!(stdout.contains("456.7M MACs"), "{stdout}");
}

#[track_caller]
fn fails_with(out: Output, words: &[&str]) {
    assert_eq!(out.status.code(), Some(2), "exit status");
    let err = text(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    for w in words {
        assert!(err.contains(w), "'{w}' not in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_tables_exit_2_naming_file_and_line() {
    let good = std::fs::read_to_string(fixture("tfnas_a_synthetic.csv")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            ",32,0.2,0.198,0.202,0.199,0.201,100,0",
            ",32,0.2,0.198",
            "9: column 'p90_ms'",
        ),
        (
            ",32,0.2,0.198,0.202,0.199,0.201,100,0",
            ",32,nan,0.198,0.202,0.199,0.201,100,0",
            "9: column 'median_ms'",
        ),
        (
            ",32,0.2,0.198,0.202,0.199,0.201,100,0",
            ",32,-0.2,-0.3,0.202,-0.25,0.201,100,0",
            "negative",
        ),
        ("fixed_r112", "fixd_r112", "unknown block kind"),
        (
            ",32,0.2,0.198,0.202,0.199,0.201,100,0",
            ",64,0.2,0.198,0.202,0.199,0.201,100,0",
            "contradicts the header's batch 32",
        ),
    ];
    for (i, (from, to, words)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.csv"));
        std::fs::write(&path, good.replacen(from, to, 1)).unwrap();
        let out = profiler(&["check", "--table", path.to_str().unwrap()]);
        let name = format!("bad{i}.csv:");
        fails_with(out, &[&name, words]);
    }
    let missing = dir.path().join("absent.csv");
    fails_with(
        profiler(&["check", "--table", missing.to_str().unwrap()]),
        &["absent.csv"],
    );
}

#[test]
fn bad_architectures_exit_2_naming_stage_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let table = fixture("tfnas_a_synthetic.csv");
    let good = space::Architecture::tfnas_a();
    let mut wide = good.clone();
    wide.stages[2].blocks[3].mid_channels = 700;
    let mut unknown = good.clone();
    unknown.stages[4].blocks[0].op = "k9_e6".into();
    let cases = [
        (
            wide.to_json_pretty(),
            vec!["stage 3, block 4", "out of range [320, 640]"],
        ),
        (
            unknown.to_json_pretty(),
            vec!["stage 5, block 1", "unknown op 'k9_e6'"],
        ),
        (
            "{\"stages\": [".to_string(),
            vec!["invalid architecture JSON"],
        ),
    ];
    for (i, (json, words)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("arch{i}.json"));
        std::fs::write(&path, json).unwrap();
        let out = profiler(&[
            "predict",
            "--table",
            table.to_str().unwrap(),
            "--arch",
            path.to_str().unwrap(),
        ]);
        fails_with(out, &words);
    }
    // A valid architecture the table does not cover names the missing keys.
    let mut uncovered = good;
    uncovered.stages[0].blocks[1].mid_channels = 96;
    let path = dir.path().join("uncovered.json");
    std::fs::write(&path, uncovered.to_json_pretty()).unwrap();
    let out = profiler(&[
        "predict",
        "--table",
        table.to_str().unwrap(),
        "--arch",
        path.to_str().unwrap(),
    ]);
    fails_with(out, &["mbconv_r56_i24_o24_s1_k5_m96_se0_relu"]);
}

/// pandas, the tool users reach for first, must read a table as documented:
/// `pd.read_csv(path, comment='#')`. Runs where setup installed pandas.
#[test]
fn pandas_reads_the_table() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let probe = Command::new(&python).args(["-c", "import pandas"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("skipped: no pandas in .venv (run scripts/setup.sh)");
        return;
    }
    let table = fixture("tfnas_a_synthetic.csv");
    let script = "import sys, pandas as pd\n\
        df = pd.read_csv(sys.argv[1], comment='#')\n\
        assert list(df.columns)[:3] == ['key', 'batch', 'median_ms'], df.columns\n\
        assert df['median_ms'].dtype.kind == 'f'\n\
        print(len(df), round(df['median_ms'].sum(), 6))";
    let out = Command::new(&python)
        .args(["-c", script, table.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let parsed = space::LatencyTable::from_path(&table).unwrap();
    let sum: f64 = parsed.entries().iter().map(|e| e.stats.median_ms).sum();
    assert_eq!(
        text(&out.stdout).trim(),
        format!("{} {}", parsed.len(), (sum * 1e6).round() / 1e6)
    );
}
