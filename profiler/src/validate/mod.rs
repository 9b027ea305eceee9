//! `profiler validate --table T.csv`: how far is the table's sum of blocks
//! from whole networks measured end to end?
//!
//! Networks are sampled uniformly from the table's space with a seed
//! ([`space::Architecture::sample_nth`]), predicted with the table, and timed
//! whole in the engine under the table's own batch, launch mode, L2 policy,
//! dtype and layout, read from its header: a flag that disagrees is refused,
//! because it would measure something the table never predicted. Every
//! network is predicted before the GPU is touched; if the table cannot
//! predict one (a partial table), the run stops there and names every
//! missing key rather than resampling, since resampling would quietly
//! validate only the part of the space the table covers.
//!
//! With `--passes N` the networks are swept N times and each network's time
//! is the mean of its passes ([`Job::passes`]). A row per network and pass
//! goes to `--out` and resumes like the table build; the statistics are
//! [`crate::analysis::accuracy::validation_stats`] of the combined rows.

mod job;
pub mod network;
mod position;
mod report;
mod run;
mod settings;

#[cfg(test)]
mod tests;

pub use job::{read_table, Job, Network, Request, Sampling, MAX_SAMPLES};
pub use report::{plot, render_text, report, stats};
pub use run::run_validation;
pub use settings::{resolve_settings, SettingFlags};

pub use crate::analysis::rows::{read as read_rows, sha256_16, Row};
