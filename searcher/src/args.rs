//! The flags the search and `searcher train` share, written once and
//! flattened into both command lines: where the images come from
//! ([`DataArgs`]) and how a run keeps its state, resumes it and picks its
//! device ([`RunArgs`]).

use std::path::{Path, PathBuf};

use space::io::{check_output, same_file, OutputLock};
use tch::Device;

use crate::error::{Result, SearchError};
use crate::images::LoaderOptions;
use crate::session::{
    parse_device, threads, DataSource, EMBEDDED_IMAGES, LOADER_THREADS, NOISE, RESOLUTION,
};
use crate::settings::Bound;

/// The data flags: an image folder, CIFAR-10 binaries, the official split
/// lists or the embedded pattern set, and how they are decoded.
#[derive(Clone, Debug, clap::Args)]
pub struct DataArgs {
    /// Image folder (one subfolder per class, JPEG or PNG, split 80/20 per
    /// class), a CIFAR-10 binary folder (data_batch_1.bin ..), or the root
    /// the --train-list and --val-list paths are relative to. Without it,
    /// the embedded pattern set.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Threads decoding images (0: one per core).
    #[arg(long, default_value_t = 0, value_parser = LOADER_THREADS.parser())]
    pub loader_threads: usize,
    /// Training batches decoded ahead (memory: this many batches plus the
    /// one in use).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..1024))]
    pub prefetch: u64,
    /// Stop at the first unreadable image instead of skipping it with a
    /// warning.
    #[arg(long)]
    pub strict: bool,
    /// Official-format split list (`wnid/file.JPEG label`) of the images
    /// weights are trained on (the search's weight steps).
    #[arg(long, requires_all = ["data", "val_list"])]
    pub train_list: Option<PathBuf>,
    /// Official-format split list of the held-out images (the search's
    /// architecture steps; training's accuracy).
    #[arg(long, requires_all = ["data", "train_list"])]
    pub val_list: Option<PathBuf>,
    /// Images of the embedded pattern set (10 classes, split 80/20).
    #[arg(long, default_value_t = 2000, value_parser = EMBEDDED_IMAGES.parser())]
    pub embedded_images: usize,
    /// Side of the images: by default 224 for image data (--data, with or
    /// without the official split lists), the method's search and training
    /// resolution, and 48 for the embedded set. Below 33x33 the late stages
    /// run at 1x1 and learn nothing. The table's deployment resolution is
    /// independent of it.
    #[arg(long, value_parser = RESOLUTION.parser())]
    pub resolution: Option<u32>,
    /// Pixel noise of the embedded set.
    #[arg(long, default_value_t = 0.3, value_parser = NOISE.parser())]
    pub noise: f32,
}

impl DataArgs {
    /// The image side: the flag, else the method's 224 for image data and
    /// 48 for the embedded set.
    pub fn resolution(&self) -> u32 {
        self.resolution
            .unwrap_or(if self.data.is_some() { 224 } else { 48 })
    }

    /// The files these flags name, for the checks of outputs against inputs.
    pub fn read_files(&self) -> Vec<(&'static str, &Path)> {
        let named = [
            ("data folder", &self.data),
            ("train list", &self.train_list),
            ("val list", &self.val_list),
        ];
        named
            .into_iter()
            .filter_map(|(what, p)| p.as_deref().map(|p| (what, p)))
            .collect()
    }

    pub fn source(&self) -> DataSource<'_> {
        DataSource {
            data: self.data.as_deref(),
            train_list: self.train_list.as_deref(),
            val_list: self.val_list.as_deref(),
            resolution: self.resolution(),
            embedded_images: self.embedded_images,
            noise: self.noise,
            options: LoaderOptions {
                threads: self.loader_threads,
                prefetch: self.prefetch as usize,
                strict: self.strict,
            },
        }
    }
}

/// The run flags: the checkpoint, resuming or restarting, the device and
/// libtorch's threads.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Checkpoint file, written after every epoch; by default `--out` with
    /// its extension replaced by `.ckpt`. An existing checkpoint of the
    /// same run is resumed; one of another run is refused.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Require a checkpoint to continue from (one is resumed without this
    /// flag too, when it exists).
    #[arg(long, conflicts_with = "restart")]
    pub resume: bool,
    /// Start over, replacing an existing checkpoint after the first epoch.
    #[arg(long)]
    pub restart: bool,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (the first GPU if there is one).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// libtorch CPU threads, 1 to the machine's cores (libtorch's default
    /// when omitted).
    #[arg(long, value_parser = threads)]
    pub threads: Option<i32>,
    /// Run as a data-parallel group of this many processes on this machine
    /// (one per GPU with `--device cuda`), each with its share of every
    /// batch; the same as `torchrun --nproc-per-node N --no-python
    /// searcher ...`, whose environment is honoured when set
    /// (docs/distributed.md).
    #[arg(long, default_value_t = 1, value_parser = NPROC.parser())]
    pub nproc: usize,
    /// In a data-parallel group, batch norm's statistics over the whole
    /// batch instead of each process's share (torch.nn.SyncBatchNorm).
    #[arg(long)]
    pub sync_bn: bool,
    /// Seconds a process of a group waits for the others (the rendezvous,
    /// each collective) before it stops with an error.
    #[arg(long, default_value_t = 300, value_parser = DIST_TIMEOUT.parser())]
    pub dist_timeout: u64,
    /// The collective library of a data-parallel group: `auto` is NCCL when
    /// the ranks run on GPUs, Gloo on the CPU.
    #[arg(long, value_enum, default_value_t = DistBackend::Auto)]
    pub dist_backend: DistBackend,
}

/// `--dist-backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DistBackend {
    Auto,
    Gloo,
    Nccl,
}

impl DistBackend {
    /// The backend a rank on `device` with local rank `local_rank` uses.
    /// NCCL off a GPU is refused, naming the flags.
    pub fn resolve(self, device: Device, local_rank: usize) -> Result<c10d_tch::Backend> {
        match (self, device) {
            (DistBackend::Auto | DistBackend::Nccl, Device::Cuda(_)) => {
                Ok(c10d_tch::Backend::Nccl { device: local_rank })
            }
            (DistBackend::Nccl, _) => Err(SearchError::Config(
                "--dist-backend nccl runs on GPUs only: give --device cuda (or auto on a machine with one), or --dist-backend gloo"
                    .into(),
            )),
            _ => Ok(c10d_tch::Backend::Gloo),
        }
    }
}

/// `--nproc`: processes of a group on one machine.
pub const NPROC: Bound<usize> = Bound::closed("--nproc", 1, 1024);
/// `--dist-timeout`: seconds.
pub const DIST_TIMEOUT: Bound<u64> = Bound::closed("--dist-timeout", 1, 86_400);

impl RunArgs {
    /// The process group the environment describes (torchrun's, or
    /// [`crate::dist::launch`]'s), joined; `None` for a single process.
    pub fn join(&self) -> Result<Option<crate::dist::Dist>> {
        let timeout = std::time::Duration::from_secs(self.dist_timeout);
        // The device is read only where there is a group to put it in.
        crate::dist::Dist::from_env(timeout, self.sync_bn, |local_rank| {
            self.dist_backend
                .resolve(parse_device(&self.device)?, local_rank)
        })
    }

    /// Whether this command line asks [`crate::dist::launch`] to start the
    /// group: `--nproc` above 1 outside a group.
    pub fn launches(&self) -> bool {
        self.nproc > 1 && std::env::var_os("WORLD_SIZE").is_none()
    }

    /// Starts the group of `--nproc` ranks running `args` (see
    /// [`crate::dist::launch`]), once the device and backend are known to
    /// go together: a refusal is one line here, not one per rank.
    pub fn launch(&self, args: &[std::ffi::OsString]) -> std::process::ExitCode {
        let checked = parse_device(&self.device).and_then(|d| self.dist_backend.resolve(d, 0));
        if let Err(e) = checked {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
        let timeout = std::time::Duration::from_secs(self.dist_timeout);
        crate::dist::launch(self.nproc, args, timeout)
    }
    /// `--checkpoint`, else `out` with its extension replaced by `.ckpt`.
    pub fn checkpoint_path(&self, out: &Path) -> PathBuf {
        self.checkpoint
            .clone()
            .unwrap_or_else(|| out.with_extension("ckpt"))
    }

    /// `--threads` applied to libtorch, and the `--device` to run on: in a
    /// data-parallel group, `cuda` is the GPU of the process's local rank.
    pub fn device(&self, dist: Option<&crate::dist::Dist>) -> Result<Device> {
        if let Some(n) = self.threads {
            tch::set_num_threads(n);
        }
        let device = parse_device(&self.device)?;
        Ok(dist.map_or(device, |d| d.device(device)))
    }

    /// Checks that `out` (which receives the run's `what`) and `checkpoint`
    /// can be written, are none of the files it `reads` nor each other,
    /// and locks both, so that no other run writes them meanwhile.
    pub fn lock_outputs(
        out: &Path,
        checkpoint: &Path,
        what: &str,
        reads: &[(&'static str, &Path)],
    ) -> Result<[OutputLock; 2]> {
        check_output(out, reads)?;
        if same_file(checkpoint, out) {
            return Err(SearchError::Config(format!(
                "--out {} is also the checkpoint: {what} would overwrite it; choose another --out or --checkpoint",
                out.display()
            )));
        }
        check_output(checkpoint, reads)?;
        Ok([OutputLock::acquire(out)?, OutputLock::acquire(checkpoint)?])
    }

    /// [`RunArgs::lock_outputs`] for the process that writes (see
    /// [`crate::dist::writes`]); the other ranks of a group lock nothing.
    pub fn lock_writer_outputs(
        dist: Option<&crate::dist::Dist>,
        out: &Path,
        checkpoint: &Path,
        what: &str,
        reads: &[(&'static str, &Path)],
    ) -> Result<Vec<OutputLock>> {
        if !crate::dist::writes(dist) {
            return Ok(Vec::new());
        }
        Ok(Self::lock_outputs(out, checkpoint, what, reads)?.into())
    }

    /// Whether the checkpoint at `path` is to be resumed: when it exists
    /// and `--restart` is not given. A missing one is an error only under
    /// `--resume`.
    pub fn resumes(&self, path: &Path) -> Result<bool> {
        let exists = path.exists();
        if self.resume && !exists {
            return Err(SearchError::Checkpoint {
                path: path.to_path_buf(),
                message: "--resume: there is no checkpoint at this path".into(),
            });
        }
        Ok(exists && !self.restart)
    }
}

#[cfg(test)]
mod tests {
    use super::DistBackend;
    use c10d_tch::Backend;
    use tch::Device;

    #[test]
    fn auto_is_nccl_on_the_local_ranks_gpu_and_gloo_on_the_cpu_and_nccl_needs_a_gpu() {
        let auto = DistBackend::Auto;
        assert_eq!(
            auto.resolve(Device::Cuda(0), 3).unwrap(),
            Backend::Nccl { device: 3 }
        );
        assert_eq!(auto.resolve(Device::Cpu, 3).unwrap(), Backend::Gloo);
        let gloo = DistBackend::Gloo.resolve(Device::Cuda(0), 1).unwrap();
        assert_eq!(gloo, Backend::Gloo);
        let err = DistBackend::Nccl.resolve(Device::Cpu, 0).unwrap_err();
        assert!(err.to_string().contains("--device cuda"), "{err}");
    }
}
