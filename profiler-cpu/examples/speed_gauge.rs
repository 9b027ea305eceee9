//! Benchmark: which part of a network gauges the machine's speed for the
//! rest of it? A CPU table scales every run by its fixed parts' time
//! (`profiler::measure::speed`); if that time depends on the network
//! around them, two networks measured at the same moment come out at
//! different "speeds", and each carries that difference into its error.
//!
//! ```sh
//! cargo run --release -p profiler-cpu --example speed_gauge -- \
//!     TABLE TRIALS RUNS ARCH.json ARCH.json ...
//! ```
//!
//! Each trial prepares every network in turn on one engine (the CLI's
//! settings: one pinned thread, batch 1, blocks timed inside the run) and
//! runs it `RUNS` times back to back after three untimed runs, a few
//! seconds per trial. Per network it prints, over the trials, the mean
//! error of the table's prediction when the run is scaled by each gauge
//! (the fixed parts, as tables do; the stems; the head; nothing), and for
//! each network against the first, the mean and sd of the error of their
//! measured ratio (networks adjacent in a trial are seconds apart).

use std::path::Path;

use profiler::measure::engine::{Engine, Workload};
use profiler::measure::speed::checked_blocks;
use profiler_cpu::{CpuEngine, CpuSettings};
use space::{Architecture, BlockSpec, LatencyTable};

mod common;
use common::{mean_sd, median};

/// Per trial and network: the medians of the stems (the first two
/// blocks), the head (the last), the searchable blocks and the total.
#[derive(Clone, Copy)]
struct Parts {
    stems: f64,
    head: f64,
    total: f64,
}

fn time(engine: &mut CpuEngine, name: &str, blocks: &[BlockSpec], runs: usize) -> Parts {
    let workload = Workload::Network {
        name: name.into(),
        blocks: blocks.to_vec(),
    };
    engine.prepare(&workload).expect("prepare");
    for _ in 0..3 {
        checked_blocks(engine, blocks).expect("run");
    }
    let all: Vec<Vec<f64>> = (0..runs)
        .map(|_| checked_blocks(engine, blocks).expect("run"))
        .collect();
    let n = blocks.len();
    Parts {
        stems: median(all.iter().map(|t| t[0] + t[1]).collect()),
        head: median(all.iter().map(|t| t[n - 1]).collect()),
        total: median(all.iter().map(|t| t.iter().sum()).collect()),
    }
}

fn main() {
    common::tunables();
    let args: Vec<String> = std::env::args().skip(1).collect();
    assert!(
        args.len() >= 5,
        "usage: TABLE TRIALS RUNS ARCH.json ARCH.json ..."
    );
    let table = LatencyTable::from_path(Path::new(&args[0])).expect("table");
    let (trials, runs): (usize, usize) = (args[1].parse().unwrap(), args[2].parse().unwrap());
    let names = &args[3..];
    let nets: Vec<Vec<BlockSpec>> = names
        .iter()
        .map(|p| {
            Architecture::from_path(Path::new(p))
                .unwrap()
                .block_specs()
                .unwrap()
        })
        .collect();
    let predicted: Vec<f64> = nets
        .iter()
        .map(|b| table.predict_blocks(b).unwrap().total_ms)
        .collect();
    // The table's own prices of the gauges (the same fixed parts in every
    // network of the space).
    let b = &nets[0];
    let t_stems = table.predict_blocks(&b[..2]).unwrap().total_ms;
    let t_head = table.predict_blocks(&b[b.len() - 1..]).unwrap().total_ms;
    let mut engine = CpuEngine::open(CpuSettings::DEFAULT).expect("engine");
    let parts: Vec<Vec<Parts>> = (0..trials)
        .map(|_| {
            nets.iter()
                .zip(names)
                .map(|(b, name)| time(&mut engine, name, b, runs))
                .collect()
        })
        .collect();
    type Gauge = (&'static str, fn(&Parts) -> f64);
    let gauges: [Gauge; 4] = [
        ("fixed", |p| p.stems + p.head),
        ("stems", |p| p.stems),
        ("head", |p| p.head),
        ("none", |_| 1.0),
    ];
    let table_gauge = |g: &str| match g {
        "fixed" => t_stems + t_head,
        "stems" => t_stems,
        "head" => t_head,
        _ => 1.0,
    };
    println!("mean error of the prediction, the run scaled by each gauge ({trials} trials of {runs} runs):");
    for (i, name) in names.iter().enumerate() {
        let cells: Vec<String> = gauges
            .iter()
            .map(|(g, f)| {
                let e: Vec<f64> = parts
                    .iter()
                    .map(|t| predicted[i] * f(&t[i]) / (t[i].total * table_gauge(g)) - 1.0)
                    .collect();
                let (m, sd) = mean_sd(&e);
                format!("{g} {:+.2}% (sd {:.2})", 100.0 * m, 100.0 * sd)
            })
            .collect();
        println!(
            "  {name}: predicted {:.3} ms; {}",
            predicted[i],
            cells.join(", ")
        );
    }
    println!(
        "error of the measured ratio to {} (mean, sd over trials):",
        names[0]
    );
    for (i, name) in names.iter().enumerate().skip(1) {
        let cells: Vec<String> = gauges
            .iter()
            .map(|(g, f)| {
                let e: Vec<f64> = parts
                    .iter()
                    .map(|t| {
                        let r = (t[i].total / f(&t[i])) / (t[0].total / f(&t[0]));
                        predicted[i] / predicted[0] / r - 1.0
                    })
                    .collect();
                let (m, sd) = mean_sd(&e);
                format!("{g} {:+.2}% ({:.2})", 100.0 * m, 100.0 * sd)
            })
            .collect();
        println!("  {name}: {}", cells.join(", "));
    }
}
