//! The shared commands as clap types, and the whole `main` of a binary
//! that is an engine and nothing else (`profiler-cpu`, the tests' fake):
//! parse, run, one `error:` line and status 2 on failure.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::build::{self, BuildArgs};
use crate::engine::EngineCli;
use crate::exit;
use crate::measure::{self, MeasureArgs};
use crate::probe::{self, ProbeArgs};
use crate::validate::{self, ValidateArgs};
use crate::verify;

/// The commands every engine has, beside the table build (which runs when
/// no command is given).
#[derive(Subcommand, Clone, Debug)]
pub enum EngineCommand<S: Args, F: Args, V: Args> {
    /// Time a whole network from an architecture JSON end to end on the
    /// engine's device (a GPU, or the CPU with --device cpu).
    Measure(MeasureArgs<S>),
    /// Check the engine's output for each block kind against a CPU
    /// reference implementation.
    Verify(V),
    /// Sample networks of the table's space, time each end to end with the
    /// table's own settings on its kind of device, and report how well the
    /// table predicts them (MAPE, ±k% shares, Kendall tau); `--out` rows
    /// resume.
    Validate(Box<ValidateArgs<F>>),
    /// The keys of another device's table to measure on this one (a
    /// probe) so that `transfer` predicts the rest best; with `--out`,
    /// those keys timed on the engine's device into a table of their own.
    Probe(Box<ProbeArgs<S>>),
}

/// The engine commands of plug-in `E`.
pub type Commands<E> = EngineCommand<
    <E as EngineCli>::Settings,
    <E as EngineCli>::TableFlags,
    <E as EngineCli>::VerifyArgs,
>;

/// Runs `command` on engine `E`.
pub fn run<E: EngineCli>(command: &Commands<E>) -> Result<()> {
    match command {
        EngineCommand::Measure(args) => measure::run::<E>(args),
        EngineCommand::Verify(args) => verify::run::<E>(args),
        EngineCommand::Validate(args) => validate::run::<E>(args),
        EngineCommand::Probe(args) => probe::run::<E>(args),
    }
}

/// A binary that is one engine: the table build without a command, or
/// one of the engine's commands.
#[derive(Parser, Clone, Debug)]
#[command(version, args_conflicts_with_subcommands = true)]
pub struct Command<S: Args, F: Args, V: Args> {
    /// With no subcommand, build the latency table of the space on the
    /// engine's device (CSV on stdout, or `--out FILE`, resumed when it
    /// exists).
    #[command(subcommand)]
    pub command: Option<EngineCommand<S, F, V>>,
    #[command(flatten)]
    pub build: BuildArgs<S>,
}

/// The whole `main` of an engine's binary: SIGPIPE restored, the command
/// line parsed under the engine's name, the command run, its error printed.
pub fn main<E: EngineCli>() -> ExitCode {
    exit::restore_sigpipe();
    exit::follow_parent();
    let cli = Command::<E::Settings, E::TableFlags, E::VerifyArgs>::command()
        .name(E::NAME)
        .bin_name(E::NAME)
        .about(E::ABOUT);
    let parsed =
        Command::<E::Settings, E::TableFlags, E::VerifyArgs>::from_arg_matches(&cli.get_matches());
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    exit::status(match &cli.command {
        None => build::run::<E>(&cli.build),
        Some(command) => run::<E>(command),
    })
}
