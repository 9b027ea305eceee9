//! Links the CPU profiler so it runs without environment variables, as the
//! searcher's build script does (`build-support/libtorch.rs`): an rpath to
//! the libtorch that torch-sys found, and libtorch's version for the
//! table's fingerprint. No `libtorch_cuda.so` is kept: this engine runs on
//! the CPU.

#[path = "../build-support/libtorch.rs"]
mod libtorch;

fn main() {
    println!("cargo:rerun-if-changed=../build-support/libtorch.rs");
    libtorch::link(false);
}
