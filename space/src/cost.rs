//! Multiply-adds and parameter counts of a block, for summaries that put a
//! network's latency beside its size (TF-NAS reports both). Summed over the
//! block's layers ([`crate::layers::block_layers`]), so that what is counted
//! is what the engines run.

use crate::block::BlockSpec;
use crate::layers::{block_layers, Layer};

impl BlockSpec {
    /// Multiply-adds for one image (convolutions and linear layers; pooling,
    /// activations and BN, folded at inference, are not counted).
    pub fn macs(&self) -> u64 {
        block_layers(self).iter().map(Layer::macs).sum()
    }

    /// Parameters of the deployed block, counting BN's scale and shift as
    /// PyTorch does (2 per channel), biases of SE and FC layers included.
    pub fn params(&self) -> u64 {
        block_layers(self).iter().map(Layer::params).sum()
    }
}
