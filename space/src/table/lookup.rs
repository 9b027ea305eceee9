//! Latency of a block at any width, and of a whole architecture.
//!
//! Widths between two measured widths of the same curve are interpolated as
//! the table's width model says ([`super::width`]: linearly, or between
//! aligned widths with a surcharge for unaligned ones), measured widths at
//! their entries or on their curves' lines as its curve fit says
//! ([`super::fit`]); every answer says whether it was measured or how it
//! was priced.
//! Anything outside the measured range is missing: never extrapolated, never
//! a silent zero.

use super::fit::{CurveCheck, CurveFit};
use super::read::LatencyTable;
use super::width::{interpolate, LayerKey, WidthModel};
use crate::arch::Architecture;
use crate::block::BlockSpec;
use crate::error::{Result, SpaceError};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    Measured,
    /// A measured width priced on its curve's line (`curve_fit: affine`);
    /// `measured_ms` is its own entry.
    Fitted {
        measured_ms: f64,
    },
    /// Between the measured mid widths `lower` and `upper`.
    Interpolated {
        lower: u32,
        upper: u32,
    },
    /// Under a table's `align N` width model, a width that is not a
    /// multiple of N: interpolated between the measured aligned widths
    /// `lower` and `upper`, times the layer's measured `surcharge`.
    Unaligned {
        lower: u32,
        upper: u32,
        surcharge: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub ms: f64,
    pub source: Source,
}

impl Source {
    /// The measured widths an unmeasured width was priced between; `None`
    /// for a measured one.
    pub fn between(&self) -> Option<(u32, u32)> {
        match *self {
            Source::Measured | Source::Fitted { .. } => None,
            Source::Interpolated { lower, upper } | Source::Unaligned { lower, upper, .. } => {
                Some((lower, upper))
            }
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Measured => write!(f, "measured"),
            Source::Fitted { measured_ms } => {
                write!(f, "measured {measured_ms:.4} ms, on the curve's line")
            }
            Source::Interpolated { lower, upper } => write!(f, "interpolated {lower}..{upper}"),
            Source::Unaligned {
                lower,
                upper,
                surcharge,
            } => write!(
                f,
                "interpolated {lower}..{upper}, unaligned {:+.1}%",
                (surcharge - 1.0) * 100.0
            ),
        }
    }
}

impl Estimate {
    /// Whether the width was measured (priced at its entry or on its
    /// curve's line through it).
    pub fn is_measured(&self) -> bool {
        matches!(self.source, Source::Measured | Source::Fitted { .. })
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
    /// What `spec` adds to a network's latency, measured (on its curve's
    /// line under a curve fit) or interpolated: its median less the table's
    /// [`boundary_ms`](Self::boundary_ms).
    /// `None` where the table cannot say.
    pub fn estimate(&self, spec: &BlockSpec) -> Option<Estimate> {
        let points = self.priced.get(&spec.shape)?;
        let mid = spec.mid_channels;
        if let Ok(i) = points.binary_search_by_key(&mid, |&(m, _)| m) {
            // `priced` holds the same widths as `curves`, in the same order.
            let measured_ms = self.curves[&spec.shape][i].1;
            // A fit that leaves a width where it was measured (its curve
            // a line already, to rounding) leaves it measured.
            let source = if (points[i].1 - measured_ms).abs() <= 1e-12 * measured_ms {
                Source::Measured
            } else {
                Source::Fitted { measured_ms }
            };
            return Some(Estimate {
                ms: points[i].1,
                source,
            });
        }
        if let WidthModel::Align { multiple } = self.width_model {
            if let Some(e) = self.aligned_estimate(spec, points, multiple) {
                return Some(e);
            }
        }
        let (ms, lower, upper) = interpolate(points, mid, |_| true)?;
        Some(Estimate {
            ms,
            source: Source::Interpolated { lower, upper },
        })
    }

    /// Under `align N`: `spec`'s width interpolated between the curve's
    /// measured aligned widths, times its layer's surcharge when it is not
    /// aligned itself. `None` where aligned widths do not bracket it (the
    /// caller then interpolates between whatever was measured).
    fn aligned_estimate(
        &self,
        spec: &BlockSpec,
        points: &[(u32, f64)],
        multiple: u32,
    ) -> Option<Estimate> {
        let mid = spec.mid_channels;
        let (base, lower, upper) = interpolate(points, mid, |m| m % multiple == 0)?;
        if mid % multiple == 0 {
            return Some(Estimate {
                ms: base,
                source: Source::Interpolated { lower, upper },
            });
        }
        let surcharge = self
            .surcharges
            .get(&LayerKey::of(&spec.shape))
            .copied()
            .unwrap_or(1.0);
        Some(Estimate {
            ms: base * surcharge,
            source: Source::Unaligned {
                lower,
                upper,
                surcharge,
            },
        })
    }

    /// How the table prices widths it did not measure.
    pub fn width_model(&self) -> WidthModel {
        self.width_model
    }

    /// This table pricing unmeasured widths by `model` instead of its
    /// header's, the same rows and header otherwise: to show what a width
    /// model changes on the same measurements.
    pub fn with_width_model(&self, model: WidthModel) -> LatencyTable {
        let mut twin = self.clone();
        twin.set_models(model, self.curve_fit);
        twin
    }

    /// This table pricing measured widths by `fit` instead of its header's
    /// `curve_fit`, the same rows and header otherwise: to show what the
    /// fit changes on the same measurements.
    pub fn with_curve_fit(&self, fit: CurveFit) -> LatencyTable {
        let mut twin = self.clone();
        twin.set_models(self.width_model, fit);
        twin
    }

    /// How the table prices the widths it measured: its header's
    /// `curve_fit`, except that `affine` is `none` where the table's curves
    /// stray from their lines beyond their entries' noise
    /// ([`curve_check`](Self::curve_check)).
    pub fn curve_fit(&self) -> CurveFit {
        match self.curve_check {
            Some(check) if !check.applied => CurveFit::None,
            _ => self.curve_fit,
        }
    }

    /// Under `affine`, how far the curves stray from their lines in their
    /// entries' noise and whether the lines price the table; `None` under
    /// `none` or where no curve has enough fitted widths to test a line.
    pub fn curve_check(&self) -> Option<CurveCheck> {
        self.curve_check
    }

    /// Each curve's fitted widths as `(width, ms, standard error)`, the
    /// error from the entry's 95% interval, checked against their lines.
    fn check_curves(&self, fitted: impl Fn(u32) -> bool) -> Option<CurveCheck> {
        let curves: Vec<Vec<(f64, f64, f64)>> = self
            .curves
            .iter()
            .map(|(shape, points)| {
                points
                    .iter()
                    .filter(|&&(m, _)| fitted(m))
                    .filter_map(|&(m, ms)| {
                        let s = &self.entry(&shape.at(m))?.stats;
                        Some((
                            f64::from(m),
                            ms,
                            (s.ci_high_ms - s.ci_low_ms) / (2.0 * 1.96),
                        ))
                    })
                    .collect()
            })
            .collect();
        CurveCheck::of(&curves)
    }

    /// Prices by `model` and `fit` from now on (so called once the rows are
    /// read): each curve's fitted widths (the aligned ones under `align
    /// N`, every one otherwise) on its line where the curves pass the
    /// check, then, under `align N`, each
    /// layer's surcharge measured against the priced aligned widths.
    pub(super) fn set_models(&mut self, model: WidthModel, fit: CurveFit) {
        self.width_model = model;
        self.curve_fit = fit;
        let fitted = |m: u32| model.multiple().is_none_or(|n| m % n == 0);
        self.curve_check = match fit {
            CurveFit::Affine => self.check_curves(fitted),
            CurveFit::None => None,
        };
        let fit = self.curve_fit();
        self.priced = self
            .curves
            .iter()
            .map(|(shape, points)| (*shape, fit.apply(points, fitted)))
            .collect();
        self.surcharges = match model {
            WidthModel::Align { multiple } => super::width::surcharges(&self.priced, multiple),
            WidthModel::Linear => Default::default(),
        };
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
        self.priced.get(&spec.shape).map_or(&[], Vec::as_slice)
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
