//! `profiler [--out FILE] ...`: the latency table of a space on any
//! engine (`profiler::table::build` does the work).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use profiler::files::command_line;
use profiler::files::resume::check_out_folder;
use profiler::measure::engine::Engine;
use profiler::measure::timing::TimingFlags;
use profiler::table::build::{build_table, BuildReport, BuildSettings, Output};
use profiler::table::progress::{LogOnly, Progress};
use space::io::OutputLock;
use space::TablePlan;

use crate::engine::EngineCli;
use crate::flags::{load_space, TimingArgs};
use crate::progress::Bar;

/// The table build's flags: the engine's settings, the timing rule, the
/// space and where the table goes.
#[derive(Args, Clone, Debug)]
pub struct BuildArgs<S: Args> {
    #[command(flatten)]
    pub engine: S,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// Write the table to FILE instead of stdout, resuming it when it exists
    /// and was built with the same settings.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Measure every N-th mid width (plus each op's min, initial and max).
    #[arg(long, default_value_t = TablePlan::DEFAULT_WIDTH_STEP)]
    pub width_step: u32,
    /// Search space file (.json or .toml); the TF-NAS ImageNet space by default.
    #[arg(long)]
    pub space: Option<PathBuf>,
    /// Time at most N entries in this run, leaving the table unfinished for
    /// a later run with the same --out to resume.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Builds the table as `args` say; everything that needs no engine is
/// checked before the engine opens.
pub fn run<E: EngineCli>(args: &BuildArgs<E::Settings>) -> Result<()> {
    let space = load_space(args.space.as_ref())?;
    // Checked before the engine opens; the engine's alignment adds its
    // probes once it has.
    space.table_plan(args.width_step)?;
    let settings = BuildSettings {
        space,
        width_step: args.width_step,
        timing: args.timing.flags(TimingFlags::DEFAULT.cap_ms).rule()?,
        command: command_line(),
        limit: args.limit,
        in_network: E::in_network(&args.engine),
        probe: None,
    };
    build::<E>(&args.engine, &settings, args.out.as_deref(), |engine| {
        let plan = settings
            .space
            .table_plan_aligned(args.width_step, engine.info().width_align)?;
        eprintln!(
            "timing {} entries of space '{}' at batch {}, width step {}",
            plan.len(),
            settings.space.name,
            E::batch(&args.engine),
            args.width_step
        );
        Ok(())
    })
}

/// A table build on engine `E` into `out` (stdout without one), for every
/// command that builds one (the table, a probe): `out` locked first, the
/// engine opened, `announce` given it to say what will be timed, the
/// table built and its last line logged.
pub fn build<E: EngineCli>(
    engine_settings: &E::Settings,
    settings: &BuildSettings,
    out: Option<&Path>,
    announce: impl FnOnce(&E::Engine) -> Result<()>,
) -> Result<()> {
    // Held to the end: a second build of the same file (or an orphaned
    // one still timing) is refused rather than appending rows of its own.
    let _lock = match out {
        Some(out) => {
            check_out_folder("--out", out)?;
            Some(OutputLock::acquire(out)?)
        }
        None => None,
    };
    let (mut engine, mut monitor) = E::open(engine_settings)?;
    announce(&engine)?;
    let progress = progress::<E>();
    let report = match out {
        Some(path) => build_table(
            &mut engine,
            monitor.as_mut(),
            settings,
            Output::File(path),
            progress.as_ref(),
        )?,
        None => build_table(
            &mut engine,
            monitor.as_mut(),
            settings,
            Output::Stream(&mut std::io::stdout().lock()),
            progress.as_ref(),
        )?,
    };
    log_report::<E>(&report);
    Ok(())
}

/// The build's progress as engine `E` shows it: a bar, or log lines only.
fn progress<E: EngineCli>() -> Box<dyn Progress> {
    if E::DEFAULTS.progress_bar {
        Box::new(Bar::new())
    } else {
        Box::new(LogOnly)
    }
}

/// The build's last line: what it timed, how fast, and the engine's note.
fn log_report<E: EngineCli>(report: &BuildReport) {
    eprintln!(
        "measured {} entries ({} already there) in {:.1} s, {:.2} entries/s{}",
        report.measured,
        report.skipped,
        report.seconds,
        report.measured as f64 / report.seconds.max(1e-9),
        E::build_note(report)
    );
}
