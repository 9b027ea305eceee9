//! The speed standard timed in turns with a network: the table's standard
//! network and the network prepared each on an engine of its own, then
//! standard, network, standard, ... a turn at a time, each of the
//! network's runs brought to the table's speed by the standard's runs
//! either side of it.
//!
//! Why in turns: timed in windows of 0.2 s just before and just after a
//! network (this gauge until 2026-12-07), the standard missed what the
//! machine did in between. On the development VM in a busy spell (the
//! standard's windows 11 to 18 ms a few seconds apart), five networks'
//! levels against one table, visited in five rounds of 1 s each, moved
//! with an sd of 2.2-5.2 points for a round's average by windows and 0.6-1.4
//! run by run in turns, in four processes (docs/benchmarks/cpu.md,
//! "The standard in turns").
//!
//! Why a turn of two runs, the first untimed: the run after the other
//! network's meets that network's caches. Run by run (a turn of one), the
//! level came out 1.1-2.1 points above turns of two, three or six runs, in
//! the same processes, which agreed with each other within their noise:
//! the second run of a turn is the network as it runs back to back, which
//! is what a table prices and what a served network does.

use std::time::Duration;

use space::BlockSpec;

use super::{checked_blocks, AtReference};
use crate::error::{ProfilerError, Result};
use crate::measure::engine::{Engine, Workload};
use crate::measure::stop::{self, sample_until, StopRule, WallClock};
use crate::stats::summary::summarize;

/// Runs per turn, the last one timed: see the module's doc.
pub const TURN_RUNS: u32 = 2;

/// The least warm-up of both before the first turn: the first runs of a
/// process meet its page faults (the standard's first window of a process
/// came out 40% slow on the development VM).
pub const STANDARD_WARMUP: Duration = Duration::from_millis(100);

/// One turn of the prepared network on `engine`: [`TURN_RUNS`] runs, the
/// last one's per-block times.
fn turn(engine: &mut dyn Engine, blocks: &[BlockSpec]) -> Result<Vec<f64>> {
    for _ in 1..TURN_RUNS {
        checked_blocks(engine, blocks)?;
    }
    checked_blocks(engine, blocks)
}

/// Prepares `workload` on `engine` and the standard (`standard`, whose
/// median time the table records as `standard_ms`) on `standard_engine`,
/// warms both up in turns, then times them in turns (standard, network,
/// standard, ..., standard) until `stop` says: each of the network's runs
/// is scaled by `standard_ms` over the mean of the standard's runs either
/// side of it, so a speed that drifts linearly over the three cancels.
pub fn time_in_turns(
    engine: &mut dyn Engine,
    standard_engine: &mut dyn Engine,
    workload: &Workload,
    standard: &[BlockSpec],
    warmup: Duration,
    stop: &StopRule,
    standard_ms: f64,
) -> Result<AtReference> {
    let blocks = workload.blocks().to_vec();
    engine.prepare(workload)?;
    standard_engine.prepare(&Workload::Network {
        name: "speed standard".into(),
        blocks: standard.to_vec(),
    })?;
    stop::warm_up(warmup.max(STANDARD_WARMUP), || {
        checked_blocks(standard_engine, standard)?;
        checked_blocks(engine, &blocks).map(drop)
    })?;
    let total = |times: &[f64]| times.iter().sum::<f64>();
    let mut before = total(&turn(standard_engine, standard)?);
    let (mut raw, mut factors, mut standards) = (Vec::new(), Vec::new(), vec![before]);
    let mut per_block: Vec<Vec<f64>> = vec![Vec::new(); blocks.len()];
    let clock = WallClock::start();
    let (scaled, _) = sample_until(stop, &clock, || -> Result<f64> {
        let times = turn(engine, &blocks)?;
        let after = total(&turn(standard_engine, standard)?);
        let f = standard_ms / ((before + after) / 2.0);
        before = after;
        standards.push(after);
        raw.push(total(&times));
        factors.push(f);
        for (series, t) in per_block.iter_mut().zip(&times) {
            series.push(t * f);
        }
        Ok(total(&times) * f)
    })?;
    let median = |v: &[f64], what: &str| {
        summarize(v)
            .ok_or_else(|| ProfilerError::Invalid(format!("no finite {what} (an engine bug)")))
    };
    Ok(AtReference {
        scaled,
        raw: median(&raw, "raw time")?,
        factor: median(&factors, "speed factor")?.median,
        blocks: per_block
            .iter()
            .map(|series| summarize(series).map_or(f64::NAN, |s| s.median))
            .collect(),
        standard_ms: Some(median(&standards, "standard's time")?.median),
    })
}
