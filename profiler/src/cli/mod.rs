//! The command line: clap, `anyhow`, printing, progress bars and the
//! choice of engine, one file per command; the work itself is the
//! library's. `main.rs` parses and dispatches to them.

use std::path::PathBuf;

use ::space::SearchSpaceConfig;
use anyhow::Result;

pub mod build;
pub mod check;
pub mod compare;
pub mod cpu_exec;
pub mod engine_args;
pub mod fit;
pub mod measure;
pub mod plan;
pub mod predict;
pub mod progress;
pub mod space;
pub mod validate;
pub mod verify;

/// The space file's space, or the TF-NAS ImageNet space.
fn load_space(path: Option<&PathBuf>) -> Result<SearchSpaceConfig> {
    match path {
        Some(p) => Ok(SearchSpaceConfig::from_path(p)?),
        None => Ok(SearchSpaceConfig::default()),
    }
}

pub use profiler::files::command_line;
