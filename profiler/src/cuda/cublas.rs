//! A small safe layer over cuBLAS for the one thing the engine asks of it:
//! a 1x1 convolution as a batched matrix product, a candidate timed against
//! cuDNN's algorithms for every pointwise shape (the issue's "cuDNN, or
//! cuBLAS where faster"). Like [`super::cudnn`], launches take raw device
//! pointers so that they can be captured into a graph, and the drop ignores
//! errors instead of panicking (cudarc's `CudaBlas` unwraps in its drop,
//! which would hide the error that led to it: docs/gpu-facts.md pitfall 5).

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::cublas::result::CublasError;
use cudarc::cublas::{result, sys};
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};

use super::error::CudaError;

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

impl Blas {
    /// A handle whose work goes to `stream`, with a [`WORKSPACE_BYTES`]
    /// workspace of its own. The stream must outlive the handle (the engine
    /// drops it last).
    pub fn new(stream: &Arc<CudaStream>) -> Result<Self, CudaError> {
        // cublasCreate works on the calling thread's current context.
        stream.context().bind_to_thread()?;
        let workspace = stream.alloc_zeros::<u8>(WORKSPACE_BYTES)?;
        // The engine runs with event tracking off: the guard does nothing.
        let wp = workspace.device_ptr(stream).0;
        let b = Blas {
            handle: result::create_handle()?,
            _workspace: workspace,
        };
        // Safety: the handle was just created; the workspace lives as long
        // as it, and the caller keeps the stream alive longer.
        unsafe {
            result::set_stream(b.handle, stream.cu_stream() as sys::cudaStream_t)?;
            sys::cublasSetWorkspace_v2(b.handle, wp as *mut c_void, WORKSPACE_BYTES).result()?;
        }
        Ok(b)
    }

    /// Enqueues the 1x1 convolution `y[n] = w · x[n]` for each of `batch`
    /// images on NCHW tensors, with the arguments [`gemm_args`] maps it to.
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
        let g = gemm_args(shape);
        let ptr = |o: Operand| match o {
            Operand::X => x,
            Operand::W => w,
        } as *const c_void;
        let op = |t: bool| {
            if t {
                sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let f32t = sys::cudaDataType::CUDA_R_32F;
        result::gemm_strided_batched_ex(
            self.handle,
            op(g.trans_a),
            sys::cublasOperation_t::CUBLAS_OP_N,
            g.m,
            g.n,
            g.k,
            (&alpha) as *const f32 as *const c_void,
            ptr(g.a),
            f32t,
            g.lda,
            g.stride_a,
            ptr(g.b),
            f32t,
            g.ldb,
            g.stride_b,
            (&beta) as *const f32 as *const c_void,
            y as *mut c_void,
            f32t,
            g.ldc,
            g.stride_c,
            g.count,
            COMPUTE,
            sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    }
}

/// Which buffer a GEMM operand is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    X,
    W,
}

/// A strided batched GEMM in cuBLAS's column-major terms:
/// `C = op(A) · B` per batch, `op` transposing A when `trans_a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmArgs {
    pub trans_a: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub a: Operand,
    pub lda: i32,
    pub stride_a: i64,
    pub b: Operand,
    pub ldb: i32,
    pub stride_b: i64,
    pub ldc: i32,
    pub stride_c: i64,
    pub count: i32,
}

/// How a 1x1 convolution on row-major NCHW buffers (`w` is `cout × cin`,
/// `x[n]` is `cin × hw`, `y[n]` is `cout × hw`) becomes one cuBLAS call,
/// with no copy: the column-major view of a row-major matrix is its
/// transpose.
/// - On a map (`hw > 1`): per image, `y[n]ᵀ (hw × cout) = x[n]ᵀ (hw × cin)
///   · wᵀ (cin × cout)`, batched over images with the weights shared
///   (stride 0), or each image's own with `weights_per_image`.
/// - On a 1x1 map with shared weights (a fully connected layer): one
///   product over the whole batch, `yᵀ (cout × batch) = w (cout × cin) · xᵀ (cin × batch)`, where
///   `w` is the transpose of its column-major view; batching over images
///   would make `batch` products of one row each.
pub fn gemm_args(shape: PointwiseShape) -> GemmArgs {
    let PointwiseShape {
        batch,
        cin,
        cout,
        hw,
        weights_per_image,
    } = shape;
    if hw == 1 && !weights_per_image {
        GemmArgs {
            trans_a: true,
            m: cout,
            n: batch,
            k: cin,
            a: Operand::W,
            lda: cin,
            stride_a: 0,
            b: Operand::X,
            ldb: cin,
            stride_b: 0,
            ldc: cout,
            stride_c: 0,
            count: 1,
        }
    } else {
        GemmArgs {
            trans_a: false,
            m: hw,
            n: cout,
            k: cin,
            a: Operand::X,
            lda: hw,
            stride_a: i64::from(cin) * i64::from(hw),
            b: Operand::W,
            ldb: cin,
            stride_b: if weights_per_image {
                i64::from(cout) * i64::from(cin)
            } else {
                0
            },
            ldc: hw,
            stride_c: i64::from(cout) * i64::from(hw),
            count: batch,
        }
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
    /// `w` holds one `cout × cin` matrix per image (SE's scale folded in,
    /// `se_weights` in kernels.rs) instead of one shared by all.
    pub weights_per_image: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cuBLAS's definition of a strided batched GEMM, column-major:
    /// `C[i + j·ldc] = Σ_l op(A)[i, l] · B[l + j·ldb]`, with
    /// `op(A)[i, l] = A[i + l·lda]`, or `A[l + i·lda]` transposed.
    fn reference_gemm(g: &GemmArgs, x: &[f32], w: &[f32], c_len: usize) -> Vec<f32> {
        let buf = |o: Operand| if o == Operand::X { x } else { w };
        let (a, b) = (buf(g.a), buf(g.b));
        let mut c = vec![f32::NAN; c_len];
        for batch in 0..g.count as usize {
            let (oa, ob) = (batch * g.stride_a as usize, batch * g.stride_b as usize);
            let oc = batch * g.stride_c as usize;
            for i in 0..g.m as usize {
                for j in 0..g.n as usize {
                    c[oc + i + j * g.ldc as usize] = (0..g.k as usize)
                        .map(|l| {
                            let ai = if g.trans_a {
                                l + i * g.lda as usize
                            } else {
                                i + l * g.lda as usize
                            };
                            a[oa + ai] * b[ob + l + j * g.ldb as usize]
                        })
                        .sum();
                }
            }
        }
        c
    }

    /// The argument mapping of [`Blas::pointwise`], checked on the CPU: a
    /// plain column-major GEMM with [`gemm_args`]' arguments computes the
    /// row-major NCHW 1x1 convolution, on a map and on a 1x1 map (a fully
    /// connected layer), writing every output.
    #[test]
    fn the_transposed_product_is_the_pointwise_convolution() {
        let cases = [
            (2usize, 3usize, 4usize, 5usize, false),
            (3, 5, 4, 1, false),
            (1, 2, 3, 1, false),
            (2, 3, 4, 5, true),
            (3, 2, 2, 1, true),
        ];
        for (batch, cin, cout, hw, per_image) in cases {
            let x: Vec<f32> = (0..batch * cin * hw)
                .map(|i| (i % 7) as f32 - 3.0)
                .collect();
            let images = if per_image { batch } else { 1 };
            let w: Vec<f32> = (0..images * cout * cin)
                .map(|i| (i % 5) as f32 * 0.5 - 1.0 + (i / (cout * cin)) as f32)
                .collect();
            // The convolution, row-major NCHW, image n with weights
            // w[n] when they are per image.
            let mut want = vec![0.0f32; batch * cout * hw];
            for n in 0..batch {
                let wn = &w[if per_image { n * cout * cin } else { 0 }..];
                for o in 0..cout {
                    for p in 0..hw {
                        want[(n * cout + o) * hw + p] = (0..cin)
                            .map(|c| wn[o * cin + c] * x[(n * cin + c) * hw + p])
                            .sum();
                    }
                }
            }
            let shape = PointwiseShape {
                batch: batch as i32,
                cin: cin as i32,
                cout: cout as i32,
                hw: hw as i32,
                weights_per_image: per_image,
            };
            let g = gemm_args(shape);
            let one_product = hw == 1 && !per_image;
            assert_eq!(g.count, if one_product { 1 } else { batch as i32 }, "{g:?}");
            let got = reference_gemm(&g, &x, &w, want.len());
            assert_eq!(got, want, "{shape:?}: {g:?}");
        }
    }
}
