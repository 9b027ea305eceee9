//! The engine's launches: one [`Step`] per kernel or library call, how a
//! convolution lowers to steps for each way of running it (with what it
//! takes over from the layers around it, [`Fuse`]), and enqueuing steps
//! eagerly or into a captured graph.

use super::choice::{conv_shape, is_fully_connected, PRECOMP};
use super::*;

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

    /// The library calls: a cuDNN convolution or a cuBLAS product.
    fn launch_library(&self, step: &Step, block: &str) -> Result<()> {
        // Safety (all launches below): every pointer is a live allocation
        // of the prepared workload with the sizes the arguments describe,
        // and the argument types match the kernel signatures in kernels/compute.cu.
        match step {
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::Cudnn { conv, algo, io } => {
                unsafe { conv.launch(&self.cudnn, *algo, io) }.in_block(block)
            }
            // Safety: this arm's pointers are live buffers of the prepared
            // workload of the sizes `shape` describes (see above).
            Step::Gemm { shape, x, w, y } => match &self.blas {
                Some(blas) => unsafe { blas.pointwise(*shape, *x, *w, *y) }.in_block(block),
                None => Err(unsupported("cuBLAS, which is not loaded".into())),
            },
            _ => unreachable!("launch_library is called for its own steps only"),
        }
    }

    /// The empty `spin` and the element-wise bias kernels, one thread per element.
    fn launch_elementwise(&self, step: &Step, block: &str) -> Result<()> {
        let elementwise = |total: i64| LaunchConfig {
            grid_dim: (grid_for(total as usize), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // Safety (all launches below): every pointer is a live allocation
        // of the prepared workload with the sizes the arguments describe,
        // and the argument types match the kernel signatures in kernels/compute.cu.
        match step {
            // Safety: `spin` takes two i64 and touches no memory.
            Step::Empty => unsafe {
                self.stream
                    .launch_builder(self.function("spin"))
                    .arg(&0i64)
                    .arg(&0i64)
                    .launch(LaunchConfig {
                        grid_dim: (1, 1, 1),
                        block_dim: (1, 1, 1),
                        shared_mem_bytes: 0,
                    })
            }
            .map(drop)
            .in_block(block),
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
            .in_block(block),
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
            .in_block(block),
            _ => unreachable!("launch_elementwise is called for its own steps only"),
        }
    }

    /// The depthwise convolutions.
    fn launch_depthwise(&self, step: &Step, block: &str) -> Result<()> {
        let elementwise = |total: i64| LaunchConfig {
            grid_dim: (grid_for(total as usize), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // Safety (all launches below): every pointer is a live allocation
        // of the prepared workload with the sizes the arguments describe,
        // and the argument types match the kernel signatures in kernels/compute.cu.
        match step {
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
            .in_block(block),
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
            .in_block(block),
            _ => unreachable!("launch_depthwise is called for its own steps only"),
        }
    }

    /// The direct dense convolution (the stem's candidate without cuDNN).
    fn launch_direct(&self, step: &Step, block: &str) -> Result<()> {
        let elementwise = |total: i64| LaunchConfig {
            grid_dim: (grid_for(total as usize), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // Safety (all launches below): every pointer is a live allocation
        // of the prepared workload with the sizes the arguments describe,
        // and the argument types match the kernel signatures in kernels/compute.cu.
        match step {
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::Direct {
                x,
                w,
                b,
                y,
                cin,
                cout,
                h,
                oh,
                k,
                stride,
                total,
                act,
            } => unsafe {
                self.stream
                    .launch_builder(self.function("conv_direct"))
                    .arg(x)
                    .arg(w)
                    .arg(b)
                    .arg(y)
                    .arg(cin)
                    .arg(cout)
                    .arg(h)
                    .arg(oh)
                    .arg(k)
                    .arg(stride)
                    .arg(total)
                    .arg(act)
                    .launch(elementwise(*total))
            }
            .map(drop)
            .in_block(block),
            _ => unreachable!("launch_direct is called for its own steps only"),
        }
    }

    /// SE's two layers and its gate, applied to a map or folded into weights.
    fn launch_se(&self, step: &Step, block: &str) -> Result<()> {
        let elementwise = |total: i64| LaunchConfig {
            grid_dim: (grid_for(total as usize), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // Safety (all launches below): every pointer is a live allocation
        // of the prepared workload with the sizes the arguments describe,
        // and the argument types match the kernel signatures in kernels/compute.cu.
        match step {
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
            .in_block(block),
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
            .in_block(block),
            // Safety: this arm's pointers are live buffers of the prepared
            // workload, its arguments match the kernel (see above).
            Step::SeWeights {
                w,
                gate,
                wn,
                cout,
                cin,
                total,
            } => unsafe {
                self.stream
                    .launch_builder(self.function("se_weights"))
                    .arg(w)
                    .arg(gate)
                    .arg(wn)
                    .arg(cout)
                    .arg(cin)
                    .arg(total)
                    .launch(elementwise(*total))
            }
            .map(drop)
            .in_block(block),
            _ => unreachable!("launch_se is called for its own steps only"),
        }
    }

    /// The global pool and the classifier.
    fn launch_reduction(&self, step: &Step, block: &str) -> Result<()> {
        // Safety (all launches below): every pointer is a live allocation
        // of the prepared workload with the sizes the arguments describe,
        // and the argument types match the kernel signatures in kernels/compute.cu.
        match step {
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
            .in_block(block),
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
            .in_block(block),

            _ => unreachable!("launch_reduction is called for its own steps only"),
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

    /// The steps of one convolution with its bias, activation and residual,
    /// and what `fuse` adds, run by `how`.
    pub(super) fn conv_steps(
        &self,
        how: ConvImpl,
        layer: &Layer,
        fuse: Fuse,
        bufs: ConvBufs,
        workspaces: &mut Vec<CudaSlice<u8>>,
        block: &str,
    ) -> Result<Vec<Step>> {
        let job = ConvJob::new(self.config.batch, how, layer, fuse, bufs, block);
        job.check_fusion()?;
        let steps = match how {
            ConvImpl::Depthwise | ConvImpl::DepthwisePlane if job.has_res => {
                return Err(unsupported(format!(
                    "a residual add after the depthwise kernel in {block}"
                )))
            }
            // The kernel does the prologue and the pool itself.
            ConvImpl::DepthwisePlane => return self.plane_steps(&job),
            ConvImpl::Fc => return job.fc_steps(),
            ConvImpl::Direct => vec![job.direct_step()?],
            ConvImpl::Depthwise => vec![job.dwconv_step()],
            ConvImpl::Gemm => self.gemm_steps(&job)?,
            // The gate is applied: no in-place scale around it.
            ConvImpl::GemmScaled => return self.gemm_scaled_steps(&job, workspaces),
            ConvImpl::Cudnn(algo) | ConvImpl::CudnnFused(algo) => {
                self.cudnn_steps(&job, algo, workspaces)?
            }
        };
        Ok(job.around(steps))
    }

    /// [`ConvImpl::DepthwisePlane`]: one plane per thread block in shared
    /// memory, with the prologue and the pool inside the kernel.
    fn plane_steps(&self, job: &ConvJob) -> Result<Vec<Step>> {
        let ConvBufs { x, w, b, y, .. } = job.bufs;
        let (block, fuse) = (job.block, job.fuse);
        let (res_in, res_out, kernel) = (job.res_in, job.res_out, job.kernel);
        if !job.layer.is_depthwise() {
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
        Ok(vec![Step::DwPlane {
            x,
            w,
            b,
            y,
            pre_b: fuse.prologue.map_or(0, |p| p.bias),
            pre_act: fuse.prologue.map_or(0, |p| p.act),
            pooled: fuse.pool_into.unwrap_or(0),
            channels: job.cin as i32,
            h: res_in as i32,
            oh: res_out as i32,
            k: kernel as i32,
            stride: job.stride as i32,
            act: act_code(job.act),
            planes: (job.batch * i64::from(job.cin)) as u32,
            threads: kernels::plane_threads((res_out * res_out) as usize),
            shared_bytes: shared as u32,
        }])
    }

    /// [`ConvImpl::Gemm`]: cuBLAS's product, then the bias step unless the
    /// next layer takes it over.
    fn gemm_steps(&self, job: &ConvJob) -> Result<Vec<Step>> {
        let ConvBufs { x, w, y, .. } = job.bufs;
        let shape = job.shape;
        if job.kernel != 1 || job.stride != 1 || shape.groups != 1 || job.res_in != job.res_out {
            return Err(unsupported(format!(
                "cuBLAS for a convolution other than 1x1 stride 1 in {}",
                job.block
            )));
        }
        if self.blas.is_none() {
            return Err(unsupported("cuBLAS, which is not loaded".into()));
        }
        let shape = PointwiseShape {
            batch: shape.batch,
            cin: shape.cin,
            cout: shape.cout,
            hw: job.hw,
            weights_per_image: false,
        };
        let mut steps = vec![Step::Gemm { shape, x, w, y }];
        if !job.fuse.hand_off {
            steps.push(job.bias_step());
        }
        Ok(steps)
    }

    /// [`ConvImpl::GemmScaled`]: SE's gate folded into per-image weights,
    /// cuBLAS's product with them, and the bias step.
    fn gemm_scaled_steps(
        &self,
        job: &ConvJob,
        workspaces: &mut Vec<CudaSlice<u8>>,
    ) -> Result<Vec<Step>> {
        let ConvBufs { x, w, y, .. } = job.bufs;
        let (block, fuse, shape) = (job.block, job.fuse, job.shape);
        let (cin, cout, batch) = (job.cin, job.cout, job.batch);
        let Some(gate) = fuse.scale else {
            return Err(unsupported(format!(
                "folding SE's scale into a convolution with no SE before it in {block}"
            )));
        };
        if fuse.prologue.is_some() || fuse.pool_into.is_some() {
            return Err(unsupported(format!(
                "cuBLAS with SE folded in and a prologue or pool in {block}"
            )));
        }
        if job.kernel != 1
            || job.stride != 1
            || shape.groups != 1
            || job.res_in != job.res_out
            || job.hw == 1
        {
            return Err(unsupported(format!(
                "cuBLAS with SE folded in for a convolution other than 1x1 stride 1 on a map in {block}"
            )));
        }
        if self.blas.is_none() {
            return Err(unsupported("cuBLAS, which is not loaded".into()));
        }
        let per_image = i64::from(cout) * i64::from(cin);
        let wn = self
            .stream
            .alloc_zeros::<u8>((batch * per_image) as usize * std::mem::size_of::<f32>())
            .in_block(block)?;
        let wn_p = self.ptr(&wn);
        workspaces.push(wn);
        let shape = PointwiseShape {
            batch: shape.batch,
            cin: shape.cin,
            cout: shape.cout,
            hw: job.hw,
            weights_per_image: true,
        };
        Ok(vec![
            Step::SeWeights {
                w,
                gate,
                wn: wn_p,
                cout: cout as i32,
                cin: cin as i32,
                total: batch * per_image,
            },
            Step::Gemm {
                shape,
                x,
                w: wn_p,
                y,
            },
            job.bias_step(),
        ])
    }

    /// [`ConvImpl::Cudnn`] and [`ConvImpl::CudnnFused`]: cuDNN's
    /// convolution with `algo` and its workspace, then the bias step unless
    /// cuDNN fuses it or the next layer takes it over.
    fn cudnn_steps(
        &self,
        job: &ConvJob,
        algo: cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t,
        workspaces: &mut Vec<CudaSlice<u8>>,
    ) -> Result<Vec<Step>> {
        let ConvBufs {
            x,
            w,
            b,
            y,
            residual,
        } = job.bufs;
        let (how, block, shape, has_res) = (job.how, job.block, job.shape, job.has_res);
        let fused = match (how, job.act) {
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
        .in_block(block)?;
        let dims = conv.output_dims().in_block(block)?;
        if dims != [shape.batch, shape.cout, shape.res_out, shape.res_out] {
            return Err(ProfilerError::Cudnn {
                block: block.into(),
                msg: format!("cuDNN computes output {dims:?} for {shape:?}"),
            });
        }
        let ws_bytes = conv.workspace_size(&self.cudnn, algo).in_block(block)?;
        if ws_bytes > WORKSPACE_LIMIT {
            return Err(ProfilerError::Cudnn {
                block: block.into(),
                msg: format!("{algo:?} needs a {ws_bytes}-byte workspace"),
            });
        }
        let ws = if ws_bytes > 0 {
            let buf = self.stream.alloc_zeros::<u8>(ws_bytes).in_block(block)?;
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
        if fused.is_none() && !job.fuse.hand_off {
            steps.push(job.bias_step());
        }
        Ok(steps)
    }
}

/// One convolution as [`CudaEngine::conv_steps`] lowers it: how it runs,
/// the layer's numbers, its buffers, and what it takes over from the layers
/// around it.
struct ConvJob<'a> {
    how: ConvImpl,
    layer: &'a Layer,
    fuse: Fuse,
    bufs: ConvBufs,
    block: &'a str,
    cin: u32,
    cout: u32,
    kernel: u32,
    stride: u32,
    res_in: u32,
    res_out: u32,
    act: Option<space::Activation>,
    has_res: bool,
    batch: i64,
    /// Output values per channel and image.
    hw: i32,
    /// Output values in all.
    total: i64,
    shape: ConvShape,
}

impl<'a> ConvJob<'a> {
    fn new(
        batch: u32,
        how: ConvImpl,
        layer: &'a Layer,
        fuse: Fuse,
        bufs: ConvBufs,
        block: &'a str,
    ) -> Self {
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
        let hw = (res_out * res_out) as i32;
        let total = i64::from(batch) * i64::from(cout) * i64::from(hw);
        ConvJob {
            how,
            layer,
            fuse,
            bufs,
            block,
            cin,
            cout,
            kernel,
            stride,
            res_in,
            res_out,
            act,
            has_res,
            batch: i64::from(batch),
            hw,
            total,
            shape: conv_shape(batch, layer),
        }
    }

    /// Refuses what `fuse` asks and `how` cannot take over.
    fn check_fusion(&self) -> Result<()> {
        let (how, block, act) = (self.how, self.block, self.act);
        if self.fuse.hand_off
            && (self.has_res
                || act.is_none()
                || !matches!(how, ConvImpl::Gemm | ConvImpl::Cudnn(_)))
        {
            // Only a plain convolution followed by its own bias and
            // activation kernel can leave them to the next layer.
            return Err(unsupported(format!(
                "{how:?} handing its bias and activation to the next layer in {block}"
            )));
        }
        if self.has_res && act.is_some() {
            // The residual kernel adds no activation; no TF-NAS layer has
            // both (the projection that takes the residual is linear).
            return Err(unsupported(format!(
                "a convolution with both an activation and a residual add in {block}"
            )));
        }
        if self.fuse.scale.is_some()
            && matches!(
                how,
                ConvImpl::Depthwise | ConvImpl::DepthwisePlane | ConvImpl::Fc
            )
        {
            return Err(unsupported(format!(
                "{how:?} after SE (no depthwise or fully connected layer follows one) in {block}"
            )));
        }
        Ok(())
    }

    /// The engine's own kernel for the bias and the activation or the
    /// residual, after a convolution that writes `conv(x)` alone.
    fn bias_step(&self) -> Step {
        let ConvBufs { b, y, residual, .. } = self.bufs;
        if self.has_res || self.act.is_none() {
            Step::BiasResidual {
                y,
                b,
                res: if self.has_res { residual } else { y },
                channels: self.cout as i32,
                hw: self.hw,
                total: self.total,
                has_res: i32::from(self.has_res),
            }
        } else {
            Step::BiasAct {
                y,
                b,
                channels: self.cout as i32,
                hw: self.hw,
                total: self.total,
                act: act_code(self.act),
            }
        }
    }

    /// [`ConvImpl::Depthwise`]: one thread per output value, bias and
    /// activation included.
    fn dwconv_step(&self) -> Step {
        let ConvBufs { x, w, b, y, .. } = self.bufs;
        Step::DwConv {
            x,
            w,
            b,
            y,
            channels: self.cin as i32,
            h: self.res_in as i32,
            oh: self.res_out as i32,
            k: self.kernel as i32,
            stride: self.stride as i32,
            total: self.total,
            act: act_code(self.act),
        }
    }

    /// [`ConvImpl::Direct`]: the engine's dense convolution, bias and
    /// activation included.
    fn direct_step(&self) -> Result<Step> {
        if self.has_res || self.shape.groups != 1 || self.kernel == 1 {
            return Err(unsupported(format!(
                "the direct kernel for a grouped, 1x1 or residual convolution in {}",
                self.block
            )));
        }
        let ConvBufs { x, w, b, y, .. } = self.bufs;
        Ok(Step::Direct {
            x,
            w,
            b,
            y,
            cin: self.cin as i32,
            cout: self.cout as i32,
            h: self.res_in as i32,
            oh: self.res_out as i32,
            k: self.kernel as i32,
            stride: self.stride as i32,
            total: self.total,
            act: act_code(self.act),
        })
    }

    /// [`ConvImpl::Fc`]: the classifier's kernel, bias included.
    fn fc_steps(&self) -> Result<Vec<Step>> {
        let ConvBufs { x, w, b, y, .. } = self.bufs;
        if !is_fully_connected(self.layer)
            || self.fuse.prologue.is_some()
            || self.fuse.pool_into.is_some()
        {
            return Err(unsupported(format!(
                "the fully connected kernel for a convolution in {}",
                self.block
            )));
        }
        Ok(vec![Step::Fc {
            x,
            w,
            b,
            y,
            batch: self.batch as i32,
            cin: self.cin as i32,
            cout: self.cout as i32,
        }])
    }

    /// `steps` with what `fuse` adds as kernels of their own: everything
    /// but the plane kernel runs the prologue and the pool so, and
    /// everything but the folded product SE's scale.
    fn around(&self, mut steps: Vec<Step>) -> Vec<Step> {
        let (x, y) = (self.bufs.x, self.bufs.y);
        let (batch, cin) = (self.batch, self.cin);
        if let Some(gate) = self.fuse.scale {
            let hw_in = (self.res_in * self.res_in) as i32;
            steps.insert(
                0,
                Step::Scale {
                    y: x,
                    gate,
                    hw: hw_in,
                    total: batch * i64::from(cin) * i64::from(hw_in),
                },
            );
        }
        if let Some(p) = self.fuse.prologue {
            let hw_in = (self.res_in * self.res_in) as i32;
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
        if let Some(pooled) = self.fuse.pool_into {
            steps.push(Step::Pool {
                x: y,
                out: pooled,
                nc: (batch * i64::from(self.cout)) as i32,
                hw: self.hw,
            });
        }
        steps
    }
}
