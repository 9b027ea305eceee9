//! The CPU engine: each block run as libtorch's CPU kernels run it (what
//! PyTorch CPU inference runs), with batch norm folded into the
//! convolutions and autograd off, timed by the monotonic clock.
//!
//! Layers come from [`space::layers`] and weights and the input from
//! [`profiler::reference`], as in the GPU engine: the same layer list, the
//! same seeded weights drawn in the same order, so [`reference_forward`]
//! there is this engine's numerical reference too.
//!
//! [`reference_forward`]: profiler::reference::reference_forward

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use blocks_tch::{run_blocks, Op};
use profiler::error::{ProfilerError, Result};
use profiler::measure::engine::{
    Dtype, Engine, EngineConfig, EngineInfo, Launch, Layout, Workload, L2,
};
use profiler::reference::{random_params, Params, ReadsOutput, Rng};
use space::layers::{block_input_len, block_layers, Layer};
use space::{meta, BlockSpec};
use tch::{Kind, Tensor};

use crate::system::{cpu_capability, pin_to, vector_floats, Machine};

/// Name and version of this engine, for the fingerprint.
pub const ENGINE_NAME: &str = "profiler-cpu/2 (libtorch CPU kernels, BN folded, no_grad)";

/// libtorch's version, read by build.rs.
pub const LIBTORCH_VERSION: &str = env!("LIBTORCH_VERSION");

/// What the caches hold when a block's timed run starts. Networks
/// (`measure`, `validate`) are always timed back to back, as they run when
/// deployed: the policy only says how a block alone stands in for its place
/// inside one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Nothing is done between runs: the block finds its weights and
    /// activations where its previous run left them.
    Warm,
    /// The core's private caches are evicted before each timed run (a
    /// buffer of twice the largest private cache is read), so the block
    /// finds its weights and input in the last-level cache, as a block
    /// inside a network whose weights fit there does.
    Llc,
    /// The last-level cache is evicted before each timed run (a buffer of
    /// twice its size is read), so weights and input come from memory.
    Cold,
    /// No block is timed alone: each is timed inside networks of the space
    /// run back to back, between two readings of the clock, and finds its
    /// input and weights where the network leaves them
    /// (`profiler::table::in_network`).
    Network,
}

impl Cache {
    pub fn as_str(self) -> &'static str {
        match self {
            Cache::Warm => "warm",
            Cache::Llc => "llc",
            Cache::Cold => "cold",
            Cache::Network => "network",
        }
    }
}

impl fmt::Display for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cache {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "warm" => Ok(Cache::Warm),
            "llc" => Ok(Cache::Llc),
            "cold" => Ok(Cache::Cold),
            "network" => Ok(Cache::Network),
            _ => Err(format!(
                "unknown cache policy '{s}' (expected network, warm, llc or cold)"
            )),
        }
    }
}

/// The clock around each timed run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// The timing thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`): what
    /// the run costs when the core is its alone, even on a machine shared
    /// with other work, whose time slices a wall clock would count. One
    /// thread only: libtorch's other threads are not on this clock.
    Thread,
    /// The monotonic wall clock (`std::time::Instant`).
    Wall,
}

impl Timer {
    /// The default clock: the thread's CPU time where one thread does the
    /// work (docs/cpu.md), else the wall clock.
    pub fn default_for(threads: usize) -> Timer {
        if threads == 1 {
            Timer::Thread
        } else {
            Timer::Wall
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Timer::Thread => "thread",
            Timer::Wall => "wall",
        }
    }
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timer {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "thread" => Ok(Timer::Thread),
            "wall" => Ok(Timer::Wall),
            _ => Err(format!("unknown timer '{s}' (expected thread or wall)")),
        }
    }
}

/// The calling thread's CPU time in milliseconds.
fn thread_cpu_ms() -> f64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 * 1e-6
}

/// Milliseconds on the monotonic clock since the first call.
fn wall_ms() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// How the engine runs: batch, threads, cache policy and clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuSettings {
    pub batch: u32,
    pub threads: usize,
    pub cache: Cache,
    pub timer: Timer,
    pub seed: u64,
}

/// The largest batch the CLI accepts: far beyond CPU deployment, small
/// enough that a typo does not allocate gigabytes.
pub const MAX_BATCH: u32 = 1024;

impl CpuSettings {
    /// The command line's defaults, stated once: batch 1 (the CPU
    /// deployment case), one pinned thread, blocks timed inside networks
    /// (docs/cpu.md says why), the thread's clock.
    pub const DEFAULT: CpuSettings = CpuSettings {
        batch: 1,
        threads: 1,
        cache: Cache::Network,
        timer: Timer::Thread,
        seed: 0,
    };

    /// The profiler's engine settings these stand for: fp32, NCHW, eager
    /// (a CPU runs each op as it comes), `l2` cold when the cache is.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            batch: self.batch,
            dtype: Dtype::Fp32,
            layout: Layout::Nchw,
            launch: Launch::Eager,
            l2: match self.cache {
                Cache::Warm | Cache::Network => L2::Warm,
                Cache::Llc | Cache::Cold => L2::Cold,
            },
            seed: self.seed,
        }
    }
}

fn tensor(v: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).view(shape)
}

/// A layer of `space::layers` with its seeded weights, as `blocks_tch`
/// runs it (the same ops `searcher export` traces).
fn op_of(layer: &Layer, p: &Params) -> Op {
    match *layer {
        Layer::Conv {
            cin,
            cout,
            kernel,
            stride,
            groups,
            act,
            residual,
            ..
        } => {
            let (cin, cout, k, g): (i64, i64, i64, i64) =
                (cin.into(), cout.into(), kernel.into(), groups.into());
            let w = tensor(&p.w, &[cout, cin / g, k, k]);
            Op::conv(w, tensor(&p.b, &[cout]), stride.into(), g, act, residual)
        }
        Layer::Se {
            channels, se, act, ..
        } => Op::Se {
            w1: tensor(&p.w, &[se.into(), channels.into()]),
            b1: tensor(&p.b, &[se.into()]),
            w2: tensor(&p.w2, &[channels.into(), se.into()]),
            b2: tensor(&p.b2, &[channels.into()]),
            act,
        },
        Layer::Pool { .. } => Op::Pool,
        Layer::Fc { cin, cout } => Op::Fc {
            w: tensor(&p.w, &[cout.into(), cin.into()]),
            b: tensor(&p.b, &[cout.into()]),
        },
    }
}

/// What a timed run executes.
enum Prepared {
    Blocks {
        input: Tensor,
        /// Each block's ops.
        blocks: Vec<Vec<Op>>,
        /// Whether the cache policy applies (a table entry), or the run is
        /// a network timed back to back.
        alone: bool,
    },
    /// `n` of the cheapest ops libtorch dispatches, for the boundary probe.
    Empty { x: Tensor, n: u32 },
    /// An exported TorchScript network and its input.
    Model { module: tch::CModule, input: Tensor },
}

/// The fingerprint lines of [`EngineInfo::extra`] that change what a
/// latency means: a CPU table or validation resumes only on the same
/// model, last-level cache, governor, vector unit and allocator, with the
/// same threads, cache policy and clock (the core count and the affinity
/// are informative; libtorch's version is in the engine line).
pub const RESUME_KEYS: [&str; 8] = [
    meta::CPU_MODEL,
    meta::THREADS,
    meta::LLC_BYTES,
    meta::CPU_GOVERNOR,
    meta::CPU_CAPABILITY,
    meta::CPU_MEMORY,
    meta::CACHE,
    meta::TIMER,
];

/// The CPU engine.
pub struct CpuEngine {
    info: EngineInfo,
    config: EngineConfig,
    settings: CpuSettings,
    prepared: Option<Prepared>,
    /// The prepared workload, for errors.
    workload: String,
    /// Read before each timed run of a block under [`Cache::Cold`].
    evict: Vec<u64>,
    _no_grad: tch::NoGradGuard,
}

/// Checks `--threads` against the CPUs this process may use.
pub fn check_threads(threads: usize, allowed: &[usize]) -> Result<()> {
    if threads == 0 || threads > allowed.len() {
        return Err(ProfilerError::Invalid(format!(
            "--threads must be a number in [1, {}] (the CPUs this process may run on: {}), got {threads}",
            allowed.len(),
            allowed
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )));
    }
    Ok(())
}

/// Refuses settings the engine cannot run: more threads than allowed CPUs,
/// a batch out of range, the thread clock over several threads.
fn check_settings(settings: &CpuSettings, machine: &Machine) -> Result<()> {
    check_threads(settings.threads, &machine.allowed)?;
    if !(1..=MAX_BATCH).contains(&settings.batch) {
        return Err(ProfilerError::Invalid(format!(
            "--batch must be a number in [1, {MAX_BATCH}], got {}",
            settings.batch
        )));
    }
    if settings.timer == Timer::Thread && settings.threads > 1 {
        return Err(ProfilerError::Invalid(format!(
            "--timer thread with --threads {}: the thread clock sees one thread; use --timer wall",
            settings.threads
        )));
    }
    Ok(())
}

impl CpuEngine {
    /// Pins the thread, sets libtorch's threads and reads the fingerprint.
    pub fn open(settings: CpuSettings) -> Result<CpuEngine> {
        let machine = Machine::read();
        check_settings(&settings, &machine)?;
        let cpus = &machine.allowed[..settings.threads];
        let affinity = match pin_to(cpus) {
            Ok(()) => format!(
                "pinned to CPU {}",
                cpus.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Err(e) => format!("not pinned ({e})"),
        };
        tch::set_num_threads(settings.threads as i32);
        let llc = machine.llc_bytes;
        let evict_bytes = match settings.cache {
            Cache::Warm | Cache::Network => Some(0),
            Cache::Llc => machine.private_bytes,
            Cache::Cold => llc,
        };
        let Some(evict_bytes) = evict_bytes else {
            return Err(ProfilerError::Invalid(format!(
                "--cache {}: this system does not say its cache sizes (/sys/devices/system/cpu/cpu0/cache); use --cache warm",
                settings.cache
            )));
        };
        // Twice the cache, so a non-inclusive (victim) cache is emptied too.
        let evict = vec![1u64; (2 * evict_bytes / 8) as usize];
        let capability = cpu_capability();
        let info = EngineInfo {
            device_name: machine.model.clone(),
            device_uuid: format!("CPU-{}", machine.hostname),
            driver: format!("linux {}", machine.kernel),
            cuda: "none".into(),
            cudnn: "none".into(),
            engine: format!("{ENGINE_NAME}, libtorch {LIBTORCH_VERSION}"),
            extra: vec![
                (meta::CPU_MODEL.into(), machine.model.clone()),
                (meta::CPU_CORES.into(), machine.cores.to_string()),
                (meta::THREADS.into(), settings.threads.to_string()),
                (meta::CPU_AFFINITY.into(), affinity),
                (
                    meta::LLC_BYTES.into(),
                    llc.map_or("unknown".into(), |b| b.to_string()),
                ),
                (meta::CPU_GOVERNOR.into(), machine.governor.clone()),
                (meta::LIBTORCH.into(), LIBTORCH_VERSION.into()),
                (meta::CPU_CAPABILITY.into(), capability.clone()),
                (meta::CPU_MEMORY.into(), crate::memory::describe()),
                (meta::CACHE.into(), settings.cache.to_string()),
                (meta::TIMER.into(), settings.timer.to_string()),
            ],
            resume_keys: RESUME_KEYS.to_vec(),
            width_align: Some(vector_floats(&capability)),
            // An entry timed inside networks strays 1-2% from build to
            // build, more than a curve departs from its line at aligned
            // widths (docs/benchmarks/cpu.md): the line averages it out.
            curve_fit: space::CurveFit::Affine,
        };
        Ok(CpuEngine {
            info,
            config: settings.engine_config(),
            settings,
            prepared: None,
            workload: String::new(),
            evict,
            _no_grad: tch::no_grad_guard(),
        })
    }

    pub fn settings(&self) -> &CpuSettings {
        &self.settings
    }

    /// The engine's description line, as every command prints it on
    /// stderr when the engine opens: the machine, the pinning, libtorch and
    /// the settings, then the allocator's tunables.
    pub fn describe(&self) -> String {
        format!(
            "cpu: {} ({} cores), {} thread(s) {}, LLC {} bytes, governor {}, libtorch {} {}, batch {}, cache {}, timer {}\nmemory: {}",
            self.info.device_name,
            self.fact(meta::CPU_CORES),
            self.settings.threads,
            self.fact(meta::CPU_AFFINITY),
            self.fact(meta::LLC_BYTES),
            self.fact(meta::CPU_GOVERNOR),
            self.fact(meta::LIBTORCH),
            self.fact(meta::CPU_CAPABILITY),
            self.settings.batch,
            self.settings.cache,
            self.settings.timer,
            self.fact(meta::CPU_MEMORY)
        )
    }

    /// The value of one fingerprint line.
    pub fn fact(&self, key: &str) -> &str {
        self.info
            .extra
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    fn prepare_blocks(&self, specs: &[BlockSpec], alone: bool) -> Result<Prepared> {
        let Some(first) = specs.first() else {
            return Err(ProfilerError::Invalid("a workload without blocks".into()));
        };
        // The reference's order: the input, then each layer's parameters.
        let batch = self.config.batch as usize;
        let mut rng = Rng::new(self.config.seed);
        let s = &first.shape;
        let input = tensor(
            &rng.fill(batch * block_input_len(first), -1.0, 1.0),
            &[
                batch as i64,
                s.in_channels.into(),
                s.resolution.into(),
                s.resolution.into(),
            ],
        );
        let blocks = specs
            .iter()
            .map(|spec| {
                block_layers(spec)
                    .iter()
                    .map(|layer| op_of(layer, &random_params(layer, &mut rng)))
                    .collect()
            })
            .collect();
        Ok(Prepared::Blocks {
            input,
            blocks,
            alone,
        })
    }

    /// Runs the prepared workload once and returns its output.
    fn forward(&self) -> Result<Tensor> {
        match &self.prepared {
            None => Err(ProfilerError::Invalid(
                "run before prepare (an engine bug)".into(),
            )),
            Some(Prepared::Blocks { input, blocks, .. }) => Ok(run_blocks(input, blocks, || {})),
            Some(Prepared::Empty { x, n }) => {
                let mut y = x.shallow_clone();
                for _ in 0..*n {
                    y = &y + 0.0;
                }
                Ok(y)
            }
            Some(Prepared::Model { module, input }) => module
                .forward_ts(&[input])
                .map_err(|e| ProfilerError::Invalid(format!("{}: {e}", self.workload))),
        }
    }

    /// Reads the eviction buffer, one word per cache line, so the caches
    /// hold it instead of the block's data.
    fn evict_caches(&self) {
        let mut sum = 0u64;
        for line in self.evict.iter().step_by(8) {
            sum = sum.wrapping_add(*line);
        }
        std::hint::black_box(sum);
    }
}

impl ReadsOutput for CpuEngine {
    /// The output of one run, for the numerics check.
    fn run_and_read_output(&mut self) -> Result<Vec<f32>> {
        let y = self.forward()?.flatten(0, -1);
        Vec::<f32>::try_from(&y).map_err(|e| ProfilerError::Invalid(format!("libtorch: {e}")))
    }
}

impl Engine for CpuEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn prepare(&mut self, workload: &Workload) -> Result<()> {
        self.prepared = None;
        self.workload = workload.to_string();
        guarded(|| workload.to_string(), || self.prepare_now(workload))
    }

    fn run_timed_blocks(&mut self) -> Result<Vec<f64>> {
        // Taken out and put back: no allocation between timed runs.
        let workload = std::mem::take(&mut self.workload);
        let times = guarded(
            || format!("a timed run of {workload}"),
            || self.run_timed_blocks_now(),
        );
        self.workload = workload;
        times
    }

    fn run_timed(&mut self) -> Result<f64> {
        let workload = std::mem::take(&mut self.workload);
        let ms = guarded(
            || format!("a timed run of {workload}"),
            || self.run_timed_now(),
        );
        self.workload = workload;
        ms
    }
}

/// The engine's work proper, each part called through [`guarded`].
impl CpuEngine {
    fn prepare_now(&mut self, workload: &Workload) -> Result<()> {
        self.prepared = Some(match workload {
            Workload::Block(spec) => self.prepare_blocks(std::slice::from_ref(spec), true)?,
            Workload::Network { blocks, .. } => self.prepare_blocks(blocks, false)?,
            Workload::Empty { kernels } => Prepared::Empty {
                x: Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)),
                n: *kernels,
            },
            Workload::Model {
                path,
                channels,
                resolution,
            } => self.prepare_model(path, *channels, *resolution)?,
        });
        Ok(())
    }

    /// Loads a TorchScript network (`searcher export`) in eval mode, with
    /// a seeded random input of the engine's batch.
    fn prepare_model(&self, path: &Path, channels: u32, resolution: u32) -> Result<Prepared> {
        let mut module = tch::CModule::load(path).map_err(|e| {
            ProfilerError::Invalid(format!(
                "{}: not a TorchScript module libtorch can load: {}",
                path.display(),
                libtorch_message(&e.to_string())
            ))
        })?;
        module.set_eval();
        let shape = [self.config.batch, channels, resolution, resolution];
        let len = shape.iter().map(|&d| d as usize).product();
        let input = tensor(
            &Rng::new(self.config.seed).fill(len, -1.0, 1.0),
            &shape.map(i64::from),
        );
        Ok(Prepared::Model { module, input })
    }

    fn run_timed_blocks_now(&mut self) -> Result<Vec<f64>> {
        let Some(Prepared::Blocks { input, blocks, .. }) = &self.prepared else {
            return Err(ProfilerError::Invalid(
                "blocks timed inside a run need a prepared network (an engine bug)".into(),
            ));
        };
        let now = match self.settings.timer {
            Timer::Thread => thread_cpu_ms,
            Timer::Wall => wall_ms,
        };
        // One clock reading between two blocks: block i's time is the gap
        // between readings i and i + 1, so the times sum to the run's.
        let mut times = Vec::with_capacity(blocks.len());
        let mut last = now();
        drop(run_blocks(input, blocks, || {
            let t = now();
            times.push(t - last);
            last = t;
        }));
        Ok(times)
    }

    fn run_timed_now(&mut self) -> Result<f64> {
        let alone = matches!(self.prepared, Some(Prepared::Blocks { alone: true, .. }));
        if alone && matches!(self.settings.cache, Cache::Llc | Cache::Cold) {
            self.evict_caches();
        }
        let ms = match self.settings.timer {
            Timer::Wall => {
                let start = Instant::now();
                let out = self.forward()?;
                let ms = start.elapsed().as_secs_f64() * 1e3;
                drop(out);
                ms
            }
            Timer::Thread => {
                let start = thread_cpu_ms();
                let out = self.forward()?;
                let ms = thread_cpu_ms() - start;
                drop(out);
                ms
            }
        };
        Ok(ms)
    }
}

/// libtorch's message in a panic of tch (`called Result::unwrap() on an Err
/// value: Torch("[enforce fail at ...] ... DefaultCPUAllocator: can't
/// allocate memory: ...\nframe #0: ...")`): its first line, from the
/// allocator's name where there is one, without the C++ frames.
fn libtorch_message(text: &str) -> &str {
    let inner = text.split_once("Torch(\"").map_or(text, |(_, t)| t);
    let inner = inner
        .split_once("DefaultCPUAllocator: ")
        .map_or(inner, |(_, t)| t);
    let end = [inner.find("\\n"), inner.find('\n'), inner.find("\")")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(inner.len());
    inner[..end].trim()
}

/// Runs `f`, turning a panic into the engine's error. tch's calls panic on
/// any libtorch error (an allocation that fails, above all), so one
/// workload's work is caught here: the user sees one `error:` line naming
/// `what` and libtorch's message, not a panic with C++ frames. The panic
/// hook is silenced meanwhile (this engine runs on one thread).
fn guarded<T>(what: impl FnOnce() -> String, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.unwrap_or_else(|payload| {
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("libtorch failed");
        let first = libtorch_message(text);
        let memory = ["alloc", "out of memory", "not enough memory"]
            .iter()
            .any(|m| first.to_lowercase().contains(m));
        let what = what();
        Err(ProfilerError::Invalid(if memory {
            format!("out of memory in {what}: {first} (a smaller --batch, or fewer other programs, may fit)")
        } else {
            format!("libtorch failed in {what}: {first}")
        }))
    })
}
