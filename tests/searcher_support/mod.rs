//! Helpers shared by the end-to-end tests of the `searcher` binary (the
//! profiler's are in `tests/support/`).
// Each test file uses a different subset of these.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fixture's path, as an argument.
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Runs the searcher with `args` and waits for it.
pub fn searcher<S: AsRef<OsStr>>(args: &[S]) -> Output {
    searcher_with(args, [])
}

/// Runs the searcher with `args` and `envs` added to its environment.
pub fn searcher_with<S: AsRef<OsStr>, const N: usize>(
    args: &[S],
    envs: [(&str, &str); N],
) -> Output {
    Command::new(env!("CARGO_BIN_EXE_searcher"))
        .args(args)
        .envs(envs)
        .output()
        .expect("searcher runs")
}

/// Runs `searcher train` with `args`.
pub fn train(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_searcher"))
        .arg("train")
        .args(args)
        .output()
        .expect("searcher runs")
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The arguments of a tiny search on the two-stage toy space and table:
/// `epochs` epochs (one of them warm-up) on `images` embedded 16x16 images,
/// batch 16, aiming at 3 ms, one CPU thread, writing `out`.
pub fn tiny_search(out: &Path, epochs: u32, images: u32) -> Vec<String> {
    [
        "--space",
        &fixture("searcher_tiny_space.json"),
        "--table",
        &fixture("searcher_tiny_synthetic.csv"),
        "--target-ms",
        "3.0",
        "--epochs",
        &epochs.to_string(),
        "--warmup-epochs",
        "1",
        "--embedded-images",
        &images.to_string(),
        "--resolution",
        "16",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        &out.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `args` with `flag` set to `value`: replaced where it is, else added.
pub fn with(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|a| a == flag) {
        Some(at) => args[at + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
    args
}

/// The tiny table's text with one more header line (`# width_step: 8`)
/// before its `# batch` line.
pub fn tiny_table_text_with(header: &str) -> String {
    std::fs::read_to_string(fixture("searcher_tiny_synthetic.csv"))
        .unwrap()
        .replacen("# batch", &format!("{header}\n# batch"), 1)
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What every refusal shares: exit 2 with an `error:` line, no panic, no
/// training, nothing on stdout (no banner before the error); returns
/// stderr.
pub fn assert_refused(out: &Output, what: &str) -> String {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(err.contains("error:"), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(
        !err.contains("epoch 1/"),
        "{what}: refused only after training started: {err}"
    );
    assert_eq!(
        text(&out.stdout),
        "",
        "{what}: printed before refusing: {err}"
    );
    err
}

/// A PNG of `width` x `height` pixels in a fixed pattern.
pub fn write_png(path: &Path, width: u32, height: u32) {
    let pixels: Vec<u8> = (0..width * height * 3)
        .map(|i| (i * 13 % 256) as u8)
        .collect();
    image::save_buffer(path, &pixels, width, height, image::ExtendedColorType::Rgb8).unwrap();
}

/// An image folder data set under `root/images`: a folder per class of
/// `class_names`, each with `per_class` PNGs of `size` x `size` pixels.
pub fn png_classes(root: &Path, class_names: &[&str], per_class: usize, size: u32) -> PathBuf {
    let images = root.join("images");
    for class in class_names {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for i in 0..per_class {
            write_png(&images.join(format!("{class}/{i}.png")), size, size);
        }
    }
    images
}

/// The pid of a process that has ended, as a killed writer's would be.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("`true` runs");
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Every file under `dir` (not descending into folders) with its bytes, to
/// show that a refused run changed none of them.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    names(dir)
        .into_iter()
        .filter(|n| dir.join(n).is_file())
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).unwrap();
            (n, bytes)
        })
        .collect()
}

/// `MemAvailable` of /proc/meminfo in bytes, where there is one.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    Some(kb * 1024)
}

/// Where the bytes of the first tensor (by name) whose name starts with
/// `prefix` start in the safetensors file `bytes`, and how many there are.
pub fn tensor_bytes(bytes: &[u8], prefix: &str) -> (usize, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut names: Vec<&String> = header.keys().filter(|k| k.starts_with(prefix)).collect();
    names.sort();
    let offsets = &header[names[0].as_str()]["data_offsets"];
    let (begin, end) = (
        offsets[0].as_u64().unwrap() as usize,
        offsets[1].as_u64().unwrap() as usize,
    );
    (8 + n + begin, end - begin)
}

/// A small network of the default space, written to `dir/arch.json`: two
/// blocks per stage (one for the last), alternating an SE op and a plain
/// one, each at its narrowest width, so some blocks skip the expansion.
pub fn small_arch(dir: &Path) -> String {
    let space = space::SearchSpaceConfig::default();
    let ops = [
        space.op_index("k3_e6_se").unwrap(),
        space.op_index("k5_e3").unwrap(),
    ];
    let choices: Vec<Vec<(usize, u32)>> = space
        .layers()
        .iter()
        .map(|stage| {
            stage
                .iter()
                .take(2)
                .enumerate()
                .map(|(b, layer)| {
                    let op = ops[b % 2];
                    let range = space.width_range(&space.ops[op], layer.in_channels);
                    (op, range.min)
                })
                .collect()
        })
        .collect();
    let arch = space::Architecture::from_choices(&space, &choices).unwrap();
    let path = dir.join("arch.json");
    std::fs::write(&path, arch.to_json_pretty()).unwrap();
    path.display().to_string()
}
