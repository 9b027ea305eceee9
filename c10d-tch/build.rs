//! Compiles the C++ shim (csrc/) against the headers of the libtorch that
//! torch-sys found, with the flags torch-sys compiles its own wrapper with,
//! and sets the rpath (`build-support/libtorch.rs`).

#[path = "../build-support/libtorch.rs"]
mod libtorch;

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=../build-support/libtorch.rs");
    println!("cargo:rerun-if-changed=csrc/c10d_shim.cpp");
    println!("cargo:rerun-if-changed=csrc/c10d_shim.h");
    println!("cargo:rerun-if-changed=third_party");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys names libtorch's lib folder"),
    );
    let include = lib.join("../include");
    cc::Build::new()
        .cpp(true)
        .file("csrc/c10d_shim.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include("third_party")
        .include("csrc")
        .flag("-std=c++17")
        // PyPI's libtorch is built with the C++11 ABI since 2.6.
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        // ProcessGroupGloo.hpp declares its class only under this flag.
        .flag("-DUSE_C10D_GLOO")
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .warnings(false)
        .compile("c10d_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    libtorch::link(false);
}
