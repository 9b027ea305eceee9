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
//! Here: the engine's state and the [`Engine`] it implements. In `open`:
//! opening it. In `buffers`: device buffers and their pointers. In `lower`:
//! lowering a workload to steps (`build_steps`). In `choice`: the
//! candidates and how one is chosen. In `steps`: the launches and how a
//! convolution lowers to them. In `timing` and `spin`: a timed run. In
//! `output`: reading the output back for the numerics check.
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
use crate::reference::weights::{random_params, Params, Rng};

mod buffers;
mod choice;
mod lower;
mod open;
mod output;
mod spin;
mod steps;
mod timing;

pub use choice::ConvImpl;
use choice::{candidates, Among, ChoiceKey, ConvBufs, Fuse, Pending};
use spin::Spin;
use steps::Step;

/// The engine's name and version in table headers; bump the version when a
/// change to the engine changes what it measures. `tf32`: cuDNN's convolutions
/// may use TF32 tensor cores ([`super::cudnn::MATH`], as PyTorch by default).
pub const ENGINE_NAME: &str = "cudarc-engine/6 (cudnn-default-math-tf32)";

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
    /// Held so that the context outlives everything above; made current
    /// before the raw driver calls that do not go through cudarc's safe
    /// API (which makes it current itself).
    ctx: Arc<CudaContext>,
    info: EngineInfo,
    config: EngineConfig,
    /// The spin before graph replays, and how many timed runs of the
    /// prepared workload found the start event already passed.
    spin: Spin,
    late_runs: u64,
    runs: u64,
}

fn unsupported(what: String) -> ProfilerError {
    ProfilerError::Unsupported {
        engine: ENGINE_NAME.into(),
        what,
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
