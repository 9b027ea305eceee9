//! Networks like the ones the searcher derives, without a search: from a
//! random argmax network (random depths and ops at the method's initial
//! widths, with random preferences that make it the argmax), the method's
//! elasticity scaling and the landing extension (`extend.rs`) land it on a
//! target. Spread over a table's range, these are what `profiler validate
//! --arch` should be checked on: searched networks sit at full depth, wide
//! mid widths and SE at wide widths far more often than uniform samples.
//!
//! Pure arithmetic on the table's curves, seeded, so a set replays.

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use space::{Architecture, LatencyTable, SearchSpaceConfig};

use crate::error::{Result, SearchError};
use crate::extend::Problem;
use crate::latency::{initial_widths, Choices, LatencyModel, Widths};

/// Where the targets lie in the table's range (cheapest to dearest
/// network): from 10% to 95% of it, as a user's budgets would.
pub const RANGE: (f64, f64) = (0.10, 0.95);

/// One landed network and the target it was landed on.
pub struct Landed {
    pub target_ms: f64,
    pub arch: Architecture,
}

/// `count` networks landed on targets spread evenly over [`RANGE`] of the
/// table's range, each from its own random start drawn with `seed`; widths
/// on multiples of `multiple`.
pub fn landed(
    space: &SearchSpaceConfig,
    table: &LatencyTable,
    count: usize,
    seed: u64,
    multiple: u32,
) -> Result<Vec<Landed>> {
    let model = LatencyModel::new(space, table)?;
    let widths = initial_widths(space);
    let names: Vec<String> = space.ops.iter().map(|o| o.name.clone()).collect();
    let (min, max) = model.bounds();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        let at = match count {
            1 => (RANGE.0 + RANGE.1) / 2.0,
            n => RANGE.0 + (RANGE.1 - RANGE.0) * k as f64 / (n - 1) as f64,
        };
        let target_ms = min + (max - min) * at;
        let start = random_start(space, &widths, &mut rng);
        let (alphas, betas) = preferences(space, &start, names.len(), &mut rng);
        let problem = Problem {
            model: &model,
            op_names: &names,
            alphas: &alphas,
            betas: &betas,
            widths: &widths,
            target_ms,
            multiple,
        };
        let landing = problem.land(&problem.method_scale(&start), true);
        let arch = Architecture::from_choices(space, &landing.choices)?.with_prediction(table)?;
        out.push(Landed { target_ms, arch });
    }
    Ok(out)
}

/// `searcher land`: networks like the searcher's outputs, written as
/// architecture JSON for `profiler validate --arch`.
#[derive(clap::Args, Clone, Debug)]
pub struct LandArgs {
    /// The latency table the networks are landed on.
    #[arg(long)]
    pub table: PathBuf,
    /// How many networks, on targets spread evenly from 10% to 95% of the
    /// table's range.
    #[arg(long, default_value_t = 20, value_parser = crate::settings::LAND_COUNT.parser())]
    pub count: usize,
    /// Seed of the random starts; a seed always lands the same networks.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Every width a multiple of N; the table's width step by default, as
    /// the search's.
    #[arg(long, value_parser = crate::settings::LAND_MULTIPLE.parser())]
    pub width_multiple: Option<u32>,
    /// Search space file the table was built for; the TF-NAS ImageNet space
    /// by default.
    #[arg(long)]
    pub space: Option<PathBuf>,
    /// The folder the networks go to (made if missing; its parent must
    /// exist), as `landed-NN.json`.
    #[arg(long)]
    pub out_dir: PathBuf,
}

/// Lands the networks `args` ask for, writes each, and returns a line per
/// network for the user.
pub fn run(args: &LandArgs) -> Result<Vec<String>> {
    let space = match &args.space {
        Some(p) => SearchSpaceConfig::from_path(p)?,
        None => SearchSpaceConfig::default(),
    };
    let table = LatencyTable::from_path(&args.table)?;
    table.check_in_space(&space)?;
    let multiple = args
        .width_multiple
        .unwrap_or_else(|| crate::measured::default_width_multiple(&table).multiple);
    // Landed before the folder is made: a run refused here leaves nothing.
    let set = landed(&space, &table, args.count, args.seed, multiple)?;
    if !args.out_dir.is_dir() {
        std::fs::create_dir(&args.out_dir).map_err(|e| {
            SearchError::Data(format!(
                "--out-dir {}: cannot make it: {e}",
                args.out_dir.display()
            ))
        })?;
    }
    let mut lines = Vec::new();
    for (k, l) in set.iter().enumerate() {
        let path = args.out_dir.join(format!("landed-{k:02}.json"));
        space::io::check_output(&path, &[("table", &args.table)])?;
        space::io::write_atomic(&path, l.arch.to_json_pretty().as_bytes())?;
        let ms = l
            .arch
            .prediction
            .as_ref()
            .map_or(f64::NAN, |p| p.latency_ms);
        lines.push(format!(
            "{}: target {:.4} ms, predicted {ms:.4} ms ({:+.2}%)",
            path.display(),
            l.target_ms,
            (ms / l.target_ms - 1.0) * 100.0
        ));
    }
    Ok(lines)
}

/// An argmax network: per stage a depth in 1..=max, per block an op, each
/// uniform, at the method's initial widths.
fn random_start(space: &SearchSpaceConfig, widths: &Widths, rng: &mut ChaCha8Rng) -> Choices {
    space
        .stages
        .iter()
        .enumerate()
        .map(|(s, stage)| {
            let depth = rng.gen_range(1..=stage.max_depth as usize);
            (0..depth)
                .map(|b| {
                    let op = rng.gen_range(0..space.ops.len());
                    (op, widths[s][b][op])
                })
                .collect()
        })
        .collect()
}

/// Log-preferences that make `start` the argmax network: its ops and
/// depths at 0, every other at a random value in (-1.1, -0.1].
type Preferences = (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>);

fn preferences(
    space: &SearchSpaceConfig,
    start: &Choices,
    ops: usize,
    rng: &mut ChaCha8Rng,
) -> Preferences {
    let mut other = || -0.1 - rng.gen::<f64>();
    let alphas = space
        .layers()
        .iter()
        .enumerate()
        .map(|(s, stage)| {
            (0..stage.len())
                .map(|b| {
                    let chosen = start[s].get(b).map(|&(op, _)| op);
                    (0..ops)
                        .map(|k| if Some(k) == chosen { 0.0 } else { other() })
                        .collect()
                })
                .collect()
        })
        .collect();
    let betas = space
        .stages
        .iter()
        .enumerate()
        .map(|(s, stage)| {
            (1..=stage.max_depth as usize)
                .map(|d| if d == start[s].len() { 0.0 } else { other() })
                .collect()
        })
        .collect();
    (alphas, betas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> LatencyTable {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tables/reference/h100-pytorch-2.11-graph.csv");
        LatencyTable::from_path(&path).unwrap()
    }

    #[test]
    fn landed_networks_sit_just_under_targets_spread_over_the_range_and_replay() {
        let space = SearchSpaceConfig::default();
        let table = h100();
        let set = landed(&space, &table, 6, 3, 8).unwrap();
        let model = LatencyModel::new(&space, &table).unwrap();
        let (min, max) = model.bounds();
        assert_eq!(set.len(), 6);
        assert!((set[0].target_ms - (min + 0.10 * (max - min))).abs() < 1e-9);
        assert!((set[5].target_ms - (min + 0.95 * (max - min))).abs() < 1e-9);
        for l in &set {
            let ms = l.arch.prediction.as_ref().unwrap().latency_ms;
            assert!(
                ms <= l.target_ms * (1.0 + 1e-9) && ms >= l.target_ms * (1.0 - 0.01),
                "{ms} for {}",
                l.target_ms
            );
            for stage in &l.arch.stages {
                for block in &stage.blocks {
                    assert_eq!(block.mid_channels % 8, 0, "widths on the multiple");
                }
            }
        }
        let again = landed(&space, &table, 6, 3, 8).unwrap();
        let codes = |s: &[Landed]| s.iter().map(|l| l.arch.code()).collect::<Vec<_>>();
        assert_eq!(codes(&set), codes(&again), "a seed replays");
        assert_ne!(
            codes(&set),
            codes(&landed(&space, &table, 6, 4, 8).unwrap())
        );
    }
}
