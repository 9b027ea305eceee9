//! An rpath to the libtorch that torch-sys found, so this crate's own
//! tests run without environment variables (`build-support/libtorch.rs`,
//! as the CPU engine and the searcher link).

#[path = "../build-support/libtorch.rs"]
mod libtorch;

fn main() {
    println!("cargo:rerun-if-changed=../build-support/libtorch.rs");
    libtorch::link(false);
}
