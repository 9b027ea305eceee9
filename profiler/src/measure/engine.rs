//! What the table builder needs from an inference engine, as a trait, so that
//! the driver (warm-up, adaptive sampling, throttle handling, resume) is
//! tested on any machine with a deterministic engine, and the CUDA engine is
//! one implementation among them.

use std::fmt;
use std::str::FromStr;

use space::BlockSpec;

use crate::error::{ProfilerError, Result};

/// Element type of weights and activations. fp32 first; the parameter exists
/// so that fp16 follows without changing the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    Fp32,
    Fp16,
}

/// Memory layout of activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// How a timed run is launched: replaying a captured CUDA graph keeps CPU
/// launch overhead out of the table (docs/gpu-facts.md: eager per-block sums were
/// off by +32% on the H100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    Graph,
    Eager,
}

/// Whether the L2 cache is flushed before each timed run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L2 {
    Warm,
    Cold,
}

macro_rules! named_enum {
    ($t:ident, $what:literal, $($v:ident => $s:literal),+) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s),+ }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($t::$v),)+
                    _ => Err(format!(concat!("unknown ", $what, " '{}' (expected {})"), s,
                        [$($s),+].join(" or "))),
                }
            }
        }
    };
}

named_enum!(Dtype, "dtype", Fp32 => "fp32", Fp16 => "fp16");
named_enum!(Layout, "layout", Nchw => "nchw", Nhwc => "nhwc");
named_enum!(Launch, "launch mode", Graph => "graph", Eager => "eager");
named_enum!(L2, "L2 policy", Warm => "warm", Cold => "cold");

/// The settings an engine runs every block under; all of them are part of a
/// table's fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    pub batch: u32,
    pub dtype: Dtype,
    pub layout: Layout,
    pub launch: Launch,
    pub l2: L2,
    /// Seed of the random weights and inputs.
    pub seed: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            batch: 32,
            dtype: Dtype::Fp32,
            layout: Layout::Nchw,
            launch: Launch::Graph,
            l2: L2::Warm,
            seed: 0,
        }
    }
}

/// What an engine runs on, for the table's fingerprint header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    pub device_name: String,
    /// `GPU-xxxxxxxx-...`, as `nvidia-smi -L` prints it.
    pub device_uuid: String,
    pub driver: String,
    pub cuda: String,
    pub cudnn: String,
    /// Name and version of the engine implementation.
    pub engine: String,
    /// Further `key: value` fingerprint lines an engine adds after the
    /// common ones (the CPU engine: model, cache size, threads, cache
    /// policy...), written into every header [`set_measurement_lines`]
    /// writes; the GPU engine has none.
    pub extra: Vec<(String, String)>,
    /// Those of [`extra`](Self::extra)'s keys that change what a latency
    /// means, so that a table or a validation's rows resume only where they
    /// match (after [`MEASUREMENT_KEYS`], which always must); the others
    /// (a core count, an affinity) are informative.
    pub resume_keys: Vec<&'static str>,
    /// The channel multiple the engine's kernels pad to (a CPU's vector
    /// lanes, a GPU's tensor-core multiple), or `None` for none known. A
    /// table built with one times a few unaligned widths per curve besides
    /// its grid and says `width_model: align N`, so that unaligned widths
    /// are priced with their measured surcharge (space's `WidthModel`).
    pub width_align: Option<u32>,
    /// How a table the engine builds prices the widths it measured
    /// (`curve_fit`): on each curve's line where one entry's noise is
    /// larger than the curve's departure from a line (the CPU), each at its
    /// own entry otherwise (space's `CurveFit`).
    pub curve_fit: space::CurveFit,
}

/// The keys of [`set_measurement_lines`]'s common lines that change what a
/// latency means, in the order a refusal to resume lists them.
pub const MEASUREMENT_KEYS: [&str; 10] = [
    space::meta::DEVICE_UUID,
    space::meta::DRIVER,
    space::meta::CUDA,
    space::meta::CUDNN,
    space::meta::ENGINE,
    space::meta::LAUNCH,
    space::meta::L2,
    space::meta::DTYPE,
    space::meta::LAYOUT,
    space::meta::BATCH,
];

impl EngineInfo {
    /// The keys a file this engine writes must match to be resumed:
    /// `first`, [`MEASUREMENT_KEYS`], `then`, and the engine's own
    /// [`resume_keys`](Self::resume_keys).
    pub fn resume_keys(&self, first: &[&'static str], then: &[&'static str]) -> Vec<&'static str> {
        let mut keys = first.to_vec();
        keys.extend(MEASUREMENT_KEYS);
        keys.extend(then);
        keys.extend(&self.resume_keys);
        keys
    }
}

/// What one prepared workload is: a table entry, a whole network timed
/// end to end (`profiler measure`), or the probe of a table's boundary.
#[derive(Clone, Debug, PartialEq)]
pub enum Workload {
    Block(BlockSpec),
    /// The blocks of a network in order, and a name for messages.
    Network {
        name: String,
        blocks: Vec<BlockSpec>,
    },
    /// `kernels` empty kernels one after the other, launched as a block's
    /// kernels are (see [`crate::measure::boundary`]).
    Empty {
        kernels: u32,
    },
    /// A whole network exported by `searcher export` as TorchScript, run
    /// on a `batch × channels × resolution²` input (the batch is the
    /// engine's). Only an engine that links libtorch can run it; the
    /// others refuse it in `prepare`.
    Model {
        path: std::path::PathBuf,
        channels: u32,
        resolution: u32,
    },
}

impl Workload {
    /// The blocks it runs, in order (none for [`Workload::Empty`]).
    pub fn blocks(&self) -> &[BlockSpec] {
        match self {
            Workload::Block(spec) => std::slice::from_ref(spec),
            Workload::Network { blocks, .. } => blocks,
            Workload::Empty { .. } | Workload::Model { .. } => &[],
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Block(spec) => write!(f, "{spec}"),
            Workload::Network { name, blocks } => {
                write!(f, "network {name} ({} blocks)", blocks.len())
            }
            Workload::Empty { kernels } => write!(f, "{kernels} empty kernels"),
            Workload::Model { path, .. } => write!(f, "model {}", path.display()),
        }
    }
}

/// An inference engine that times one prepared workload at a time.
pub trait Engine {
    /// The device and libraries, for the fingerprint.
    fn info(&self) -> &EngineInfo;

    /// The settings it was opened with.
    fn config(&self) -> &EngineConfig;

    /// Builds everything a timed run of `workload` needs (buffers, weights,
    /// algorithm choices, a captured graph), replacing what an earlier call
    /// prepared. Errors name the block.
    fn prepare(&mut self, workload: &Workload) -> Result<()>;

    /// Runs the prepared workload once and returns its time in milliseconds
    /// between two events on the device (L2 flushed before, when cold).
    fn run_timed(&mut self) -> Result<f64>;

    /// Runs the prepared network once and returns each block's time inside
    /// the run, in order, read back to back from one clock: their sum is
    /// the run's time, and each block finds its input and weights where
    /// the network leaves them (a CPU table's `--cache network`, built by
    /// the table layer's `in_network`). An engine that cannot read a clock
    /// between blocks without changing the run (a GPU's work is
    /// asynchronous to the host) keeps this default, which refuses.
    fn run_timed_blocks(&mut self) -> Result<Vec<f64>> {
        Err(ProfilerError::Unsupported {
            engine: self.info().engine.clone(),
            what: "timing blocks inside a network".into(),
        })
    }
}

/// Sets the header lines that say what measured a file's numbers: device,
/// driver and libraries, engine, and the settings that change what a
/// latency means. Tables and validation rows share them, so a resume check
/// and `compare` read the same keys everywhere.
pub fn set_measurement_lines<'m>(
    m: &'m mut space::Metadata,
    info: &EngineInfo,
    config: &EngineConfig,
) -> &'m mut space::Metadata {
    use space::meta;
    m.set(meta::DEVICE_NAME, &info.device_name)
        .set(meta::DEVICE_UUID, &info.device_uuid)
        .set(meta::DRIVER, &info.driver)
        .set(meta::CUDA, &info.cuda)
        .set(meta::CUDNN, &info.cudnn)
        .set(meta::ENGINE, &info.engine)
        .set(meta::LAUNCH, config.launch)
        .set(meta::L2, config.l2)
        .set(meta::DTYPE, config.dtype)
        .set(meta::LAYOUT, config.layout)
        .set(meta::BATCH, config.batch);
    for (key, value) in &info.extra {
        m.set(key, value);
    }
    m
}
