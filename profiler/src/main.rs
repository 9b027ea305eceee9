//! `profiler`: builds, checks and uses latency tables of a search space.
//!
//! Every failure prints one clear `error:` message on stderr and exits with
//! status 2; nothing panics on bad input.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A closed stdout (`... | head`) ends the process quietly, as it ends any
/// Unix tool, instead of a panic in `println!`: Rust ignores SIGPIPE by
/// default, turning it into an error every print would have to handle.
fn restore_sigpipe() {
    #[cfg(unix)]
    // Safety: called first thing in `main`, before any other thread exists;
    // `SIG_DFL` is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
