//! A small safe layer over cuDNN's raw forward convolution, owning its
//! handle and descriptors. cudarc's safe cuDNN types borrow device slices at
//! every launch, which does not fit kernels captured once into a graph and
//! replayed; here launches take raw device pointers the engine keeps alive.
//!
//! Drops ignore errors instead of panicking: a panicking drop after a cuDNN
//! error hid the original error on the GPU machine (docs/gpu-facts.md pitfall 5).

use std::ffi::c_void;

use cudarc::cudnn::{result, sys, CudnnError};
use cudarc::driver::sys::CUdeviceptr;

pub struct Handle(sys::cudnnHandle_t);

impl Handle {
    /// A handle whose work goes to `stream`.
    pub fn new(stream: cudarc::driver::sys::CUstream) -> Result<Self, CudnnError> {
        let h = Handle(result::create_handle()?);
        // Safety: the handle was just created; the stream outlives it (the
        // engine drops the handle before its stream).
        unsafe { result::set_stream(h.0, stream as sys::cudaStream_t) }?;
        Ok(h)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Safety: created by `create_handle` and destroyed only here.
        let _ = unsafe { result::destroy_handle(self.0) };
    }
}

/// An owning wrapper of a cuDNN descriptor, destroyed (errors ignored, as
/// for the handle) when dropped.
macro_rules! descriptor {
    ($name:ident, $raw:ty, $destroy:path) => {
        struct $name($raw);

        impl Drop for $name {
            fn drop(&mut self) {
                // Safety: created by the matching `create_*` call and
                // destroyed only here.
                let _ = unsafe { $destroy(self.0) };
            }
        }
    };
}

descriptor!(
    TensorDesc,
    sys::cudnnTensorDescriptor_t,
    result::destroy_tensor_descriptor
);
descriptor!(
    FilterDesc,
    sys::cudnnFilterDescriptor_t,
    result::destroy_filter_descriptor
);
descriptor!(
    ActivationDesc,
    sys::cudnnActivationDescriptor_t,
    sys::cudnnDestroyActivationDescriptor
);
descriptor!(
    ConvDesc,
    sys::cudnnConvolutionDescriptor_t,
    result::destroy_convolution_descriptor
);

/// The math every convolution runs with: `CUDNN_DEFAULT_MATH`, which on
/// Ampere and newer lets cuDNN run fp32 convolutions on TF32 tensor cores.
/// It is what PyTorch sets for fp32 when `torch.backends.cudnn.allow_tf32`
/// is true (its default), so the engine and the PyTorch reference compute
/// alike. Set explicitly (not left to the library) and named in the table's
/// fingerprint through [`MATH_NAME`].
pub const MATH: sys::cudnnMathType_t = sys::cudnnMathType_t::CUDNN_DEFAULT_MATH;

/// How [`MATH`] is described in the engine's name.
pub const MATH_NAME: &str = "cudnn-default-math-tf32";

/// Every forward algorithm, the candidates timed per shape.
pub const ALGORITHMS: [sys::cudnnConvolutionFwdAlgo_t; 8] = [
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_GEMM,
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_DIRECT,
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_FFT,
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING,
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD,
    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED,
];

/// The shape of one fp32 NCHW convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    pub batch: i32,
    pub cin: i32,
    pub cout: i32,
    pub res_in: i32,
    pub res_out: i32,
    pub kernel: i32,
    pub stride: i32,
    pub groups: i32,
}

/// The device buffers of one convolution launch. `bias` and `z` are read
/// by a fused convolution only ([`Conv::fused`]); `z` is the residual, or
/// `y` when there is none (then scaled by zero).
#[derive(Clone, Copy, Debug)]
pub struct ConvIo {
    pub x: CUdeviceptr,
    pub w: CUdeviceptr,
    pub y: CUdeviceptr,
    pub bias: CUdeviceptr,
    pub z: CUdeviceptr,
    pub has_z: bool,
    pub workspace: CUdeviceptr,
    pub workspace_bytes: usize,
}

/// What `cudnnConvolutionBiasActivationForward` can apply after the
/// convolution: ReLU (with any algorithm that applies), or nothing (cuDNN
/// allows identity with `IMPLICIT_PRECOMP_GEMM` only). Swish and hard swish
/// it cannot fuse, so those stay with the engine's own kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FusedAct {
    Identity,
    Relu,
}

/// The descriptors of the bias and activation a fused convolution adds.
struct Fusion {
    bias: TensorDesc,
    act: ActivationDesc,
}

/// The descriptors of one convolution: bias-free (the engine then adds the
/// folded bias with its activation kernel), or fused with its bias,
/// activation and residual into one cuDNN call.
pub struct Conv {
    x: TensorDesc,
    w: FilterDesc,
    conv: ConvDesc,
    y: TensorDesc,
    fusion: Option<Fusion>,
    pub shape: ConvShape,
}

impl Conv {
    pub fn new(s: ConvShape) -> Result<Self, CudnnError> {
        let f32t = sys::cudnnDataType_t::CUDNN_DATA_FLOAT;
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let x = TensorDesc(result::create_tensor_descriptor()?);
        let y = TensorDesc(result::create_tensor_descriptor()?);
        let w = FilterDesc(result::create_filter_descriptor()?);
        let conv = ConvDesc(result::create_convolution_descriptor()?);
        let pad = s.kernel / 2;
        // Safety: each descriptor was just created and is set once.
        unsafe {
            result::set_tensor4d_descriptor(x.0, nchw, f32t, [s.batch, s.cin, s.res_in, s.res_in])?;
            result::set_tensor4d_descriptor(
                y.0,
                nchw,
                f32t,
                [s.batch, s.cout, s.res_out, s.res_out],
            )?;
            result::set_filter4d_descriptor(
                w.0,
                f32t,
                nchw,
                [s.cout, s.cin / s.groups, s.kernel, s.kernel],
            )?;
            result::set_convolution2d_descriptor(
                conv.0,
                pad,
                pad,
                s.stride,
                s.stride,
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                f32t,
            )?;
            if s.groups > 1 {
                result::set_convolution_group_count(conv.0, s.groups)?;
            }
            result::set_convolution_math_type(conv.0, MATH)?;
        }
        Ok(Conv {
            x,
            w,
            conv,
            y,
            fusion: None,
            shape: s,
        })
    }

    /// The same convolution computing `y = act(conv(x) + bias + z)` in one
    /// call, as `cudnnConvolutionBiasActivationForward` does: one pass over
    /// the output instead of a second kernel reading and writing it again.
    pub fn fused(s: ConvShape, act: FusedAct) -> Result<Self, CudnnError> {
        let mut conv = Conv::new(s)?;
        let bias = TensorDesc(result::create_tensor_descriptor()?);
        let desc = ActivationDesc(result::create_activation_descriptor()?);
        let mode = match act {
            FusedAct::Identity => sys::cudnnActivationMode_t::CUDNN_ACTIVATION_IDENTITY,
            FusedAct::Relu => sys::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU,
        };
        // Safety: both descriptors were just created and are set once.
        unsafe {
            result::set_tensor4d_descriptor(
                bias.0,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
                [1, s.cout, 1, 1],
            )?;
            // The coefficient is the clipping ceiling of clipped ReLU and
            // unused by plain ReLU and identity.
            result::set_activation_descriptor(
                desc.0,
                mode,
                sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN,
                0.0,
            )?;
        }
        conv.fusion = Some(Fusion { bias, act: desc });
        Ok(conv)
    }

    /// The output dimensions cuDNN computes for this convolution, which
    /// must equal the ones the engine allocated.
    pub fn output_dims(&self) -> Result<[i32; 4], CudnnError> {
        let mut d = [0i32; 4];
        let [n, c, h, w] = &mut d;
        // Safety: the descriptors are alive; the four pointers are valid.
        unsafe {
            sys::cudnnGetConvolution2dForwardOutputDim(self.conv.0, self.x.0, self.w.0, n, c, h, w)
        }
        .result()?;
        Ok(d)
    }

    /// Workspace bytes `algo` needs, or the error saying it does not apply.
    pub fn workspace_size(
        &self,
        handle: &Handle,
        algo: sys::cudnnConvolutionFwdAlgo_t,
    ) -> Result<usize, CudnnError> {
        // Safety: all descriptors are alive and describe one convolution.
        unsafe {
            result::get_convolution_forward_workspace_size(
                handle.0,
                self.x.0,
                self.w.0,
                self.conv.0,
                self.y.0,
                algo,
            )
        }
    }

    /// Enqueues `y = conv(x, w)` on the handle's stream, or for a fused
    /// convolution `y = act(conv(x, w) + bias + z)`.
    ///
    /// # Safety
    /// `io.x`, `io.w` and `io.y` must be live device allocations of this
    /// shape's sizes, and `io.workspace` one of at least
    /// `io.workspace_bytes`; for a fused convolution also `io.bias` (`cout`
    /// floats) and `io.z` (the output's size).
    pub unsafe fn launch(
        &self,
        handle: &Handle,
        algo: sys::cudnnConvolutionFwdAlgo_t,
        io: &ConvIo,
    ) -> Result<(), CudnnError> {
        let ConvIo {
            x,
            w,
            y,
            bias,
            z,
            has_z,
            workspace,
            workspace_bytes,
        } = *io;
        let (alpha, beta) = (1.0f32, 0.0f32);
        if let Some(f) = &self.fusion {
            let alpha2 = if has_z { 1.0f32 } else { 0.0f32 };
            return result::convolution_bias_activation_forward(
                handle.0,
                (&alpha) as *const f32 as *const c_void,
                self.x.0,
                x as *const c_void,
                self.w.0,
                w as *const c_void,
                self.conv.0,
                algo,
                workspace as *mut c_void,
                workspace_bytes,
                (&alpha2) as *const f32 as *const c_void,
                self.y.0,
                z as *const c_void,
                f.bias.0,
                bias as *const c_void,
                f.act.0,
                self.y.0,
                y as *mut c_void,
            );
        }
        result::convolution_forward(
            handle.0,
            (&alpha) as *const f32 as *const c_void,
            self.x.0,
            x as *const c_void,
            self.w.0,
            w as *const c_void,
            self.conv.0,
            algo,
            workspace as *mut c_void,
            workspace_bytes,
            (&beta) as *const f32 as *const c_void,
            self.y.0,
            y as *mut c_void,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptors need no GPU: where cuDNN loads, every conv shape the
    /// engine uses (plain, strided, depthwise) must be accepted. Skips
    /// where cuDNN is absent.
    #[test]
    fn descriptors_accept_the_engines_shapes() {
        // Safety: only tries to dlopen libcudnn.
        if !unsafe { sys::is_culib_present() } {
            eprintln!("skipped: libcudnn cannot be loaded on this machine");
            return;
        }
        let shapes = [
            (3, 32, 224, 112, 3, 2, 1),
            (40, 240, 28, 28, 1, 1, 1),
            (240, 240, 28, 14, 5, 2, 240),
            (32, 32, 112, 112, 3, 1, 32),
        ];
        for (cin, cout, res_in, res_out, kernel, stride, groups) in shapes {
            let shape = ConvShape {
                batch: 32,
                cin,
                cout,
                res_in,
                res_out,
                kernel,
                stride,
                groups,
            };
            let conv = Conv::new(shape)
                .unwrap_or_else(|e| panic!("{shape:?}: {}", crate::cuda::error::cudnn_msg(&e)));
            assert_eq!(conv.output_dims().unwrap(), [32, cout, res_out, res_out]);
            // The math type the fingerprint names is the one set.
            let mut math = sys::cudnnMathType_t::CUDNN_FMA_MATH;
            // Safety: the descriptor is alive; one enum written.
            unsafe { sys::cudnnGetConvolutionMathType(conv.conv.0, &mut math) }
                .result()
                .unwrap();
            assert_eq!(math, MATH);
            assert!(crate::cuda::ENGINE_NAME.contains(MATH_NAME));
            // The fused form's bias and activation descriptors.
            for act in [FusedAct::Identity, FusedAct::Relu] {
                let fused = Conv::fused(shape, act).unwrap_or_else(|e| {
                    panic!("{shape:?} {act:?}: {}", crate::cuda::error::cudnn_msg(&e))
                });
                assert!(fused.fusion.is_some());
                assert_eq!(fused.output_dims().unwrap(), [32, cout, res_out, res_out]);
            }
        }
    }
}
