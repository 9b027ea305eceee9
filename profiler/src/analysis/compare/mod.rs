//! `profiler compare A.csv B.csv`: does a table from one GPU (or driver,
//! batch, launch mode) hold on another?
//!
//! Tables are joined on the block key. A table holds one batch size (the
//! reader enforces it), so joining on key and batch is joining on the key,
//! with a warning when the batches differ. Nothing is dropped silently: keys
//! on one side only are counted and listed, header differences are stated,
//! and settings that make the comparison mix two effects (batch, dtype,
//! launch mode, space) raise warnings rather than refusals, because comparing
//! across them is sometimes exactly the question. The report answers what a
//! search needs to know: how far the values move (ratio B/A, per stage),
//! whether the order of blocks and of each layer's candidate ops survives
//! (Kendall τ-b, Spearman ρ, fastest op), and what that does to the
//! predicted latency of reference networks.

mod report;
mod text;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use space::{
    meta, Architecture, BlockKind, BlockShape, BlockSpec, LatencyTable, SearchSpaceConfig,
    SpaceError,
};

pub use report::*;
pub use text::render_text;

pub use crate::analysis::plot::Point;
use crate::error::{bail, ProfilerError, Result};
use crate::stats::rank::{kendall_tau_b, spearman_rho};
use crate::stats::summary::quantile;

/// A comparison: the report, and the points of its plot.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub report: Report,
    /// Every common entry with both medians positive, in A's order.
    pub points: Vec<Point>,
}

/// Header keys whose difference means the two tables measured different
/// things, not the same thing on different hardware.
const SETTING_KEYS: [&str; 4] = [meta::DTYPE, meta::LAYOUT, meta::LAUNCH, meta::L2];

/// Maps a block to its stage by matching its shape against the space's
/// layers; a shape that occurs in several stages goes to the first.
pub struct Groups {
    stage_of: HashMap<BlockShape, usize>,
    stages: usize,
}

impl Groups {
    pub fn new(space: &SearchSpaceConfig) -> Self {
        let mut stage_of = HashMap::new();
        for (s, layers) in space.layers().iter().enumerate() {
            for layer in layers {
                for op in &space.ops {
                    stage_of.entry(space.op_shape(layer, op)).or_insert(s + 1);
                }
            }
        }
        Groups {
            stage_of,
            stages: space.stages.len(),
        }
    }

    pub fn group_of(&self, spec: &BlockSpec) -> String {
        match spec.shape.kind {
            BlockKind::Stem => "stem".into(),
            BlockKind::Fixed => "fixed".into(),
            BlockKind::Head => "head".into(),
            BlockKind::Mbconv => match self.stage_of.get(&spec.shape) {
                Some(s) => format!("stage{s}"),
                None => "other".into(),
            },
        }
    }

    /// Every group name in network order.
    pub fn order(&self) -> Vec<String> {
        let mut names = vec!["stem".to_string(), "fixed".to_string()];
        names.extend((1..=self.stages).map(|s| format!("stage{s}")));
        names.push("other".into());
        names.push("head".into());
        names
    }
}

/// Summary of positive, finite ratios; `None` for an empty list.
pub fn ratio_summary(ratios: &[f64]) -> Option<RatioSummary> {
    if ratios.is_empty() {
        return None;
    }
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean_log = sorted.iter().map(|r| r.ln()).sum::<f64>() / sorted.len() as f64;
    Some(RatioSummary {
        count: sorted.len(),
        median: quantile(&sorted, 0.5),
        p10: quantile(&sorted, 0.1),
        p90: quantile(&sorted, 0.9),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        geometric_mean: mean_log.exp(),
    })
}

fn info(t: &LatencyTable) -> TableInfo {
    TableInfo {
        path: t.origin().to_string(),
        entries: t.len(),
        batch: t.batch(),
        device: t.metadata().get(meta::DEVICE_NAME).map(str::to_string),
    }
}

/// An entry both tables have, as each prices it.
struct Common {
    spec: BlockSpec,
    a_ms: f64,
    b_ms: f64,
    throttled: bool,
    /// The two medians' 95% intervals do not overlap: the difference is
    /// more than either table's measurement noise.
    beyond_noise: bool,
}

fn key_list(specs: &[&BlockSpec], top: usize) -> KeyList {
    KeyList {
        count: specs.len(),
        first: specs.iter().take(top).map(|s| s.key()).collect(),
    }
}

/// Compares `b` against `a`. Fails only when the tables share no key, since
/// then there is nothing to compare; `top` bounds every listing.
pub fn compare(
    a: &LatencyTable,
    b: &LatencyTable,
    space: &SearchSpaceConfig,
    top: usize,
) -> Result<Comparison> {
    let only_a = only_in(a, b);
    let only_b = only_in(b, a);
    let common = common_entries(a, b);
    if common.is_empty() {
        return Err(no_common_key(a, b, &only_a, &only_b));
    }

    let groups = Groups::new(space);
    let mut warnings = warnings(a, b, space, &only_a, &only_b);
    let throttled = common.iter().filter(|c| c.throttled).count();
    if throttled > 0 {
        warnings.push(format!(
            "{throttled} common entries were measured while a GPU throttled"
        ));
    }

    let Ratios {
        zero,
        ratio,
        ratio_by_group,
        points,
        most_different,
    } = ratios(&common, &groups, top)?;

    Ok(Comparison {
        report: Report {
            a: info(a),
            b: info(b),
            space: format!("{} ({})", space.name, space.digest()),
            header_differences: header_differences(a, b),
            warnings,
            common: common.len(),
            beyond_noise: common.iter().filter(|c| c.beyond_noise).count(),
            only_in_a: key_list(&only_a, top),
            only_in_b: key_list(&only_b, top),
            zero_latency_excluded: zero,
            ratio,
            ratio_by_group,
            rank_all: rank_agreement(&common),
            ops_within_layers: ops_within_layers(a, b, space),
            most_different,
            references: references(a, b, space)?,
        },
        points,
    })
}

/// The blocks of `t` that `other` lacks, in `t`'s order.
fn only_in<'t>(t: &'t LatencyTable, other: &LatencyTable) -> Vec<&'t BlockSpec> {
    let in_other: HashSet<&BlockSpec> = other.entries().iter().map(|e| &e.spec).collect();
    t.entries()
        .iter()
        .map(|e| &e.spec)
        .filter(|s| !in_other.contains(s))
        .collect()
}

/// Every header line whose value differs between `a` and `b`, or that
/// only one of them has.
fn header_differences(a: &LatencyTable, b: &LatencyTable) -> Vec<HeaderDifference> {
    a.metadata()
        .differences(b.metadata())
        .into_iter()
        .map(|(k, va, vb)| HeaderDifference {
            key: k.to_string(),
            a: va.map(str::to_string),
            b: vb.map(str::to_string),
        })
        .collect()
}

/// How well the order of all common entries survives from `a` to `b`.
fn rank_agreement(common: &[Common]) -> RankAgreement {
    let xs: Vec<f64> = common.iter().map(|c| c.a_ms).collect();
    let ys: Vec<f64> = common.iter().map(|c| c.b_ms).collect();
    RankAgreement {
        count: common.len(),
        kendall_tau_b: kendall_tau_b(&xs, &ys),
        spearman_rho: spearman_rho(&xs, &ys),
    }
}

/// The entries both tables hold, each as its table prices it (its median
/// less the table's boundary): what it adds to a network, which is what a
/// search sees.
fn common_entries(a: &LatencyTable, b: &LatencyTable) -> Vec<Common> {
    a.entries()
        .iter()
        .filter_map(|ea| {
            let eb = b.entry(&ea.spec)?;
            let (pa, pb) = (a.estimate(&ea.spec)?, b.estimate(&ea.spec)?);
            // The medians' 95% intervals, shifted as the medians are priced.
            let interval = |e: &space::table::Entry, priced: f64| {
                let shift = e.stats.median_ms - priced;
                (e.stats.ci_low_ms - shift, e.stats.ci_high_ms - shift)
            };
            let (ia, ib) = (interval(ea, pa.ms), interval(eb, pb.ms));
            Some(Common {
                spec: ea.spec,
                a_ms: pa.ms,
                b_ms: pb.ms,
                throttled: ea.stats.throttled || eb.stats.throttled,
                beyond_noise: ia.1 < ib.0 || ib.1 < ia.0,
            })
        })
        .collect()
}

/// Why two tables without a common key cannot be compared, with a few keys
/// of each.
fn no_common_key(
    a: &LatencyTable,
    b: &LatencyTable,
    only_a: &[&BlockSpec],
    only_b: &[&BlockSpec],
) -> ProfilerError {
    let sample = |l: &[&BlockSpec]| {
        l.iter()
            .take(3)
            .map(|s| s.key())
            .collect::<Vec<_>>()
            .join(", ")
    };
    ProfilerError::Invalid(format!(
        "the tables share no block key: {} has {} entries (e.g. {}), {} has {} (e.g. {})",
        a.origin(),
        a.len(),
        if a.is_empty() {
            "none".into()
        } else {
            sample(only_a)
        },
        b.origin(),
        b.len(),
        if b.is_empty() {
            "none".into()
        } else {
            sample(only_b)
        },
    ))
}

/// The ratios B/A of the common entries, overall, by group and the most
/// different ones, with their points for the plot.
struct Ratios {
    /// Entries left out for a zero median on one side.
    zero: usize,
    ratio: RatioSummary,
    ratio_by_group: Vec<GroupRatio>,
    points: Vec<Point>,
    most_different: Vec<EntryRatio>,
}

/// Ratios and points, skipping zero medians (no ratio, no log scale).
fn ratios(common: &[Common], groups: &Groups, top: usize) -> Result<Ratios> {
    let mut zero = 0;
    let mut all_ratios = Vec::new();
    let mut by_group: HashMap<String, Vec<f64>> = HashMap::new();
    let mut points = Vec::new();
    let mut entry_ratios = Vec::new();
    for c in common {
        let (spec, ma, mb) = (c.spec, c.a_ms, c.b_ms);
        if ma <= 0.0 || mb <= 0.0 {
            zero += 1;
            continue;
        }
        let group = groups.group_of(&spec);
        let r = mb / ma;
        all_ratios.push(r);
        by_group.entry(group.clone()).or_default().push(r);
        points.push(Point {
            group: group.clone(),
            a_ms: ma,
            b_ms: mb,
        });
        entry_ratios.push(EntryRatio {
            key: spec.key(),
            group,
            a_ms: ma,
            b_ms: mb,
            ratio: r,
            beyond_noise: c.beyond_noise,
        });
    }
    if all_ratios.is_empty() {
        bail!(
            "all {} common entries have a zero median on one side: no ratio to report",
            common.len()
        );
    }
    let ratio = ratio_summary(&all_ratios).expect("non-empty");
    let ratio_by_group = groups
        .order()
        .into_iter()
        .filter_map(|g| {
            let summary = ratio_summary(by_group.get(&g)?)?;
            Some(GroupRatio {
                group: g,
                ratio: summary,
            })
        })
        .collect();
    entry_ratios.sort_by(|x, y| y.ratio.ln().abs().total_cmp(&x.ratio.ln().abs()));
    entry_ratios.truncate(top);
    Ok(Ratios {
        zero,
        ratio,
        ratio_by_group,
        points,
        most_different: entry_ratios,
    })
}

fn warnings(
    a: &LatencyTable,
    b: &LatencyTable,
    space: &SearchSpaceConfig,
    only_a: &[&BlockSpec],
    only_b: &[&BlockSpec],
) -> Vec<String> {
    let mut w = Vec::new();
    if a.batch() != b.batch() {
        w.push(format!(
            "the tables were measured at different batch sizes ({} and {}): the ratios mix \
             the batch effect with the device effect; compared on matching keys",
            a.batch(),
            b.batch()
        ));
    }
    let (ma, mb) = (a.metadata(), b.metadata());
    let digest_a = ma.get(meta::SPACE_DIGEST);
    let digest_b = mb.get(meta::SPACE_DIGEST);
    if digest_a.is_some() && digest_b.is_some() && digest_a != digest_b {
        w.push(format!(
            "the tables were built for different spaces ({} and {}): compared on matching keys",
            ma.get(meta::SPACE).or(digest_a).unwrap_or_default(),
            mb.get(meta::SPACE).or(digest_b).unwrap_or_default(),
        ));
    }
    for (side, digest) in [("A", digest_a), ("B", digest_b)] {
        if let Some(d) = digest.filter(|&d| d != space.digest()) {
            w.push(format!(
                "table {side} was built for space digest {d}; stages and layers here follow \
                 space '{}' ({}): pass its file with --space",
                space.name,
                space.digest()
            ));
        }
    }
    for key in SETTING_KEYS {
        let (va, vb) = (ma.get(key), mb.get(key));
        if va.is_some() && vb.is_some() && va != vb {
            w.push(format!(
                "the tables were measured with different {key} ({} and {}): the ratios \
                 include that change",
                va.unwrap_or_default(),
                vb.unwrap_or_default()
            ));
        }
    }
    // Two measured boundaries differ as devices do (a measured 0 included);
    // a table without the line (older, or hand-made) prices its blocks
    // another way.
    if a.header_boundary_ms().is_some() != b.header_boundary_ms().is_some() {
        w.push(format!(
            "only one table takes a boundary off each block (A {:.4} ms, B {:.4} ms): \
             entries are compared as priced, medians less boundary",
            a.boundary_ms(),
            b.boundary_ms()
        ));
    }
    if !only_a.is_empty() || !only_b.is_empty() {
        w.push(format!(
            "{} keys are only in A and {} only in B; they are listed and left out of the statistics",
            only_a.len(),
            only_b.len()
        ));
    }
    w
}

/// Per searchable layer, the latency of every candidate op at its initial
/// width (interpolated where needed) under both tables: whether the order of
/// the ops, which is what the search chooses between, survives.
fn ops_within_layers(
    a: &LatencyTable,
    b: &LatencyTable,
    space: &SearchSpaceConfig,
) -> LayerAgreement {
    let mut per_layer = Vec::new();
    let mut not_covered = Vec::new();
    let mut layers = 0;
    for (s, stage) in space.layers().iter().enumerate() {
        for (l, layer) in stage.iter().enumerate() {
            layers += 1;
            let values: Option<Vec<(f64, f64)>> = space
                .ops
                .iter()
                .map(|op| {
                    let mid = space.width_range(op, layer.in_channels).initial;
                    let spec = space.op_shape(layer, op).at(mid);
                    Some((a.estimate(&spec)?.ms, b.estimate(&spec)?.ms))
                })
                .collect();
            let Some(values) = values else {
                not_covered.push(format!("stage{}.layer{}", s + 1, l + 1));
                continue;
            };
            let xa: Vec<f64> = values.iter().map(|v| v.0).collect();
            let xb: Vec<f64> = values.iter().map(|v| v.1).collect();
            per_layer.push(LayerRank {
                stage: s + 1,
                layer: l + 1,
                kendall_tau_b: kendall_tau_b(&xa, &xb),
                spearman_rho: spearman_rho(&xa, &xb),
                fastest_a: space.ops[argmin(&xa)].name.clone(),
                fastest_b: space.ops[argmin(&xb)].name.clone(),
            });
        }
    }
    let mean = |f: fn(&LayerRank) -> Option<f64>| {
        let v: Vec<f64> = per_layer.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let differs = per_layer
        .iter()
        .filter(|l| l.fastest_a != l.fastest_b)
        .count();
    LayerAgreement {
        layers,
        compared: per_layer.len(),
        not_covered,
        mean_kendall_tau_b: mean(|l| l.kendall_tau_b),
        mean_spearman_rho: mean(|l| l.spearman_rho),
        fastest_op_differs: differs,
        fastest_op_differs_share: (!per_layer.is_empty())
            .then(|| differs as f64 / per_layer.len() as f64),
        per_layer,
    }
}

/// Index of the smallest value; the first on ties (the space's op order).
fn argmin(v: &[f64]) -> usize {
    (1..v.len()).fold(0, |best, i| if v[i] < v[best] { i } else { best })
}

/// The reference networks: TF-NAS-A (method doc §7, on the default space)
/// and the space's extremes. "Smallest": depth 1 in every stage, the op with
/// the smallest minimum expansion (then smallest kernel, then smallest SE) at
/// its minimum width. "Largest": full depth, the op with the largest maximum
/// expansion (then largest kernel, then largest SE) at its maximum width. On
/// the TF-NAS space these are k3_e3 and k5_e6_se, the method doc's §4 range.
pub fn reference_architectures(
    space: &SearchSpaceConfig,
) -> Result<Vec<(String, String, Architecture)>> {
    let ops = &space.ops;
    let smallest_op = (0..ops.len())
        .min_by_key(|&i| (ops[i].min_expansion, ops[i].kernel, ops[i].se_ratio, i))
        .expect("a valid space has ops");
    let largest_op = (0..ops.len())
        .max_by_key(|&i| {
            (
                ops[i].max_expansion,
                ops[i].kernel,
                ops[i].se_ratio,
                std::cmp::Reverse(i),
            )
        })
        .expect("a valid space has ops");
    let layers = space.layers();
    let smallest: Vec<Vec<(usize, u32)>> = layers
        .iter()
        .map(|stage| {
            let w = space.width_range(&ops[smallest_op], stage[0].in_channels);
            vec![(smallest_op, w.min)]
        })
        .collect();
    let largest: Vec<Vec<(usize, u32)>> = layers
        .iter()
        .map(|stage| {
            stage
                .iter()
                .map(|l| {
                    let w = space.width_range(&ops[largest_op], l.in_channels);
                    (largest_op, w.max)
                })
                .collect()
        })
        .collect();
    Ok(vec![
        (
            "tfnas-a".into(),
            "TF-NAS-A (default space, method doc §7)".into(),
            Architecture::tfnas_a(),
        ),
        (
            "smallest".into(),
            format!(
                "depth 1 everywhere, {} at its minimum width",
                ops[smallest_op].name
            ),
            Architecture::from_choices(space, &smallest)?,
        ),
        (
            "largest".into(),
            format!("full depth, {} at its maximum width", ops[largest_op].name),
            Architecture::from_choices(space, &largest)?,
        ),
    ])
}

/// The predicted latency, or the keys the table lacks for it.
fn predict(table: &LatencyTable, arch: &Architecture) -> Result<Result<f64, Vec<String>>> {
    match table.predict(arch) {
        Ok(l) => Ok(Ok(l.total_ms)),
        Err(SpaceError::MissingEntries { keys }) => Ok(Err(keys)),
        Err(e) => Err(e.into()),
    }
}

fn references(
    a: &LatencyTable,
    b: &LatencyTable,
    space: &SearchSpaceConfig,
) -> Result<Vec<ReferencePrediction>> {
    let mut out = Vec::new();
    for (name, description, arch) in reference_architectures(space)? {
        let (pa, pb) = (predict(a, &arch)?, predict(b, &arch)?);
        let (a_ms, b_ms) = (pa.clone().ok(), pb.clone().ok());
        out.push(ReferencePrediction {
            name,
            description,
            a_ms,
            b_ms,
            ratio: a_ms.zip(b_ms).filter(|(x, _)| *x > 0.0).map(|(x, y)| y / x),
            missing_in_a: pa.err().unwrap_or_default(),
            missing_in_b: pb.err().unwrap_or_default(),
        });
    }
    Ok(out)
}
