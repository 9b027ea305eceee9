//! Parallel decoding into a bounded queue of ready batches.
//!
//! A producer thread walks the planned batches, decodes and augments each
//! batch's images on a rayon pool, and sends the finished batch into a
//! channel of `prefetch` slots, so decoding overlaps the training step and
//! memory stays bounded by `prefetch + 2` batches (the queued ones, the one
//! being decoded, and one finished and waiting for a slot) whatever the
//! dataset size.
//! Each image's randomness comes from `(seed, epoch, index)` alone, so the
//! result does not depend on thread scheduling.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};
use fast_image_resize::Resizer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::{self, Crop, Jitter};
use super::cifar::CifarSet;
use super::decode::{self, Rgb8};
use super::files::Sample;
use crate::data::image_stream;
use crate::error::{Result, SearchError};

/// Where the images come from.
pub enum Images {
    Files(Vec<Sample>),
    Cifar(CifarSet),
}

impl Images {
    pub fn len(&self) -> usize {
        match self {
            Images::Files(s) => s.len(),
            Images::Cifar(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn label(&self, i: usize) -> usize {
        match self {
            Images::Files(s) => s[i].label,
            Images::Cifar(c) => c.label(i),
        }
    }

    /// Image `i` cropped (where `crop` says, on the original size) and
    /// resized to `out`×`out`.
    pub fn load(
        &self,
        i: usize,
        out: u32,
        crop: impl FnOnce(u32, u32) -> Crop,
        resizer: &mut Resizer,
    ) -> Result<Rgb8> {
        match self {
            Images::Cifar(c) => {
                let img = c.image(i);
                let crop = crop(img.width, img.height);
                Ok(augment::resize_crop(&img, crop, out, resizer))
            }
            Images::Files(s) => {
                let path: &Path = &s[i].path;
                let bytes = std::fs::read(path).map_err(|error| SearchError::Io {
                    path: path.to_path_buf(),
                    error,
                })?;
                let img = decode::decode(&bytes, path)?;
                let crop = crop(img.width, img.height);
                Ok(augment::resize_crop(&img, crop, out, resizer))
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// Output side in pixels.
    pub resolution: u32,
    /// Training transforms (random crop, flip, jitter) or held-out ones.
    pub train: bool,
    pub seed: u64,
    /// Ready batches the queue may hold.
    pub prefetch: usize,
    /// Decoding threads; 0 means one per core.
    pub threads: usize,
    /// Fail on the first unreadable image instead of skipping it.
    pub strict: bool,
}

/// Normalised images `[n, 3, r, r]` in one buffer, with labels and the
/// dataset indices they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i64>,
    pub indices: Vec<usize>,
    pub resolution: u32,
}

/// Counters a caller can read while the loader runs.
#[derive(Debug, Default)]
pub struct LoaderStats {
    /// Images skipped because they could not be read or decoded.
    pub skipped: AtomicUsize,
    /// The most batches ever waiting in the queue.
    pub max_queued: AtomicUsize,
}

pub struct Loader {
    rx: Receiver<Result<Batch>>,
    stats: Arc<LoaderStats>,
    stop: Arc<AtomicBool>,
    producer: Option<JoinHandle<()>>,
}

/// One image through the configured transforms into `out`.
pub fn transform(
    images: &Images,
    index: usize,
    epoch: u64,
    cfg: &LoaderConfig,
    out: &mut [f32],
) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(image_stream(cfg.seed, epoch, index as u64));
    let mut resizer = Resizer::new();
    let r = cfg.resolution;
    if cfg.train {
        let img = images.load(
            index,
            r,
            |w, h| augment::random_resized_crop(w, h, &mut rng),
            &mut resizer,
        )?;
        let flip = rng.gen_bool(0.5);
        let jitter = Jitter::sample(&mut rng);
        augment::to_tensor(&img, flip, Some(&jitter), out);
    } else {
        let img = images.load(index, r, |w, h| augment::center_crop(w, h, r), &mut resizer)?;
        augment::to_tensor(&img, false, None, out);
    }
    Ok(())
}

const WARNINGS_SHOWN: usize = 10;

/// Decodes and transforms `indices` in parallel (on the current rayon pool)
/// into one batch. Unreadable images are skipped and counted, or fail the
/// batch with `strict`; a batch with no readable image is an error.
pub fn make_batch(
    images: &Images,
    indices: &[usize],
    epoch: u64,
    cfg: &LoaderConfig,
    stats: &LoaderStats,
) -> Result<Batch> {
    let plane = 3 * (cfg.resolution * cfg.resolution) as usize;
    let mut buffer = vec![0f32; plane * indices.len()];
    let results: Vec<Result<()>> = buffer
        .par_chunks_mut(plane)
        .zip(indices.par_iter())
        .map(|(out, &i)| transform(images, i, epoch, cfg, out))
        .collect();
    let mut batch = Batch {
        images: Vec::with_capacity(buffer.len()),
        labels: Vec::with_capacity(indices.len()),
        indices: Vec::with_capacity(indices.len()),
        resolution: cfg.resolution,
    };
    let mut last_error = None;
    for ((&i, result), pixels) in indices.iter().zip(results).zip(buffer.chunks(plane)) {
        match result {
            Ok(()) => {
                batch.images.extend_from_slice(pixels);
                batch.labels.push(images.label(i) as i64);
                batch.indices.push(i);
            }
            Err(e) if cfg.strict => return Err(e),
            Err(e) => {
                let n = stats.skipped.fetch_add(1, Ordering::Relaxed);
                if n < WARNINGS_SHOWN {
                    eprintln!("warning: skipping an unreadable image: {e}");
                }
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(e) if batch.labels.is_empty() => Err(e),
        _ => Ok(batch),
    }
}

impl Loader {
    /// Starts producing `batches` (each a list of dataset indices) for
    /// `epoch`, in order.
    pub fn start(
        images: Arc<Images>,
        batches: Vec<Vec<usize>>,
        epoch: u64,
        cfg: LoaderConfig,
    ) -> Loader {
        assert!(cfg.prefetch > 0, "prefetch must be positive");
        let (tx, rx) = bounded(cfg.prefetch);
        let stats = Arc::new(LoaderStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (stats2, stop2) = (stats.clone(), stop.clone());
        let producer = std::thread::spawn(move || {
            let pool = match rayon::ThreadPoolBuilder::new()
                .num_threads(cfg.threads)
                .build()
            {
                Ok(pool) => pool,
                Err(e) => {
                    let _ = tx.send(Err(SearchError::Dataset {
                        path: "loader".into(),
                        message: format!("cannot start decoding threads: {e}"),
                    }));
                    return;
                }
            };
            for chunk in &batches {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let batch = pool.install(|| make_batch(&images, chunk, epoch, &cfg, &stats2));
                if tx.send(batch).is_err() {
                    return;
                }
                stats2.max_queued.fetch_max(tx.len(), Ordering::Relaxed);
            }
        });
        Loader {
            rx,
            stats,
            stop,
            producer: Some(producer),
        }
    }

    pub fn stats(&self) -> &LoaderStats {
        &self.stats
    }

    /// Images skipped so far.
    pub fn skipped(&self) -> usize {
        self.stats.skipped.load(Ordering::Relaxed)
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Empty the queue so a producer blocked on a full channel can see
        // the stop flag, then wait for it.
        while self.rx.try_recv().is_ok() {}
        if let Some(p) = self.producer.take() {
            drop(std::mem::replace(&mut self.rx, crossbeam_channel::never()));
            let _ = p.join();
        }
        let skipped = self.skipped();
        if skipped > WARNINGS_SHOWN {
            eprintln!("warning: {skipped} unreadable images were skipped in all");
        }
    }
}
