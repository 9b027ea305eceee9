//! Latency of a block at any width, and of a whole architecture.
//!
//! Widths between two measured widths of the same curve are interpolated
//! linearly; every answer says whether it was measured or interpolated.
//! Anything outside the measured range is missing: never extrapolated, never
//! a silent zero.

use super::read::LatencyTable;
use crate::arch::Architecture;
use crate::block::BlockSpec;
use crate::error::{Result, SpaceError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Measured,
    /// Between the measured mid widths `lower` and `upper`.
    Interpolated {
        lower: u32,
        upper: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub ms: f64,
    pub source: Source,
}

impl Estimate {
    pub fn is_measured(&self) -> bool {
        self.source == Source::Measured
    }
}

/// A table's prediction for a whole network.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchLatency {
    /// Stem + second stem + head, and the table's boundary (paid once by
    /// every network): TF-NAS's `base`.
    pub base_ms: f64,
    pub total_ms: f64,
    /// Every block in network order with its estimate.
    pub blocks: Vec<(BlockSpec, Estimate)>,
}

impl LatencyTable {
    /// What `spec` adds to a network's latency, measured or interpolated:
    /// its median less the table's [`boundary_ms`](Self::boundary_ms).
    /// `None` where the table cannot say.
    pub fn estimate(&self, spec: &BlockSpec) -> Option<Estimate> {
        let points = self.curves.get(&spec.shape)?;
        let mid = spec.mid_channels;
        match points.binary_search_by_key(&mid, |&(m, _)| m) {
            Ok(i) => Some(Estimate {
                ms: points[i].1,
                source: Source::Measured,
            }),
            Err(i) if i > 0 && i < points.len() => {
                let (m0, t0) = points[i - 1];
                let (m1, t1) = points[i];
                let f = f64::from(mid - m0) / f64::from(m1 - m0);
                Some(Estimate {
                    ms: t0 + f * (t1 - t0),
                    source: Source::Interpolated {
                        lower: m0,
                        upper: m1,
                    },
                })
            }
            Err(_) => None,
        }
    }

    /// Like [`estimate`](Self::estimate), with a missing entry as an error.
    pub fn block_ms(&self, spec: &BlockSpec) -> Result<f64> {
        self.estimate(spec)
            .map(|e| e.ms)
            .ok_or_else(|| SpaceError::MissingEntries {
                keys: vec![spec.key()],
            })
    }

    /// The measured `(mid, ms)` points of the curve `spec` lies on, priced
    /// as [`estimate`](Self::estimate) prices them.
    pub fn curve(&self, spec: &BlockSpec) -> &[(u32, f64)] {
        self.curves.get(&spec.shape).map_or(&[], Vec::as_slice)
    }

    /// Predicted latency of `arch`: stem + second stem + its blocks + head.
    /// Validates `arch` first; a missing entry is an error naming every key
    /// the table lacks for it.
    pub fn predict(&self, arch: &Architecture) -> Result<ArchLatency> {
        let specs = arch.block_specs()?;
        self.predict_blocks(&specs)
    }

    /// Sum over `specs` plus the boundary once, with the stem, second stem,
    /// head and boundary counted as base.
    pub fn predict_blocks(&self, specs: &[BlockSpec]) -> Result<ArchLatency> {
        let mut missing = Vec::new();
        let mut blocks = Vec::with_capacity(specs.len());
        let (mut base_ms, mut total_ms) = (self.boundary_ms(), self.boundary_ms());
        for spec in specs {
            match self.estimate(spec) {
                Some(e) => {
                    total_ms += e.ms;
                    if spec.shape.kind != crate::block::BlockKind::Mbconv {
                        base_ms += e.ms;
                    }
                    blocks.push((*spec, e));
                }
                None if !missing.contains(&spec.key()) => missing.push(spec.key()),
                None => {}
            }
        }
        if !missing.is_empty() {
            return Err(SpaceError::MissingEntries { keys: missing });
        }
        Ok(ArchLatency {
            base_ms,
            total_ms,
            blocks,
        })
    }
}
