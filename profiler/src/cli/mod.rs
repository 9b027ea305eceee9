//! The command line: clap, `anyhow`, printing, progress bars and the
//! choice of engine, one file per command; the work itself is the
//! library's. `main.rs` parses and dispatches.

use std::path::PathBuf;

use ::space::SearchSpaceConfig;
use anyhow::Result;
use clap::{Parser, Subcommand};

pub mod build;
pub mod check;
pub mod compare;
pub mod engine_args;
pub mod fit;
pub mod measure;
pub mod plan;
pub mod predict;
pub mod progress;
pub mod space;
pub mod validate;
pub mod verify;

#[derive(Parser)]
#[command(
    name = "profiler",
    version,
    about = "Latency tables for latency-constrained NAS on GPUs"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// With no subcommand, build the latency table of the space on the GPU
    /// (CSV on stdout, or `--out FILE`, resumed when it exists).
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub build: build::BuildArgs,
}

#[derive(Subcommand)]
pub enum Command {
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
pub fn run(cli: Cli) -> Result<()> {
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

/// The space file's space, or the TF-NAS ImageNet space.
fn load_space(path: Option<&PathBuf>) -> Result<SearchSpaceConfig> {
    match path {
        Some(p) => Ok(SearchSpaceConfig::from_path(p)?),
        None => Ok(SearchSpaceConfig::default()),
    }
}

/// The command line as typed, for the header of a table or rows file.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.contains([' ', '\t']) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
