//! `profiler`: builds, checks and uses latency tables of a search space,
//! on a GPU through the CUDA engine (`gpu.rs`), or on the CPU through the
//! `profiler-cpu` binary beside it (`cpu_exec.rs`). The commands every
//! engine has are the shared command line's (`profiler_cli`); the others
//! need no engine, one file each.
//!
//! Every failure prints one clear `error:` message on stderr and exits with
//! status 2; nothing panics on bad input.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use profiler_cli::build::BuildArgs;
use profiler_cli::command::{self, Commands};
use profiler_cli::{exit, EngineCli};

mod check;
mod compare;
mod cpu_exec;
mod fit;
mod gpu;
mod plan;
mod predict;
mod space;
mod transfer;

use gpu::Gpu;

#[derive(Parser)]
#[command(
    name = "profiler",
    version,
    about = <Gpu as EngineCli>::ABOUT
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// With no subcommand, build the latency table of the space on the
    /// device (CSV on stdout, or `--out FILE`, resumed when it exists).
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs<gpu::GpuArgs>,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Engine(Commands<Gpu>),
    /// Print the space and every block a complete table needs.
    Plan(plan::PlanArgs),
    /// Print a search space as JSON, to edit into a space file of your own.
    Space(space::SpaceArgs),
    /// Validate a table and report what it covers of a space.
    Check(check::CheckArgs),
    /// Predict the latency of an architecture JSON from a table.
    Predict(predict::PredictArgs),
    /// Fit a per-network correction (a·predicted + b) to `validate --out`
    /// rows, report it out of sample, and write it into a copy of the table.
    Fit(fit::FitArgs),
    /// Compare two tables (another GPU, driver, batch...): ratios B/A per
    /// stage, rank agreement, and reference networks under both.
    Compare(compare::CompareArgs),
    /// A full table for a new device from its probe and another device's
    /// table: the probe's rows measured, the others predicted.
    Transfer(transfer::TransferArgs),
}

/// Runs the command `cli` names (the table build without one).
fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.command else {
        return profiler_cli::build::run::<Gpu>(&cli.build);
    };
    match command {
        Command::Engine(c) => command::run::<Gpu>(&c),
        Command::Plan(args) => plan::run(&args),
        Command::Space(args) => space::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Fit(args) => fit::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Transfer(args) => transfer::run(&args),
    }
}

fn main() -> ExitCode {
    exit::restore_sigpipe();
    if let Some(code) = cpu_exec::run_if_cpu() {
        return code;
    }
    exit::status(run(Cli::parse()))
}
