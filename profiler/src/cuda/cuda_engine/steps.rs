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
    /// Enqueues one step.
    pub(super) fn launch(&self, step: &Step, block: &str) -> Result<()> {
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
            .map_err(drv),
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

    pub(super) fn launch_all(&self, steps: &[Step], block: &str) -> Result<()> {
        steps.iter().try_for_each(|s| self.launch(s, block))
    }

    /// Captures `steps` into a graph on the engine's stream, uploaded and
    /// ready to launch. The capture is always ended, also when a launch in
    /// it failed, so the stream never stays in capture mode; a launch error
    /// is reported before the capture's own.
    pub(super) fn capture(&self, steps: &[Step], block: &str) -> Result<CudaGraph> {
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
        if fuse.scale.is_some()
            && matches!(
                how,
                ConvImpl::Depthwise | ConvImpl::DepthwisePlane | ConvImpl::Fc
            )
        {
            return Err(unsupported(format!(
                "{how:?} after SE (no depthwise or fully connected layer follows one) in {block}"
            )));
        }
        let mut steps = match how {
            ConvImpl::Depthwise | ConvImpl::DepthwisePlane if has_res => {
                return Err(unsupported(format!(
                    "a residual add after the depthwise kernel in {block}"
                )))
            }
            ConvImpl::Direct => {
                if has_res || shape.groups != 1 || kernel == 1 {
                    return Err(unsupported(format!(
                        "the direct kernel for a grouped, 1x1 or residual convolution in {block}"
                    )));
                }
                vec![Step::Direct {
                    x,
                    w,
                    b,
                    y,
                    cin: cin as i32,
                    cout: cout as i32,
                    h: res_in as i32,
                    oh: res_out as i32,
                    k: kernel as i32,
                    stride: stride as i32,
                    total,
                    act: act_code(act),
                }]
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
            ConvImpl::Fc => {
                if !is_fully_connected(layer) || fuse.prologue.is_some() || fuse.pool_into.is_some()
                {
                    return Err(unsupported(format!(
                        "the fully connected kernel for a convolution in {block}"
                    )));
                }
                // Bias included.
                return Ok(vec![Step::Fc {
                    x,
                    w,
                    b,
                    y,
                    batch: batch as i32,
                    cin: cin as i32,
                    cout: cout as i32,
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
                    weights_per_image: false,
                };
                let mut steps = vec![Step::Gemm { shape, x, w, y }];
                if !fuse.hand_off {
                    steps.push(bias_step());
                }
                steps
            }
            ConvImpl::GemmScaled => {
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
                if kernel != 1 || stride != 1 || shape.groups != 1 || res_in != res_out || hw == 1 {
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
                    .map_err(|e| driver_error(block, e))?;
                let wn_p = self.ptr(&wn);
                workspaces.push(wn);
                let shape = PointwiseShape {
                    batch: shape.batch,
                    cin: shape.cin,
                    cout: shape.cout,
                    hw,
                    weights_per_image: true,
                };
                // The gate is applied: no in-place scale below.
                return Ok(vec![
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
                    bias_step(),
                ]);
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
        // kernels of their own, and everything but the folded product SE's
        // scale.
        if let Some(gate) = fuse.scale {
            let hw_in = (res_in * res_in) as i32;
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
}
