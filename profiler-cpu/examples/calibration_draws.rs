//! Benchmark: how much does one preparation of the speed standard decide
//! a table's level? A CPU table's build scales every run to the fixed
//! parts' time in its calibration network (`speed_reference_ms`), and
//! `measure`/`validate --gauge standard` bring a network to the table's
//! speed by the same network's whole time (`speed_standard_ms`), both
//! from the same runs of one preparation. If a preparation draws a
//! latency mode that moves the whole time and the fixed parts unequally,
//! their ratio is one draw of it.
//!
//! ```sh
//! cargo run --release -p profiler-cpu --example calibration_draws -- \
//!     TABLE PREPARATIONS SECONDS [OTHER.json]
//! ```
//!
//! Each preparation prepares the table's standard network afresh on one
//! engine (the CLI's settings), warms it up for 100 ms and times it for
//! SECONDS, printing the medians of its fixed parts (F, and each part) and
//! of its whole time (S) and their ratio; with OTHER.json that network is
//! prepared and run a while in between, so each preparation lands
//! elsewhere in memory. The summary gives the spread of S/F over the
//! preparations (the machine's speed cancels in it) against the spread of
//! S and of F. What it found, and the two changes to the build it led to
//! that did not hold the level better: docs/benchmarks/cpu.md, "The
//! table's level between builds (2026-12-07)".

use std::path::Path;
use std::time::{Duration, Instant};

use profiler::measure::engine::{Engine, Workload};
use profiler::measure::speed::{checked_blocks, fixed_ms, is_fixed};
use profiler_cpu::{CpuEngine, CpuSettings};
use space::{Architecture, LatencyTable};

mod common;
use common::{mean_sd, median};

fn main() {
    common::tunables();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let table = LatencyTable::from_path(Path::new(&args[0])).expect("table");
    let preps: usize = args[1].parse().expect("PREPARATIONS");
    let secs: f64 = args[2].parse().expect("SECONDS");
    let (standard_ms, blocks) = table
        .speed_standard()
        .expect("a table with a speed standard");
    let other = args.get(3).map(|p| Workload::Network {
        name: p.clone(),
        blocks: Architecture::from_path(Path::new(p))
            .and_then(|a| a.block_specs())
            .expect("architecture"),
    });
    let standard = Workload::Network {
        name: "speed standard".into(),
        blocks: blocks.clone(),
    };
    let mut engine = CpuEngine::open(CpuSettings::DEFAULT).expect("engine");
    println!(
        "table: reference {:.4} ms, standard {standard_ms:.4} ms, S/F {:.4}",
        table.speed_reference_ms().unwrap_or(f64::NAN),
        standard_ms / table.speed_reference_ms().unwrap_or(f64::NAN)
    );
    let (mut fs, mut ss, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..preps {
        if let Some(w) = &other {
            engine.prepare(w).expect("prepare other");
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(300) {
                engine.run_timed_blocks().expect("run other");
            }
        }
        engine.prepare(&standard).expect("prepare standard");
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(100) {
            checked_blocks(&mut engine, &blocks).expect("warm-up");
        }
        let (mut f, mut s) = (Vec::new(), Vec::new());
        let fixed: Vec<usize> = (0..blocks.len())
            .filter(|&i| is_fixed(&blocks[i]))
            .collect();
        let mut parts: Vec<Vec<f64>> = vec![Vec::new(); fixed.len()];
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs_f64(secs) {
            let times = checked_blocks(&mut engine, &blocks).expect("run");
            f.push(fixed_ms(&blocks, &times));
            for (series, &i) in parts.iter_mut().zip(&fixed) {
                series.push(times[i]);
            }
            s.push(times.iter().sum::<f64>());
        }
        let (fm, sm) = (median(f), median(s.clone()));
        let parts: Vec<String> = parts
            .into_iter()
            .map(|p| format!("{:.4}", median(p)))
            .collect();
        println!(
            "preparation {k}: F {fm:.4} ms ({}), S {sm:.4} ms, S/F {:.4} ({} runs)",
            parts.join(" + "),
            sm / fm,
            s.len()
        );
        fs.push(fm);
        ss.push(sm);
        ratios.push(sm / fm);
    }
    for (name, v) in [("F", &fs), ("S", &ss), ("S/F", &ratios)] {
        let (m, sd) = mean_sd(v);
        println!(
            "{name}: mean {m:.4}, sd {:.2}% over {preps} preparations",
            sd / m * 100.0
        );
    }
}
