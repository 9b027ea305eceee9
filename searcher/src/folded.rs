//! A network in its inference form: batch norm folded into each
//! convolution (weights scaled, a bias added), SE and the classifier as they
//! were. Both export formats are written from this one form, so the
//! TorchScript and the ONNX file hold the same numbers; its ops are
//! `blocks_tch`'s, the very ops the profiler's CPU engine times.

use std::path::Path;

use tch::Tensor;

use crate::error::Result;

/// One layer with its tensors (f32, on the CPU): `blocks_tch`'s, the ops
/// the profiler's CPU engine times, so the traced module runs what the
/// table priced.
pub use blocks_tch::Op;

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

impl Folded {
    /// Inference forward, counting multiply-adds on the way.
    pub fn forward_counted(&self, x: &Tensor) -> (Tensor, Counts) {
        let mut counts = Counts::default();
        let mut x = x.shallow_clone();
        for ops in &self.blocks {
            let input = x.shallow_clone();
            for op in ops {
                x = op.run(&x, &input);
                counts.macs += op.macs(&x);
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
            .flat_map(|op| op.tensors())
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
