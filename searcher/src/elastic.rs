//! Elasticity scaling (docs/method.md §3): after every epoch past warm-up,
//! the widths of the argmax network are snapped so that its table latency is
//! the largest it can be while staying at or under the target.
//!
//! Pure arithmetic on latency curves, no tensors, so it is tested exactly.
//! Where widths alone cannot reach the target, `extend.rs` (an extension,
//! off with `--method-strict`) changes depths and ops of the derived
//! network and scales again.
//! Differences from the official code, both deliberate:
//! - an expansion pass that reaches every upper bound while still at or
//!   under the target keeps that widest config (the official loop returns
//!   the one before it);
//! - steps round half away from zero (`f64::round`) rather than Python's
//!   banker's rounding, which only matters for ratios of exactly x.5.

/// One kept block of the argmax network: its chosen op's width and range,
/// and that op's latency at every width of the range.
#[derive(Clone, Debug, PartialEq)]
pub struct ElasticBlock {
    /// 0-based stage index.
    pub stage: usize,
    pub mid: u32,
    pub min: u32,
    pub max: u32,
    /// `ms[w - min]`: the table latency at mid width `w`.
    pub ms: Vec<f64>,
}

impl ElasticBlock {
    fn ms_at(&self, mid: u32) -> f64 {
        self.ms[(mid - self.min) as usize]
    }
}

/// What one scaling did, for the per-epoch report.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub before_ms: f64,
    pub after_ms: f64,
    /// Latency after each pass: the global one, then the finer expansions.
    pub passes: Vec<f64>,
}

/// Latency of the network: `base_ms` plus every block at its width.
pub fn latency(base_ms: f64, blocks: &[ElasticBlock]) -> f64 {
    base_ms + blocks.iter().map(|b| b.ms_at(b.mid)).sum::<f64>()
}

/// Scales `blocks` in place: a global shrink (over target) or expansion
/// (under it) of all stages, then expansions of stages 2.., 3.., …, the last
/// alone. The result is at or under `target_ms` unless even every block at
/// its minimum width is over it.
///
/// `multiple` (1 in the method) keeps every width a multiple of it: widths
/// are first snapped to the nearest multiple inside their range, and every
/// step is that many channels times the proportional step. With the
/// table's width step, every width is then a measured one; with 8, the
/// widths are those hardware and deployment tools favour (MobileNet's
/// `make_divisible`). Every range must hold a multiple ([`range_holds`]).
pub fn scale(
    base_ms: f64,
    blocks: &mut [ElasticBlock],
    num_stages: usize,
    target_ms: f64,
    multiple: u32,
) -> Outcome {
    let m = multiple.max(1);
    let before_ms = latency(base_ms, blocks);
    if m > 1 {
        for b in blocks.iter_mut() {
            let (lo, hi) = bounds(b, m);
            let nearest = (b.mid + m / 2) / m * m;
            b.mid = nearest.clamp(lo, hi);
        }
    }
    let mut passes = Vec::new();
    let start_ms = latency(base_ms, blocks);
    if start_ms != target_ms {
        let sign = if start_ms > target_ms { -1 } else { 1 };
        fit(base_ms, blocks, 0, sign, target_ms, m);
        passes.push(latency(base_ms, blocks));
    }
    for first in 1..num_stages {
        fit(base_ms, blocks, first, 1, target_ms, m);
        passes.push(latency(base_ms, blocks));
    }
    Outcome {
        before_ms,
        after_ms: latency(base_ms, blocks),
        passes,
    }
}

/// Whether `[min, max]` holds a multiple of `multiple`.
pub fn range_holds(min: u32, max: u32, multiple: u32) -> bool {
    let m = multiple.max(1);
    min.div_ceil(m) * m <= max
}

/// The smallest and largest multiple of `m` in a block's range (its bounds
/// themselves for `m = 1`).
fn bounds(b: &ElasticBlock, m: u32) -> (u32, u32) {
    (b.min.div_ceil(m) * m, b.max / m * m)
}

/// One pass over the blocks of stages `first_stage..`: move every width by
/// `sign` times its proportional step (in multiples of `m`) until the
/// latency crosses the target or every block sits at a bound. A shrink
/// keeps the first config under the target; an expansion keeps the last
/// config at or under it.
fn fit(
    base_ms: f64,
    blocks: &mut [ElasticBlock],
    first_stage: usize,
    sign: i64,
    target_ms: f64,
    m: u32,
) {
    let chosen: Vec<usize> = (0..blocks.len())
        .filter(|&i| blocks[i].stage >= first_stage)
        .collect();
    let Some(min_mid) = chosen.iter().map(|&i| blocks[i].mid).min() else {
        return;
    };
    // The narrowest block moves one channel per step, the others in
    // proportion to their width.
    let steps: Vec<i64> = chosen
        .iter()
        .map(|&i| {
            ((f64::from(blocks[i].mid) / f64::from(min_mid)).round() as i64).max(1) * i64::from(m)
        })
        .collect();
    let mut moving = vec![true; chosen.len()];
    let mut lat = latency(base_ms, blocks);
    let mut last_fitting: Option<Vec<u32>> = None;
    let keep_going = |lat: f64| {
        if sign > 0 {
            lat <= target_ms
        } else {
            lat >= target_ms
        }
    };
    while moving.iter().any(|&m| m) && keep_going(lat) {
        if sign > 0 {
            last_fitting = Some(chosen.iter().map(|&i| blocks[i].mid).collect());
        }
        for (n, &i) in chosen.iter().enumerate() {
            let (lo, hi) = bounds(&blocks[i], m);
            let b = &mut blocks[i];
            let next = (i64::from(b.mid) + sign * steps[n]).clamp(i64::from(lo), i64::from(hi));
            b.mid = next as u32;
            if b.mid == lo || b.mid == hi {
                moving[n] = false;
            }
        }
        lat = latency(base_ms, blocks);
    }
    if sign > 0 && lat > target_ms {
        if let Some(mids) = last_fitting {
            for (&i, mid) in chosen.iter().zip(mids) {
                blocks[i].mid = mid;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;
    use crate::latency::LatencyModel;

    /// The argmax network of the tiny fixture at full depth with `ops`,
    /// every block at its op's initial width.
    fn blocks(ops: &[usize]) -> (f64, Vec<ElasticBlock>) {
        let space = fixture::tiny_space();
        let model = fixture::tiny_model(&space);
        let mut out = Vec::new();
        let mut n = 0;
        for (s, stage) in model.curves.iter().enumerate() {
            for layer in stage {
                let c = &layer[ops[n]];
                out.push(ElasticBlock {
                    stage: s,
                    mid: c.range.initial,
                    min: c.range.min,
                    max: c.range.max,
                    ms: c.all().to_vec(),
                });
                n += 1;
            }
        }
        (model.base_ms, out)
    }

    fn check_widest(base: f64, scaled: &[ElasticBlock], target: f64) {
        let lat = latency(base, scaled);
        assert!(lat <= target + 1e-12, "{lat} over {target}");
        // One more channel on the last stage's block (the finest pass)
        // would exceed the target, unless it is already at its maximum.
        let mut wider = scaled.to_vec();
        let last = wider.last_mut().unwrap();
        if last.mid < last.max {
            last.mid += 1;
            assert!(latency(base, &wider) > target, "not the widest at {target}");
        }
    }

    #[test]
    fn lands_at_or_under_every_reachable_target_and_is_the_widest() {
        for ops in [[0, 0, 0], [1, 1, 1], [0, 1, 0], [1, 0, 1]] {
            let (base, initial) = blocks(&ops);
            let min: f64 = base + initial.iter().map(|b| b.ms[0]).sum::<f64>();
            let max: f64 = base + initial.iter().map(|b| *b.ms.last().unwrap()).sum::<f64>();
            for k in 0..=20 {
                let target = min + (max - min) * f64::from(k) / 20.0;
                let mut scaled = initial.clone();
                let out = scale(base, &mut scaled, 2, target, 1);
                assert_eq!(out.after_ms, latency(base, &scaled));
                check_widest(base, &scaled, target);
                for b in &scaled {
                    assert!((b.min..=b.max).contains(&b.mid));
                }
                // Within 1% under the target wherever the last block had
                // room to move (the toy curves are coarse, the real ones
                // are not).
                if scaled.last().unwrap().mid < scaled.last().unwrap().max && target > min {
                    assert!(
                        out.after_ms >= target - 0.1,
                        "{} for {target}",
                        out.after_ms
                    );
                }
            }
        }
    }

    /// The default space priced by the MAC-count proxy (every width), and
    /// the kept blocks of TF-NAS-A at its published widths: base, blocks,
    /// and the table.
    fn tfnas_a_blocks() -> (f64, Vec<ElasticBlock>, space::LatencyTable) {
        let space = space::SearchSpaceConfig::default();
        let table = crate::proxy::proxy_table(&space, 32).unwrap();
        let model = LatencyModel::new(&space, &table).unwrap();
        let mut blocks = Vec::new();
        for (s, stage) in space::Architecture::tfnas_a().stages.iter().enumerate() {
            for (b, block) in stage.blocks.iter().enumerate() {
                let c = model.curve(s, b, space.op_index(&block.op).unwrap());
                blocks.push(ElasticBlock {
                    stage: s,
                    mid: block.mid_channels,
                    min: c.range.min,
                    max: c.range.max,
                    ms: c.all().to_vec(),
                });
            }
        }
        (model.base_ms, blocks, table)
    }

    #[test]
    fn tfnas_a_lands_within_one_percent_under_targets_across_its_range() {
        // The default space priced by the MAC-count proxy (every width), the
        // ops and depths of TF-NAS-A at its published widths.
        let (base, initial, table) = tfnas_a_blocks();
        let min = base + initial.iter().map(|b| b.ms[0]).sum::<f64>();
        let max = base + initial.iter().map(|b| *b.ms.last().unwrap()).sum::<f64>();
        let published = latency(base, &initial);
        let a = space::Architecture::tfnas_a();
        assert!((published - table.predict(&a).unwrap().total_ms).abs() < 1e-9);
        for k in 1..10 {
            let target = min + (max - min) * f64::from(k) / 10.0;
            let mut scaled = initial.clone();
            let out = scale(base, &mut scaled, 6, target, 1);
            assert!(
                out.after_ms <= target && out.after_ms >= 0.99 * target,
                "{} for target {target} (range {min}..{max})",
                out.after_ms
            );
            check_widest(base, &scaled, target);
        }
    }

    #[test]
    fn a_width_multiple_keeps_every_width_on_it_and_under_target() {
        // TF-NAS-A's published widths (83, 138, ...) are not multiples of
        // 8; scaled with a multiple of 8 every width becomes one, and the
        // network still lands at or under each target, close to it.
        let (base, initial, _) = tfnas_a_blocks();
        assert!(initial.iter().all(|b| range_holds(b.min, b.max, 8)));
        assert!(initial.iter().any(|b| b.mid % 8 != 0));
        let min = base + initial.iter().map(|b| b.ms[0]).sum::<f64>();
        let max = base + initial.iter().map(|b| *b.ms.last().unwrap()).sum::<f64>();
        for k in 1..10 {
            let target = min + (max - min) * f64::from(k) / 10.0;
            let mut scaled = initial.clone();
            let out = scale(base, &mut scaled, 6, target, 8);
            assert!(scaled.iter().all(|b| b.mid % 8 == 0), "{scaled:?}");
            assert!(scaled.iter().all(|b| (b.min..=b.max).contains(&b.mid)));
            assert!(
                out.after_ms <= target && out.after_ms >= 0.98 * target,
                "{} for target {target}",
                out.after_ms
            );
        }
        assert!(!range_holds(17, 23, 8) && range_holds(17, 24, 8) && range_holds(5, 5, 1));
    }

    #[test]
    fn shrinks_over_target_and_expands_under_it() {
        let (base, initial) = blocks(&[1, 1, 1]);
        let before = latency(base, &initial);
        let mut shrunk = initial.clone();
        let out = scale(base, &mut shrunk, 2, before - 0.5, 1);
        assert!(out.passes[0] < before - 0.5);
        assert!(shrunk.iter().zip(&initial).all(|(a, b)| a.mid <= b.mid));
        let mut grown = initial.clone();
        scale(base, &mut grown, 2, before + 0.5, 1);
        assert!(grown.iter().zip(&initial).all(|(a, b)| a.mid >= b.mid));
        assert!(latency(base, &grown) > before);
    }

    #[test]
    fn steps_are_proportional_to_width() {
        // Two flat-cost blocks of 10 and 30 channels in one stage: a shrink
        // moves them 1 and 3 channels per step.
        let block = |mid, min, max| ElasticBlock {
            stage: 0,
            mid,
            min,
            max,
            ms: (min..=max).map(|w| f64::from(w) * 0.01).collect(),
        };
        let mut b = vec![block(10, 5, 20), block(30, 15, 60)];
        // 0.4 ms now; a target of 0.37 needs one step: 9 + 27 = 0.36 ms.
        scale(0.0, &mut b, 1, 0.37, 1);
        assert_eq!((b[0].mid, b[1].mid), (9, 27));
    }

    #[test]
    fn an_unreachable_target_stays_at_the_minimum() {
        let (base, initial) = blocks(&[1, 1, 1]);
        let mut scaled = initial.clone();
        let out = scale(base, &mut scaled, 2, 0.1, 1);
        assert!(scaled.iter().all(|b| b.mid == b.min));
        assert!(out.after_ms > 0.1);
    }

    #[test]
    fn a_target_over_everything_reaches_every_maximum() {
        let (base, initial) = blocks(&[0, 1, 0]);
        let mut scaled = initial.clone();
        scale(base, &mut scaled, 2, 1e9, 1);
        assert!(scaled.iter().all(|b| b.mid == b.max));
    }
}
