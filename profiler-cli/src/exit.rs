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

/// Where `profiler` tells an engine binary it runs (`profiler --device cpu`
/// runs `profiler-cpu`) its own process id, for [`follow_parent`].
pub const PARENT_PID_VAR: &str = "PROFILER_PARENT_PID";

/// In an engine binary that `profiler` started: ends this process when
/// `profiler` ends (SIGTERM from the kernel), so that killing `profiler`
/// never leaves an orphan timing and appending to a table. Exits at once
/// if `profiler` is already gone.
pub fn follow_parent() {
    let Some(parent) = std::env::var(PARENT_PID_VAR)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getppid, set_parent_process_death_signal, Signal};
        let _ = set_parent_process_death_signal(Some(Signal::TERM));
        // Checked after the request: a parent that died before it was made
        // sent no signal.
        if getppid().map(|p| p.as_raw_nonzero().get()) != Some(parent) {
            eprintln!("error: the profiler that started this run has ended; stopping");
            std::process::exit(2);
        }
    }
}

/// Ends this process by SIGPIPE, as a child that met a closed stdout ended:
/// the shell sees the same status it would have without the hand-over.
pub fn end_by_sigpipe() -> ! {
    restore_sigpipe();
    #[cfg(unix)]
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::PIPE);
    std::process::exit(141)
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
