//! [`CudaEngine`]: runs blocks and networks on one CUDA device and times
//! them with CUDA events, replaying a captured CUDA graph by default.
//!
//! Per layer: convolutions through cuDNN with the algorithm chosen by timing
//! every candidate once per shape (like `cudnn.benchmark`, not cudarc's
//! heuristic `pick_algorithm`), each candidate run the way the table runs it
//! (captured and replayed as a graph under `--launch graph`, so one that
//! cannot be captured is never chosen). The candidates: each cuDNN algorithm
//! followed by the engine's bias/activation/residual kernel; the same fused
//! into one cuDNN call where cuDNN can fuse the activation (ReLU, or none
//! with the residual); cuBLAS for 1x1 convolutions; and for the depthwise
//! convolution two NVRTC kernels (bias and activation fused), one of which
//! also takes over the expansion's bias and activation and SE's pool (see
//! [`Fuse`]: every candidate is timed with that work, done its own way). SE,
//! pooling and the FC layer are NVRTC kernels. Nothing is fused across
//! blocks, so that a network's steps are its blocks' steps. `PROFILER_LOG_CHOICES=1` prints every
//! choice with its candidates' times on stderr.
//!
//! Every launch takes raw device pointers of buffers the prepared workload
//! owns, with cudarc's event tracking off (gpu-facts pitfall 2), so that the
//! same launches can be captured into a graph and replayed.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::sys::{self, CUdeviceptr};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions};

use super::cublas::{cublas_msg, Blas, PointwiseShape};
use super::cudnn::{cudnn_msg, Conv, ConvIo, ConvShape, FusedAct, Handle, ALGORITHMS};
use super::device::{self, driver_error, guard};
use super::kernels::{self, grid_for, grid_for_warps, THREADS};
use super::layers::{act_code, block_input_len, block_layers, random_params, Layer, Rng};
use crate::engine::{Dtype, Engine, EngineConfig, EngineInfo, Launch, Layout, Workload, L2};
use crate::error::{ProfilerError, Result};

/// The engine's name and version in table headers; bump the version when a
/// change to the engine changes what it measures. `tf32`: cuDNN's convolutions
/// may use TF32 tensor cores ([`super::cudnn::MATH`], as PyTorch by default).
pub const ENGINE_NAME: &str = "cudarc-engine/3 (cudnn-default-math-tf32)";

/// Appended to [`ENGINE_NAME`] in the fingerprint when cuBLAS could not be
/// loaded: such an engine has one candidate fewer for 1x1 convolutions, so
/// its tables must not be mixed with those of a complete one.
pub const WITHOUT_CUBLAS: &str = " without cublas";

/// How long the GPU spins before each timed graph replay at first, longer
/// than the CPU needs to enqueue the start event, the graph and the end
/// event. When the start event has already passed once the CPU is done
/// enqueuing (the GPU may then have idled, waiting for the graph, inside the
/// timed interval), the spin doubles, up to `SPIN_NS_MAX`, and the engine
/// says so on stderr.
const SPIN_NS: i64 = 50_000;
const SPIN_NS_MAX: i64 = 1_000_000;

/// How long the GPU spins once when the engine opens (see `build`).
const SETTLE_NS: i64 = 300_000_000;

/// The spin's bound in SM clock cycles per nanosecond, in case
/// `%globaltimer` does not advance: eight cycles per nanosecond waits four
/// times as long at the H100's 1980 MHz, and is never reached while the
/// timer works.
const SPIN_CYCLES_PER_NS: i64 = 8;

/// The capture mode of every graph: relaxed, so that a library call that is
/// not allowed while capturing (a lazy `cudaMalloc` inside cuDNN) runs
/// instead of invalidating the capture. Nothing else runs on this context
/// meanwhile.
const CAPTURE_MODE: sys::CUstreamCaptureMode =
    sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED;

/// The largest cuDNN workspace a candidate algorithm may ask for; FFT
/// algorithms can want gigabytes, which would make the table depend on free
/// memory.
const WORKSPACE_LIMIT: usize = 512 << 20;

/// The byte the numerics check fills an output with before the run that
/// must overwrite it: every float then reads 1.2e30, far outside any output.
const POISON_BYTE: u8 = 0x71;

/// How one convolution runs, chosen per shape by timing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConvImpl {
    /// The cuDNN algorithm, then the engine's bias/activation (or
    /// bias/residual) kernel.
    Cudnn(cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t),
    /// The cuDNN algorithm with bias, activation and residual in the same
    /// call (`cudnnConvolutionBiasActivationForward`): ReLU or no
    /// activation only, and no activation with `IMPLICIT_PRECOMP_GEMM` only.
    CudnnFused(cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t),
    /// A 1x1 stride-1 convolution as cuBLAS's batched product, then the
    /// engine's bias kernel.
    Gemm,
    /// The NVRTC depthwise kernel with bias and activation fused: one
    /// thread per output, reading its window through the cache.
    Depthwise,
    /// The NVRTC depthwise kernel that stages whole planes in shared
    /// memory, with the expansion's bias and activation applied on load and
    /// SE's global pool computed on the way (`dwconv_plane` in kernels.rs).
    DepthwisePlane,
}

/// Work from the layers around a convolution that its candidates take on,
/// so that each is timed with it and the one that fuses it competes fairly
/// with those that run it as a kernel of its own.
#[derive(Clone, Copy, Debug, Default)]
struct Fuse {
    /// The previous layer's bias and activation, not yet applied to this
    /// convolution's input (in place).
    prologue: Option<Prologue>,
    /// Where the global average pool of this convolution's output goes (the
    /// SE layer after it).
    pool_into: Option<CUdeviceptr>,
    /// This convolution leaves its bias and activation to the next layer
    /// (its prologue): candidates that would run them as a kernel of their
    /// own skip it.
    hand_off: bool,
}

/// Which of a layer's candidates a choice is made among.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Among {
    All,
    /// All but the fused cuDNN ones (those that can hand their bias off).
    Plain,
    /// The fused cuDNN ones only.
    Fused,
}

impl Among {
    fn admits(self, how: &ConvImpl) -> bool {
        let fused = matches!(how, ConvImpl::CudnnFused(_));
        match self {
            Among::All => true,
            Among::Plain => !fused,
            Among::Fused => fused,
        }
    }
}

/// The device buffers of one convolution: input, weights, bias, output, and
/// the block's input for a residual add.
#[derive(Clone, Copy, Debug)]
struct ConvBufs {
    x: CUdeviceptr,
    w: CUdeviceptr,
    b: CUdeviceptr,
    y: CUdeviceptr,
    residual: CUdeviceptr,
}

/// An expansion convolution whose steps wait for the depthwise one after
/// it: which of the two plans runs (the expansion fused with its ReLU, or
/// plain with its bias and activation handed to the depthwise convolution)
/// is decided on the pair's time.
struct Pending {
    layer: Layer,
    bufs: ConvBufs,
    act: i32,
    /// The fastest plain candidate without its bias step, and its time,
    /// where one runs.
    plain: Option<(ConvImpl, f64)>,
    /// The fastest fused candidate, where one runs (at least one of the
    /// two does).
    fused: Option<(ConvImpl, f64)>,
}

#[derive(Clone, Copy, Debug)]
struct Prologue {
    bias: CUdeviceptr,
    act: i32,
}

/// What a choice is cached under: the convolution's shape, and what follows
/// it (which decides whether the fused candidates apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ChoiceKey {
    shape: ConvShape,
    act: i32,
    residual: bool,
    /// The prologue's activation code, -1 for none.
    prologue: i32,
    pooled: bool,
    hand_off: bool,
    among: Among,
}

/// One launch on the stream, with everything it needs.
enum Step {
    Cudnn {
        conv: Conv,
        algo: cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t,
        io: ConvIo,
    },
    Gemm {
        shape: PointwiseShape,
        x: CUdeviceptr,
        w: CUdeviceptr,
        y: CUdeviceptr,
    },
    BiasAct {
        y: CUdeviceptr,
        b: CUdeviceptr,
        channels: i32,
        hw: i32,
        total: i64,
        act: i32,
    },
    BiasResidual {
        y: CUdeviceptr,
        b: CUdeviceptr,
        res: CUdeviceptr,
        channels: i32,
        hw: i32,
        total: i64,
        has_res: i32,
    },
    DwConv {
        x: CUdeviceptr,
        w: CUdeviceptr,
        b: CUdeviceptr,
        y: CUdeviceptr,
        channels: i32,
        h: i32,
        oh: i32,
        k: i32,
        stride: i32,
        total: i64,
        act: i32,
    },
    DwPlane {
        x: CUdeviceptr,
        w: CUdeviceptr,
        b: CUdeviceptr,
        y: CUdeviceptr,
        /// 0: no prologue.
        pre_b: CUdeviceptr,
        pre_act: i32,
        /// 0: no pool.
        pooled: CUdeviceptr,
        channels: i32,
        h: i32,
        oh: i32,
        k: i32,
        stride: i32,
        act: i32,
        planes: u32,
        threads: u32,
        shared_bytes: u32,
    },
    Pool {
        x: CUdeviceptr,
        out: CUdeviceptr,
        nc: i32,
        hw: i32,
    },
    SeFc {
        pooled: CUdeviceptr,
        w1: CUdeviceptr,
        b1: CUdeviceptr,
        w2: CUdeviceptr,
        b2: CUdeviceptr,
        gate: CUdeviceptr,
        batch: u32,
        channels: i32,
        se: i32,
        act: i32,
    },
    Scale {
        y: CUdeviceptr,
        gate: CUdeviceptr,
        hw: i32,
        total: i64,
    },
    Fc {
        x: CUdeviceptr,
        w: CUdeviceptr,
        b: CUdeviceptr,
        y: CUdeviceptr,
        batch: i32,
        cin: i32,
        cout: i32,
    },
}

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
    /// Written before each timed run when the L2 must be cold: twice the
    /// L2's size, so that nothing of the workload stays cached.
    flush: Option<CudaSlice<u8>>,
    stream: Arc<CudaStream>,
    /// Held so that the context outlives everything above.
    _ctx: Arc<CudaContext>,
    info: EngineInfo,
    config: EngineConfig,
    /// The current spin before graph replays, and how many timed runs of
    /// the prepared workload found the start event already passed.
    spin_ns: i64,
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
        let drv = |e| driver_error(SETUP, e);
        // Safety: nothing was allocated on this context yet; from here on
        // the engine orders all its work on its one stream itself.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(drv)?;
        let timing = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = ctx.new_event(timing).map_err(drv)?;
        let end = ctx.new_event(timing).map_err(drv)?;

        // Safety: only tries to dlopen libcudnn.
        if !unsafe { cudarc::cudnn::sys::is_culib_present() } {
            return Err(ProfilerError::Cudnn {
                block: SETUP.into(),
                msg: "libcudnn cannot be loaded".into(),
            });
        }
        let cudnn = Handle::new(stream.cu_stream()).map_err(|e| ProfilerError::Cudnn {
            block: SETUP.into(),
            msg: cudnn_msg(&e),
        })?;

        let blas = Self::open_blas(&stream);
        if blas.is_none() {
            info.engine.push_str(WITHOUT_CUBLAS);
        }

        // Safety: only tries to dlopen libnvrtc.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(ProfilerError::KernelCompile {
                block: "the engine's kernels".into(),
                log: "libnvrtc cannot be loaded".into(),
            });
        }
        let (major, minor) = ctx.compute_capability().map_err(drv)?;
        let opts = CompileOptions {
            options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
            name: Some("profiler_kernels.cu".into()),
            ..CompileOptions::default()
        };
        let ptx = compile_ptx_with_opts(kernels::SOURCE, opts).map_err(|e| {
            let log = match &e {
                CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
                other => format!("{other:?}"),
            };
            ProfilerError::KernelCompile {
                block: "the engine's kernels".into(),
                log,
            }
        })?;
        let module = ctx.load_module(ptx).map_err(drv)?;
        let mut functions = HashMap::new();
        for name in kernels::NAMES {
            functions.insert(name, module.load_function(name).map_err(drv)?);
        }
        // `dwconv_plane` stages a whole plane: 54 KB for 112x112 with k5,
        // beyond the 48 KiB any launch may use without asking.
        let optin = ctx
            .attribute(
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
            )
            .map_err(drv)?;
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
                    device::driver_msg(&e)
                );
                48 << 10
            }
        };

        // Settle: keep every SM busy for a moment before anything is timed,
        // so that the clocks leave their idle state (345 MHz on the H100)
        // here rather than during the first entry's short warm-up. Four
        // one-thread blocks per SM all fit at once, so this takes SETTLE_NS.
        let sms = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(drv)?;
        let (ns, max_cycles) = (SETTLE_NS, SETTLE_NS * SPIN_CYCLES_PER_NS);
        // Safety: `spin` takes two i64 and touches no memory.
        unsafe {
            stream
                .launch_builder(&functions["spin"])
                .arg(&ns)
                .arg(&max_cycles)
                .launch(LaunchConfig {
                    grid_dim: (4 * u32::try_from(sms).unwrap_or(1).max(1), 1, 1),
                    block_dim: (1, 1, 1),
                    shared_mem_bytes: 0,
                })
        }
        .map_err(drv)?;
        stream.synchronize().map_err(drv)?;

        let flush = match config.l2 {
            L2::Warm => None,
            L2::Cold => {
                let l2 = ctx
                    .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
                    .map_err(drv)?;
                let bytes = 2 * usize::try_from(l2).unwrap_or(0).max(1 << 20);
                Some(stream.alloc_zeros::<u8>(bytes).map_err(drv)?)
            }
        };
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
            spin_ns: SPIN_NS,
            late_runs: 0,
            runs: 0,
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
        self.stream
            .clone_htod(host)
            .map_err(|e| driver_error(block, e))
    }

    fn zeros(&self, block: &str, n: usize) -> Result<CudaSlice<f32>> {
        self.stream
            .alloc_zeros::<f32>(n.max(1))
            .map_err(|e| driver_error(block, e))
    }

    fn function(&self, name: &'static str) -> &CudaFunction {
        &self.functions[name]
    }

    /// Enqueues one step.
    fn launch(&self, step: &Step, block: &str) -> Result<()> {
        let drv = |e| driver_error(block, e);
        let elementwise = |total: i64| LaunchConfig {
            grid_dim: (grid_for(total as usize), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // Safety (all launches below): every pointer is a live allocation
        // of the prepared workload with the sizes the arguments describe,
        // and the argument types match the kernel signatures in kernels.rs.
        match step {
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::Cudnn { conv, algo, io } => unsafe { conv.launch(&self.cudnn, *algo, io) }
                .map_err(|e| ProfilerError::Cudnn {
                    block: block.into(),
                    msg: cudnn_msg(&e),
                }),
            // Safety: this arm's pointers are live buffers of the prepared
            // workload of the sizes `shape` describes (see above).
            Step::Gemm { shape, x, w, y } => match &self.blas {
                Some(blas) => {
                    unsafe { blas.pointwise(*shape, *x, *w, *y) }.map_err(|e| ProfilerError::Cuda {
                        block: block.into(),
                        msg: format!("cuBLAS: {}", cublas_msg(&e)),
                    })
                }
                None => Err(unsupported("cuBLAS, which is not loaded".into())),
            },
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::BiasAct {
                y,
                b,
                channels,
                hw,
                total,
                act,
            } => unsafe {
                self.stream
                    .launch_builder(self.function("bias_act"))
                    .arg(y)
                    .arg(b)
                    .arg(channels)
                    .arg(hw)
                    .arg(total)
                    .arg(act)
                    .launch(elementwise(*total))
            }
            .map(drop)
            .map_err(drv),
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::BiasResidual {
                y,
                b,
                res,
                channels,
                hw,
                total,
                has_res,
            } => unsafe {
                self.stream
                    .launch_builder(self.function("bias_residual"))
                    .arg(y)
                    .arg(b)
                    .arg(res)
                    .arg(channels)
                    .arg(hw)
                    .arg(total)
                    .arg(has_res)
                    .launch(elementwise(*total))
            }
            .map(drop)
            .map_err(drv),
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::DwConv {
                x,
                w,
                b,
                y,
                channels,
                h,
                oh,
                k,
                stride,
                total,
                act,
            } => unsafe {
                self.stream
                    .launch_builder(self.function("dwconv"))
                    .arg(x)
                    .arg(w)
                    .arg(b)
                    .arg(y)
                    .arg(channels)
                    .arg(h)
                    .arg(oh)
                    .arg(k)
                    .arg(stride)
                    .arg(total)
                    .arg(act)
                    .launch(elementwise(*total))
            }
            .map(drop)
            .map_err(drv),
            // Safety: this arm's pointers are live buffers of the prepared
            // workload (`pre_b` and `pooled` may be null, which the kernel
            // checks), its arguments match the kernel (see above), and
            // `shared_bytes` is within the limit set on the function.
            Step::DwPlane {
                x,
                w,
                b,
                y,
                pre_b,
                pre_act,
                pooled,
                channels,
                h,
                oh,
                k,
                stride,
                act,
                planes,
                threads,
                shared_bytes,
            } => unsafe {
                self.stream
                    .launch_builder(self.function("dwconv_plane"))
                    .arg(x)
                    .arg(w)
                    .arg(b)
                    .arg(y)
                    .arg(pre_b)
                    .arg(pre_act)
                    .arg(pooled)
                    .arg(channels)
                    .arg(h)
                    .arg(oh)
                    .arg(k)
                    .arg(stride)
                    .arg(act)
                    .launch(LaunchConfig {
                        grid_dim: (*planes, 1, 1),
                        block_dim: (*threads, 1, 1),
                        shared_mem_bytes: *shared_bytes,
                    })
            }
            .map(drop)
            .map_err(drv),
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::Pool { x, out, nc, hw } => unsafe {
                self.stream
                    .launch_builder(self.function("global_pool"))
                    .arg(x)
                    .arg(out)
                    .arg(nc)
                    .arg(hw)
                    .launch(LaunchConfig {
                        grid_dim: (grid_for_warps(*nc as usize), 1, 1),
                        block_dim: (THREADS, 1, 1),
                        shared_mem_bytes: 0,
                    })
            }
            .map(drop)
            .map_err(drv),
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::SeFc {
                pooled,
                w1,
                b1,
                w2,
                b2,
                gate,
                batch,
                channels,
                se,
                act,
            } => unsafe {
                self.stream
                    .launch_builder(self.function("se_fc"))
                    .arg(pooled)
                    .arg(w1)
                    .arg(b1)
                    .arg(w2)
                    .arg(b2)
                    .arg(gate)
                    .arg(channels)
                    .arg(se)
                    .arg(act)
                    .launch(LaunchConfig {
                        grid_dim: (*batch, 1, 1),
                        block_dim: (THREADS, 1, 1),
                        shared_mem_bytes: (*se as u32) * 4,
                    })
            }
            .map(drop)
            .map_err(drv),
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::Scale { y, gate, hw, total } => unsafe {
                self.stream
                    .launch_builder(self.function("channel_scale"))
                    .arg(y)
                    .arg(gate)
                    .arg(hw)
                    .arg(total)
                    .launch(elementwise(*total))
            }
            .map(drop)
            .map_err(drv),
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::Fc {
                x,
                w,
                b,
                y,
                batch,
                cin,
                cout,
            } => unsafe {
                self.stream
                    .launch_builder(self.function("fc"))
                    .arg(x)
                    .arg(w)
                    .arg(b)
                    .arg(y)
                    .arg(batch)
                    .arg(cin)
                    .arg(cout)
                    .launch(LaunchConfig {
                        grid_dim: (grid_for_warps((*batch * *cout) as usize), 1, 1),
                        block_dim: (THREADS, 1, 1),
                        shared_mem_bytes: 0,
                    })
            }
            .map(drop)
            .map_err(drv),
        }
    }

    fn launch_all(&self, steps: &[Step], block: &str) -> Result<()> {
        steps.iter().try_for_each(|s| self.launch(s, block))
    }

    /// Captures `steps` into a graph on the engine's stream, uploaded and
    /// ready to launch. The capture is always ended, also when a launch in
    /// it failed, so the stream never stays in capture mode; a launch error
    /// is reported before the capture's own.
    fn capture(&self, steps: &[Step], block: &str) -> Result<CudaGraph> {
        self.stream
            .begin_capture(CAPTURE_MODE)
            .map_err(|e| driver_error(block, e))?;
        let launched = self.launch_all(steps, block);
        let captured = self
            .stream
            .end_capture(sys::CUgraphInstantiate_flags(0))
            .map_err(|e| driver_error(block, e));
        launched?;
        let graph = captured?.ok_or_else(|| ProfilerError::Cuda {
            block: block.into(),
            msg: "stream capture produced no graph".into(),
        })?;
        graph.upload().map_err(|e| driver_error(block, e))?;
        Ok(graph)
    }

    /// Time of one run of `steps`, the way the engine will run them (a graph
    /// replay under `--launch graph`, eager launches otherwise): after one
    /// eager warm-up run, the best of three means of `RUNS` runs, so that
    /// noise rarely flips the choice between two close candidates (two
    /// processes must pick alike for repeatable tables). An error when a run
    /// or the capture fails (an algorithm that does not apply or cannot be
    /// captured). A candidate whose first mean is over ten times `best` is
    /// not timed further (FFT algorithms on depthwise shapes take 100 times
    /// as long as the others).
    fn time_candidate(&self, steps: &[Step], block: &str, best: Option<f64>) -> Result<f64> {
        const RUNS: u32 = 5;
        const REPS: usize = 3;
        let drv = |e| driver_error(block, e);
        self.launch_all(steps, block)?;
        self.stream.synchronize().map_err(drv)?;
        let graph = match self.config.launch {
            Launch::Graph => Some(self.capture(steps, block)?),
            Launch::Eager => None,
        };
        let run = || -> Result<()> {
            match &graph {
                Some(g) => g.launch().map_err(|e| driver_error(block, e)),
                None => self.launch_all(steps, block),
            }
        };
        run()?;
        let mut fastest = f64::INFINITY;
        for _ in 0..REPS {
            self.stream.synchronize().map_err(drv)?;
            self.start.record(&self.stream).map_err(drv)?;
            for _ in 0..RUNS {
                run()?;
            }
            self.end.record(&self.stream).map_err(drv)?;
            self.end.synchronize().map_err(drv)?;
            let ms = f64::from(self.start.elapsed_ms(&self.end).map_err(drv)?) / f64::from(RUNS);
            fastest = fastest.min(ms);
            if best.is_some_and(|b| ms > 10.0 * b) {
                break;
            }
        }
        // The graph goes before the steps' buffers: the caller drops them.
        drop(graph);
        if fastest.is_finite() && fastest > 0.0 {
            Ok(fastest)
        } else {
            Err(ProfilerError::BadSample {
                block: block.into(),
                value: fastest,
            })
        }
    }

    /// The steps of one convolution with its bias, activation and residual,
    /// and what `fuse` adds, run by `how`.
    fn conv_steps(
        &self,
        how: ConvImpl,
        layer: &Layer,
        fuse: Fuse,
        bufs: ConvBufs,
        workspaces: &mut Vec<CudaSlice<u8>>,
        block: &str,
    ) -> Result<Vec<Step>> {
        let ConvBufs {
            x,
            w,
            b,
            y,
            residual,
        } = bufs;
        let Layer::Conv {
            cin,
            cout,
            kernel,
            stride,
            res_in,
            res_out,
            act,
            residual: has_res,
            ..
        } = *layer
        else {
            unreachable!("conv_steps is called for convolutions only")
        };
        let batch = self.config.batch as i64;
        let hw = (res_out * res_out) as i32;
        let total = batch * i64::from(cout) * i64::from(hw);
        let shape = conv_shape(self.config.batch, layer);
        if fuse.hand_off
            && (has_res || act.is_none() || !matches!(how, ConvImpl::Gemm | ConvImpl::Cudnn(_)))
        {
            // Only a plain convolution followed by its own bias and
            // activation kernel can leave them to the next layer.
            return Err(unsupported(format!(
                "{how:?} handing its bias and activation to the next layer in {block}"
            )));
        }
        if has_res && act.is_some() {
            // The residual kernel adds no activation; no TF-NAS layer has
            // both (the projection that takes the residual is linear).
            return Err(unsupported(format!(
                "a convolution with both an activation and a residual add in {block}"
            )));
        }
        // The engine's own kernel for the bias and the activation or the
        // residual, after a convolution that writes `conv(x)` alone.
        let bias_step = || {
            if has_res || act.is_none() {
                Step::BiasResidual {
                    y,
                    b,
                    res: if has_res { residual } else { y },
                    channels: cout as i32,
                    hw,
                    total,
                    has_res: i32::from(has_res),
                }
            } else {
                Step::BiasAct {
                    y,
                    b,
                    channels: cout as i32,
                    hw,
                    total,
                    act: act_code(act),
                }
            }
        };
        let mut steps = match how {
            ConvImpl::Depthwise | ConvImpl::DepthwisePlane if has_res => {
                return Err(unsupported(format!(
                    "a residual add after the depthwise kernel in {block}"
                )))
            }
            ConvImpl::DepthwisePlane => {
                if !layer.is_depthwise() {
                    return Err(unsupported(format!(
                        "the depthwise kernel for a dense convolution in {block}"
                    )));
                }
                let shared = kernels::plane_shared_bytes(res_in, kernel);
                if shared > self.plane_shared_limit {
                    return Err(unsupported(format!(
                        "a {res_in}x{res_in} plane with kernel {kernel} in shared memory ({shared} bytes; this GPU allows {}) in {block}",
                        self.plane_shared_limit
                    )));
                }
                // The kernel does the prologue and the pool itself.
                return Ok(vec![Step::DwPlane {
                    x,
                    w,
                    b,
                    y,
                    pre_b: fuse.prologue.map_or(0, |p| p.bias),
                    pre_act: fuse.prologue.map_or(0, |p| p.act),
                    pooled: fuse.pool_into.unwrap_or(0),
                    channels: cin as i32,
                    h: res_in as i32,
                    oh: res_out as i32,
                    k: kernel as i32,
                    stride: stride as i32,
                    act: act_code(act),
                    planes: (batch * i64::from(cin)) as u32,
                    threads: kernels::plane_threads((res_out * res_out) as usize),
                    shared_bytes: shared as u32,
                }]);
            }
            ConvImpl::Depthwise => vec![Step::DwConv {
                x,
                w,
                b,
                y,
                channels: cin as i32,
                h: res_in as i32,
                oh: res_out as i32,
                k: kernel as i32,
                stride: stride as i32,
                total,
                act: act_code(act),
            }],
            ConvImpl::Gemm => {
                if kernel != 1 || stride != 1 || shape.groups != 1 || res_in != res_out {
                    return Err(unsupported(format!(
                        "cuBLAS for a convolution other than 1x1 stride 1 in {block}"
                    )));
                }
                if self.blas.is_none() {
                    return Err(unsupported("cuBLAS, which is not loaded".into()));
                }
                let shape = PointwiseShape {
                    batch: shape.batch,
                    cin: shape.cin,
                    cout: shape.cout,
                    hw,
                };
                let mut steps = vec![Step::Gemm { shape, x, w, y }];
                if !fuse.hand_off {
                    steps.push(bias_step());
                }
                steps
            }
            ConvImpl::Cudnn(algo) | ConvImpl::CudnnFused(algo) => {
                let cudnn_err = |e: cudarc::cudnn::CudnnError| ProfilerError::Cudnn {
                    block: block.into(),
                    msg: cudnn_msg(&e),
                };
                let fused = match (how, act) {
                    (ConvImpl::Cudnn(_), _) => None,
                    (_, None) if algo == PRECOMP => Some(FusedAct::Identity),
                    (_, None) => {
                        return Err(unsupported(format!(
                            "cuDNN's fused identity with {algo:?} (only IMPLICIT_PRECOMP_GEMM) in {block}"
                        )))
                    }
                    (_, Some(space::Activation::Relu)) => Some(FusedAct::Relu),
                    (_, Some(other)) => {
                        return Err(unsupported(format!(
                            "cuDNN fusing {other:?} (only ReLU) in {block}"
                        )))
                    }
                };
                let conv = match fused {
                    Some(f) => Conv::fused(shape, f),
                    None => Conv::new(shape),
                }
                .map_err(cudnn_err)?;
                let dims = conv.output_dims().map_err(cudnn_err)?;
                if dims != [shape.batch, shape.cout, shape.res_out, shape.res_out] {
                    return Err(ProfilerError::Cudnn {
                        block: block.into(),
                        msg: format!("cuDNN computes output {dims:?} for {shape:?}"),
                    });
                }
                let ws_bytes = conv.workspace_size(&self.cudnn, algo).map_err(cudnn_err)?;
                if ws_bytes > WORKSPACE_LIMIT {
                    return Err(ProfilerError::Cudnn {
                        block: block.into(),
                        msg: format!("{algo:?} needs a {ws_bytes}-byte workspace"),
                    });
                }
                let ws = if ws_bytes > 0 {
                    let buf = self
                        .stream
                        .alloc_zeros::<u8>(ws_bytes)
                        .map_err(|e| driver_error(block, e))?;
                    let p = self.ptr(&buf);
                    workspaces.push(buf);
                    p
                } else {
                    0
                };
                let io = ConvIo {
                    x,
                    w,
                    y,
                    bias: b,
                    z: if has_res { residual } else { y },
                    has_z: has_res,
                    workspace: ws,
                    workspace_bytes: ws_bytes,
                };
                let mut steps = vec![Step::Cudnn { conv, algo, io }];
                if fused.is_none() && !fuse.hand_off {
                    steps.push(bias_step());
                }
                steps
            }
        };
        // Everything but the plane kernel runs the prologue and the pool as
        // kernels of their own.
        if let Some(p) = fuse.prologue {
            let hw_in = (res_in * res_in) as i32;
            steps.insert(
                0,
                Step::BiasAct {
                    y: x,
                    b: p.bias,
                    channels: cin as i32,
                    hw: hw_in,
                    total: batch * i64::from(cin) * i64::from(hw_in),
                    act: p.act,
                },
            );
        }
        if let Some(pooled) = fuse.pool_into {
            steps.push(Step::Pool {
                x: y,
                out: pooled,
                nc: (batch * i64::from(cout)) as i32,
                hw,
            });
        }
        Ok(steps)
    }

    /// Chooses how to run a convolution of this shape by timing every
    /// candidate once (cached per shape for the engine's lifetime); an error
    /// when none runs.
    fn choose(
        &mut self,
        layer: &Layer,
        fuse: Fuse,
        among: Among,
        bufs: ConvBufs,
        block: &str,
    ) -> Result<(ConvImpl, f64)> {
        self.try_choose(layer, fuse, among, bufs, block)?
    }

    /// [`Self::choose`] for a subset that may have no candidate that runs
    /// (the fused ones: cuDNN may refuse them all): `None` then, remembered
    /// like a choice. Errors that leave the stream unusable are still errors.
    fn choose_if_any(
        &mut self,
        layer: &Layer,
        fuse: Fuse,
        among: Among,
        bufs: ConvBufs,
        block: &str,
    ) -> Result<Option<(ConvImpl, f64)>> {
        Ok(self.try_choose(layer, fuse, among, bufs, block)?.ok())
    }

    /// The outer error: the stream is broken. The inner one: no candidate
    /// of the subset ran (the last one's error), also remembered per key.
    fn try_choose(
        &mut self,
        layer: &Layer,
        fuse: Fuse,
        among: Among,
        bufs: ConvBufs,
        block: &str,
    ) -> Result<Result<(ConvImpl, f64)>> {
        let shape = conv_shape(self.config.batch, layer);
        let Layer::Conv {
            act,
            residual: has_res,
            ..
        } = *layer
        else {
            unreachable!("choose is called for convolutions only")
        };
        let key = ChoiceKey {
            shape,
            act: act_code(act),
            residual: has_res,
            prologue: fuse.prologue.map_or(-1, |p| p.act),
            pooled: fuse.pool_into.is_some(),
            hand_off: fuse.hand_off,
            among,
        };
        if let Some(&chosen) = self.choices.get(&key) {
            return Ok(Ok(chosen));
        }
        if self.unchosen.contains(&key) {
            return Ok(Err(unsupported(format!(
                "{shape:?}: no candidate among {among:?} ran for this shape (an earlier block's error said why) in {block}"
            ))));
        }
        let mut candidates = candidates(layer);
        candidates.retain(|c| among.admits(c) && (self.blas.is_some() || *c != ConvImpl::Gemm));
        if let Some(p) = self.prefer.filter(|p| candidates.contains(p)) {
            // Tests: the preferred one alone, the others only if it fails.
            candidates.retain(|c| *c != p);
            candidates.insert(0, p);
        }
        let mut best: Option<(f64, ConvImpl)> = None;
        let mut last_error = None;
        let mut log = Vec::new();
        for how in candidates {
            if best.is_some() && self.prefer.is_some() {
                break;
            }
            let mut ws = Vec::new();
            match self.conv_steps(how, layer, fuse, bufs, &mut ws, block) {
                Ok(steps) => match self.time_candidate(&steps, block, best.map(|(b, _)| b)) {
                    Ok(ms) => {
                        log.push(format!("{how:?} {ms:.4} ms"));
                        // A later candidate must be 1% faster to win, so
                        // that timing noise between two near-equal ones
                        // does not make two processes choose differently.
                        if best.is_none_or(|(b, _)| ms < 0.99 * b) {
                            best = Some((ms, how));
                        }
                    }
                    Err(e) => {
                        log.push(format!("{how:?} failed: {e}"));
                        last_error = Some(e)
                    }
                },
                // A candidate that does not apply or does not fit is
                // skipped; only when none runs is it an error.
                Err(e) => {
                    log.push(format!("{how:?} does not apply: {e}"));
                    last_error = Some(e)
                }
            }
            // A failed candidate may leave an error on the stream: clear
            // it by synchronizing, and stop if the context is broken (its
            // workspace, dropped above, is freed in stream order).
            self.stream
                .synchronize()
                .map_err(|e| driver_error(block, e))?;
        }
        let Some((ms, how)) = best else {
            if self.log_choices {
                eprintln!(
                    "no choice for {shape:?} among {among:?} in {block}; candidates: {}",
                    log.join("; ")
                );
            }
            self.unchosen.insert(key);
            return Ok(Err(last_error.unwrap_or_else(|| ProfilerError::Cudnn {
                block: block.into(),
                msg: "no convolution algorithm ran for this shape".into(),
            })));
        };
        if self.log_choices {
            eprintln!(
                "choice for {shape:?} (act {}, residual {}, prologue {}, pooled {}, hand-off {}, among {among:?}) in {block}: {how:?}; candidates: {}",
                key.act,
                key.residual,
                key.prologue,
                key.pooled,
                key.hand_off,
                log.join("; ")
            );
        }
        self.choices.insert(key, (how, ms));
        Ok(Ok((how, ms)))
    }

    /// How a pending expansion and the depthwise convolution `dw` after it
    /// run: the expansion's implementation and [`Fuse`], and the depthwise
    /// convolution's [`Fuse`] (`alone`: its own, without a prologue). Plan
    /// P: the plain expansion hands its bias and activation to the depthwise
    /// convolution; plan F: the expansion runs fused with its ReLU. The pair
    /// that is faster in all runs, each time measured with the depthwise
    /// convolution chosen for that plan.
    fn plan_pair(
        &mut self,
        pend: &Pending,
        dw: &Layer,
        alone: Fuse,
        bufs: ConvBufs,
        block: &str,
    ) -> Result<(ConvImpl, Fuse, Fuse)> {
        let with_prologue = Fuse {
            prologue: Some(Prologue {
                bias: pend.bufs.b,
                act: pend.act,
            }),
            ..alone
        };
        let hand_off = Fuse {
            hand_off: true,
            ..Fuse::default()
        };
        let plan_p = match pend.plain {
            Some((how, ms)) => {
                let (_, dw_ms) = self.choose(dw, with_prologue, Among::All, bufs, block)?;
                Some((how, ms + dw_ms))
            }
            None => None,
        };
        // A depthwise convolution that does not run without the prologue
        // only rules plan F out, where plan P runs.
        let plan_f = match pend.fused {
            Some((how, ms)) => match self.try_choose(dw, alone, Among::All, bufs, block)? {
                Ok((_, dw_ms)) => Some((how, ms + dw_ms)),
                Err(e) if plan_p.is_none() => return Err(e),
                Err(_) => None,
            },
            None => None,
        };
        let fused = match (plan_p, plan_f) {
            (Some((_, p)), Some((_, f))) => takes_fused_plan(self.prefer, f, p),
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => {
                return Err(unsupported(format!(
                    "an expansion with neither a plain nor a fused way to run in {block}"
                )))
            }
        };
        if self.log_choices {
            let show = |plan: Option<(ConvImpl, f64)>| {
                plan.map_or("none".to_string(), |(how, ms)| {
                    format!("{how:?} {ms:.4} ms")
                })
            };
            eprintln!(
                "plan for {block}: {} (plain with the depthwise prologue: {}; fused: {})",
                if fused { "fused" } else { "plain" },
                show(plan_p),
                show(plan_f)
            );
        }
        Ok(match (fused, plan_p, plan_f) {
            (true, _, Some((how, _))) => (how, Fuse::default(), alone),
            (false, Some((how, _)), _) => (how, hand_off, with_prologue),
            _ => unreachable!("the plan taken exists"),
        })
    }

    /// Tests only: prefer `how` wherever it applies (`None`: the fastest),
    /// forgetting every choice made so far.
    pub fn prefer(&mut self, how: Option<ConvImpl>) {
        self.prefer = how;
        self.choices.clear();
        self.unchosen.clear();
    }

    /// Every way a convolution can run, for [`Self::prefer`].
    pub fn all_conv_impls() -> Vec<ConvImpl> {
        [
            ConvImpl::Depthwise,
            ConvImpl::DepthwisePlane,
            ConvImpl::Gemm,
        ]
        .into_iter()
        .chain(ALGORITHMS.iter().map(|&a| ConvImpl::Cudnn(a)))
        .chain(ALGORITHMS.iter().map(|&a| ConvImpl::CudnnFused(a)))
        .collect()
    }

    fn build_steps(&mut self, workload: &Workload) -> Result<Prepared> {
        let name = workload.to_string();
        let block = name.as_str();
        let specs: Vec<space::BlockSpec> = match workload {
            Workload::Block(spec) => vec![*spec],
            Workload::Network { blocks, .. } => blocks.clone(),
        };
        let batch = self.config.batch as usize;
        let mut rng = Rng::new(self.config.seed);
        let mut buffers: Vec<CudaSlice<f32>> = Vec::new();
        let mut workspaces: Vec<CudaSlice<u8>> = Vec::new();
        let mut steps = Vec::new();

        let first = specs
            .first()
            .ok_or_else(|| unsupported("an empty network".into()))?;
        let input = self.upload(block, &rng.fill(batch * block_input_len(first), -1.0, 1.0))?;
        let mut current = self.ptr(&input);
        let mut current_len = batch * block_input_len(first);
        buffers.push(input);

        for spec in &specs {
            if batch * block_input_len(spec) != current_len {
                return Err(unsupported(format!(
                    "{spec} after a block with {current_len} outputs"
                )));
            }
            let block_input = current;
            let layers = block_layers(spec);
            // Handed from one layer to the next inside the block (never
            // across blocks: each block's steps stay its own, so that a
            // network costs what its table entries sum to): the expansion
            // waiting for the depthwise convolution's choice, and the pool
            // the depthwise convolution computed for SE.
            let mut pending: Option<Pending> = None;
            let mut pooled_by_conv: Option<CUdeviceptr> = None;
            for (i, &layer) in layers.iter().enumerate() {
                let next = layers.get(i + 1);
                let p = random_params(&layer, &mut rng);
                // Every layer but SE (in place) writes a buffer of its own.
                let y = match layer {
                    Layer::Se { .. } => current,
                    _ => {
                        let out = self.zeros(block, batch * layer.output_len())?;
                        let y = self.ptr(&out);
                        buffers.push(out);
                        y
                    }
                };
                match layer {
                    Layer::Conv {
                        cout,
                        act,
                        residual: has_res,
                        ..
                    } => {
                        let w = self.upload(block, &p.w)?;
                        let b = self.upload(block, &p.b)?;
                        let bufs = ConvBufs {
                            x: current,
                            w: self.ptr(&w),
                            b: self.ptr(&b),
                            y,
                            residual: block_input,
                        };
                        buffers.extend([w, b]);
                        // An expansion before a depthwise convolution: its
                        // steps wait for that one's choice (see `Pending`).
                        if next.is_some_and(Layer::is_depthwise)
                            && !layer.is_depthwise()
                            && act.is_some()
                            && !has_res
                        {
                            let hand_off = Fuse {
                                hand_off: true,
                                ..Fuse::default()
                            };
                            let plain =
                                self.try_choose(&layer, hand_off, Among::Plain, bufs, block)?;
                            let fused = if candidates(&layer).iter().any(|c| Among::Fused.admits(c))
                            {
                                self.choose_if_any(
                                    &layer,
                                    Fuse::default(),
                                    Among::Fused,
                                    bufs,
                                    block,
                                )?
                            } else {
                                None
                            };
                            // Either plan may be missing, not both.
                            let plain = match (plain, fused) {
                                (Ok(p), _) => Some(p),
                                (Err(_), Some(_)) => None,
                                (Err(e), None) => return Err(e),
                            };
                            pending = Some(Pending {
                                layer,
                                bufs,
                                act: act_code(act),
                                plain,
                                fused,
                            });
                            current = y;
                            current_len = batch * layer.output_len();
                            continue;
                        }
                        let pool_into =
                            if layer.is_depthwise() && matches!(next, Some(Layer::Se { .. })) {
                                let pooled = self.zeros(block, batch * cout as usize)?;
                                let pp = self.ptr(&pooled);
                                buffers.push(pooled);
                                pooled_by_conv = Some(pp);
                                Some(pp)
                            } else {
                                None
                            };
                        let alone = Fuse {
                            pool_into,
                            ..Fuse::default()
                        };
                        let (expansion, fuse) = match pending.take() {
                            None => (None, alone),
                            Some(pend) => {
                                let (how, efuse, fuse) =
                                    self.plan_pair(&pend, &layer, alone, bufs, block)?;
                                (Some((pend, how, efuse)), fuse)
                            }
                        };
                        if let Some((pend, how, efuse)) = expansion {
                            steps.extend(self.conv_steps(
                                how,
                                &pend.layer,
                                efuse,
                                pend.bufs,
                                &mut workspaces,
                                block,
                            )?);
                        }
                        let (how, _) = self.choose(&layer, fuse, Among::All, bufs, block)?;
                        steps.extend(self.conv_steps(
                            how,
                            &layer,
                            fuse,
                            bufs,
                            &mut workspaces,
                            block,
                        )?);
                        current = y;
                    }
                    Layer::Se {
                        channels,
                        se,
                        res,
                        act,
                    } => {
                        let gate = self.zeros(block, batch * channels as usize)?;
                        let params = [&p.w, &p.b, &p.w2, &p.b2]
                            .into_iter()
                            .map(|v| self.upload(block, v))
                            .collect::<Result<Vec<_>>>()?;
                        let ptrs: Vec<CUdeviceptr> = params.iter().map(|s| self.ptr(s)).collect();
                        let gate_p = self.ptr(&gate);
                        buffers.push(gate);
                        buffers.extend(params);
                        let hw = (res * res) as i32;
                        let nc = (batch as u32 * channels) as i32;
                        let pooled_p = match pooled_by_conv.take() {
                            Some(pp) => pp,
                            None => {
                                let pooled = self.zeros(block, batch * channels as usize)?;
                                let pp = self.ptr(&pooled);
                                buffers.push(pooled);
                                steps.push(Step::Pool {
                                    x: current,
                                    out: pp,
                                    nc,
                                    hw,
                                });
                                pp
                            }
                        };
                        steps.push(Step::SeFc {
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
                        steps.push(Step::Scale {
                            y,
                            gate: gate_p,
                            hw,
                            total: i64::from(nc) * i64::from(hw),
                        });
                    }
                    Layer::Pool { channels, res } => {
                        steps.push(Step::Pool {
                            x: current,
                            out: y,
                            nc: (batch as u32 * channels) as i32,
                            hw: (res * res) as i32,
                        });
                        current = y;
                    }
                    Layer::Fc { cin, cout } => {
                        let w = self.upload(block, &p.w)?;
                        let b = self.upload(block, &p.b)?;
                        steps.push(Step::Fc {
                            x: current,
                            w: self.ptr(&w),
                            b: self.ptr(&b),
                            y,
                            batch: batch as i32,
                            cin: cin as i32,
                            cout: cout as i32,
                        });
                        buffers.extend([w, b]);
                        current = y;
                    }
                }
                current_len = match layer {
                    Layer::Se { .. } => current_len,
                    _ => batch * layer.output_len(),
                };
            }
            if pending.is_some() {
                return Err(unsupported(format!(
                    "{spec}: an expansion with no depthwise convolution after it"
                )));
            }
        }
        Ok(Prepared {
            graph: None,
            steps,
            _buffers: buffers,
            _workspaces: workspaces,
            output: (current, current_len),
            name,
        })
    }

    /// Runs the prepared workload once (its graph, when captured) and copies
    /// its output to the host,
    /// for the numerics checks against [`super::layers::reference_layer`].
    pub fn run_and_read_output(&mut self) -> Result<Vec<f32>> {
        let prepared = self
            .prepared
            .as_ref()
            .ok_or_else(|| unsupported("reading an output before prepare".into()))?;
        let block = prepared.name.clone();
        let (ptr, len) = prepared.output;
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
        .map_err(|e| driver_error(&block, e))?;
        match &prepared.graph {
            Some(graph) => graph.launch().map_err(|e| driver_error(&block, e))?,
            None => self.launch_all(&prepared.steps, &block)?,
        }
        let mut host = vec![0.0f32; len];
        // Safety: `ptr` is a live allocation of `len` floats of the prepared
        // workload; the stream is synchronized before and after the copy.
        unsafe {
            self.stream
                .synchronize()
                .map_err(|e| driver_error(&block, e))?;
            cudarc::driver::result::memcpy_dtoh_sync(&mut host, ptr)
                .map_err(|e| driver_error(&block, e))?;
        }
        Ok(host)
    }
}

/// Whether an expansion runs fused with its ReLU (`plan_f`: its time plus
/// the depthwise convolution's) rather than plain, handing its bias and
/// activation to the depthwise convolution (`plan_p`). Like any later
/// candidate, the fused plan must be 1% faster. Tests that prefer a way of
/// running get the plan where it runs: a fused convolution the fused plan,
/// anything else the plain one.
fn takes_fused_plan(prefer: Option<ConvImpl>, plan_f: f64, plan_p: f64) -> bool {
    match prefer {
        Some(ConvImpl::CudnnFused(_)) => true,
        Some(_) => false,
        None => plan_f < 0.99 * plan_p,
    }
}

/// The one algorithm with which cuDNN fuses a bias without activation.
const PRECOMP: cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t =
    cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;

/// The ways to run a convolution that are timed for it: for a depthwise
/// convolution the NVRTC kernel first (the likely fastest, so that
/// [`CudaEngine::time_candidate`] can cut hopeless ones short), then the
/// GEMM-like cuDNN algorithms, where FFT and Winograd took 37 to 100 times
/// as long on the H100 (gpu-facts pitfall 4) and would dominate the time to
/// build a table; for a 1x1 convolution the GEMM-like algorithms (FFT and
/// Winograd cannot win; Winograd does not apply at all), each also fused
/// where cuDNN can fuse what follows (ReLU with any, no activation with
/// `IMPLICIT_PRECOMP_GEMM` only), and cuBLAS where the stride is 1; every
/// algorithm, plain and fused where it can, otherwise (the stem).
fn candidates(layer: &Layer) -> Vec<ConvImpl> {
    use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t as A;
    let Layer::Conv {
        kernel,
        stride,
        act,
        ..
    } = *layer
    else {
        return Vec::new();
    };
    let spectral = |a: &A| {
        matches!(
            a,
            A::CUDNN_CONVOLUTION_FWD_ALGO_FFT
                | A::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING
                | A::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD
                | A::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED
        )
    };
    let depthwise = layer.is_depthwise();
    let prune = depthwise || kernel == 1;
    let algos: Vec<A> = ALGORITHMS
        .iter()
        .copied()
        .filter(|a| !(prune && spectral(a)))
        .collect();
    let mut out = Vec::new();
    if depthwise {
        out.extend([ConvImpl::Depthwise, ConvImpl::DepthwisePlane]);
    }
    out.extend(algos.iter().map(|&a| ConvImpl::Cudnn(a)));
    if !depthwise {
        match act {
            None => out.push(ConvImpl::CudnnFused(PRECOMP)),
            Some(space::Activation::Relu) => {
                out.extend(algos.iter().map(|&a| ConvImpl::CudnnFused(a)))
            }
            Some(_) => {}
        }
        if kernel == 1 && stride == 1 {
            out.push(ConvImpl::Gemm);
        }
    }
    out
}

fn conv_shape(batch: u32, layer: &Layer) -> ConvShape {
    match *layer {
        Layer::Conv {
            cin,
            cout,
            kernel,
            stride,
            groups,
            res_in,
            res_out,
            ..
        } => ConvShape {
            batch: batch as i32,
            cin: cin as i32,
            cout: cout as i32,
            res_in: res_in as i32,
            res_out: res_out as i32,
            kernel: kernel as i32,
            stride: stride as i32,
            groups: groups as i32,
        },
        _ => unreachable!("conv_shape is called for convolutions only"),
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
        self.stream
            .synchronize()
            .map_err(|e| driver_error(&block, e))?;
        self.prepared = None;
        // Under `guard`: cudarc panics on a driver symbol it cannot load.
        let prepared = guard(&block, || {
            let mut prepared = self.build_steps(workload)?;
            // One eager run: first-use costs and errors surface here, not
            // in the capture.
            self.launch_all(&prepared.steps, &block)?;
            self.stream
                .synchronize()
                .map_err(|e| driver_error(&block, e))?;
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
        let drv = |e| driver_error(block, e);
        if let Some(flush) = self.flush.as_mut() {
            self.stream.memset_zeros(flush).map_err(drv)?;
        }
        if prepared.graph.is_some() {
            // Eager runs keep the CPU's launch cost in the time: that is
            // what they are for. Graph runs should not include the CPU's
            // latency in submitting the graph.
            let (ns, max_cycles) = (self.spin_ns, self.spin_ns * SPIN_CYCLES_PER_NS);
            // Safety: `spin` takes two i64 and touches no memory.
            unsafe {
                self.stream
                    .launch_builder(self.function("spin"))
                    .arg(&ns)
                    .arg(&max_cycles)
                    .launch(LaunchConfig {
                        grid_dim: (1, 1, 1),
                        block_dim: (1, 1, 1),
                        shared_mem_bytes: 0,
                    })
            }
            .map_err(drv)?;
        }
        self.start.record(&self.stream).map_err(drv)?;
        match &prepared.graph {
            Some(graph) => graph.launch().map_err(drv)?,
            None => self.launch_all(&prepared.steps, block)?,
        }
        self.end.record(&self.stream).map_err(drv)?;
        // Graph runs: the start event must still be pending now that the
        // CPU has enqueued everything; if it is not, the spin was too short.
        let late = prepared.graph.is_some() && self.start.try_is_complete().map_err(drv)?;
        self.end.synchronize().map_err(drv)?;
        let ms = self.start.elapsed_ms(&self.end).map_err(drv)?;
        self.runs += 1;
        if late {
            self.late_runs += 1;
            self.spin_ns = (self.spin_ns * 2).min(SPIN_NS_MAX);
        }
        Ok(f64::from(ms))
    }
}

impl CudaEngine {
    /// Says on stderr how many timed runs of the workload just finished
    /// started late (see [`SPIN_NS`]), and starts counting afresh.
    fn report_late_runs(&mut self) {
        if self.late_runs > 0 {
            let name = self.prepared.as_ref().map_or("", |p| p.name.as_str());
            eprintln!(
                "warning: {name}: {} of {} timed runs found the GPU already past the spin (the CPU was slow to enqueue); the spin is now {} us",
                self.late_runs,
                self.runs,
                self.spin_ns / 1000
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
    use space::BlockSpec;

    fn conv_layers(key: &str) -> Vec<Layer> {
        let spec: BlockSpec = key.parse().unwrap();
        block_layers(&spec)
            .into_iter()
            .filter(|l| matches!(l, Layer::Conv { .. }))
            .collect()
    }

    #[test]
    fn candidates_put_the_own_kernel_first_and_prune_hopeless_algorithms() {
        use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t as A;
        let mb = conv_layers("mbconv_r28_i40_o80_s2_k5_m240_se80_swish");
        let (expand, dw, project) = (&mb[0], &mb[1], &mb[2]);
        let c = candidates(dw);
        assert_eq!(c[..2], [ConvImpl::Depthwise, ConvImpl::DepthwisePlane]);
        assert_eq!(c.len(), 6, "{c:?}");
        assert!(!c.contains(&ConvImpl::Cudnn(A::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING)));
        assert!(c.contains(&ConvImpl::Cudnn(
            A::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
        )));
        assert!(!c.contains(&ConvImpl::Gemm));

        // Swish expansion: cuDNN cannot fuse swish; four algorithms and
        // cuBLAS.
        let c = candidates(expand);
        assert_eq!(c.len(), 5, "{c:?}");
        assert_eq!(c.last(), Some(&ConvImpl::Gemm));
        assert!(!c.iter().any(|i| matches!(i, ConvImpl::CudnnFused(_))));
        // Linear projection: fused with the one algorithm that fuses
        // identity.
        let c = candidates(project);
        assert_eq!(c.len(), 6, "{c:?}");
        assert!(c.contains(&ConvImpl::CudnnFused(PRECOMP)));
        assert!(c.contains(&ConvImpl::Gemm));
        assert!(!c.contains(&ConvImpl::Depthwise));
        assert!(!c.contains(&ConvImpl::DepthwisePlane));

        // ReLU expansion: every GEMM-like algorithm plain and fused.
        let relu = conv_layers("mbconv_r56_i24_o24_s1_k3_m72_se0_relu");
        let c = candidates(&relu[0]);
        assert_eq!(c.len(), 9, "{c:?}");
        assert!(c.contains(&ConvImpl::CudnnFused(A::CUDNN_CONVOLUTION_FWD_ALGO_GEMM)));

        // The stem (3x3, stride 2, ReLU): everything plain and fused, no
        // cuBLAS (not a 1x1).
        let stem = conv_layers("stem_r224_i3_o32_s2_k3_m0_se0_relu");
        assert_eq!(candidates(&stem[0]).len(), 2 * ALGORITHMS.len());
        // The head's 1x1 (swish): cuBLAS applies.
        let head = block_layers(&"head_r7_i320_o1000_s1_k1_m1280_se0_swish".parse().unwrap());
        assert!(candidates(&head[0]).contains(&ConvImpl::Gemm));
        assert!(candidates(&Layer::Pool {
            channels: 8,
            res: 7
        })
        .is_empty());
        // Every candidate is one that `prefer` can ask for (so the GPU
        // numerics check covers it).
        let all = CudaEngine::all_conv_impls();
        for layer in mb.iter().chain(&relu).chain(&stem) {
            assert!(candidates(layer).iter().all(|c| all.contains(c)));
        }
    }

    #[test]
    fn the_plain_and_fused_subsets_split_the_candidates() {
        use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t as A;
        let relu = conv_layers("mbconv_r56_i24_o24_s1_k3_m72_se0_relu");
        let all = candidates(&relu[0]);
        let plain: Vec<_> = all.iter().filter(|c| Among::Plain.admits(c)).collect();
        let fused: Vec<_> = all.iter().filter(|c| Among::Fused.admits(c)).collect();
        assert_eq!(plain.len() + fused.len(), all.len());
        assert!(plain.contains(&&ConvImpl::Gemm));
        assert!(fused.contains(&&ConvImpl::CudnnFused(
            A::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
        )));
        assert!(all.iter().all(|c| Among::All.admits(c)));
        // A swish expansion has no fused candidate: the plain plan only.
        let swish = conv_layers("mbconv_r28_i40_o80_s2_k5_m240_se80_swish");
        assert!(!candidates(&swish[0]).iter().any(|c| Among::Fused.admits(c)));
    }

    #[test]
    fn the_fused_plan_wins_by_one_percent_or_by_preference() {
        assert!(takes_fused_plan(None, 0.98, 1.0));
        assert!(!takes_fused_plan(None, 0.995, 1.0));
        assert!(!takes_fused_plan(None, 1.2, 1.0));
        assert!(takes_fused_plan(
            Some(ConvImpl::CudnnFused(PRECOMP)),
            5.0,
            1.0
        ));
        assert!(!takes_fused_plan(Some(ConvImpl::DepthwisePlane), 0.1, 1.0));
        assert!(!takes_fused_plan(Some(ConvImpl::Gemm), 0.1, 1.0));
    }

    #[test]
    fn the_poison_is_finite_and_far_from_any_output() {
        let v = f32::from_bits(u32::from_ne_bytes([POISON_BYTE; 4]));
        assert!(v.is_finite() && v > 1e29, "{v}");
        assert_eq!(0.0 * v, 0.0);
        // A comparison against it fails by far.
        let c = crate::numerics::compare("x", &[v], &[1.0]);
        assert!(!c.ok());
    }

    #[test]
    fn the_engine_name_states_the_math() {
        assert!(ENGINE_NAME.contains(super::super::cudnn::MATH_NAME));
        assert!(!ENGINE_NAME.contains(','), "the header is CSV-adjacent");
    }
}
