//! Enqueuing one step, by family: the library calls (cuDNN, cuBLAS) and the
//! engine's NVRTC kernels (element-wise, depthwise, direct, SE, reductions).

use super::*;

/// The launch of an element-wise kernel over `total` elements: one thread
/// per element, in a grid-stride loop.
fn elementwise(total: i64) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid_for(total as usize), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl CudaEngine {
    /// The library calls: a cuDNN convolution or a cuBLAS product.
    pub(super) fn launch_library(&self, step: &Step, block: &str) -> Result<()> {
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
    pub(super) fn launch_elementwise(&self, step: &Step, block: &str) -> Result<()> {
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

    /// The depthwise convolutions: a thread per output, or a thread block
    /// per plane ([`Self::launch_dw_plane`]).
    pub(super) fn launch_depthwise(&self, step: &Step, block: &str) -> Result<()> {
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
            Step::DwPlane { .. } => self.launch_dw_plane(step, block),
            _ => unreachable!("launch_depthwise is called for its own steps only"),
        }
    }

    /// A depthwise convolution with a thread block per plane, with its
    /// optional prologue (`pre_b`, `pre_act`) and pool (`pooled`).
    fn launch_dw_plane(&self, step: &Step, block: &str) -> Result<()> {
        let Step::DwPlane {
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
        } = step
        else {
            unreachable!("launch_dw_plane is called for Step::DwPlane only")
        };
        // Safety: the step's pointers are live buffers of the prepared
        // workload (`pre_b` and `pooled` may be null, which the kernel
        // checks), its arguments match the kernel's signature in
        // kernels/compute.cu, and `shared_bytes` is within the limit set on
        // the function.
        unsafe {
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
        .in_block(block)
    }

    /// The direct dense convolution (the stem's candidate without cuDNN).
    pub(super) fn launch_direct(&self, step: &Step, block: &str) -> Result<()> {
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

    /// SE's two layers and its gate, applied to a map or folded into
    /// weights.
    pub(super) fn launch_se(&self, step: &Step, block: &str) -> Result<()> {
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
    pub(super) fn launch_reduction(&self, step: &Step, block: &str) -> Result<()> {
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
}
