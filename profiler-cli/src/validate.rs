//! `profiler validate --table T.csv`: sampled networks timed whole on any
//! engine against the table's predictions (the logic is
//! `profiler::validate`; this file holds the flags, the engine and the
//! printing).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use profiler::analysis::rows::MAX_PASSES;
use profiler::files::command_line;
use profiler::measure::engine::Engine;
use profiler::validate::{self, Request};
use space::io::OutputLock;

use crate::engine::{standard_engine, EngineCli};
use crate::flags::{in_range, load_space, GaugeArgs, TimingArgs};

/// `validate`'s flags.
#[derive(Args, Clone, Debug)]
pub struct ValidateArgs<F: Args> {
    /// The latency table to validate.
    #[arg(long)]
    pub table: PathBuf,
    #[command(flatten)]
    pub engine: F,
    /// Time these networks instead of sampled ones: architecture JSON
    /// files (as `searcher` writes them), or folders whose `.json` files
    /// are read in name order; network i is the i-th file.
    #[arg(long, num_args = 1.., conflicts_with_all = ["samples", "seed", "width_multiple"])]
    pub arch: Vec<PathBuf>,
    /// How many networks to sample and measure.
    #[arg(long, default_value_t = 100,
          value_parser = in_range::<usize>("--samples", 1, validate::MAX_SAMPLES))]
    pub samples: usize,
    /// Sweep the networks N times, each network timed under the timing rule
    /// in every sweep, and report each network's mean: its passes lie far
    /// apart in time, and their spread is printed as the measurement's
    /// noise [default: the engine's: 1 on a GPU under a steady clock, 3 on
    /// the CPU, whose speed wanders over tens of seconds].
    #[arg(long, value_parser = in_range::<u32>("--passes", 1, MAX_PASSES))]
    pub passes: Option<u32>,
    /// Seed of the network sampler; network i of a seed is always the same.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Draw every width as a multiple of N, as the searcher does with
    /// `--width-multiple N`; by default the table's width step (the networks
    /// the searcher derives from this table, every width a measured entry).
    /// 1 draws any width, interpolation included.
    #[arg(long, value_parser = in_range::<u32>("--width-multiple", 1, 4096))]
    pub width_multiple: Option<u32>,
    /// Write a row per network and pass as CSV to FILE, resuming it when it
    /// exists and was written with the same table, device, settings and seed.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also draw predicted against measured latency (.svg or .png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print the statistics as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Search space file the table was built for; the TF-NAS ImageNet space
    /// by default.
    #[arg(long)]
    pub space: Option<PathBuf>,
    #[command(flatten)]
    pub timing: TimingArgs,
    #[command(flatten)]
    pub gauge: GaugeArgs,
}

/// `validate`: everything that needs no engine (the output paths, the
/// space, the table, its settings, every network's prediction) is checked
/// before the engine opens.
pub fn run<E: EngineCli>(args: &ValidateArgs<E::TableFlags>) -> Result<()> {
    let request = Request {
        samples: args.samples,
        passes: args.passes.unwrap_or(E::DEFAULTS.validate_passes),
        seed: args.seed,
        width_multiple: args.width_multiple,
        out: args.out.clone(),
        plot: args.plot.clone(),
        archs: args.arch.clone(),
        timing: args.timing.flags(E::DEFAULTS.network_cap_ms),
        standard: args.gauge.standard(),
        command: command_line(),
    };
    request.check_paths()?;
    // Held to the end, as the table build's: one writer per rows file.
    let _lock = match &args.out {
        Some(out) => Some(OutputLock::acquire(out)?),
        None => None,
    };
    let space = load_space(args.space.as_ref())?;
    let (table, sha256) = validate::read_table(&args.table)?;
    let settings = E::table_settings(&table, &args.engine)?;
    let job = request.job(&table, sha256, space, E::config(&settings)?)?;
    let (mut engine, mut monitor) = E::open(&settings)?;
    let mut standard = standard_engine::<E>(&settings, job.gauge.as_ref())?;
    let mut log = |m: &str| eprintln!("{m}");
    let rows = validate::run_validation(
        &mut engine,
        standard.as_mut().map(|e| e as &mut dyn Engine),
        monitor.as_mut(),
        &job,
        args.out.as_deref(),
        &mut log,
    )?;
    let device = &engine.info().device_name;
    print!("{}", validate::report(&job, device, &rows, args.json)?);
    if let Some(p) = &args.plot {
        validate::plot(p, &rows)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
