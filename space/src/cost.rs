//! Multiply-adds and parameter counts of a block, for summaries that put a
//! network's latency beside its size (TF-NAS reports both).

use crate::block::{BlockKind, BlockSpec};

impl BlockSpec {
    /// Multiply-adds for one image (convolutions and linear layers; pooling,
    /// activations and BN, folded at inference, are not counted).
    pub fn macs(&self) -> u64 {
        let s = &self.shape;
        let (i, o, m) = (
            u64::from(s.in_channels),
            u64::from(s.out_channels),
            u64::from(self.mid_channels),
        );
        let k2 = u64::from(s.kernel * s.kernel);
        let area_in = u64::from(s.resolution).pow(2);
        let area_out = u64::from(s.output_resolution()).pow(2);
        let se = u64::from(s.se_channels);
        match s.kind {
            BlockKind::Stem => area_out * i * o * k2,
            BlockKind::Head => area_in * i * m + m * o,
            BlockKind::Mbconv | BlockKind::Fixed => {
                let expand = if self.has_expansion() {
                    area_in * i * m
                } else {
                    0
                };
                expand + area_out * m * k2 + 2 * m * se + area_out * m * o
            }
        }
    }

    /// Parameters of the deployed block, counting BN's scale and shift as
    /// PyTorch does (2 per channel), biases of SE and FC layers included.
    pub fn params(&self) -> u64 {
        let s = &self.shape;
        let (i, o, m) = (
            u64::from(s.in_channels),
            u64::from(s.out_channels),
            u64::from(self.mid_channels),
        );
        let k2 = u64::from(s.kernel * s.kernel);
        let se = u64::from(s.se_channels);
        match s.kind {
            BlockKind::Stem => i * o * k2 + 2 * o,
            BlockKind::Head => i * m + 2 * m + m * o + o,
            BlockKind::Mbconv | BlockKind::Fixed => {
                let expand = if self.has_expansion() {
                    i * m + 2 * m
                } else {
                    0
                };
                let se_params = if se > 0 { 2 * m * se + se + m } else { 0 };
                expand + m * k2 + 2 * m + se_params + m * o + 2 * o
            }
        }
    }
}
