//! The process's memory, set up before libtorch allocates anything.
//!
//! With glibc's defaults every activation over malloc's mmap threshold is
//! a fresh mapping, faulted in page by page on each run and unmapped when
//! freed, on 4 KiB pages. On the 2-core development VM that made the
//! same network 2x slower in one process than in the next, and a block's
//! time depended on what had been freed before it (docs/cpu.md, "Memory").
//! glibc reads its tunables once, at start-up, so the binary re-executes
//! itself with [`TUNABLES`] added to `GLIBC_TUNABLES` (keeping whatever
//! the user set there) before doing anything else:
//! - `hugetlb=1`: malloc's memory is advised for transparent huge pages,
//!   so a 6 MB activation is three TLB entries, not 1,500;
//! - `mmap_threshold` at glibc's largest (32 MiB) and a `trim_threshold`
//!   beyond any table's needs: activations come from the heap, and freed
//!   memory stays there for the next run, so a run in steady state faults
//!   nothing in.
//!
//! This is the setting a CPU deployment should use too (PyTorch's tuning
//! guide recommends jemalloc or tcmalloc for the same reason); the table's
//! `cpu_memory` line says what the process ran with.

use std::ffi::OsString;

/// The glibc malloc tunables the engine runs under.
pub const TUNABLES: [(&str, &str); 3] = [
    ("glibc.malloc.hugetlb", "1"),
    ("glibc.malloc.mmap_threshold", "33554432"),
    ("glibc.malloc.trim_threshold", "4294967296"),
];

/// Set in the re-executed process, so that it never loops.
const MARK: &str = "PROFILER_CPU_MEMORY_SET";

/// `GLIBC_TUNABLES` with every one of [`TUNABLES`] that `current` lacks
/// appended, or `None` when it has them all.
pub fn with_tunables(current: Option<&str>) -> Option<String> {
    let current = current.unwrap_or("");
    let missing: Vec<String> = TUNABLES
        .iter()
        .filter(|(k, _)| !current.split(':').any(|kv| kv.split('=').next() == Some(k)))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut all: Vec<String> = current
        .split(':')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    all.extend(missing);
    Some(all.join(":"))
}

/// Re-executes this binary with [`TUNABLES`] in `GLIBC_TUNABLES`, unless
/// they are there already or this is the re-executed process. Returns only
/// when no re-execution happened, with the reason when it failed (the run
/// goes on with glibc's defaults, and the header says so).
pub fn ensure_tunables() -> Result<(), String> {
    if std::env::var_os(MARK).is_some() {
        return Ok(());
    }
    let current = std::env::var("GLIBC_TUNABLES").ok();
    let Some(value) = with_tunables(current.as_deref()) else {
        return Ok(());
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(exe)
        .args(args)
        .env("GLIBC_TUNABLES", value)
        .env(MARK, "1")
        .exec();
    Err(format!("cannot re-execute with GLIBC_TUNABLES: {err}"))
}

/// The header's `cpu_memory` line: the tunables in effect and the
/// system's transparent-huge-page mode.
pub fn describe() -> String {
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let ours: Vec<String> = TUNABLES
        .iter()
        .filter(|(k, v)| tunables.split(':').any(|kv| kv == format!("{k}={v}")))
        .map(|(k, v)| format!("{}={v}", k.trim_start_matches("glibc.malloc.")))
        .collect();
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .find(|w| w.starts_with('['))
                .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let malloc = if ours.len() == TUNABLES.len() {
        format!("glibc malloc {}", ours.join(" "))
    } else {
        "glibc malloc defaults (tunables not set)".into()
    };
    format!("{malloc}; transparent huge pages {thp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tunables_are_appended_and_the_users_are_kept() {
        let all = with_tunables(None).unwrap();
        assert_eq!(
            all,
            "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296"
        );
        assert_eq!(with_tunables(Some(&all)), None);
        let user = with_tunables(Some("glibc.malloc.hugetlb=0:glibc.cpu.x86_ibt=off")).unwrap();
        // The user's own choice of a key wins; the others are added.
        assert!(
            user.starts_with("glibc.malloc.hugetlb=0:glibc.cpu.x86_ibt=off:"),
            "{user}"
        );
        assert!(
            user.contains("glibc.malloc.mmap_threshold=33554432"),
            "{user}"
        );
        assert!(!user.contains("hugetlb=1"), "{user}");
    }
}
