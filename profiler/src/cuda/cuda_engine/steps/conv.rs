//! How a convolution lowers to steps for each way of running it
//! ([`ConvImpl`]), with what it takes over from the layers around it
//! ([`Fuse`]).

use super::*;

impl CudaEngine {
    /// The steps of one convolution with its bias, activation and residual,
    /// and what `fuse` adds, run by `how`.
    pub(in crate::cuda::cuda_engine) fn conv_steps(
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
