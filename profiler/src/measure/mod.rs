//! Timing one workload on any engine: the [`Engine`] and [`Monitor`]
//! traits, the stopping rule, warm-up and re-measuring after throttling
//! ([`timing`]), and the boundary probe. Generic over the engine, so every
//! layer above runs on the fake in `fake` (feature `test-util`) as it
//! runs on a GPU.

pub mod boundary;
pub mod engine;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod monitor;
pub mod paired;
pub mod speed;
pub mod stop;
pub mod timing;

pub use boundary::Boundary;
pub use engine::{
    set_measurement_lines, Dtype, Engine, EngineConfig, EngineInfo, Launch, Layout, Workload, L2,
};
pub use monitor::{GpuSettings, GpuState, Monitor, NvmlMonitor, Unmonitored};
pub use stop::{sample_until, StopReason, StopRule};
pub use timing::{time_workload, Timed, TimingRule};
