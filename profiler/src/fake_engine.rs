//! A deterministic engine and monitor for tests: latencies follow from the
//! block's key, failures and throttling happen where a test says.

use std::collections::VecDeque;

use space::BlockSpec;

use crate::engine::{Engine, EngineConfig, EngineInfo, Workload};
use crate::error::{ProfilerError, Result};
use crate::monitor::{GpuState, Monitor};

pub struct FakeEngine {
    pub info: EngineInfo,
    pub config: EngineConfig,
    /// Every workload prepared, in order.
    pub prepared: Vec<BlockSpec>,
    /// Fail `prepare` with a CUDA error once this many blocks were prepared.
    pub fail_after: Option<usize>,
    /// Return this instead of a latency for this block.
    pub bad_sample: Option<(BlockSpec, f64)>,
    current: Option<BlockSpec>,
    runs: u64,
}

impl FakeEngine {
    pub fn new(config: EngineConfig) -> Self {
        FakeEngine {
            info: EngineInfo {
                device_name: "Fake GPU 80GB".into(),
                device_uuid: "GPU-00000000-1111-2222-3333-444444444444".into(),
                driver: "580.0".into(),
                cuda: "13.0".into(),
                cudnn: "9.14.0".into(),
                engine: "fake/1".into(),
            },
            config,
            prepared: Vec::new(),
            fail_after: None,
            bad_sample: None,
            current: None,
            runs: 0,
        }
    }

    /// The noise-free latency of a block: grows with its work.
    pub fn latency(spec: &BlockSpec) -> f64 {
        0.01 + 1e-5 * f64::from(spec.mid_channels + spec.shape.in_channels + spec.shape.resolution)
    }
}

impl Engine for FakeEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }
    fn config(&self) -> &EngineConfig {
        &self.config
    }
    fn prepare(&mut self, workload: &Workload) -> Result<()> {
        let Workload::Block(spec) = workload else {
            return Err(ProfilerError::Unsupported {
                engine: "fake".into(),
                what: "a network".into(),
            });
        };
        if self.fail_after == Some(self.prepared.len()) {
            return Err(ProfilerError::Cuda {
                block: spec.key(),
                msg: "simulated kill".into(),
            });
        }
        self.prepared.push(*spec);
        self.current = Some(*spec);
        Ok(())
    }
    fn run_timed(&mut self) -> Result<f64> {
        let spec = self.current.expect("prepared");
        if let Some((bad, v)) = self.bad_sample {
            if bad == spec {
                return Ok(v);
            }
        }
        self.runs += 1;
        // ±0.05% jitter: converges at the minimum sample count.
        let jitter = [0.0, 0.0005, -0.0005][(self.runs % 3) as usize];
        Ok(Self::latency(&spec) * (1.0 + jitter))
    }
}

/// A monitor that returns scripted readings, then calm ones.
#[derive(Default)]
pub struct FakeMonitor {
    pub script: VecDeque<GpuState>,
    pub reads: usize,
}

pub fn calm() -> GpuState {
    GpuState {
        sm_clock_mhz: Some(1980),
        temperature_c: Some(45),
        throttle: vec![],
    }
}

pub fn hot() -> GpuState {
    GpuState {
        sm_clock_mhz: Some(1410),
        temperature_c: Some(87),
        throttle: vec!["sw_thermal".into()],
    }
}

impl Monitor for FakeMonitor {
    fn read(&mut self) -> GpuState {
        self.reads += 1;
        self.script.pop_front().unwrap_or_else(calm)
    }
    fn describe(&self) -> String {
        "fake".into()
    }
}
