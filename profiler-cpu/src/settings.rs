//! The CPU engine's flags that are not settings of a run: `--device cpu`
//! itself with the GPU-only flags it refuses, and `validate`'s flags,
//! which may only repeat what a CPU table's header states.

use clap::Args;
use profiler::error::{ProfilerError, Result};
use space::{meta, LatencyTable};

use crate::engine::{Cache, CpuSettings, Timer};

/// `--device cpu` (the only device here) and the GPU-only flags, refused
/// with one line rather than clap's usage text.
#[derive(Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Must be `cpu` (how `profiler` chose this binary).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long, hide = true)]
    pub launch: Option<String>,
    #[arg(long, hide = true)]
    pub l2: Option<String>,
    #[arg(long, hide = true)]
    pub dtype: Option<String>,
    #[arg(long, hide = true)]
    pub layout: Option<String>,
}

impl DeviceArgs {
    /// Refuses another device and any GPU setting.
    pub fn check(&self) -> Result<()> {
        if self.device != "cpu" {
            return Err(ProfilerError::Invalid(format!(
                "--device {}: profiler-cpu times on the CPU only (--device cpu); GPUs are the profiler's own (--device N)",
                self.device
            )));
        }
        for (flag, given) in [
            ("--launch", &self.launch),
            ("--l2", &self.l2),
            ("--dtype", &self.dtype),
            ("--layout", &self.layout),
        ] {
            if given.is_some() {
                return Err(ProfilerError::Invalid(format!("{flag} is a GPU setting; the CPU engine runs fp32 NCHW ops eagerly (use --cache warm|cold for the CPU's caches)")));
            }
        }
        Ok(())
    }
}

/// `validate`'s CPU flags: each may only repeat the table's setting.
#[derive(Args, Clone, Debug)]
pub struct TableFlags {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The table's batch (refused if different).
    #[arg(long)]
    pub batch: Option<u32>,
    /// The table's threads (refused if different).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The table's cache policy (refused if different).
    #[arg(long)]
    pub cache: Option<Cache>,
    /// The table's clock (refused if different).
    #[arg(long)]
    pub timer: Option<Timer>,
}

/// A header value parsed, or the error naming the table and the line.
fn header<T: std::str::FromStr>(table: &LatencyTable, key: &str, default: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let text = table.metadata().get(key).unwrap_or(default);
    text.parse().map_err(|e: T::Err| {
        ProfilerError::Invalid(format!("{}: header '{key}': {e}", table.origin()))
    })
}

/// A CPU table's settings, with the flags allowed only to repeat them;
/// a GPU table (no `threads` line) is refused.
pub fn resolve(table: &LatencyTable, flags: &TableFlags) -> Result<CpuSettings> {
    let Some(threads) = table.metadata().get(meta::THREADS) else {
        return Err(ProfilerError::Invalid(format!(
            "{}: a GPU table (its header has no '{}' line); validate it with `profiler validate --device N`",
            table.origin(),
            meta::THREADS
        )));
    };
    let threads: usize = threads.parse().map_err(|e: std::num::ParseIntError| {
        ProfilerError::Invalid(format!(
            "{}: header '{}: {threads}': {e}",
            table.origin(),
            meta::THREADS
        ))
    })?;
    let cache: Cache = header(table, meta::CACHE, "warm")?;
    if cache == Cache::Network && table.speed_reference_ms().is_none() {
        // Its entries are at a speed reference the file no longer states:
        // timed raw, the networks would be compared with another speed.
        return Err(ProfilerError::Invalid(format!(
            "{}: a table built with --cache network has a '{}' line, and this one has lost it; restore the line or rebuild the table",
            table.origin(),
            profiler::measure::speed::REFERENCE_KEY
        )));
    }
    let timer: Timer = header(table, meta::TIMER, "wall")?;
    let mut diffs = Vec::new();
    let mut differs = |key: &str, table: String, flag: Option<String>| {
        if let Some(flag) = flag.filter(|f| *f != table) {
            diffs.push(format!("{key}: table '{table}', flag '{flag}'"));
        }
    };
    differs(
        "timer",
        timer.to_string(),
        flags.timer.map(|t| t.to_string()),
    );
    differs(
        "batch",
        table.batch().to_string(),
        flags.batch.map(|b| b.to_string()),
    );
    differs(
        "threads",
        threads.to_string(),
        flags.threads.map(|t| t.to_string()),
    );
    differs(
        "cache",
        cache.to_string(),
        flags.cache.map(|c| c.to_string()),
    );
    if !diffs.is_empty() {
        return Err(ProfilerError::FlagsDisagreeWithTable {
            table: table.origin().to_string(),
            diffs: diffs.join("; "),
        });
    }
    Ok(CpuSettings {
        batch: table.batch(),
        threads,
        cache,
        timer,
        seed: 0,
    })
}
