//! End-to-end tests of the `profiler` binary on synthetic fixtures: what a
//! user sees for good and bad input, and the exit status.

#[path = "support/mod.rs"]
mod support;
use support::*;

use std::path::Path;
use std::process::Command;

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
fn plan_with_an_alignment_adds_the_unaligned_probes() {
    let out = profiler(&["plan", "--keys", "--width-step", "8", "--align", "8"]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("2981 entries"),
        "{}",
        text(&out.stderr)
    );
    let keys = text(&out.stdout);
    assert_eq!(keys.lines().count(), 2981);
    // TF-NAS-A's first width, 83, is a probe of its curve (a third of
    // [64, 128], 3 past 80).
    assert!(keys
        .lines()
        .any(|k| k == "mbconv_r112_i16_o24_s2_k3_m83_se32_relu"));
    let out = profiler(&["plan", "--align", "1"]);
    fails_with(&out, &["alignment", "[2, 256]"]);
}

/// `profiler plan --keys | head -1`: the reader goes away after one line;
/// the profiler ends as Unix tools do (SIGPIPE), not with a panic.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_profiler_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_profiler"))
        .args(["plan", "--width-step", "1", "--keys"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("stem_"), "{first}");
    // The reader (and with it the pipe's read end) is dropped here, while
    // about a megabyte of keys is still to be written.
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.signal(), Some(13), "{:?}: {err}", out.status);
}

#[test]
fn a_device_that_is_neither_an_index_nor_cpu_is_named_in_the_refusal() {
    let out = profiler(&["--device", "CPU"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "--device takes a CUDA device index (0, 1, ...) or cpu (in lower case), got 'CPU'"
        ),
        "{err}"
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
    // The plan is the command's output, on stdout.
    let plan = text(&out.stdout);
    // 11 layer shapes × (k3, k5) without SE.
    assert!(plan.contains("on 22 curves"), "{plan}");
    assert!(
        plan.contains("fixed_r112_i32_o16_s1_k3_m32_se0_relu"),
        "{plan}"
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

/// `check` says how precisely the table knows its medians: three entries
/// whose 95% intervals are ±0.2%, ±0.4% and ±1% of their medians.
#[test]
fn check_reports_the_precision_of_the_medians() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    std::fs::write(
        &path,
        "# format: tfnas-latency-table/1\n# device_name: SYNTHETIC for a test\n# batch: 32\n\
         key,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\n\
         stem_r224_i3_o32_s2_k3_m0_se0_relu,32,1.0,0.99,1.01,0.998,1.002,400,0\n\
         fixed_r112_i32_o16_s1_k3_m32_se8_relu,32,2.0,1.98,2.02,1.992,2.008,120,0\n\
         head_r7_i320_o1000_s1_k1_m1280_se0_swish,32,4.0,3.9,4.1,3.96,4.04,10,0\n",
    )
    .unwrap();
    let out = profiler(&["check", "--table", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "precision: the medians' 95% intervals are ±0.40% typically (median over entries), \
             ±1.00% at worst (head_r7_i320_o1000_s1_k1_m1280_se0_swish); 1 of 3 entries wider \
             than ±0.5%; 10..400 samples per entry"
        ),
        "{stdout}"
    );
}

/// `check` says whether `curve_fit: affine` prices the table by its curves'
/// lines: one curve on a parabola, its medians known to ±0.1% (the bend is
/// far beyond that: not applied) or to ±20% (within it: applied).
#[test]
fn check_says_whether_the_curves_lines_price_the_table() {
    let dir = tempfile::tempdir().unwrap();
    for (rel, applied) in [(0.001, false), (0.2, true)] {
        let rows: Vec<(space::BlockSpec, f64)> = [64, 72, 80, 88, 96]
            .into_iter()
            .map(|mid: u32| {
                let spec = format!("mbconv_r14_i80_o80_s1_k3_m{mid}_se0_swish");
                let ms = 1.0 + f64::from((mid - 56) * (mid - 56)) / 1000.0;
                (spec.parse().unwrap(), ms)
            })
            .collect();
        let header = [
            (space::meta::DEVICE_NAME, "SYNTHETIC for a test".to_string()),
            (space::meta::CURVE_FIT, "affine".to_string()),
        ];
        let path = write_table(
            &dir.path().join(format!("fit{rel}.csv")),
            32,
            &header,
            &rows,
            |ms| space::LatencyStats {
                ci_low_ms: ms * (1.0 - rel),
                ci_high_ms: ms * (1.0 + rel),
                ..exact(ms)
            },
        );
        let out = profiler(&["check", "--table", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let line = stdout
            .lines()
            .find(|l| l.starts_with("curve_fit affine"))
            .unwrap_or_else(|| panic!("{stdout}"));
        let stray: f64 = line
            .split("their lines by ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(
            line.contains("the 1 curves") && line.contains("at most 4 allowed"),
            "{line}"
        );
        if applied {
            assert!(
                line.starts_with("curve_fit affine: measured widths priced on their curve's line;"),
                "{line}"
            );
            assert!(stray <= 4.0, "{line}");
        } else {
            assert!(
                line.starts_with(
                    "curve_fit affine not applied: each measured width at its own entry"
                ),
                "{line}"
            );
            assert!(stray > 4.0, "{line}");
        }
    }
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
        fails_with(&out, &[&name, words]);
    }
    let missing = dir.path().join("absent.csv");
    fails_with(
        &profiler(&["check", "--table", missing.to_str().unwrap()]),
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
        fails_with(&out, &words);
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
    fails_with(&out, &["mbconv_r56_i24_o24_s1_k5_m96_se0_relu"]);
}

/// The project's `.venv` Python where it can import `module` (which
/// `scripts/setup.sh` installs); `None`, saying why, where it cannot.
fn venv_python_with(module: &str) -> Option<std::path::PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let probe = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output();
    if probe.is_ok_and(|o| o.status.success()) {
        Some(python)
    } else {
        eprintln!("skipped: no {module} in .venv (run scripts/setup.sh)");
        None
    }
}

/// pandas, the tool users reach for first, must read a table as documented:
/// `pd.read_csv(path, comment='#')`. Runs where setup installed pandas.
#[test]
fn pandas_reads_the_table() {
    let Some(python) = venv_python_with("pandas") else {
        return;
    };
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

// ---- Building a table and measuring on the GPU (issue 3): the paths a
// machine without CUDA takes. With a driver present they would time for
// real, so they skip there (the GPU check runs them under scripts/).

fn has_cuda_driver() -> bool {
    profiler::cuda::device::driver_present()
}

#[test]
fn without_a_driver_the_table_build_fails_cleanly_with_status_2() {
    if has_cuda_driver() {
        eprintln!("skipped: a CUDA driver is present; this test covers machines without one");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("t.csv");
    for args in [
        vec!["--device", "0"],
        vec![],
        vec!["--device", "3", "--out", out_file.to_str().unwrap()],
    ] {
        let out = profiler(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("error: no CUDA driver"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            out.stdout.is_empty(),
            "no partial table: {}",
            text(&out.stdout)
        );
    }
    assert!(!out_file.exists(), "no file without a device");
}

#[test]
fn without_a_driver_measure_fails_cleanly_with_status_2() {
    if has_cuda_driver() {
        eprintln!("skipped: a CUDA driver is present; this test covers machines without one");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("a.json");
    std::fs::write(&arch, space::Architecture::tfnas_a().to_json_pretty()).unwrap();
    for args in [
        vec!["measure", "--arch", arch.to_str().unwrap(), "--device", "0"],
        vec!["measure", "--arch", arch.to_str().unwrap(), "--per-block"],
        vec!["verify", "--device", "0", "--network"],
    ] {
        let out = profiler(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("error: no CUDA driver"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_bad_device_index_is_named() {
    if !has_cuda_driver() {
        eprintln!("skipped: no CUDA driver on this machine");
        return;
    }
    let out = profiler(&["--device", "999"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("no CUDA device 999"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn settings_are_checked_before_the_gpu_is_touched() {
    // These fail the same way with or without a GPU.
    let out = profiler(&["--dtype", "fp16"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("dtype fp16 is not supported"),
        "{}",
        text(&out.stderr)
    );
    let out = profiler(&["--launch", "fast"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown launch mode 'fast'"));
    let out = profiler(&["--width-step", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("width step"),
        "{}",
        text(&out.stderr)
    );
    // An output folder that does not exist, for the build and validate.
    let table = fixture("tfnas_a_synthetic.csv");
    for args in [
        vec!["--out", "/nonexistent/dir/t.csv"],
        vec![
            "validate",
            "--table",
            table.to_str().unwrap(),
            "--out",
            "/nonexistent/dir/t.csv",
        ],
    ] {
        let out = profiler(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(
                "--out /nonexistent/dir/t.csv: the folder /nonexistent/dir does not exist"
            ),
            "{args:?}: {err}"
        );
    }
    // Subcommands still parse, and build flags do not mix with them.
    let out = profiler(&["plan", "--width-step", "64"]);
    assert!(out.status.success());
    let out = profiler(&["--batch", "8", "plan"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `tests/fixtures/space_oom.json` is scripts/gpu-check.sh's out-of-memory
/// check: its table build must finish the stem and the second stem, then
/// fail on the one searchable block, whose expansion output alone must not
/// fit in the largest GPU the device tool lends (an H200's 141 GB) at the
/// default batch.
#[test]
fn the_oom_fixture_cannot_fit_after_two_blocks_that_do() {
    let space = space::SearchSpaceConfig::from_path(&fixture("space_oom.json")).unwrap();
    let plan = space.table_plan(8).unwrap();
    let kinds: Vec<_> = plan.blocks.iter().map(|b| b.shape.kind).collect();
    use space::BlockKind::*;
    assert_eq!(kinds, [Stem, Fixed, Mbconv, Head]);
    let bytes = |b: &space::BlockSpec| {
        let r = u64::from(b.shape.resolution);
        32 * u64::from(b.mid_channels.max(b.shape.out_channels)) * r * r * 4
    };
    assert!(bytes(&plan.blocks[0]) < 1 << 30 && bytes(&plan.blocks[1]) < 1 << 30);
    assert!(
        bytes(&plan.blocks[2]) > 141_000_000_000,
        "{}",
        bytes(&plan.blocks[2])
    );
}

/// scripts/gpu-check.sh's PyTorch step (target 1) on the CPU: the block
/// list `predict --blocks` prints for TF-NAS-A, read by
/// `benches/pytorch_reference.py`, builds PyTorch modules that chain from
/// the input to the 1000 classes. A broken script would otherwise show only
/// on the GPU machine. Runs where setup installed torch.
#[test]
fn the_pytorch_reference_builds_tfnas_a_from_the_block_list() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let Some(python) = venv_python_with("torch") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = profiler(&[
        "predict",
        "--table",
        fixture("tfnas_a_synthetic.csv").to_str().unwrap(),
        "--arch",
        fixture("tfnas_a.json").to_str().unwrap(),
        "--blocks",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys = dir.path().join("blocks.txt");
    std::fs::write(&keys, &out.stdout).unwrap();
    // The profiler's log is empty here, as when `measure` failed.
    let log = dir.path().join("measure.log");
    std::fs::write(&log, "").unwrap();
    let ran = Command::new(&python)
        .arg(root.join("benches/pytorch_reference.py"))
        .arg(&log)
        .arg("--keys")
        .arg(&keys)
        .arg("--dry-run")
        .output()
        .unwrap();
    let stdout = text(&ran.stdout);
    assert!(ran.status.success(), "{stdout}\n{}", text(&ran.stderr));
    let blocks = space::Architecture::tfnas_a().block_specs().unwrap().len();
    assert!(
        stdout.contains(&format!(
            "dry run: {blocks} blocks chain to output (1, 1000)"
        )),
        "{stdout}"
    );
}

/// `tests/fixtures/tfnas_a.json` is what scripts/gpu-check.sh hands to
/// `profiler measure` on the GPU machine (no Rust there to write it); it must
/// stay the library's TF-NAS-A. `UPDATE_FIXTURES=1` rewrites it.
#[test]
fn the_tfnas_a_fixture_is_the_library_architecture() {
    let path = fixture("tfnas_a.json");
    let want = space::Architecture::tfnas_a().to_json_pretty() + "\n";
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let got = std::fs::read_to_string(&path).unwrap();
    assert_eq!(got, want, "run with UPDATE_FIXTURES=1 to refresh");
}

/// The CPU reference that `profiler verify` holds the GPU to must itself
/// compute what PyTorch computes: the same input and folded weights through
/// `torch.nn.functional`, block by block. Runs where setup installed torch.
#[test]
fn the_cpu_reference_matches_pytorch() {
    use profiler::reference::{random_params, reference_layer, Rng};
    use space::layers::{block_input_len, block_layers, Layer};
    let Some(python) = venv_python_with("torch") else {
        return;
    };
    let batch = 2;
    let mut cases = Vec::new();
    for key in [
        "stem_r16_i3_o8_s2_k3_m0_se0_relu",
        "fixed_r8_i8_o4_s1_k3_m8_se2_relu",
        "mbconv_r8_i8_o8_s1_k3_m24_se8_swish",
        "mbconv_r9_i8_o16_s2_k5_m32_se0_hswish",
        "head_r4_i8_o10_s1_k1_m16_se0_swish",
    ] {
        let spec: space::BlockSpec = key.parse().unwrap();
        let mut rng = Rng::new(3);
        let input = rng.fill(batch * block_input_len(&spec), -1.0, 1.0);
        let mut x = input.clone();
        let mut layers = Vec::new();
        for layer in block_layers(&spec) {
            let p = random_params(&layer, &mut rng);
            x = reference_layer(&layer, &p, batch, &x, &input);
            let act = |a: Option<space::Activation>| a.map_or("none".into(), |a| a.to_string());
            layers.push(match layer {
                Layer::Conv {
                    cin,
                    cout,
                    kernel,
                    stride,
                    groups,
                    act: a,
                    residual,
                    ..
                } => serde_json::json!({
                    "kind": "conv", "cin": cin, "cout": cout, "k": kernel, "s": stride,
                    "groups": groups, "act": act(a), "residual": residual, "w": p.w, "b": p.b,
                }),
                Layer::Se {
                    channels,
                    se,
                    act: a,
                    ..
                } => serde_json::json!({
                    "kind": "se", "c": channels, "se": se, "act": act(Some(a)),
                    "w1": p.w, "b1": p.b, "w2": p.w2, "b2": p.b2,
                }),
                Layer::Pool { .. } => serde_json::json!({"kind": "pool"}),
                Layer::Fc { cin, cout } => serde_json::json!({
                    "kind": "fc", "cin": cin, "cout": cout, "w": p.w, "b": p.b,
                }),
            });
        }
        let s = spec.shape;
        cases.push(serde_json::json!({
            "key": key, "shape": [batch, s.in_channels, s.resolution, s.resolution],
            "input": input, "layers": layers, "output": x,
        }));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.json");
    std::fs::write(&path, serde_json::to_string(&cases).unwrap()).unwrap();
    let script = r#"
import json, sys, torch
import torch.nn.functional as F
acts = {"none": lambda x: x, "relu": F.relu, "swish": F.silu, "hswish": F.hardswish}
worst = 0.0
for case in json.load(open(sys.argv[1])):
    x = torch.tensor(case["input"], dtype=torch.float64).reshape(case["shape"])
    block_in = x
    for l in case["layers"]:
        t = lambda v: torch.tensor(v, dtype=torch.float64)
        if l["kind"] == "conv":
            w = t(l["w"]).reshape(l["cout"], l["cin"] // l["groups"], l["k"], l["k"])
            x = acts[l["act"]](F.conv2d(x, w, t(l["b"]), l["s"], l["k"] // 2, groups=l["groups"]))
            if l["residual"]:
                x = x + block_in
        elif l["kind"] == "se":
            c, se = l["c"], l["se"]
            p = x.mean(dim=(2, 3))
            h = acts[l["act"]](p @ t(l["w1"]).reshape(se, c).T + t(l["b1"]))
            g = torch.sigmoid(h @ t(l["w2"]).reshape(c, se).T + t(l["b2"]))
            x = x * g[:, :, None, None]
        elif l["kind"] == "pool":
            x = x.mean(dim=(2, 3))
        else:
            x = x @ t(l["w"]).reshape(l["cout"], l["cin"]).T + t(l["b"])
    want = t(case["output"])
    err = (x.flatten() - want).abs().max().item() / max(1e-12, x.abs().max().item())
    print(case["key"], tuple(x.shape), f"{err:.2e}")
    worst = max(worst, err)
print("worst", worst)
sys.exit(0 if worst < 1e-5 else 1)
"#;
    let out = Command::new(&python)
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    eprint!("{}", text(&out.stdout));
}

/// A well-formed key of no network of the space (`m9999`): `check` counts
/// it apart, `predict` refuses the table naming it and its line.
#[test]
fn keys_outside_the_space_are_reported_by_check_and_refused_by_predict() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("tfnas_a_synthetic.csv")).unwrap();
    let path = dir.path().join("t.csv");
    let bad = format!(
        "{good}mbconv_r28_i40_o80_s2_k5_m9999_se0_swish,32,0.2,0.198,0.202,0.199,0.201,100,0\n"
    );
    std::fs::write(&path, &bad).unwrap();
    let line = bad.lines().count();
    let out = profiler(&["check", "--table", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("outside the space: 1 entry is")
            && stdout.contains(&format!("m9999_se0_swish' (line {line})")),
        "{stdout}"
    );
    let arch = dir.path().join("a.json");
    std::fs::write(&arch, space::Architecture::tfnas_a().to_json_pretty()).unwrap();
    fails_with(
        &profiler(&[
            "predict",
            "--table",
            path.to_str().unwrap(),
            "--arch",
            arch.to_str().unwrap(),
        ]),
        &[&format!("t.csv:{line}:"), "no network of the space"],
    );
}

/// `compare --plot` onto one of its tables is refused before anything is
/// read or drawn.
#[test]
fn a_plot_over_a_compared_table_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.png");
    std::fs::copy(fixture("tfnas_a_synthetic.csv"), &a).unwrap();
    let before = std::fs::read(&a).unwrap();
    let b = fixture("tfnas_a_synthetic.csv");
    fails_with(
        &profiler(&[
            "compare",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--plot",
            a.to_str().unwrap(),
        ]),
        &["is also the table A"],
    );
    assert_eq!(std::fs::read(&a).unwrap(), before);
}
