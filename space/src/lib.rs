//! The shared vocabulary of the profiler and the searcher.
//!
//! One source of truth for what a search space is ([`SearchSpaceConfig`]),
//! what a timed block is and how it is named ([`BlockSpec`]), which layers
//! a block runs and their shapes ([`layers`]), which blocks a table needs
//! ([`TablePlan`]), how a table is stored and read ([`LatencyTable`],
//! [`TableWriter`]), and how a derived network is written down
//! ([`Architecture`]). Neither program redefines any of these.
//!
//! This crate must never depend on libtorch: the profiler links it, and a
//! process holding libtorch's cuDNN cannot use the system one (docs/gpu-facts.md,
//! pitfall 1).

pub mod arch;
pub mod block;
pub mod bound;
pub mod config;
mod cost;
pub mod error;
pub mod io;
pub mod layers;
pub mod plan;
mod sample;
pub use sample::blocks_in_code;
mod summary;
pub mod table;

pub use arch::{Architecture, BlockArch, Prediction, StageArch};
pub use block::{BlockKind, BlockShape, BlockSpec};
pub use config::{
    Activation, FixedBlockConfig, HeadConfig, LayerShape, OpConfig, SearchSpaceConfig, StageConfig,
    StemConfig, WidthRange,
};
pub use error::{Result, SpaceError};
pub use layers::{block_input_len, block_layers, conv_out, Layer};
pub use plan::{FixedParts, TablePlan};
pub use table::{
    meta, ArchLatency, Correction, CurveCheck, CurveFit, Entry, Estimate, LatencyStats,
    LatencyTable, Metadata, Source, TableWriter, WidthModel,
};
