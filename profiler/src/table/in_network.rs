//! Table entries timed inside networks (a CPU table's `--cache network`).
//!
//! A block timed alone, run after run, finds its weights and its input in
//! the caches where its own last run left them; inside a network it finds
//! its input hot from the block before and its weights wherever the rest
//! of the network pushed them. On a CPU the two differ by more than the
//! table's error budget (docs/cpu.md: blocks alone summed 18–20% under the
//! networks they make up), and no eviction before a lone run reproduces
//! the second state. So the entries are timed where they are used:
//! networks of the space are run back to back, a clock is read between
//! every two blocks ([`Engine::run_timed_blocks`]), and each block's time
//! goes to its entry, scaled to the table's speed reference
//! ([`crate::measure::speed`]) so that a machine whose speed drifts during
//! the build prices every entry at one speed.
//!
//! The networks are drawn to cover the plan: each stage at a depth drawn
//! as `validate` draws it (so a block is timed among as many others as in
//! the networks a table predicts), and at each kept position the entry
//! that fits there and has been in the fewest networks so far (ties broken
//! by a seeded draw); a position whose entries are all written gets a
//! random one, timed as the context of the others. An entry is written
//! once it has been in [`InNetwork::min_networks`] networks and its
//! median's 95% interval is within the rule's width, or once it has been in
//! [`InNetwork::max_networks`].
//!
//! An entry written early goes on being timed wherever it is drawn as
//! context, at no extra cost: the build runs those networks for the
//! entries still pending. Its samples keep gathering until the build ends,
//! and [`NetworkReport::entries`] holds every entry's median over all of
//! them, for the caller to put in place of the row written early. At width
//! step 32 the median entry ends with 21 networks instead of 12; the
//! widest positions' entries, pending to the end, keep their 12. Six
//! builds on the development VM, each entry taken both ways from the same
//! runs, priced 20 networks relative to TF-NAS-A with a median difference
//! between two builds of 0.51% instead of 0.76% (15 pairs;
//! docs/benchmarks/cpu.md).
//!
//! The times between readings sum to the run's time: the entries carry no
//! start or end of a run, and the table's boundary is 0.

use std::collections::{HashMap, HashSet};

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use space::{BlockSpec, Entry, SearchSpaceConfig, TablePlan};

use crate::error::{ProfilerError, Result};
use crate::measure::engine::{Engine, Workload};
use crate::measure::speed::{checked_blocks, factor};
use crate::measure::timing::TimingRule;
use crate::stats::summary::summarize;
use crate::table::entry::entry;
use crate::table::progress::Progress;

/// How entries are timed inside networks: the one place these defaults
/// are stated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InNetwork {
    /// Timed runs of each network (after its warm-up).
    pub runs_per_network: u32,
    /// The fewest networks an entry is timed in before it may be written.
    pub min_networks: u32,
    /// An entry is written after this many networks, converged or not.
    pub max_networks: u32,
    /// Seed of the draws that break ties and fill the other positions.
    pub seed: u64,
}

impl InNetwork {
    /// The widest position of the TF-NAS space holds about 150 entries at
    /// width step 32, so the build runs about `150 * max_networks`
    /// networks: 12 keeps a step-32 table near 2 minutes on one core of
    /// the development VM (1 800 networks) and gives each entry at least
    /// 12 samples from 4 networks. With 6, the median validation error
    /// rose from 1.8–2.4% to 3.4–3.5% (docs/cpu.md).
    pub const DEFAULT: InNetwork = InNetwork {
        runs_per_network: 3,
        min_networks: 4,
        max_networks: 12,
        seed: 0,
    };

    /// One line for the table's header.
    pub fn describe(&self) -> String {
        format!(
            "each entry timed inside networks of the space (depths drawn per stage) run back to back, a clock read between blocks, every run scaled to the speed reference: {} timed runs per network after one untimed, at least {} and at most {} networks per entry before its row is written, then every network it fills as context until the build ends (its row rewritten then), seed {}",
            self.runs_per_network, self.min_networks, self.max_networks, self.seed
        )
    }
}

impl Default for InNetwork {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One position of a full-depth network of the space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// `(stage, layer)` of a searchable layer; `None` for a fixed part,
    /// which every network has.
    pub layer: Option<(usize, usize)>,
    /// Indices into the plan's blocks of the entries that fit there.
    pub fit: Vec<usize>,
}

/// The positions of a full-depth network of `space`, in order.
pub fn positions(space: &SearchSpaceConfig, plan: &TablePlan) -> Result<Vec<Position>> {
    let mut by_shape: HashMap<_, Vec<usize>> = HashMap::new();
    for (i, b) in plan.blocks.iter().enumerate() {
        by_shape.entry(b.shape).or_default().push(i);
    }
    let fixed = space.fixed_parts();
    let of = |shape| by_shape.get(&shape).cloned().unwrap_or_default();
    let fixed_at = |shape| Position {
        layer: None,
        fit: of(shape),
    };
    let mut out = vec![
        fixed_at(fixed.stem.shape),
        fixed_at(fixed.second_stem.shape),
    ];
    for (s, stage) in space.layers().iter().enumerate() {
        for (l, layer) in stage.iter().enumerate() {
            let mut fit: Vec<usize> = Vec::new();
            for op in &space.ops {
                for i in of(space.op_shape(layer, op)) {
                    if !fit.contains(&i) {
                        fit.push(i);
                    }
                }
            }
            out.push(Position {
                layer: Some((s, l)),
                fit,
            });
        }
    }
    out.push(fixed_at(fixed.head.shape));
    if let Some(p) = out.iter().position(|p| p.fit.is_empty()) {
        return Err(ProfilerError::Invalid(format!(
            "position {p} of the space's network has no entry in the table plan"
        )));
    }
    Ok(out)
}

/// The network a new table's speed reference is measured in: at each
/// position, the middle of the entries that fit there.
pub fn reference_network(space: &SearchSpaceConfig, plan: &TablePlan) -> Result<Vec<BlockSpec>> {
    Ok(positions(space, plan)?
        .iter()
        .map(|p| plan.blocks[p.fit[p.fit.len() / 2]])
        .collect())
}

/// What one entry has gathered so far.
#[derive(Default)]
struct Gathered {
    samples: Vec<f64>,
    networks: u32,
}

/// What [`time_in_networks`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkReport {
    /// Networks prepared and run.
    pub networks: usize,
    /// Entries written.
    pub written: usize,
    /// Every entry of `todo` as the build ends, in `todo`'s order: its
    /// median over every network it was timed in, written early or not.
    pub entries: Vec<Entry>,
}

/// Times the entries `todo` inside networks of `space`, each run scaled to
/// `reference_ms` when given, and calls `write` with each entry as soon as
/// it is final; the report holds them again with the samples they gathered
/// as context after that. Entries of the plan outside `todo`
/// (written by an earlier run, or beyond a `--limit`) fill positions as
/// context and are not written again.
#[allow(clippy::too_many_arguments)]
pub fn time_in_networks(
    engine: &mut dyn Engine,
    space: &SearchSpaceConfig,
    plan: &TablePlan,
    todo: &[BlockSpec],
    rule: &TimingRule,
    how: &InNetwork,
    reference_ms: Option<f64>,
    progress: &dyn Progress,
    write: &mut dyn FnMut(Entry) -> Result<()>,
) -> Result<NetworkReport> {
    let positions = positions(space, plan)?;
    // An entry no position takes would never be timed: refuse, not loop.
    let placed: HashSet<BlockSpec> = positions
        .iter()
        .flat_map(|p| p.fit.iter().map(|&i| plan.blocks[i]))
        .collect();
    if let Some(stray) = todo.iter().find(|s| !placed.contains(s)) {
        return Err(ProfilerError::Invalid(format!(
            "{stray}: no position of the space's networks takes this entry"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(how.seed);
    let mut gathered: HashMap<BlockSpec, Gathered> =
        todo.iter().map(|s| (*s, Gathered::default())).collect();
    let mut pending: HashSet<BlockSpec> = todo.iter().copied().collect();
    let mut report = NetworkReport::default();
    let batch = engine.config().batch;
    while !pending.is_empty() {
        let blocks = compose(space, &positions, plan, &gathered, &pending, &mut rng)?;
        let times = run_network(engine, &blocks, how, reference_ms, report.networks)?;
        report.networks += 1;
        for run in &times {
            for (spec, &ms) in blocks.iter().zip(run) {
                if let Some(g) = gathered.get_mut(spec) {
                    g.samples.push(ms);
                }
            }
        }
        let mut seen = HashSet::new();
        for spec in &blocks {
            if !seen.insert(*spec) {
                continue;
            }
            let Some(g) = gathered.get_mut(spec) else {
                continue;
            };
            g.networks += 1;
            if !pending.contains(spec) {
                continue;
            }
            if let Some(entry) = finished(spec, g, batch, rule, how) {
                pending.remove(spec);
                write(entry)?;
                report.written += 1;
                progress.advance();
            }
        }
    }
    report.entries = todo
        .iter()
        .filter_map(|spec| {
            let s = summarize(&gathered[spec].samples)?;
            Some(entry(*spec, batch, &s, false))
        })
        .collect();
    Ok(report)
}

/// One network of the space: each stage at a depth drawn as `validate`
/// draws it (uniform in `1..=max_depth`), so that blocks are timed among
/// as many others as in the networks a table predicts; at each kept
/// position the pending entry that fits and has been in the fewest
/// networks, else a random entry that fits.
fn compose(
    space: &SearchSpaceConfig,
    positions: &[Position],
    plan: &TablePlan,
    gathered: &HashMap<BlockSpec, Gathered>,
    pending: &HashSet<BlockSpec>,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<BlockSpec>> {
    let depths: Vec<usize> = space
        .stages
        .iter()
        .map(|st| rng.gen_range(1..=st.max_depth.max(1)) as usize)
        .collect();
    let mut blocks: Vec<BlockSpec> = Vec::with_capacity(positions.len());
    for p in positions {
        if p.layer.is_some_and(|(s, l)| l >= depths[s]) {
            continue;
        }
        let mut candidates: Vec<(u32, BlockSpec)> = p
            .fit
            .iter()
            .filter_map(|&i| {
                let spec = plan.blocks[i];
                pending
                    .contains(&spec)
                    .then(|| (gathered[&spec].networks, spec))
            })
            .collect();
        // Positions of one shape share their entries: spread them.
        if candidates.iter().any(|c| !blocks.contains(&c.1)) {
            candidates.retain(|c| !blocks.contains(&c.1));
        }
        let spec = match candidates.iter().map(|c| c.0).min() {
            Some(least) => {
                let fewest: Vec<BlockSpec> = candidates
                    .iter()
                    .filter(|c| c.0 == least)
                    .map(|c| c.1)
                    .collect();
                fewest[rng.gen_range(0..fewest.len())]
            }
            None => {
                let &i = p.fit.choose(rng).ok_or_else(|| {
                    ProfilerError::Invalid("a network position without entries".into())
                })?;
                plan.blocks[i]
            }
        };
        blocks.push(spec);
    }
    Ok(blocks)
}

/// Prepares `blocks` as network number `n`, runs it once untimed and
/// returns the per-block times of each timed run, scaled to `reference_ms`
/// when given ([`crate::measure::speed`]).
fn run_network(
    engine: &mut dyn Engine,
    blocks: &[BlockSpec],
    how: &InNetwork,
    reference_ms: Option<f64>,
    n: usize,
) -> Result<Vec<Vec<f64>>> {
    let workload = Workload::Network {
        name: format!("context {n}"),
        blocks: blocks.to_vec(),
    };
    engine.prepare(&workload)?;
    // One untimed run: it brings every weight and buffer of the network
    // through the caches once, the state every later run starts from.
    checked_blocks(engine, blocks)?;
    (0..how.runs_per_network.max(1))
        .map(|_| {
            let mut times = checked_blocks(engine, blocks)?;
            if let Some(reference) = reference_ms {
                let f = factor(blocks, &times, reference)?;
                times.iter_mut().for_each(|t| *t *= f);
            }
            Ok(times)
        })
        .collect()
}

/// The entry's row once it is final: in enough networks and converged, or
/// in the most networks allowed, or at the sample bound.
fn finished(
    spec: &BlockSpec,
    g: &Gathered,
    batch: u32,
    rule: &TimingRule,
    how: &InNetwork,
) -> Option<Entry> {
    let s = summarize(&g.samples)?;
    let enough = g.networks >= how.min_networks && s.samples >= rule.stop.min_samples;
    let converged = s.ci_exact && s.relative_half_width() <= rule.stop.rel_half_width;
    let done = (enough && converged)
        || g.networks >= how.max_networks.max(how.min_networks)
        || s.samples >= rule.stop.max_samples;
    done.then(|| entry(*spec, batch, &s, false))
}
