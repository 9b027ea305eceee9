//! What the build scripts of the crates that link libtorch through tch
//! (the searcher, the CPU engine) share: included by each `build.rs` with
//! `#[path]`, since a build script cannot depend on a workspace crate
//! without building it first.
//!
//! torch-sys (`links = "tch"`) tells dependents where libtorch lives through
//! `DEP_TCH_LIBTORCH_LIB`. From it we set an rpath, so the binary and its
//! tests find libtorch where `scripts/setup.sh` installed it without
//! environment variables, and record libtorch's version
//! (`LIBTORCH_VERSION`) for fingerprints and reports.

use std::path::Path;

/// Links libtorch by rpath and sets `LIBTORCH_VERSION`; with `keep_cuda`,
/// keeps `libtorch_cuda.so` as a NEEDED entry: the linker's `--as-needed`
/// drops it because no symbol is referenced directly, and without it
/// `tch::Cuda::is_available()` is false even on a GPU (docs/gpu-facts.md).
pub fn link(keep_cuda: bool) {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:rustc-env=LIBTORCH_VERSION=unknown");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if keep_cuda && Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    // PyPI's torch keeps `__version__ = '2.11.0+cu130'` in torch/version.py.
    let version_py = Path::new(&lib).join("../version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim_matches(['\'', '"', ' ']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=LIBTORCH_VERSION={version}");
}
