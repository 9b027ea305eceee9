//! `profiler validate --table T.csv`: sampled networks timed whole on the
//! GPU against the table's predictions (the logic is
//! `profiler::validate`; this file holds the flags, the engine and the
//! printing).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use profiler::measure::engine::{Dtype, Engine, Launch, Layout, L2};
use profiler::validate::{self, SettingFlags};

use super::engine_args::{EngineArgs, TimingArgs};

/// `profiler validate`.
#[derive(Args, Clone, Debug)]
pub struct ValidateArgs {
    /// The latency table to validate.
    #[arg(long)]
    pub table: PathBuf,
    /// CUDA device index.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// How many networks to sample and measure.
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Sweep the networks N times and report each network's mean: its
    /// passes lie far apart in time, and their spread is the measurement's
    /// noise. A GPU under a steady clock needs one.
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(profiler::analysis::rows::MAX_PASSES)))]
    pub passes: u32,
    /// Seed of the network sampler; network i of a seed is always the same.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Draw every width as a multiple of N, as the searcher does with
    /// `--width-multiple N`; by default the table's width step (the networks
    /// the searcher derives from this table, every width a measured entry).
    /// 1 draws any width, interpolation included.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
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
    /// Batch size; the table's own (refused if different).
    #[arg(long)]
    pub batch: Option<u32>,
    /// Launch mode, for a table whose header does not say (refused if
    /// different from the header).
    #[arg(long)]
    pub launch: Option<Launch>,
    /// L2 policy, for a table whose header does not say.
    #[arg(long)]
    pub l2: Option<L2>,
    /// Element type, for a table whose header does not say.
    #[arg(long)]
    pub dtype: Option<Dtype>,
    /// Memory layout, for a table whose header does not say.
    #[arg(long)]
    pub layout: Option<Layout>,
    #[command(flatten)]
    pub timing: TimingArgs,
}

/// `profiler validate`: everything that needs no GPU is checked before the
/// engine is opened.
pub fn run(args: &ValidateArgs) -> Result<()> {
    let job = validate::prepare(&validate::ValidateArgs {
        table: args.table.clone(),
        samples: args.samples,
        passes: args.passes,
        seed: args.seed,
        width_multiple: args.width_multiple,
        out: args.out.clone(),
        plot: args.plot.clone(),
        space: args.space.clone(),
        flags: SettingFlags {
            batch: args.batch,
            launch: args.launch,
            l2: args.l2,
            dtype: args.dtype,
            layout: args.layout,
        },
        timing: args.timing.flags(),
        command: super::command_line(),
    })?;
    let config = job.config;
    let engine_args = EngineArgs {
        device: args.device,
        batch: config.batch,
        launch: config.launch,
        l2: config.l2,
        dtype: config.dtype,
        layout: config.layout,
        timing: args.timing.clone(),
    };
    let (mut engine, mut monitor) = engine_args.open()?;
    let mut log = |m: &str| eprintln!("{m}");
    let rows = validate::run_validation(
        &mut engine,
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
