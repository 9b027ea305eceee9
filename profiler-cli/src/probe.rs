//! `profiler probe --reference A.csv --fraction F [--keys] [--out P.csv]`:
//! the keys of another device's table to measure on a new device so that
//! `profiler transfer` predicts the rest best (the plan is
//! `profiler::analysis::transfer::plan`), and with `--out`, those keys
//! timed on this engine's device into a table of their own: the build's
//! header, resume and lock, and a `probe_of` line naming A.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use profiler::analysis::transfer::{describe, plan, read_table, Reference};
use profiler::files::command_line;
use profiler::measure::timing::TimingFlags;
use profiler::table::build::{BuildSettings, ProbeKeys};
use space::io::same_file;
use space::{LatencyTable, TablePlan};

use crate::build::build;
use crate::engine::EngineCli;
use crate::flags::{in_range, load_space, TimingArgs};

#[derive(Args, Clone, Debug)]
pub struct ProbeArgs<S: Args> {
    /// The full table of another device the new one is transferred from.
    #[arg(long)]
    pub reference: PathBuf,
    /// The share of the reference's entries to measure (the fixed parts are
    /// measured even beyond it).
    #[arg(long, value_parser = in_range("--fraction", 1e-6, 1.0))]
    pub fraction: f64,
    /// Print the keys, one per line, on stdout.
    #[arg(long)]
    pub keys: bool,
    /// Time the keys on this engine's device into FILE (resumed when it
    /// exists): the probe `profiler transfer --probe` takes. Without it,
    /// nothing is timed.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Search space file (.json or .toml): the reference's space, the
    /// TF-NAS ImageNet space by default.
    #[arg(long)]
    pub space: Option<PathBuf>,
    #[command(flatten)]
    pub engine: S,
    #[command(flatten)]
    pub timing: TimingArgs,
}

/// Plans the probe, prints it, and times it where `--out` says.
pub fn run<E: EngineCli>(args: &ProbeArgs<E::Settings>) -> Result<()> {
    let table = read_table(&args.reference, "reference")?;
    let reference = Reference::new(&table);
    let plan = plan::plan(&reference, args.fraction);
    eprintln!("{}", plan.describe(reference.len()));
    if args.keys {
        for key in &plan.keys {
            println!("{key}");
        }
    }
    let Some(out) = &args.out else {
        return Ok(());
    };
    let probe = ProbeKeys {
        of: format!(
            "{}; {} of its entries ({:.1}%, --fraction {})",
            describe(&table, &args.reference),
            plan.keys.len(),
            100.0 * plan.keys.len() as f64 / reference.len().max(1) as f64,
            args.fraction
        ),
        keys: plan.keys,
    };
    measure::<E>(args, &table, out, probe)
}

/// Times `probe` into `out` on engine `E`; everything that needs no
/// engine is checked before it opens.
fn measure<E: EngineCli>(
    args: &ProbeArgs<E::Settings>,
    table: &LatencyTable,
    out: &Path,
    probe: ProbeKeys,
) -> Result<()> {
    if same_file(out, &args.reference) {
        bail!(
            "--out {} is the reference table: the probe would overwrite it; choose another --out",
            out.display()
        );
    }
    let space = load_space(args.space.as_ref())?;
    table.check_in_space(&space)?;
    let keys = probe.keys.len();
    let settings = BuildSettings {
        space,
        width_step: table.width_step().unwrap_or(TablePlan::DEFAULT_WIDTH_STEP),
        timing: args.timing.flags(TimingFlags::DEFAULT.cap_ms).rule()?,
        command: command_line(),
        limit: None,
        in_network: E::in_network(&args.engine),
        probe: Some(probe),
    };
    build::<E>(&args.engine, &settings, Some(out), |_| {
        eprintln!(
            "timing a probe of {keys} entries at batch {} into {}",
            E::batch(&args.engine),
            out.display()
        );
        Ok(())
    })
}
