//! Tests of the CUDA engine together with the layers below it: what the
//! engine's own modules cannot see (the boundary probe of `measure/`) or
//! should not import only for a test (the reference's comparison).

use space::{meta, Metadata};

use crate::measure::boundary::Boundary;
use crate::measure::engine::{EngineConfig, Launch};
use crate::measure::monitor::Unmonitored;
use crate::measure::timing::TimingRule;
use crate::reference::check::compare;

#[test]
fn the_poison_is_finite_and_far_from_any_output() {
    let v = f32::from_bits(u32::from_ne_bytes(
        [crate::cuda::cuda_engine::POISON_BYTE; 4],
    ));
    assert!(v.is_finite() && v > 1e29, "{v}");
    assert_eq!(0.0 * v, 0.0);
    // A comparison against it fails by far.
    let c = compare("x", &[v], &[1.0]);
    assert!(!c.ok());
}

/// On the GPU: the boundary probe (`crate::measure::boundary`) runs in
/// the CUDA engine, longer runs take longer, and the boundary lies
/// between 0 and a run of one kernel.
#[test]
#[ignore = "needs a CUDA GPU; scripts/gpu-check.sh runs it with --ignored"]
fn gpu_the_boundary_is_measured_and_smaller_than_a_run() {
    for launch in [Launch::Graph, Launch::Eager] {
        let config = EngineConfig {
            launch,
            ..Default::default()
        };
        let mut engine = match crate::cuda::CudaEngine::open(0, config) {
            Ok(e) => e,
            Err(e) => panic!("device 0 does not open: {e}"),
        };
        let b = Boundary::measure(
            &mut engine,
            &mut Unmonitored {
                why: "not needed".into(),
            },
            &TimingRule::default(),
        )
        .unwrap();
        let mut m = Metadata::new();
        b.set_header(&mut m);
        eprintln!(
            "{launch}: boundary {:.6} ms; {}",
            b.ms,
            m.get(meta::BOUNDARY).unwrap_or_default()
        );
        assert!(b.per_kernel_ms > 0.0, "{b:?}");
        assert!(b.ms < b.runs[0].1.trimmed_mean, "{b:?}");
    }
}
