//! Reading the prepared workload's output back, for the numerics check
//! against the reference (`crate::reference::check`).

use super::*;
use crate::reference::check::ReadsOutput;

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
        // The raw calls below use whichever context is current on this
        // thread; make it the engine's.
        self.ctx.bind_to_thread().in_block(&block)?;
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
