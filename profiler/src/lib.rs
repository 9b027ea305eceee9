//! The profiler's library: everything but the command line, in layers, each
//! using only the layers below it (`scripts/check-layers.sh` checks the
//! rules in CI):
//!
//! | Layer | What it holds |
//! |-------|---------------|
//! | [`cli`](../profiler/cli/index.html) (binary) | clap, `anyhow`, printing, progress bars, the choice of engine; one file per command |
//! | [`cuda`] | the cudarc engine, the `verify` command's CPU reference check, and the only `unsafe` code; kernels in `.cu` files |
//! | [`table`], [`validate`] | building a table (with resume) and timing whole networks against a table, generic over [`Engine`] |
//! | [`analysis`] | accuracy statistics, the validation rows format, `fit`, `compare`, plots: files and tables, never an engine |
//! | [`measure`] | the [`Engine`] and [`Monitor`] traits, timing, the stopping rule, the boundary; a fake engine behind `test-util` |
//! | [`files`] | resumable output files: header lines, truncation, atomic replace, timestamps |
//! | [`error`] | [`ProfilerError`], the one error type every layer returns |
//! | [`stats`] | pure numbers: summaries, the median's interval, Wilson, quantiles, rank correlations |
//!
//! Another engine (a CPU one, in a crate of its own) implements [`Engine`]
//! and reuses [`table`], [`validate`] and [`measure`] unchanged.
//!
//! This crate uses cudarc only and must never link libtorch (gpu-facts,
//! pitfall 1: two cuDNNs in one process fail).

pub mod analysis;
pub mod cuda;
pub mod error;
pub mod files;
pub mod measure;
pub mod stats;
pub mod table;
pub mod validate;

pub use error::{Context, ProfilerError, Result};
pub use measure::{
    set_measurement_lines, time_workload, Boundary, Dtype, Engine, EngineConfig, EngineInfo,
    GpuSettings, GpuState, Launch, Layout, Monitor, NvmlMonitor, StopRule, Timed, TimingRule,
    Unmonitored, Workload, L2,
};
// The modules' former paths at the root (`profiler::engine::Engine`,
// `profiler::timing::time_workload`, ...), for code written against them.
pub use measure::{boundary, engine, monitor, timing};
