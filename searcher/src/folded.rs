//! A network in its inference form: batch norm folded into each
//! convolution (weights scaled, a bias added), SE and the classifier as they
//! were. Both export formats are written from this one form, so the
//! TorchScript and the ONNX file hold the same numbers.

use std::path::Path;

use space::Activation;
use tch::{Kind, Tensor};

use crate::error::Result;
use crate::network::activate;

/// `act` applied to `x` in place.
fn activate_(x: &mut Tensor, act: Option<Activation>) {
    let _ = match act {
        None => return,
        Some(Activation::Relu) => x.relu_(),
        Some(Activation::Swish) => x.silu_(),
        Some(Activation::Hswish) => x.hardswish_(),
    };
}

/// One layer with its tensors (f32, on the CPU).
pub enum Op {
    /// `w` is `cout × cin/groups × k × k`, padding `k / 2`; `residual` adds
    /// the block's input after the activation.
    Conv {
        w: Tensor,
        b: Tensor,
        stride: i64,
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

/// The folded network: per block (stem .. head), its layers.
pub struct Folded {
    pub blocks: Vec<Vec<Op>>,
}

/// What one forward pass counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Multiply-adds per image, from the tensors' shapes as they ran:
    /// convolutions (per output element, `cin/groups × k²`), SE's and the
    /// classifier's linear layers.
    pub macs: u64,
}

impl Op {
    fn apply(&self, x: &Tensor, input: &Tensor, counts: &mut Counts) -> Tensor {
        match self {
            Op::Conv {
                w,
                b,
                stride,
                groups,
                act,
                residual,
            } => {
                let k = w.size()[2];
                let mut y = x.conv2d(w, Some(b), [*stride], [k / 2], [1], *groups);
                let per_image = y.numel() as u64 / y.size()[0] as u64;
                counts.macs += per_image * (w.size()[1] * k * k) as u64;
                // In place, as the profiler's CPU engine runs a block: the
                // traced module then allocates and writes no second copy
                // of each activation (out of place, TF-NAS-A's module ran
                // 4.7% slower than the engine's network on the CPU).
                activate_(&mut y, *act);
                if *residual {
                    let _ = y.g_add_(input);
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
                counts.macs += (w1.numel() + w2.numel()) as u64;
                let pooled = x.mean_dim(&[2i64, 3][..], false, Kind::Float);
                let hidden = activate(pooled.linear(w1, Some(b1)), Some(*act));
                let gate = hidden.linear(w2, Some(b2)).sigmoid();
                x * gate.unsqueeze(-1).unsqueeze(-1)
            }
            Op::Pool => x.mean_dim(&[2i64, 3][..], false, Kind::Float),
            Op::Fc { w, b } => {
                counts.macs += w.numel() as u64;
                x.linear(w, Some(b))
            }
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

impl Folded {
    /// Inference forward, counting multiply-adds on the way.
    pub fn forward_counted(&self, x: &Tensor) -> (Tensor, Counts) {
        let mut counts = Counts::default();
        let mut x = x.shallow_clone();
        for ops in &self.blocks {
            let input = x.shallow_clone();
            for op in ops {
                x = op.apply(&x, &input, &mut counts);
            }
        }
        (x, counts)
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_counted(x).0
    }

    /// Floats the inference form stores (folded weights and biases).
    pub fn stored_floats(&self) -> u64 {
        self.blocks
            .iter()
            .flatten()
            .flat_map(Op::tensors)
            .map(|t| t.numel() as u64)
            .sum()
    }

    /// Traces the forward pass on `example` into a TorchScript module with
    /// one method, `forward`, and saves it to `path`. The weights become
    /// the module's constants. Shapes are not baked in (pooling and SE
    /// keep the batch symbolic), so the module runs at any batch size and
    /// resolution.
    pub fn save_torchscript(&self, example: &Tensor, path: &Path) -> Result<()> {
        let module = tch::no_grad(|| {
            tch::CModule::create_by_tracing(
                "TfnasNetwork",
                "forward",
                &[example.shallow_clone()],
                &mut |xs| vec![self.forward(&xs[0])],
            )
        })?;
        module.save(path)?;
        Ok(())
    }
}
