//! A block's layers in their inference form, run by libtorch: batch norm
//! folded into each convolution's weights and bias, SE, pooling and the
//! classifier as they are. The profiler's CPU engine times exactly these
//! ops, and `searcher export` traces exactly these ops into the TorchScript
//! a user deploys, so the module measures what the table priced (with the
//! ops in two copies, TF-NAS-A's traced module ran 4.7% slower than the
//! engine's network on the CPU: docs/train-export.md).
//!
//! The layers themselves are `space::layers`' (a block is lowered once);
//! this crate holds their tensors and runs them. It links libtorch, so the
//! `profiler` binary and the crates it links never depend on it
//! (`scripts/check-layers.sh`).

use space::Activation;
use tch::{Kind, Tensor};

/// One layer with its tensors.
pub enum Op {
    /// `w` is `cout × cin/groups × k × k`, padded by `pad` (`k / 2`);
    /// `residual` adds the block's input after the activation.
    Conv {
        w: Tensor,
        b: Tensor,
        stride: i64,
        pad: i64,
        groups: i64,
        act: Option<Activation>,
        residual: bool,
    },
    /// Squeeze-and-excite: pool, `w1` (`se × c`) + `b1`, act, `w2`
    /// (`c × se`) + `b2`, sigmoid, channel scale.
    Se {
        w1: Tensor,
        b1: Tensor,
        w2: Tensor,
        b2: Tensor,
        act: Activation,
    },
    /// Global average pool to `N × C`.
    Pool,
    /// `w` is `cout × cin`.
    Fc { w: Tensor, b: Tensor },
}

impl Op {
    /// A convolution padded by `k / 2`, `k` read from `w`'s shape.
    pub fn conv(
        w: Tensor,
        b: Tensor,
        stride: i64,
        groups: i64,
        act: Option<Activation>,
        residual: bool,
    ) -> Op {
        let pad = w.size()[2] / 2;
        Op::Conv {
            w,
            b,
            stride,
            pad,
            groups,
            act,
            residual,
        }
    }

    /// The op on `x`; `block_input` is its block's input (for the
    /// residual). The activation and the residual add run in place, so no
    /// second copy of an activation is allocated and written; shapes are
    /// never read into the graph, so a traced module keeps its batch and
    /// resolution free.
    pub fn run(&self, x: &Tensor, block_input: &Tensor) -> Tensor {
        match self {
            Op::Conv {
                w,
                b,
                stride,
                pad,
                groups,
                act,
                residual,
            } => {
                let mut y = x.conv2d(w, Some(b), [*stride; 2], [*pad; 2], [1, 1], *groups);
                activate_(&mut y, *act);
                if *residual {
                    let _ = y.g_add_(block_input);
                }
                y
            }
            Op::Se {
                w1,
                b1,
                w2,
                b2,
                act,
            } => {
                let pooled = x.mean_dim(&[2i64, 3][..], false, Kind::Float);
                let mut hidden = pooled.linear(w1, Some(b1));
                activate_(&mut hidden, Some(*act));
                let mut gate = hidden.linear(w2, Some(b2));
                let _ = gate.sigmoid_();
                x * gate.unsqueeze(-1).unsqueeze(-1)
            }
            Op::Pool => x.mean_dim(&[2i64, 3][..], false, Kind::Float),
            Op::Fc { w, b } => x.linear(w, Some(b)),
        }
    }

    /// Multiply-adds per image of this op, `y` its output: a convolution's
    /// per output element (`cin/groups × k²`), SE's and the classifier's
    /// weights once.
    pub fn macs(&self, y: &Tensor) -> u64 {
        match self {
            Op::Conv { w, .. } => {
                let per_image = y.numel() as u64 / y.size()[0].max(1) as u64;
                per_image * (w.size()[1] * w.size()[2] * w.size()[3]) as u64
            }
            Op::Se { w1, w2, .. } => (w1.numel() + w2.numel()) as u64,
            Op::Pool => 0,
            Op::Fc { w, .. } => w.numel() as u64,
        }
    }

    /// The tensors it holds, in a fixed order.
    pub fn tensors(&self) -> Vec<&Tensor> {
        match self {
            Op::Conv { w, b, .. } | Op::Fc { w, b } => vec![w, b],
            Op::Se { w1, b1, w2, b2, .. } => vec![w1, b1, w2, b2],
            Op::Pool => Vec::new(),
        }
    }
}

/// `act` applied to `x` in place.
pub fn activate_(x: &mut Tensor, act: Option<Activation>) {
    let _ = match act {
        None => return,
        Some(Activation::Relu) => x.relu_(),
        Some(Activation::Swish) => x.silu_(),
        Some(Activation::Hswish) => x.hardswish_(),
    };
}

/// Runs `blocks` (each its ops) on `input` and returns the output, calling
/// `after_block` as each block finishes (where the CPU engine reads its
/// clock).
pub fn run_blocks(input: &Tensor, blocks: &[Vec<Op>], mut after_block: impl FnMut()) -> Tensor {
    let mut x = input.shallow_clone();
    for ops in blocks {
        let block_input = x.shallow_clone();
        for op in ops {
            x = op.run(&x, &block_input);
        }
        after_block();
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn ones(shape: &[i64]) -> Tensor {
        Tensor::ones(shape, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn a_residual_convolution_adds_the_blocks_input_after_its_activation() {
        // A 1x1 convolution of weight -2 and bias 0 on ones: -2, ReLU 0,
        // then the block's input (ones) added: 1 everywhere.
        let op = Op::conv(
            ones(&[2, 2, 1, 1]) * -1.0,
            Tensor::zeros([2], (Kind::Float, Device::Cpu)),
            1,
            1,
            Some(Activation::Relu),
            true,
        );
        let x = ones(&[1, 2, 3, 3]);
        let y = op.run(&x, &x);
        assert_eq!(y.size(), vec![1, 2, 3, 3]);
        assert_eq!(y.sum(Kind::Float).double_value(&[]), 18.0);
        assert_eq!(
            x.sum(Kind::Float).double_value(&[]),
            18.0,
            "the input is untouched"
        );
        assert_eq!(op.macs(&y), 18 * 2);
    }

    #[test]
    fn squeeze_and_excite_scales_each_channel_by_its_gate() {
        // Zero weights: the gate is sigmoid(b2) per channel.
        let zeros = |s: &[i64]| Tensor::zeros(s, (Kind::Float, Device::Cpu));
        let op = Op::Se {
            w1: zeros(&[1, 2]),
            b1: zeros(&[1]),
            w2: zeros(&[2, 1]),
            b2: Tensor::from_slice(&[0.0f32, 100.0]),
            act: Activation::Swish,
        };
        let x = ones(&[3, 2, 4, 4]);
        let y = op.run(&x, &x);
        let per_channel = y.sum_dim_intlist(&[0i64, 2, 3][..], false, Kind::Float);
        let v: Vec<f32> = Vec::try_from(&per_channel).unwrap();
        assert!(
            (v[0] - 24.0).abs() < 1e-4 && (v[1] - 48.0).abs() < 1e-4,
            "{v:?}"
        );
        assert_eq!(op.macs(&y), 4);
    }
}
