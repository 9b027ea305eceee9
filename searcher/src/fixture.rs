//! Test fixtures: a two-stage toy space and its hand-written synthetic table
//! (tests/fixtures/searcher_tiny_*), small enough to check by hand.

use space::{LatencyTable, SearchSpaceConfig};

pub use crate::latency::initial_widths;

pub const TINY_SPACE: &str = include_str!("../../tests/fixtures/searcher_tiny_space.json");
pub const TINY_TABLE: &str = include_str!("../../tests/fixtures/searcher_tiny_synthetic.csv");

pub fn tiny_space() -> SearchSpaceConfig {
    let space: SearchSpaceConfig = serde_json::from_str(TINY_SPACE).expect("fixture space parses");
    space.validate().expect("fixture space is valid");
    space
}

pub fn tiny_table() -> LatencyTable {
    LatencyTable::parse(TINY_TABLE, "searcher_tiny_synthetic.csv").expect("fixture table parses")
}
