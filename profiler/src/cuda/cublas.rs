//! A small safe layer over cuBLAS for the one thing the engine asks of it:
//! a 1x1 convolution as a batched matrix product, a candidate timed against
//! cuDNN's algorithms for every pointwise shape (the issue's "cuDNN, or
//! cuBLAS where faster"). Like [`super::cudnn`], launches take raw device
//! pointers so that they can be captured into a graph, and the drop ignores
//! errors instead of panicking (cudarc's `CudaBlas` unwraps in its drop,
//! which would hide the error that led to it: gpu-facts pitfall 5).

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::cublas::result::CublasError;
use cudarc::cublas::{result, sys};
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DriverError};

/// The status name of a cuBLAS error.
pub fn cublas_msg(e: &CublasError) -> String {
    format!("{:?}", e.0)
}

impl std::fmt::Display for BlasError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlasError::Cublas(e) => f.write_str(&cublas_msg(e)),
            BlasError::Driver(e) => write!(f, "{e:?}"),
        }
    }
}

/// The compute type of every product: fp32 in and out, TF32 tensor cores
/// inside, the same precision cuDNN's default math gives the convolutions
/// (`cudnn::MATH`), so that the two candidates compute alike and the faster
/// one can be chosen without changing the numbers.
pub const COMPUTE: sys::cublasComputeType_t =
    sys::cublasComputeType_t::CUBLAS_COMPUTE_32F_FAST_TF32;

/// The workspace cuBLAS is given up front: NVIDIA's recommendation for
/// Hopper. Set explicitly so that nothing is allocated while a graph is
/// being captured.
pub const WORKSPACE_BYTES: usize = 32 << 20;

/// A cuBLAS handle on one stream with the workspace it owns. The handle is
/// destroyed in `drop` before the fields (the workspace) are freed, also
/// when the engine's setup fails half-way.
pub struct Blas {
    handle: sys::cublasHandle_t,
    _workspace: CudaSlice<u8>,
}

/// Why cuBLAS could not be set up.
#[derive(Debug)]
pub enum BlasError {
    Cublas(CublasError),
    Driver(DriverError),
}

impl Blas {
    /// A handle whose work goes to `stream`, with a [`WORKSPACE_BYTES`]
    /// workspace of its own. The stream must outlive the handle (the engine
    /// drops it last).
    pub fn new(stream: &Arc<CudaStream>) -> Result<Self, BlasError> {
        // cublasCreate works on the calling thread's current context.
        stream
            .context()
            .bind_to_thread()
            .map_err(BlasError::Driver)?;
        let workspace = stream
            .alloc_zeros::<u8>(WORKSPACE_BYTES)
            .map_err(BlasError::Driver)?;
        // The engine runs with event tracking off: the guard does nothing.
        let wp = workspace.device_ptr(stream).0;
        let b = Blas {
            handle: result::create_handle().map_err(BlasError::Cublas)?,
            _workspace: workspace,
        };
        // Safety: the handle was just created; the workspace lives as long
        // as it, and the caller keeps the stream alive longer.
        unsafe {
            result::set_stream(b.handle, stream.cu_stream() as sys::cudaStream_t)
                .map_err(BlasError::Cublas)?;
            sys::cublasSetWorkspace_v2(b.handle, wp as *mut c_void, WORKSPACE_BYTES)
                .result()
                .map_err(BlasError::Cublas)?;
        }
        Ok(b)
    }

    /// Enqueues `y[n] = w · x[n]` for each of `batch` images of a 1x1
    /// convolution on NCHW tensors: `w` is `cout × cin`, `x[n]` is
    /// `cin × hw` and `y[n]` is `cout × hw`, all row-major. cuBLAS is
    /// column-major, so it computes the transposed product
    /// `y[n]ᵀ (hw × cout) = x[n]ᵀ (hw × cin) · wᵀ (cin × cout)`, whose
    /// column-major operands are exactly the row-major buffers: no copy,
    /// and the weights shared by every image (stride 0).
    ///
    /// # Safety
    /// `x`, `w` and `y` must be live device allocations of
    /// `batch·cin·hw`, `cout·cin` and `batch·cout·hw` floats.
    pub unsafe fn pointwise(
        &self,
        shape: PointwiseShape,
        x: CUdeviceptr,
        w: CUdeviceptr,
        y: CUdeviceptr,
    ) -> Result<(), CublasError> {
        let PointwiseShape {
            batch,
            cin,
            cout,
            hw,
        } = shape;
        let (alpha, beta) = (1.0f32, 0.0f32);
        let f32t = sys::cudaDataType::CUDA_R_32F;
        let no = sys::cublasOperation_t::CUBLAS_OP_N;
        result::gemm_strided_batched_ex(
            self.handle,
            no,
            no,
            hw,
            cout,
            cin,
            (&alpha) as *const f32 as *const c_void,
            x as *const c_void,
            f32t,
            hw,
            i64::from(cin) * i64::from(hw),
            w as *const c_void,
            f32t,
            cin,
            0,
            (&beta) as *const f32 as *const c_void,
            y as *mut c_void,
            f32t,
            hw,
            i64::from(cout) * i64::from(hw),
            batch,
            COMPUTE,
            sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
}

impl Drop for Blas {
    fn drop(&mut self) {
        // Safety: created by `create_handle` and destroyed only here, before
        // the workspace it uses is freed.
        let _ = unsafe { result::destroy_handle(self.handle) };
    }
}

/// The sizes of a 1x1, stride-1, ungrouped convolution as a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointwiseShape {
    pub batch: i32,
    pub cin: i32,
    pub cout: i32,
    pub hw: i32,
}

#[cfg(test)]
mod tests {
    /// The argument mapping of [`super::Blas::pointwise`], checked on the
    /// CPU: a plain column-major strided-batched GEMM with the arguments it
    /// passes computes the row-major NCHW 1x1 convolution.
    #[test]
    fn the_transposed_product_is_the_pointwise_convolution() {
        let (batch, cin, cout, hw) = (2usize, 3usize, 4usize, 5usize);
        let x: Vec<f32> = (0..batch * cin * hw)
            .map(|i| (i % 7) as f32 - 3.0)
            .collect();
        let w: Vec<f32> = (0..cout * cin)
            .map(|i| (i % 5) as f32 * 0.5 - 1.0)
            .collect();
        // The convolution, row-major NCHW.
        let mut want = vec![0.0f32; batch * cout * hw];
        for n in 0..batch {
            for o in 0..cout {
                for p in 0..hw {
                    want[(n * cout + o) * hw + p] = (0..cin)
                        .map(|c| w[o * cin + c] * x[(n * cin + c) * hw + p])
                        .sum();
                }
            }
        }
        // cuBLAS's definition: C = A·B column-major, C[i + j·ldc] =
        // Σ_l A[i + l·lda] · B[l + j·ldb], per batch with the strides, with
        // the arguments `pointwise` passes (m = hw, n = cout, k = cin; A = x
        // with lda = hw and stride cin·hw; B = w with ldb = cin and stride 0;
        // C = y with ldc = hw and stride cout·hw).
        let (m, n, k) = (hw, cout, cin);
        let (lda, stride_a, ldb, stride_b, ldc, stride_c) = (hw, cin * hw, cin, 0, hw, cout * hw);
        let mut got = vec![0.0f32; batch * cout * hw];
        for b in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    got[b * stride_c + i + j * ldc] = (0..k)
                        .map(|l| x[b * stride_a + i + l * lda] * w[b * stride_b + l + j * ldb])
                        .sum();
                }
            }
        }
        assert_eq!(got, want);
    }
}
