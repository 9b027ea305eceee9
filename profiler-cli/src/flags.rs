//! The flags every engine's commands share: when to stop timing, the
//! search space file, and the wording of a number out of its range.

use std::path::PathBuf;

use clap::Args;
use profiler::measure::timing::TimingFlags;
use space::bound::{Bound, Number};
use space::SearchSpaceConfig;

/// When to stop timing one workload, with the library's defaults.
#[derive(Args, Clone, Debug)]
pub struct TimingArgs {
    /// Untimed warm-up per entry, in milliseconds.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.warmup_ms)]
    pub warmup_ms: u64,
    /// Per-entry cap on sampling time, in milliseconds [default: 100 for a
    /// table's entries; for a whole network (measure, validate) the
    /// engine's: 100 on a GPU, 1000 on the CPU].
    #[arg(long)]
    pub cap_ms: Option<u64>,
    /// Stop once the 95% CI of the median is within this percentage of it.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.ci_percent)]
    pub ci_percent: f64,
    /// Fewest timed runs per entry.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.min_samples)]
    pub min_samples: u64,
}

impl TimingArgs {
    /// The flags, with `cap_ms` where the command line does not say.
    pub fn flags(&self, cap_ms: u64) -> TimingFlags {
        TimingFlags {
            warmup_ms: self.warmup_ms,
            cap_ms: self.cap_ms.unwrap_or(cap_ms),
            ci_percent: self.ci_percent,
            min_samples: self.min_samples,
        }
    }
}

/// The space file's space, or the TF-NAS ImageNet space.
pub fn load_space(path: Option<&PathBuf>) -> anyhow::Result<SearchSpaceConfig> {
    match path {
        Some(p) => Ok(SearchSpaceConfig::from_path(p)?),
        None => Ok(SearchSpaceConfig::default()),
    }
}

/// A clap value parser for a whole number in `[min, max]`, refusing
/// others in the wording all three binaries use (`--passes must be a
/// number in [1, 100], got 0`): the searcher's [`space::bound::Bound`].
pub fn in_range<T: Number>(
    flag: &'static str,
    min: T,
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    Bound::closed(flag, min, max).parser()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_outside_its_range_is_refused_naming_the_flag_and_the_range() {
        let parse = in_range::<u32>("--passes", 1, 100);
        assert_eq!(parse("3"), Ok(3));
        assert_eq!(
            parse("0"),
            Err("--passes must be a number in [1, 100], got 0".to_string())
        );
        assert_eq!(
            parse("x"),
            Err("'x' is not a number (--passes must lie in [1, 100])".to_string())
        );
    }

    #[test]
    fn the_cap_falls_back_to_the_commands_default_only_when_not_given() {
        let mut t = TimingArgs {
            warmup_ms: 1,
            cap_ms: None,
            ci_percent: 1.0,
            min_samples: 3,
        };
        assert_eq!(t.flags(1000).cap_ms, 1000);
        t.cap_ms = Some(5);
        assert_eq!(t.flags(1000).cap_ms, 5);
    }
}

/// How `measure --table` and `validate` bring a CPU network's runs to the
/// table's speed (`profiler::measure::speed::Gauge`).
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct GaugeArgs {
    /// Gauge the machine's speed by the table's speed standard (a network
    /// of the space timed in turns with each network, two runs a turn, on
    /// an engine of its own) instead of each run's fixed parts, whose time
    /// moves with the network around them (docs/cpu.md, "The speed
    /// gauge"). Needs a table built with a `speed_standard_ms` line.
    #[arg(long, value_enum, default_value_t = Gauge::FixedParts)]
    pub gauge: Gauge,
}

/// `--gauge`'s values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Gauge {
    /// Each run scaled by the table's reference over its fixed parts' time.
    #[default]
    FixedParts,
    /// The table's speed standard, timed in turns with each network.
    Standard,
}

impl GaugeArgs {
    /// Whether the standard gauges.
    pub fn standard(&self) -> bool {
        self.gauge == Gauge::Standard
    }
}
