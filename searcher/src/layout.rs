//! Channels-last: NHWC in memory under NCHW sizes, as PyTorch's
//! `memory_format=torch.channels_last` (which tch does not bind). On a
//! CPU, libtorch's oneDNN convolutions, batch norm and pooling then run
//! their NHWC kernels: the same training step of TF-NAS-A took 340-373 ms
//! in PyTorch channels-last against 454-485 ms contiguous, alternated on
//! the 2-core VM (docs/train-export.md). `searcher train` holds its
//! network so on the CPU; a GPU's fp32 kernels were not measured with it
//! here, so GPU networks stay contiguous.
//!
//! The search's supernet stays contiguous, on purpose. Held channels-last
//! it searched 1.22-1.32x faster on the CPU (the main job's search, 115 s
//! against 140-152 s, alternated), but the NHWC kernels' sums depend on
//! how the batch is split: two processes then ended 1.0e-3 from one in α
//! and β after the test's three epochs (2.6e-6 contiguous), too close to
//! what batch norm per rank does (8.4e-3) for a data-parallel search to
//! be shown to be the single process's (`tests/searcher_distributed.rs`).

use tch::{Device, Tensor};

/// Whether networks on `device` are held channels-last.
pub fn wanted_on(device: Device) -> bool {
    device == Device::Cpu
}

/// `x` with channels-last strides under the same sizes.
pub fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Every 4-d tensor of `tensors` (convolutions' weights) re-laid
/// channels-last in place: each handle to it (the optimizer's, the
/// module's) sees the new strides. Files are written `.contiguous()`, so
/// checkpoints and weights keep the standard layout.
pub fn hold_channels_last<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) {
    for v in tensors {
        if v.dim() == 4 {
            let nhwc = channels_last(&v.detach());
            let mut v = v.shallow_clone();
            tch::no_grad(|| v.set_data(&nhwc));
        }
    }
}
