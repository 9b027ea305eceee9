//! `profiler measure`: a whole network timed end to end in the engine, and
//! with `--per-block` each of its blocks alone, as a table times them, to
//! see how well a table built now would predict it.

use std::collections::HashMap;

use space::BlockSpec;

use crate::error::Result;
use crate::measure::engine::{Engine, Workload};
use crate::measure::monitor::Monitor;
use crate::measure::timing::{time_workload, Timed, TimingRule};

/// Prepares and times the network `blocks` (called `name` in messages).
pub fn time_network(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    name: String,
    blocks: &[BlockSpec],
    rule: &TimingRule,
) -> Result<(Workload, Timed)> {
    let workload = Workload::Network {
        name,
        blocks: blocks.to_vec(),
    };
    let timed = time_workload(engine, monitor, &workload, rule)?;
    Ok((workload, timed))
}

/// Times every block of `blocks` alone (each distinct block once), calls
/// `each` with every block's median in the network's order, and returns
/// their sum.
pub fn sum_of_blocks_alone(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    blocks: &[BlockSpec],
    rule: &TimingRule,
    each: &mut dyn FnMut(&BlockSpec, f64),
) -> Result<f64> {
    let mut medians: HashMap<BlockSpec, f64> = HashMap::new();
    let mut sum = 0.0;
    for spec in blocks {
        let ms = match medians.get(spec) {
            Some(&ms) => ms,
            None => {
                let t = time_workload(engine, monitor, &Workload::Block(*spec), rule)?;
                medians.insert(*spec, t.summary.median);
                t.summary.median
            }
        };
        each(spec, ms);
        sum += ms;
    }
    Ok(sum)
}

/// What a table would predict for a network of `blocks` blocks whose
/// medians sum to `sum`: the sum less one boundary per block but one (see
/// [`crate::measure::boundary`]). Returns the boundaries taken off and the
/// prediction.
pub fn table_prediction(sum: f64, blocks: usize, boundary_ms: f64) -> (usize, f64) {
    let extra = blocks.saturating_sub(1);
    (extra, sum - extra as f64 * boundary_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::boundary::Boundary;
    use crate::measure::engine::EngineConfig;
    use crate::measure::fake::{FakeEngine, FakeMonitor, GAP, START_END};
    use crate::measure::stop::StopRule;
    use std::time::Duration;

    /// A network timed whole, its blocks alone, and the prediction from
    /// them with the fake's boundary: the prediction is the network's time.
    #[test]
    fn a_table_built_now_predicts_the_network_it_times() {
        let rule = TimingRule {
            warmup: Duration::ZERO,
            stop: StopRule {
                cap: Duration::from_secs(60),
                ..StopRule::default()
            },
        };
        let space = space::SearchSpaceConfig::default();
        let arch = space::Architecture::sample_nth(&space, 1, 0).unwrap();
        let blocks = arch.block_specs().unwrap();
        let mut engine = FakeEngine::new(EngineConfig::default());
        let mut monitor = FakeMonitor::default();
        let (workload, whole) =
            time_network(&mut engine, &mut monitor, "a".into(), &blocks, &rule).unwrap();
        assert_eq!(workload.blocks(), &blocks[..]);
        let mut seen = Vec::new();
        let sum = sum_of_blocks_alone(&mut engine, &mut monitor, &blocks, &rule, &mut |b, ms| {
            seen.push((*b, ms))
        })
        .unwrap();
        assert_eq!(seen.len(), blocks.len());
        let distinct: std::collections::HashSet<_> = blocks.iter().collect();
        assert_eq!(
            engine.prepared.len(),
            distinct.len(),
            "each block timed once"
        );
        let boundary = Boundary::measure(&mut engine, &mut monitor, &rule).unwrap();
        assert!(
            (boundary.ms - (START_END - GAP)).abs() < 1e-4,
            "{boundary:?}"
        );
        let (extra, predicted) = table_prediction(sum, blocks.len(), boundary.ms);
        assert_eq!(extra, blocks.len() - 1);
        let rel = (predicted / whole.summary.median - 1.0).abs();
        assert!(rel < 2e-3, "{predicted} vs {}", whole.summary.median);
    }
}
