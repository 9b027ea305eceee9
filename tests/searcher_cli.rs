//! End-to-end tests of the `searcher` binary: a tiny search on the toy
//! fixture space and table, resuming it, and every input error refused
//! before training with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::Command;

mod searcher_support;
use searcher_support::{
    assert_refused, fixture, names, png_classes, searcher, text, tiny_search, tiny_table_text_with,
    with,
};

/// A short search on the two-stage toy space: seconds on a CPU.
fn tiny_args(out: &Path) -> Vec<String> {
    with(tiny_search(out, 3, 200), "--lambda", "1")
}

#[test]
fn a_tiny_search_writes_an_architecture_under_the_target_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out_path: PathBuf = dir.path().join("arch.json");
    let args = tiny_args(&out_path);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = searcher(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("libtorch 2.11.0"), "{stdout}");
    assert!(stdout.contains("CUDA available: "), "{stdout}");
    assert!(
        stderr.contains("epoch 1/3") && stderr.contains("epoch 3/3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("held-out acc") && stderr.contains("T 5.000"),
        "{stderr}"
    );
    assert!(stdout.contains("predicted latency"), "{stdout}");
    assert!(stdout.contains("multiply-adds"), "{stdout}");
    let arch = space::Architecture::from_path(&out_path).unwrap();
    let prediction = arch.prediction.clone().unwrap();
    assert!(prediction.latency_ms <= 3.0, "{prediction:?}");
    assert!(prediction
        .fingerprint
        .get("device_name")
        .unwrap()
        .contains("SYNTHETIC"));
    assert!(dir.path().join("arch.ckpt").exists());

    // Resuming a finished search runs no epoch and derives the same network.
    let mut resume: Vec<&str> = args.clone();
    resume.push("--resume");
    let again = searcher(&resume);
    let (stdout2, stderr2) = (text(&again.stdout), text(&again.stderr));
    assert!(again.status.success(), "{stdout2}\n{stderr2}");
    assert!(
        stdout2.contains("resumed from") && stdout2.contains("after epoch 3/3"),
        "{stdout2}"
    );
    assert!(!stderr2.contains("epoch 1/3"), "{stderr2}");
    assert_eq!(space::Architecture::from_path(&out_path).unwrap(), arch);
}

#[test]
fn unreadable_space_exits_2() {
    let out = searcher(&["--space", "/nonexistent/space.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("/nonexistent/space.toml"), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

/// Runs a command that must be refused before training: exit 2, nothing
/// on stdout (no banner before the error), no panic, and nothing written
/// into a fresh output folder when the command names no `--out`.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let default_out = dir.path().join("arch.json").display().to_string();
    let mut args = args.to_vec();
    if !args.contains(&"--out") {
        args.extend(["--out", &default_out]);
    }
    let err = assert_refused(&searcher(&args), &format!("{args:?}"));
    let left = names(dir.path());
    assert!(left.is_empty(), "left behind: {left:?}");
    err
}

#[test]
fn a_table_lacking_entries_is_refused_naming_them() {
    // The TF-NAS-A fixture prices one network, not the whole space.
    let err = refused(&[
        "--table",
        &fixture("tfnas_a_synthetic.csv"),
        "--device",
        "cpu",
    ]);
    assert!(
        err.contains("lacks") && err.contains("entries the search needs"),
        "{err}"
    );
    assert!(
        err.contains("mbconv_r112_i16_o24_s2_k3_m32_se0_relu"),
        "{err}"
    );
}

#[test]
fn a_target_outside_the_table_says_both_bounds() {
    let tiny = [
        "--space",
        &fixture("searcher_tiny_space.json"),
        "--table",
        &fixture("searcher_tiny_synthetic.csv"),
        "--device",
        "cpu",
    ];
    for target in ["100", "1.0"] {
        let mut args = tiny.to_vec();
        args.extend(["--target-ms", target]);
        let err = refused(&args);
        assert!(
            err.contains("2.3000 ms") && err.contains("10.6000 ms"),
            "{err}"
        );
    }
}

#[test]
fn a_target_that_is_not_a_positive_latency_is_refused_at_once() {
    for target in ["nan", "inf", "0", "-1", "4ms"] {
        let flag = format!("--target-ms={target}");
        let out = searcher(&[&flag, "--table", "/nonexistent/t.csv"]);
        assert_eq!(out.status.code(), Some(2), "{target}");
        let err = text(&out.stderr);
        assert!(
            err.contains("--target-ms") && err.contains("(0, 1000000]") && !err.contains("t.csv"),
            "{target}: {err}"
        );
    }
}

#[test]
fn a_table_correction_is_aimed_through_and_reported_in_measured_terms() {
    let dir = tempfile::tempdir().unwrap();
    // The tiny table with a fitted correction: measured = 2 · sum + 0.5.
    let table = dir.path().join("corrected.csv");
    std::fs::write(
        &table,
        tiny_table_text_with("# correction: linear a=2 b=0.5"),
    )
    .unwrap();
    let out_path = dir.path().join("arch.json");
    let args = with(
        tiny_args(&out_path),
        "--table",
        &table.display().to_string(),
    );
    // 6 ms measured is a sum of 2.75 ms, inside the table's 2.3..10.6.
    let args = with(args, "--target-ms", "6.0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = searcher(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("maps the target 6 ms to a sum of blocks of 2.7500 ms"),
        "{stdout}"
    );
    let arch = space::Architecture::from_path(&out_path).unwrap();
    let measured = arch.prediction.as_ref().unwrap().latency_ms;
    let t = space::LatencyTable::from_path(&table).unwrap();
    let sum = t.predict(&arch).unwrap().total_ms;
    assert!(
        (measured - (2.0 * sum + 0.5)).abs() < 1e-9,
        "{measured} vs {sum}"
    );
    assert!(sum <= 2.75 && measured <= 6.0, "{sum} {measured}");
    // The bounds of a refused target are in measured terms too.
    let mut far = args.clone();
    let i = far.iter().position(|a| *a == "--target-ms").unwrap() + 1;
    far[i] = "100";
    let err = refused(&far);
    assert!(
        err.contains("5.1000 ms") && err.contains("21.7000 ms"),
        "{err}"
    );
}

/// A table `profiler transfer` predicted (the tiny table as reference, a
/// synthetic probe at 1.5 times on ten of its keys: the fixtures
/// `searcher_tiny_probe.csv` and `searcher_tiny_transferred.csv`) is
/// searched like a measured one, and the searcher says in one line that it
/// is predicted.
#[test]
fn a_transferred_table_is_searched_and_named_as_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("arch.json");
    let table = fixture("searcher_tiny_transferred.csv");
    let args = with(tiny_args(&out_path), "--table", &table);
    let args = with(args, "--target-ms", "4.5");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = searcher(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let said: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("predicted by `profiler transfer`"))
        .collect();
    assert_eq!(said.len(), 1, "{stdout}");
    assert!(
        said[0].contains("not measured: 10 of 21 rows measured (the probe's)"),
        "{stdout}"
    );
    assert!(!stdout.contains("measured entry"), "{stdout}");
    let arch = space::Architecture::from_path(&out_path).unwrap();
    let t = space::LatencyTable::from_path(Path::new(&table)).unwrap();
    let sum = t.predict(&arch).unwrap().total_ms;
    assert!(sum <= 4.5 * (1.0 + 1e-12), "{sum}\n{stdout}");

    // The measured table it stands for prints no such line.
    let plain = searcher(&tiny_args(&dir.path().join("plain.json")));
    assert!(
        plain.status.success(),
        "{:?}\n{}",
        plain.status,
        text(&plain.stderr)
    );
    assert!(!text(&plain.stdout).contains("profiler transfer"));
}

#[test]
fn a_width_multiple_keeps_the_derived_widths_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("arch.json");
    let mut args = tiny_args(&out_path);
    args.extend(["--width-multiple".to_string(), "8".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = searcher(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let arch = space::Architecture::from_path(&out_path).unwrap();
    let widths: Vec<u32> = arch
        .stages
        .iter()
        .flat_map(|s| s.blocks.iter().map(|b| b.mid_channels))
        .collect();
    assert!(widths.iter().all(|w| w % 8 == 0), "{widths:?}");
    assert!(arch.prediction.unwrap().latency_ms <= 3.0);
    // A multiple no op's range holds is refused before training.
    let mut bad = args.clone();
    let n = bad.len();
    bad[n - 1] = "48";
    let err = refused(&bad);
    assert!(err.contains("hold no multiple of it"), "{err}");
}

#[test]
fn a_table_of_another_batch_is_refused() {
    let err = refused(&[
        "--space",
        &fixture("searcher_tiny_space.json"),
        "--table",
        &fixture("searcher_tiny_synthetic.csv"),
        "--target-ms",
        "3",
        "--latency-batch",
        "1",
    ]);
    assert!(
        err.contains("batch 32") && err.contains("asks for 1"),
        "{err}"
    );
}

#[test]
fn an_unreadable_dataset_is_refused_before_training() {
    let err = refused(&[
        "--space",
        &fixture("searcher_tiny_space.json"),
        "--table",
        &fixture("searcher_tiny_synthetic.csv"),
        "--target-ms",
        "3",
        "--data",
        "/nonexistent/images",
    ]);
    assert!(err.contains("/nonexistent/images"), "{err}");
}

#[test]
fn resume_without_a_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("arch.json");
    let mut args = tiny_args(&out_path);
    args.push("--resume".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = refused(&args);
    assert!(
        err.contains("no checkpoint") && err.contains("arch.ckpt"),
        "{err}"
    );
}

#[test]
fn searches_on_an_image_folder() {
    let dir = tempfile::tempdir().unwrap();
    let images = png_classes(dir.path(), &["circles", "squares"], 10, 12);
    let out_path = dir.path().join("arch.json");
    let args = with(tiny_args(&out_path), "--batch-size", "4");
    let args = with(args, "--epochs", "2");
    let args = with(args, "--data", &images.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = searcher(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("20 images, 2 classes") && stdout.contains("16 for weights, 4 held out"),
        "{stdout}"
    );
    assert!(stderr.contains("epoch 2/2"), "{stderr}");
    assert!(out_path.exists());
}

#[test]
fn a_killed_search_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let with_epochs = |out: &Path| with(tiny_args(out), "--epochs", "5");
    let straight = dir.path().join("straight.json");
    let args = with_epochs(&straight);
    let out = Command::new(env!("CARGO_BIN_EXE_searcher"))
        .args(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Kill a second run as soon as its first checkpoint lands.
    let killed = dir.path().join("killed.json");
    let args = with_epochs(&killed);
    let mut child = Command::new(env!("CARGO_BIN_EXE_searcher"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = dir.path().join("killed.ckpt");
    let start = std::time::Instant::now();
    while !checkpoint.exists() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(checkpoint.exists());

    let mut resume = args.clone();
    resume.push("--resume".into());
    let out = Command::new(env!("CARGO_BIN_EXE_searcher"))
        .args(&resume)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let resumed = text(&out.stdout);
    eprintln!(
        "{}",
        resumed
            .lines()
            .find(|l| l.contains("resumed"))
            .unwrap_or("")
    );
    assert!(resumed.contains("resumed from"));
    let a = space::Architecture::from_path(&straight).unwrap();
    let b = space::Architecture::from_path(&killed).unwrap();
    assert_eq!(a, b);
}

/// scripts/gpu-check.sh's PyTorch reference for the searcher's steps
/// (`benches/pytorch_search_step.py`) runs on the CPU too, and prints the
/// line the check's summary reads. A broken script would otherwise show
/// only on the GPU machine. Runs where setup installed torch.
#[test]
fn the_pytorch_search_step_reference_runs_and_prints_its_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    let probe = Command::new(&python).args(["-c", "import torch"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("skipped: no torch in .venv (run scripts/setup.sh)");
        return;
    }
    let ran = Command::new(&python)
        .arg(root.join("benches/pytorch_search_step.py"))
        .args(["--steps", "2", "--warmup", "1"])
        .output()
        .unwrap();
    let stdout = text(&ran.stdout);
    assert!(ran.status.success(), "{stdout}\n{}", text(&ran.stderr));
    // gpu-check.sh: r"weight step ([0-9.]+) ms, arch step ([0-9.]+) ms".
    let line = stdout
        .lines()
        .find(|l| l.contains("weight step"))
        .unwrap_or_else(|| panic!("no result line: {stdout}"));
    let after = |what: &str| -> f64 {
        let rest = line.split(what).nth(1).unwrap().trim_start();
        rest.split(" ms").next().unwrap().parse().unwrap()
    };
    assert!(
        after("weight step") > 0.0 && after("arch step") > 0.0,
        "{line}"
    );
}

/// The tiny table with a `width_step` header line.
fn tiny_table_with_width_step(dir: &Path, step: u32) -> String {
    let table = dir.join("stepped.csv");
    std::fs::write(
        &table,
        tiny_table_text_with(&format!("# width_step: {step}")),
    )
    .unwrap();
    table.display().to_string()
}

fn widths_of(path: &Path) -> Vec<u32> {
    space::Architecture::from_path(path)
        .unwrap()
        .stages
        .iter()
        .flat_map(|s| s.blocks.iter().map(|b| b.mid_channels))
        .collect()
}

#[test]
fn the_width_multiple_defaults_to_the_tables_width_step_and_method_strict_restores_one() {
    let dir = tempfile::tempdir().unwrap();
    let table = tiny_table_with_width_step(dir.path(), 8);
    let out_path = dir.path().join("arch.json");
    let args = with(tiny_args(&out_path), "--table", &table);
    // Each run is another search on the same --out: --restart says so.
    let run = |extra: &[&str]| {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push("--restart");
        all.extend(extra);
        let out = searcher(&all);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{stdout}\n{stderr}");
        stdout
    };
    let stdout = run(&[]);
    assert!(
        stdout.contains("width multiple 8: the table's width step"),
        "{stdout}"
    );
    let widths = widths_of(&out_path);
    assert!(widths.iter().all(|w| w % 8 == 0), "{widths:?}");
    // Which widths the table interpolates (the tiny table has gaps, as at
    // k5 48 of stage 1), said either way.
    let t = space::LatencyTable::from_path(Path::new(&table)).unwrap();
    let arch = space::Architecture::from_path(&out_path).unwrap();
    let interpolated = t
        .predict(&arch)
        .unwrap()
        .blocks
        .iter()
        .filter(|(_, e)| !e.is_measured())
        .count();
    if interpolated == 0 {
        assert!(
            stdout.contains("every width of the derived network is a measured entry"),
            "{stdout}"
        );
    } else {
        assert!(
            stdout.contains(&format!(
                "{interpolated} width(s) interpolated by the table"
            )),
            "{stdout}"
        );
    }
    let strict = run(&["--method-strict"]);
    assert!(
        strict.contains("width multiple 1: the method's granularity (--method-strict)"),
        "{strict}"
    );
    assert!(
        strict.contains("--method-strict: the method's argmax network"),
        "{strict}"
    );
    assert!(!strict.contains("landing extension"), "{strict}");
    // Both at once contradict each other.
    let mut both: Vec<&str> = args.iter().map(String::as_str).collect();
    both.extend(["--method-strict", "--width-multiple", "8"]);
    let out = searcher(&both);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot be used with"));
    // A table without the line: multiple 1, said so.
    let plain = tiny_args(&out_path);
    let mut plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    plain.push("--restart");
    let out = searcher(&plain);
    assert!(
        text(&out.stdout).contains("the table records no width step"),
        "{}",
        text(&out.stdout)
    );
}

/// `searcher land`: networks like the search's outputs, one JSON each, each
/// just under its target, for `profiler validate --arch`; a seed replays.
#[test]
fn land_writes_networks_just_under_targets_spread_over_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let table = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tables/reference/h100-pytorch-2.11-graph.csv");
    let land = |out: &Path| {
        searcher(&[
            "land",
            "--table",
            table.to_str().unwrap(),
            "--count",
            "3",
            "--seed",
            "5",
            "--out-dir",
            out.to_str().unwrap(),
        ])
    };
    let first = dir.path().join("first");
    let o = land(&first);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 3, "{}", text(&o.stdout));
    assert_eq!(
        names(&first),
        ["landed-00.json", "landed-01.json", "landed-02.json"]
    );
    for line in text(&o.stdout).lines() {
        let pct: f64 = line
            .rsplit_once('(')
            .unwrap()
            .1
            .trim_end_matches("%)")
            .parse()
            .unwrap();
        assert!((-1.0..=0.0).contains(&pct), "{line}");
    }
    let second = dir.path().join("second");
    assert!(land(&second).status.success());
    for name in names(&first) {
        assert_eq!(
            std::fs::read(first.join(&name)).unwrap(),
            std::fs::read(second.join(&name)).unwrap(),
            "{name}: a seed replays"
        );
    }
    let o = searcher(&[
        "land",
        "--table",
        table.to_str().unwrap(),
        "--count",
        "0",
        "--out-dir",
        "x",
    ]);
    assert_refused(&o, "--count 0");
}
