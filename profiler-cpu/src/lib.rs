//! The profiler's CPU engine, in a crate of its own because it links
//! libtorch (through tch) and the `profiler` binary must not (a process
//! holding libtorch's cuDNN cannot use the system's). It implements the
//! profiler library's [`profiler::measure::Engine`], so the table build,
//! resume, `measure` and `validate` are the library's, unchanged;
//! `profiler --device cpu ...` runs this crate's binary.

pub mod engine;
pub mod memory;
pub mod settings;
pub mod system;

/// The default cap for timing a whole network on the CPU (`measure`,
/// `validate`): a network at batch 1 runs 10 to 40 ms, so a table entry's
/// 100 ms would stop at the minimum count; at 1 s (about 60 runs) the
/// median at the speed reference moved by about 1% between windows on the
/// development VM (docs/cpu.md, "Speed").
pub const NETWORK_CAP_MS: u64 = 1000;

/// `validate`'s default passes on the CPU. On the development VM one
/// network's median at the speed reference wanders over tens of seconds:
/// 1 s windows of one process spread by 1.5% (sd), windows a minute apart
/// by 2 to 3%, so one contiguous measurement, however long, keeps one
/// stretch of that wandering. Three sweeps put a network's passes 30 s or
/// more apart in a validation of 30 networks (docs/cpu.md, "Accuracy").
pub const VALIDATE_PASSES: u32 = 3;

pub use engine::{Cache, CpuEngine, CpuSettings, Timer};
