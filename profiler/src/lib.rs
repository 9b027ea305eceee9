//! The profiler's library: everything but the command line (that is the
//! `profiler_cli` crate, which every engine binary shares), in layers, each
//! using only the layers below it (`scripts/check-layers.sh` checks the
//! rules in CI):
//!
//! | Layer | What it holds |
//! |-------|---------------|
//! | [`cuda`] | the cudarc engine and its GPU tests against the CPU reference; the only `unsafe` code; kernels in `.cu` files; one [`CudaError`](cuda::CudaError) |
//! | [`table`], [`validate`] | building a table (with resume) and timing whole networks against a table, generic over [`Engine`] |
//! | [`analysis`] | accuracy statistics, the validation rows format, `fit`, `compare`, plots: files and tables, never an engine |
//! | [`reference`] | what an engine's output must be: seeded weights, a plain CPU forward pass of [`space::layers`], and the `verify` check of any engine that reads its output back |
//! | [`measure`] | the [`Engine`] and [`Monitor`] traits, timing, the stopping rule, the boundary; a fake engine behind `test-util` |
//! | [`files`] | resumable output files: header lines, truncation, atomic replace, timestamps |
//! | [`error`] | [`ProfilerError`], the one error type every layer returns |
//! | [`stats`] | pure numbers: summaries, the median's interval, Wilson, quantiles, rank correlations |
//!
//! Another engine (a CPU one, in a crate of its own) implements [`Engine`]
//! and reuses [`table`], [`validate`] and [`measure`] unchanged: a table is
//! [`table::build::build_table`], a network [`validate::network`], a
//! validation [`validate::Request::job`] then [`validate::run_validation`],
//! each with any engine and [`Monitor`]; its fingerprint keys that a resume
//! must match are its [`EngineInfo::resume_keys`]. Inside the crate, imports name the module
//! that defines what they use (the re-exports below are for other crates),
//! which keeps the import graph at 7 floors (`scripts/import-floors.py`).
//!
//! This crate uses cudarc only and must never link libtorch (docs/gpu-facts.md,
//! pitfall 1: two cuDNNs in one process fail).

pub mod analysis;
pub mod cuda;
pub mod error;
pub mod files;
pub mod measure;
pub mod reference;
pub mod stats;
pub mod table;
pub mod validate;

pub use error::{Context, ProfilerError, Result};
pub use measure::{
    set_measurement_lines, time_workload, Boundary, Dtype, Engine, EngineConfig, EngineInfo,
    GpuSettings, GpuState, Launch, Layout, Monitor, NvmlMonitor, StopRule, Timed, TimingRule,
    Unmonitored, Workload, L2,
};
