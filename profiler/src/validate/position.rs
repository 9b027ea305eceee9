//! Where a validation's error lives: the networks split by where each sits
//! (depth, expansion, SE share, width alignment), each half's errors side
//! by side, so that a bias the overall median hides shows where it is
//! (searched networks sit at full depth and wide widths; a table that
//! prices unaligned widths low errs on the unaligned half).

use std::fmt::Write as _;

use space::{BlockKind, BlockSpec};

use super::job::Job;
use crate::analysis::rows::Row;

/// The fewest networks worth splitting: three a half.
const FEWEST: usize = 6;

/// The width step whose multiples count as aligned: CPU kernels pad
/// channels to their vector width and GPU tensor cores want multiples of 8.
pub const ALIGNED_TO: u32 = 16;

/// One feature of a network's searchable blocks.
struct Feature {
    name: &'static str,
    unit: &'static str,
    of: fn(&[&BlockSpec]) -> f64,
}

const FEATURES: [Feature; 4] = [
    Feature {
        name: "depth",
        unit: " blocks",
        of: |b| b.len() as f64,
    },
    Feature {
        name: "expansion (mid/in, mean)",
        unit: "x",
        of: |b| {
            mean(
                b.iter()
                    .map(|s| f64::from(s.mid_channels) / f64::from(s.shape.in_channels)),
            )
        },
    },
    Feature {
        name: "SE share",
        unit: "",
        of: |b| {
            mean(
                b.iter()
                    .map(|s| f64::from(u8::from(s.shape.se_channels > 0))),
            )
        },
    },
    Feature {
        name: "aligned share (mid on a multiple of 16)",
        unit: "",
        of: |b| {
            mean(
                b.iter()
                    .map(|s| f64::from(u8::from(s.mid_channels % ALIGNED_TO == 0))),
            )
        },
    },
];

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// A half of the networks: their mean signed error (%) and their count.
pub type Half = (f64, usize);

/// The networks at or below the median of `values`, those above, and the
/// median; `None` when a half is empty.
pub fn split_at_median(values: &[f64], errors: &[f64]) -> Option<(Half, Half, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[(sorted.len() - 1) / 2];
    let half = |low: bool| {
        let picked: Vec<f64> = values
            .iter()
            .zip(errors)
            .filter(|(v, _)| (**v <= median) == low)
            .map(|(_, e)| *e)
            .collect();
        (mean(picked.iter().copied()), picked.len())
    };
    let (low, high) = (half(true), half(false));
    (low.1 > 0 && high.1 > 0).then_some((low, high, median))
}

/// The report's lines on where the error lives, for `networks` (one row
/// per network, passes combined); nothing for fewer than [`FEWEST`].
pub fn render_by_position(out: &mut String, job: &Job, networks: &[Row]) {
    let searchable: Vec<Vec<&BlockSpec>> = networks
        .iter()
        .filter_map(|r| job.networks.get(usize::try_from(r.index).ok()?))
        .map(|n| {
            n.blocks
                .iter()
                .filter(|b| b.shape.kind == BlockKind::Mbconv)
                .collect()
        })
        .collect();
    if searchable.len() != networks.len() || networks.len() < FEWEST {
        return;
    }
    let errors: Vec<f64> = networks.iter().map(Row::error_pct).collect();
    let _ = writeln!(
        out,
        "where the error lives (mean signed error of the networks at or below each feature's median, and above it):"
    );
    for f in &FEATURES {
        let values: Vec<f64> = searchable.iter().map(|b| (f.of)(b)).collect();
        let Some(((lo, nlo), (hi, nhi), median)) = split_at_median(&values, &errors) else {
            let _ = writeln!(out, "  {}: all alike, no split", f.name);
            continue;
        };
        let _ = writeln!(
            out,
            "  {}: <= {median:.2}{}: {lo:+.2}% ({nlo} networks); above: {hi:+.2}% ({nhi})",
            f.name, f.unit
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_split_at_the_median_of_a_feature_with_each_halfs_mean_error() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let errors = [-1.0, -2.0, -3.0, 2.0, 4.0, 6.0];
        let (low, high, median) = split_at_median(&values, &errors).unwrap();
        assert_eq!(median, 3.0);
        assert_eq!(low, (-2.0, 3));
        assert_eq!(high, (4.0, 3));
        // A feature every network shares has no halves.
        assert!(split_at_median(&[2.0; 6], &errors).is_none());
    }
}
