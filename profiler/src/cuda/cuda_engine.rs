//! [`CudaEngine`]: runs blocks and networks on one CUDA device and times
//! them with CUDA events, replaying a captured CUDA graph by default.
//!
//! Per layer: convolutions through cuDNN with the algorithm chosen by timing
//! every candidate once per shape (like `cudnn.benchmark`, not cudarc's
//! heuristic `pick_algorithm`), each candidate run the way the table runs it
//! (captured and replayed as a graph under `--launch graph`, so one that
//! cannot be captured is never chosen; a later candidate wins only when
//! over 1% faster). The candidates: each cuDNN algorithm (FFT and Winograd
//! left out for depthwise and 1x1 convolutions) followed by the engine's
//! bias/activation/residual kernel; the same fused into one cuDNN call where
//! cuDNN can fuse the activation (ReLU with any algorithm, or none, with or
//! without the residual, with `IMPLICIT_PRECOMP_GEMM`); cuBLAS for 1x1 convolutions (after SE also with the
//! gate folded into per-image weights, which saves SE's pass scaling the
//! tensor: every other candidate after SE is timed with that pass); for
//! the depthwise convolution two NVRTC kernels (bias and activation fused),
//! one of which also takes over the expansion's bias and activation and
//! SE's pool (see `Fuse`: every candidate is timed with that work, done
//! its own way); and for the stem (a dense 3x3) the NVRTC direct
//! convolution, so that no block kind depends on cuDNN alone. The head's
//! FC layer runs as the 1x1 convolution on a 1x1 map it is (cuDNN, cuBLAS
//! as one product over the batch, or the engine's `fc` kernel). SE and pooling are NVRTC kernels. Nothing is fused across
//! blocks, so that a network's steps are its blocks' steps.
//! `PROFILER_LOG_CHOICES=1` prints every choice with its candidates' times
//! on stderr.
//!
//! Here: opening the engine, lowering a workload to steps
//! (`build_steps`), and timing it. In `choice`: the candidates and how one
//! is chosen. In `steps`: the launches and how a convolution lowers to
//! them.
//!
//! Every launch takes raw device pointers of buffers the prepared workload
//! owns, with cudarc's event tracking off (docs/gpu-facts.md pitfall 2), so that the
//! same launches can be captured into a graph and replayed.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::sys::{self, CUdeviceptr};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr, DriverError,
    LaunchConfig, PushKernelArg,
};
use space::layers::{block_input_len, block_layers, Layer};

use super::cublas::{Blas, PointwiseShape};
use super::cudnn::{Conv, ConvIo, ConvShape, FusedAct, Handle, ALGORITHMS};
use super::device::{self, guard};
use super::error::InBlock;
use super::kernels::{self, act_code, grid_for, grid_for_warps, THREADS};
use crate::error::{ProfilerError, Result};
use crate::measure::engine::{
    Dtype, Engine, EngineConfig, EngineInfo, Launch, Layout, Workload, L2,
};
use crate::reference::check::ReadsOutput;
use crate::reference::weights::{random_params, Params, Rng};

mod choice;
mod spin;
mod steps;

pub use choice::ConvImpl;
use choice::{candidates, Among, ChoiceKey, ConvBufs, Fuse, Pending};
use spin::Spin;
use steps::Step;

/// The engine's name and version in table headers; bump the version when a
/// change to the engine changes what it measures. `tf32`: cuDNN's convolutions
/// may use TF32 tensor cores ([`super::cudnn::MATH`], as PyTorch by default).
pub const ENGINE_NAME: &str = "cudarc-engine/6 (cudnn-default-math-tf32)";

/// Appended to [`ENGINE_NAME`] in the fingerprint when cuBLAS could not be
/// loaded: such an engine has one candidate fewer for 1x1 convolutions, so
/// its tables must not be mixed with those of a complete one.
const WITHOUT_CUBLAS: &str = " without cublas";

/// How long the GPU spins once when the engine opens (see `build`).
const SETTLE_NS: i64 = 300_000_000;

/// The spin's bound in SM clock cycles per nanosecond, in case
/// `%globaltimer` does not advance: eight cycles per nanosecond waits four
/// times as long at the H100's 1980 MHz, and is never reached while the
/// timer works.
const SPIN_CYCLES_PER_NS: i64 = 8;

/// The capture mode of every graph: thread-local, so that a call this
/// thread makes that is unsafe while capturing (a lazy `cudaMalloc` inside
/// cuDNN or cuBLAS) fails and invalidates the capture. The candidate that
/// made it then fails its capture cleanly and is skipped (`try_choose`).
/// Relaxed mode would let that memory sit outside the graph, and a later
/// free would leave replays using freed memory: a sticky error that ends
/// the context for the rest of the run (issue 17). Relaxed mode gains
/// nothing here, since every captured step has run eagerly first, so its
/// first-use costs are paid outside the capture. Thread-local rather than
/// global: the NVML monitor's thread is none of the capture's business.
const CAPTURE_MODE: sys::CUstreamCaptureMode =
    sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;

/// The largest cuDNN workspace a candidate algorithm may ask for; FFT
/// algorithms can want gigabytes, which would make the table depend on free
/// memory.
const WORKSPACE_LIMIT: usize = 512 << 20;

/// The byte the numerics check fills an output with before the run that
/// must overwrite it: every float then reads 1.2e30, far outside any output.
pub(crate) const POISON_BYTE: u8 = 0x71;

/// A prepared workload: its launches, the buffers they point into, and
/// its captured graph. Field order is drop order: the graph goes before
/// the buffers it uses.
struct Prepared {
    graph: Option<CudaGraph>,
    steps: Vec<Step>,
    /// Owns every allocation the steps point to.
    _buffers: Vec<CudaSlice<f32>>,
    _workspaces: Vec<CudaSlice<u8>>,
    /// The final output, for numerics checks.
    output: (CUdeviceptr, usize),
    name: String,
}

/// What `--l2 cold` reads before each timed run: a buffer twice the L2's
/// size, so that nothing of the workload stays cached, and the one float
/// the `l2_flush` kernel sums it into. Read rather than written: a write
/// (as the zero-fill this replaces) leaves about one L2 of dirty lines
/// whose write-back lands inside the timed run (issue 17).
struct Flush {
    buffer: CudaSlice<u8>,
    sink: CudaSlice<f32>,
    /// The kernel's grid: four blocks per SM, enough to keep the memory
    /// busy, with one atomic add per warp.
    blocks: u32,
}

/// A workload's steps as `build_steps` lays them out, block after block:
/// the allocations they point to and the output so far.
struct Built {
    rng: Rng,
    /// The last layer's output, the next one's input.
    current: CUdeviceptr,
    current_len: usize,
    buffers: Vec<CudaSlice<f32>>,
    workspaces: Vec<CudaSlice<u8>>,
    steps: Vec<Step>,
}

/// Handed from one layer to the next inside a block (never across blocks:
/// each block's steps stay its own, so that a network costs what its table
/// entries sum to).
#[derive(Default)]
struct Handed {
    /// The expansion waiting for the depthwise convolution's choice.
    pending: Option<Pending>,
    /// The pool the depthwise convolution computed for SE.
    pooled_by_conv: Option<CUdeviceptr>,
    /// SE's gate, left for the convolution after it to apply (see
    /// `Fuse::scale`).
    scaled_by: Option<CUdeviceptr>,
}

/// One layer's place in its block: its parameters, its output, the block's
/// input (for a residual) and the layer after it.
#[derive(Clone, Copy)]
struct LayerIo<'a> {
    p: &'a Params,
    y: CUdeviceptr,
    block_input: CUdeviceptr,
    next: Option<&'a Layer>,
    block: &'a str,
}

/// Times workloads on one device. Field order is drop order: everything on
/// the stream goes before the stream, and the stream before the context.
pub struct CudaEngine {
    prepared: Option<Prepared>,
    /// Each choice and the time its winner took.
    choices: HashMap<ChoiceKey, (ConvImpl, f64)>,
    /// The keys for which no candidate ran.
    unchosen: std::collections::HashSet<ChoiceKey>,
    /// Tests only: run this wherever it applies instead of the fastest, so
    /// that every candidate's numbers get checked, not only the winners'.
    prefer: Option<ConvImpl>,
    /// `PROFILER_LOG_CHOICES` set: each choice and its candidates' times
    /// go to stderr.
    log_choices: bool,
    cudnn: Handle,
    /// `None` where cuBLAS cannot be loaded (the engine's name says so).
    blas: Option<Blas>,
    functions: HashMap<&'static str, CudaFunction>,
    /// The most dynamic shared memory `dwconv_plane` may use (the GPU's
    /// opt-in limit, set on the function at setup).
    plane_shared_limit: usize,
    start: CudaEvent,
    end: CudaEvent,
    /// Read before each timed run when the L2 must be cold (see
    /// [`Flush`]).
    flush: Option<Flush>,
    stream: Arc<CudaStream>,
    /// Held so that the context outlives everything above.
    _ctx: Arc<CudaContext>,
    info: EngineInfo,
    config: EngineConfig,
    /// The spin before graph replays, and how many timed runs of the
    /// prepared workload found the start event already passed.
    spin: Spin,
    late_runs: u64,
    runs: u64,
}

const SETUP: &str = "engine setup";

fn unsupported(what: String) -> ProfilerError {
    ProfilerError::Unsupported {
        engine: ENGINE_NAME.into(),
        what,
    }
}

impl CudaEngine {
    /// Opens CUDA device `index` for `config`: context, stream, events,
    /// cuDNN handle, and the NVRTC kernels compiled for this GPU.
    pub fn open(index: usize, config: EngineConfig) -> Result<Self> {
        if config.dtype != Dtype::Fp32 {
            return Err(unsupported(format!("dtype {}", config.dtype)));
        }
        if config.layout != Layout::Nchw {
            return Err(unsupported(format!("layout {}", config.layout)));
        }
        let ctx = device::open(index)?;
        let info = device::describe(&ctx, ENGINE_NAME)?;
        guard(SETUP, || Self::build(ctx, info, config))
    }

    fn build(ctx: Arc<CudaContext>, mut info: EngineInfo, config: EngineConfig) -> Result<Self> {
        // `device::open` turned cudarc's event tracking off when it made the
        // process's one context (docs/gpu-facts.md pitfall 2); the engine orders all
        // its work on its one stream itself.
        debug_assert!(!ctx.is_event_tracking());
        let stream = ctx.new_stream().in_block(SETUP)?;
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = ctx.new_event(timing).in_block(SETUP)?;
        let end = ctx.new_event(timing).in_block(SETUP)?;

        // Safety: only tries to dlopen libcudnn.
        if !unsafe { cudarc::cudnn::sys::is_culib_present() } {
            return Err(ProfilerError::Cudnn {
                block: SETUP.into(),
                msg: "libcudnn cannot be loaded".into(),
            });
        }
        let cudnn = Handle::new(stream.cu_stream()).in_block(SETUP)?;

        let blas = Self::open_blas(&stream);
        if blas.is_none() {
            info.engine.push_str(WITHOUT_CUBLAS);
        }

        let (functions, plane_shared_limit) = Self::load_kernels(&ctx)?;

        // Settle: keep every SM busy for a moment before anything is timed,
        // so that the clocks leave their idle state (345 MHz on the H100)
        // here rather than during the first entry's short warm-up. Four
        // one-thread blocks per SM all fit at once, so this takes SETTLE_NS.
        let sms = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .in_block(SETUP)?;
        let blocks = 4 * u32::try_from(sms).unwrap_or(1).max(1);
        launch_spin(&stream, &functions["spin"], SETTLE_NS, blocks).in_block(SETUP)?;
        stream.synchronize().in_block(SETUP)?;

        let flush = Self::open_flush(&ctx, &stream, config.l2, blocks)?;
        Ok(CudaEngine {
            prepared: None,
            choices: HashMap::new(),
            unchosen: Default::default(),
            prefer: None,
            log_choices: std::env::var_os("PROFILER_LOG_CHOICES").is_some(),
            cudnn,
            blas,
            functions,
            plane_shared_limit,
            start,
            end,
            flush,
            stream,
            _ctx: ctx,
            info,
            config,
            spin: Spin::new(),
            late_runs: 0,
            runs: 0,
        })
    }

    /// The engine's kernels compiled for this GPU and loaded by name, and
    /// how much shared memory `dwconv_plane` may use.
    fn load_kernels(
        ctx: &Arc<CudaContext>,
    ) -> Result<(HashMap<&'static str, CudaFunction>, usize)> {
        let (major, minor) = ctx.compute_capability().in_block(SETUP)?;
        let ptx = kernels::compile(kernels::SOURCE, major, minor)?;
        let module = ctx.load_module(ptx).in_block(SETUP)?;
        let mut functions = HashMap::new();
        for name in kernels::NAMES {
            functions.insert(name, module.load_function(name).in_block(SETUP)?);
        }
        // `dwconv_plane` stages a whole plane: 54 KB for 112x112 with k5,
        // beyond the 48 KiB any launch may use without asking.
        let optin = ctx
            .attribute(
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .in_block(SETUP)?;
        // Where the driver refuses, the kernel keeps the 48 KiB every launch
        // may use, and larger planes are left to the other candidates.
        let plane_shared_limit = match functions["dwconv_plane"].set_attribute(
            sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            optin,
        ) {
            Ok(()) => usize::try_from(optin).unwrap_or(0),
            Err(e) => {
                eprintln!(
                    "warning: dwconv_plane cannot use {optin} bytes of shared memory ({}); planes are limited to 48 KiB",
                    crate::cuda::error::driver_msg(&e)
                );
                48 << 10
            }
        };
        Ok((functions, plane_shared_limit))
    }

    /// What `--l2 cold` reads before each timed run (see [`Flush`]);
    /// nothing under `--l2 warm`. `blocks` is the flush kernel's grid.
    fn open_flush(
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        l2: L2,
        blocks: u32,
    ) -> Result<Option<Flush>> {
        Ok(match l2 {
            L2::Warm => None,
            L2::Cold => {
                let l2 = ctx
                    .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
                    .in_block(SETUP)?;
                // A whole number of float4, which the kernel reads.
                let bytes =
                    (2 * usize::try_from(l2).unwrap_or(0).max(1 << 20)).next_multiple_of(16);
                // Zeroed once here: its write-back is over before anything
                // is timed, and later flushes only read it.
                let buffer = stream.alloc_zeros::<u8>(bytes).in_block(SETUP)?;
                let sink = stream.alloc_zeros::<f32>(1).in_block(SETUP)?;
                stream.synchronize().in_block(SETUP)?;
                Some(Flush {
                    buffer,
                    sink,
                    blocks,
                })
            }
        })
    }

    /// cuBLAS with its workspace on `stream`, or `None` with a warning on
    /// stderr where the library cannot be loaded or initialised: the engine
    /// then times the other candidates only and its name says so.
    fn open_blas(stream: &Arc<CudaStream>) -> Option<Blas> {
        // Safety: only tries to dlopen libcublas.
        if !unsafe { cudarc::cublas::sys::is_culib_present() } {
            eprintln!(
                "warning: libcublas cannot be loaded; 1x1 convolutions are timed with cuDNN only"
            );
            return None;
        }
        Blas::new(stream)
            .inspect_err(|e| {
                eprintln!(
                    "warning: cuBLAS does not initialise ({e}); 1x1 convolutions are timed with cuDNN only"
                )
            })
            .ok()
    }

    fn ptr<T>(&self, slice: &CudaSlice<T>) -> CUdeviceptr {
        // Event tracking is off, so the returned guard does nothing.
        let (p, _guard) = slice.device_ptr(&self.stream);
        p
    }

    fn upload(&self, block: &str, host: &[f32]) -> Result<CudaSlice<f32>> {
        self.stream.clone_htod(host).in_block(block)
    }

    fn zeros(&self, block: &str, n: usize) -> Result<CudaSlice<f32>> {
        self.stream.alloc_zeros::<f32>(n.max(1)).in_block(block)
    }

    fn function(&self, name: &'static str) -> &CudaFunction {
        &self.functions[name]
    }

    /// A convolution's buffers: its weights and bias from `p`, uploaded and
    /// kept in `buffers`, with its input `x`, output `y` and the block's
    /// input for a residual.
    fn conv_bufs(
        &self,
        block: &str,
        p: &Params,
        x: CUdeviceptr,
        y: CUdeviceptr,
        residual: CUdeviceptr,
        buffers: &mut Vec<CudaSlice<f32>>,
    ) -> Result<ConvBufs> {
        let w = self.upload(block, &p.w)?;
        let b = self.upload(block, &p.b)?;
        let bufs = ConvBufs {
            x,
            w: self.ptr(&w),
            b: self.ptr(&b),
            y,
            residual,
        };
        buffers.extend([w, b]);
        Ok(bufs)
    }

    fn build_steps(&mut self, workload: &Workload) -> Result<Prepared> {
        let name = workload.to_string();
        let block = name.as_str();
        if let Workload::Empty { kernels } = *workload {
            if kernels == 0 {
                return Err(unsupported("a run of no kernels".into()));
            }
            return Ok(Prepared {
                graph: None,
                steps: (0..kernels).map(|_| Step::Empty).collect(),
                _buffers: Vec::new(),
                _workspaces: Vec::new(),
                output: (0, 0),
                name,
            });
        }
        let specs = workload.blocks();
        let batch = self.config.batch as usize;
        let mut rng = Rng::new(self.config.seed);
        let first = specs
            .first()
            .ok_or_else(|| unsupported("an empty network".into()))?;
        let input = self.upload(block, &rng.fill(batch * block_input_len(first), -1.0, 1.0))?;
        let mut built = Built {
            rng,
            current: self.ptr(&input),
            current_len: batch * block_input_len(first),
            buffers: vec![input],
            workspaces: Vec::new(),
            steps: Vec::new(),
        };
        for spec in specs {
            self.block_steps(spec, &mut built, block)?;
        }
        Ok(Prepared {
            graph: None,
            steps: built.steps,
            _buffers: built.buffers,
            _workspaces: built.workspaces,
            output: (built.current, built.current_len),
            name,
        })
    }

    /// Appends the steps of one block of the workload to `built`.
    fn block_steps(
        &mut self,
        spec: &space::BlockSpec,
        built: &mut Built,
        block: &str,
    ) -> Result<()> {
        let batch = self.config.batch as usize;
        if batch * block_input_len(spec) != built.current_len {
            return Err(unsupported(format!(
                "{spec} after a block with {} outputs",
                built.current_len
            )));
        }
        let block_input = built.current;
        let layers = block_layers(spec);
        let mut handed = Handed::default();
        for (i, &layer) in layers.iter().enumerate() {
            let next = layers.get(i + 1);
            let p = random_params(&layer, &mut built.rng);
            // Every layer but SE (in place) writes a buffer of its own.
            let y = match layer {
                Layer::Se { .. } => built.current,
                _ => {
                    let out = self.zeros(block, batch * layer.output_len())?;
                    let y = self.ptr(&out);
                    built.buffers.push(out);
                    y
                }
            };
            let io = LayerIo {
                p: &p,
                y,
                block_input,
                next,
                block,
            };
            match layer {
                Layer::Conv { .. } => self.conv_layer(&layer, io, built, &mut handed)?,
                Layer::Se { .. } => self.se_layer(&layer, io, built, &mut handed)?,
                Layer::Pool { channels, res } => {
                    built.steps.push(Step::Pool {
                        x: built.current,
                        out: y,
                        nc: (batch as u32 * channels) as i32,
                        hw: (res * res) as i32,
                    });
                    built.current = y;
                }
                Layer::Fc { .. } => {
                    // Run as the 1x1 convolution on a 1x1 map it is, so
                    // that cuDNN and cuBLAS compete with the engine's
                    // own kernel (`ConvImpl::Fc`).
                    let conv = layer.as_convolution();
                    let bufs = self.conv_bufs(
                        block,
                        &p,
                        built.current,
                        y,
                        block_input,
                        &mut built.buffers,
                    )?;
                    let fuse = Fuse::default();
                    let (how, _) = self.choose(&conv, fuse, Among::All, bufs, block)?;
                    built.steps.extend(self.conv_steps(
                        how,
                        &conv,
                        fuse,
                        bufs,
                        &mut built.workspaces,
                        block,
                    )?);
                    built.current = y;
                }
            }
            built.current_len = match layer {
                Layer::Se { .. } => built.current_len,
                _ => batch * layer.output_len(),
            };
        }
        if handed.pending.is_some() || handed.scaled_by.is_some() {
            return Err(unsupported(format!(
                "{spec}: an expansion with no depthwise convolution after it, or SE with no convolution"
            )));
        }
        Ok(())
    }

    /// A convolution's steps, or, for an expansion before a depthwise
    /// convolution, its plans left pending for that one's choice.
    fn conv_layer(
        &mut self,
        layer: &Layer,
        io: LayerIo,
        built: &mut Built,
        handed: &mut Handed,
    ) -> Result<()> {
        let LayerIo {
            p,
            y,
            block_input,
            next,
            block,
        } = io;
        let Layer::Conv {
            cout,
            act,
            residual: has_res,
            ..
        } = *layer
        else {
            unreachable!("conv_layer is called for convolutions only")
        };
        let batch = self.config.batch as usize;
        let bufs = self.conv_bufs(block, p, built.current, y, block_input, &mut built.buffers)?;
        // An expansion before a depthwise convolution: its steps wait for
        // that one's choice (see `Pending`).
        if next.is_some_and(Layer::is_depthwise)
            && !layer.is_depthwise()
            && act.is_some()
            && !has_res
        {
            handed.pending = Some(self.pending_expansion(layer, bufs, block)?);
            built.current = y;
            return Ok(());
        }
        let pool_into = if layer.is_depthwise() && matches!(next, Some(Layer::Se { .. })) {
            let pooled = self.zeros(block, batch * cout as usize)?;
            let pp = self.ptr(&pooled);
            built.buffers.push(pooled);
            handed.pooled_by_conv = Some(pp);
            Some(pp)
        } else {
            None
        };
        let alone = Fuse {
            pool_into,
            scale: handed.scaled_by.take(),
            ..Fuse::default()
        };
        let (expansion, fuse) = match handed.pending.take() {
            None => (None, alone),
            Some(pend) => {
                let (how, efuse, fuse) = self.plan_pair(&pend, layer, alone, bufs, block)?;
                (Some((pend, how, efuse)), fuse)
            }
        };
        if let Some((pend, how, efuse)) = expansion {
            built.steps.extend(self.conv_steps(
                how,
                &pend.layer,
                efuse,
                pend.bufs,
                &mut built.workspaces,
                block,
            )?);
        }
        let (how, _) = self.choose(layer, fuse, Among::All, bufs, block)?;
        built.steps.extend(self.conv_steps(
            how,
            layer,
            fuse,
            bufs,
            &mut built.workspaces,
            block,
        )?);
        built.current = y;
        Ok(())
    }

    /// An expansion's two plans, for the depthwise convolution after it to
    /// choose between: plain with its bias and activation handed on, or
    /// fused with its ReLU.
    fn pending_expansion(&mut self, layer: &Layer, bufs: ConvBufs, block: &str) -> Result<Pending> {
        let Layer::Conv { act, .. } = *layer else {
            unreachable!("pending_expansion is called for convolutions only")
        };
        let hand_off = Fuse {
            hand_off: true,
            ..Fuse::default()
        };
        let plain = self.try_choose(layer, hand_off, Among::Plain, bufs, block)?;
        let fused = if candidates(layer).iter().any(|c| Among::Fused.admits(c)) {
            self.choose_if_any(layer, Fuse::default(), Among::Fused, bufs, block)?
        } else {
            None
        };
        // Either plan may be missing, not both.
        let plain = match (plain, fused) {
            (Ok(p), _) => Some(p),
            (Err(_), Some(_)) => None,
            (Err(e), None) => return Err(e),
        };
        Ok(Pending {
            layer: *layer,
            bufs,
            act: act_code(act),
            plain,
            fused,
        })
    }

    /// SE's steps: the pool (unless the convolution before computed it),
    /// the two layers to the gate, and the scale (unless the projection
    /// after takes the gate over).
    fn se_layer(
        &mut self,
        layer: &Layer,
        io: LayerIo,
        built: &mut Built,
        handed: &mut Handed,
    ) -> Result<()> {
        let LayerIo {
            p, y, next, block, ..
        } = io;
        let Layer::Se {
            channels,
            se,
            res,
            act,
        } = *layer
        else {
            unreachable!("se_layer is called for SE only")
        };
        let batch = self.config.batch as usize;
        // SE_FC writes the gate in every run; until the first, the choice
        // after SE times candidates on it. It starts at 1, so that their
        // in-place scale of the input, repeated over every timed run of
        // every candidate with nothing rewriting the input in between,
        // leaves it as it is: 0 would zero it at once, 0.5 halve it into
        // denormals within a few candidates, and those that do not scale in
        // place (GemmScaled) would be timed on other data.
        let gate = self.upload(block, &vec![1.0; batch * channels as usize])?;
        let params = [&p.w, &p.b, &p.w2, &p.b2]
            .into_iter()
            .map(|v| self.upload(block, v))
            .collect::<Result<Vec<_>>>()?;
        let ptrs: Vec<CUdeviceptr> = params.iter().map(|s| self.ptr(s)).collect();
        let gate_p = self.ptr(&gate);
        built.buffers.push(gate);
        built.buffers.extend(params);
        let hw = (res * res) as i32;
        let nc = (batch as u32 * channels) as i32;
        let pooled_p = match handed.pooled_by_conv.take() {
            Some(pp) => pp,
            None => {
                let pooled = self.zeros(block, batch * channels as usize)?;
                let pp = self.ptr(&pooled);
                built.buffers.push(pooled);
                built.steps.push(Step::Pool {
                    x: built.current,
                    out: pp,
                    nc,
                    hw,
                });
                pp
            }
        };
        built.steps.push(Step::SeFc {
            pooled: pooled_p,
            w1: ptrs[0],
            b1: ptrs[1],
            w2: ptrs[2],
            b2: ptrs[3],
            gate: gate_p,
            batch: batch as u32,
            channels: channels as i32,
            se: se as i32,
            act: act_code(Some(act)),
        });
        // The projection after SE takes the gate over: a linear 1x1
        // convolution, never an expansion (with an activation), which may
        // wait in `pending` and would not apply it.
        let projection = matches!(
            next,
            Some(Layer::Conv {
                kernel: 1,
                act: None,
                ..
            })
        );
        if projection {
            handed.scaled_by = Some(gate_p);
        } else {
            built.steps.push(Step::Scale {
                y,
                gate: gate_p,
                hw,
                total: i64::from(nc) * i64::from(hw),
            });
        }
        Ok(())
    }
}

impl ReadsOutput for CudaEngine {
    /// Runs the prepared workload once (its graph, when captured) and copies
    /// its output to the host, for the numerics check against the reference
    /// (`crate::reference::check`).
    fn run_and_read_output(&mut self) -> Result<Vec<f32>> {
        let prepared = self
            .prepared
            .as_ref()
            .ok_or_else(|| unsupported("reading an output before prepare".into()))?;
        let block = prepared.name.clone();
        let (ptr, len) = prepared.output;
        if len == 0 {
            return Err(unsupported(format!(
                "reading the output of {block}, which has none"
            )));
        }
        // The output is poisoned first, so that a graph that does not write
        // it fails the comparison instead of passing on what the eager run in
        // `prepare` left there. The poison is a huge finite float (bytes 0x71:
        // 1.2e30), not NaN: a fused cuDNN convolution without a residual is
        // given its own output as `z` scaled by zero, and 0 × NaN would be
        // a NaN the engine never produces when timing.
        // Safety: `ptr` is a live allocation of `len` floats of the prepared
        // workload; the memset is ordered on the stream before the run.
        unsafe {
            cudarc::driver::result::memset_d8_async(
                ptr,
                POISON_BYTE,
                len * std::mem::size_of::<f32>(),
                self.stream.cu_stream(),
            )
        }
        .in_block(&block)?;
        match &prepared.graph {
            Some(graph) => graph.launch().in_block(&block)?,
            None => self.launch_all(&prepared.steps, &block)?,
        }
        let mut host = vec![0.0f32; len];
        // Safety: `ptr` is a live allocation of `len` floats of the prepared
        // workload; the stream is synchronized before and after the copy.
        unsafe {
            self.stream.synchronize().in_block(&block)?;
            cudarc::driver::result::memcpy_dtoh_sync(&mut host, ptr).in_block(&block)?;
        }
        Ok(host)
    }
}

impl Engine for CudaEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn config(&self) -> &EngineConfig {
        &self.config
    }

    fn prepare(&mut self, workload: &Workload) -> Result<()> {
        let block = workload.to_string();
        self.report_late_runs();
        // Free the previous workload first (after its work is done).
        self.stream.synchronize().in_block(&block)?;
        self.prepared = None;
        // Under `guard`: cudarc panics on a driver symbol it cannot load.
        let prepared = guard(&block, || {
            let mut prepared = self.build_steps(workload)?;
            // One eager run: first-use costs and errors surface here, not
            // in the capture.
            self.launch_all(&prepared.steps, &block)?;
            self.stream.synchronize().in_block(&block)?;
            if self.config.launch == Launch::Graph {
                prepared.graph = Some(self.capture(&prepared.steps, &block)?);
            }
            Ok(prepared)
        })?;
        self.prepared = Some(prepared);
        Ok(())
    }

    fn run_timed(&mut self) -> Result<f64> {
        let block = self
            .prepared
            .as_ref()
            .map_or_else(String::new, |p| p.name.clone());
        guard(&block, || self.timed_run())
    }
}

impl CudaEngine {
    /// One timed run of the prepared workload (see [`Engine::run_timed`]).
    fn timed_run(&mut self) -> Result<f64> {
        let prepared = self
            .prepared
            .as_ref()
            .ok_or_else(|| unsupported("timing before prepare".into()))?;
        let block = prepared.name.as_str();
        self.flush_l2().in_block(block)?;
        if prepared.graph.is_some() {
            // Eager runs keep the CPU's launch cost in the time: that is
            // what they are for. Graph runs should not include the CPU's
            // latency in submitting the graph.
            launch_spin(&self.stream, self.function("spin"), self.spin.ns(), 1).in_block(block)?;
        }
        self.start.record(&self.stream).in_block(block)?;
        match &prepared.graph {
            Some(graph) => graph.launch().in_block(block)?,
            None => self.launch_all(&prepared.steps, block)?,
        }
        self.end.record(&self.stream).in_block(block)?;
        // Graph runs: the start event must still be pending now that the
        // CPU has enqueued everything; if it is not, the spin was too short.
        let late = prepared.graph.is_some() && self.start.try_is_complete().in_block(block)?;
        self.end.synchronize().in_block(block)?;
        let ms = self.start.elapsed_ms(&self.end).in_block(block)?;
        self.runs += 1;
        if prepared.graph.is_some() {
            self.spin.after_run(late);
        }
        if late {
            self.late_runs += 1;
        }
        Ok(f64::from(ms))
    }
}

/// Keeps `blocks` one-thread blocks of the GPU busy for `ns` nanoseconds
/// (the `spin` kernel), bounded in cycles in case the timer stands still.
fn launch_spin(
    stream: &CudaStream,
    spin: &CudaFunction,
    ns: i64,
    blocks: u32,
) -> std::result::Result<(), DriverError> {
    let max_cycles = ns * SPIN_CYCLES_PER_NS;
    // Safety: `spin` takes two i64 and touches no memory.
    unsafe {
        stream
            .launch_builder(spin)
            .arg(&ns)
            .arg(&max_cycles)
            .launch(LaunchConfig {
                grid_dim: (blocks, 1, 1),
                block_dim: (1, 1, 1),
                shared_mem_bytes: 0,
            })
    }
    .map(|_| ())
}

impl CudaEngine {
    /// Under `--l2 cold`, fills the L2 with clean lines of the flush
    /// buffer (twice its size, read by `l2_flush`) so that the next run
    /// finds none of its data there and nothing dirty to write back;
    /// nothing under `--l2 warm`.
    fn flush_l2(&self) -> std::result::Result<(), DriverError> {
        let Some(flush) = &self.flush else {
            return Ok(());
        };
        let n4 = (flush.buffer.len() / 16) as i64;
        // Safety: `l2_flush` reads `n4` float4 of the live flush buffer
        // (its length is a multiple of 16 bytes) and adds to the one float
        // of the live sink; the argument types match the kernel.
        unsafe {
            self.stream
                .launch_builder(self.function("l2_flush"))
                .arg(&self.ptr(&flush.buffer))
                .arg(&n4)
                .arg(&self.ptr(&flush.sink))
                .launch(LaunchConfig {
                    grid_dim: (flush.blocks, 1, 1),
                    block_dim: (THREADS, 1, 1),
                    shared_mem_bytes: 0,
                })
        }
        .map(drop)
    }

    /// Says on stderr how many timed runs of the workload just finished
    /// started late (see [`spin`]), and starts counting afresh.
    fn report_late_runs(&mut self) {
        if self.late_runs > 0 {
            let name = self.prepared.as_ref().map_or("", |p| p.name.as_str());
            eprintln!(
                "warning: {name}: {} of {} timed runs found the GPU already past the spin (the CPU was slow to enqueue); the spin is now {} us",
                self.late_runs,
                self.runs,
                self.spin.ns() / 1000
            );
        }
        self.late_runs = 0;
        self.runs = 0;
    }
}

impl Drop for CudaEngine {
    fn drop(&mut self) {
        self.report_late_runs();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphs_are_captured_in_thread_local_mode_so_an_allocation_fails_the_capture() {
        use sys::CUstreamCaptureMode as M;
        assert_eq!(CAPTURE_MODE, M::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        assert_ne!(CAPTURE_MODE, M::CU_STREAM_CAPTURE_MODE_RELAXED);
    }

    /// On the GPU, what the capture mode is for: an allocation while
    /// capturing (as a library's lazy `cudaMalloc`) fails, the capture ends
    /// with an error and no graph, the stream leaves capture mode, and the
    /// engine goes on to prepare and time a block. Relaxed mode would let
    /// the allocation succeed.
    #[test]
    #[ignore = "needs a CUDA GPU; scripts/gpu-check.sh runs it with --ignored"]
    fn gpu_a_capture_that_allocates_fails_cleanly_and_the_engine_goes_on() {
        let config = EngineConfig {
            batch: 2,
            ..EngineConfig::default()
        };
        let mut engine = CudaEngine::open(0, config).unwrap_or_else(|e| panic!("{e}"));
        engine.stream.begin_capture(CAPTURE_MODE).unwrap();
        // Safety: a plain allocation, freed at once if it succeeds.
        let alloc = unsafe { cudarc::driver::result::malloc_sync(1 << 20) };
        let ended = engine.stream.end_capture(sys::CUgraphInstantiate_flags(0));
        if let Ok(p) = alloc {
            // Safety: `p` was allocated just above and is not used.
            unsafe { cudarc::driver::result::free_sync(p) }.unwrap();
        }
        let status = engine.stream.capture_status().unwrap();
        eprintln!(
            "allocation while capturing: {:?}; end of capture: {:?}; status after: {status:?}",
            alloc.as_ref().map_err(crate::cuda::error::driver_msg),
            ended
                .as_ref()
                .map(|g| g.is_some())
                .map_err(crate::cuda::error::driver_msg)
        );
        assert!(alloc.is_err(), "the allocation succeeded while capturing");
        assert!(!matches!(ended, Ok(Some(_))), "a graph came out");
        assert_eq!(
            status,
            sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE
        );
        drop(ended);
        engine.stream.synchronize().unwrap();
        let spec = "stem_r224_i3_o32_s2_k3_m0_se0_relu".parse().unwrap();
        engine
            .prepare(&Workload::Block(spec))
            .unwrap_or_else(|e| panic!("{e}"));
        let ms = engine.run_timed().unwrap_or_else(|e| panic!("{e}"));
        assert!(ms > 0.0, "{ms}");
    }

    #[test]
    fn the_engine_name_states_the_math() {
        assert!(ENGINE_NAME.contains(super::super::cudnn::MATH_NAME));
        assert!(!ENGINE_NAME.contains(','), "the header is CSV-adjacent");
    }
}
