//! Elasticity scaling (tfnas-method.md §3): after every epoch past warm-up,
//! the widths of the argmax network are snapped so that its table latency is
//! the largest it can be while staying at or under the target.
//!
//! Pure arithmetic on latency curves, no tensors, so it is tested exactly.
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
pub fn scale(
    base_ms: f64,
    blocks: &mut [ElasticBlock],
    num_stages: usize,
    target_ms: f64,
) -> Outcome {
    let before_ms = latency(base_ms, blocks);
    let mut passes = Vec::new();
    if before_ms != target_ms {
        let sign = if before_ms > target_ms { -1 } else { 1 };
        fit(base_ms, blocks, 0, sign, target_ms);
        passes.push(latency(base_ms, blocks));
    }
    for first in 1..num_stages {
        fit(base_ms, blocks, first, 1, target_ms);
        passes.push(latency(base_ms, blocks));
    }
    Outcome {
        before_ms,
        after_ms: latency(base_ms, blocks),
        passes,
    }
}

/// One pass over the blocks of stages `first_stage..`: move every width by
/// `sign` times its proportional step until the latency crosses the target
/// or every block sits at a bound. A shrink keeps the first config under the
/// target; an expansion keeps the last config at or under it.
fn fit(base_ms: f64, blocks: &mut [ElasticBlock], first_stage: usize, sign: i64, target_ms: f64) {
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
        .map(|&i| ((f64::from(blocks[i].mid) / f64::from(min_mid)).round() as i64).max(1))
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
            let b = &mut blocks[i];
            let next =
                (i64::from(b.mid) + sign * steps[n]).clamp(i64::from(b.min), i64::from(b.max));
            b.mid = next as u32;
            if b.mid == b.min || b.mid == b.max {
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
        let model = LatencyModel::new(&space, &fixture::tiny_table()).unwrap();
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
                let out = scale(base, &mut scaled, 2, target);
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

    #[test]
    fn tfnas_a_lands_within_one_percent_under_targets_across_its_range() {
        // The default space priced by the MAC-count proxy (every width), the
        // ops and depths of TF-NAS-A at its published widths.
        let space = space::SearchSpaceConfig::default();
        let table = crate::proxy::proxy_table(&space, 32).unwrap();
        let model = LatencyModel::new(&space, &table).unwrap();
        let a = space::Architecture::tfnas_a();
        let mut initial = Vec::new();
        for (s, stage) in a.stages.iter().enumerate() {
            for (b, block) in stage.blocks.iter().enumerate() {
                let c = model.curve(s, b, space.op_index(&block.op).unwrap());
                initial.push(ElasticBlock {
                    stage: s,
                    mid: block.mid_channels,
                    min: c.range.min,
                    max: c.range.max,
                    ms: c.all().to_vec(),
                });
            }
        }
        let base = model.base_ms;
        let min = base + initial.iter().map(|b| b.ms[0]).sum::<f64>();
        let max = base + initial.iter().map(|b| *b.ms.last().unwrap()).sum::<f64>();
        let published = latency(base, &initial);
        assert!((published - table.predict(&a).unwrap().total_ms).abs() < 1e-9);
        for k in 1..10 {
            let target = min + (max - min) * f64::from(k) / 10.0;
            let mut scaled = initial.clone();
            let out = scale(base, &mut scaled, 6, target);
            assert!(
                out.after_ms <= target && out.after_ms >= 0.99 * target,
                "{} for target {target} (range {min}..{max})",
                out.after_ms
            );
            check_widest(base, &scaled, target);
        }
    }

    #[test]
    fn shrinks_over_target_and_expands_under_it() {
        let (base, initial) = blocks(&[1, 1, 1]);
        let before = latency(base, &initial);
        let mut shrunk = initial.clone();
        let out = scale(base, &mut shrunk, 2, before - 0.5);
        assert!(out.passes[0] < before - 0.5);
        assert!(shrunk.iter().zip(&initial).all(|(a, b)| a.mid <= b.mid));
        let mut grown = initial.clone();
        scale(base, &mut grown, 2, before + 0.5);
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
        scale(0.0, &mut b, 1, 0.37);
        assert_eq!((b[0].mid, b[1].mid), (9, 27));
    }

    #[test]
    fn an_unreachable_target_stays_at_the_minimum() {
        let (base, initial) = blocks(&[1, 1, 1]);
        let mut scaled = initial.clone();
        let out = scale(base, &mut scaled, 2, 0.1);
        assert!(scaled.iter().all(|b| b.mid == b.min));
        assert!(out.after_ms > 0.1);
    }

    #[test]
    fn a_target_over_everything_reaches_every_maximum() {
        let (base, initial) = blocks(&[0, 1, 0]);
        let mut scaled = initial.clone();
        scale(base, &mut scaled, 2, 1e9);
        assert!(scaled.iter().all(|b| b.mid == b.max));
    }
}
