//! Pure numbers, the bottom layer: summaries of samples with the median's
//! confidence interval, the Wilson interval of a share, quantiles, and rank
//! correlations. Nothing here imports from the rest of the crate.

pub mod rank;
pub mod summary;

pub use rank::{average_ranks, kendall_tau_b, spearman_rho};
pub use summary::{median_ci_indices, summarize, wilson_interval, Summary, CONFIDENCE};

/// The `q`-quantile of sorted, non-empty `sorted`, interpolating linearly
/// (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    if lo == hi {
        sorted[lo]
    } else {
        sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
    }
}
