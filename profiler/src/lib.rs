//! The profiler's library: timing statistics, the engine interface, GPU
//! monitoring, and the table builder, kept apart from the command line so
//! that everything but the CUDA engine itself is tested on any machine.
//!
//! This crate uses cudarc only and must never link libtorch (gpu-facts,
//! pitfall 1: two cuDNNs in one process fail).

pub mod boundary;
pub mod cuda;
pub mod engine;
pub mod error;
pub mod gpu_commands;
pub mod monitor;
pub mod numerics;
pub mod resume;
pub mod stats;
pub mod table_build;
pub mod timestamp;
pub mod timing;

#[cfg(test)]
pub(crate) mod fake_engine;

pub use error::{ProfilerError, Result};
