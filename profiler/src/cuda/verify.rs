//! The GPU tests of the CUDA engine's numbers: each block kind's output
//! against the plain CPU reference ([`crate::reference`]), from the same
//! seeded input and weights. A fast engine that computes something else
//! would time the wrong thing. The check itself is engine-neutral
//! ([`crate::reference::check`]); `profiler verify` runs it for any engine.

#[cfg(test)]
mod tests {
    use crate::cuda::{ConvImpl, CudaEngine};
    use crate::measure::engine::{EngineConfig, Workload};
    use crate::reference::check::{check, failed, sample_blocks};

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
                match check(&mut engine, &workload) {
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
                let c = check(&mut engine, &workload).unwrap_or_else(|e| failed(&workload, &e));
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
