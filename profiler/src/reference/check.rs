//! Holding an engine's output to the reference: the sample blocks, the
//! comparison and its tolerance, and the check itself, one implementation
//! for every engine that can read its output back ([`ReadsOutput`]).

use space::{Architecture, BlockSpec};

use crate::error::{ProfilerError, Result};
use crate::measure::engine::{Engine, Workload};
use crate::reference::forward::reference_forward;

/// Largest error allowed, relative to the largest reference magnitude. cuDNN
/// may run fp32 convolutions on TF32 tensor cores (its default math, and
/// PyTorch's default for convolutions), which keeps about 10 mantissa bits.
pub const TOLERANCE: f64 = 1e-2;

/// An engine whose prepared workload can be run once and its output read
/// back to the host, for the numerics check: the output of the last layer,
/// `N × C × H × W` flattened in that order, as the reference computes it.
pub trait ReadsOutput: Engine {
    fn run_and_read_output(&mut self) -> Result<Vec<f32>>;
}

/// One block kind of each variant the engines have code for: stem; second
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

/// The comparison standing for a workload that did not run.
pub fn failed(workload: &Workload, e: &ProfilerError) -> Comparison {
    Comparison {
        name: format!("{workload} (error: {e})"),
        max_abs_err: f64::INFINITY,
        max_abs_ref: 0.0,
        len: 0,
    }
}

/// Runs `workload` on the engine once, at the batch it was opened with, and
/// compares it with the reference from the engine's seed.
pub fn check<E: ReadsOutput>(engine: &mut E, workload: &Workload) -> Result<Comparison> {
    engine.prepare(workload)?;
    let got = engine.run_and_read_output()?;
    let want = reference_forward(
        workload.blocks(),
        engine.config().batch as usize,
        engine.config().seed,
    );
    Ok(compare(&workload.to_string(), &got, &want))
}

/// Every sample block of [`sample_blocks`] (each block kind and variant). A
/// block that fails to run is a failed comparison (infinite error, the
/// error in its name), not the end of the check: one run reports every
/// block.
pub fn check_blocks<E: ReadsOutput>(engine: &mut E) -> Result<Vec<Comparison>> {
    Ok(sample_blocks()
        .into_iter()
        .map(|spec| {
            let workload = Workload::Block(spec);
            check(engine, &workload).unwrap_or_else(|e| failed(&workload, &e))
        })
        .collect())
}

/// TF-NAS-A end to end (open the engine at batch 1: the reference of the
/// whole network is slow).
pub fn check_tfnas_a<E: ReadsOutput>(engine: &mut E) -> Result<Comparison> {
    let blocks = Architecture::tfnas_a().block_specs()?;
    let workload = Workload::Network {
        name: "tfnas-a".into(),
        blocks,
    };
    // An engine error is a failed comparison, so the caller still prints
    // the blocks checked before it.
    Ok(check(engine, &workload).unwrap_or_else(|e| failed(&workload, &e)))
}

#[cfg(test)]
mod tests;
