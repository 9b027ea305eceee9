//! The engine's launches: one [`Step`] per kernel or library call, and
//! enqueuing steps eagerly or into a captured graph. In `launch`: each
//! family of step enqueued. In `conv`: how a convolution lowers to steps
//! for each way of running it (with what it takes over from the layers
//! around it, [`Fuse`]).

use super::choice::{conv_shape, is_fully_connected, PRECOMP};
use super::*;

mod conv;
mod launch;

/// One launch on the stream, with everything it needs.
pub(super) enum Step {
    /// The `spin` kernel with nothing to wait for: an empty kernel, for
    /// [`crate::measure::engine::Workload::Empty`].
    Empty,
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
    /// `conv_direct`: a dense convolution with bias and activation.
    Direct {
        x: CUdeviceptr,
        w: CUdeviceptr,
        b: CUdeviceptr,
        y: CUdeviceptr,
        cin: i32,
        cout: i32,
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
    /// `wn[n] = w · diag(gate[n])`: per-image weights for
    /// [`ConvImpl::GemmScaled`].
    SeWeights {
        w: CUdeviceptr,
        gate: CUdeviceptr,
        wn: CUdeviceptr,
        cout: i32,
        cin: i32,
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

impl CudaEngine {
    /// Enqueues one step, launched by its family.
    pub(super) fn launch(&self, step: &Step, block: &str) -> Result<()> {
        match step {
            Step::Cudnn { .. } | Step::Gemm { .. } => self.launch_library(step, block),
            Step::Empty | Step::BiasAct { .. } | Step::BiasResidual { .. } => {
                self.launch_elementwise(step, block)
            }
            Step::DwConv { .. } | Step::DwPlane { .. } => self.launch_depthwise(step, block),
            Step::Direct { .. } => self.launch_direct(step, block),
            Step::SeFc { .. } | Step::Scale { .. } | Step::SeWeights { .. } => {
                self.launch_se(step, block)
            }
            Step::Pool { .. } | Step::Fc { .. } => self.launch_reduction(step, block),
        }
    }

    pub(super) fn launch_all(&self, steps: &[Step], block: &str) -> Result<()> {
        steps.iter().try_for_each(|s| self.launch(s, block))
    }

    /// Captures `steps` into a graph on the engine's stream, uploaded and
    /// ready to launch. The capture is always ended, also when a launch in
    /// it failed, so the stream never stays in capture mode; a launch error
    /// is reported before the capture's own.
    pub(super) fn capture(&self, steps: &[Step], block: &str) -> Result<CudaGraph> {
        self.stream.begin_capture(CAPTURE_MODE).in_block(block)?;
        let launched = self.launch_all(steps, block);
        let captured = self
            .stream
            .end_capture(sys::CUgraphInstantiate_flags(0))
            .in_block(block);
        launched?;
        let graph = captured?.ok_or_else(|| ProfilerError::Cuda {
            block: block.into(),
            msg: "stream capture produced no graph".into(),
        })?;
        graph.upload().in_block(block)?;
        Ok(graph)
    }
}
