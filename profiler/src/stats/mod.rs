//! Pure numbers, the bottom layer: summaries of samples with the median's
//! confidence interval, the Wilson interval of a share, quantiles, and rank
//! correlations. Nothing here imports from the rest of the crate.

pub mod rank;
pub mod summary;

pub use rank::{average_ranks, kendall_tau_b, spearman_rho};
pub use summary::{median_ci_indices, quantile, summarize, wilson_interval, Summary, CONFIDENCE};
