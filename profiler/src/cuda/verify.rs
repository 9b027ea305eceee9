//! Checking the GPU engine's numbers: each block kind's output against the
//! plain CPU implementation in [`crate::cuda::layers`], from the same seeded
//! input and weights. A fast engine that computes something else would time
//! the wrong thing.

use space::{Architecture, BlockSpec};

use crate::cuda::layers::reference_forward;
use crate::cuda::CudaEngine;
use crate::error::Result;
use crate::measure::engine::{Engine, Workload};

/// Largest error allowed, relative to the largest reference magnitude. cuDNN
/// may run fp32 convolutions on TF32 tensor cores (its default math, and
/// PyTorch's default for convolutions), which keeps about 10 mantissa bits.
pub const TOLERANCE: f64 = 1e-2;

/// One block kind of each variant the engine has code for: stem; second
/// stem (no expansion, SE); stride-1 residual without SE; stride-2 with SE
/// and swish; hard swish; kernel 5 with residual and SE; head.
pub fn sample_blocks() -> Vec<BlockSpec> {
    [
        "stem_r224_i3_o32_s2_k3_m0_se0_relu",
        "fixed_r112_i32_o16_s1_k3_m32_se8_relu",
        "mbconv_r56_i24_o24_s1_k3_m72_se0_relu",
        "mbconv_r28_i40_o80_s2_k5_m240_se80_swish",
        "mbconv_r14_i80_o80_s1_k5_m480_se160_swish",
        "mbconv_r14_i80_o80_s1_k3_m240_se0_hswish",
        "head_r7_i320_o1000_s1_k1_m1280_se0_swish",
    ]
    .iter()
    .map(|k| k.parse().expect("valid sample key"))
    .collect()
}

/// How far one output is from its reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub name: String,
    pub max_abs_err: f64,
    pub max_abs_ref: f64,
    pub len: usize,
}

impl Comparison {
    pub fn relative(&self) -> f64 {
        self.max_abs_err / self.max_abs_ref.max(f64::MIN_POSITIVE)
    }

    /// Within tolerance, with outputs of equal length and all finite.
    pub fn ok(&self) -> bool {
        self.max_abs_err.is_finite() && self.relative() <= TOLERANCE
    }
}

/// Compares two outputs element-wise; a length mismatch or a non-finite
/// value counts as an infinite error.
pub fn compare(name: &str, got: &[f32], want: &[f32]) -> Comparison {
    let mut max_abs_err = if got.len() == want.len() {
        0.0f64
    } else {
        f64::INFINITY
    };
    let mut max_abs_ref = 0.0f64;
    for (&g, &w) in got.iter().zip(want) {
        let err = (f64::from(g) - f64::from(w)).abs();
        max_abs_err = if err.is_nan() {
            f64::INFINITY
        } else {
            max_abs_err.max(err)
        };
        max_abs_ref = max_abs_ref.max(f64::from(w).abs());
    }
    Comparison {
        name: name.to_string(),
        max_abs_err,
        max_abs_ref,
        len: got.len(),
    }
}

/// Runs `workload` on the engine once and compares it with the CPU.
pub fn check(engine: &mut CudaEngine, workload: &Workload, batch: usize) -> Result<Comparison> {
    engine.prepare(workload)?;
    let got = engine.run_and_read_output()?;
    let want = reference_forward(workload.blocks(), batch, engine.config().seed);
    Ok(compare(&workload.to_string(), &got, &want))
}

/// The sample blocks at the engine's batch size. A block that fails to run
/// is a failed comparison (infinite error, the error in its name), not the
/// end of the check: one run on the GPU reports every block.
pub fn check_blocks(engine: &mut CudaEngine) -> Result<Vec<Comparison>> {
    let batch = engine.config().batch as usize;
    Ok(sample_blocks()
        .into_iter()
        .map(|spec| {
            let workload = Workload::Block(spec);
            check(engine, &workload, batch).unwrap_or_else(|e| failed(&workload, &e))
        })
        .collect())
}

/// The comparison standing for a workload that did not run.
pub fn failed(workload: &Workload, e: &crate::error::ProfilerError) -> Comparison {
    Comparison {
        name: format!("{workload} (error: {e})"),
        max_abs_err: f64::INFINITY,
        max_abs_ref: 0.0,
        len: 0,
    }
}

/// TF-NAS-A end to end (run the engine at batch 1: the CPU reference of the
/// whole network is slow).
pub fn check_tfnas_a(engine: &mut CudaEngine) -> Result<Comparison> {
    let blocks = Architecture::tfnas_a().block_specs()?;
    let workload = Workload::Network {
        name: "tfnas-a".into(),
        blocks,
    };
    let batch = engine.config().batch as usize;
    // An engine error is a failed comparison, so the caller still prints
    // the blocks checked before it.
    Ok(check(engine, &workload, batch).unwrap_or_else(|e| failed(&workload, &e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::ConvImpl;
    use crate::measure::engine::EngineConfig;

    #[test]
    fn comparisons_catch_errors_nans_and_length() {
        let c = compare("x", &[1.0, 2.0, 3.0], &[1.0, 2.01, 3.0]);
        assert!((c.max_abs_err - 0.01).abs() < 1e-6 && c.max_abs_ref == 3.0);
        assert!(c.ok());
        assert!(!compare("x", &[1.0, 2.5], &[1.0, 2.0]).ok());
        assert!(!compare("x", &[1.0, f32::NAN], &[1.0, 2.0]).ok());
        assert!(!compare("x", &[1.0], &[1.0, 2.0]).ok());
        let spec = sample_blocks()[0];
        let err = crate::error::ProfilerError::OutOfMemory {
            block: spec.to_string(),
        };
        let f = failed(&Workload::Block(spec), &err);
        assert!(!f.ok() && f.name.contains("error") && f.name.contains(&spec.to_string()));
        assert_eq!(sample_blocks().len(), 7);
    }

    /// The GPU check proper, under both launch modes. Checks every block
    /// before failing, printing each result, so that one run on the GPU
    /// shows everything that is off.
    #[test]
    #[ignore = "needs a CUDA GPU; scripts/gpu-check.sh runs it with --ignored"]
    fn gpu_blocks_match_the_cpu_reference() {
        let mut failures = Vec::new();
        for launch in [
            crate::measure::engine::Launch::Graph,
            crate::measure::engine::Launch::Eager,
        ] {
            let config = EngineConfig {
                batch: 2,
                launch,
                ..EngineConfig::default()
            };
            let mut engine = match CudaEngine::open(0, config) {
                Ok(e) => e,
                Err(e) => panic!("device 0 does not open: {e}"),
            };
            for spec in sample_blocks() {
                let workload = Workload::Block(spec);
                match check(&mut engine, &workload, 2) {
                    Ok(c) => {
                        eprintln!(
                            "{launch}: {} {}: max abs error {:.3e}, relative {:.3e}",
                            if c.ok() { "ok  " } else { "FAIL" },
                            c.name,
                            c.max_abs_err,
                            c.relative()
                        );
                        if !c.ok() {
                            failures.push(format!("{launch}: {c:?}"));
                        }
                    }
                    Err(e) => {
                        eprintln!("{launch}: ERROR {spec}: {e}");
                        failures.push(format!("{launch}: {spec}: {e}"));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    /// Every way of running a convolution, preferred in turn wherever it
    /// applies, against the CPU: the table times whichever wins at batch 32,
    /// which the check above (batch 2) may never have picked.
    #[test]
    #[ignore = "needs a CUDA GPU; scripts/gpu-check.sh runs it with --ignored"]
    fn gpu_every_convolution_candidate_matches_the_cpu_reference() {
        let config = EngineConfig {
            batch: 2,
            ..EngineConfig::default()
        };
        let mut engine = match CudaEngine::open(0, config) {
            Ok(e) => e,
            Err(e) => panic!("device 0 does not open: {e}"),
        };
        let mut failures = Vec::new();
        for how in CudaEngine::all_conv_impls() {
            engine.prefer(Some(how));
            for spec in sample_blocks() {
                let workload = Workload::Block(spec);
                let c = check(&mut engine, &workload, 2).unwrap_or_else(|e| failed(&workload, &e));
                eprintln!(
                    "prefer {how:?}: {} {}: relative error {:.3e}",
                    if c.ok() { "ok  " } else { "FAIL" },
                    c.name,
                    c.relative()
                );
                if !c.ok() {
                    failures.push(format!("prefer {how:?}: {c:?}"));
                }
            }
            // A preferred way that fails falls back to the others, and the
            // blocks still pass: the engine's own ways (which apply to some
            // sample block on any GPU) must have been chosen somewhere.
            // cuDNN may refuse an algorithm for every shape; that is said.
            let chosen = engine.chosen().contains(&how);
            let own = !matches!(how, ConvImpl::Cudnn(_) | ConvImpl::CudnnFused(_));
            eprintln!(
                "prefer {how:?}: {}",
                if chosen { "chosen" } else { "never chosen" }
            );
            if own && !chosen {
                failures.push(format!(
                    "prefer {how:?}: never chosen (it failed wherever it applied)"
                ));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
