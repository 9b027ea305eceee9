//! Search data behind a trait, so a faster pipeline can replace the loaders
//! here without touching the search.
//!
//! - [`Patterns`]: the embedded default, a deterministic, procedurally
//!   generated image-classification set that needs no download.
//! - [`crate::images::ImageSet`]: real images (image folders, the official
//!   split lists, CIFAR-10), decoded and augmented in parallel ahead of the
//!   search.
//!
//! The search input resolution is the data's; latency always refers to the
//! table's deployment resolution.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use crate::error::{Result, SearchError};

/// A labelled image set addressed by index.
pub trait Dataset {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn num_classes(&self) -> usize;
    /// Side of the square images [`batch`](Self::batch) returns.
    fn resolution(&self) -> u32;
    fn label(&self, index: usize) -> usize;
    /// Images `[n, 3, r, r]` (float, normalised) and labels `[n]` (int64) on
    /// the CPU, transformed as `augment` says. A set may skip unreadable
    /// images, so `n` can be below `indices.len()`.
    fn batch(&self, indices: &[usize], augment: Augment) -> Result<(Tensor, Tensor)>;
    /// A hint that `batches` will be asked for next, in this order, with
    /// `augment`: a set that decodes images starts on them in the
    /// background. Asking for anything else is still answered, only slower.
    fn prefetch(&self, _batches: &[Vec<usize>], _augment: Augment) {}
    /// One line for logs and for the checkpoint's settings.
    fn describe(&self) -> String;
}

/// How a batch's images are transformed. Training randomness (crops,
/// flips, colour jitter) follows from the data set's seed, the epoch and the
/// image index alone, so it does not depend on batch order or threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Augment {
    Train { epoch: u64 },
    HeldOut,
}

/// A well-mixed 64-bit value of `(seed, epoch, index)` (splitmix64), the
/// root of every per-image random choice.
pub fn image_stream(seed: u64, epoch: u64, index: u64) -> u64 {
    let mut z = seed ^ epoch.rotate_left(21) ^ index.rotate_left(42) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which indices train the weights and which drive the architecture steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub held_out: Vec<usize>,
}

/// Splits every class `train_fraction` / rest, shuffled with `seed`, like
/// the official per-class 80/20 lists.
pub fn split_per_class(data: &dyn Dataset, train_fraction: f64, seed: u64) -> Split {
    let mut by_class = vec![Vec::new(); data.num_classes()];
    for i in 0..data.len() {
        by_class[data.label(i)].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    for mut members in by_class {
        members.shuffle(&mut rng);
        let n = (members.len() as f64 * train_fraction).round() as usize;
        held_out.extend_from_slice(&members[n..]);
        members.truncate(n);
        train.extend(members);
    }
    train.sort_unstable();
    held_out.sort_unstable();
    Split { train, held_out }
}

/// The classes of [`Patterns`], in label order.
pub const PATTERN_CLASSES: [&str; 10] = [
    "wide horizontal stripes",
    "fine horizontal stripes",
    "wide vertical stripes",
    "fine vertical stripes",
    "diagonal stripes",
    "checkerboard",
    "one blob",
    "ring",
    "cross",
    "two small blobs",
];

/// The embedded data set: ten classes of patterns (stripes of two
/// frequencies and orientations, diagonals, checkers, blobs, rings, crosses)
/// at random phase, position and size, in random foreground and background
/// colours, with Gaussian pixel noise. Every class is invariant under a
/// horizontal flip, so flipping is a valid augmentation. Images are
/// generated from `(seed, index)` alone, so the set is the same on every
/// machine.
pub struct Patterns {
    resolution: u32,
    noise: f32,
    seed: u64,
    images: Vec<f32>,
    labels: Vec<usize>,
}

impl Patterns {
    pub fn new(count: usize, resolution: u32, noise: f32, seed: u64) -> Result<Self> {
        if count < PATTERN_CLASSES.len() * 2 || resolution < 8 {
            return Err(SearchError::Data(format!(
                "the embedded set needs at least {} images and resolution 8 (asked {count} at {resolution})",
                PATTERN_CLASSES.len() * 2
            )));
        }
        let pixels = 3 * (resolution * resolution) as usize;
        let mut images = Vec::with_capacity(count * pixels);
        let mut labels = Vec::with_capacity(count);
        for i in 0..count {
            let class = i % PATTERN_CLASSES.len();
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            images.extend(render(class, resolution, noise, &mut rng));
            labels.push(class);
        }
        Ok(Patterns {
            resolution,
            noise,
            seed,
            images,
            labels,
        })
    }
}

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller; avoids a distribution crate for one use.
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// One `3 × r × r` image of `class`, values roughly in [-1.5, 1.5].
fn render(class: usize, r: u32, noise: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    use std::f32::consts::TAU;
    let fg: [f32; 3] = [
        rng.gen_range(-1.0..1.0),
        rng.gen_range(-1.0..1.0),
        rng.gen_range(-1.0..1.0),
    ];
    // The background is the foreground pushed away by at least 0.6 per
    // channel on average, so the pattern stays visible.
    let bg: [f32; 3] = fg.map(|c| {
        let d = rng.gen_range(0.6..1.2);
        if c > 0.0 {
            c - d
        } else {
            c + d
        }
    });
    let phase: f32 = rng.gen();
    let phase2: f32 = rng.gen();
    let (cx, cy): (f32, f32) = (rng.gen_range(0.3..0.7), rng.gen_range(0.3..0.7));
    let (cx2, cy2): (f32, f32) = (rng.gen_range(0.15..0.85), rng.gen_range(0.15..0.85));
    let low: f32 = rng.gen_range(1.5..2.5);
    let high: f32 = rng.gen_range(5.0..7.0);
    let size: f32 = rng.gen_range(0.8..1.2);
    let diagonal_sign: f32 = if rng.gen() { 1.0 } else { -1.0 };
    let stripes = |t: f32, f: f32| 0.5 + 0.5 * (TAU * (f * t + phase)).sin();
    let bump = |d2: f32, s: f32| (-d2 / (2.0 * s * s)).exp();
    let n = r as usize;
    let mut out = vec![0.0f32; 3 * n * n];
    for y in 0..n {
        for x in 0..n {
            let u = (x as f32 + 0.5) / r as f32;
            let v = (y as f32 + 0.5) / r as f32;
            let d2 = (u - cx).powi(2) + (v - cy).powi(2);
            let p = match class {
                0 => stripes(v, low),
                1 => stripes(v, high),
                2 => stripes(u, low),
                3 => stripes(u, high),
                4 => stripes(
                    (u + diagonal_sign * v) / std::f32::consts::SQRT_2,
                    3.0 * size,
                ),
                5 => {
                    let a = (TAU * (2.5 * size * u + phase)).sin();
                    let b = (TAU * (2.5 * size * v + phase2)).sin();
                    if a * b > 0.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                6 => bump(d2, 0.16 * size),
                7 => bump((d2.sqrt() - 0.28 * size).powi(2), 0.05),
                8 => bump((u - cx).powi(2), 0.07 * size).max(bump((v - cy).powi(2), 0.07 * size)),
                _ => bump(d2, 0.07 * size)
                    .max(bump((u - cx2).powi(2) + (v - cy2).powi(2), 0.07 * size)),
            };
            for c in 0..3 {
                out[c * n * n + y * n + x] = bg[c] + p * (fg[c] - bg[c]) + noise * gaussian(rng);
            }
        }
    }
    out
}

impl Dataset for Patterns {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn num_classes(&self) -> usize {
        PATTERN_CLASSES.len()
    }
    fn resolution(&self) -> u32 {
        self.resolution
    }
    fn label(&self, index: usize) -> usize {
        self.labels[index]
    }
    /// Training flips each image with probability 1/2 (every pattern class
    /// is flip-invariant); held-out images are as generated.
    fn batch(&self, indices: &[usize], augment: Augment) -> Result<(Tensor, Tensor)> {
        let n = self.resolution as usize;
        let pixels = 3 * n * n;
        let mut data = Vec::with_capacity(indices.len() * pixels);
        for &i in indices {
            let image = &self.images[i * pixels..(i + 1) * pixels];
            let flip = match augment {
                Augment::Train { epoch } => image_stream(self.seed, epoch, i as u64) & 1 == 1,
                Augment::HeldOut => false,
            };
            if flip {
                for row in image.chunks_exact(n) {
                    data.extend(row.iter().rev());
                }
            } else {
                data.extend_from_slice(image);
            }
        }
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        let r = self.resolution as i64;
        Ok((
            Tensor::from_slice(&data).view([indices.len() as i64, 3, r, r]),
            Tensor::from_slice(&labels),
        ))
    }
    fn describe(&self) -> String {
        format!(
            "embedded patterns: {} images, {} classes, {}x{}, noise {}",
            self.len(),
            self.num_classes(),
            self.resolution,
            self.resolution,
            self.noise
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_deterministic_and_balanced() {
        let a = Patterns::new(100, 16, 0.3, 7).unwrap();
        let b = Patterns::new(100, 16, 0.3, 7).unwrap();
        let c = Patterns::new(100, 16, 0.3, 8).unwrap();
        assert_eq!(a.images, b.images);
        assert_ne!(a.images, c.images);
        for class in 0..10 {
            assert_eq!((0..100).filter(|&i| a.label(i) == class).count(), 10);
        }
        let (x, y) = a.batch(&[0, 1, 2], Augment::HeldOut).unwrap();
        assert_eq!(x.size(), [3, 3, 16, 16]);
        assert_eq!(Vec::<i64>::try_from(&y).unwrap(), [0, 1, 2]);
        // Training flips about half the images, each a mirror of its columns,
        // the same way for the same epoch and differently for another.
        let all: Vec<usize> = (0..100).collect();
        let (plain, _) = a.batch(&all, Augment::HeldOut).unwrap();
        let (e0, _) = a.batch(&all, Augment::Train { epoch: 0 }).unwrap();
        let (e0_again, _) = a.batch(&all, Augment::Train { epoch: 0 }).unwrap();
        let (e1, _) = a.batch(&all, Augment::Train { epoch: 1 }).unwrap();
        assert!(e0.equal(&e0_again));
        assert!(!e0.equal(&e1));
        let mut flipped = 0;
        for i in 0..100 {
            let (p, t) = (plain.get(i), e0.get(i));
            if !p.equal(&t) {
                assert!(p.flip([2]).equal(&t), "image {i} is not a mirror");
                flipped += 1;
            }
        }
        assert!((30..=70).contains(&flipped), "{flipped} of 100 flipped");
    }

    #[test]
    fn the_split_is_80_20_per_class_and_disjoint() {
        let data = Patterns::new(200, 8, 0.3, 1).unwrap();
        let split = split_per_class(&data, 0.8, 3);
        assert_eq!(split.train.len(), 160);
        assert_eq!(split.held_out.len(), 40);
        for class in 0..10 {
            let n = split
                .held_out
                .iter()
                .filter(|&&i| data.label(i) == class)
                .count();
            assert_eq!(n, 4);
        }
        assert!(split.train.iter().all(|i| !split.held_out.contains(i)));
        assert_eq!(split, split_per_class(&data, 0.8, 3));
    }
}
