//! Search data behind a trait, so a faster pipeline can replace the loaders
//! here without touching the search.
//!
//! - [`Patterns`]: the embedded default, a deterministic, procedurally
//!   generated image-classification set that needs no download.
//! - [`ImageFiles`]: real images, from a folder with one subfolder per class
//!   or from the official split lists (`wnid/file.JPEG label`).
//!
//! The search input resolution is the data's; latency always refers to the
//! table's deployment resolution.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

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
    /// the CPU; `flip[i]` mirrors image `i` horizontally.
    fn batch(&self, indices: &[usize], flip: &[bool]) -> Result<(Tensor, Tensor)>;
    /// One line for logs and for the checkpoint's settings.
    fn describe(&self) -> String;
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
    fn batch(&self, indices: &[usize], flip: &[bool]) -> Result<(Tensor, Tensor)> {
        let n = self.resolution as usize;
        let pixels = 3 * n * n;
        let mut data = Vec::with_capacity(indices.len() * pixels);
        for (j, &i) in indices.iter().enumerate() {
            let image = &self.images[i * pixels..(i + 1) * pixels];
            if flip.get(j).copied().unwrap_or(false) {
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

/// Real images on disk, decoded (libtorch's stb_image) and resized to a
/// square resolution per batch, normalised with the ImageNet mean and std.
pub struct ImageFiles {
    origin: String,
    resolution: u32,
    files: Vec<PathBuf>,
    labels: Vec<usize>,
    classes: Vec<String>,
}

const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "gif", "tga"];

impl ImageFiles {
    /// A folder with one subfolder per class (sorted names are labels
    /// 0..n). Decodes one image per class now, so an unreadable set fails
    /// before training.
    pub fn from_folder(dir: &Path, resolution: u32) -> Result<Self> {
        let io = |path: &Path, source| SearchError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut classes: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        classes.sort();
        if classes.len() < 2 {
            return Err(SearchError::Data(format!(
                "{}: need one subfolder per class and at least 2 classes, found {}",
                dir.display(),
                classes.len()
            )));
        }
        let (mut files, mut labels) = (Vec::new(), Vec::new());
        for (label, class) in classes.iter().enumerate() {
            let class_dir = dir.join(class);
            let mut members: Vec<PathBuf> = std::fs::read_dir(&class_dir)
                .map_err(|e| io(&class_dir, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                    })
                })
                .collect();
            members.sort();
            if members.is_empty() {
                return Err(SearchError::Data(format!(
                    "{}: class folder holds no images ({})",
                    class_dir.display(),
                    IMAGE_EXTENSIONS.join(", ")
                )));
            }
            labels.extend(std::iter::repeat_n(label, members.len()));
            files.extend(members);
        }
        Self::checked(
            dir.display().to_string(),
            resolution,
            files,
            labels,
            classes,
        )
    }

    /// The official split lists (`wnid/file.JPEG label` per line, paths
    /// relative to `root`): the train list's images, then the held-out
    /// list's, with the split that says which are which.
    pub fn from_lists(
        root: &Path,
        train: &Path,
        held_out: &Path,
        resolution: u32,
    ) -> Result<(Self, Split)> {
        let read = |list: &Path| -> Result<Vec<(PathBuf, usize)>> {
            let text = std::fs::read_to_string(list).map_err(|source| SearchError::Io {
                path: list.to_path_buf(),
                source,
            })?;
            text.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(n, l)| {
                    let mut parts = l.split_whitespace();
                    match (
                        parts.next(),
                        parts.next().and_then(|p| p.parse::<usize>().ok()),
                        parts.next(),
                    ) {
                        (Some(file), Some(label), None) => Ok((root.join(file), label)),
                        _ => Err(SearchError::Data(format!(
                            "{}:{}: expected 'relative/path label', found '{l}'",
                            list.display(),
                            n + 1
                        ))),
                    }
                })
                .collect()
        };
        let a = read(train)?;
        let b = read(held_out)?;
        let split = Split {
            train: (0..a.len()).collect(),
            held_out: (a.len()..a.len() + b.len()).collect(),
        };
        let (files, labels): (Vec<PathBuf>, Vec<usize>) = a.into_iter().chain(b).unzip();
        let n = labels.iter().max().map_or(0, |m| m + 1);
        let classes = (0..n).map(|i| i.to_string()).collect();
        let origin = format!("{} + {}", train.display(), held_out.display());
        Ok((
            Self::checked(origin, resolution, files, labels, classes)?,
            split,
        ))
    }

    fn checked(
        origin: String,
        resolution: u32,
        files: Vec<PathBuf>,
        labels: Vec<usize>,
        classes: Vec<String>,
    ) -> Result<Self> {
        let set = ImageFiles {
            origin,
            resolution,
            files,
            labels,
            classes,
        };
        // One image of every class must decode now.
        let mut seen = vec![false; set.classes.len()];
        for i in 0..set.files.len() {
            if !seen[set.labels[i]] {
                seen[set.labels[i]] = true;
                let _decoded = set.load(i)?;
            }
        }
        Ok(set)
    }

    fn load(&self, index: usize) -> Result<Tensor> {
        let path = &self.files[index];
        let image = tch::vision::image::load(path)
            .map_err(|e| SearchError::Data(format!("cannot decode {}: {e}", path.display())))?;
        let r = i64::from(self.resolution);
        let image = tch::vision::image::resize(&image, r, r)
            .map_err(|e| SearchError::Data(format!("cannot resize {}: {e}", path.display())))?;
        let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([3, 1, 1]);
        let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([3, 1, 1]);
        Ok((image.to_kind(Kind::Float) / 255.0 - mean) / std)
    }
}

impl Dataset for ImageFiles {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn num_classes(&self) -> usize {
        self.classes.len()
    }
    fn resolution(&self) -> u32 {
        self.resolution
    }
    fn label(&self, index: usize) -> usize {
        self.labels[index]
    }
    fn batch(&self, indices: &[usize], flip: &[bool]) -> Result<(Tensor, Tensor)> {
        let images = indices
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                let img = self.load(i)?;
                Ok(if flip.get(j).copied().unwrap_or(false) {
                    img.flip([2])
                } else {
                    img
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        Ok((Tensor::stack(&images, 0), Tensor::from_slice(&labels)))
    }
    fn describe(&self) -> String {
        format!(
            "images from {}: {} files, {} classes, resized to {}x{}",
            self.origin,
            self.len(),
            self.num_classes(),
            self.resolution,
            self.resolution
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
        let (x, y) = a.batch(&[0, 1, 2], &[false, true, false]).unwrap();
        assert_eq!(x.size(), [3, 3, 16, 16]);
        assert_eq!(Vec::<i64>::try_from(&y).unwrap(), [0, 1, 2]);
        // A flip mirrors the columns.
        let (plain, _) = a.batch(&[1], &[false]).unwrap();
        let diff = (plain.flip([3]) - x.get(1).unsqueeze(0))
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(diff, 0.0);
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

    #[test]
    fn an_unreadable_folder_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = ImageFiles::from_folder(&dir.path().join("nope"), 32)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("nope"), "{err}");
        std::fs::create_dir(dir.path().join("cat")).unwrap();
        std::fs::create_dir(dir.path().join("dog")).unwrap();
        std::fs::write(dir.path().join("cat/a.jpg"), b"not a jpeg").unwrap();
        let err = ImageFiles::from_folder(dir.path(), 32)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("dog") && err.contains("no images"), "{err}");
        std::fs::write(dir.path().join("dog/b.png"), b"nor a png").unwrap();
        let err = ImageFiles::from_folder(dir.path(), 32)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cannot decode") && err.contains("a.jpg"),
            "{err}"
        );
    }

    #[test]
    fn official_split_lists_load_and_refuse_malformed_lines() {
        let dir = tempfile::tempdir().unwrap();
        for wnid in ["n01", "n02"] {
            std::fs::create_dir(dir.path().join(wnid)).unwrap();
            for i in 0..3 {
                let img = Tensor::randint(255, [3, 9, 9], (Kind::Uint8, tch::Device::Cpu));
                tch::vision::image::save(&img, dir.path().join(format!("{wnid}/{i}.png"))).unwrap();
            }
        }
        let train = dir.path().join("train.txt");
        let val = dir.path().join("val.txt");
        std::fs::write(
            &train,
            "n01/0.png 0\nn01/1.png 0\nn02/0.png 1\nn02/1.png 1\n",
        )
        .unwrap();
        std::fs::write(&val, "n01/2.png 0\nn02/2.png 1\n").unwrap();
        let (set, split) = ImageFiles::from_lists(dir.path(), &train, &val, 8).unwrap();
        assert_eq!((set.len(), set.num_classes()), (6, 2));
        assert_eq!(split.train, [0, 1, 2, 3]);
        assert_eq!(split.held_out, [4, 5]);
        assert_eq!(set.label(5), 1);
        std::fs::write(&val, "n01/2.png 0\nn02/2.png\n").unwrap();
        let err = ImageFiles::from_lists(dir.path(), &train, &val, 8)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("val.txt:2"), "{err}");
    }

    #[test]
    fn a_real_image_folder_loads_and_splits() {
        let dir = tempfile::tempdir().unwrap();
        for class in ["a", "b"] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            for i in 0..5 {
                let img = Tensor::randint(255, [3, 10, 12], (Kind::Uint8, tch::Device::Cpu));
                tch::vision::image::save(&img, dir.path().join(format!("{class}/{i}.png")))
                    .unwrap();
            }
        }
        let set = ImageFiles::from_folder(dir.path(), 8).unwrap();
        assert_eq!((set.len(), set.num_classes()), (10, 2));
        let split = split_per_class(&set, 0.8, 1);
        assert_eq!((split.train.len(), split.held_out.len()), (8, 2));
        let (x, y) = set.batch(&split.held_out, &[true, false]).unwrap();
        assert_eq!(x.size(), [2, 3, 8, 8]);
        assert_eq!(Vec::<i64>::try_from(&y).unwrap(), [0, 1]);
    }
}
