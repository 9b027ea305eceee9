//! The layers a block runs, as an inference graph would: batch norm already
//! folded into each convolution, the activation and residual add attached
//! to the layer they follow. Shapes only, engine-neutral: the profiler's
//! engines lower these to kernel launches or libtorch calls, its CPU
//! reference computes them, and [`BlockSpec::macs`]/[`BlockSpec::params`]
//! count them, so that every one of them agrees on what a block is.

use crate::block::{BlockKind, BlockSpec};
use crate::config::Activation;

/// One layer, on NCHW tensors of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// A convolution with folded BN: `groups == cin == cout` is depthwise.
    /// `act` follows it; `residual` adds the block's input after it.
    Conv {
        cin: u32,
        cout: u32,
        kernel: u32,
        stride: u32,
        groups: u32,
        res_in: u32,
        res_out: u32,
        act: Option<Activation>,
        residual: bool,
    },
    /// Squeeze-and-excite in place on a `channels × res × res` tensor:
    /// global pool, FC to `se` with bias and `act`, FC back with bias,
    /// sigmoid, channel scale.
    Se {
        channels: u32,
        se: u32,
        res: u32,
        act: Activation,
    },
    /// Global average pool to `N × channels`.
    Pool { channels: u32, res: u32 },
    /// Fully connected with bias on `N × cin`.
    Fc { cin: u32, cout: u32 },
}

impl Layer {
    /// Elements per image of the output.
    pub fn output_len(&self) -> usize {
        match *self {
            Layer::Conv { cout, res_out, .. } => (cout * res_out * res_out) as usize,
            Layer::Se { channels, res, .. } => (channels * res * res) as usize,
            Layer::Pool { channels, .. } => channels as usize,
            Layer::Fc { cout, .. } => cout as usize,
        }
    }

    /// A 1x1 convolution (stride 1, one group) on a `res × res` map: an
    /// expansion, a projection, a head's conv, or an FC layer seen as one.
    pub fn pointwise(
        cin: u32,
        cout: u32,
        res: u32,
        act: Option<Activation>,
        residual: bool,
    ) -> Layer {
        Layer::Conv {
            cin,
            cout,
            kernel: 1,
            stride: 1,
            groups: 1,
            res_in: res,
            res_out: res,
            act,
            residual,
        }
    }

    /// A fully connected layer as the 1x1 convolution on a 1x1 map it
    /// equals (the same weights, `cout × cin`, and bias); any other layer
    /// as it is.
    pub fn as_convolution(&self) -> Layer {
        match *self {
            Layer::Fc { cin, cout } => Layer::pointwise(cin, cout, 1, None, false),
            other => other,
        }
    }

    pub fn is_depthwise(&self) -> bool {
        matches!(*self, Layer::Conv { cin, cout, groups, .. } if groups > 1 && groups == cin && cin == cout)
    }

    /// Multiply-adds for one image: a convolution's (per output element,
    /// `cin / groups × k²`), SE's two FC layers, the FC layer; pooling,
    /// biases and activations are not counted.
    pub fn macs(&self) -> u64 {
        match *self {
            Layer::Conv {
                cin,
                cout,
                kernel,
                groups,
                res_out,
                ..
            } => {
                u64::from(res_out).pow(2)
                    * u64::from(cout)
                    * u64::from(cin / groups)
                    * u64::from(kernel).pow(2)
            }
            Layer::Se { channels, se, .. } => 2 * u64::from(channels) * u64::from(se),
            Layer::Pool { .. } => 0,
            Layer::Fc { cin, cout } => u64::from(cin) * u64::from(cout),
        }
    }

    /// Parameters as PyTorch counts them before folding: a convolution's
    /// weights and its BN's scale and shift (2 per output channel), SE's
    /// and the FC layer's weights and biases.
    pub fn params(&self) -> u64 {
        match *self {
            Layer::Conv {
                cin,
                cout,
                kernel,
                groups,
                ..
            } => {
                let cout = u64::from(cout);
                cout * u64::from(cin / groups) * u64::from(kernel).pow(2) + 2 * cout
            }
            Layer::Se { channels, se, .. } => {
                let (c, se) = (u64::from(channels), u64::from(se));
                2 * c * se + se + c
            }
            Layer::Pool { .. } => 0,
            Layer::Fc { cin, cout } => u64::from(cout) * (u64::from(cin) + 1),
        }
    }
}

/// Output resolution of a `kernel`/`stride` convolution padded by
/// `kernel / 2` (TF-NAS and PyTorch "same" padding for odd kernels). The one
/// formula: [`crate::config::conv_output_resolution`] and
/// [`BlockShape::output_resolution`](crate::BlockShape::output_resolution)
/// call it.
pub fn conv_out(res: u32, kernel: u32, stride: u32) -> u32 {
    (res + 2 * (kernel / 2) - kernel) / stride + 1
}

/// The layers of one table entry, in order.
pub fn block_layers(spec: &BlockSpec) -> Vec<Layer> {
    let s = &spec.shape;
    let r = s.resolution;
    match s.kind {
        BlockKind::Stem => vec![Layer::Conv {
            cin: s.in_channels,
            cout: s.out_channels,
            kernel: s.kernel,
            stride: s.stride,
            groups: 1,
            res_in: r,
            res_out: conv_out(r, s.kernel, s.stride),
            act: Some(s.activation),
            residual: false,
        }],
        BlockKind::Fixed | BlockKind::Mbconv => inverted_residual_layers(spec),
        BlockKind::Head => vec![
            Layer::pointwise(
                s.in_channels,
                spec.mid_channels,
                r,
                Some(s.activation),
                false,
            ),
            Layer::Pool {
                channels: spec.mid_channels,
                res: r,
            },
            Layer::Fc {
                cin: spec.mid_channels,
                cout: s.out_channels,
            },
        ],
    }
}

/// The layers of an inverted-residual block (the second stem and the
/// searchable blocks): expansion, depthwise, SE, projection.
fn inverted_residual_layers(spec: &BlockSpec) -> Vec<Layer> {
    let s = &spec.shape;
    let r = s.resolution;
    let mut layers = Vec::new();
    let mid = if spec.has_expansion() {
        let act = Some(s.activation);
        layers.push(Layer::pointwise(
            s.in_channels,
            spec.mid_channels,
            r,
            act,
            false,
        ));
        spec.mid_channels
    } else {
        // TF-NAS drops the expansion when mid <= in; the depthwise
        // conv then runs on the input's channels.
        s.in_channels
    };
    let r_out = conv_out(r, s.kernel, s.stride);
    layers.push(Layer::Conv {
        cin: mid,
        cout: mid,
        kernel: s.kernel,
        stride: s.stride,
        groups: mid,
        res_in: r,
        res_out: r_out,
        act: Some(s.activation),
        residual: false,
    });
    if s.se_channels > 0 {
        layers.push(Layer::Se {
            channels: mid,
            se: s.se_channels,
            res: r_out,
            act: s.activation,
        });
    }
    let residual = spec.has_residual();
    layers.push(Layer::pointwise(mid, s.out_channels, r_out, None, residual));
    layers
}

/// Elements per image of a block's input.
pub fn block_input_len(spec: &BlockSpec) -> usize {
    let s = &spec.shape;
    (s.in_channels * s.resolution * s.resolution) as usize
}

#[cfg(test)]
mod tests;
