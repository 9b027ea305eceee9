//! What an engine's output must be, engine-neutral: seeded weights drawn
//! the same way by every engine ([`weights`]), a plain CPU forward pass of
//! the layers [`space::layers`] lists ([`forward`]), and the check both
//! engines' `verify` runs against it ([`check`], generic over
//! [`ReadsOutput`]).
//!
//! A library layer beside `measure`: it may use `space`, `crate::error` and
//! `crate::measure`, never the CUDA engine, clap or anyhow
//! (`scripts/check-layers.sh`), so that the CPU engine's crate uses it
//! without the CUDA one. Inside the crate, imports name the submodule; the
//! re-exports below are for other crates.

pub mod check;
pub mod forward;
pub mod weights;

pub use check::{
    check, check_blocks, check_tfnas_a, compare, failed, sample_blocks, Comparison, ReadsOutput,
    TOLERANCE,
};
pub use forward::{activate, reference_forward, reference_layer};
pub use weights::{fold_bn, random_params, BatchNorm, Params, Rng};
