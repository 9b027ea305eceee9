//! Helpers shared by the end-to-end tests of the `profiler` binary.
// Each test file uses a different subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

pub fn profiler(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_profiler"))
        .args(args)
        .output()
        .expect("profiler runs")
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A failure as users must see it: exit status 2, one `error:` message
/// naming every one of `words`, no panic, nothing on stdout.
#[track_caller]
pub fn fails_with(out: &Output, words: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in words {
        assert!(err.contains(w), "'{w}' not in: {err}");
    }
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

/// Writes a synthetic table to `path` with the space crate's own writer:
/// the format line, then `header`'s lines, then one row per `(block,
/// median)` at `batch`, each with `stats`' spread around its median. The
/// end-to-end tests' one table builder; every latency is made up, so the
/// header a caller passes names the device as synthetic.
pub fn write_table(
    path: &Path,
    batch: u32,
    header: &[(&str, String)],
    rows: &[(space::BlockSpec, f64)],
    stats: impl Fn(f64) -> space::LatencyStats,
) -> PathBuf {
    let mut md = space::Metadata::new();
    md.set(space::meta::FORMAT, space::table::FORMAT);
    for (key, value) in header {
        md.set(key, value);
    }
    let mut w = space::TableWriter::new(Vec::new(), &md).unwrap();
    for &(spec, median) in rows {
        w.write(&space::Entry {
            spec,
            batch,
            stats: stats(median),
        })
        .unwrap();
    }
    std::fs::write(path, w.finish(&space::Metadata::new()).unwrap()).unwrap();
    path.to_path_buf()
}

/// An entry's statistics with no spread, as a fixture's exact latency.
pub fn exact(median: f64) -> space::LatencyStats {
    space::LatencyStats::exact(median, 10)
}
