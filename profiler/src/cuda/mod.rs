//! The CUDA engine, through cudarc only: raw cuDNN calls and NVRTC kernel
//! source at the bottom ([`cudnn`], [`kernels`]), device opening and
//! describing ([`device`]), one error type for all of them ([`error`]), and
//! the [`Engine`](crate::measure::engine::Engine) on top ([`CudaEngine`]),
//! which lowers the layers of [`space::layers`] with the seeded weights of
//! [`crate::reference`] and is checked against its CPU reference
//! ([`verify`]'s GPU tests).
//!
//! It compiles without CUDA (cudarc loads every library at run time) and
//! reports a missing driver, device or library as an error, never a panic.

// The crate's only unsafe code (the workspace denies it elsewhere): raw
// cuDNN, cuBLAS and driver calls and kernel launches through cudarc.
#![allow(unsafe_code)]

pub mod cublas;
pub mod cuda_engine;
pub mod cudnn;
pub mod device;
pub mod error;
pub mod kernels;
pub mod verify;

#[cfg(test)]
mod tests;

pub use cuda_engine::{ConvImpl, CudaEngine, ENGINE_NAME};
pub use error::{CudaError, InBlock};
