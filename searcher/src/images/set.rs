//! [`ImageSet`]: the searcher's [`Dataset`] over real images.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tch::Tensor;

use super::cifar::{self, CifarSet};
use super::files::{self, Sample};
use super::loader::{make_batch, Batch, Images, Loader, LoaderConfig, LoaderStats};
use crate::data::{Augment, Dataset, Split};
use crate::error::{Result, SearchError};

/// How the pipeline runs; none of it changes the images it produces.
#[derive(Clone, Copy, Debug)]
pub struct LoaderOptions {
    /// Decoding threads; 0 means one per core.
    pub threads: usize,
    /// Ready training batches kept ahead of the search.
    pub prefetch: usize,
    /// Stop at the first unreadable image instead of skipping it.
    pub strict: bool,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        LoaderOptions {
            threads: 0,
            prefetch: 4,
            strict: false,
        }
    }
}

/// The batches planned by [`Dataset::prefetch`] and the loader making them.
struct Planned {
    augment: Augment,
    next: std::collections::VecDeque<Vec<usize>>,
    loader: Loader,
}

pub struct ImageSet {
    origin: String,
    images: Arc<Images>,
    classes: Vec<String>,
    resolution: u32,
    seed: u64,
    options: LoaderOptions,
    pool: rayon::ThreadPool,
    /// Skips of synchronous batches (the loaders count their own).
    stats: LoaderStats,
    planned: Mutex<Option<Planned>>,
}

impl ImageSet {
    fn new(
        origin: String,
        images: Images,
        classes: Vec<String>,
        resolution: u32,
        seed: u64,
        options: LoaderOptions,
    ) -> Result<Self> {
        if resolution == 0 {
            return Err(SearchError::Config(
                "the image resolution must be positive".into(),
            ));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .build()
            .map_err(|e| SearchError::Data(format!("cannot start decoding threads: {e}")))?;
        let set = ImageSet {
            origin,
            images: Arc::new(images),
            classes,
            resolution,
            seed,
            options: LoaderOptions {
                prefetch: options.prefetch.max(1),
                ..options
            },
            pool,
            stats: LoaderStats::default(),
            planned: Mutex::new(None),
        };
        set.check_every_class_decodes()?;
        Ok(set)
    }

    /// A folder with one subfolder of images per class; sorted folder names
    /// are labels 0..n.
    pub fn folder(dir: &Path, resolution: u32, seed: u64, options: LoaderOptions) -> Result<Self> {
        let classes = files::scan_folder(dir)?;
        if classes.len() < 2 {
            return Err(SearchError::Dataset {
                path: dir.to_path_buf(),
                message: format!("need at least 2 class folders, found {}", classes.len()),
            });
        }
        let mut names = Vec::with_capacity(classes.len());
        let mut samples = Vec::new();
        for (label, (name, paths)) in classes.into_iter().enumerate() {
            names.push(name);
            samples.extend(paths.into_iter().map(|path| Sample { path, label }));
        }
        let origin = dir.display().to_string();
        Self::new(
            origin,
            Images::Files(samples),
            names,
            resolution,
            seed,
            options,
        )
    }

    /// The official split lists (`wnid/file.JPEG label`, relative to
    /// `root`): the train list's images first, then the held-out list's,
    /// with the split that says which are which.
    pub fn lists(
        root: &Path,
        train: &Path,
        held_out: &Path,
        resolution: u32,
        seed: u64,
        options: LoaderOptions,
    ) -> Result<(Self, Split)> {
        let listed = files::from_lists(root, train, held_out)?;
        let split = Split {
            train: (0..listed.train.len()).collect(),
            held_out: (listed.train.len()..listed.train.len() + listed.val.len()).collect(),
        };
        let samples = listed.train.into_iter().chain(listed.val).collect();
        let origin = format!("{} + {}", train.display(), held_out.display());
        let set = Self::new(
            origin,
            Images::Files(samples),
            listed.classes,
            resolution,
            seed,
            options,
        )?;
        Ok((set, split))
    }

    /// The CIFAR-10 binary release's five training batches.
    pub fn cifar10(dir: &Path, resolution: u32, seed: u64, options: LoaderOptions) -> Result<Self> {
        let set: CifarSet = cifar::read_train(dir)?;
        let classes = cifar::CLASSES.iter().map(|c| c.to_string()).collect();
        let origin = format!("CIFAR-10 at {}", dir.display());
        Self::new(
            origin,
            Images::Cifar(set),
            classes,
            resolution,
            seed,
            options,
        )
    }

    /// `--data DIR`: CIFAR-10 binaries if the folder holds them, else an
    /// image folder.
    pub fn open(dir: &Path, resolution: u32, seed: u64, options: LoaderOptions) -> Result<Self> {
        if cifar::is_cifar_dir(dir) {
            Self::cifar10(dir, resolution, seed, options)
        } else {
            Self::folder(dir, resolution, seed, options)
        }
    }

    /// Images skipped so far because they could not be read.
    pub fn skipped(&self) -> usize {
        let planned = self
            .planned
            .lock()
            .map_or(0, |p| p.as_ref().map_or(0, |p| p.loader.skipped()));
        self.stats.skipped.load(Ordering::Relaxed) + planned
    }

    fn config(&self, augment: Augment) -> (LoaderConfig, u64) {
        let (train, epoch) = match augment {
            Augment::Train { epoch } => (true, epoch),
            Augment::HeldOut => (false, 0),
        };
        let cfg = LoaderConfig {
            resolution: self.resolution,
            train,
            seed: self.seed,
            prefetch: self.options.prefetch,
            threads: self.options.threads,
            strict: self.options.strict,
        };
        (cfg, epoch)
    }

    /// Fails before training if some class has no readable image among its
    /// first few files: a data set problem, not a stray corrupt file.
    fn check_every_class_decodes(&self) -> Result<()> {
        let (cfg, _) = self.config(Augment::HeldOut);
        let mut tried = vec![0usize; self.classes.len()];
        let mut ok = vec![false; self.classes.len()];
        let mut first_error = vec![None; self.classes.len()];
        let plane = 3 * (self.resolution * self.resolution) as usize;
        let mut out = vec![0f32; plane];
        for i in 0..self.images.len() {
            let label = self.images.label(i);
            if label >= self.classes.len() || ok[label] || tried[label] >= 5 {
                continue;
            }
            tried[label] += 1;
            match super::loader::transform(&self.images, i, 0, &cfg, &mut out) {
                Ok(()) => ok[label] = true,
                Err(e) => {
                    if first_error[label].is_none() {
                        first_error[label] = Some(e.to_string());
                    }
                }
            }
        }
        if let Some(bad) = ok.iter().position(|&ok| !ok) {
            return Err(SearchError::Data(format!(
                "{}: class '{}' has no readable image among its first {}: {}",
                self.origin,
                self.classes[bad],
                tried[bad],
                first_error[bad]
                    .clone()
                    .unwrap_or_else(|| "no images".into())
            )));
        }
        Ok(())
    }
}

fn to_tensors(batch: Batch) -> (Tensor, Tensor) {
    let r = i64::from(batch.resolution);
    let n = batch.labels.len() as i64;
    (
        Tensor::from_slice(&batch.images).view([n, 3, r, r]),
        Tensor::from_slice(&batch.labels),
    )
}

impl Dataset for ImageSet {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn num_classes(&self) -> usize {
        self.classes.len()
    }
    fn resolution(&self) -> u32 {
        self.resolution
    }
    fn label(&self, index: usize) -> usize {
        self.images.label(index)
    }

    fn batch(&self, indices: &[usize], augment: Augment) -> Result<(Tensor, Tensor)> {
        let mut planned = self.planned.lock().expect("loader state lock");
        if let Some(p) = planned.as_mut() {
            if p.augment == augment && p.next.front().is_some_and(|b| b == indices) {
                p.next.pop_front();
                let batch = p.loader.next().unwrap_or_else(|| {
                    Err(SearchError::Data(
                        "the background loader stopped early".into(),
                    ))
                })?;
                return Ok(to_tensors(batch));
            }
            if p.augment == augment {
                // Asked for something else than planned: the plan is stale.
                *planned = None;
            }
        }
        drop(planned);
        let (cfg, epoch) = self.config(augment);
        let batch = self
            .pool
            .install(|| make_batch(&self.images, indices, epoch, &cfg, &self.stats))?;
        Ok(to_tensors(batch))
    }

    fn prefetch(&self, batches: &[Vec<usize>], augment: Augment) {
        let (cfg, epoch) = self.config(augment);
        let loader = Loader::start(self.images.clone(), batches.to_vec(), epoch, cfg);
        let mut planned = self.planned.lock().expect("loader state lock");
        *planned = Some(Planned {
            augment,
            next: batches.iter().cloned().collect(),
            loader,
        });
    }

    fn describe(&self) -> String {
        // Only what decides the images: a resume may use other thread counts.
        format!(
            "images from {}: {} images, {} classes, {}x{}, seed {}",
            self.origin,
            self.len(),
            self.num_classes(),
            self.resolution,
            self.resolution,
            self.seed
        )
    }
}
