//! Links the searcher so it runs without environment variables
//! (`build-support/libtorch.rs`): an rpath to the libtorch that torch-sys
//! found, `libtorch_cuda.so` kept so that tch sees a GPU where there is
//! one, and libtorch's version for reports.

#[path = "../build-support/libtorch.rs"]
mod libtorch;

fn main() {
    println!("cargo:rerun-if-changed=../build-support/libtorch.rs");
    libtorch::link(true);
}
