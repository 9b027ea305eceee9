//! Device buffers: uploading, allocating, the raw pointers every launch
//! takes, and a convolution's weights and bias.

use super::*;

impl CudaEngine {
    pub(super) fn ptr<T>(&self, slice: &CudaSlice<T>) -> CUdeviceptr {
        // Event tracking is off, so the returned guard does nothing.
        let (p, _guard) = slice.device_ptr(&self.stream);
        p
    }

    pub(super) fn upload(&self, block: &str, host: &[f32]) -> Result<CudaSlice<f32>> {
        self.stream.clone_htod(host).in_block(block)
    }

    pub(super) fn zeros(&self, block: &str, n: usize) -> Result<CudaSlice<f32>> {
        self.stream.alloc_zeros::<f32>(n.max(1)).in_block(block)
    }

    pub(super) fn function(&self, name: &'static str) -> &CudaFunction {
        &self.functions[name]
    }

    /// A convolution's buffers: its weights and bias from `p`, uploaded and
    /// kept in `buffers`, with its input `x`, output `y` and the block's
    /// input for a residual.
    pub(super) fn conv_bufs(
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
}
