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
    /// The table's standard network, timed in turns with the network on
    /// an engine of its own: each of the network's runs scaled by the
    /// standard's time in the table over the mean of the standard's runs
    /// either side of it ([`time_in_turns`] says why).
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
                "the table's speed standard ({} blocks, {standard_ms:.6} ms in the table) timed in turns with each network, two runs a turn, the second timed; each of the network's runs is scaled by {standard_ms:.6} ms over the mean of the standard's runs either side of it (measured_ms is at the table's speed)",
                blocks.len()
            ),
        }
    }
}

/// A network timed at the reference speed: the summaries of its scaled
/// and of its raw run times, and the median speed factor.
#[derive(Clone, Debug, PartialEq)]
pub struct AtReference {
    pub scaled: Summary,
    pub raw: Summary,
    /// The machine's speed against the table's, above 1 when it ran faster
    /// (its raw times are scaled up): the median of the runs' factors.
    pub factor: f64,
    /// Each block's median over the runs, scaled as its run was: where in
    /// the network the time goes, to set beside a table's entries.
    pub blocks: Vec<f64>,
    /// With [`Gauge::Standard`]: the standard's raw median over its timed
    /// runs in turns with the network.
    pub standard_ms: Option<f64>,
}

impl AtReference {
    /// Whether the network's time at the table's speed is known no better
    /// than [`STANDARD_AGREEMENT`] either way (its median's 95% interval
    /// is wider): with the standard in turns, the machine's speed moved
    /// faster than a turn, run to run.
    pub fn unsteady(&self) -> bool {
        self.standard_ms.is_some() && self.spread() > STANDARD_AGREEMENT
    }

    /// The half width of the scaled median's 95% interval, relative.
    fn spread(&self) -> f64 {
        (self.scaled.ci_high - self.scaled.ci_low) / 2.0 / self.scaled.median
    }

    /// What the speed standard measured, for a log line: empty without one.
    pub fn standard_note(&self) -> String {
        let Some(standard_ms) = self.standard_ms else {
            return String::new();
        };
        let unsteady = if self.unsteady() {
            format!(
                ", UNSTEADY: its 95% interval spans ±{:.1}%",
                self.spread() * 100.0
            )
        } else {
            String::new()
        };
        format!(
            " by its speed standard in turns ({standard_ms:.4} ms, {} pairs){unsteady}",
            self.scaled.samples
        )
    }
}

/// How far either way the 95% interval of a network's median at the
/// table's speed may reach under the standard before the pass is marked
/// unsteady (`validate`'s `throttled` column).
pub const STANDARD_AGREEMENT: f64 = 0.03;

/// Prepares `workload` (a network), warms it up for `warmup` and times it
/// until `stop` says, its runs brought to the table's speed by `gauge`.
/// The standard is timed in turns with the network on an engine of its
/// own, `standard_engine`, which only [`Gauge::Standard`] needs
/// ([`time_in_turns`]).
pub fn time_at_reference(
    engine: &mut dyn Engine,
    standard_engine: Option<&mut (dyn Engine + '_)>,
    workload: &Workload,
    warmup: Duration,
    stop: &StopRule,
    gauge: &Gauge,
) -> Result<AtReference> {
    match gauge {
        Gauge::FixedParts { reference_ms } => {
            time_scaled(engine, workload, warmup, stop, *reference_ms)
        }
        Gauge::Standard {
            standard_ms,
            blocks,
            ..
        } => {
            let Some(se) = standard_engine else {
                return Err(ProfilerError::Invalid(
                    "--gauge standard times the table's standard in turns with the network, on an engine of its own, and none was opened (a caller's bug)".into(),
                ));
            };
            time_in_turns(engine, se, workload, blocks, warmup, stop, *standard_ms)
        }
    }
}

/// Runs per turn, the last one timed: [`time_in_turns`] says why two.
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
///
/// Why in turns: timed in windows of 0.2 s just before and just after a
/// network (this gauge until 2026-12-07), the standard missed what the
/// machine did in between. On the development VM in a busy spell (the
/// standard 10.5 to 17.4 ms from one second to the next), a round's
/// average level over three to five networks (landed ones, TF-NAS-A/8),
/// 1 s a visit, moved between rounds with an sd of 1.9-5.2 points by
/// windows and 1.2-1.5 by turns of two to six runs, in the same five
/// processes
/// (docs/benchmarks/cpu.md, "The standard in turns").
///
/// Why a turn of two runs, the first untimed: the run after the other
/// network's meets that network's caches. Run by run (a turn of one), the
/// level came out 0.5-2.1 points above turns of two to six runs in the
/// same processes, which agreed with each other within their noise:
/// the second run of a turn is the network as it runs back to back, which
/// is what a table prices and what a served network does.
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
    let mut standards = vec![before];
    let mut runs = Runs::new(blocks.len());
    let clock = WallClock::start();
    let (scaled, _) = sample_until(stop, &clock, || -> Result<f64> {
        let times = turn(engine, &blocks)?;
        let after = total(&turn(standard_engine, standard)?);
        let f = standard_ms / ((before + after) / 2.0);
        before = after;
        standards.push(after);
        Ok(runs.push(&times, f))
    })?;
    let standard_ms = summarize(&standards)
        .ok_or_else(|| ProfilerError::Invalid("no finite standard's time (an engine bug)".into()))?
        .median;
    runs.finish(scaled, Some(standard_ms))
}

/// A network's runs as they are timed, each with the factor that brings
/// it to the table's speed: what [`AtReference`] summarises.
struct Runs {
    raw: Vec<f64>,
    factors: Vec<f64>,
    /// Each block's scaled times, in network order.
    per_block: Vec<Vec<f64>>,
}

impl Runs {
    fn new(blocks: usize) -> Self {
        Runs {
            raw: Vec::new(),
            factors: Vec::new(),
            per_block: vec![Vec::new(); blocks],
        }
    }

    /// Records one run's per-block times and its factor; returns the run's
    /// total at the table's speed.
    fn push(&mut self, times: &[f64], f: f64) -> f64 {
        let total: f64 = times.iter().sum();
        self.raw.push(total);
        self.factors.push(f);
        for (series, t) in self.per_block.iter_mut().zip(times) {
            series.push(t * f);
        }
        total * f
    }

    /// The runs' summary beside `scaled` (the sampler's own summary of
    /// what [`push`](Self::push) returned).
    fn finish(self, scaled: Summary, standard_ms: Option<f64>) -> Result<AtReference> {
        let raw = summarize(&self.raw)
            .ok_or_else(|| ProfilerError::Invalid("no finite raw time (an engine bug)".into()))?;
        Ok(AtReference {
            scaled,
            raw,
            factor: summarize(&self.factors).map_or(1.0, |s| s.median),
            blocks: self
                .per_block
                .iter()
                .map(|series| summarize(series).map_or(f64::NAN, |s| s.median))
                .collect(),
            standard_ms,
        })
    }
}

/// Prepares `workload`, warms it up and times it until `stop` says, each
/// run scaled by `reference_ms` over its fixed parts' time.
fn time_scaled(
    engine: &mut dyn Engine,
    workload: &Workload,
    warmup: Duration,
    stop: &StopRule,
    reference_ms: f64,
) -> Result<AtReference> {
    let blocks = workload.blocks().to_vec();
    engine.prepare(workload)?;
    warm_up(engine, &blocks, warmup)?;
    let mut runs = Runs::new(blocks.len());
    let clock = WallClock::start();
    let (scaled, _) = sample_until(stop, &clock, || -> Result<f64> {
        let times = checked_blocks(engine, &blocks)?;
        let f = factor(&blocks, &times, reference_ms)?;
        Ok(runs.push(&times, f))
    })?;
    runs.finish(scaled, None)
}

#[cfg(test)]
mod tests;
