//! End-to-end tests of the `searcher` binary.

use std::process::Command;

#[test]
fn reports_the_toolchain_and_the_space() {
    let out = Command::new(env!("CARGO_BIN_EXE_searcher"))
        .output()
        .expect("searcher runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("libtorch 2.11.0"), "{stdout}");
    assert!(stdout.contains("CUDA available: "), "{stdout}");
    assert!(stdout.contains("2805 entries"), "{stdout}");
}

#[test]
fn unreadable_space_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_searcher"))
        .args(["--space", "/nonexistent/space.toml"])
        .output()
        .expect("searcher runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/space.toml"), "{err}");
}
