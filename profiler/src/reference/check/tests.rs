//! The check on the fake engine, made to compute the reference (here, not
//! in `check.rs`, so that the check's own file stays below the fake engine
//! in the import graph: `scripts/import-floors.py` counts a test's imports).

use super::*;
use crate::measure::engine::{EngineConfig, EngineInfo};
use crate::measure::fake::FakeEngine;

/// The fake engine made to read back the reference itself, off by
/// `offset` everywhere.
struct Echo {
    fake: FakeEngine,
    offset: f32,
    workload: Option<Workload>,
}

impl Engine for Echo {
    fn info(&self) -> &EngineInfo {
        self.fake.info()
    }
    fn config(&self) -> &EngineConfig {
        self.fake.config()
    }
    fn prepare(&mut self, workload: &Workload) -> Result<()> {
        self.fake.prepare(workload)?;
        self.workload = Some(workload.clone());
        Ok(())
    }
    fn run_timed(&mut self) -> Result<f64> {
        self.fake.run_timed()
    }
}

impl ReadsOutput for Echo {
    fn run_and_read_output(&mut self) -> Result<Vec<f32>> {
        let workload = self.workload.as_ref().expect("prepared");
        let c = self.fake.config();
        let out = reference_forward(workload.blocks(), c.batch as usize, c.seed);
        Ok(out.into_iter().map(|v| v + self.offset).collect())
    }
}

fn echo(offset: f32, fail_after: Option<usize>) -> Echo {
    let mut fake = FakeEngine::new(EngineConfig {
        batch: 1,
        ..EngineConfig::default()
    });
    fake.fail_after = fail_after;
    Echo {
        fake,
        offset,
        workload: None,
    }
}

#[test]
fn the_check_passes_an_engine_that_computes_the_reference_and_fails_one_that_does_not() {
    let all = check_blocks(&mut echo(0.0, None)).unwrap();
    assert_eq!(all.len(), sample_blocks().len());
    assert!(all.iter().all(Comparison::ok), "{all:#?}");
    let off = check_blocks(&mut echo(1.0, None)).unwrap();
    assert!(off.iter().all(|c| !c.ok()), "{off:#?}");
}

#[test]
fn a_block_that_fails_to_run_fails_its_comparison_and_the_check_goes_on() {
    // The fake fails every prepare once 0 blocks were prepared.
    let all = check_blocks(&mut echo(0.0, Some(0))).unwrap();
    assert_eq!(all.len(), sample_blocks().len());
    assert!(all
        .iter()
        .all(|c| !c.ok() && c.name.contains("simulated kill")));
}

#[test]
fn comparisons_catch_errors_nans_and_length() {
    let c = compare("x", &[1.0, 2.0, 3.0], &[1.0, 2.01, 3.0]);
    assert!((c.max_abs_err - 0.01).abs() < 1e-6 && c.max_abs_ref == 3.0);
    assert!(c.ok());
    assert!(!compare("x", &[1.0, 2.5], &[1.0, 2.0]).ok());
    assert!(!compare("x", &[1.0, f32::NAN], &[1.0, 2.0]).ok());
    assert!(!compare("x", &[1.0], &[1.0, 2.0]).ok());
    let spec = sample_blocks()[0];
    let err = ProfilerError::OutOfMemory {
        block: spec.to_string(),
    };
    let f = failed(&Workload::Block(spec), &err);
    assert!(!f.ok() && f.name.contains("error") && f.name.contains(&spec.to_string()));
    assert_eq!(sample_blocks().len(), 7);
}
