//! How a table prices a mid width it did not measure (header line
//! `width_model`).
//!
//! - `linear` (a table without the line): linear interpolation between the
//!   nearest measured widths of the curve.
//! - `align N`: the engine's kernels pad channels to multiples of `N` (a
//!   CPU's vector lanes: 8 floats on AVX2; a GPU's tensor-core multiple), so
//!   a curve is smooth only along its aligned widths and an unaligned width
//!   pays extra on top. The base price is interpolated between the nearest
//!   measured *aligned* widths; an unaligned width then costs that base
//!   times its layer's *surcharge*: the mean, over the table's measured
//!   unaligned widths of that layer (the build times a few per curve, its
//!   probes), of measured / base. On the 2-core AVX2 development VM the
//!   surcharge measured +9-10% at 112x112, +3-4.5% at 56x56 and about +1%
//!   at 28x28 and 14x14 (docs/table-format.md), which linear interpolation
//!   priced as 0 and the next aligned width (padding alone) under-prices.
//!
//! Both rules price a measured width at its measurement, or where the
//! table's `curve_fit` puts it ([`super::fit`]).

use std::collections::HashMap;

use crate::block::{BlockKind, BlockShape};

/// The header's `width_model`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WidthModel {
    /// Linear interpolation between measured widths.
    #[default]
    Linear,
    /// Aligned interpolation plus a measured surcharge for widths that are
    /// not multiples of `multiple`.
    Align { multiple: u32 },
}

impl WidthModel {
    /// The largest alignment a table may name: no kernel pads channels to
    /// more, and a larger one would leave no aligned widths to interpolate.
    pub const MAX_MULTIPLE: u32 = 256;

    /// `align multiple`, refused outside [2, [`MAX_MULTIPLE`](Self::MAX_MULTIPLE)]
    /// with a message that says the range (the header's reader and a
    /// plan's alignment share it).
    pub fn align(multiple: u32) -> Result<Self, String> {
        if (2..=Self::MAX_MULTIPLE).contains(&multiple) {
            Ok(WidthModel::Align { multiple })
        } else {
            Err(Self::range_error())
        }
    }

    fn range_error() -> String {
        format!(
            "the alignment must be an integer in [2, {}]",
            Self::MAX_MULTIPLE
        )
    }

    /// Parses a header value: `linear` or `align N` with N in
    /// [2, [`MAX_MULTIPLE`](Self::MAX_MULTIPLE)]. The error says what is
    /// allowed.
    pub fn parse(value: &str) -> Result<Self, String> {
        let words: Vec<&str> = value.split_whitespace().collect();
        match words.as_slice() {
            ["linear"] => Ok(WidthModel::Linear),
            ["align", n] => n
                .parse::<u32>()
                .map_err(|_| Self::range_error())
                .and_then(Self::align)
                .map_err(|why| format!("'{value}': {why}")),
            _ => Err(format!(
                "'{value}' is not a width model: `linear` or `align N` (N in [2, {}])",
                Self::MAX_MULTIPLE
            )),
        }
    }

    /// The multiple an `align N` model pads to; `None` for linear.
    pub fn multiple(&self) -> Option<u32> {
        match *self {
            WidthModel::Linear => None,
            WidthModel::Align { multiple } => Some(multiple),
        }
    }

    /// The header value this model is written as.
    pub fn describe(&self) -> String {
        match self {
            WidthModel::Linear => "linear".into(),
            WidthModel::Align { multiple } => format!("align {multiple}"),
        }
    }
}

/// One layer of the space (where a block sits): the curves of every op at
/// one position share its surcharge, since it comes from the padded tensors
/// at that resolution and those channel counts, and pooling them gives a
/// few probes each a mean several times steadier than one curve's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct LayerKey {
    kind: BlockKind,
    resolution: u32,
    in_channels: u32,
    out_channels: u32,
    stride: u32,
}

impl LayerKey {
    pub(super) fn of(shape: &BlockShape) -> Self {
        LayerKey {
            kind: shape.kind,
            resolution: shape.resolution,
            in_channels: shape.in_channels,
            out_channels: shape.out_channels,
            stride: shape.stride,
        }
    }
}

/// Linear interpolation through the points of `points` that `keep`
/// accepts, at `mid`: `(ms, lower, upper)`, `None` outside them.
pub(super) fn interpolate(
    points: &[(u32, f64)],
    mid: u32,
    keep: impl Fn(u32) -> bool,
) -> Option<(f64, u32, u32)> {
    let below = points.iter().rev().find(|&&(m, _)| m <= mid && keep(m))?;
    let above = points.iter().find(|&&(m, _)| m >= mid && keep(m))?;
    let ((m0, t0), (m1, t1)) = (*below, *above);
    if m0 == m1 {
        return Some((t0, m0, m1));
    }
    let f = f64::from(mid - m0) / f64::from(m1 - m0);
    Some((t0 + f * (t1 - t0), m0, m1))
}

/// Each layer's surcharge under `align N`: the mean of measured / aligned
/// interpolation over the measured unaligned widths of its curves that lie
/// between two aligned ones. Layers with none are absent (no surcharge).
pub(super) fn surcharges(
    curves: &HashMap<BlockShape, Vec<(u32, f64)>>,
    multiple: u32,
) -> HashMap<LayerKey, f64> {
    let aligned = |m: u32| m % multiple == 0;
    let mut ratios: HashMap<LayerKey, Vec<f64>> = HashMap::new();
    for (shape, points) in curves {
        for &(m, ms) in points.iter().filter(|(m, _)| !aligned(*m)) {
            if let Some((base, _, _)) = interpolate(points, m, aligned) {
                if base > 0.0 {
                    ratios
                        .entry(LayerKey::of(shape))
                        .or_default()
                        .push(ms / base);
                }
            }
        }
    }
    ratios
        .into_iter()
        .map(|(layer, r)| (layer, r.iter().sum::<f64>() / r.len() as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_models_parse_and_print_back() {
        for text in ["linear", "align 8", "align 16", "align 256"] {
            assert_eq!(WidthModel::parse(text).unwrap().describe(), text);
        }
        assert_eq!(
            WidthModel::parse(" align   8 ").unwrap(),
            WidthModel::Align { multiple: 8 }
        );
    }

    #[test]
    fn a_width_model_outside_its_range_says_what_is_allowed() {
        for bad in [
            "align 1",
            "align 0",
            "align 257",
            "align -8",
            "align 8.5",
            "align",
        ] {
            let e = WidthModel::parse(bad).unwrap_err();
            assert!(e.contains("[2, 256]"), "{bad}: {e}");
        }
        let e = WidthModel::parse("pad 8").unwrap_err();
        assert!(e.contains("`linear` or `align N`"), "{e}");
    }

    #[test]
    fn interpolation_skips_the_points_it_is_told_to() {
        let points = [(8, 1.0), (12, 9.0), (16, 2.0)];
        assert_eq!(interpolate(&points, 12, |_| true), Some((9.0, 12, 12)));
        assert_eq!(interpolate(&points, 12, |m| m % 8 == 0), Some((1.5, 8, 16)));
        assert_eq!(interpolate(&points, 20, |_| true), None);
    }
}
