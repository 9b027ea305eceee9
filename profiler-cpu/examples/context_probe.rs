//! Benchmark: does the same block's time depend on the network around it?
//! A CPU table's fixed-parts gauge (`profiler::measure::speed`) assumes
//! that the stem, second stem and head take the same time in every
//! network at one machine speed; this measures how far they do not.
//!
//! ```sh
//! cargo run --release -p profiler-cpu --example context_probe -- \
//!     TABLE TRIALS RUNS ARCH.json ARCH.json ... > rel.tsv 2> raw.tsv
//! ```
//!
//! Each trial prepares every network in turn on one engine (one pinned
//! thread, batch 1), three untimed runs then RUNS timed, in an order that
//! rotates and reverses from trial to trial. Per network it prints, over
//! the trials and relative to the trial's geometric mean over all
//! networks (which takes the machine's speed out): the fixed parts' time,
//! the raw time over the table's prediction, and the same scaled by the
//! fixed parts (the table's at-speed figure), each with its standard
//! error. With no context effect the first column is 1 for every network;
//! the second column's spread is how well the table ranks the networks.
//! stderr gets each trial's raw medians (total, fixed parts, stem, second
//! stem, head) for further analysis.

use std::path::Path;

use profiler::measure::engine::{Engine, Workload};
use profiler::measure::speed::checked_blocks;
use profiler_cpu::{CpuEngine, CpuSettings};
use space::{Architecture, BlockSpec, LatencyTable};

mod common;
use common::median;

fn time(engine: &mut CpuEngine, blocks: &[BlockSpec], runs: usize) -> (f64, f64, [f64; 3]) {
    engine
        .prepare(&Workload::Network {
            name: "n".into(),
            blocks: blocks.to_vec(),
        })
        .expect("prepare");
    for _ in 0..3 {
        checked_blocks(engine, blocks).expect("run");
    }
    let n = blocks.len();
    let all: Vec<Vec<f64>> = (0..runs)
        .map(|_| checked_blocks(engine, blocks).expect("run"))
        .collect();
    (
        median(all.iter().map(|t| t[0] + t[1] + t[n - 1]).collect()),
        median(all.iter().map(|t| t.iter().sum()).collect()),
        [
            median(all.iter().map(|t| t[0]).collect()),
            median(all.iter().map(|t| t[1]).collect()),
            median(all.iter().map(|t| t[n - 1]).collect()),
        ],
    )
}

fn mean_se(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, (var / v.len() as f64).sqrt())
}

fn main() {
    common::tunables();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let table = LatencyTable::from_path(Path::new(&args[0])).expect("table");
    let (trials, runs): (usize, usize) = (args[1].parse().unwrap(), args[2].parse().unwrap());
    let names = &args[3..];
    let archs: Vec<Architecture> = names
        .iter()
        .map(|p| Architecture::from_path(Path::new(p)).unwrap())
        .collect();
    let nets: Vec<Vec<BlockSpec>> = archs.iter().map(|a| a.block_specs().unwrap()).collect();
    let pred: Vec<f64> = nets
        .iter()
        .map(|b| table.predict_blocks(b).unwrap().total_ms)
        .collect();
    let k = nets.len();
    let mut engine = CpuEngine::open(CpuSettings::DEFAULT).expect("engine");
    // per trial, per network: (fixed, total)
    let mut res = vec![vec![(0.0, 0.0, [0.0; 3]); k]; trials];
    for (t, row) in res.iter_mut().enumerate() {
        let mut order: Vec<usize> = (0..k).map(|i| (i + t) % k).collect();
        if t % 2 == 1 {
            order.reverse();
        }
        for i in order {
            row[i] = time(&mut engine, &nets[i], runs);
            let r = row[i];
            eprintln!(
                "raw\t{t}\t{}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}",
                Path::new(&names[i]).file_stem().unwrap().to_string_lossy(),
                r.1,
                r.0,
                r.2[0],
                r.2[1],
                r.2[2]
            );
        }
        eprintln!("trial {t} done");
    }
    let gm = |v: &[f64]| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp();
    println!(
        "name\tparams_M\tmacs_M\tpred_ms\tfixed_rel\tse\traw_over_pred_rel\tse\tat_speed_rel\tse"
    );
    let mut cols: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = vec![Default::default(); k];
    for row in &res {
        let f: Vec<f64> = row.iter().map(|r| r.0).collect();
        let q: Vec<f64> = row.iter().zip(&pred).map(|(r, p)| r.1 / p).collect();
        let s: Vec<f64> = row.iter().zip(&pred).map(|(r, p)| r.1 / r.0 / p).collect();
        let (gf, gq, gs) = (gm(&f), gm(&q), gm(&s));
        for i in 0..k {
            cols[i].0.push(f[i] / gf);
            cols[i].1.push(q[i] / gq);
            cols[i].2.push(s[i] / gs);
        }
    }
    for i in 0..k {
        let (a, ase) = mean_se(&cols[i].0);
        let (b, bse) = mean_se(&cols[i].1);
        let (c, cse) = mean_se(&cols[i].2);
        println!(
            "{}\t{:.2}\t{:.0}\t{:.3}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}",
            Path::new(&names[i]).file_stem().unwrap().to_string_lossy(),
            archs[i].params().unwrap() as f64 / 1e6,
            archs[i].macs().unwrap() as f64 / 1e6,
            pred[i],
            a,
            ase,
            b,
            bse,
            c,
            cse
        );
    }
}
