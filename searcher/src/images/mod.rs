//! The fast input pipeline for real image data sets.
//!
//! Image folders, the official TF-NAS split lists and CIFAR-10 binaries,
//! decoded and augmented on every core, with the epoch's training batches
//! prepared in the background while the search steps (a bounded queue, so
//! memory does not grow with the data set). Everything random about an image
//! follows from `(seed, epoch, index)`, so a prefetched batch is the batch a
//! synchronous call would have made, and a resumed search sees the same data.

pub mod augment;
pub mod cifar;
pub mod decode;
pub mod files;
pub mod loader;
mod set;

pub use set::{ImageSet, LoaderOptions};
