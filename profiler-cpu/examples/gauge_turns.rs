//! Benchmark: how tightly does timing a network in turns with the table's
//! speed standard hold its level against the table, by the gauge
//! (`--gauge standard`: turns of two runs, the second timed), run by run,
//! or by groups of runs? (Until 2026-12-07 the gauge timed the standard in
//! windows before and after the network; this example set those windows
//! in the first scheme's place at 4a1d7b9.)
//!
//! ```sh
//! GROUP=2 cargo run --release -p profiler-cpu --example gauge_turns -- \
//!     TABLE ROUNDS SECONDS NET.json...
//! ```
//!
//! Each round visits every network three times, the schemes one after
//! the other: by the gauge, `time_at_reference` with the table's standard
//! for SECONDS (the network's median at the table's speed); in turns run
//! by run, `time_paired` of the standard and the network for SECONDS
//! (the network at the table's speed is the median ratio times the
//! table's standard); in turns by groups of GROUP runs (default 4), the
//! first of each group untimed, for SECONDS; and, from the same runs as
//! the gauge's and as the run-by-run turns', the ratio of the two
//! networks' medians in place of the median of the runs' ratios. A
//! network's level is its sum
//! of table entries over that time, less one. It prints every visit, then
//! per network and scheme the mean and sd of the level over the rounds,
//! and each scheme's mean level over all networks with the sd of a
//! round's average: what one check of that length leaves on a table's
//! level. What it found: docs/benchmarks/cpu.md, "The standard in turns".

use std::path::Path;
use std::time::Duration;

use profiler::measure::engine::{Engine, Workload};
use profiler::measure::paired::time_paired;
use profiler::measure::speed::{time_at_reference, Gauge};
use profiler::measure::stop::StopRule;
use profiler::measure::timing::TimingRule;
use profiler_cpu::{CpuEngine, CpuSettings};
use space::{Architecture, LatencyTable};

mod common;
use common::{mean_sd, median};

/// The standard and the network in turns by groups of `group` runs (the
/// first of each group untimed: it meets the other's cache), each network
/// group's median against the mean of the standard groups' medians either
/// side; the median of those ratios over `secs`.
fn grouped(es: &mut CpuEngine, ex: &mut CpuEngine, group: usize, secs: f64) -> f64 {
    let run_group = |e: &mut CpuEngine| {
        e.run_timed().expect("run");
        median((1..group).map(|_| e.run_timed().expect("run")).collect())
    };
    let start = std::time::Instant::now();
    let mut before = run_group(es);
    let mut ratios = Vec::new();
    while ratios.len() < 5 || start.elapsed().as_secs_f64() < secs {
        let x = run_group(ex);
        let after = run_group(es);
        ratios.push(x / ((before + after) / 2.0));
        before = after;
    }
    median(ratios)
}

fn main() {
    common::tunables();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let table = LatencyTable::from_path(Path::new(&args[0])).expect("table");
    let rounds: usize = args[1].parse().expect("ROUNDS");
    let secs: f64 = args[2].parse().expect("SECONDS");
    let (standard_ms, std_blocks) = table.speed_standard().expect("a speed standard");
    let gauge = Gauge::of(&table, true).expect("gauge").expect("gauge");
    let standard = Workload::Network {
        name: "speed standard".into(),
        blocks: std_blocks,
    };
    let nets: Vec<(String, Workload, f64)> = args[3..]
        .iter()
        .map(|p| {
            let blocks = Architecture::from_path(Path::new(p))
                .and_then(|a| a.block_specs())
                .expect("architecture");
            let pred = table.predict_blocks(&blocks).expect("priced").total_ms;
            let name = Path::new(p).file_stem().unwrap().to_string_lossy().into();
            (
                name,
                Workload::Network {
                    name: p.clone(),
                    blocks,
                },
                pred,
            )
        })
        .collect();
    let stop = StopRule {
        rel_half_width: 0.0,
        min_samples: 5,
        max_samples: 100_000,
        cap: Duration::from_secs_f64(secs),
    };
    let rule = TimingRule {
        warmup: Duration::from_millis(100),
        stop,
    };
    let mut es = CpuEngine::open(CpuSettings::DEFAULT).expect("engine");
    let mut ex = CpuEngine::open(CpuSettings::DEFAULT).expect("engine");
    let group: usize = std::env::var("GROUP").map_or(4, |g| g.parse().expect("GROUP"));
    // levels[scheme][network][round]
    let mut levels = vec![vec![Vec::new(); nets.len()]; 5];
    for round in 0..rounds {
        for (i, (name, w, pred)) in nets.iter().enumerate() {
            let at = time_at_reference(&mut ex, Some(&mut es), w, rule.warmup, &stop, &gauge)
                .expect("gauge");
            let lw = (pred / at.scaled.median - 1.0) * 100.0;
            // The same runs, as the ratio of the two medians instead of the
            // median of each run's ratio to the standard's either side.
            let of_medians = at.raw.median * standard_ms / at.standard_ms.expect("in turns");
            let lm = (pred / of_medians - 1.0) * 100.0;
            let p = time_paired(&mut es, &standard, &mut ex, w, &rule).expect("turns");
            let lt = (pred / (p.ratio.median * standard_ms) - 1.0) * 100.0;
            let ltm = (pred / (p.b.median / p.a.median * standard_ms) - 1.0) * 100.0;
            es.prepare(&standard).expect("prepare");
            ex.prepare(w).expect("prepare");
            let rg = grouped(&mut es, &mut ex, group, secs);
            let lg = (pred / (rg * standard_ms) - 1.0) * 100.0;
            println!(
                "round {round} {name}: gauge {lw:+.2}% (of medians {lm:+.2}%, raw {:.3} ms{}), turns {lt:+.2}% (ratio {:.4}, standard {:.3} ms, {} pairs), groups {lg:+.2}% (ratio {rg:.4})",
                at.raw.median,
                at.standard_note(),
                p.ratio.median,
                p.a.median,
                p.ratio.samples
            );
            levels[0][i].push(lw);
            levels[1][i].push(lt);
            levels[2][i].push(lg);
            levels[3][i].push(lm);
            levels[4][i].push(ltm);
        }
    }
    for (s, scheme) in [
        "gauge",
        "turns",
        "groups",
        "gauge, ratio of medians",
        "turns, ratio of medians",
    ]
    .iter()
    .enumerate()
    {
        for (i, (name, _, _)) in nets.iter().enumerate() {
            let (m, sd) = mean_sd(&levels[s][i]);
            println!("{scheme} {name}: mean {m:+.2}%, sd {sd:.2} pts over {rounds} rounds");
        }
        let per_round: Vec<f64> = (0..rounds)
            .map(|r| levels[s].iter().map(|v| v[r]).sum::<f64>() / nets.len() as f64)
            .collect();
        let (m, sd) = mean_sd(&per_round);
        println!("{scheme}: level {m:+.2}%, a round's average sd {sd:.2} pts");
    }
}
