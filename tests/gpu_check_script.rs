//! `scripts/gpu-check.sh` on the CPU: its plan of steps within the first
//! GPU call's budget, and the library path it gives the profiler and the
//! searcher (issue 17). The steps themselves need the GPU machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu-check.sh")
}

/// `bash scripts/gpu-check.sh ARGS` with `vars` set and every other
/// setting of the script cleared.
fn gpu_check(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(args);
    for var in [
        "GPU_CHECK_BUDGET",
        "GPU_CHECK_CALL",
        "GPU_CHECK_ONLY",
        "GPU_CHECK_BIN",
        "SEARCHER",
        "VALIDATE",
        "FULL",
        "TABLE",
        "TABLE_FROM",
        "OUT",
        "GPU_CHECK_WORK",
        "MAIN_JOB",
        "RUN_BIN",
        "RUN_SEARCHER_LIBS",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(vars.iter().copied());
    cmd.output().expect("bash runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One line of the plan: `step CALL NAME cap N s ends by M s VERDICT`.
#[derive(Debug)]
struct Planned {
    call: String,
    name: String,
    cap: u32,
    ends_by: u32,
    verdict: String,
}

fn plan(vars: &[(&str, &str)]) -> Vec<Planned> {
    let out = gpu_check(&["plan"], vars);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| l.starts_with("step "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // step CALL NAME cap N s ends by M s VERDICT...
            assert_eq!(
                (w[3], w[5], w[6], w[7], w[9]),
                ("cap", "s", "ends", "by", "s"),
                "{l}"
            );
            Planned {
                call: w[1].into(),
                name: w[2].into(),
                cap: w[4].parse().unwrap(),
                ends_by: w[8].parse().unwrap(),
                verdict: w[10..].join(" "),
            }
        })
        .collect()
}

const PRIORITY: [&str; 5] = [
    "environment",
    "open-one-block",
    "measure-graph",
    "pytorch",
    "verify",
];

#[test]
fn the_first_calls_steps_all_fit_a_250_s_budget_even_at_their_caps() {
    let steps = plan(&[("GPU_CHECK_BUDGET", "250"), ("GPU_CHECK_CALL", "1")]);
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, PRIORITY, "{steps:#?}");
    let mut total = 0;
    for s in &steps {
        total += s.cap;
        assert_eq!(s.verdict, "fits", "{s:?}");
        assert_eq!(s.ends_by, total, "{s:?}");
        if s.call == "1" {
            assert!(s.cap >= 30, "{s:?}: too short a cap to open the engine");
        }
    }
    assert!(total <= 250, "{total} s of caps");
    // The PyTorch reference, which needs the measurement before it, has
    // the most time.
    let pytorch = steps.iter().find(|s| s.name == "pytorch").unwrap();
    assert!(steps.iter().all(|s| s.cap <= pytorch.cap));
}

#[test]
fn without_a_call_the_priority_steps_come_first_and_the_unit_tests_after() {
    let steps = plan(&[("GPU_CHECK_BUDGET", "250")]);
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names[..PRIORITY.len()], PRIORITY, "{names:?}");
    assert!(steps[..PRIORITY.len()].iter().all(|s| s.verdict == "fits"));
    let unit = names.iter().position(|n| *n == "unit-tests").unwrap();
    assert_eq!(unit, PRIORITY.len(), "{names:?}");
    assert_eq!(steps[unit].call, "2");
    // At their caps, nothing of the second call fits after the first.
    assert!(
        steps[unit..].iter().all(|s| s.verdict != "fits"),
        "{steps:#?}"
    );
}

#[test]
fn the_second_call_runs_the_gpu_unit_tests_and_the_ratio_in_turns_first_then_the_repeats() {
    let steps = plan(&[("GPU_CHECK_BUDGET", "400"), ("GPU_CHECK_CALL", "2")]);
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names[..6],
        [
            "environment",
            "unit-tests",
            "measure-versus",
            "repeat-a",
            "repeat-b",
            "repeat-compare"
        ]
    );
    assert!(steps[..6].iter().all(|s| s.verdict == "fits"), "{steps:#?}");
    assert!(steps[1..].iter().all(|s| s.call == "2"));
    assert!(!names.contains(&"measure-graph") && !names.contains(&"pytorch"));
    assert!(steps.iter().all(|s| s.ends_by <= 400));
}

/// An executable shell script at `path` that runs `body`.
fn executable(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// $PATH with the folder `stubs` in front, so that its scripts stand in
/// for the machine's commands.
fn path_with(stubs: &Path) -> String {
    format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A folder with an empty file of each name.
fn folder(root: &Path, rel: &str, files: &[&str]) -> String {
    let d = root.join(rel);
    std::fs::create_dir_all(&d).unwrap();
    for f in files {
        std::fs::write(d.join(f), "").unwrap();
    }
    d.to_str().unwrap().to_string()
}

#[test]
fn the_profiler_keeps_only_folders_with_libcuda_and_never_torchs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let driver = folder(root, "usr/local/nvidia/lib64", &["libcuda.so.1"]);
    let other = folder(root, "usr/lib/cuda", &["libcuda.so"]);
    let torch = folder(root, "venv/site-packages/torch/lib", &["libcuda.so.1"]);
    let pip = folder(
        root,
        "venv/site-packages/nvidia/cudnn/lib",
        &["libcudnn.so.9", "libcuda.so.1"],
    );
    let empty = folder(root, "opt/empty", &[]);
    let path = [
        driver.as_str(),
        &torch,
        "",
        &pip,
        &empty,
        "/no/such/folder",
        &other,
        &driver,
    ]
    .join(":");
    let out = gpu_check(&["libpath"], &[("LD_LIBRARY_PATH", &path)]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim_end(), format!("{driver}:{other}"));
    // The path as it was is said.
    assert!(String::from_utf8_lossy(&out.stderr).contains(&path));
    // Nothing that provides libcuda: nothing is kept (and `run` unsets it).
    let out = gpu_check(&["libpath"], &[("LD_LIBRARY_PATH", &torch)]);
    assert_eq!(stdout(&out).trim_end(), "");
}

/// `run` with stub binaries, a stub python3 and no GPU: the profiler sees
/// only the folders that provide libcuda, the searcher torch's lib/ in
/// front of them, and both paths are logged; the logs are kept outside
/// $OUT, which holds the summary and the logs packed (the device hands
/// back at most 8 files).
#[test]
fn run_logs_the_path_and_the_searcher_extends_what_the_profiler_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let driver = folder(root, "nvidia/lib64", &["libcuda.so.1"]);
    let torch = folder(root, "venv/site-packages/torch/lib", &["libtorch.so"]);
    let bin = root.join("bin");
    let stubs = root.join("stubs");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&stubs).unwrap();
    let says_path = "echo \"LD_LIBRARY_PATH=${LD_LIBRARY_PATH-unset}\"";
    for name in ["profiler", "profiler-unit-tests", "searcher"] {
        executable(&bin.join(name), says_path);
    }
    // torch's lib/ for `import torch` one-liners; nothing else.
    executable(
        &stubs.join("python3"),
        &format!("case \"$2\" in *torch.__file__*) echo {torch};; esac\nexit 0"),
    );
    let out_dir = root.join("out");
    let work = root.join("work");
    let path = path_with(&stubs);
    let before = format!("{torch}:{driver}");
    let out = gpu_check(
        &["run"],
        &[
            ("GPU_CHECK_BIN", bin.to_str().unwrap()),
            ("OUT", out_dir.to_str().unwrap()),
            ("GPU_CHECK_WORK", work.to_str().unwrap()),
            ("GPU_CHECK_ONLY", "measure-graph searcher-demo"),
            ("GPU_CHECK_BUDGET", "60"),
            ("SEARCHER", "1"),
            ("PATH", &path),
            ("LD_LIBRARY_PATH", &before),
        ],
    );
    let read = |name: &str| std::fs::read_to_string(work.join(name)).unwrap_or_default();
    let summary = std::fs::read_to_string(out_dir.join("summary.txt")).unwrap_or_default();
    let log = format!(
        "{}\n{}\nsummary:\n{summary}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{log}");
    assert_eq!(
        read("measure-graph.log").trim_end(),
        format!("LD_LIBRARY_PATH={driver}"),
        "{log}"
    );
    assert_eq!(
        read("searcher-demo.log").trim_end(),
        format!("LD_LIBRARY_PATH={torch}:{driver}"),
        "{log}"
    );
    let paths = read("library-path.log");
    assert!(paths.contains(&format!("before: {before}")), "{paths}");
    assert!(paths.contains(&format!("dropped): {driver}")), "{paths}");
    assert!(summary.contains(&format!("before: {before}")), "{summary}");
    assert!(summary.contains("measure-graph          PASS"), "{summary}");
    assert!(read("environment.log").contains(&format!("runs with: {driver}")));
    // $OUT: the summary and the packed logs, nothing else.
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["logs.tgz", "summary.txt"], "{log}");
    let packed = Command::new("tar")
        .arg("-tzf")
        .arg(out_dir.join("logs.tgz"))
        .output()
        .unwrap();
    let packed = stdout(&packed);
    for name in [
        "measure-graph.log",
        "searcher-demo.log",
        "steps.txt",
        "library-path.log",
    ] {
        assert!(packed.contains(name), "{name} not in logs.tgz:\n{packed}");
    }
}

/// A step that needs a file an earlier step makes is noted SKIP with why,
/// not run against nothing.
#[test]
fn a_focused_rerun_without_the_subset_skips_the_refusal_that_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for name in ["profiler", "profiler-unit-tests"] {
        executable(&bin.join(name), "echo ran \"$@\"");
    }
    let out_dir = root.join("out");
    let out = gpu_check(
        &["run"],
        &[
            ("GPU_CHECK_BIN", bin.to_str().unwrap()),
            ("OUT", out_dir.to_str().unwrap()),
            ("GPU_CHECK_WORK", root.join("work").to_str().unwrap()),
            ("GPU_CHECK_ONLY", "refuse-other-batch"),
            ("GPU_CHECK_BUDGET", "60"),
        ],
    );
    let summary = std::fs::read_to_string(out_dir.join("summary.txt")).unwrap_or_default();
    assert!(out.status.success(), "{}{summary}", stdout(&out));
    assert!(
        summary.contains("refuse-other-batch     SKIP     (no subset.csv"),
        "{summary}"
    );
}

/// MAIN_JOB=1 runs scripts/run.sh on the carried binaries, with no setup
/// and no cargo; on a machine without a GPU it stops at once, saying why
/// (the carried folder has no CPU engine).
#[test]
fn the_main_job_runs_the_carried_binaries_and_without_a_gpu_says_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (bin, stubs) = (root.join("bin"), root.join("stubs"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&stubs).unwrap();
    for name in ["profiler", "profiler-unit-tests", "searcher"] {
        executable(&bin.join(name), "echo ran");
    }
    // No GPU here, whatever the machine running the tests has; cargo
    // would say it was called.
    executable(&stubs.join("nvidia-smi"), "exit 1");
    executable(&stubs.join("cargo"), "echo cargo was called; exit 1");
    let path = path_with(&stubs);
    let out_dir = root.join("out");
    let work = root.join("work");
    let out = gpu_check(
        &["run"],
        &[
            ("GPU_CHECK_BIN", bin.to_str().unwrap()),
            ("OUT", out_dir.to_str().unwrap()),
            ("GPU_CHECK_WORK", work.to_str().unwrap()),
            ("GPU_CHECK_ONLY", "main-job"),
            ("GPU_CHECK_BUDGET", "60"),
            ("MAIN_JOB", "1"),
            ("PATH", &path),
        ],
    );
    let summary = std::fs::read_to_string(out_dir.join("summary.txt")).unwrap_or_default();
    let log = std::fs::read_to_string(work.join("main-job.log")).unwrap_or_default();
    assert!(out.status.success(), "{}{summary}", stdout(&out));
    assert!(
        summary.contains("main-job               FAIL     exit 2"),
        "{summary}"
    );
    assert!(
        log.contains(&format!(
            "error: RUN_BIN={} has no profiler-cpu",
            bin.display()
        )),
        "{log}"
    );
    assert!(
        !log.contains("cargo was called") && !log.contains("setup:"),
        "{log}"
    );
}

/// `targets` without the folder of the logs is refused in one line.
#[test]
fn targets_without_a_folder_is_refused_in_one_error_line() {
    let out = gpu_check(&["targets"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: targets needs DIR"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
