//! `profiler`: builds, checks and uses latency tables of a search space.
//!
//! Every failure prints one clear `error:` message on stderr and exits with
//! status 2; nothing panics on bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use space::{meta, Architecture, LatencyTable, SearchSpaceConfig};

mod compare;
mod cpu_exec;
mod fit;
mod plot;
mod rank;
mod validate;
mod validation;

#[derive(Parser)]
#[command(
    name = "profiler",
    version,
    about = "Latency tables for latency-constrained NAS on GPUs"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// With no subcommand, build the latency table of the space on the GPU
    /// (CSV on stdout, or `--out FILE`, resumed when it exists).
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: profiler::gpu_commands::BuildArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Time a whole network from an architecture JSON end to end on the GPU.
    Measure(profiler::gpu_commands::MeasureArgs),
    /// Check the GPU engine's output for each block kind against a CPU
    /// reference implementation.
    Verify(profiler::gpu_commands::VerifyArgs),
    /// Print the space and every block a complete table needs.
    Plan {
        /// Search space file (.json or .toml); the TF-NAS ImageNet space by default.
        #[arg(long)]
        space: Option<PathBuf>,
        /// Measure every N-th mid width (plus each op's min, initial and max).
        #[arg(long, default_value_t = 8)]
        width_step: u32,
        /// Also print every block key, one per line, on stdout.
        #[arg(long)]
        keys: bool,
    },
    /// Print a search space as JSON, to edit into a space file of your own.
    Space {
        /// Search space file to normalise; the TF-NAS ImageNet space by default.
        #[arg(long)]
        space: Option<PathBuf>,
    },
    /// Validate a table and report what it covers of a space.
    Check {
        #[arg(long)]
        table: PathBuf,
        /// Search space file; the TF-NAS ImageNet space by default.
        #[arg(long)]
        space: Option<PathBuf>,
    },
    /// Predict the latency of an architecture JSON from a table.
    Predict {
        #[arg(long)]
        table: PathBuf,
        #[arg(long)]
        arch: PathBuf,
        /// Print every block's estimate and whether it was interpolated.
        #[arg(long)]
        blocks: bool,
    },
    /// Sample networks of the table's space, time each end to end on the GPU
    /// with the table's settings, and report how well the table predicts
    /// them (MAPE, ±k% shares, Kendall tau); `--out` rows resume.
    Validate(Box<validate::ValidateArgs>),
    /// Fit a per-network correction (a·predicted + b) to `validate --out`
    /// rows, report it out of sample, and write it into a copy of the table.
    Fit(fit::FitArgs),
    /// Compare two tables (another GPU, driver, batch...): ratios B/A per
    /// stage, rank agreement, and reference networks under both.
    Compare {
        /// The reference table.
        a: PathBuf,
        /// The table compared with it (ratios are B/A).
        b: PathBuf,
        /// Print the report as JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also draw a log-log scatter of A against B (.svg or .png).
        #[arg(long)]
        plot: Option<PathBuf>,
        /// How many keys and entries each listing shows.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Search space file for stages and layers; the TF-NAS ImageNet space by default.
        #[arg(long)]
        space: Option<PathBuf>,
    },
}

fn load_space(path: Option<&PathBuf>) -> Result<SearchSpaceConfig> {
    match path {
        Some(p) => Ok(SearchSpaceConfig::from_path(p)?),
        None => Ok(SearchSpaceConfig::default()),
    }
}

fn plan(space: Option<PathBuf>, width_step: u32, keys: bool) -> Result<()> {
    let space = load_space(space.as_ref())?;
    let plan = space.table_plan(width_step)?;
    eprint!("{}", space.describe());
    eprintln!("{}", plan.describe());
    if keys {
        for block in &plan.blocks {
            println!("{block}");
        }
    }
    Ok(())
}

fn check(table: PathBuf, space: Option<PathBuf>) -> Result<()> {
    let space = load_space(space.as_ref())?;
    let table = LatencyTable::from_path(&table)?;
    let md = table.metadata();
    println!(
        "{}: {} entries at batch {}, device '{}'",
        table.origin(),
        table.len(),
        table.batch(),
        md.get(meta::DEVICE_NAME).unwrap_or("unknown")
    );
    if let Some(digest) = md.get(meta::SPACE_DIGEST) {
        if digest != space.digest() {
            println!(
                "note: the table was built for space digest {digest}, not {} ({})",
                space.digest(),
                space.name
            );
        }
    }
    let throttled = table.entries().iter().filter(|e| e.stats.throttled).count();
    if throttled > 0 {
        println!("{throttled} entries were measured while the GPU throttled");
    }
    if let Some(line) = precision(&table) {
        println!("{line}");
    }
    match table.header_boundary_ms() {
        Some(ms) => println!("boundary {ms:.4} ms: taken off every block, added once per network"),
        None => println!("no boundary line: blocks are priced at their medians"),
    }
    let step = md
        .get(meta::WIDTH_STEP)
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let plan = space.table_plan(step)?;
    let missing: Vec<_> = plan
        .blocks
        .iter()
        .filter(|b| table.entry(b).is_none())
        .collect();
    println!(
        "covers {} of the {} entries of the space's plan at width step {step}",
        plan.len() - missing.len(),
        plan.len()
    );
    for b in missing.iter().take(10) {
        println!("  missing {b}");
    }
    if missing.len() > 10 {
        println!("  ... and {} more", missing.len() - 10);
    }
    Ok(())
}

/// How precisely the table knows its medians: the half-widths of their 95%
/// intervals relative to the median (typical and worst), how many are wider
/// than the default `--ci-percent` (the time cap stopped them first), and
/// the samples per entry. `None` for an empty table.
fn precision(table: &LatencyTable) -> Option<String> {
    // Each entry's half-width in percent of its median, narrowest first.
    let mut widths: Vec<(f64, &space::Entry)> = table
        .entries()
        .iter()
        .map(|e| {
            let s = &e.stats;
            ((s.ci_high_ms - s.ci_low_ms) / 2.0 / s.median_ms * 100.0, e)
        })
        .collect();
    widths.sort_by(|a, b| a.0.total_cmp(&b.0));
    let &(worst, worst_entry) = widths.last()?;
    let target = 0.5;
    let wider = widths.iter().filter(|w| w.0 > target + 1e-9).count();
    let samples = table.entries().iter().map(|e| e.stats.samples);
    let (lo, hi) = (samples.clone().min()?, samples.max()?);
    Some(format!(
        "precision: the medians' 95% intervals are ±{:.2}% typically (median over entries), ±{worst:.2}% at worst ({}); {wider} of {} entries wider than ±{target}%; {lo}..{hi} samples per entry",
        widths[widths.len() / 2].0,
        worst_entry.spec,
        widths.len()
    ))
}

fn predict(table: PathBuf, arch: PathBuf, blocks: bool) -> Result<()> {
    let table = LatencyTable::from_path(&table)?;
    let arch = Architecture::from_path(&arch)?;
    let latency = table
        .predict(&arch)
        .with_context(|| format!("cannot predict the architecture from {}", table.origin()))?;
    if blocks {
        for (spec, e) in &latency.blocks {
            let how = match e.source {
                space::Source::Measured => "measured".to_string(),
                space::Source::Interpolated { lower, upper } => {
                    format!("interpolated {lower}..{upper}")
                }
            };
            println!("{:>10.4} ms  {spec}  ({how})", e.ms);
        }
        if table.boundary_ms() > 0.0 {
            println!(
                "{:>10.4} ms  the table's boundary, once per network (each block above is its median less it)",
                table.boundary_ms()
            );
        }
    }
    println!(
        "predicted {:.4} ms at batch {} (base {:.4} ms), {:.1}M MACs, {:.2}M params",
        latency.total_ms,
        table.batch(),
        latency.base_ms,
        arch.macs()? as f64 / 1e6,
        arch.params()? as f64 / 1e6
    );
    if let Some(c) = table.correction() {
        println!(
            "with the table's correction ({c}): {:.4} ms",
            c.apply(latency.total_ms)
        );
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.command else {
        return Ok(profiler::gpu_commands::build(&cli.build)?);
    };
    match command {
        Command::Measure(args) => Ok(profiler::gpu_commands::measure(&args)?),
        Command::Verify(args) => Ok(profiler::gpu_commands::verify(&args)?),
        Command::Validate(args) => validate::command(&args),
        Command::Fit(args) => fit::command(&args),
        Command::Plan {
            space,
            width_step,
            keys,
        } => plan(space, width_step, keys),
        Command::Space { space } => {
            println!("{}", load_space(space.as_ref())?.to_json_pretty());
            Ok(())
        }
        Command::Check { table, space } => check(table, space),
        Command::Predict {
            table,
            arch,
            blocks,
        } => predict(table, arch, blocks),
        Command::Compare {
            a,
            b,
            json,
            plot,
            top,
            space,
        } => compare::command(&a, &b, json, plot.as_deref(), top, space.as_deref()),
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    if let Some(code) = cpu_exec::run_if_cpu() {
        return code;
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A closed stdout (`... | head`) ends the process quietly, as it ends any
/// Unix tool, instead of a panic in `println!`: Rust ignores SIGPIPE by
/// default, turning it into an error every print would have to handle.
fn restore_sigpipe() {
    #[cfg(unix)]
    // Safety: called first thing in `main`, before any other thread exists;
    // `SIG_DFL` is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
