//! Building a latency table with any [`Engine`](crate::measure::Engine):
//! every planned block timed, the fingerprint header, the boundary probe,
//! and resume after a kill ([`build`]). Progress is reported through the
//! [`Progress`] trait, so the library draws no bar of its own.

pub mod build;
pub mod entry;
pub mod in_network;
pub mod progress;

pub use build::{
    build_table, fingerprint, resume_keys, BuildReport, BuildSettings, Output, IN_NETWORK_KEY,
    TIMING_KEY,
};
pub use in_network::InNetwork;
pub use progress::{LogOnly, Progress};
