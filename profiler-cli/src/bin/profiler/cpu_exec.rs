//! `profiler --device cpu ...` runs the CPU engine's binary, `profiler-cpu`,
//! beside this one, with the same arguments: the CPU engine links libtorch,
//! which this binary must never load (docs/gpu-facts.md pitfall 1). Called first
//! thing in `main`, before clap sees the arguments.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use profiler_cli::exit::{self, PARENT_PID_VAR};

/// The CPU binary's name, next to `profiler`.
pub const CPU_BINARY: &str = "profiler-cpu";

/// Whether the arguments ask for the CPU (`--device cpu` or `--device=cpu`).
pub fn wants_cpu(args: &[OsString]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        a == "--device=cpu" || (a == "--device" && args.get(i + 1).is_some_and(|v| v == "cpu"))
    })
}

/// `Some(exit code)` when the command was the CPU's (run, or refused), or
/// a GPU `validate` given a CPU table (refused); `None` to go on as usual.
pub fn run_if_cpu() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if !wants_cpu(&args) {
        return refuse_cpu_table(&args);
    }
    let exe = std::env::current_exe().ok();
    let dir = exe
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let binary = dir.join(CPU_BINARY);
    if !binary.is_file() {
        eprintln!(
            "error: --device cpu needs the CPU engine's binary {}, which is not built: build it with `cargo build --release -p profiler-cpu` (it links libtorch; `bash scripts/setup.sh` installs it)",
            binary.display()
        );
        return Some(ExitCode::from(2));
    }
    Some(run_cpu(&binary, &args))
}

/// Runs the CPU binary, passing its output through, and turns the dynamic
/// loader's failure to find libtorch into one `error:` line.
fn run_cpu(binary: &Path, args: &[OsString]) -> ExitCode {
    // The child ties its life to this process (`profiler_cli::exit::
    // follow_parent`), so a killed `profiler` leaves no orphan appending to
    // the table.
    let child = Command::new(binary)
        .args(args)
        .env(PARENT_PID_VAR, std::process::id().to_string())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", binary.display());
            return ExitCode::from(2);
        }
    };
    let mut loader_error = None;
    if let Some(stderr) = child.stderr.take() {
        let mut out = std::io::stderr();
        for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
            let text = String::from_utf8_lossy(&line);
            if text.contains("error while loading shared libraries") {
                loader_error = Some(text.trim().to_string());
            } else {
                let _ = out.write_all(&line);
                let _ = out.write_all(b"\n");
            }
        }
    }
    let status = match child.wait() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", binary.display());
            return ExitCode::from(2);
        }
    };
    if let Some(msg) = loader_error {
        eprintln!(
            "error: the CPU engine cannot load libtorch ({msg}): run `bash scripts/setup.sh`, then `cargo build --release -p profiler-cpu`"
        );
        return ExitCode::from(2);
    }
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        None => killed(binary, status),
    }
}

/// The exit of a child that a signal ended: a closed stdout (SIGPIPE) ends
/// this process the same quiet way; any other signal is one `error:` line.
fn killed(binary: &Path, status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let signal = status.signal().unwrap_or(0);
    if signal == libc::SIGPIPE {
        exit::end_by_sigpipe();
    }
    eprintln!(
        "error: {} was ended by signal {signal}{}; a table or rows file it was writing resumes on a rerun",
        binary.display(),
        match signal {
            libc::SIGKILL => " (SIGKILL: killed, perhaps for memory)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGINT => " (SIGINT)",
            libc::SIGSEGV => " (SIGSEGV: a crash)",
            libc::SIGABRT => " (SIGABRT: an abort)",
            _ => "",
        }
    );
    ExitCode::from(2)
}

/// A GPU `validate` (no `--device cpu`) of a table whose header has the CPU
/// engine's `threads` line is refused: it would time the GPU against a CPU
/// table.
fn refuse_cpu_table(args: &[OsString]) -> Option<ExitCode> {
    if args.first().is_none_or(|a| a != "validate") {
        return None;
    }
    let table = args.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        match a.strip_prefix("--table=") {
            Some(v) => Some(PathBuf::from(v)),
            None if a == "--table" => args.get(i + 1).map(PathBuf::from),
            None => None,
        }
    })?;
    let text = std::fs::read_to_string(&table).ok()?;
    let cpu = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .any(|l| profiler::files::resume::header_key(l) == Some(space::meta::THREADS));
    cpu.then(|| {
        eprintln!(
            "error: {} is a CPU table (its header has a '{}' line): validate it with `profiler validate --device cpu --table {}`",
            table.display(),
            space::meta::THREADS,
            table.display()
        );
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_asked_for_in_either_spelling_only() {
        let v = |s: &[&str]| s.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(wants_cpu(&v(&["--device", "cpu", "--out", "x.csv"])));
        assert!(wants_cpu(&v(&["measure", "--device=cpu"])));
        assert!(!wants_cpu(&v(&["--device", "0"])));
        assert!(!wants_cpu(&v(&["--device"])));
        assert!(!wants_cpu(&v(&["--out", "cpu"])));
    }
}
