//! `profiler verify`: the CUDA engine's outputs against the CPU reference.

use clap::Args;
use profiler::cuda::cuda_engine::CudaEngine;
use profiler::cuda::verify::{check_blocks, check_tfnas_a, Comparison, TOLERANCE};
use profiler::error::{ProfilerError, Result};
use profiler::measure::engine::{Engine, EngineConfig, Launch};

/// `profiler verify`: the engine's outputs against the CPU reference.
#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// CUDA device index.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Images per check (the CPU reference is slow; keep it small).
    #[arg(long, default_value_t = 2)]
    pub batch: u32,
    #[arg(long, default_value = "graph")]
    pub launch: Launch,
    /// Also check TF-NAS-A end to end at batch 1.
    #[arg(long)]
    pub network: bool,
}

/// Checks every sample block (and TF-NAS-A with `--network`); fails when
/// any output is off by more than the tolerance.
pub fn run(args: &VerifyArgs) -> Result<()> {
    let open = |batch: u32| {
        CudaEngine::open(
            args.device,
            EngineConfig {
                batch,
                launch: args.launch,
                ..EngineConfig::default()
            },
        )
    };
    let mut engine = open(args.batch.max(1))?;
    eprintln!(
        "device {}: {} ({}); checking against the CPU at batch {}, launch {}, tolerance {TOLERANCE} of the largest value",
        args.device,
        engine.info().device_name,
        engine.info().device_uuid,
        args.batch,
        args.launch
    );
    let mut results = check_blocks(&mut engine)?;
    drop(engine);
    if args.network {
        let mut engine = open(1)?;
        results.push(check_tfnas_a(&mut engine)?);
    }
    let print = |c: &Comparison| {
        println!(
            "{} {}: max abs error {:.3e} (relative {:.3e}) over {} values",
            if c.ok() { "ok  " } else { "FAIL" },
            c.name,
            c.max_abs_err,
            c.relative(),
            c.len
        )
    };
    results.iter().for_each(print);
    let failed = results.iter().filter(|c| !c.ok()).count();
    if failed > 0 {
        return Err(ProfilerError::Invalid(format!(
            "{failed} of {} outputs differ from the CPU reference",
            results.len()
        )));
    }
    Ok(())
}
