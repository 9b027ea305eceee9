//! A deterministic engine and monitor for tests, the crate's own and any
//! other crate's (feature `test-util`): latencies follow from the block's
//! key or from a model the test gives, failures and throttling happen where
//! a test says.

use std::collections::VecDeque;

use space::BlockSpec;

use crate::error::{ProfilerError, Result};
use crate::measure::engine::{Engine, EngineConfig, EngineInfo, Workload};
use crate::measure::monitor::{GpuState, Monitor};

pub struct FakeEngine {
    pub info: EngineInfo,
    pub config: EngineConfig,
    /// Every block prepared alone, in order.
    pub prepared: Vec<BlockSpec>,
    /// How many whole networks were prepared.
    pub networks: usize,
    /// How many boundary probes (`Workload::Empty`) were prepared.
    pub empties: usize,
    /// Fail `prepare` with a CUDA error once this many blocks and networks
    /// were prepared (a kill).
    pub fail_after: Option<usize>,
    /// Return this instead of a latency for this block.
    pub bad_sample: Option<(BlockSpec, f64)>,
    /// The time of a whole network from its blocks, exactly (no jitter),
    /// instead of the run model: `validate`'s tests time networks as a
    /// table's prediction times a known factor.
    pub network_ms: Option<NetworkModel>,
    /// The machine's speed, run after run, cycled: each block of a run
    /// timed by [`Engine::run_timed_blocks`] takes its latency times the
    /// run's speed. Empty: always 1.
    pub speeds: Vec<f64>,
    /// The network around a block, as a factor on every block's time in
    /// [`Engine::run_timed_blocks`] (a CPU's caches: the same block runs
    /// slower inside a heavier network). `None`: 1.
    pub context: Option<fn(&[BlockSpec]) -> f64>,
    current: Option<Workload>,
    runs: u64,
}

/// A network's time in ms from its blocks, for [`FakeEngine::network_ms`].
pub type NetworkModel = Box<dyn Fn(&[BlockSpec]) -> f64>;

/// The fake's model of a timed run, in ms: the run's start and end, one gap
/// between consecutive blocks or kernels, and an empty kernel. A run of
/// blocks costs `START_END + Σ work + (n - 1)·GAP`, like a graph on a GPU.
pub const START_END: f64 = 0.004;
pub const GAP: f64 = 0.0005;
pub const EMPTY_KERNEL: f64 = 0.001;

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
                extra: Vec::new(),
                resume_keys: Vec::new(),
                width_align: None,
                curve_fit: space::CurveFit::None,
            },
            config,
            prepared: Vec::new(),
            networks: 0,
            empties: 0,
            fail_after: None,
            bad_sample: None,
            network_ms: None,
            speeds: Vec::new(),
            context: None,
            current: None,
            runs: 0,
        }
    }

    /// The noise-free latency of a block timed alone: grows with its work.
    pub fn latency(spec: &BlockSpec) -> f64 {
        0.01 + 1e-5 * f64::from(spec.mid_channels + spec.shape.in_channels + spec.shape.resolution)
    }

    /// The noise-free latency of any workload under the run model.
    pub fn run_latency(workload: &Workload) -> f64 {
        let (work, parts) = match workload {
            Workload::Empty { kernels } => (f64::from(*kernels) * EMPTY_KERNEL, *kernels),
            _ => {
                let blocks = workload.blocks();
                let work = blocks.iter().map(|b| Self::latency(b) - START_END).sum();
                (work, blocks.len() as u32)
            }
        };
        START_END + work + f64::from(parts.saturating_sub(1)) * GAP
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
        let killed = self.fail_after == Some(self.prepared.len() + self.networks);
        match workload {
            Workload::Block(spec) if killed => {
                return Err(ProfilerError::Cuda {
                    block: spec.key(),
                    msg: "simulated kill".into(),
                })
            }
            Workload::Network { .. } if killed => {
                return Err(ProfilerError::Cuda {
                    block: workload.to_string(),
                    msg: "simulated kill".into(),
                })
            }
            Workload::Block(spec) => self.prepared.push(*spec),
            Workload::Network { .. } => self.networks += 1,
            Workload::Empty { .. } => self.empties += 1,
            Workload::Model { .. } => {
                return Err(ProfilerError::Unsupported {
                    engine: self.info.engine.clone(),
                    what: "timing an exported model".into(),
                })
            }
        }
        self.current = Some(workload.clone());
        Ok(())
    }
    fn run_timed_blocks(&mut self) -> Result<Vec<f64>> {
        let workload = self.current.as_ref().expect("prepared");
        let speed = match self.speeds.len() {
            0 => 1.0,
            n => self.speeds[(self.runs % n as u64) as usize],
        };
        self.runs += 1;
        let context = self.context.map_or(1.0, |f| f(workload.blocks()));
        Ok(workload
            .blocks()
            .iter()
            .map(|b| Self::latency(b) * speed * context)
            .collect())
    }
    fn run_timed(&mut self) -> Result<f64> {
        let workload = self.current.as_ref().expect("prepared");
        if let (Some((bad, v)), Workload::Block(spec)) = (self.bad_sample, workload) {
            if bad == *spec {
                return Ok(v);
            }
        }
        if let (Some(model), Workload::Network { blocks, .. }) = (&self.network_ms, workload) {
            return Ok(model(blocks));
        }
        self.runs += 1;
        // ±0.05% jitter: converges at the minimum sample count.
        let jitter = [0.0, 0.0005, -0.0005][(self.runs % 3) as usize];
        Ok(Self::run_latency(workload) * (1.0 + jitter))
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
        violations: vec![],
    }
}

pub fn hot() -> GpuState {
    GpuState {
        sm_clock_mhz: Some(1410),
        temperature_c: Some(87),
        throttle: vec!["sw_thermal".into()],
        violations: vec![],
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
    fn settings(&mut self) -> crate::measure::monitor::GpuSettings {
        crate::measure::monitor::GpuSettings {
            graphics_app_mhz: Some(1980),
            mem_app_mhz: Some(2619),
            sm_max_mhz: Some(1980),
            mem_max_mhz: Some(2619),
            power_limit_w: Some(700),
            power_default_w: Some(700),
            mig: Some(false),
            persistence: None,
        }
    }
}
