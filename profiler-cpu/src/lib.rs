//! The profiler's CPU engine, in a crate of its own because it links
//! libtorch (through tch) and the `profiler` binary must not (a process
//! holding libtorch's cuDNN cannot use the system's). It implements the
//! profiler library's [`profiler::engine::Engine`], so the table build,
//! resume, `measure` and `validate` are the library's, unchanged;
//! `profiler --device cpu ...` runs this crate's binary.

pub mod engine;
pub mod memory;
pub mod numerics;
pub mod system;

pub use engine::{Cache, CpuEngine, CpuSettings, Timer};
