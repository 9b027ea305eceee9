//! Test fixtures: a two-stage toy space and its hand-written synthetic table
//! (tests/fixtures/searcher_tiny_*), small enough to check by hand, and the
//! tiny search the unit tests of `search` run on it.

use space::{LatencyTable, SearchSpaceConfig};
use tch::Device;

use crate::data::{split_per_class, Patterns, Split};
use crate::latency::LatencyModel;
use crate::search::Search;
use crate::settings::Settings;

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

/// The tiny table's text with one more header line (`# width_step: 16`)
/// before its `# batch` line.
pub fn tiny_table_text_with(header: &str) -> String {
    TINY_TABLE.replacen("# batch", &format!("{header}\n# batch"), 1)
}

/// The latency model of `space` over the tiny table.
pub fn tiny_model(space: &SearchSpaceConfig) -> LatencyModel {
    LatencyModel::new(space, &tiny_table()).expect("the tiny table prices the tiny space")
}

/// A fresh search on the tiny space and table, 10 classes, on the CPU.
pub fn tiny_search(settings: Settings) -> Search {
    // Tests run in parallel on few cores; libtorch's own thread pool on
    // top of that oversubscribes them badly.
    tch::set_num_threads(1);
    let space = tiny_space();
    let model = tiny_model(&space);
    Search::new(
        settings,
        &space,
        model,
        10,
        Device::Cpu,
        &[("test", "tiny")],
    )
    .expect("a tiny search starts")
}

/// Settings for a tiny search of `epochs` epochs, `warmup` of them warm-up,
/// aiming at 3 ms (inside the tiny table's range).
pub fn tiny_settings(epochs: usize, warmup: usize) -> Settings {
    Settings {
        target_ms: 3.0,
        epochs,
        warmup_epochs: warmup,
        batch_size: 16,
        weight_lr: 0.1,
        seed: 5,
        ..Settings::default()
    }
}

/// `count` embedded 16x16 images and their 80/20 split.
pub fn tiny_data(count: usize) -> (Patterns, Split) {
    let data = Patterns::new(count, 16, 0.3, 11).expect("embedded images");
    let split = split_per_class(&data, 0.8, 11);
    (data, split)
}
