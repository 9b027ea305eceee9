//! `searcher export`: the exported TorchScript and ONNX files compute what
//! the Rust network computes (checked in Python: `torch.jit.load` and ONNX
//! Runtime), and every refusal is one `error:` line with nothing written.

mod searcher_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use searcher::network::Network;
use searcher_support::{fixture, searcher, text};
use space::{Activation, Architecture, SearchSpaceConfig};
use tch::{Device, Kind, Tensor};

fn write_f32(path: &Path, t: &Tensor) {
    let v = Vec::<f32>::try_from(&t.contiguous().view([-1])).unwrap();
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// The venv's Python when it has torch and onnxruntime. Without them the
/// round trip is skipped with a note, unless `SEARCHER_REQUIRE_PYTHON=1`
/// (scripts/test.sh), where their absence fails the test.
fn python_with_runtimes() -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import numpy, torch, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let message = "no .venv/bin/python with numpy, torch and onnxruntime (run scripts/setup.sh)";
    assert!(
        std::env::var("SEARCHER_REQUIRE_PYTHON").as_deref() != Ok("1"),
        "SEARCHER_REQUIRE_PYTHON=1 and {message}"
    );
    eprintln!("skipped: {message}");
    None
}

/// The default space with hard swish from stage 3 on, no SE anywhere and
/// 128x128 input: the other activation, the other SE case and another
/// resolution.
fn hswish_space() -> SearchSpaceConfig {
    let mut space = SearchSpaceConfig {
        input_resolution: 128,
        ..Default::default()
    };
    space.second_stem.se_channels = 0;
    space.ops.retain(|op| op.se_ratio == 0);
    for stage in space.stages.iter_mut().skip(2) {
        stage.activation = Activation::Hswish;
    }
    space
}

/// TF-NAS-A, three networks drawn from the TF-NAS space, one from the
/// hard-swish space.
fn cases() -> Vec<(String, Architecture)> {
    let tfnas_a = Architecture::from_path(Path::new(&fixture("tfnas_a.json"))).unwrap();
    let mut cases = vec![("tfnas_a".to_string(), tfnas_a)];
    let space = SearchSpaceConfig::default();
    for i in 0..3 {
        let arch = Architecture::sample_nth(&space, 22, i).unwrap();
        cases.push((format!("sampled_{i}"), arch));
    }
    let arch = Architecture::sample_nth(&hswish_space(), 22, 0).unwrap();
    cases.push(("hswish_no_se".to_string(), arch));
    cases
}

fn export(arch: &Path, weights: &Path, format: &str, out: &Path) {
    let run = searcher(&[
        "export".as_ref(),
        "--arch".as_ref(),
        arch.as_os_str(),
        "--weights".as_ref(),
        weights.as_os_str(),
        "--format".as_ref(),
        format.as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let said = text(&run.stdout);
    assert!(said.contains("both equal the architecture's"), "{said}");
}

/// Random weights are for latency work, so they must keep a trained
/// network's scale: with batch-norm statistics left at random values
/// TF-NAS-A's logits reached 5e3 (2e4 with its widths rounded up to 8), its
/// SE gates saturated to subnormal floats, and the exported module timed 2-5%
/// slower than the profiler's network of the same blocks
/// (docs/train-export.md, "Timing what is deployed").
#[test]
fn random_networks_normalise_as_trained_ones_do() {
    let arch = Architecture::from_path(Path::new(&fixture("tfnas_a_up8.json"))).unwrap();
    let net = Network::random(&arch, 0).unwrap();
    tch::manual_seed(1);
    let x = Tensor::randn([1, 3, 224, 224], (Kind::Float, Device::Cpu));
    let logits = tch::no_grad(|| net.forward(&x));
    let largest = logits.abs().max().double_value(&[]);
    assert!(
        largest.is_finite() && largest < 10.0,
        "|logit| up to {largest}"
    );
    let spread = logits.std(true).double_value(&[]);
    assert!(spread > 0.05, "logits nearly constant (sd {spread})");
}

/// Exports one case with trained-like weights (random, saved and given
/// with --weights) and writes the input and the Rust network's output.
fn prepare(dir: &Path, name: &str, arch: &Architecture, seed: u64) -> serde_json::Value {
    let file = |ext: &str| dir.join(format!("{name}.{ext}"));
    std::fs::write(file("json"), arch.to_json_pretty()).unwrap();
    let net = Network::random(arch, seed).unwrap();
    net.save(&file("safetensors")).unwrap();
    export(
        &file("json"),
        &file("safetensors"),
        "torchscript",
        &file("pt"),
    );
    export(&file("json"), &file("safetensors"), "onnx", &file("onnx"));
    let res = i64::from(arch.space.input_resolution);
    let x = Tensor::randn([2, 3, res, res], (Kind::Float, Device::Cpu));
    let y = tch::no_grad(|| net.forward(&x));
    write_f32(&file("in"), &x);
    write_f32(&file("ref"), &y);
    serde_json::json!({
        "name": name,
        "input": file("in"), "input_shape": x.size(),
        "reference": file("ref"), "output_shape": y.size(),
        "torchscript": file("pt"), "onnx": file("onnx"),
    })
}

#[test]
fn exports_compute_what_the_rust_network_computes() {
    let Some(python) = python_with_runtimes() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let all = cases();
    let specs: Vec<_> = all
        .iter()
        .flat_map(|(_, a)| a.block_specs().unwrap())
        .collect();
    assert!(specs.iter().any(|s| s.shape.se_channels > 0));
    assert!(specs
        .iter()
        .any(|s| s.shape.se_channels == 0 && s.mid_channels > 0));
    let manifest: Vec<_> = all
        .iter()
        .enumerate()
        .map(|(i, (name, arch))| prepare(dir.path(), name, arch, 100 + i as u64))
        .collect();
    let manifest_path = dir.path().join("cases.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/searcher_support/export_roundtrip.py");
    let run = Command::new(python)
        .arg(script)
        .arg(&manifest_path)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let results: Vec<serde_json::Value> = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(results.len(), all.len());
    for r in &results {
        eprintln!("round trip {r}");
        for format in ["torchscript", "onnx"] {
            let err = r[format].as_f64().unwrap();
            assert!(
                err < 1e-4,
                "{}: {format} differs by {err:e} relative",
                r["name"]
            );
        }
    }
}

fn refused(args: &[&str], what: &str) -> String {
    let run = searcher(args);
    let err = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{what}: {err}");
    assert!(err.starts_with("error:"), "{what}: {err}");
    err
}

#[test]
fn the_default_export_is_batch_1_at_224_with_the_architectures_counts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.onnx");
    let arch = fixture("tfnas_a.json");
    let run = searcher(&[
        "export",
        "--arch",
        &arch,
        "--format",
        "onnx",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let said = text(&run.stdout);
    let a = Architecture::tfnas_a();
    assert!(
        said.contains("at batch 1 and 3x224x224; weights random (seed 0)"),
        "{said}"
    );
    assert!(
        said.contains(&format!("{} parameters", a.params().unwrap())),
        "{said}"
    );
    assert!(
        said.contains(&format!("{} multiply-adds", a.macs().unwrap())),
        "{said}"
    );
    assert!(out.metadata().unwrap().len() > 4 * 8_000_000);
    let help = text(&searcher(&["export", "--help"]).stdout);
    assert!(
        help.contains("224") && help.contains("[default: 1]"),
        "{help}"
    );
}

#[test]
fn nonsense_is_refused_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let arch_path = dir.path().join("a.json");
    std::fs::copy(fixture("tfnas_a.json"), &arch_path).unwrap();
    let arch = arch_path.to_str().unwrap();
    let before = std::fs::read(&arch_path).unwrap();
    let out = dir.path().join("m.pt");
    let out_s = out.to_str().unwrap();

    refused(
        &[
            "export", "--arch", arch, "--format", "tflite", "--out", out_s,
        ],
        "format",
    );
    let err = refused(
        &["export", "--arch", arch, "--format", "onnx", "--out", arch],
        "out is arch",
    );
    assert!(err.contains("also the architecture"), "{err}");
    assert_eq!(std::fs::read(&arch_path).unwrap(), before);
    let missing = dir.path().join("no/such/folder/m.pt");
    refused(
        &[
            "export",
            "--arch",
            arch,
            "--format",
            "onnx",
            "--out",
            missing.to_str().unwrap(),
        ],
        "folder",
    );

    // Weights of another network of the space: the shape mismatch named.
    let other = Architecture::sample_nth(&SearchSpaceConfig::default(), 22, 5).unwrap();
    let weights = dir.path().join("other.safetensors");
    Network::random(&other, 1).unwrap().save(&weights).unwrap();
    let w = weights.to_str().unwrap();
    let err = refused(
        &[
            "export",
            "--arch",
            arch,
            "--weights",
            w,
            "--format",
            "torchscript",
            "--out",
            out_s,
        ],
        "weights",
    );
    assert!(
        err.contains("has shape") && err.contains("where this architecture needs"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let err = refused(
        &[
            "export",
            "--arch",
            arch,
            "--weights",
            w,
            "--format",
            "onnx",
            "--out",
            w,
        ],
        "out is weights",
    );
    assert!(err.contains("also the weights"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "only the inputs remain: {left:?}");
}
