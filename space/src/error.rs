//! The one error type of this crate.
//!
//! Every variant carries enough context (file and line, stage and block, the
//! offending key) for a user to fix the input without reading the code.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    // The cause is in the message and deliberately not a `#[source]`: the
    // binaries print the whole chain (`{:#}`), which would repeat it.
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("invalid search space: {0}")]
    Config(String),

    #[error("{path}: {message}")]
    ConfigFile { path: PathBuf, message: String },

    #[error("invalid block key '{}': {}", clip(.key, 200), clip(.reason, 300))]
    Key { key: String, reason: String },

    /// A problem at one place of a latency table file.
    #[error("{}", table_location(.file, *.line, .column.as_deref(), .message))]
    Table {
        file: String,
        line: u64,
        column: Option<String>,
        message: String,
    },

    /// Every key a lookup needed and the table lacks, so one run shows them all.
    #[error("the table lacks {} needed entr{}: {}", .keys.len(), if .keys.len() == 1 { "y" } else { "ies" }, .keys.join(", "))]
    MissingEntries { keys: Vec<String> },

    /// An architecture that does not fit its space; stage and block are 1-based.
    #[error("{}", arch_location(*.stage, *.block, .message))]
    Arch {
        stage: usize,
        block: Option<usize>,
        message: String,
    },

    #[error("invalid architecture JSON: {0}")]
    ArchJson(String),

    /// An output that cannot or must not be written.
    #[error("output {path}: {message}")]
    Output { path: PathBuf, message: String },

    #[error("cannot write table: {0}")]
    Write(String),
}

fn table_location(file: &str, line: u64, column: Option<&str>, message: &str) -> String {
    let message = clip(message, 2000);
    match column {
        Some(column) => format!("{file}:{line}: column '{column}': {message}"),
        None => format!("{file}:{line}: {message}"),
    }
}

fn arch_location(stage: usize, block: Option<usize>, message: &str) -> String {
    match block {
        Some(block) => format!("architecture stage {stage}, block {block}: {message}"),
        None => format!("architecture stage {stage}: {message}"),
    }
}

/// `text` cut to at most `max` characters, saying how long it was: a 20 MB
/// key must not come back whole in a one-line message.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}... ({} bytes in all)", &text[..at], text.len()),
        None => text.to_string(),
    }
}

pub type Result<T, E = SpaceError> = std::result::Result<T, E>;
