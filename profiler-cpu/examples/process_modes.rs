//! Benchmark: is a block's latency mode drawn per process or per
//! preparation? Times one network, prepared PREPS times in this process,
//! RUNS timed runs each, and prints per preparation every block's median
//! (tab-separated, one line a preparation) so that runs of this example
//! in several processes can be set side by side.
//!
//! ```sh
//! cargo run --release -p profiler-cpu --example process_modes -- ARCH.json PREPS RUNS
//! ```

use std::path::Path;
use std::time::Instant;

use profiler::measure::engine::{Engine, Workload};
use profiler::measure::speed::checked_blocks;
use profiler_cpu::{CpuEngine, CpuSettings};
use space::Architecture;

mod common;
use common::median;

fn main() {
    common::tunables();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arch = Architecture::from_path(Path::new(&args[0])).expect("arch");
    let (preps, runs): (usize, usize) = (args[1].parse().unwrap(), args[2].parse().unwrap());
    let blocks = arch.block_specs().expect("blocks");
    let mut engine = CpuEngine::open(CpuSettings::DEFAULT).expect("engine");
    let start = Instant::now();
    for p in 0..preps {
        let workload = Workload::Network {
            name: "n".into(),
            blocks: blocks.clone(),
        };
        engine.prepare(&workload).expect("prepare");
        for _ in 0..3 {
            checked_blocks(&mut engine, &blocks).expect("run");
        }
        let all: Vec<Vec<f64>> = (0..runs)
            .map(|_| checked_blocks(&mut engine, &blocks).expect("run"))
            .collect();
        let per_block: Vec<String> = (0..blocks.len())
            .map(|b| format!("{:.5}", median(all.iter().map(|t| t[b]).collect())))
            .collect();
        println!(
            "{}\t{p}\t{:.2}\t{}",
            std::process::id(),
            start.elapsed().as_secs_f64(),
            per_block.join("\t")
        );
    }
}
