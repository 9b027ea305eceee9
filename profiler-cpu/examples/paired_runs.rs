//! Benchmark: how tightly does one measurement hold the ratio of two
//! networks' latencies, timed in passes (A for a while, then B) or in
//! turns run by run (`profiler::measure::paired`, as `measure --versus`
//! and the main job's ratio do)?
//!
//! ```sh
//! cargo run --release -p profiler-cpu --example paired_runs -- \
//!     REPEATS SECONDS A.json B.json
//! ```
//!
//! Each repeat spends SECONDS on each scheme, the two schemes one after
//! the other on two engines prepared once (one pinned thread, batch 1):
//! by pass, three rounds of A then B for SECONDS/6 each and the ratio of
//! the medians of their pass medians; in turns, one [`time_paired`] with a
//! cap of SECONDS. It prints each repeat's two ratios of B over A, then
//! each scheme's mean and standard deviation over the repeats: the spread
//! one measurement of that length leaves on the ratio.

use std::path::Path;
use std::time::{Duration, Instant};

use profiler::measure::engine::{Engine, Workload};
use profiler::measure::paired::time_paired;
use profiler::measure::stop::StopRule;
use profiler::measure::timing::TimingRule;
use profiler_cpu::{CpuEngine, CpuSettings};
use space::Architecture;

mod common;
use common::{mean_sd, median};

/// A's then B's pass medians, three rounds of `pass` each.
fn by_pass(engines: &mut [CpuEngine; 2], pass: Duration) -> f64 {
    let mut medians = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        for (engine, out) in engines.iter_mut().zip(medians.iter_mut()) {
            let start = Instant::now();
            let mut runs = Vec::new();
            while runs.is_empty() || start.elapsed() < pass {
                runs.push(engine.run_timed().expect("run"));
            }
            out.push(median(runs));
        }
    }
    let [a, b] = medians;
    median(b) / median(a)
}

fn main() {
    common::tunables();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let repeats: usize = args[0].parse().expect("REPEATS");
    let secs: f64 = args[1].parse().expect("SECONDS");
    let workloads: Vec<Workload> = args[2..4]
        .iter()
        .map(|p| Workload::Network {
            name: p.clone(),
            blocks: Architecture::from_path(Path::new(p))
                .and_then(|a| a.block_specs())
                .expect("architecture"),
        })
        .collect();
    let open = || CpuEngine::open(CpuSettings::DEFAULT).expect("engine");
    let mut engines = [open(), open()];
    let rule = TimingRule {
        warmup: Duration::from_millis(200),
        stop: StopRule {
            rel_half_width: 0.0,
            cap: Duration::from_secs_f64(secs),
            ..StopRule::default()
        },
    };
    let (mut passes, mut turns) = (Vec::new(), Vec::new());
    for k in 0..repeats {
        let [ea, eb] = &mut engines;
        let paired = time_paired(ea, &workloads[0], eb, &workloads[1], &rule).expect("paired");
        // Both engines stay prepared with their workloads from here on.
        let pass = by_pass(&mut engines, Duration::from_secs_f64(secs / 6.0));
        println!(
            "repeat {k}: by pass {pass:.4}, in turns {:.4} ({} pairs; A {:.3} ms, B {:.3} ms)",
            paired.ratio.median, paired.ratio.samples, paired.a.median, paired.b.median
        );
        passes.push(pass);
        turns.push(paired.ratio.median);
    }
    for (name, v) in [("by pass", &passes), ("in turns", &turns)] {
        let (m, sd) = mean_sd(v);
        println!(
            "{name}: mean {m:.4}, sd {:.2}% over {} repeats",
            sd / m * 100.0,
            v.len()
        );
    }
}
