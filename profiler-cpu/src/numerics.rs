//! The CPU engine's outputs against the CPU reference the GPU engine is
//! checked against ([`profiler::cuda::layers::reference_forward`]), with
//! the same comparison and tolerance ([`profiler::cuda::verify`]).

use profiler::cuda::layers::reference_forward;
use profiler::cuda::verify::{compare, failed, sample_blocks, Comparison};
use profiler::engine::{Engine, Workload};
use profiler::error::Result;

use crate::CpuEngine;

/// Runs `workload` once and compares it with the reference.
pub fn check(engine: &mut CpuEngine, workload: &Workload) -> Result<Comparison> {
    engine.prepare(workload)?;
    let got = engine.run_and_read_output()?;
    let want = reference_forward(
        workload.blocks(),
        engine.config().batch as usize,
        engine.config().seed,
    );
    Ok(compare(&workload.to_string(), &got, &want))
}

/// Every sample block of [`sample_blocks`] (each block kind and variant);
/// a block that fails to run is a failed comparison.
pub fn check_blocks(engine: &mut CpuEngine) -> Result<Vec<Comparison>> {
    Ok(sample_blocks()
        .into_iter()
        .map(|spec| {
            let w = Workload::Block(spec);
            check(engine, &w).unwrap_or_else(|e| failed(&w, &e))
        })
        .collect())
}
