//! Latency at a reference speed: a CPU whose speed drifts, measured
//! against itself inside every run.
//!
//! A virtual machine's core runs faster or slower as the host's other
//! tenants come and go: on the 2-core development VM the same network's
//! median moved by ±15% between one second and the next, in one process,
//! with nothing else running in the guest (docs/cpu.md, "Speed"). Within a
//! run, though, the drift is one factor for every block: the time of the
//! network over the time of its fixed parts (stem, second stem and head,
//! which every network of a space has) moved by 0.5–0.7% between those
//! same seconds. So each run is scaled by `reference_ms / fixed_ms`, where
//! `fixed_ms` is the fixed parts' time in that run and `reference_ms` the
//! table's: the latency the machine shows when its fixed parts take
//! `reference_ms`. A table built `--cache network` measures its reference
//! first and records it (`speed_reference_ms`); `validate` and `measure`
//! with the table scale every run of a network by the same rule, so the
//! table and the networks are compared at one speed, whatever the machine
//! did in between, and the raw times are reported beside.
//!
//! It needs an engine that times the blocks of a run
//! ([`Engine::run_timed_blocks`]); a GPU's clocks are watched instead
//! (`measure::monitor`).

use std::time::Duration;

use space::{BlockKind, BlockSpec};

use crate::error::{ProfilerError, Result};
use crate::measure::engine::{Engine, Workload};
use crate::measure::stop::{self, sample_until, StopRule, WallClock};
use crate::stats::summary::{summarize, Summary};

/// The header line with the reference, in ms (the table reader checks it
/// and `LatencyTable::speed_reference_ms` reads it).
pub const REFERENCE_KEY: &str = space::meta::SPEED_REFERENCE_MS;
/// The header line saying how it was measured and applied.
pub const REFERENCE_NOTE_KEY: &str = "speed_reference";

/// How a new table's reference is measured: runs until the 95% interval of
/// the median is within ±0.5% of it (at least 30 runs, at most 20 s: by
/// arithmetic, 800 runs of a 25 ms network). With 30 runs, as before
/// 2026-12-06, the interval's sides reached 2–7% on the 2-core VM (95% CI
/// 3.9711..4.2473 around 4.0967 ms there that day): every later run is
/// scaled to this one number, so the table's absolute level was known no
/// better.
pub const CALIBRATION: StopRule = StopRule {
    rel_half_width: 0.005,
    min_samples: 30,
    max_samples: 100_000,
    cap: Duration::from_secs(20),
};

/// Whether a block is one of the fixed parts every network has.
pub fn is_fixed(spec: &BlockSpec) -> bool {
    spec.shape.kind != BlockKind::Mbconv
}

/// The fixed parts' time in one run, from the run's per-block times.
pub fn fixed_ms(blocks: &[BlockSpec], times: &[f64]) -> f64 {
    blocks
        .iter()
        .zip(times)
        .filter(|(b, _)| is_fixed(b))
        .map(|(_, t)| t)
        .sum()
}

/// The factor that brings a run to the reference speed, refused when the
/// run has no fixed part to measure its speed by.
pub fn factor(blocks: &[BlockSpec], times: &[f64], reference_ms: f64) -> Result<f64> {
    let fixed = fixed_ms(blocks, times);
    if fixed > 0.0 && fixed.is_finite() {
        Ok(reference_ms / fixed)
    } else {
        Err(ProfilerError::Invalid(format!(
            "a run without fixed parts (stem, second stem, head) to measure the machine's speed by ({} blocks)",
            blocks.len()
        )))
    }
}

/// One run of the prepared network: its per-block times, refused unless
/// there is one positive finite time per block.
pub fn checked_blocks(engine: &mut dyn Engine, blocks: &[BlockSpec]) -> Result<Vec<f64>> {
    let times = engine.run_timed_blocks()?;
    if times.len() != blocks.len() {
        return Err(ProfilerError::Invalid(format!(
            "the engine timed {} blocks of a network of {} (an engine bug)",
            times.len(),
            blocks.len()
        )));
    }
    for (spec, &ms) in blocks.iter().zip(&times) {
        if !(ms.is_finite() && ms > 0.0) {
            return Err(ProfilerError::BadSample {
                block: spec.key(),
                value: ms,
            });
        }
    }
    Ok(times)
}

/// Runs the prepared network until `warmup` has passed (at least once).
pub fn warm_up(engine: &mut dyn Engine, blocks: &[BlockSpec], warmup: Duration) -> Result<()> {
    stop::warm_up(warmup, || checked_blocks(engine, blocks).map(drop))
}

/// A new table's reference: the median time of the fixed parts over runs
/// of `blocks` (a network of the space) until `rule` says stop
/// ([`CALIBRATION`] in a build).
pub fn calibrate(
    engine: &mut dyn Engine,
    blocks: &[BlockSpec],
    warmup: Duration,
    rule: &StopRule,
) -> Result<Summary> {
    engine.prepare(&Workload::Network {
        name: "speed reference".into(),
        blocks: blocks.to_vec(),
    })?;
    warm_up(engine, blocks, warmup)?;
    let clock = WallClock::start();
    let (summary, _) = sample_until(rule, &clock, || {
        let fixed = fixed_ms(blocks, &checked_blocks(engine, blocks)?);
        if fixed.is_finite() {
            Ok(fixed)
        } else {
            Err(ProfilerError::Invalid(
                "the speed reference's runs were not finite".into(),
            ))
        }
    })?;
    Ok(summary)
}

/// A network timed at the reference speed: the summaries of its scaled
/// and of its raw run times, and the median speed factor.
#[derive(Clone, Debug, PartialEq)]
pub struct AtReference {
    pub scaled: Summary,
    pub raw: Summary,
    /// Median of `reference_ms / fixed_ms` over the runs: the machine's
    /// speed against the reference's, above 1 when it ran faster (its raw
    /// times are scaled up).
    pub factor: f64,
    /// Each block's median over the runs, scaled as its run was: where in
    /// the network the time goes, to set beside a table's entries.
    pub blocks: Vec<f64>,
}

/// Prepares `workload` (a network), warms it up for `warmup` and times it
/// until `stop` says, every run scaled to `reference_ms` ([`factor`]); the
/// stopping rule watches the scaled times.
pub fn time_at_reference(
    engine: &mut dyn Engine,
    workload: &Workload,
    warmup: Duration,
    stop: &StopRule,
    reference_ms: f64,
) -> Result<AtReference> {
    let blocks = workload.blocks().to_vec();
    engine.prepare(workload)?;
    warm_up(engine, &blocks, warmup)?;
    let (mut raw, mut factors) = (Vec::new(), Vec::new());
    let mut per_block: Vec<Vec<f64>> = vec![Vec::new(); blocks.len()];
    let clock = WallClock::start();
    let (scaled, _) = sample_until(stop, &clock, || -> Result<f64> {
        let times = checked_blocks(engine, &blocks)?;
        let f = factor(&blocks, &times, reference_ms)?;
        let total: f64 = times.iter().sum();
        raw.push(total);
        factors.push(f);
        for (series, t) in per_block.iter_mut().zip(&times) {
            series.push(t * f);
        }
        Ok(total * f)
    })?;
    let raw = summarize(&raw)
        .ok_or_else(|| ProfilerError::Invalid("no finite raw time (an engine bug)".into()))?;
    let factor = summarize(&factors).map_or(1.0, |s| s.median);
    let blocks = per_block
        .iter()
        .map(|series| summarize(series).map_or(f64::NAN, |s| s.median))
        .collect();
    Ok(AtReference {
        scaled,
        raw,
        factor,
        blocks,
    })
}

#[cfg(test)]
mod tests;
