//! The CPU engine's outputs against the reference the GPU engine is checked
//! against, with the same comparison and tolerance: the one check of
//! [`profiler::reference::check`], through the CPU engine's
//! [`ReadsOutput`](profiler::reference::ReadsOutput). Kept as the path the
//! binary calls.

pub use profiler::reference::check::{check, check_blocks};
