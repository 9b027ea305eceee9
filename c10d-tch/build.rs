//! Compiles the C++ shim (csrc/) against the headers of the libtorch that
//! torch-sys found, with the flags torch-sys compiles its own wrapper with,
//! and sets the rpath (`build-support/libtorch.rs`). Where that libtorch
//! has CUDA (PyPI's default wheel) and NCCL's and the CUDA runtime's
//! headers lie beside it (pip's `nvidia/` packages) or under `CUDA_HOME`,
//! NCCL is compiled in too (`C10D_SHIM_NCCL`) and libtorch_cuda linked.

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
    let nccl = nccl_includes(&lib);
    let mut build = cc::Build::new();
    if let Some(dirs) = &nccl {
        build
            .includes(dirs)
            .define("C10D_SHIM_NCCL", None)
            .define("USE_C10D_NCCL", None);
    }
    build
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
    println!("cargo:rustc-check-cfg=cfg(c10d_nccl)");
    if nccl.is_some() {
        println!("cargo:rustc-cfg=c10d_nccl");
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    libtorch::link(false);
}

/// The folders holding `nccl.h` and `cuda_runtime_api.h` for a libtorch in
/// `lib` that has CUDA, or `None` (a CPU-only libtorch, headers not found,
/// or `C10D_TCH_NCCL=0`): the binding then offers Gloo alone.
fn nccl_includes(lib: &std::path::Path) -> Option<Vec<PathBuf>> {
    println!("cargo:rerun-if-env-changed=C10D_TCH_NCCL");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    if std::env::var("C10D_TCH_NCCL").is_ok_and(|v| v == "0")
        || !lib.join("libtorch_cuda.so").exists()
    {
        return None;
    }
    // pip puts the CUDA 13 runtime's headers in nvidia/cu13, CUDA 12's in
    // nvidia/cuda_runtime; NCCL's in nvidia/nccl; a toolkit has both.
    let nvidia = lib.join("../../nvidia");
    let cuda_home = std::env::var_os("CUDA_HOME").map(PathBuf::from);
    let mut roots = vec![
        nvidia.join("cu13"),
        nvidia.join("cuda_runtime"),
        nvidia.join("nccl"),
    ];
    roots.extend(cuda_home);
    roots.push(PathBuf::from("/usr/local/cuda"));
    // A folder's time changes when a package adds to it: a setup run after
    // a build that found no headers builds the shim again. (Paths that do
    // not exist are not watched: cargo would rerun this script every time.)
    for dir in [nvidia.clone(), nvidia.join("cu13/include")] {
        if dir.exists() {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
    }
    let find = |headers: &[&str]| {
        roots
            .iter()
            .map(|r| r.join("include"))
            .find(|d| headers.iter().all(|h| d.join(h).exists()))
    };
    // The runtime's headers include crt/ and nv/target (pip's crt and CCCL
    // wheels, which scripts/setup.sh adds to torch's).
    let dirs = vec![
        find(&["cuda_runtime_api.h", "crt/host_config.h", "nv/target"])?,
        find(&["nccl.h"])?,
    ];
    Some(dirs)
}
