//! End-to-end tests of `searcher train`: a short run on the embedded set
//! learns well above chance and writes TF-NAS-named weights; a killed run
//! resumes from its last checkpoint to the uninterrupted result; a NaN loss
//! stops with the last good checkpoint kept; a damaged checkpoint and bad
//! inputs are refused before training.

use std::path::Path;
use std::process::{Command, Stdio};

mod searcher_support;
use searcher_support::{small_arch, text, train};

/// A short run on `images` embedded 48x48 images (80% trained on), batch
/// 16 at lr 0.05, on one CPU thread (two oversubscribe a busy 2-core
/// machine sixfold).
fn short_run(arch: &str, out: &Path, epochs: usize, images: usize) -> Vec<String> {
    [
        "--arch",
        arch,
        "--embedded-images",
        &images.to_string(),
        "--resolution",
        "48",
        "--epochs",
        &epochs.to_string(),
        "--batch-size",
        "16",
        "--lr",
        "0.05",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--seed",
        "3",
        "--out",
        &out.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The held-out top-1 of the last epoch line, in percent.
fn last_top1(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with("epoch "))
        .unwrap_or_else(|| panic!("no epoch line: {stderr}"));
    let rest = line.split("held-out loss").nth(1).unwrap();
    let top1 = rest.split("top-1 ").nth(1).unwrap();
    top1.split('%').next().unwrap().parse().unwrap()
}

#[test]
fn a_short_run_learns_well_above_chance_and_writes_tfnas_named_weights() {
    let dir = tempfile::tempdir().unwrap();
    let arch = small_arch(dir.path());
    let out = dir.path().join("model.safetensors");
    let ran = train(&short_run(&arch, &out, 6, 600));
    let (stdout, stderr) = (text(&ran.stdout), text(&ran.stderr));
    assert!(ran.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "recipe: 6 epochs, batch 16, SGD lr 0.05 (--lr)",
        "label smoothing 0.1",
        "drop-connect 0.2",
        "batch-norm scales start at 1",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    assert!(
        stderr.contains("epoch 6/6:") && stderr.contains("top-5"),
        "{stderr}"
    );
    // Ten classes: chance is 10%.
    let top1 = last_top1(&stderr);
    eprintln!("held-out top-1 after 6 epochs: {top1}%");
    assert!(
        top1 > 25.0,
        "held-out top-1 {top1}% is not well above chance: {stderr}"
    );
    let names: Vec<String> = tch::Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for name in [
        "first_stem.conv.weight",
        "first_stem.bn.weight",
        "second_stem.depth_conv.conv.weight",
        "stage1.0.inverted_bottleneck.conv.weight",
        "stage1.0.squeeze_excite.conv_reduce.bias",
        "stage3.1.point_linear.bn.running_var",
        "stage3.1.point_linear.bn.num_batches_tracked",
        "feature_mix_layer.bn.running_mean",
        "classifier.linear.weight",
        "classifier.linear.bias",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let arch = small_arch(dir.path());
    let straight = dir.path().join("straight.safetensors");
    let ran = train(&short_run(&arch, &straight, 3, 300));
    assert!(ran.status.success(), "{}", text(&ran.stderr));

    let killed = dir.path().join("killed.safetensors");
    let args = short_run(&arch, &killed, 3, 300);
    let mut child = Command::new(env!("CARGO_BIN_EXE_searcher"))
        .arg("train")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let checkpoint = dir.path().join("killed.ckpt");
    let start = std::time::Instant::now();
    while !checkpoint.exists() && start.elapsed().as_secs() < 300 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SIGKILL: no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(checkpoint.exists() && !killed.exists());

    let mut resume = args.clone();
    resume.push("--resume".into());
    let again = train(&resume);
    let (stdout, stderr) = (text(&again.stdout), text(&again.stderr));
    assert!(again.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("resumed from"), "{stdout}");
    assert!(!stderr.contains("epoch 1/3:"), "{stderr}");
    let read = |p: &Path| {
        let mut named = tch::Tensor::read_safetensors(p).unwrap();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    };
    for ((na, a), (nb, b)) in read(&straight).iter().zip(read(&killed).iter()) {
        assert_eq!(na, nb);
        assert!(a.equal(b), "{na} differs after the resume");
    }
}

#[test]
fn a_nan_loss_stops_with_the_last_good_checkpoint_kept() {
    let dir = tempfile::tempdir().unwrap();
    let arch = small_arch(dir.path());
    let out = dir.path().join("model.safetensors");
    let mut args = short_run(&arch, &out, 2, 300);
    args.extend(["--poison-epoch".into(), "2".into()]);
    let ran = train(&args);
    let stderr = text(&ran.stderr);
    assert_eq!(ran.status.code(), Some(2), "{stderr}");
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error.len(), 1, "{stderr}");
    assert!(
        error[0].contains("epoch 2, step 1")
            && error[0].contains("NaN")
            && error[0].contains("kept the checkpoint of epoch 1"),
        "{stderr}"
    );
    assert!(!out.exists());
    // The kept checkpoint is whole and resumes.
    let mut resume = short_run(&arch, &out, 2, 300);
    resume.push("--resume".into());
    let again = train(&resume);
    let stdout = text(&again.stdout);
    assert!(again.status.success(), "{stdout}\n{}", text(&again.stderr));
    assert!(stdout.contains("after epoch 1/2"), "{stdout}");
    // A checkpoint of another recipe is refused, naming the difference.
    let mut other = short_run(&arch, &out, 2, 300);
    other.extend(["--dropout".into(), "0.3".into()]);
    let ran = train(&other);
    let stderr = text(&ran.stderr);
    assert_eq!(ran.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another training run")
            && stderr.contains("--dropout: 0.2 in the checkpoint, 0.3 now"),
        "{stderr}"
    );
}

/// Refused with one `error:` line and status 2, nothing written.
fn refused(dir: &Path, args: &[String]) -> String {
    let before: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let ran = train(args);
    let stderr = text(&ran.stderr);
    assert_eq!(ran.status.code(), Some(2), "{stderr}");
    assert!(ran.stdout.is_empty(), "{}", text(&ran.stdout));
    let after: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "{stderr}");
    stderr
}

#[test]
fn a_damaged_training_checkpoint_is_refused_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let arch = small_arch(dir.path());
    let out = dir.path().join("model.safetensors");
    let ran = train(&short_run(&arch, &out, 1, 300));
    assert!(ran.status.success(), "{}", text(&ran.stderr));
    // Without the finished weights, --resume reads the checkpoint.
    std::fs::remove_file(&out).unwrap();
    let checkpoint = out.with_extension("ckpt");
    let whole = tch::Tensor::read_safetensors(&checkpoint).unwrap();
    let mut resume = short_run(&arch, &out, 1, 300);
    resume.push("--resume".into());
    let changed = whole.iter().position(|(n, _)| n.starts_with("w.")).unwrap();
    for (drop_checksum, expected) in [
        (true, "lacks its checksum tensor 'sha256'"),
        (false, "its checksum does not match its contents"),
    ] {
        let named: Vec<(String, tch::Tensor)> = whole
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| !(drop_checksum && n == "sha256"))
            .map(|(i, (n, t))| {
                // One weight changed after the file was written.
                let t = if i == changed {
                    t + 1.0
                } else {
                    t.shallow_clone()
                };
                (n.clone(), t)
            })
            .collect();
        tch::Tensor::write_safetensors(&named, &checkpoint).unwrap();
        let stderr = refused(dir.path(), &resume);
        assert!(
            stderr.contains("is not a readable training checkpoint") && stderr.contains(expected),
            "{stderr}"
        );
    }
}

#[test]
fn bad_inputs_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let arch = small_arch(dir.path());
    let out = dir.path().join("model.safetensors");
    let with = |flag: &str, value: &str| {
        let mut args = short_run(&arch, &out, 1, 300);
        match args.iter().position(|a| a == flag) {
            Some(at) => args[at + 1] = value.to_string(),
            None => args.extend([flag.to_string(), value.to_string()]),
        }
        args
    };
    for (flag, value, expected) in [
        ("--lr", "0", "--lr must be a number in (0, 10], got 0"),
        ("--lr", "NaN", "(0, 10]"),
        (
            "--dropout",
            "1",
            "--dropout must be a number in [0, 1), got 1",
        ),
        ("--batch-size", "1", "[2, 65536]"),
        ("--epochs", "0", "--epochs must be a number in [1, 100000]"),
        ("--label-smoothing", "-0.1", "[0, 1)"),
        ("--out", &arch, "architecture"),
        ("--arch", "/nonexistent/arch.json", "/nonexistent/arch.json"),
        ("--batch-size", "1000", "fewer than one batch of 1000"),
        (
            "--checkpoint",
            &out.display().to_string(),
            "is also the checkpoint",
        ),
    ] {
        let e = refused(dir.path(), &with(flag, value));
        assert!(e.contains(expected), "{flag} {value}: {e}");
    }
}
