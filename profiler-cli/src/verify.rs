//! `profiler verify`: the engine's outputs for each block kind against the
//! CPU reference (`profiler::reference`), printed one line each.

use anyhow::{bail, Result};
use profiler::reference::Comparison;

use crate::engine::EngineCli;

/// Runs the engine's checks and prints each; fails when any output is off
/// by more than the tolerance.
pub fn run<E: EngineCli>(args: &E::VerifyArgs) -> Result<()> {
    let results = E::verify(args)?;
    for c in &results {
        println!("{}", line(c));
    }
    let failed = results.iter().filter(|c| !c.ok()).count();
    if failed > 0 {
        bail!(
            "{failed} of {} outputs differ from the CPU reference",
            results.len()
        );
    }
    Ok(())
}

/// One check as `verify` prints it.
pub fn line(c: &Comparison) -> String {
    format!(
        "{} {}: max abs error {:.3e} (relative {:.3e}) over {} values",
        if c.ok() { "ok  " } else { "FAIL" },
        c.name,
        c.max_abs_err,
        c.relative(),
        c.len
    )
}
