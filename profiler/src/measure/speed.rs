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

/// A new table's reference, from runs of one network of the space.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// The fixed parts' time per run: the reference every build run is
    /// scaled to.
    pub fixed: Summary,
    /// The whole network's median over the same runs: the speed standard
    /// `measure` and `validate` gauge the machine by.
    pub standard_ms: f64,
}

/// A new table's reference: the fixed parts' median time over runs of
/// `blocks` (a network of the space) until `rule` says stop ([`CALIBRATION`]
/// in a build), and the whole network's median over the same runs.
pub fn calibrate(
    engine: &mut dyn Engine,
    blocks: &[BlockSpec],
    warmup: Duration,
    rule: &StopRule,
) -> Result<Calibration> {
    engine.prepare(&Workload::Network {
        name: "speed reference".into(),
        blocks: blocks.to_vec(),
    })?;
    warm_up(engine, blocks, warmup)?;
    let clock = WallClock::start();
    let mut totals = Vec::new();
    let (fixed, _) = sample_until(rule, &clock, || {
        let times = checked_blocks(engine, blocks)?;
        let fixed = fixed_ms(blocks, &times);
        totals.push(times.iter().sum::<f64>());
        if fixed.is_finite() {
            Ok(fixed)
        } else {
            Err(ProfilerError::Invalid(
                "the speed reference's runs were not finite".into(),
            ))
        }
    })?;
    let standard_ms = summarize(&totals)
        .ok_or_else(|| ProfilerError::Invalid("the speed standard's runs were not finite".into()))?
        .median;
    Ok(Calibration { fixed, standard_ms })
}

/// How a network's runs are brought to a table's speed.
#[derive(Clone, Debug, PartialEq)]
pub enum Gauge {
    /// Each run scaled by the table's reference over the fixed parts' time
    /// in that run. The fixed parts' time depends on the network around
    /// them as well as on the machine (on the development VM by up to 3%
    /// either way, docs/cpu.md), so this gauge scales a network's own
    /// context away; the default all the same, since it follows the
    /// machine run by run, where the standard sees it only on either side
    /// of a network (worse on a busy host).
    FixedParts { reference_ms: f64 },
    /// The table's standard network, timed in its own context just before
    /// and just after the network: every run scaled by the standard's time
    /// in the table over the geometric mean of the two.
    Standard {
        reference_ms: f64,
        standard_ms: f64,
        blocks: Vec<BlockSpec>,
    },
}

impl Gauge {
    /// The table's gauge: with `standard`, its speed standard (refused
    /// when its header has none), else its fixed parts; `None` for a table
    /// without a speed reference (a GPU table), unless `standard` asked.
    pub fn of(table: &space::LatencyTable, standard: bool) -> Result<Option<Gauge>> {
        let reference_ms = match (table.speed_reference_ms(), standard) {
            (Some(r), _) => r,
            (None, false) => return Ok(None),
            (None, true) => {
                return Err(ProfilerError::Invalid(format!(
                    "{}: no '{}' line: --gauge standard brings a network to a CPU table's speed, which only a table built with --cache network has",
                    table.origin(),
                    REFERENCE_KEY
                )))
            }
        };
        if !standard {
            return Ok(Some(Gauge::FixedParts { reference_ms }));
        }
        match table.speed_standard() {
            Some((standard_ms, blocks)) => Ok(Some(Gauge::Standard {
                reference_ms,
                standard_ms,
                blocks,
            })),
            None => Err(ProfilerError::Invalid(format!(
                "{}: no '{}' line (built before the speed standard): --gauge standard needs one; rebuild the table, or gauge by its fixed parts",
                table.origin(),
                space::meta::SPEED_STANDARD_MS
            ))),
        }
    }

    /// The table's fixed-parts reference, in ms.
    pub fn reference_ms(&self) -> f64 {
        match self {
            Gauge::FixedParts { reference_ms } | Gauge::Standard { reference_ms, .. } => {
                *reference_ms
            }
        }
    }

    /// One line for a report's header: how runs were scaled.
    pub fn describe(&self) -> String {
        match self {
            Gauge::FixedParts { .. } => "the table's: each run's time scaled by it over the fixed parts' time in that run (measured_ms is at the reference speed)".into(),
            Gauge::Standard { standard_ms, blocks, .. } => format!(
                "the table's speed standard ({} blocks, {standard_ms:.6} ms in the table) timed in its own context before and after each network, whose runs are scaled by {standard_ms:.6} ms over the geometric mean of the two (measured_ms is at the table's speed)",
                blocks.len()
            ),
        }
    }
}

/// How long the speed standard is timed beside a network, each side:
/// the median of at least 5 runs, about 0.2 s (15 runs of the default
/// table's 13 ms standard on the development VM).
pub const STANDARD_WINDOW: StopRule = StopRule {
    rel_half_width: 0.005,
    min_samples: 5,
    max_samples: 1_000,
    cap: Duration::from_millis(200),
};

/// The speed standard's least warm-up before each window.
pub const STANDARD_WARMUP: Duration = Duration::from_millis(100);

/// The standard network's median time now: prepared, warmed up and timed
/// back to back in its own context.
fn standard_now(engine: &mut dyn Engine, blocks: &[BlockSpec], warmup: Duration) -> Result<f64> {
    engine.prepare(&Workload::Network {
        name: "speed standard".into(),
        blocks: blocks.to_vec(),
    })?;
    // Longer than a network's warm-up: the first window of a process met
    // its page faults and came out 40% slow on the development VM.
    warm_up(engine, blocks, warmup.max(STANDARD_WARMUP))?;
    let clock = WallClock::start();
    let (s, _) = sample_until(&STANDARD_WINDOW, &clock, || -> Result<f64> {
        Ok(checked_blocks(engine, blocks)?.iter().sum())
    })?;
    Ok(s.median)
}

/// A network timed at the reference speed: the summaries of its scaled
/// and of its raw run times, and the median speed factor.
#[derive(Clone, Debug, PartialEq)]
pub struct AtReference {
    pub scaled: Summary,
    pub raw: Summary,
    /// The machine's speed against the table's, above 1 when it ran faster
    /// (its raw times are scaled up): the median of the runs' factors with
    /// [`Gauge::FixedParts`], the standard's factor with [`Gauge::Standard`].
    pub factor: f64,
    /// Each block's median over the runs, scaled as its run was: where in
    /// the network the time goes, to set beside a table's entries.
    pub blocks: Vec<f64>,
    /// With [`Gauge::Standard`]: the standard's median time just before and
    /// just after the network (apart, the machine changed speed meanwhile).
    pub standard: Option<(f64, f64)>,
    /// How many times the network was timed (more than once while the
    /// standard's windows disagreed).
    pub tries: u32,
}

impl AtReference {
    /// Whether the speed standard's windows around the network still
    /// disagreed by more than [`STANDARD_AGREEMENT`] after its last try:
    /// the machine changed speed while the network was timed.
    pub fn unsteady(&self) -> bool {
        self.standard
            .is_some_and(|(before, after)| (after / before - 1.0).abs() > STANDARD_AGREEMENT)
    }

    /// What the speed standard measured, for a log line: empty without one.
    pub fn standard_note(&self) -> String {
        let Some((before, after)) = self.standard else {
            return String::new();
        };
        let tries = match self.tries {
            1 => String::new(),
            n => format!(", timed {n} times"),
        };
        let moved = (after / before - 1.0) * 100.0;
        let unsteady = if self.unsteady() {
            format!(", UNSTEADY: the machine's speed moved {moved:+.1}% meanwhile")
        } else {
            String::new()
        };
        format!(" by its speed standard, {before:.4} ms before and {after:.4} ms after{tries}{unsteady}")
    }
}

/// How far the standard's two windows around a network may disagree (the
/// machine's speed changed meanwhile) before the network is timed again.
pub const STANDARD_AGREEMENT: f64 = 0.03;
/// How many times a network is timed at most while they disagree.
pub const STANDARD_TRIES: u32 = 2;

/// Prepares `workload` (a network), warms it up for `warmup` and times it
/// until `stop` says, its runs brought to the table's speed by `gauge`.
/// With a standard, the network is timed again (up to [`STANDARD_TRIES`]
/// times, each try between two fresh windows of the standard) while the
/// standard's windows around it disagree by more than
/// [`STANDARD_AGREEMENT`]. Fresh, not the last try's "after" as the next
/// "before": a try is repeated because one of its windows strayed, and
/// reusing one of them carried its stray into the next pair (in 18 of 23
/// repeated tries of three main jobs on the development VM the final
/// "before" was the slower window, against 33 of 61 in tries that agreed
/// at once), and through the geometric mean into the network's factor.
pub fn time_at_reference(
    engine: &mut dyn Engine,
    workload: &Workload,
    warmup: Duration,
    stop: &StopRule,
    gauge: &Gauge,
) -> Result<AtReference> {
    let (standard_ms, std_blocks) = match gauge {
        Gauge::FixedParts { reference_ms } => {
            let t = time_scaled(engine, workload, warmup, stop, Some(*reference_ms))?;
            return Ok(t.finish(None, 1));
        }
        Gauge::Standard {
            standard_ms,
            blocks,
            ..
        } => (*standard_ms, blocks),
    };
    let mut tries = 0;
    loop {
        tries += 1;
        let before = standard_now(engine, std_blocks, warmup)?;
        let t = time_scaled(engine, workload, warmup, stop, None)?;
        let after = standard_now(engine, std_blocks, warmup)?;
        let steady = (after / before - 1.0).abs() <= STANDARD_AGREEMENT;
        if steady || tries >= STANDARD_TRIES {
            let f = standard_ms / (before * after).sqrt();
            return Ok(t.finish(Some((f, (before, after))), tries));
        }
    }
}

/// One network's runs: scaled by the fixed parts when given their
/// reference, else raw (a factor of 1 each).
struct Timed {
    scaled: Summary,
    raw: Summary,
    /// The median of the runs' factors.
    factor: f64,
    blocks: Vec<f64>,
}

impl Timed {
    /// The result, scaled once more by the standard's factor, with its
    /// windows, when it gauged (its runs were raw, their factor 1).
    fn finish(self, standard: Option<(f64, (f64, f64))>, tries: u32) -> AtReference {
        let f = standard.map_or(1.0, |(f, _)| f);
        AtReference {
            scaled: scale(&self.scaled, f),
            raw: self.raw,
            factor: self.factor * f,
            blocks: self.blocks.iter().map(|b| b * f).collect(),
            standard: standard.map(|(_, windows)| windows),
            tries,
        }
    }
}

fn time_scaled(
    engine: &mut dyn Engine,
    workload: &Workload,
    warmup: Duration,
    stop: &StopRule,
    reference_ms: Option<f64>,
) -> Result<Timed> {
    let blocks = workload.blocks().to_vec();
    engine.prepare(workload)?;
    warm_up(engine, &blocks, warmup)?;
    let (mut raw, mut factors) = (Vec::new(), Vec::new());
    let mut per_block: Vec<Vec<f64>> = vec![Vec::new(); blocks.len()];
    let clock = WallClock::start();
    let (scaled, _) = sample_until(stop, &clock, || -> Result<f64> {
        let times = checked_blocks(engine, &blocks)?;
        let f = match reference_ms {
            Some(r) => factor(&blocks, &times, r)?,
            None => 1.0,
        };
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
    let blocks = per_block
        .iter()
        .map(|series| summarize(series).map_or(f64::NAN, |s| s.median))
        .collect();
    Ok(Timed {
        scaled,
        raw,
        factor: summarize(&factors).map_or(1.0, |s| s.median),
        blocks,
    })
}

/// A summary of times, each multiplied by `f` (> 0): every order
/// statistic and mean scales with it.
fn scale(s: &Summary, f: f64) -> Summary {
    Summary {
        median: s.median * f,
        p10: s.p10 * f,
        p90: s.p90 * f,
        ci_low: s.ci_low * f,
        ci_high: s.ci_high * f,
        trimmed_mean: s.trimmed_mean * f,
        ..*s
    }
}

#[cfg(test)]
mod tests;
