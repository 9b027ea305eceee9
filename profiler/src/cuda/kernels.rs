//! The engine's own CUDA kernels (`kernels/*.cu`), compiled with NVRTC
//! when an engine opens:
//! two depthwise convolutions (cuDNN's is slow on H100, docs/gpu-facts.md pitfall 4)
//! with bias and activation fused, a direct dense convolution (the stem's
//! candidate that does not depend on cuDNN), the small element-wise and SE
//! kernels around the cuDNN convolutions, and the L2 flush. fp32 NCHW.
//!
//! `act` codes: 0 none, 1 ReLU, 2 swish, 3 hard swish ([`act_code`]).

use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions, Ptx};
use space::Activation;

use crate::error::{ProfilerError, Result};

/// Kernel names, as `load_function` needs them.
pub const NAMES: [&str; 12] = [
    "spin",
    "l2_flush",
    "bias_act",
    "bias_residual",
    "dwconv",
    "dwconv_plane",
    "conv_direct",
    "global_pool",
    "se_fc",
    "channel_scale",
    "se_weights",
    "fc",
];

/// The kernels' CUDA source, compiled by NVRTC as one file
/// (`profiler_kernels.cu`): `kernels/compute.cu`, then `kernels/spin.cu`.
pub const SOURCE: &str = concat!(
    include_str!("kernels/compute.cu"),
    "\n",
    include_str!("kernels/spin.cu")
);

/// Compiles `source` with NVRTC to PTX for compute capability
/// `major.minor`; a compile error carries NVRTC's log, which names the file
/// (`profiler_kernels.cu`), the line and the problem. NVRTC needs no GPU,
/// so this runs, and is tested, anywhere the library loads.
pub fn compile(source: &str, major: i32, minor: i32) -> Result<Ptx> {
    const WHAT: &str = "the engine's kernels";
    // Safety: only tries to dlopen libnvrtc.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(ProfilerError::KernelCompile {
            block: WHAT.into(),
            log: "libnvrtc cannot be loaded".into(),
        });
    }
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
        name: Some("profiler_kernels.cu".into()),
        ..CompileOptions::default()
    };
    compile_ptx_with_opts(source, opts).map_err(|e| ProfilerError::KernelCompile {
        block: WHAT.into(),
        log: match &e {
            CompileError::CompileError { log, .. } => log.to_string_lossy().into_owned(),
            other => format!("{other:?}"),
        },
    })
}

/// The integer the kernels take for an activation; they compute each as
/// [`crate::reference::forward::activate`] does.
pub fn act_code(act: Option<Activation>) -> i32 {
    match act {
        None => 0,
        Some(Activation::Relu) => 1,
        Some(Activation::Swish) => 2,
        Some(Activation::Hswish) => 3,
    }
}

/// Threads per block for the element-wise kernels.
pub const THREADS: u32 = 256;

/// Blocks for a grid-stride loop over `total` elements, capped so that a
/// launch never asks for more blocks than the GPU can use at once many
/// times over.
pub fn grid_for(total: usize) -> u32 {
    (total.div_ceil(THREADS as usize)).clamp(1, 65_535) as u32
}

/// Threads per block of `dwconv_plane` for `outputs` outputs per plane:
/// whole warps, at most 256, so that small planes (7x7) leave few threads
/// idle and large ones loop.
pub fn plane_threads(outputs: usize) -> u32 {
    (outputs.div_ceil(32) * 32).clamp(32, 256) as u32
}

/// Dynamic shared memory of `dwconv_plane` for an `h`×`h` input and a
/// `k`×`k` kernel: the zero-padded plane and 32 warp sums.
pub fn plane_shared_bytes(h: u32, k: u32) -> usize {
    let hp = (h + 2 * (k / 2)) as usize;
    (hp * hp + 32) * std::mem::size_of::<f32>()
}

/// Blocks for one warp per item.
pub fn grid_for_warps(items: usize) -> u32 {
    (items * 32).div_ceil(THREADS as usize).max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_codes_are_as_documented() {
        assert_eq!(act_code(None), 0);
        assert_eq!(act_code(Some(Activation::Relu)), 1);
        assert_eq!(act_code(Some(Activation::Swish)), 2);
        assert_eq!(act_code(Some(Activation::Hswish)), 3);
    }

    #[test]
    fn every_named_kernel_is_in_the_source_once() {
        for name in NAMES {
            let decl = format!("__global__ void {name}(");
            assert_eq!(SOURCE.matches(&decl).count(), 1, "{name}");
        }
        assert_eq!(grid_for(1), 1);
        assert_eq!(grid_for(257), 2);
        assert_eq!(grid_for(usize::MAX / 2), 65_535);
        assert_eq!(grid_for_warps(8), 1);
        assert_eq!(grid_for_warps(9), 2);
        assert_eq!(plane_threads(49), 64);
        assert_eq!(plane_threads(196), 224);
        assert_eq!(plane_threads(112 * 112), 256);
        assert_eq!(plane_threads(1), 32);
        // 7x7 input, k5: an 11x11 padded plane and the warp sums.
        assert_eq!(plane_shared_bytes(7, 5), (121 + 32) * 4);
        // The largest TF-NAS plane, 112x112 with k5, needs the opt-in
        // shared memory beyond 48 KiB.
        assert!(plane_shared_bytes(112, 5) > 48 << 10);
    }

    /// Whether NVRTC loads here. `scripts/test.sh` puts the NVRTC of the
    /// project's torch wheel (CUDA 13.0, the GPU machine's version) on the
    /// loader's path and sets `PROFILER_REQUIRE_NVRTC`, so that in CI a
    /// missing library fails instead of skipping silently.
    fn nvrtc_loads() -> bool {
        // Safety: only tries to dlopen libnvrtc.
        let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
        if !present {
            assert!(
                std::env::var_os("PROFILER_REQUIRE_NVRTC").is_none(),
                "PROFILER_REQUIRE_NVRTC is set but libnvrtc cannot be loaded"
            );
            eprintln!("skipped: libnvrtc cannot be loaded on this machine");
        }
        present
    }

    /// NVRTC needs no GPU: where the library loads, the source must compile
    /// for the H100 (compute_90). Skips where NVRTC is absent.
    #[test]
    fn the_source_compiles_with_nvrtc() {
        if !nvrtc_loads() {
            return;
        }
        let ptx =
            compile(SOURCE, 9, 0).unwrap_or_else(|e| panic!("NVRTC rejected the kernels: {e}"));
        let text = ptx.to_src();
        for name in NAMES {
            assert!(
                text.contains(&format!(".entry {name}(")),
                "{name} missing from PTX"
            );
        }
        // Each kernel's parameters, in bytes, as engine.rs passes them
        // (pointers and i64 are 8, i32 4): a mismatch would launch with
        // garbage arguments, and nothing checks that at run time.
        for (name, want) in SIGNATURES {
            assert_eq!(param_sizes(&text, name), want, "{name}");
        }
    }

    /// Issue 3: a kernel that fails to compile is a clear error naming
    /// the file and line, not a panic (the binary exits 2 on any error).
    #[test]
    fn a_kernel_that_does_not_compile_is_an_error_with_nvrtcs_log() {
        if !nvrtc_loads() {
            return;
        }
        let broken =
            "extern \"C\" __global__ void broken(float* y) {\n    y[0] = not_declared;\n}\n";
        let e = compile(broken, 9, 0).unwrap_err();
        let ProfilerError::KernelCompile { ref log, .. } = e else {
            panic!("not a compile error: {e:?}")
        };
        assert!(
            log.contains("profiler_kernels.cu(2)") && log.contains("not_declared"),
            "{log}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with("a kernel for the engine's kernels failed to compile:"),
            "{text}"
        );
    }

    /// The engine loads PTX, and the driver's ptxas turns it into H100
    /// machine code only when the engine opens on the GPU. NVRTC runs that
    /// same last stage here for sm_90: the kernels must assemble, and none
    /// may spill registers to local memory or keep a stack frame, which
    /// would slow the depthwise kernels that most table entries spend
    /// their time in without failing anything.
    #[test]
    fn the_kernels_assemble_for_the_h100_without_spilling() {
        use cudarc::nvrtc::result;
        if !nvrtc_loads() {
            return;
        }
        let src = std::ffi::CString::new(SOURCE).unwrap();
        let prog = result::create_program(&src, None).unwrap();
        // Safety: `prog` was just created and is destroyed once, below.
        let (compiled, log) = unsafe {
            let compiled =
                result::compile_program(prog, &["--gpu-architecture=sm_90", "--ptxas-options=-v"]);
            let log = result::get_program_log(prog);
            result::destroy_program(prog).unwrap();
            (compiled, log.unwrap())
        };
        let log: Vec<u8> = log.iter().map(|&c| c as u8).collect();
        let log = String::from_utf8_lossy(&log);
        assert!(compiled.is_ok(), "ptxas rejected the kernels:\n{log}");
        let report = ptxas_report(&log);
        for name in NAMES {
            let r = report
                .iter()
                .find(|r| r.name == name)
                .unwrap_or_else(|| panic!("{name} missing from ptxas's report:\n{log}"));
            eprintln!(
                "{name}: {} registers, {} B stack, {} B spill stores, {} B spill loads",
                r.registers, r.stack, r.spill_stores, r.spill_loads
            );
            assert_eq!(
                (r.stack, r.spill_stores, r.spill_loads),
                (0, 0, 0),
                "{name} uses local memory"
            );
        }
    }

    /// One kernel's resources, as `ptxas -v` reports them.
    #[derive(Debug, Default, PartialEq)]
    struct PtxasEntry {
        name: String,
        registers: u32,
        stack: u32,
        spill_stores: u32,
        spill_loads: u32,
    }

    /// Parses `ptxas -v`'s log: an entry begins at "Compiling entry
    /// function 'name'", and its numbers follow on the next lines.
    fn ptxas_report(log: &str) -> Vec<PtxasEntry> {
        // The number just before `unit` in `line`.
        fn before(line: &str, unit: &str) -> Option<u32> {
            let at = line.find(unit)?;
            line[..at].split_whitespace().last()?.parse().ok()
        }
        let mut out: Vec<PtxasEntry> = Vec::new();
        for line in log.lines() {
            if let Some(rest) = line.split("Compiling entry function '").nth(1) {
                let name = rest.split('\'').next().unwrap_or_default();
                out.push(PtxasEntry {
                    name: name.to_string(),
                    ..Default::default()
                });
            } else if let Some(entry) = out.last_mut() {
                if let Some(n) = before(line, "bytes stack frame") {
                    entry.stack = n;
                }
                if let Some(n) = before(line, "bytes spill stores") {
                    entry.spill_stores = n;
                }
                if let Some(n) = before(line, "bytes spill loads") {
                    entry.spill_loads = n;
                }
                if let Some(n) = before(line, "registers") {
                    entry.registers = n;
                }
            }
        }
        out
    }

    #[test]
    fn ptxas_report_reads_a_verbose_log() {
        let log = "ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'fc' for 'sm_90'
ptxas info    : Function properties for fc
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 30 registers, used 0 barriers
ptxas info    : Compiling entry function 'dwconv' for 'sm_90'
ptxas info    : Function properties for dwconv
ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers
";
        let report = ptxas_report(log);
        assert_eq!(
            report,
            vec![
                PtxasEntry {
                    name: "fc".into(),
                    registers: 30,
                    ..Default::default()
                },
                PtxasEntry {
                    name: "dwconv".into(),
                    registers: 255,
                    stack: 16,
                    spill_stores: 8,
                    spill_loads: 4,
                },
            ]
        );
    }

    /// The kernels' index math, bounds, activations and reductions, checked
    /// on the CPU: `kernels/emulation.cpp` runs `compute.cu` as C++ with one
    /// thread per CUDA thread and compares every kernel with a plain loop.
    /// Needs g++ with C++20 `<barrier>`; skips without it.
    #[test]
    fn the_kernels_match_the_cpu_in_an_emulation() {
        use std::path::Path;
        use std::process::Command;
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe.cpp");
        std::fs::write(&probe, "#include <barrier>\nint main() { return 0; }\n").unwrap();
        let probe_ok = Command::new("g++")
            .args(["-std=c++20", "-fsyntax-only"])
            .arg(&probe)
            .output()
            .is_ok_and(|o| o.status.success());
        if !probe_ok {
            eprintln!("skipped: no g++ with C++20 <barrier> on this machine");
            return;
        }
        // Everything but `spin`, whose PTX timer has no CPU form: the
        // harness includes compute.cu from beside itself.
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cuda/kernels/emulation.cpp");
        let exe = dir.path().join("emulation");
        let build = |sanitize: bool| {
            let mut cmd = Command::new("g++");
            cmd.args(["-std=c++20", "-O1", "-pthread", "-o"])
                .arg(&exe)
                .arg(&src);
            if sanitize {
                // Out-of-bounds accesses and undefined behaviour fail the run.
                cmd.args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]);
            }
            cmd.output().unwrap()
        };
        // With the sanitizers where their runtimes are installed.
        let mut built = build(true);
        if !built.status.success() {
            built = build(false);
        }
        assert!(
            built.status.success(),
            "the emulation does not compile:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let ran = Command::new(&exe).output().unwrap();
        let out = String::from_utf8_lossy(&ran.stdout);
        assert!(
            ran.status.success(),
            "{out}\n{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        assert!(out.contains("ok: 0 mismatches"), "{out}");
    }

    /// The byte sizes of the `.param`s of PTX entry `name`.
    fn param_sizes(ptx: &str, name: &str) -> Vec<usize> {
        let start = ptx
            .find(&format!(".entry {name}("))
            .unwrap_or_else(|| panic!("{name} not in PTX"));
        let rest = &ptx[start..];
        let params = &rest[..rest.find(')').expect("parameter list ends")];
        params
            .lines()
            .filter_map(|l| l.trim().strip_prefix(".param ."))
            .map(|l| match &l[..3] {
                "u64" | "s64" | "b64" | "f64" => 8,
                "u32" | "s32" | "b32" | "f32" => 4,
                other => panic!("{name}: parameter type {other}"),
            })
            .collect()
    }

    /// What engine.rs's `launch` passes to each kernel, in bytes.
    const SIGNATURES: [(&str, &[usize]); 12] = [
        ("spin", &[8, 8]),
        ("l2_flush", &[8, 8, 8]),
        ("conv_direct", &[8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 8, 4]),
        ("bias_act", &[8, 8, 4, 4, 8, 4]),
        ("bias_residual", &[8, 8, 8, 4, 4, 8, 4]),
        ("dwconv", &[8, 8, 8, 8, 4, 4, 4, 4, 4, 8, 4]),
        ("dwconv_plane", &[8, 8, 8, 8, 8, 4, 8, 4, 4, 4, 4, 4, 4]),
        ("global_pool", &[8, 8, 4, 4]),
        ("se_fc", &[8, 8, 8, 8, 8, 8, 4, 4, 4]),
        ("channel_scale", &[8, 8, 4, 8]),
        ("se_weights", &[8, 8, 8, 4, 4, 8]),
        ("fc", &[8, 8, 8, 8, 4, 4, 4]),
    ];
}
