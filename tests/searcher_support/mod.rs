//! Helpers shared by the end-to-end tests of the `searcher` binary (the
//! profiler's are in `tests/support/`).
// Each test file uses a different subset of these.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// A fixture's path, as an argument.
pub fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// Runs the searcher with `args` and waits for it.
pub fn searcher<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_searcher"))
        .args(args)
        .output()
        .expect("searcher runs")
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}
