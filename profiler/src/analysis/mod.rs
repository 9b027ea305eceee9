//! What the profiler computes from files: a prediction's accuracy against
//! measurements ([`accuracy`]), the `validate --out` rows format ([`rows`]),
//! the `fit` correction, `compare` of two tables, and plots. Works on files
//! and tables, never on an engine.

pub mod accuracy;
pub mod compare;
pub mod fit;
pub mod plot;
pub mod rows;
pub mod transfer;
