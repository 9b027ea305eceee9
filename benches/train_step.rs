//! One training step of `searcher train` (label-smoothed cross-entropy,
//! clip, SGD) on a derived network, against the same network's step in
//! PyTorch (`benches/pytorch_train_step.py`), both measured in this run on
//! the same random batch size, resolution and thread count. TF-NAS-A by
//! default, or `TRAIN_STEP_ARCH=arch.json`; `TRAIN_STEP_BATCH` (32),
//! `TRAIN_STEP_RESOLUTION` (48), `TRAIN_STEP_STEPS` (20) and
//! `TRAIN_STEP_THREADS` (all cores) change the size. CPU only.
//!
//! `cargo bench -p searcher --bench train_step`

use std::process::Command;
use std::time::Instant;

use searcher::train::recipe::Recipe;
use searcher::train::Trainer;
use space::Architecture;
use tch::{Device, Kind, Tensor};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The network's blocks as the PyTorch script reads them.
fn blocks_json(arch: &Architecture) -> String {
    let blocks: Vec<serde_json::Value> = arch
        .block_specs()
        .expect("a valid architecture")
        .iter()
        .map(|b| {
            let s = &b.shape;
            serde_json::json!({
                "in": s.in_channels, "out": s.out_channels, "mid": b.mid_channels,
                "kernel": s.kernel, "stride": s.stride, "se": s.se_channels,
                "act": s.activation.as_str(),
            })
        })
        .collect();
    serde_json::to_string(&blocks).expect("json")
}

fn main() {
    let (batch, res, steps): (usize, i64, usize) = (
        env_or("TRAIN_STEP_BATCH", 32),
        env_or("TRAIN_STEP_RESOLUTION", 48),
        env_or("TRAIN_STEP_STEPS", 20),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: usize = env_or("TRAIN_STEP_THREADS", cores);
    tch::set_num_threads(threads as i32);
    let arch = match std::env::var("TRAIN_STEP_ARCH") {
        Ok(path) => Architecture::from_path(path.as_ref()).expect("an architecture JSON"),
        Err(_) => Architecture::tfnas_a(),
    };
    let recipe = Recipe {
        batch_size: batch,
        lr: Some(0.1),
        ..Recipe::default()
    };
    let mut trainer = Trainer::new(&arch, 10, &recipe, Device::Cpu, &[]).expect("a network");
    let x = Tensor::randn([batch as i64, 3, res, res], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [batch as i64], (Kind::Int64, Device::Cpu));
    for _ in 0..3 {
        let _ = trainer.train_step(&x, &y, 0.1);
    }
    let start = Instant::now();
    for _ in 0..steps {
        let _ = trainer.train_step(&x, &y, 0.1);
    }
    let ours = 1e3 * start.elapsed().as_secs_f64() / steps as f64;
    println!("searcher train step {ours:.2} ms (batch {batch}, {res}x{res}, {threads} threads)");

    let dir = tempfile::tempdir().expect("a temporary folder");
    let blocks = dir.path().join("blocks.json");
    std::fs::write(&blocks, blocks_json(&arch)).expect("blocks written");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(format!("{root}/.venv/bin/python"))
        .arg(format!("{root}/benches/pytorch_train_step.py"))
        .arg("--blocks")
        .arg(&blocks)
        .args([
            "--batch",
            &batch.to_string(),
            "--resolution",
            &res.to_string(),
        ])
        .args([
            "--steps",
            &steps.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .output();
    let line = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => {
            return eprintln!(
                "PyTorch reference failed: {}",
                String::from_utf8_lossy(&o.stderr)
            )
        }
        Err(e) => return eprintln!("no PyTorch reference (.venv/bin/python: {e})"),
    };
    println!("{line}");
    let theirs: f64 = line
        .split("train step ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    println!("ratio searcher / pytorch: {:.2}", ours / theirs);
}
