//! The CIFAR-10 binary format: records of one label byte and 3072 pixel
//! bytes (1024 red, 1024 green, 1024 blue, row-major 32x32), in
//! `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`.

use std::path::Path;

use super::decode::Rgb8;
use crate::error::{Result, SearchError};

pub const SIDE: u32 = 32;
const PIXELS: usize = (SIDE * SIDE) as usize;
const RECORD: usize = 1 + 3 * PIXELS;
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Images of one or more batch files, kept as the file's bytes.
#[derive(Clone, Debug, Default)]
pub struct CifarSet {
    records: Vec<u8>,
}

impl CifarSet {
    /// Validates and appends one batch file's bytes.
    pub fn push_batch(&mut self, bytes: &[u8], path: &Path) -> Result<()> {
        let bad = |message: String| SearchError::Dataset {
            path: path.to_path_buf(),
            message,
        };
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(bad(format!(
                "{} bytes is not a whole number of {RECORD}-byte CIFAR-10 records",
                bytes.len()
            )));
        }
        if let Some(i) = bytes.chunks_exact(RECORD).position(|r| r[0] > 9) {
            return Err(bad(format!(
                "record {} has label {}, above 9",
                i,
                bytes[i * RECORD]
            )));
        }
        self.records.extend_from_slice(bytes);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.records.len() / RECORD
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn label(&self, i: usize) -> usize {
        usize::from(self.records[i * RECORD])
    }

    /// Image `i` as interleaved RGB.
    pub fn image(&self, i: usize) -> Rgb8 {
        let r = &self.records[i * RECORD + 1..(i + 1) * RECORD];
        let data = (0..PIXELS)
            .flat_map(|p| [r[p], r[PIXELS + p], r[2 * PIXELS + p]])
            .collect();
        Rgb8 {
            width: SIDE,
            height: SIDE,
            data,
        }
    }
}

/// Reads the five training batches of `dir`. The search splits them 80/20
/// like any other training set; the test batch is for final evaluation and
/// stays untouched.
pub fn read_train(dir: &Path) -> Result<CifarSet> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path)
            .map(|b| (b, path.clone()))
            .map_err(|error| SearchError::Io { path, error })
    };
    let mut train = CifarSet::default();
    for i in 1..=5 {
        let (bytes, path) = read(&format!("data_batch_{i}.bin"))?;
        train.push_batch(&bytes, &path)?;
    }
    Ok(train)
}

/// Whether `dir` looks like the CIFAR-10 binary release.
pub fn is_cifar_dir(dir: &Path) -> bool {
    dir.join("data_batch_1.bin").is_file()
}
