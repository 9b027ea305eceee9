//! `profiler-fake`: the profiler's fake engine (`profiler::measure::fake`,
//! latencies that follow from each block's key) plugged into the shared
//! command line, as a third engine would be. It times nothing real: it
//! exists so that a test can build a table, `measure` and `validate` with
//! an engine that neither `profiler` nor `profiler-cpu` knows.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use profiler::measure::engine::{Engine, EngineConfig};
use profiler::measure::fake::{FakeEngine, FakeMonitor};
use profiler::measure::monitor::Monitor;
use profiler::reference::Comparison;
use profiler::validate::{resolve_settings, SettingFlags};
use profiler_cli::flags::in_range;
use profiler_cli::{Defaults, EngineCli};
use space::LatencyTable;

struct Fake;

/// The fake's one setting.
#[derive(Args, Clone, Debug)]
struct FakeArgs {
    /// Images per run.
    #[arg(long, default_value_t = 32, value_parser = in_range::<u32>("--batch", 1, 4096))]
    batch: u32,
}

/// `validate`'s flags: the table's batch, repeated or refused.
#[derive(Args, Clone, Debug)]
struct FakeTableFlags {
    /// The table's batch (refused if different).
    #[arg(long)]
    batch: Option<u32>,
}

impl EngineCli for Fake {
    const NAME: &'static str = "profiler-fake";
    const ABOUT: &'static str = "Latency tables from the profiler's fake engine (tests only)";
    const DEFAULTS: Defaults = Defaults {
        network_cap_ms: 20,
        validate_passes: 2,
        progress_bar: false,
    };

    type Engine = FakeEngine;
    type Settings = FakeArgs;
    type TableFlags = FakeTableFlags;
    type VerifyArgs = FakeArgs;

    fn open(args: &FakeArgs) -> Result<(FakeEngine, Box<dyn Monitor>)> {
        let engine = FakeEngine::new(Self::config(args)?);
        profiler_cli::engine::describe_once(&format!(
            "fake: {} ({}), engine {}",
            engine.info().device_name,
            engine.info().device_uuid,
            engine.info().engine
        ));
        Ok((engine, Box::new(FakeMonitor::default())))
    }

    fn batch(args: &FakeArgs) -> u32 {
        args.batch
    }

    fn describe(args: &FakeArgs) -> String {
        format!("batch {}", args.batch)
    }

    fn measures_boundary() -> bool {
        true
    }

    fn table_settings(table: &LatencyTable, flags: &FakeTableFlags) -> Result<FakeArgs> {
        let flags = SettingFlags {
            batch: flags.batch,
            ..SettingFlags::default()
        };
        Ok(FakeArgs {
            batch: resolve_settings(table, &flags)?.batch,
        })
    }

    fn config(args: &FakeArgs) -> Result<EngineConfig> {
        Ok(EngineConfig {
            batch: args.batch,
            ..EngineConfig::default()
        })
    }

    fn verify(_args: &FakeArgs) -> Result<Vec<Comparison>> {
        bail!("the fake engine computes no outputs to check")
    }
}

fn main() -> ExitCode {
    profiler_cli::main::<Fake>()
}
