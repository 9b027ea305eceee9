//! The latency table: a CSV file with a `#`-comment fingerprint header.
//!
//! ```text
//! # format: tfnas-latency-table/1
//! # device_name: NVIDIA H100 80GB HBM3
//! # batch: 32
//! key,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled
//! stem_r224_i3_o32_s2_k3_m0_se0_relu,32,0.0912,0.0908,0.0917,0.0910,0.0914,412,0
//! # finished: 2026-11-27T18:04:11Z
//! ```
//!
//! pandas reads it with `pd.read_csv(path, comment='#')`.

mod correction;
mod fit;
mod lookup;
mod metadata;
mod read;
mod scope;
mod width;
mod write;

pub use correction::Correction;
pub use fit::{CurveCheck, CurveFit};
pub use lookup::{ArchLatency, Estimate, Source};
pub use metadata::{meta, Metadata};
pub use read::LatencyTable;
pub use scope::describe_outside;
pub use width::WidthModel;
pub use write::TableWriter;

use crate::block::BlockSpec;

/// The table's column names, in order; the reader refuses any other header.
pub const COLUMNS: [&str; 9] = [
    "key",
    "batch",
    "median_ms",
    "p10_ms",
    "p90_ms",
    "ci_low_ms",
    "ci_high_ms",
    "samples",
    "throttled",
];

/// The value of the `format` metadata line this crate writes and reads.
pub const FORMAT: &str = "tfnas-latency-table/1";

/// The largest latency a table may hold: 1e6 ms is 16 minutes for one
/// batch of one block, far beyond any real measurement, so a larger number
/// is a unit or typing error.
pub const MAX_MS: f64 = 1e6;

/// The smallest latency an entry may hold, but for zero (see
/// [`BASE_KEY`]): 0.1 µs is below any kernel launch on any device, so a
/// smaller median is a unit error or a corrupt row, not a measurement.
pub const MIN_MS: f64 = 1e-4;

/// The header line of a table that folds its fixed parts into one row (the
/// official TF-NAS tables: stem, second stem and head as one `base`
/// entry), whose other fixed rows hold 0 ms; no other table may hold a
/// zero latency.
pub const BASE_KEY: &str = "base";

/// The measured statistics of one entry, in milliseconds per batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyStats {
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    /// 95% confidence interval of the median.
    pub ci_low_ms: f64,
    pub ci_high_ms: f64,
    pub samples: u64,
    /// Measured while the GPU reported a throttle reason.
    pub throttled: bool,
}

/// One row of a table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub spec: BlockSpec,
    pub batch: u32,
    pub stats: LatencyStats,
}

impl LatencyStats {
    /// A latency known without spread (computed rather than sampled, as in
    /// a proxy table): every statistic is `ms`.
    pub fn exact(ms: f64, samples: u64) -> Self {
        LatencyStats {
            median_ms: ms,
            p10_ms: ms,
            p90_ms: ms,
            ci_low_ms: ms,
            ci_high_ms: ms,
            samples,
            throttled: false,
        }
    }

    /// What makes a row trustworthy, in the words the reader reports.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let named = [
            ("median_ms", self.median_ms),
            ("p10_ms", self.p10_ms),
            ("p90_ms", self.p90_ms),
            ("ci_low_ms", self.ci_low_ms),
            ("ci_high_ms", self.ci_high_ms),
        ];
        for (column, v) in named {
            if !v.is_finite() {
                return Err((column, format!("{v} is not a finite latency")));
            }
            if v < 0.0 {
                return Err((column, format!("negative latency {v}")));
            }
            if v > 0.0 && v < MIN_MS {
                return Err((
                    column,
                    format!("{v} ms is below {MIN_MS:e} ms, faster than any block runs"),
                ));
            }
            if v > MAX_MS {
                return Err((
                    column,
                    format!("{v} ms is above {MAX_MS:e} ms, beyond any block's latency"),
                ));
            }
        }
        if self.samples == 0 {
            return Err(("samples", "an entry needs at least one sample".into()));
        }
        if !(self.p10_ms <= self.median_ms && self.median_ms <= self.p90_ms) {
            return Err((
                "median_ms",
                format!(
                    "need p10 <= median <= p90, got {} <= {} <= {}",
                    self.p10_ms, self.median_ms, self.p90_ms
                ),
            ));
        }
        if !(self.ci_low_ms <= self.median_ms && self.median_ms <= self.ci_high_ms) {
            return Err((
                "ci_low_ms",
                format!(
                    "the median {} lies outside its confidence interval [{}, {}]",
                    self.median_ms, self.ci_low_ms, self.ci_high_ms
                ),
            ));
        }
        Ok(())
    }
}
