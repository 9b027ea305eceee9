//! `profiler-cpu`: the CPU engine plugged into the shared command line
//! (`profiler_cli`): its flags, its defaults, how it opens and describes
//! itself, and the settings a CPU table's header states. Users run it as
//! `profiler --device cpu ...`, which runs this binary with the same
//! arguments (the `profiler` binary must never link libtorch).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use profiler::measure::engine::EngineConfig;
use profiler::measure::monitor::{Monitor, Unmonitored};
use profiler::reference::{check_blocks, Comparison};
use profiler::table::in_network::InNetwork;
use profiler_cli::flags::in_range;
use profiler_cli::{Defaults, EngineCli};
use profiler_cpu::engine::MAX_BATCH;
use profiler_cpu::settings::{resolve, DeviceArgs, TableFlags};
use profiler_cpu::{Cache, CpuEngine, CpuSettings, Timer};
use space::LatencyTable;

/// The CPU engine, for the shared command line.
struct Cpu;

/// The CPU engine's settings.
#[derive(Args, Clone, Debug)]
struct CpuArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Images per run (1: the CPU deployment case).
    #[arg(long, default_value_t = CpuSettings::DEFAULT.batch,
          value_parser = in_range::<u32>("--batch", 1, MAX_BATCH))]
    batch: u32,
    /// libtorch's intra-op threads, pinned to the first N CPUs this process
    /// may run on.
    #[arg(long, default_value_t = CpuSettings::DEFAULT.threads)]
    threads: usize,
    /// Where a block finds its data when timed: `network` times each block
    /// inside networks of the space run back to back (a clock read between
    /// blocks); the others time it alone, and before each run `warm` does
    /// nothing, `llc` evicts the core's private caches, `cold` the
    /// last-level cache too.
    #[arg(long, default_value_t = CpuSettings::DEFAULT.cache)]
    cache: Cache,
    /// `thread`: the thread's CPU time, blind to other processes' turns on
    /// the core (one thread only; the default with one); `wall`: the
    /// monotonic clock (the default with more threads).
    #[arg(long)]
    timer: Option<Timer>,
}

impl CpuArgs {
    fn settings(&self) -> CpuSettings {
        CpuSettings {
            batch: self.batch,
            threads: self.threads,
            cache: self.cache,
            timer: self.timer.unwrap_or(Timer::default_for(self.threads)),
            seed: 0,
        }
    }
}

impl EngineCli for Cpu {
    const NAME: &'static str = "profiler-cpu";
    const ABOUT: &'static str = "Latency tables on the CPU (run as `profiler --device cpu ...`)";
    const DEFAULTS: Defaults = Defaults {
        network_cap_ms: profiler_cpu::NETWORK_CAP_MS,
        validate_passes: profiler_cpu::VALIDATE_PASSES,
        progress_bar: false,
    };

    type Engine = CpuEngine;
    type Settings = CpuArgs;
    type TableFlags = TableFlags;
    type VerifyArgs = DeviceArgs;

    fn open(args: &CpuArgs) -> Result<(CpuEngine, Box<dyn Monitor>)> {
        args.device.check()?;
        let engine = CpuEngine::open(args.settings())?;
        profiler_cli::engine::describe_once(&engine.describe());
        let why = "a CPU".to_string();
        Ok((engine, Box::new(Unmonitored { why })))
    }

    fn batch(args: &CpuArgs) -> u32 {
        args.batch
    }

    fn describe(args: &CpuArgs) -> String {
        format!("batch {}, {} thread(s)", args.batch, args.threads)
    }

    fn in_network(args: &CpuArgs) -> Option<InNetwork> {
        (args.cache == Cache::Network).then(InNetwork::default)
    }

    fn times_models() -> bool {
        true
    }

    fn per_block_note(args: &CpuArgs) -> String {
        format!("(cache {}) ", args.cache)
    }

    fn table_settings(table: &LatencyTable, flags: &TableFlags) -> Result<CpuArgs> {
        flags.device.check()?;
        let s = resolve(table, flags)?;
        Ok(CpuArgs {
            device: flags.device.clone(),
            batch: s.batch,
            threads: s.threads,
            cache: s.cache,
            timer: Some(s.timer),
        })
    }

    fn config(args: &CpuArgs) -> Result<EngineConfig> {
        Ok(args.settings().engine_config())
    }

    fn verify(args: &DeviceArgs) -> Result<Vec<Comparison>> {
        args.check()?;
        let mut engine = CpuEngine::open(CpuSettings {
            batch: 2,
            threads: 1,
            cache: Cache::Warm,
            timer: Timer::Wall,
            seed: 0,
        })?;
        Ok(check_blocks(&mut engine)?)
    }
}

fn main() -> ExitCode {
    if let Err(why) = profiler_cpu::memory::ensure_tunables() {
        eprintln!("warning: {why}; timing with glibc's malloc defaults");
    }
    profiler_cli::main::<Cpu>()
}
