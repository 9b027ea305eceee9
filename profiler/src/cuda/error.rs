//! The CUDA engine's one error type: what cudarc's driver, cuDNN and cuBLAS
//! calls report, converted with `#[from]`, and the [`InBlock`] adapter that
//! names the block a call failed in and turns the error into the crate's
//! [`ProfilerError`] (out of memory told apart), instead of a `map_err`
//! closure at every call.

use cudarc::cublas::result::CublasError;
use cudarc::cublas::sys as cublas_sys;
use cudarc::cudnn::{sys as cudnn_sys, CudnnError};
use cudarc::driver::{sys, DriverError};

use crate::error::{ProfilerError, Result};

/// A driver error as text: its name and description.
pub fn driver_msg(e: &DriverError) -> String {
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    let text = e
        .error_string()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{name}: {text}")
}

/// The status name of a cuDNN error.
pub fn cudnn_msg(e: &CudnnError) -> String {
    format!("{:?}", e.0)
}

/// The status name of a cuBLAS error.
pub fn cublas_msg(e: &CublasError) -> String {
    format!("{:?}", e.0)
}

/// A failed call into the CUDA libraries.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("{0:?}")]
    Driver(#[from] DriverError),
    #[error("{}", cudnn_msg(.0))]
    Cudnn(#[from] CudnnError),
    #[error("{}", cublas_msg(.0))]
    Cublas(#[from] CublasError),
    /// One of the above while preparing or running `block`.
    #[error("{error} in {block}")]
    In {
        block: String,
        #[source]
        error: Box<CudaError>,
    },
}

impl CudaError {
    /// The crate's error for this failure in `block`.
    pub fn in_block(self, block: &str) -> ProfilerError {
        let block = block.to_string();
        match self {
            CudaError::Driver(e) if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                ProfilerError::OutOfMemory { block }
            }
            // cuDNN's and cuBLAS's own device allocations (workspaces,
            // plans) run out of GPU memory too; a build must say so and
            // not that no candidate ran.
            CudaError::Cudnn(CudnnError(
                cudnn_sys::cudnnStatus_t::CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED,
            ))
            | CudaError::Cublas(CublasError(
                cublas_sys::cublasStatus_t::CUBLAS_STATUS_ALLOC_FAILED,
            )) => ProfilerError::OutOfMemory { block },
            CudaError::Driver(e) => ProfilerError::Cuda {
                block,
                msg: driver_msg(&e),
            },
            CudaError::Cudnn(e) => ProfilerError::Cudnn {
                block,
                msg: cudnn_msg(&e),
            },
            CudaError::Cublas(e) => ProfilerError::Cuda {
                block,
                msg: format!("cuBLAS: {}", cublas_msg(&e)),
            },
            CudaError::In { block, error } => error.in_block(&block),
        }
    }
}

impl From<CudaError> for ProfilerError {
    fn from(e: CudaError) -> ProfilerError {
        e.in_block("the CUDA engine")
    }
}

/// Names the block a CUDA call failed in: `stream.synchronize().in_block(block)?`.
pub trait InBlock<T> {
    fn in_block(self, block: &str) -> Result<T>;
}

impl<T, E: Into<CudaError>> InBlock<T> for std::result::Result<T, E> {
    fn in_block(self, block: &str) -> Result<T> {
        self.map_err(|e| e.into().in_block(block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_is_told_apart_and_every_error_names_its_block() {
        let oom: std::result::Result<(), _> =
            Err(DriverError(sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY));
        let err = oom.in_block("dw_k3").unwrap_err();
        assert!(
            matches!(&err, ProfilerError::OutOfMemory { block } if block == "dw_k3"),
            "{err}"
        );
        // (Other driver errors are described by the driver itself, which
        // this test cannot load everywhere.)
        let cudnn: std::result::Result<(), _> = Err(CudnnError(
            cudarc::cudnn::sys::cudnnStatus_t::CUDNN_STATUS_BAD_PARAM,
        ));
        let err = cudnn.in_block("pw").unwrap_err();
        assert!(err.to_string().starts_with("cuDNN failed in pw: "), "{err}");
        // Placed in a block by `?` alone, the block is still named.
        let placed = ProfilerError::from(CudaError::In {
            block: "se".into(),
            error: Box::new(CudaError::Driver(DriverError(
                sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY,
            ))),
        });
        assert!(matches!(placed, ProfilerError::OutOfMemory { ref block } if block == "se"));
    }

    #[test]
    fn the_libraries_running_out_of_device_memory_is_out_of_memory_too() {
        let cudnn: std::result::Result<(), _> = Err(CudnnError(
            cudnn_sys::cudnnStatus_t::CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED,
        ));
        let err = cudnn.in_block("dw").unwrap_err();
        assert!(
            matches!(&err, ProfilerError::OutOfMemory { block } if block == "dw"),
            "{err}"
        );
        let cublas: std::result::Result<(), _> = Err(CublasError(
            cublas_sys::cublasStatus_t::CUBLAS_STATUS_ALLOC_FAILED,
        ));
        let err = cublas.in_block("pw").unwrap_err();
        assert!(
            matches!(&err, ProfilerError::OutOfMemory { block } if block == "pw"),
            "{err}"
        );
        // The host running out is not the GPU's memory.
        let host: std::result::Result<(), _> = Err(CudnnError(
            cudnn_sys::cudnnStatus_t::CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED,
        ));
        assert!(!matches!(
            host.in_block("dw").unwrap_err(),
            ProfilerError::OutOfMemory { .. }
        ));
    }
}
