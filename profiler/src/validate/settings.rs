//! The engine settings a validation times with: the table's header, which
//! a flag may complete but never contradict.

use space::{meta, LatencyTable};

use crate::error::{bail, ProfilerError, Result};
use crate::measure::engine::{Dtype, EngineConfig, Launch, Layout, L2};

/// Engine settings stated on the command line: each may fill in a setting
/// the table's header lacks, never change one it states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingFlags {
    pub batch: Option<u32>,
    pub launch: Option<Launch>,
    pub l2: Option<L2>,
    pub dtype: Option<Dtype>,
    pub layout: Option<Layout>,
}

/// The settings a validation must time with, from the table's header and
/// the flags: a flag may fill in a setting the header lacks, never change
/// one it states.
pub fn resolve_settings(table: &LatencyTable, args: &SettingFlags) -> Result<EngineConfig> {
    fn pick<T: std::str::FromStr<Err = String> + ToString + Copy>(
        table: &LatencyTable,
        key: &'static str,
        flag: Option<T>,
        diffs: &mut Vec<String>,
        missing: &mut Vec<&'static str>,
    ) -> Result<Option<T>> {
        let header = match table.metadata().get(key) {
            Some(v) => Some(v.parse::<T>().map_err(|e| {
                ProfilerError::Invalid(format!("{}: header '{key}': {e}", table.origin()))
            })?),
            None => None,
        };
        match (header, flag) {
            (Some(h), Some(f)) if h.to_string() != f.to_string() => {
                diffs.push(format!(
                    "{key}: table '{}', flag '{}'",
                    h.to_string(),
                    f.to_string()
                ));
                Ok(None)
            }
            (Some(v), _) | (None, Some(v)) => Ok(Some(v)),
            (None, None) => {
                missing.push(key);
                Ok(None)
            }
        }
    }
    if table.batch() == 0 {
        bail!(
            "{}: the table has no rows and no batch line; there is nothing to validate",
            table.origin()
        );
    }
    let (mut diffs, mut missing) = (Vec::new(), Vec::new());
    if let Some(b) = args.batch {
        if b != table.batch() {
            diffs.push(format!("batch: table '{}', flag '{b}'", table.batch()));
        }
    }
    let launch = pick(table, meta::LAUNCH, args.launch, &mut diffs, &mut missing)?;
    let l2 = pick(table, meta::L2, args.l2, &mut diffs, &mut missing)?;
    let dtype = pick(table, meta::DTYPE, args.dtype, &mut diffs, &mut missing)?;
    let layout = pick(table, meta::LAYOUT, args.layout, &mut diffs, &mut missing)?;
    if !diffs.is_empty() {
        return Err(ProfilerError::FlagsDisagreeWithTable {
            table: table.origin().to_string(),
            diffs: diffs.join("; "),
        });
    }
    match (launch, l2, dtype, layout) {
        (Some(launch), Some(l2), Some(dtype), Some(layout)) => Ok(EngineConfig {
            batch: table.batch(),
            dtype,
            layout,
            launch,
            l2,
            seed: 0,
        }),
        _ => Err(ProfilerError::TableLacksSettings {
            table: table.origin().to_string(),
            keys: missing.join(", "),
            flags: missing
                .iter()
                .map(|k| format!("--{k}"))
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}
