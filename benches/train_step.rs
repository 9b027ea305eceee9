//! One training step of `searcher train` (label-smoothed cross-entropy,
//! clip, SGD) on a derived network, against the same network's step in
//! PyTorch (`benches/pytorch_train_step.py`), both measured in this run on
//! the same random batch size, resolution and thread count. TF-NAS-A by
//! default, or `TRAIN_STEP_ARCH=arch.json`; `TRAIN_STEP_BATCH` (32),
//! `TRAIN_STEP_RESOLUTION` (48), `TRAIN_STEP_STEPS` (20) and
//! `TRAIN_STEP_THREADS` (all cores) change the size, `TRAIN_STEP_ROUNDS`
//! (3) the rounds: the two sides take turns, A/B/A/B, and the speed
//! ratio (PyTorch's step time over ours) is printed per round and as
//! their median. CPU only.
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
        let _ = trainer.train_step(&x, &y, 0.1, batch);
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let blocks = dir.path().join("blocks.json");
    std::fs::write(&blocks, blocks_json(&arch)).expect("blocks written");
    // A/B/A/B: the machine's speed drifts over a run, so the two sides
    // take turns and each round gives a ratio of its own.
    let rounds: usize = env_or("TRAIN_STEP_ROUNDS", 3);
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let start = Instant::now();
        for _ in 0..steps {
            let _ = trainer.train_step(&x, &y, 0.1, batch);
        }
        let ours = 1e3 * start.elapsed().as_secs_f64() / steps as f64;
        let Some(theirs) = pytorch_step(&blocks, batch, res, steps, threads) else {
            return;
        };
        println!(
            "round {round}/{rounds}: searcher train step {ours:.2} ms, pytorch {theirs:.2} ms (batch {batch}, {res}x{res}, {threads} threads): speed {:.3}x pytorch's",
            theirs / ours
        );
        ratios.push(theirs / ours);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "speed against pytorch (its step time / ours), median of {rounds} rounds: {:.3}x (range {:.3}..{:.3})",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}

/// PyTorch's step time on the same blocks and sizes, in ms (its script
/// warms up on its own); `None`, said on stderr, when it cannot run.
fn pytorch_step(
    blocks: &std::path::Path,
    batch: usize,
    res: i64,
    steps: usize,
    threads: usize,
) -> Option<f64> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(format!("{root}/.venv/bin/python"))
        .arg(format!("{root}/benches/pytorch_train_step.py"))
        .arg("--blocks")
        .arg(blocks)
        .args(["--batch", &batch.to_string()])
        .args(["--resolution", &res.to_string()])
        .args(["--steps", &steps.to_string()])
        .args(["--threads", &threads.to_string()])
        .output();
    let line = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => {
            eprintln!(
                "PyTorch reference failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return None;
        }
        Err(e) => {
            eprintln!("no PyTorch reference (.venv/bin/python: {e})");
            return None;
        }
    };
    line.split("train step ")
        .nth(1)
        .and_then(|r| r.split(" ms").next())
        .and_then(|v| v.parse().ok())
}
