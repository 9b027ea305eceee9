//! Opening the engine: the context's stream and events, cuDNN, cuBLAS
//! where it loads, the NVRTC kernels compiled for this GPU, the settling
//! spin, and the L2 flush buffer under `--l2 cold`.

use super::timing::launch_spin;
use super::*;

/// Appended to [`ENGINE_NAME`] in the fingerprint when cuBLAS could not be
/// loaded: such an engine has one candidate fewer for 1x1 convolutions, so
/// its tables must not be mixed with those of a complete one.
const WITHOUT_CUBLAS: &str = " without cublas";

/// How long the GPU spins once when the engine opens (see `build`).
const SETTLE_NS: i64 = 300_000_000;

const SETUP: &str = "engine setup";

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
            ctx,
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
}
