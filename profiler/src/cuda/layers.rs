//! The former home of the host-side layer plan, kept as paths for code
//! written against them (`profiler::cuda::layers::block_layers`, ...): the
//! shapes now live in [`space::layers`], the seeded weights and the CPU
//! reference in [`crate::reference`], and the kernels' activation codes in
//! [`crate::cuda::kernels::act_code`]. Nothing inside the crate imports
//! from here.

pub use crate::cuda::kernels::act_code;
pub use crate::reference::forward::{activate, reference_forward, reference_layer};
pub use crate::reference::weights::{fold_bn, random_params, BatchNorm, Params, Rng};
pub use space::layers::{block_input_len, block_layers, conv_out, Layer};
