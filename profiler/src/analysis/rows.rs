//! The `validate --out` file: a `#` header naming the table and the
//! settings, then one flushed CSV row per measured pass of a network, so
//! that a run killed at any moment keeps every finished pass and a rerun
//! with the same settings measures only the passes still missing.
//!
//! ```text
//! # format: tfnas-validation/3
//! # table: tables/h100.csv
//! # table_sha256: 3f2a...
//! ...
//! index,pass,seed,predicted_ms,measured_ms,error_pct,measured_p10_ms,measured_p90_ms,samples,throttled,raw_ms,arch
//! 0,0,1,4.4312,4.3807,1.1528,4.3790,4.3850,22,0,4.3807,k5_e6:78+k5_e3:72/...
//! # finished: 2026-11-27T19:02:11Z
//! ```
//!
//! A validation with `--passes P` sweeps its networks P times, so a
//! network's passes lie far apart in time; [`combine`] makes one row per
//! network (the mean of its passes' medians), which is what the statistics,
//! the plot and `fit` see, and [`pass_noise`] says how far one pass of a
//! network strays from another: the measurement's own noise.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use space::{meta, Metadata};

use crate::error::{bail, ensure, Context, ProfilerError, Result};
use crate::files::resume::{
    cut_truncated_line, header_key, header_value, replace_file, settings_diffs,
};

/// The value of the `format` line of a rows file.
/// `/2` added the `pass` column, `/3` the `raw_ms` column (older files
/// are refused: rerun the validation).
pub const FORMAT: &str = "tfnas-validation/3";

/// Header keys of a rows file beyond the table's own [`meta`] keys.
pub mod keys {
    pub const TABLE: &str = "table";
    /// First 16 hex digits of the SHA-256 of the table file: the rows are
    /// only valid for exactly that table.
    pub const TABLE_SHA256: &str = "table_sha256";
    pub const TABLE_DEVICE_NAME: &str = "table_device_name";
    pub const TABLE_DEVICE_UUID: &str = "table_device_uuid";
    pub const TABLE_ENGINE: &str = "table_engine";
    pub const TABLE_STARTED: &str = "table_started";
    pub const TABLE_FINISHED: &str = "table_finished";
    pub const TABLE_ENTRIES: &str = "table_entries";
    pub const SEED: &str = "seed";
    /// Every sampled width is a multiple of this (1: any width).
    pub const WIDTH_MULTIPLE: &str = "width_multiple";
    pub const TIMING: &str = "timing";
    /// `sampled`, or the architecture files a validation was given
    /// (`validate --arch`); informative: a row's network is checked by its
    /// code.
    pub const NETWORKS: &str = "networks";
}

/// What must match for a rerun to append, before the engine's
/// measurement lines: the format and the table; and after them: the space,
/// the seed and the width multiple ([`crate::validate`] adds the engine's
/// keys between and after). The sample count may grow (a rerun with
/// `--samples 200` extends a run of 100).
pub const RESUME_FIRST: [&str; 2] = [meta::FORMAT, keys::TABLE_SHA256];
pub const RESUME_THEN: [&str; 3] = [meta::SPACE_DIGEST, keys::SEED, keys::WIDTH_MULTIPLE];

pub const COLUMNS: [&str; 12] = [
    "index",
    "pass",
    "seed",
    "predicted_ms",
    "measured_ms",
    "error_pct",
    "measured_p10_ms",
    "measured_p90_ms",
    "samples",
    "throttled",
    "raw_ms",
    "arch",
];

/// More sweeps than any validation needs; the bound keeps a typo from
/// queueing days of measurement.
pub const MAX_PASSES: u32 = 100;

/// First 16 hex digits of the SHA-256 of `bytes`: how the rows name the
/// exact table they validated.
pub fn sha256_16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One validated network: a pass of it as the file holds it, or its
/// passes combined ([`combine`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub index: u64,
    /// Which sweep over the networks measured it, from 0; in a combined
    /// row, the last pass it holds.
    pub pass: u32,
    pub seed: u64,
    pub predicted_ms: f64,
    pub measured_ms: f64,
    pub measured_p10_ms: f64,
    pub measured_p90_ms: f64,
    pub samples: u64,
    /// The device's speed was not steady while this row was timed: a GPU
    /// throttled, or a CPU table's speed standard disagreed with itself
    /// around the network (`measure::speed::AtReference::unsteady`).
    pub throttled: bool,
    /// The median as the clock read it, before the scaling to a CPU
    /// table's speed reference (`measured_ms` where there is none): two
    /// networks timed in turns compare by it with no gauge's noise.
    pub raw_ms: f64,
    /// [`space::Architecture::code`].
    pub arch: String,
}

impl Row {
    /// `(predicted − measured) / measured` in percent, as
    /// [`crate::analysis::accuracy::Pair::error_pct`].
    pub fn error_pct(&self) -> f64 {
        crate::analysis::accuracy::Pair::new(self.predicted_ms, self.measured_ms).error_pct()
    }

    fn record(&self) -> [String; 12] {
        [
            self.index.to_string(),
            self.pass.to_string(),
            self.seed.to_string(),
            self.predicted_ms.to_string(),
            self.measured_ms.to_string(),
            format!("{:.4}", self.error_pct()),
            self.measured_p10_ms.to_string(),
            self.measured_p90_ms.to_string(),
            self.samples.to_string(),
            u8::from(self.throttled).to_string(),
            self.raw_ms.to_string(),
            self.arch.clone(),
        ]
    }

    fn parse(record: &csv::StringRecord, line: u64) -> Result<Row> {
        let field = |i: usize| record.get(i).unwrap_or("");
        let num = |i: usize| -> Result<f64> {
            let v: f64 = field(i)
                .parse()
                .with_context(|| format!("line {line}: {}: '{}'", COLUMNS[i], field(i)))?;
            ensure!(
                v.is_finite() && (space::table::MIN_MS..=space::table::MAX_MS).contains(&v),
                "line {line}: {}: {v} is not a latency (a number of ms in [{:e}, {:e}])",
                COLUMNS[i],
                space::table::MIN_MS,
                space::table::MAX_MS
            );
            Ok(v)
        };
        let int = |i: usize| -> Result<u64> {
            field(i)
                .parse()
                .with_context(|| format!("line {line}: {}: '{}'", COLUMNS[i], field(i)))
        };
        ensure!(
            record.len() == COLUMNS.len(),
            "line {line}: {} fields, expected {}",
            record.len(),
            COLUMNS.len()
        );
        let pass = int(1)?;
        ensure!(
            pass < u64::from(MAX_PASSES),
            "line {line}: pass: {pass} is out of range (0 to {})",
            MAX_PASSES - 1
        );
        Ok(Row {
            index: int(0)?,
            pass: pass as u32,
            seed: int(2)?,
            predicted_ms: num(3)?,
            measured_ms: num(4)?,
            measured_p10_ms: num(6)?,
            measured_p90_ms: num(7)?,
            samples: int(8)?,
            throttled: match field(9) {
                "0" => false,
                "1" => true,
                other => bail!("line {line}: throttled: '{other}' is not 0 or 1"),
            },
            raw_ms: num(10)?,
            arch: field(11).to_string(),
        })
    }
}

/// A rows file as read back: its header and rows.
#[derive(Clone, Debug, Default)]
pub struct RowsFile {
    pub header: Metadata,
    pub rows: Vec<Row>,
}

/// Parses the text of a rows file (complete lines only).
pub fn parse(text: &str, origin: &str) -> Result<RowsFile> {
    // A byte-order mark (some editors start UTF-8 files with one) is no
    // part of the first line, as in a table.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = text
        .lines()
        .find_map(|l| (header_key(l) == Some(meta::FORMAT)).then(|| header_value(l)));
    if format != Some(FORMAT) {
        match format {
            Some(f) if f.starts_with("tfnas-validation/") => bail!(
                "{origin}: a validation rows file of format {f}, this profiler reads {FORMAT} (rows with pass and raw_ms columns): validate again"
            ),
            _ => bail!("{origin}: not a validation rows file (no '# format: {FORMAT}' line)"),
        }
    }
    let mut header = Metadata::new();
    let mut body = String::new();
    let mut columns_line = None;
    // The file's line of each body line, so messages point past comments.
    let mut source_lines: Vec<u64> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n as u64 + 1;
        if line.trim_start().starts_with('#') {
            if columns_line.is_none() {
                if let Some(k) = header_key(line) {
                    header.set(k, header_value(line));
                }
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        match columns_line {
            None => {
                let found: Vec<&str> = line.split(',').map(str::trim).collect();
                if found != COLUMNS {
                    bail!(
                        "{origin}:{n}: expected the columns {}, found '{line}'",
                        COLUMNS.join(",")
                    );
                }
                columns_line = Some(n);
            }
            Some(_) => {
                body.push_str(line);
                body.push('\n');
                source_lines.push(n);
            }
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .comment(Some(b'#'))
        .from_reader(body.as_bytes());
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{origin}: row {}", i + 1))?;
        let line = record
            .position()
            .and_then(|p| source_lines.get(p.line() as usize - 1))
            .copied()
            .unwrap_or(0);
        let row = Row::parse(&record, line).with_context(|| origin.to_string())?;
        if !seen.insert((row.index, row.pass)) {
            bail!(
                "{origin}:{line}: network {} pass {} appears twice (row {})",
                row.index,
                row.pass,
                i + 1
            );
        }
        rows.push(row);
    }
    Ok(RowsFile { header, rows })
}

/// Reads a rows file from disk (for `profiler fit`).
pub fn read(path: &Path) -> Result<RowsFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Appends rows to an output file, flushing each.
pub struct RowsWriter {
    out: csv::Writer<File>,
    file: std::path::PathBuf,
}

fn write_header(out: &mut impl Write, header: &Metadata) -> std::io::Result<()> {
    for (k, v) in header.iter() {
        writeln!(out, "# {k}: {v}")?;
    }
    Ok(())
}

/// Refuses to overwrite `kept`, a file's text, unless it is empty or a rows
/// file of this [`FORMAT`]: rows of an older format, or another file named
/// by mistake, would be lost.
fn refuse_foreign(kept: &str, origin: &str) -> Result<()> {
    let format = kept
        .lines()
        .find_map(|l| (header_key(l) == Some(meta::FORMAT)).then(|| header_value(l)));
    if format != Some(FORMAT) && !kept.trim().is_empty() {
        let reason = match format {
            Some(f) if f.starts_with("tfnas-validation/") => format!(
                "it holds rows of format {f}, this profiler writes {FORMAT}; refusing to overwrite it (choose another --out)"
            ),
            _ => "it is not a validation rows file; refusing to overwrite it".into(),
        };
        return Err(ProfilerError::CannotResume {
            path: origin.to_string(),
            reason,
        });
    }
    Ok(())
}

/// Refuses to resume `file_rows` when its header's `resume_keys` differ
/// from this run's `header`, or when `check` refuses one of its rows: the
/// run would mix measurements of two settings or two samplings.
fn check_held(
    file_rows: &RowsFile,
    origin: &str,
    resume_keys: &[&str],
    header: &Metadata,
    mut check: impl FnMut(&Row) -> Result<()>,
) -> Result<()> {
    let diffs = settings_diffs(resume_keys, &file_rows.header, header);
    if !diffs.is_empty() {
        return Err(ProfilerError::SettingsDiffer {
            path: origin.to_string(),
            diffs: diffs.join("; "),
        });
    }
    for row in &file_rows.rows {
        check(row).map_err(|e| ProfilerError::CannotResume {
            path: origin.to_string(),
            reason: e.chain(),
        })?;
    }
    Ok(())
}

impl RowsWriter {
    /// Opens `path` for this run: resumes it (returning the rows already
    /// there) when it holds rows written with the same settings, starts it
    /// afresh when it is missing, empty or only a header of ours, and
    /// refuses anything else. `check` sees every kept row, to refuse rows
    /// that this run would not have produced.
    pub fn open(
        path: &Path,
        header: &Metadata,
        resume_keys: &[&str],
        check: impl FnMut(&Row) -> Result<()>,
        log: &mut dyn FnMut(&str),
    ) -> Result<(RowsWriter, Vec<Row>)> {
        let origin = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ProfilerError::io(path, e)),
        };
        let io = |e: std::io::Error| ProfilerError::io(path, e);
        let fresh = || Ok((RowsWriter::create(path, header)?, Vec::new()));
        let Some(text) = text else {
            return fresh();
        };
        let (complete, cut) = cut_truncated_line(&text);
        // Trailing `finished` lines of an earlier run go: this run adds rows.
        let kept: String = complete
            .lines()
            .filter(|l| header_key(l) != Some(meta::FINISHED))
            .flat_map(|l| [l, "\n"])
            .collect();
        let has_columns = kept
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        refuse_foreign(&kept, &origin)?;
        if !has_columns {
            // Nothing measured yet: only a (partial) header or nothing.
            return fresh();
        }
        let file_rows = parse(&kept, &origin).map_err(|e| ProfilerError::CannotResume {
            path: origin.clone(),
            reason: e.chain(),
        })?;
        check_held(&file_rows, &origin, resume_keys, header, check)?;
        if let Some(cut) = cut {
            log(&format!(
                "{origin}: dropped a truncated last line ('{}')",
                cut.trim_end()
            ));
        }
        if kept != text {
            replace_file(path, &kept)?;
        }
        let mut file = OpenOptions::new().append(true).open(path).map_err(io)?;
        writeln!(file, "# resumed {}", crate::files::timestamp::now_rfc3339()).map_err(io)?;
        Ok((RowsWriter::append(file, path), file_rows.rows))
    }

    /// Starts `path` afresh: `header`, then the column line.
    fn create(path: &Path, header: &Metadata) -> Result<RowsWriter> {
        let io = |e: std::io::Error| ProfilerError::io(path, e);
        let mut file = File::create(path).map_err(io)?;
        write_header(&mut file, header).map_err(io)?;
        writeln!(file, "{}", COLUMNS.join(",")).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(RowsWriter::append(file, path))
    }

    fn append(file: File, path: &Path) -> RowsWriter {
        RowsWriter {
            out: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(file),
            file: path.to_path_buf(),
        }
    }

    pub fn write(&mut self, row: &Row) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| {
            ProfilerError::io(&self.file, std::io::Error::other(e.to_string()))
        };
        self.out.write_record(row.record()).map_err(|e| err(&e))?;
        self.out.flush().map_err(|e| err(&e))?;
        Ok(())
    }

    /// Marks the run complete with trailing header lines.
    pub fn finish(self, trailing: &Metadata) -> Result<()> {
        let path = self.file.clone();
        let mut file = self
            .out
            .into_inner()
            .map_err(|e| ProfilerError::io(&path, std::io::Error::other(e.to_string())))?;
        write_header(&mut file, trailing).map_err(|e| ProfilerError::io(&path, e))?;
        file.flush().map_err(|e| ProfilerError::io(&path, e))?;
        Ok(())
    }
}

/// The rows of each network (its passes), by index.
fn by_network(rows: &[Row]) -> std::collections::BTreeMap<u64, Vec<&Row>> {
    let mut by_index: std::collections::BTreeMap<u64, Vec<&Row>> = Default::default();
    for r in rows {
        by_index.entry(r.index).or_default().push(r);
    }
    by_index
}

/// One row per network, in index order: its passes' medians, p10s and p90s
/// averaged, their samples added, throttled if any pass was, and `pass`
/// the last pass held. The mean, not the median, of the passes: with a
/// few passes whose own medians already shed the outlying runs, it is the
/// steadier estimate.
pub fn combine(rows: &[Row]) -> Vec<Row> {
    by_network(rows)
        .into_values()
        .map(|passes| {
            let n = passes.len() as f64;
            let mean = |f: fn(&Row) -> f64| passes.iter().map(|r| f(r)).sum::<f64>() / n;
            Row {
                pass: passes.iter().map(|r| r.pass).max().unwrap_or(0),
                measured_ms: mean(|r| r.measured_ms),
                measured_p10_ms: mean(|r| r.measured_p10_ms),
                measured_p90_ms: mean(|r| r.measured_p90_ms),
                raw_ms: mean(|r| r.raw_ms),
                samples: passes.iter().map(|r| r.samples).sum(),
                throttled: passes.iter().any(|r| r.throttled),
                ..passes[0].clone()
            }
        })
        .collect()
}

/// How far the passes of one network stray from each other.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PassNoise {
    /// Pooled standard deviation of one pass's median about its network's
    /// mean, in percent of that mean.
    pub sd_pct: f64,
    /// Networks with two passes or more, which the estimate pools.
    pub networks: usize,
    /// Passes of a network (the most any network has).
    pub passes: u32,
}

impl PassNoise {
    /// The standard error of a network's combined time, in percent.
    pub fn combined_sd_pct(&self) -> f64 {
        self.sd_pct / f64::from(self.passes.max(1)).sqrt()
    }
}

/// The measurement's own noise, from networks measured in two passes or
/// more; `None` when none was.
pub fn pass_noise(rows: &[Row]) -> Option<PassNoise> {
    let (mut squares, mut dof, mut networks, mut passes) = (0.0, 0usize, 0usize, 1u32);
    for network in by_network(rows).values().filter(|p| p.len() >= 2) {
        let mean = network.iter().map(|r| r.measured_ms).sum::<f64>() / network.len() as f64;
        squares += network
            .iter()
            .map(|r| (r.measured_ms / mean - 1.0).powi(2))
            .sum::<f64>();
        dof += network.len() - 1;
        networks += 1;
        passes = passes.max(network.len() as u32);
    }
    (dof > 0).then(|| PassNoise {
        sd_pct: (squares / dof as f64).sqrt() * 100.0,
        networks,
        passes,
    })
}

/// A network whose passes disagree far beyond the others' noise: its
/// latency has several modes (seen on the CPU for networks of unaligned
/// widths, whose kernels can switch paths between runs), so the mean of
/// its passes is not one number to trust.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Unstable {
    pub index: u64,
    /// Its passes' measured medians, in pass order.
    pub passes_ms: Vec<f64>,
    /// `max / min − 1` of those, in percent.
    pub spread_pct: f64,
}

/// How far apart one network's pass medians lie: `max / min − 1`, in
/// percent (0 for fewer than two).
pub fn spread_pct(passes_ms: &[f64]) -> f64 {
    let (lo, hi) = passes_ms
        .iter()
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &m| {
            (lo.min(m), hi.max(m))
        });
    if passes_ms.len() < 2 {
        0.0
    } else {
        (hi / lo - 1.0) * 100.0
    }
}

/// The floor of [`unstable`]'s threshold: a spread of passes below 5% is
/// never called several modes, however steady the other networks ran.
pub const UNSTABLE_FLOOR_PCT: f64 = 5.0;

/// The networks of `rows` (two passes or more) whose passes spread wider
/// than both [`UNSTABLE_FLOOR_PCT`] and three times the median spread of
/// all networks: a rule a machine that is merely noisy (every network
/// spreads alike) does not trip, and that the median keeps from being
/// raised by the unstable networks themselves.
pub fn unstable(rows: &[Row]) -> Vec<Unstable> {
    let networks: Vec<Unstable> = by_network(rows)
        .into_iter()
        .filter(|(_, p)| p.len() >= 2)
        .map(|(index, mut passes)| {
            passes.sort_by_key(|r| r.pass);
            let passes_ms: Vec<f64> = passes.iter().map(|r| r.measured_ms).collect();
            Unstable {
                index,
                spread_pct: spread_pct(&passes_ms),
                passes_ms,
            }
        })
        .collect();
    let mut spreads: Vec<f64> = networks.iter().map(|n| n.spread_pct).collect();
    if spreads.is_empty() {
        return Vec::new();
    }
    spreads.sort_by(f64::total_cmp);
    let median = spreads[spreads.len() / 2];
    let threshold = UNSTABLE_FLOOR_PCT.max(3.0 * median);
    networks
        .into_iter()
        .filter(|n| n.spread_pct > threshold)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u64, pass: u32, measured_ms: f64) -> Row {
        Row {
            index,
            pass,
            seed: 1,
            predicted_ms: 10.0,
            measured_ms,
            measured_p10_ms: measured_ms - 1.0,
            measured_p90_ms: measured_ms + 1.0,
            samples: 10,
            throttled: pass == 1,
            raw_ms: 2.0 * measured_ms,
            arch: format!("net{index}"),
        }
    }

    #[test]
    fn combined_rows_average_each_networks_passes_in_index_order() {
        let rows = [
            row(1, 0, 8.0),
            row(0, 0, 10.0),
            row(0, 1, 12.0),
            row(1, 1, 10.0),
        ];
        let c = combine(&rows);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].index, c[0].pass, c[0].measured_ms), (0, 1, 11.0));
        assert_eq!((c[0].measured_p10_ms, c[0].measured_p90_ms), (10.0, 12.0));
        assert_eq!((c[0].samples, c[0].throttled), (20, true));
        assert_eq!(c[0].raw_ms, 22.0, "the mean of the passes' raw medians");
        assert_eq!(
            (c[1].index, c[1].measured_ms, c[1].arch.as_str()),
            (1, 9.0, "net1")
        );
    }

    #[test]
    fn pass_noise_pools_the_relative_spread_of_networks_with_two_passes() {
        // Network 0: 9 and 11 about 10 (±10%); network 1: one pass only.
        let rows = [row(0, 0, 9.0), row(0, 1, 11.0), row(1, 0, 5.0)];
        let n = pass_noise(&rows).unwrap();
        // Squares 0.01 + 0.01 over one degree of freedom: sd 14.14%.
        assert!((n.sd_pct - 200f64.sqrt()).abs() < 1e-9, "{n:?}");
        assert_eq!((n.networks, n.passes), (1, 2));
        assert!((n.combined_sd_pct() - 10.0).abs() < 1e-9);
        assert_eq!(pass_noise(&[row(0, 0, 9.0), row(1, 0, 5.0)]), None);
    }

    #[test]
    fn a_latency_of_zero_or_of_orders_beyond_any_network_is_refused() {
        let header = "# format: tfnas-validation/3\n";
        let cols = COLUMNS.join(",");
        for measured in ["1e308", "0"] {
            let text = format!("{header}{cols}\n0,0,1,10,{measured},11.1,8,10,5,0,9,a\n");
            let e = parse(&text, "r.csv").unwrap_err().chain();
            assert!(
                e.contains("measured_ms") && e.contains("is not a latency"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_rows_file_that_starts_with_a_byte_order_mark_reads() {
        let cols = COLUMNS.join(",");
        let text =
            format!("\u{feff}# format: tfnas-validation/3\n{cols}\n0,0,1,10,9,11.1,8,10,5,0,9,a\n");
        assert_eq!(parse(&text, "r.csv").unwrap().rows.len(), 1);
    }

    #[test]
    fn a_rows_file_with_a_pass_twice_or_of_the_old_format_is_refused() {
        let header = "# format: tfnas-validation/3\n";
        let cols = COLUMNS.join(",");
        let line = "0,0,1,10,9,11.1,8,10,5,0,9,a";
        let twice = format!("{header}{cols}\n{line}\n{line}\n");
        let e = parse(&twice, "r.csv").unwrap_err().chain();
        assert!(e.contains("network 0 pass 0 appears twice"), "{e}");
        for v in [1, 2] {
            let old = format!("# format: tfnas-validation/{v}\nindex\n");
            let e = parse(&old, "r.csv").unwrap_err().chain();
            assert!(
                e.contains(&format!("format tfnas-validation/{v}")) && e.contains("validate again"),
                "{e}"
            );
        }
        let far = format!("{header}{cols}\n0,100,1,10,9,11.1,8,10,5,0,9,a\n");
        let e = parse(&far, "r.csv").unwrap_err().chain();
        assert!(e.contains("pass: 100 is out of range (0 to 99)"), "{e}");
        let ok =
            format!("{header}{cols}\n1,0,1,10,9,11.1,8,10,5,0,9,a\n0,0,1,10,9,11.1,8,10,5,0,9,a\n");
        assert_eq!(parse(&ok, "r.csv").unwrap().rows.len(), 2);
    }

    #[test]
    fn a_network_whose_passes_jump_far_beyond_the_others_is_called_unstable() {
        // Four steady networks (1% apart) and one taking 22.5, 29.6, 22.3 ms,
        // as TF-NAS-A did on the CPU.
        let mut rows = Vec::new();
        for index in 0..4 {
            for (pass, ms) in [20.0, 20.2, 20.1].into_iter().enumerate() {
                rows.push(row(index, pass as u32, ms));
            }
        }
        for (pass, ms) in [22.5, 29.6, 22.3].into_iter().enumerate() {
            rows.push(row(4, pass as u32, ms));
        }
        let u = unstable(&rows);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].index, 4);
        assert_eq!(u[0].passes_ms, vec![22.5, 29.6, 22.3]);
        assert!((u[0].spread_pct - (29.6 / 22.3 - 1.0) * 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_machine_where_every_network_spreads_alike_shows_no_unstable_network() {
        // Every network 8% apart: noise of the machine, not modes of one.
        let mut rows = Vec::new();
        for index in 0..5 {
            for (pass, ms) in [20.0, 21.6, 20.8].into_iter().enumerate() {
                rows.push(row(index, pass as u32, ms));
            }
        }
        assert!(unstable(&rows).is_empty());
        // One pass each: nothing to compare.
        assert!(unstable(&rows[..1]).is_empty());
        // Below the floor, even alone among steadier networks.
        let mut calm: Vec<Row> = (0..3)
            .flat_map(|i| [row(i, 0, 20.0), row(i, 1, 20.0)])
            .collect();
        calm.extend([row(3, 0, 20.0), row(3, 1, 20.9)]);
        assert!(unstable(&calm).is_empty());
    }
}
