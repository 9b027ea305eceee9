//! The flags every GPU command shares (device, engine settings, timing
//! rule) and the choice of engine: the CUDA engine with an NVML monitor.

use clap::Args;
use profiler::cuda::cuda_engine::CudaEngine;
use profiler::error::{ProfilerError, Result};
use profiler::measure::engine::{Dtype, Engine, EngineConfig, Launch, Layout, L2};
use profiler::measure::monitor::{Monitor, NvmlMonitor};
use profiler::measure::timing::{TimingFlags, TimingRule};

/// The device, the engine settings and the timing rule, shared by both
/// commands.
#[derive(Args, Clone, Debug)]
pub struct EngineArgs {
    /// CUDA device index.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Images per run (TF-NAS times at batch 32).
    #[arg(long, default_value_t = 32)]
    pub batch: u32,
    /// `graph` replays a captured CUDA graph per run, keeping CPU launch
    /// overhead out; `eager` launches every kernel.
    #[arg(long, default_value = "graph")]
    pub launch: Launch,
    /// `cold` flushes the L2 cache before every timed run.
    #[arg(long, default_value = "warm")]
    pub l2: L2,
    #[arg(long, default_value = "fp32")]
    pub dtype: Dtype,
    #[arg(long, default_value = "nchw")]
    pub layout: Layout,
    #[command(flatten)]
    pub timing: TimingArgs,
}

/// When to stop timing one workload; shared with `validate`, whose engine
/// settings come from the table instead of these defaults.
#[derive(Args, Clone, Debug)]
pub struct TimingArgs {
    /// Untimed warm-up per entry, in milliseconds.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.warmup_ms)]
    pub warmup_ms: u64,
    /// Per-entry cap on sampling time, in milliseconds.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.cap_ms)]
    pub cap_ms: u64,
    /// Stop once the 95% CI of the median is within this percentage of it.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.ci_percent)]
    pub ci_percent: f64,
    /// Fewest timed runs per entry.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.min_samples)]
    pub min_samples: u64,
}

impl TimingArgs {
    pub fn flags(&self) -> TimingFlags {
        TimingFlags {
            warmup_ms: self.warmup_ms,
            cap_ms: self.cap_ms,
            ci_percent: self.ci_percent,
            min_samples: self.min_samples,
        }
    }
}

impl EngineArgs {
    pub fn engine_config(&self) -> Result<EngineConfig> {
        if self.batch == 0 {
            return Err(ProfilerError::Invalid("--batch must be at least 1".into()));
        }
        Ok(EngineConfig {
            batch: self.batch,
            dtype: self.dtype,
            layout: self.layout,
            launch: self.launch,
            l2: self.l2,
            seed: 0,
        })
    }

    pub fn timing(&self) -> Result<TimingRule> {
        self.timing.flags().rule()
    }

    /// Opens the engine and a monitor for its device (what `measure` and
    /// `validate` time with).
    pub fn open(&self) -> Result<(CudaEngine, Box<dyn Monitor>)> {
        let engine = CudaEngine::open(self.device, self.engine_config()?)?;
        let mut monitor = NvmlMonitor::open(&engine.info().device_uuid);
        eprintln!(
            "device {}: {} ({}), driver {}, CUDA {}, cuDNN {}; {}; {}",
            self.device,
            engine.info().device_name,
            engine.info().device_uuid,
            engine.info().driver,
            engine.info().cuda,
            engine.info().cudnn,
            monitor.describe(),
            monitor.settings()
        );
        Ok((engine, monitor))
    }
}
