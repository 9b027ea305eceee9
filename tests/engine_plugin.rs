//! An engine is a plug-in: `profiler-fake`, the fake engine on the shared
//! command line (`profiler_cli`) and nothing else, builds a table, resumes
//! it, measures a network and validates the table as the real engines do,
//! with the same files, lines, refusals and exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_profiler-fake"))
        .args(args)
        .output()
        .expect("profiler-fake runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout)
}

const FAST: [&str; 6] = ["--warmup-ms", "0", "--cap-ms", "5", "--min-samples", "3"];

/// Builds the default space's table at width step 64 into `dir`.
fn build(dir: &Path) -> (PathBuf, Output) {
    let table = dir.join("fake.csv");
    let mut args = vec!["--width-step", "64", "--out", table.to_str().unwrap()];
    args.extend(FAST);
    let out = fake(&args);
    (table, out)
}

#[test]
fn a_third_engine_builds_a_whole_table_and_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (table, out) = build(dir.path());
    ok(&out);
    let parsed = space::LatencyTable::from_path(&table).unwrap();
    let planned = space::SearchSpaceConfig::default()
        .table_plan(64)
        .unwrap()
        .len();
    assert_eq!(parsed.len(), planned);
    assert_eq!(parsed.metadata().get(space::meta::ENGINE), Some("fake/1"));
    assert!(parsed.boundary_ms() > 0.0, "the build probed the boundary");
    let err = text(&out.stderr);
    assert!(err.starts_with("fake: Fake GPU 80GB"), "{err}");
    assert!(
        err.contains(&format!("measured {planned} entries (0 already there)")),
        "{err}"
    );
    let (_, again) = build(dir.path());
    ok(&again);
    assert!(
        text(&again.stderr).contains(&format!("measured 0 entries ({planned} already there)")),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn a_third_engine_measures_a_network_and_its_blocks() {
    let arch = fixture("tfnas_a.json");
    let mut args = vec!["measure", "--arch", arch.to_str().unwrap(), "--per-block"];
    args.extend(FAST);
    let stdout = ok(&fake(&args));
    let first = stdout.lines().next().unwrap();
    assert!(first.starts_with("network tfnas_a ("), "{stdout}");
    assert!(first.contains("at batch 32, Fake GPU 80GB"), "{stdout}");
    assert!(stdout.contains("sum of per-block medians "), "{stdout}");
    assert!(stdout.contains("table prediction "), "{stdout}");
}

#[test]
fn measure_in_passes_prints_each_pass_and_their_median() {
    let arch = fixture("tfnas_a.json");
    let mut args = vec!["measure", "--arch", arch.to_str().unwrap(), "--passes", "3"];
    args.extend(FAST);
    let stdout = ok(&fake(&args));
    for pass in 1..=3 {
        assert!(
            stdout.contains(&format!("pass {pass}/3: network tfnas_a (")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("median of 3 pass medians"), "{stdout}");
    // The fake times a network alike every pass: one mode.
    assert!(!stdout.contains("unstable:"), "{stdout}");
    // One pass by default: no pass prefix, no summary line.
    let mut one = vec!["measure", "--arch", arch.to_str().unwrap()];
    one.extend(FAST);
    let stdout = ok(&fake(&one));
    assert!(stdout.starts_with("network tfnas_a ("), "{stdout}");
    assert!(!stdout.contains("pass medians"), "{stdout}");
}

#[test]
fn measure_versus_times_two_networks_in_turns_and_prints_their_ratio() {
    let (a, b) = (fixture("tfnas_a.json"), fixture("tfnas_a_up32.json"));
    let mut args = vec!["measure", "--arch", a.to_str().unwrap()];
    args.extend(["--versus", b.to_str().unwrap(), "--passes", "2"]);
    args.extend(FAST);
    let stdout = ok(&fake(&args));
    // The fake times a network by its blocks: the ratio is the one their
    // sums make, in each pass and in the summary.
    let table = |arch: &std::path::Path| {
        let blocks = space::Architecture::from_path(arch)
            .unwrap()
            .block_specs()
            .unwrap();
        profiler::measure::fake::FakeEngine::run_latency(
            &profiler::measure::engine::Workload::Network {
                name: String::new(),
                blocks,
            },
        )
    };
    let pct = (table(&b) / table(&a) - 1.0) * 100.0;
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("A/B over 2 passes, run by run"))
        .unwrap();
    let before = summary
        .split("% against network tfnas_a (21 blocks)")
        .next()
        .unwrap();
    let printed: f64 = before.rsplit(' ').next().unwrap().parse().unwrap();
    // Within the fake's ±0.05% jitter.
    assert!((printed - pct).abs() < 0.11, "{pct:+.2}% against\n{stdout}");
    assert!(
        before.ends_with(&format!("network tfnas_a_up32 (21 blocks) {printed:+.2}")),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("pass ")).count(),
        2,
        "{stdout}"
    );
    // Two engines, one device: its description once.
    let o = fake(&args);
    let said = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        said.lines().filter(|l| l.starts_with("fake: ")).count(),
        1,
        "{said}"
    );
    // --versus compares two architectures: without --arch it is refused.
    let o = fake(&["measure", "--versus", b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
}

#[test]
fn a_third_engine_validates_its_table_with_its_own_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (table, out) = build(dir.path());
    ok(&out);
    let rows = dir.path().join("rows.csv");
    let mut args = vec![
        "validate",
        "--table",
        table.to_str().unwrap(),
        "--samples",
        "4",
        "--json",
        "--out",
        rows.to_str().unwrap(),
    ];
    args.extend(FAST);
    let stdout = ok(&fake(&args));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["count"], 4, "{stdout}");
    // The fake's networks cost exactly what its table's sums and boundary
    // say, so the table predicts them within the fake's ±0.05% jitter.
    let median = report["median_ape_pct"].as_f64().unwrap();
    assert!(median < 0.1, "{stdout}");
    // Two passes: the fake's default, not a GPU's 1 or the CPU's 3.
    let back = std::fs::read_to_string(&rows).unwrap();
    let data: Vec<&str> = back
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .collect();
    assert_eq!(data.len(), 8, "{back}");
}

#[test]
fn a_third_engine_refuses_a_flag_that_disagrees_with_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (table, out) = build(dir.path());
    ok(&out);
    let o = fake(&[
        "validate",
        "--table",
        table.to_str().unwrap(),
        "--batch",
        "8",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("batch: table '32', flag '8'"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn given_networks_are_validated_by_file_and_resume_by_their_code() {
    let dir = tempfile::tempdir().unwrap();
    let (table, out) = build(dir.path());
    ok(&out);
    // Two networks the searcher might derive: TF-NAS-A, and a folder
    // holding a sampled one.
    let folder = dir.path().join("derived");
    std::fs::create_dir(&folder).unwrap();
    let sampled =
        space::Architecture::sample_nth_on(&space::SearchSpaceConfig::default(), 7, 0, 64).unwrap();
    std::fs::write(folder.join("n0.json"), sampled.to_json_pretty()).unwrap();
    let tfnas_a = fixture("tfnas_a.json");
    let rows = dir.path().join("rows.csv");
    let validate = |archs: &[&Path]| {
        let mut args = vec![
            "validate",
            "--table",
            table.to_str().unwrap(),
            "--passes",
            "1",
        ];
        args.extend(["--out", rows.to_str().unwrap()]);
        args.push("--arch");
        args.extend(archs.iter().map(|p| p.to_str().unwrap()));
        args.extend(FAST);
        fake(&args)
    };
    let o = validate(&[&tfnas_a, &folder]);
    let report = ok(&o);
    assert!(
        report.starts_with("validated 2 networks of space 'tfnas-imagenet' (given by --arch)"),
        "{report}"
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("tfnas_a.json"),
        "each network named by its file: {err}"
    );
    let back = std::fs::read_to_string(&rows).unwrap();
    assert!(back.contains(&sampled.code()), "{back}");
    // The same files resume; another file at a measured index is refused.
    let again = validate(&[&tfnas_a, &folder]);
    assert!(
        text(&again.stderr).contains("resuming: 2 of 2"),
        "{}",
        text(&again.stderr)
    );
    let swapped = validate(&[&folder, &tfnas_a]);
    assert_eq!(swapped.status.code(), Some(2));
    assert!(
        text(&swapped.stderr).contains("this run's --arch gives"),
        "{}",
        text(&swapped.stderr)
    );
    // --arch replaces sampling: its flags are refused beside it.
    let both = fake(&[
        "validate",
        "--table",
        table.to_str().unwrap(),
        "--samples",
        "3",
        "--arch",
        tfnas_a.to_str().unwrap(),
    ]);
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn a_third_engine_measures_a_probe_that_transfer_turns_into_a_whole_table() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, out) = build(dir.path());
    ok(&out);
    let a = reference.to_str().unwrap();
    let probe = dir.path().join("probe.csv");
    let p = probe.to_str().unwrap();
    let mut args = vec!["probe", "--reference", a, "--fraction", "0.15", "--out", p];
    args.extend(FAST);
    let err = text(&fake(&args).stderr);
    assert!(err.contains("timing a probe of "), "{err}");
    // The keys measured are the plan's, as --keys prints it.
    let keys = ok(&fake(&[
        "probe",
        "--reference",
        a,
        "--fraction",
        "0.15",
        "--keys",
    ]));
    let planned: std::collections::BTreeSet<&str> = keys.lines().collect();
    let table = space::LatencyTable::from_path(&probe).unwrap();
    let measured: std::collections::BTreeSet<String> =
        table.entries().iter().map(|e| e.spec.key()).collect();
    assert_eq!(
        measured,
        planned.iter().map(|k| k.to_string()).collect(),
        "the probe holds exactly the planned keys"
    );
    let whole = space::LatencyTable::from_path(&reference).unwrap();
    let of = table.metadata().get(space::meta::PROBE_OF).unwrap();
    assert!(
        of.starts_with(&format!("fake.csv sha256 {}", whole.content_sha256())),
        "{of}"
    );
    // Rerun: nothing to do. Another fraction, or the reference as --out:
    // refused, both files as they were.
    let again = text(&fake(&args).stderr);
    assert!(again.contains("measured 0 entries ("), "{again}");
    let before = std::fs::read(&probe).unwrap();
    let mut other = vec!["probe", "--reference", a, "--fraction", "0.3", "--out", p];
    other.extend(FAST);
    let refused = fake(&other);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("probe_of"),
        "{}",
        text(&refused.stderr)
    );
    // A reference of another space: refused before anything is timed.
    let table_text = std::fs::read_to_string(&reference).unwrap();
    let digest = space::SearchSpaceConfig::default().digest();
    let other_space = dir.path().join("other-space.csv");
    std::fs::write(
        &other_space,
        table_text.replace(&digest, "0123456789abcdef"),
    )
    .unwrap();
    let elsewhere = dir.path().join("elsewhere.csv");
    let o = fake(&[
        "probe",
        "--reference",
        other_space.to_str().unwrap(),
        "--fraction",
        "0.15",
        "--out",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("contradicts the space"),
        "{}",
        text(&o.stderr)
    );
    assert!(!elsewhere.exists());
    let onto = fake(&["probe", "--reference", a, "--fraction", "0.15", "--out", a]);
    assert_eq!(onto.status.code(), Some(2));
    assert!(text(&onto.stderr).contains("is the reference table"));
    assert_eq!(std::fs::read(&probe).unwrap(), before);
    assert_eq!(
        space::LatencyTable::from_path(&reference)
            .unwrap()
            .content_sha256(),
        whole.content_sha256()
    );
    // transfer makes the whole table of the probe's device from it; the
    // fake device is the reference's, so every entry comes back.
    let made =
        profiler::analysis::transfer::transfer(&profiler::analysis::transfer::TransferArgs {
            reference: reference.clone(),
            probe: probe.clone(),
            allow_batch: false,
            command: "test".into(),
        })
        .unwrap();
    assert_eq!(made.table.len(), whole.len());
    assert_eq!(made.measured, table.len());
}
