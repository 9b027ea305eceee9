//! The one error type of the searcher library.
//!
//! Everything that can stop a search before or during training says what is
//! wrong in words a user can act on: which keys a table lacks, which numbers
//! a target must lie between, which file could not be read.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Space(#[from] space::SpaceError),

    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// The process group: a rendezvous that failed, a peer that died.
    #[error("data-parallel run: {0} (the checkpoint keeps the last finished epoch: rerun the same command to continue)")]
    Distributed(c10d_tch::C10dError),

    // The cause is in the message, not a `#[source]`, as in `SpaceError`.
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    /// Every key the search needs and the table lacks, so one run shows all.
    #[error("the table {table} lacks {} entr{} the search needs: {}", .keys.len(), if .keys.len() == 1 { "y" } else { "ies" }, .keys.join(", "))]
    MissingEntries { table: String, keys: Vec<String> },

    #[error("target {target_ms} ms is outside what the table {table} allows: the smallest network costs {min_ms:.4} ms and the largest {max_ms:.4} ms")]
    TargetOutOfRange {
        table: String,
        target_ms: f64,
        min_ms: f64,
        max_ms: f64,
    },

    #[error("the table {table} was measured at batch {table_batch}, but --latency-batch asks for {asked}")]
    BatchMismatch {
        table: String,
        table_batch: u32,
        asked: u32,
    },

    #[error("dataset: {0}")]
    Data(String),

    #[error("{path}: {message}")]
    Dataset { path: PathBuf, message: String },

    #[error("{path}: cannot decode image: {message}")]
    Decode { path: PathBuf, message: String },

    #[error("{path}:{line}: {message}")]
    SplitList {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    /// A loss that stopped being a number; the checkpoint of the last whole
    /// epoch (`last_epoch`, 0 for none) is kept.
    #[error("epoch {epoch}, step {step}: {message}; the search stopped{}{hint}", if *.last_epoch > 0 { format!(" and kept the checkpoint of epoch {}", .last_epoch) } else { " before its first checkpoint".to_string() })]
    Diverged {
        epoch: usize,
        step: usize,
        message: String,
        last_epoch: usize,
        /// What to do next, added by the caller that knows the files.
        hint: String,
    },

    /// A training loss that stopped being a number (`searcher train`); the
    /// checkpoint of the last whole epoch (`last_epoch`, 0 for none) is
    /// kept. `step` 0 is the held-out measurement.
    #[error("epoch {epoch}, {}: {message}; the training stopped{}{hint}", if *.step > 0 { format!("step {}", .step) } else { "held-out split".to_string() }, if *.last_epoch > 0 { format!(" and kept the checkpoint of epoch {}", .last_epoch) } else { " before its first checkpoint".to_string() })]
    TrainingDiverged {
        epoch: usize,
        step: usize,
        message: String,
        last_epoch: usize,
        hint: String,
    },

    /// A search that cannot fit in this machine's memory, refused before
    /// anything is allocated.
    #[error("not enough memory: {0}")]
    Memory(String),

    /// A weights file that is unreadable or not of this architecture.
    #[error("weights {path}: {message}")]
    Weights { path: PathBuf, message: String },

    /// An export that would not hold the architecture's network.
    #[error("export: {0}")]
    Export(String),

    #[error("invalid search settings: {0}")]
    Config(String),
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;

// By hand, not `#[from]`: that would make the c10d error a `source` too, and
// `error: {e:#}` would print its message twice.
// A rendezvous setting out of range is a refused input like any other, not
// a failed run with a checkpoint to resume.
impl From<c10d_tch::C10dError> for SearchError {
    fn from(e: c10d_tch::C10dError) -> Self {
        match e {
            c10d_tch::C10dError::Config(message) => SearchError::Config(message),
            other => SearchError::Distributed(other),
        }
    }
}
