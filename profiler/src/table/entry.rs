//! A timed entry's row: the summary of its samples as the table stores it.

use space::{BlockSpec, Entry, LatencyStats};

use crate::stats::summary::Summary;

/// The row of `spec` at `batch` from the summary of its samples.
pub fn entry(spec: BlockSpec, batch: u32, s: &Summary, throttled: bool) -> Entry {
    Entry {
        spec,
        batch,
        stats: LatencyStats {
            median_ms: s.median,
            p10_ms: s.p10,
            p90_ms: s.p90,
            ci_low_ms: s.ci_low,
            ci_high_ms: s.ci_high,
            samples: s.samples,
            throttled,
        },
    }
}
