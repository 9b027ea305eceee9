//! `profiler`: builds, checks and uses latency tables of a search space.
//!
//! Every failure prints one clear `error:` message on stderr and exits with
//! status 2; nothing panics on bad input.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

use cli::{build, check, compare, fit, measure, plan, predict, space, validate, verify};

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
    build: build::BuildArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Time a whole network from an architecture JSON end to end on the GPU.
    Measure(measure::MeasureArgs),
    /// Check the GPU engine's output for each block kind against a CPU
    /// reference implementation.
    Verify(verify::VerifyArgs),
    /// Print the space and every block a complete table needs.
    Plan(plan::PlanArgs),
    /// Print a search space as JSON, to edit into a space file of your own.
    Space(space::SpaceArgs),
    /// Validate a table and report what it covers of a space.
    Check(check::CheckArgs),
    /// Predict the latency of an architecture JSON from a table.
    Predict(predict::PredictArgs),
    /// Sample networks of the table's space, time each end to end on the GPU
    /// with the table's settings, and report how well the table predicts
    /// them (MAPE, ±k% shares, Kendall tau); `--out` rows resume.
    Validate(Box<validate::ValidateArgs>),
    /// Fit a per-network correction (a·predicted + b) to `validate --out`
    /// rows, report it out of sample, and write it into a copy of the table.
    Fit(fit::FitArgs),
    /// Compare two tables (another GPU, driver, batch...): ratios B/A per
    /// stage, rank agreement, and reference networks under both.
    Compare(compare::CompareArgs),
}

/// Runs the command `cli` names (the table build without one).
fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.command else {
        return Ok(build::run(&cli.build)?);
    };
    match command {
        Command::Measure(args) => Ok(measure::run(&args)?),
        Command::Verify(args) => Ok(verify::run(&args)?),
        Command::Validate(args) => validate::run(&args),
        Command::Fit(args) => fit::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Space(args) => space::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Compare(args) => compare::run(&args),
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    if let Some(code) = cli::cpu_exec::run_if_cpu() {
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
