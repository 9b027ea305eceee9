//! Measured widths: the width multiple a search defaults to, and which
//! widths of a derived network the table only interpolates.
//!
//! An interpolated width is optimistic: on the H100, networks whose blocks
//! had widths off the table's step-8 grid measured 2.2% slower (median over
//! 30 networks) than linear interpolation predicted. So the width multiple
//! defaults to the table's `width_step` header, which makes every width of
//! the derived network a measured entry; `--width-multiple 1` keeps the
//! method's 1-channel granularity.

use space::{meta, Architecture, LatencyTable};

use crate::error::Result;

/// The width multiple a table implies and why, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultMultiple {
    pub multiple: u32,
    pub why: String,
}

/// What a width the table has is: "a measured entry", or on a table
/// `profiler transfer` predicted (most of whose rows are not measured) "an
/// entry of the predicted table".
pub fn entry_kind(table: &LatencyTable) -> &'static str {
    if table.metadata().get(meta::PREDICTED).is_some() {
        "an entry of the predicted table (measured only where the probe was)"
    } else {
        "a measured entry"
    }
}

/// The table's `width_step` header when it has a usable one, else 1 (the
/// method's granularity), saying which.
pub fn default_width_multiple(table: &LatencyTable) -> DefaultMultiple {
    match table.metadata().get(meta::WIDTH_STEP) {
        Some(text) => match text.trim().parse::<u32>() {
            Ok(step) if step >= 1 => DefaultMultiple {
                multiple: step,
                why: format!(
                    "width multiple {step}: the table's width step, so every width of the derived network is {} (--width-multiple 1 for the method's 1-channel granularity)",
                    entry_kind(table)
                ),
            },
            _ => DefaultMultiple {
                multiple: 1,
                why: format!(
                    "width multiple 1: the table's width_step '{text}' is not a positive whole number; widths between measured ones are interpolated"
                ),
            },
        },
        None => DefaultMultiple {
            multiple: 1,
            why: "width multiple 1: the table records no width step, so the method's 1-channel granularity; widths between measured ones are interpolated".into(),
        },
    }
}

/// Every kept block of `arch` whose width the table interpolates, as
/// "stage S block B OP mMID (between measured mLO and mHI)".
pub fn interpolated_widths(table: &LatencyTable, arch: &Architecture) -> Result<Vec<String>> {
    let specs = arch.block_specs()?;
    // block_specs: stem, second stem, the kept blocks in order, head.
    let mut kept = specs[2..specs.len() - 1].iter();
    let mut out = Vec::new();
    for (s, stage) in arch.stages.iter().enumerate() {
        for (b, block) in stage.blocks.iter().enumerate() {
            let spec = kept.next().expect("one spec per kept block");
            if let Some(e) = table.estimate(spec) {
                if let Some((lower, upper)) = e.source.between() {
                    out.push(format!(
                        "stage {} block {} {} m{} (between measured m{lower} and m{upper})",
                        s + 1,
                        b + 1,
                        block.op,
                        block.mid_channels
                    ));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn reference(name: &str) -> LatencyTable {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tables/reference")
            .join(name);
        LatencyTable::from_path(&path).unwrap()
    }

    #[test]
    fn the_default_width_multiple_follows_the_tables_width_step() {
        let h100 = default_width_multiple(&reference("h100-pytorch-2.11-graph.csv"));
        assert_eq!(h100.multiple, 8);
        assert!(h100.why.contains("the table's width step"), "{}", h100.why);
        // The official tables were converted without a width step line.
        let titan = default_width_multiple(&reference("titanrtx-tfnas-official.csv"));
        assert_eq!(titan.multiple, 1);
        assert!(titan.why.contains("records no width step"), "{}", titan.why);
        let text = crate::fixture::tiny_table_text_with("# width_step: 16");
        let sixteen = LatencyTable::parse(&text, "t.csv").unwrap();
        assert_eq!(default_width_multiple(&sixteen).multiple, 16);
        assert!(default_width_multiple(&sixteen)
            .why
            .contains("is a measured entry"));
        // A predicted table's widths are entries, not measurements.
        let text = crate::fixture::tiny_table_text_with("# width_step: 16\n# predicted: 3 of 21");
        let predicted = LatencyTable::parse(&text, "t.csv").unwrap();
        let why = default_width_multiple(&predicted).why;
        assert!(why.contains("an entry of the predicted table"), "{why}");
        for bad in ["0", "eight", "-8"] {
            let text = crate::fixture::tiny_table_text_with(&format!("# width_step: {bad}"));
            // The reader refuses a malformed width step with its line, so no
            // table reaches the default with one.
            let e = LatencyTable::parse(&text, "t.csv").unwrap_err().to_string();
            assert!(e.contains("width_step"), "{bad}: {e}");
        }
    }

    #[test]
    fn interpolated_widths_are_named_and_measured_ones_are_not() {
        let table = reference("h100-pytorch-2.11-graph.csv");
        // TF-NAS-A's published widths: 83 and 138 are off the step-8 grid,
        // 128 and 504 are on it.
        let a = Architecture::tfnas_a();
        let listed = interpolated_widths(&table, &a).unwrap();
        assert!(
            listed.contains(&"stage 1 block 1 k3_e6_se m83 (between measured m80 and m88)".into()),
            "{listed:?}"
        );
        assert!(!listed.iter().any(|l| l.contains(" m128 ")), "{listed:?}");
        let off_grid = a
            .stages
            .iter()
            .flat_map(|s| &s.blocks)
            .filter(|b| b.mid_channels % 8 != 0)
            .count();
        assert_eq!(listed.len(), off_grid);
    }
}
