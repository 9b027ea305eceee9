//! `profiler [--out FILE] ...`: build the latency table on the GPU.

use std::path::PathBuf;

use clap::Args;
use profiler::error::Result;
use profiler::files::resume::check_out_folder;
use profiler::table::build::{build_table, BuildSettings, Output};
use space::SearchSpaceConfig;

use super::engine_args::EngineArgs;
use super::progress::Bar;

/// `profiler [--out FILE] ...`: build the latency table.
#[derive(Args, Clone, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Write the table to FILE instead of stdout, resuming it when it exists
    /// and was built with the same settings.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Measure every N-th mid width (plus each op's min, initial and max).
    #[arg(long, default_value_t = 8)]
    pub width_step: u32,
    /// Search space file (.json or .toml); the TF-NAS ImageNet space by default.
    #[arg(long)]
    pub space: Option<PathBuf>,
    /// Time at most N entries in this run, leaving the table unfinished for
    /// a later run with the same --out to resume.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Builds the table as `args` say.
pub fn run(args: &BuildArgs) -> Result<()> {
    let space = match &args.space {
        Some(p) => SearchSpaceConfig::from_path(p)?,
        None => SearchSpaceConfig::default(),
    };
    // Check everything that needs no GPU before opening it.
    let plan_len = space.table_plan(args.width_step)?.len();
    if let Some(out) = &args.out {
        check_out_folder("--out", out)?;
    }
    let settings = BuildSettings {
        space,
        width_step: args.width_step,
        timing: args.engine.timing()?,
        command: super::command_line(),
        limit: args.limit,
        in_network: None,
    };
    let (mut engine, mut monitor) = args.engine.open()?;
    eprintln!(
        "timing {plan_len} entries of space '{}' at batch {}, width step {}",
        settings.space.name, args.engine.batch, args.width_step
    );
    let bar = Bar::new();
    let report = match &args.out {
        Some(path) => build_table(
            &mut engine,
            monitor.as_mut(),
            &settings,
            Output::File(path),
            &bar,
        )?,
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            build_table(
                &mut engine,
                monitor.as_mut(),
                &settings,
                Output::Stream(&mut lock),
                &bar,
            )?
        }
    };
    eprintln!(
        "measured {} entries ({} already there) in {:.1} s, {:.2} entries/s; {} re-measured after throttling, {} flagged throttled; clocks {}",
        report.measured,
        report.skipped,
        report.seconds,
        report.measured as f64 / report.seconds.max(1e-9),
        report.remeasured,
        report.throttled,
        report.clocks
    );
    Ok(())
}
