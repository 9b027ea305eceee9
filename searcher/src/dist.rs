//! Data parallelism on libtorch's c10d (`c10d-tch`): one process per
//! device, each with its share of every batch; what a single process would
//! compute over the whole batch is rebuilt with collectives:
//!
//! - rank 0's initial state is broadcast, so every rank starts alike;
//! - a step's gradients are averaged, each rank's weighted by its share of
//!   the batch (a mean over unequal shares is then the whole batch's mean);
//! - losses and hit counts are summed over the ranks for the logs;
//! - with `--sync-bn`, batch norm's statistics span the whole batch
//!   (otherwise each rank normalises its own share, as DDP does by default).
//!
//! Rank 0 alone writes checkpoints and results and prints; every rank
//! resumes from the same checkpoint. A group comes from `torchrun`'s
//! environment, or from [`launch`], which starts one on this machine.

use std::process::{Child, Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

pub use c10d_tch::BatchNorm;
use c10d_tch::{Backend, ProcessGroup, Rendezvous};
use tch::{Device, Kind, Tensor};

use crate::error::Result;

/// This process's place in a data-parallel group.
pub struct Dist {
    group: ProcessGroup,
    backend: Backend,
    local_rank: usize,
    /// Batch norm over the whole batch rather than each rank's share.
    pub sync_bn: bool,
}

impl Dist {
    /// Joins the group the environment describes (`WORLD_SIZE` and the
    /// rest, as `torchrun` or [`launch`] set them) on the backend `backend`
    /// picks for this process's local rank; `None` without a group.
    pub fn from_env(
        timeout: Duration,
        sync_bn: bool,
        backend: impl FnOnce(usize) -> Result<Backend>,
    ) -> Result<Option<Dist>> {
        let Some(mut r) = Rendezvous::from_env()? else {
            return Ok(None);
        };
        r.timeout = timeout;
        let backend = backend(r.local_rank)?;
        let group = ProcessGroup::join(&r, backend)?;
        Ok(Some(Dist {
            group,
            backend,
            local_rank: r.local_rank,
            sync_bn,
        }))
    }

    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    pub fn world(&self) -> usize {
        self.group.world()
    }

    /// The run header's line on the group: its size and backend, each
    /// rank's share of a batch of `batch`, and where batch norm normalises.
    pub fn describe(&self, batch: usize) -> String {
        let backend = match self.backend {
            Backend::Gloo => "Gloo".to_string(),
            Backend::Nccl { .. } => "NCCL, one GPU each".to_string(),
        };
        format!(
            "data-parallel: {} processes on {backend}, each with 1/{} of every batch of {batch}; batch norm over {}",
            self.world(),
            self.world(),
            if self.sync_bn { "the whole batch (--sync-bn)" } else { "each process's share" }
        )
    }

    /// The device of this rank: `cuda` means the GPU of its local rank.
    pub fn device(&self, asked: Device) -> Device {
        match asked {
            Device::Cuda(_) => Device::Cuda(self.local_rank),
            other => other,
        }
    }

    /// This rank's contiguous share of `batch`: equal shares, the first
    /// `len % world` ranks one item more.
    pub fn share<'a, T>(&self, batch: &'a [T]) -> &'a [T] {
        share(batch, self.rank(), self.world())
    }

    /// Every rank's `ts` set to rank 0's.
    pub fn broadcast(&self, ts: &[Tensor]) -> Result<()> {
        Ok(self.group.broadcast(ts, 0)?)
    }

    /// Gradients of a loss that is this rank's mean over `local` of the
    /// batch's `total` items, turned into those of the mean over the whole
    /// batch, on every rank.
    pub fn average_gradients(&self, grads: &[Tensor], local: usize, total: usize) -> Result<()> {
        let weight = (local * self.world()) as f64 / total as f64;
        if weight != 1.0 {
            for g in grads {
                let _ = g.shallow_clone().g_mul_scalar_(weight);
            }
        }
        Ok(self.group.all_reduce_mean(grads)?)
    }

    /// The sums of `values` over the ranks (in double precision).
    pub fn sum(&self, values: &[f64]) -> Result<Vec<f64>> {
        let t = Tensor::from_slice(values).to_kind(Kind::Double);
        self.group.all_reduce_mean(std::slice::from_ref(&t))?;
        let world = self.world() as f64;
        Ok(Vec::<f64>::try_from(&t)?
            .into_iter()
            .map(|v| v * world)
            .collect())
    }

    /// Batch norm in training mode over the whole batch (see
    /// [`ProcessGroup::batch_norm`]).
    pub fn batch_norm(&self, x: &Tensor, bn: &BatchNorm) -> Tensor {
        self.group.batch_norm(x, bn)
    }
}

/// Whether this process writes results: rank 0 of a group, or the one
/// process.
pub fn writes(dist: Option<&Dist>) -> bool {
    dist.is_none_or(|d| d.rank() == 0)
}

/// Means over this rank's `local` items of a batch of `whole` turned into
/// the whole batch's means, in one collective (unchanged alone).
pub fn whole_means<const N: usize>(
    dist: Option<&Dist>,
    means: [f64; N],
    local: usize,
    whole: usize,
) -> Result<[f64; N]> {
    let Some(d) = dist else { return Ok(means) };
    let sums = d.sum(&means.map(|m| m * local as f64 / whole as f64))?;
    Ok(std::array::from_fn(|i| sums[i]))
}

/// This process's share of `batch`: all of it alone.
pub fn share_in<'a, T>(dist: Option<&Dist>, batch: &'a [T]) -> &'a [T] {
    dist.map_or(batch, |d| d.share(batch))
}

/// `batch`'s share for `rank` of `world` (see [`Dist::share`]).
pub fn share<T>(batch: &[T], rank: usize, world: usize) -> &[T] {
    let (base, extra) = (batch.len() / world, batch.len() % world);
    let start = rank * base + rank.min(extra);
    let len = base + usize::from(rank < extra);
    &batch[start..start + len]
}

/// Starts `nproc` copies of this program on this machine as one group
/// (ranks 0..nproc, a free port on the loopback), with `args` (the
/// command line, the program's name first), and waits for them. When one
/// fails, the others get `timeout` to stop on their own (they notice a
/// dead peer at their next collective) before they are killed. Returns the
/// first failure's status.
pub fn launch(nproc: usize, args: &[std::ffi::OsString], timeout: Duration) -> ExitCode {
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => {
            eprintln!("error: no free port on 127.0.0.1 for the process group: {e}");
            return ExitCode::from(2);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find this program to start its ranks: {e}");
            return ExitCode::from(2);
        }
    };
    let mut children: Vec<(usize, Child)> = Vec::new();
    for rank in 0..nproc {
        let child = Command::new(&exe)
            .args(&args[1..])
            .env("WORLD_SIZE", nproc.to_string())
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .spawn();
        match child {
            Ok(c) => {
                eprintln!("rank {rank} of {nproc}: pid {}", c.id());
                children.push((rank, c));
            }
            Err(e) => {
                eprintln!("error: cannot start rank {rank}: {e}");
                stop(&mut children);
                return ExitCode::from(2);
            }
        }
    }
    wait_all(children, timeout)
}

fn wait_all(mut running: Vec<(usize, Child)>, timeout: Duration) -> ExitCode {
    let mut failed: Option<(usize, ExitStatus)> = None;
    let mut since: Option<Instant> = None;
    while !running.is_empty() {
        let mut i = 0;
        while i < running.len() {
            match running[i].1.try_wait() {
                Ok(Some(status)) => {
                    let (rank, _) = running.remove(i);
                    if !status.success() && failed.is_none() {
                        eprintln!("rank {rank} ended: {status}");
                        failed = Some((rank, status));
                        since = Some(Instant::now());
                    }
                }
                _ => i += 1,
            }
        }
        if since.is_some_and(|t| t.elapsed() > timeout) {
            stop(&mut running);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match failed {
        None => ExitCode::SUCCESS,
        Some((_, status)) => ExitCode::from(status.code().map_or(2, |c| c.clamp(1, 255) as u8)),
    }
}

fn stop(children: &mut Vec<(usize, Child)>) {
    for (rank, c) in children.iter_mut() {
        eprintln!("rank {rank}: stopped by the launcher");
        let _ = c.kill();
        let _ = c.wait();
    }
    children.clear();
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_are_contiguous_cover_the_batch_and_differ_by_at_most_one() {
        let batch: Vec<usize> = (0..10).collect();
        let parts: Vec<&[usize]> = (0..3).map(|r| share(&batch, r, 3)).collect();
        assert_eq!(parts, [&[0, 1, 2, 3][..], &[4, 5, 6], &[7, 8, 9]]);
        assert_eq!(share(&batch, 1, 2), &[5, 6, 7, 8, 9]);
        assert_eq!(share(&batch, 0, 1), &batch[..]);
    }
}
