//! Two real processes on Gloo: each test runs itself again as rank 1 (the
//! child sees `C10D_TEST_RANK=1`) and plays rank 0 here.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use c10d_tch::{Backend, BatchNorm, ProcessGroup};

mod support;
use support::{free_port, rendezvous};
use tch::{Kind, Tensor};

/// This process's rank: 1 in the child, else 0 after starting the child
/// (which runs only `test`).
fn start(test: &str) -> (usize, u16, Option<Child>) {
    if let Ok(port) = std::env::var("C10D_TEST_PORT") {
        return (1, port.parse().unwrap(), None);
    }
    let port = free_port();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("C10D_TEST_PORT", port.to_string())
        .spawn()
        .unwrap();
    (0, port, Some(child))
}

fn join(rank: usize, port: u16, timeout: Duration) -> ProcessGroup {
    ProcessGroup::join(&rendezvous(rank, 2, port, timeout, "test"), Backend::Gloo).unwrap()
}

fn finish(child: Option<Child>) {
    if let Some(mut c) = child {
        assert!(c.wait().unwrap().success(), "rank 1 failed");
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
}

#[test]
fn broadcast_copies_rank_0s_tensors_and_all_reduce_averages() {
    let (rank, port, child) = start("broadcast_copies_rank_0s_tensors_and_all_reduce_averages");
    let g = join(rank, port, Duration::from_secs(60));
    let r = rank as f32;
    let a = Tensor::from_slice(&[r + 1.0, r + 2.0]);
    let b = Tensor::from_slice(&[10.0 * r; 3]).view([3, 1]);
    g.broadcast(&[a.shallow_clone(), b.shallow_clone()], 0)
        .unwrap();
    assert_eq!(values(&a), [1.0, 2.0]);
    assert_eq!(values(&b), [0.0; 3]);
    let c = Tensor::from_slice(&[r, 4.0 * r]);
    g.all_reduce_mean(&[c.shallow_clone()]).unwrap();
    assert_eq!(values(&c), [0.5, 2.0]);
    g.barrier().unwrap();
    finish(child);
}

#[test]
fn a_batch_norm_over_two_ranks_equals_one_over_their_joined_batch() {
    let (rank, port, child) =
        start("a_batch_norm_over_two_ranks_equals_one_over_their_joined_batch");
    let g = join(rank, port, Duration::from_secs(60));
    // The same full batch and output weights on both ranks; each normalises
    // its half through the group and checks against the whole.
    tch::manual_seed(7);
    let x = Tensor::randn([6, 3, 4, 4], (Kind::Float, tch::Device::Cpu)) * 2.0 + 1.0;
    let r = Tensor::randn([6, 3, 4, 4], (Kind::Float, tch::Device::Cpu));
    let w = Tensor::from_slice(&[0.5f32, 1.0, 2.0]).set_requires_grad(true);
    let bias = Tensor::from_slice(&[0.1f32, -0.2, 0.3]).set_requires_grad(true);
    let full = x.detach().set_requires_grad(true);
    let y = full.batch_norm(
        Some(&w),
        Some(&bias),
        None::<&Tensor>,
        None::<&Tensor>,
        true,
        0.1,
        1e-5,
        false,
    );
    let want = Tensor::run_backward(
        &[(&y * &r).sum(Kind::Float)],
        &[&full, &w, &bias],
        false,
        false,
    );
    let half = x
        .narrow(0, 3 * rank as i64, 3)
        .detach()
        .set_requires_grad(true);
    let (mean, var) = (
        Tensor::zeros([3], tch::kind::FLOAT_CPU),
        Tensor::ones([3], tch::kind::FLOAT_CPU),
    );
    let bn = BatchNorm {
        affine: Some((&w, &bias)),
        running: Some((&mean, &var)),
        momentum: 0.1,
        eps: 1e-5,
    };
    let y_half = g.batch_norm(&half, &bn);
    g.check().unwrap();
    let loss = (&y_half * r.narrow(0, 3 * rank as i64, 3)).sum(Kind::Float);
    let got = Tensor::run_backward(&[loss], &[&half, &w, &bias], false, false);
    let close = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) < 1e-4;
    assert!(close(&y_half, &y.narrow(0, 3 * rank as i64, 3)), "outputs");
    assert!(
        close(&got[0], &want[0].narrow(0, 3 * rank as i64, 3)),
        "input gradients"
    );
    // The parameters' gradients are each rank's share: their sum is the whole.
    g.all_reduce_mean(&[got[1].shallow_clone(), got[2].shallow_clone()])
        .unwrap();
    assert!(close(&(&got[1] * 2.0), &want[1]), "weight gradient");
    assert!(close(&(&got[2] * 2.0), &want[2]), "bias gradient");
    // Running statistics over the joined batch (unbiased variance).
    let joined_var = x.var_dim(&[0, 2, 3][..], true, false);
    assert!(close(
        &mean,
        &(x.mean_dim(&[0, 2, 3][..], false, Kind::Float) * 0.1)
    ));
    assert!(close(&var, &(joined_var * 0.1 + 0.9)));
    finish(child);
}

#[test]
fn a_rank_that_dies_stops_the_other_with_an_error_not_a_hang() {
    let (rank, port, child) = start("a_rank_that_dies_stops_the_other_with_an_error_not_a_hang");
    let g = join(rank, port, Duration::from_secs(20));
    g.barrier().unwrap();
    if rank == 1 {
        std::process::exit(0);
    }
    let t0 = Instant::now();
    let err = g
        .all_reduce_mean(&[Tensor::ones([4], tch::kind::FLOAT_CPU)])
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "took {:?}",
        t0.elapsed()
    );
    assert!(
        err.to_string()
            .contains("an all-reduce across the process group failed"),
        "{err}"
    );
    finish(child);
}
