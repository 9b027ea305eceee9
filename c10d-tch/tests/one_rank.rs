//! A group of one process: NCCL's refusals on any machine, and NCCL's
//! collectives on a GPU (ignored without one; scripts/gpu-check.sh runs
//! them with --ignored).

use std::time::{Duration, Instant};

use c10d_tch::{Backend, BatchNorm, ProcessGroup, Rendezvous, NCCL_COMPILED};
use tch::{Device, Kind, Tensor};

mod support;

/// A group of `world` on a free port of the loopback, this process rank 0.
fn rendezvous(world: usize) -> Rendezvous {
    support::rendezvous(
        0,
        world,
        support::free_port(),
        Duration::from_secs(60),
        "one",
    )
}

#[test]
fn nccl_on_a_gpu_the_machine_lacks_is_refused_before_waiting_for_peers() {
    // One past the last GPU: absent on any machine. The peer of world 2
    // never comes, so a refusal that waited would take the 60 s timeout.
    let absent = tch::Cuda::device_count().max(0) as usize;
    let t0 = Instant::now();
    let err = ProcessGroup::join(&rendezvous(2), Backend::Nccl { device: absent })
        .err()
        .expect("refused")
        .to_string();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let want = if NCCL_COMPILED {
        format!("cuda:{absent} is not there")
    } else {
        "NCCL is not compiled into this binary".to_string()
    };
    assert!(err.contains(&want), "{err}");
}

#[test]
#[ignore = "needs a CUDA GPU; scripts/gpu-check.sh runs it with --ignored"]
fn gpu_a_one_rank_nccl_group_runs_every_collective_on_cuda_tensors() {
    // Without NCCL compiled in, the join's error says so.
    let g = ProcessGroup::join(&rendezvous(1), Backend::Nccl { device: 0 }).unwrap();
    let gpu = Device::Cuda(0);
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).to(gpu);
    let b = Tensor::from_slice(&[4.0f64]).to(gpu);
    g.broadcast(&[a.shallow_clone(), b.shallow_clone()], 0)
        .unwrap();
    g.all_reduce_mean(&[a.shallow_clone()]).unwrap();
    assert_eq!(
        Vec::<f32>::try_from(a.to(Device::Cpu)).unwrap(),
        [1.0, 2.0, 3.0]
    );
    // A list of CPU numbers (the logs' sums) travels to the GPU and back.
    let sums = Tensor::from_slice(&[0.25f64, 8.0]);
    g.all_reduce_mean(&[sums.shallow_clone()]).unwrap();
    assert_eq!(sums.device(), Device::Cpu);
    assert_eq!(Vec::<f64>::try_from(&sums).unwrap(), [0.25, 8.0]);
    g.barrier().unwrap();
    // Batch norm through the group equals libtorch's own on the same batch.
    tch::manual_seed(3);
    let x = Tensor::randn([4, 3, 5, 5], (Kind::Float, gpu));
    let (mean, var) = (
        Tensor::zeros([3], (Kind::Float, gpu)),
        Tensor::ones([3], (Kind::Float, gpu)),
    );
    let bn = BatchNorm {
        affine: None,
        running: Some((&mean, &var)),
        momentum: 0.1,
        eps: 1e-5,
    };
    let y = g.batch_norm(&x, &bn);
    g.check().unwrap();
    let want = x.batch_norm(
        None::<&Tensor>,
        None::<&Tensor>,
        None::<&Tensor>,
        None::<&Tensor>,
        true,
        0.1,
        1e-5,
        false,
    );
    let diff = (&y - &want).abs().max().double_value(&[]);
    assert!(diff < 1e-4, "batch norm differs by {diff}");
}
