//! How every binary of the profiler ends: one `error:` line on stderr and
//! status 2 for any failure, and a closed stdout (`... | head`) ending the
//! process quietly, as it ends any Unix tool.

use std::process::ExitCode;

/// Restores SIGPIPE's default, so that a closed stdout ends the process
/// instead of a panic in `println!` (Rust ignores SIGPIPE by default).
/// Call it first thing in `main`.
pub fn restore_sigpipe() {
    sigpipe::reset();
}

/// The exit status of a command's result, after printing its error.
pub fn status(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
