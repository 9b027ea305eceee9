//! [`EngineCli`]: what an engine binary supplies to the shared command
//! line, and nothing else. The work itself is the profiler library's
//! (`profiler::table`, `profiler::validate`, `profiler::measure`), generic
//! over `profiler::measure::Engine`.

use std::fmt::Debug;

use anyhow::Result;
use clap::Args;
use profiler::measure::engine::{Engine, EngineConfig};
use profiler::measure::monitor::Monitor;
use profiler::measure::speed::Gauge;
use profiler::reference::Comparison;
use profiler::table::build::BuildReport;
use profiler::table::in_network::InNetwork;
use space::LatencyTable;

/// The defaults of the shared commands that differ between engines, stated
/// once per engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// Timing cap of a whole network (`measure`, `validate`), in ms; a table
    /// entry's is the library's (`TimingFlags::DEFAULT`).
    pub network_cap_ms: u64,
    /// `validate`'s sweeps over its networks.
    pub validate_passes: u32,
    /// Draw a progress bar during a table build (or, without a terminal, a
    /// line every 100 entries); without one, only the build's log lines.
    pub progress_bar: bool,
}

/// An engine, as the shared command line sees it: its settings as flags,
/// how it opens (printing its description line), and what a validation of
/// a table must run it with.
pub trait EngineCli {
    /// The binary's name (`profiler`, `profiler-cpu`), for help and usage.
    const NAME: &'static str;
    /// The binary's one-line description.
    const ABOUT: &'static str;
    const DEFAULTS: Defaults;

    type Engine: Engine;
    /// The flags of the table build and `measure`: the device and every
    /// setting that changes what a latency means.
    type Settings: Args + Clone + Debug;
    /// `validate`'s flags: each may only fill in, or repeat, a setting the
    /// table's header states.
    type TableFlags: Args + Clone + Debug;
    /// `verify`'s flags.
    type VerifyArgs: Args + Clone + Debug;

    /// Opens the engine and a monitor of its device, and prints the
    /// engine's description on stderr through [`describe_once`].
    fn open(settings: &Self::Settings) -> Result<(Self::Engine, Box<dyn Monitor>)>;

    /// The settings' batch.
    fn batch(settings: &Self::Settings) -> u32;

    /// The settings after a measured network's statistics, as
    /// `measure` prints them (`batch 32, launch graph, l2 warm`).
    fn describe(settings: &Self::Settings) -> String;

    /// How a table's entries are timed inside networks, when the settings
    /// ask for it (a CPU table's `--cache network`).
    fn in_network(_settings: &Self::Settings) -> Option<InNetwork> {
        None
    }

    /// What `measure --per-block` says its per-block medians are (`(cache
    /// warm) `), before their sum.
    fn per_block_note(_settings: &Self::Settings) -> String {
        String::new()
    }

    /// Whether `measure --per-block` also measures the boundary a table
    /// built now would take off every block (`profiler::measure::boundary`).
    fn measures_boundary() -> bool {
        false
    }

    /// Whether `measure --model` can time an exported TorchScript network
    /// (`searcher export`): only an engine that links libtorch can; the
    /// others keep this default, and `--model` is refused before they open.
    fn times_models() -> bool {
        false
    }

    /// What the table build's last line adds after its rate (a GPU's
    /// throttling and clocks).
    fn build_note(_report: &BuildReport) -> String {
        String::new()
    }

    /// The settings a validation of `table` runs with: the header's, the
    /// flags allowed only to fill in what it lacks.
    fn table_settings(table: &LatencyTable, flags: &Self::TableFlags) -> Result<Self::Settings>;

    /// The settings as the library's engine configuration (a table's and a
    /// validation's fingerprint).
    fn config(settings: &Self::Settings) -> Result<EngineConfig>;

    /// Every output check of `verify`, in order.
    fn verify(args: &Self::VerifyArgs) -> Result<Vec<Comparison>>;
}

/// Prints an engine's description on stderr, once per process: a command
/// that opens an engine per side (`measure --versus`, `--model`) opens
/// them with the same settings, and said the same lines twice.
pub fn describe_once(description: &str) {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| eprintln!("{description}"));
}

/// A second engine for the speed standard when `gauge` times it in turns
/// with each network (`profiler::measure::speed::time_in_turns`), opened
/// with the same settings; none for any other gauge.
pub fn standard_engine<E: EngineCli>(
    settings: &E::Settings,
    gauge: Option<&Gauge>,
) -> Result<Option<E::Engine>> {
    Ok(match gauge {
        Some(Gauge::Standard { .. }) => Some(E::open(settings)?.0),
        _ => None,
    })
}
