//! The TF-NAS search (docs/method.md §1–§5) in tch: a supernet over a
//! `space::SearchSpaceConfig`, bi-sampled weight steps, architecture steps
//! against the table's differentiable latency, and elasticity scaling of the
//! widths, ending in a `space::Architecture` that meets a latency target.
//!
//! The binary (`main.rs`) is a thin command line over this library, so that
//! tests and benchmarks drive the same code.

pub mod args;
pub mod data;
pub mod dist;
pub mod elastic;
pub mod error;
pub mod export;
pub mod extend;
pub mod folded;
pub mod identity;
pub mod images;
pub mod landings;
pub mod latency;
pub mod layout;
pub mod measured;
pub mod memory;
pub mod network;
pub mod onnx;
pub mod optim;
pub mod proxy;
pub mod search;
pub mod session;
pub mod settings;
pub mod supernet;
pub mod train;

#[cfg(test)]
mod fixture;

pub use error::{Result, SearchError};
