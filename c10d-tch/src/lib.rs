//! A thin binding to libtorch's c10d, the collective layer under every
//! PyTorch DDP job: a rendezvous on a TCPStore with `torchrun`'s
//! environment (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//! `MASTER_PORT`), a Gloo or NCCL process group, and what data-parallel search and
//! training need of it: broadcast, all-reduce (mean) of a list of tensors,
//! barrier, and a batch norm whose statistics span the group.
//!
//! | layer | what |
//! | --- | --- |
//! | `csrc/c10d_shim.cpp` | C functions over c10d's C++ API; exceptions become messages |
//! | [`ffi`] | the `unsafe` calls, pointers in, [`C10dError`] out |
//! | this module | [`Rendezvous`] (from the environment) and [`ProcessGroup`] |
//!
//! Gloo runs CPU tensors and, staged through the host, CUDA ones; NCCL runs
//! on one GPU per process (a list of CPU numbers is carried there and back).
//! NCCL is compiled in where the libtorch tch links has CUDA and NCCL's
//! headers were found ([`NCCL_COMPILED`]).

use std::cell::RefCell;
use std::time::Duration;

use tch::Tensor;

mod ffi;

/// The crate's one error.
#[derive(Debug, thiserror::Error)]
pub enum C10dError {
    /// A rendezvous setting that is missing or out of range.
    #[error("{0}")]
    Config(String),
    /// A collective (or the rendezvous) that failed: a peer that died, a
    /// timeout, mismatched tensors.
    #[error("{what} across the process group failed: {message}")]
    Collective { what: String, message: String },
}

pub type Result<T> = std::result::Result<T, C10dError>;

/// Where and as what this process joins its group.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendezvous {
    pub host: String,
    pub port: u16,
    pub rank: usize,
    pub world: usize,
    /// The process's index on its machine: its GPU.
    pub local_rank: usize,
    /// Whether this process hosts the TCPStore: rank 0, unless torchrun's
    /// agent hosts it (`TORCHELASTIC_USE_AGENT_STORE=True`).
    pub hosts_store: bool,
    /// How long the rendezvous and each collective wait for the others.
    pub timeout: Duration,
    /// The keys' prefix in the store: per torchrun restart
    /// (`TORCHELASTIC_RESTART_COUNT`), so that a restarted group does not
    /// read the keys of the attempt before it.
    pub prefix: String,
}

impl Rendezvous {
    /// The default wait for peers: long enough for a slow epoch's end on
    /// another rank, short enough that a dead peer is noticed.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

    /// The rendezvous `torchrun` describes in the environment, or `None`
    /// when `WORLD_SIZE` is unset (a single process).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`Rendezvous::from_env`] over any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(world) = get("WORLD_SIZE") else {
            return Ok(None);
        };
        let world = parse(&get, "WORLD_SIZE", &world, 1, 65_536)?;
        let rank = require(&get, "RANK", 0, world - 1)?;
        let local_rank = match get("LOCAL_RANK") {
            Some(v) => parse(&get, "LOCAL_RANK", &v, 0, world - 1)?,
            None => rank,
        };
        let port = require(&get, "MASTER_PORT", 1, 65_535)? as u16;
        let host = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let agent_store = get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True");
        let attempt = get("TORCHELASTIC_RESTART_COUNT").unwrap_or_else(|| "0".into());
        Ok(Some(Rendezvous {
            host,
            port,
            rank,
            world,
            local_rank,
            hosts_store: rank == 0 && !agent_store,
            timeout: Self::DEFAULT_TIMEOUT,
            prefix: format!("searcher/attempt_{}", attempt.trim()),
        }))
    }
}

fn require(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    lo: usize,
    hi: usize,
) -> Result<usize> {
    match get(name) {
        Some(v) => parse(get, name, &v, lo, hi),
        None => Err(C10dError::Config(format!(
            "{name} is not set, though WORLD_SIZE is: a process of a group needs {name} in {lo}..={hi}"
        ))),
    }
}

fn parse(
    _: &impl Fn(&str) -> Option<String>,
    name: &str,
    v: &str,
    lo: usize,
    hi: usize,
) -> Result<usize> {
    match v.trim().parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(C10dError::Config(format!(
            "{name}={v:?} is not a whole number in {lo}..={hi}"
        ))),
    }
}

/// Whether this build can make NCCL groups (see build.rs).
pub const NCCL_COMPILED: bool = cfg!(c10d_nccl);

/// The collective library under a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors, and CUDA ones staged through the host.
    Gloo,
    /// NCCL on this process's GPU `cuda:device`: CUDA tensors.
    Nccl { device: usize },
}

impl Backend {
    /// Refuses a backend this build or machine cannot run, before any peer
    /// waits on it.
    fn check(self) -> Result<()> {
        let Backend::Nccl { device } = self else {
            return Ok(());
        };
        if !NCCL_COMPILED {
            return Err(C10dError::Config(
                "NCCL is not compiled into this binary (its libtorch has no CUDA, or NCCL's headers were not found when it was built): use Gloo".into(),
            ));
        }
        let gpus = tch::Cuda::device_count().max(0) as usize;
        if device >= gpus {
            return Err(C10dError::Config(format!(
                "NCCL needs a CUDA GPU per process: cuda:{device} is not there (this machine has {gpus}); use Gloo on the CPU"
            )));
        }
        Ok(())
    }
}

/// A batch norm's parameters besides its input: the affine weight and
/// bias, the running mean and variance to update, momentum and epsilon.
#[derive(Clone, Copy)]
pub struct BatchNorm<'a> {
    pub affine: Option<(&'a Tensor, &'a Tensor)>,
    pub running: Option<(&'a Tensor, &'a Tensor)>,
    pub momentum: f64,
    pub eps: f64,
}

/// A joined process group (Gloo or NCCL). Collectives block until every rank has
/// called them, or fail with the peers' error or at the timeout.
pub struct ProcessGroup {
    raw: ffi::RawGroup,
    rank: usize,
    world: usize,
    /// A failure inside a forward pass (the synchronised batch norm), kept
    /// until the next collective or [`ProcessGroup::check`] returns it.
    failure: RefCell<Option<C10dError>>,
}

impl ProcessGroup {
    /// Joins the group on `backend`: blocks until all `world` ranks have
    /// arrived.
    pub fn join(r: &Rendezvous, backend: Backend) -> Result<Self> {
        backend.check()?;
        let raw = ffi::RawGroup::new(r, backend)?;
        Ok(ProcessGroup {
            raw,
            rank: r.rank,
            world: r.world,
            failure: RefCell::new(None),
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    /// The failure kept from a forward pass, if any.
    pub fn check(&self) -> Result<()> {
        match self.failure.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every rank's `ts` set to rank `root`'s (same shapes and kinds on
    /// every rank).
    pub fn broadcast(&self, ts: &[Tensor], root: usize) -> Result<()> {
        self.check()?;
        if ts.is_empty() {
            return Ok(());
        }
        self.raw.broadcast(ts, root)
    }

    /// Every rank's `ts` set to their mean over the ranks.
    pub fn all_reduce_mean(&self, ts: &[Tensor]) -> Result<()> {
        self.check()?;
        if ts.is_empty() {
            return Ok(());
        }
        self.raw.all_reduce_mean(ts)
    }

    pub fn barrier(&self) -> Result<()> {
        self.check()?;
        self.raw.barrier()
    }

    /// Batch norm in training mode over the whole group's batch, as
    /// `torch.nn.SyncBatchNorm`: every rank must call it, in the same
    /// order. Differentiable; its backward pass reduces over the group too.
    /// A failure is kept for [`ProcessGroup::check`] and `x` is returned
    /// unnormalised, so a forward pass needs no `Result` at every layer.
    pub fn batch_norm(&self, x: &Tensor, bn: &BatchNorm) -> Tensor {
        if self.failure.borrow().is_some() {
            return x.shallow_clone();
        }
        match self.raw.batch_norm(x, bn) {
            Ok(y) => y,
            Err(e) => {
                *self.failure.borrow_mut() = Some(e);
                x.shallow_clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn no_world_size_means_a_single_process() {
        assert_eq!(
            Rendezvous::from_lookup(lookup(&[("RANK", "0")])).unwrap(),
            None
        );
    }

    #[test]
    fn torchruns_environment_gives_the_rendezvous() {
        let env = [
            ("WORLD_SIZE", "4"),
            ("RANK", "2"),
            ("LOCAL_RANK", "0"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29500"),
        ];
        let r = Rendezvous::from_lookup(lookup(&env)).unwrap().unwrap();
        assert_eq!((r.rank, r.world, r.local_rank, r.port), (2, 4, 0, 29500));
        assert_eq!(r.host, "node0");
        assert!(!r.hosts_store);
        let zero = [("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "1")];
        assert!(
            Rendezvous::from_lookup(lookup(&zero))
                .unwrap()
                .unwrap()
                .hosts_store
        );
        let agent = [zero.as_slice(), &[("TORCHELASTIC_USE_AGENT_STORE", "True")]].concat();
        assert!(
            !Rendezvous::from_lookup(lookup(&agent))
                .unwrap()
                .unwrap()
                .hosts_store
        );
    }

    #[test]
    fn out_of_range_settings_are_refused_with_the_variable_and_its_range() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_PORT", "1")],
                "RANK=\"2\" is not a whole number in 0..=1",
            ),
            (
                &[("WORLD_SIZE", "0")],
                "WORLD_SIZE=\"0\" is not a whole number in 1..=65536",
            ),
            (
                &[("WORLD_SIZE", "2"), ("MASTER_PORT", "1")],
                "RANK is not set",
            ),
            (
                &[("WORLD_SIZE", "1"), ("RANK", "0"), ("MASTER_PORT", "70000")],
                "MASTER_PORT=\"70000\"",
            ),
        ];
        for (env, want) in cases {
            let err = Rendezvous::from_lookup(lookup(env))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
