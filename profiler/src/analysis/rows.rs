//! The `validate --out` file: a `#` header naming the table and the
//! settings, then one flushed CSV row per measured network, so that a run
//! killed at any moment keeps every finished network and a rerun with the
//! same settings goes on after the last complete row.
//!
//! ```text
//! # format: tfnas-validation/1
//! # table: tables/h100.csv
//! # table_sha256: 3f2a...
//! ...
//! index,seed,predicted_ms,measured_ms,error_pct,measured_p10_ms,measured_p90_ms,samples,throttled,arch
//! 0,1,4.4312,4.3807,1.1528,4.3790,4.3850,22,0,k5_e6:78+k5_e3:72/...
//! # finished: 2026-11-27T19:02:11Z
//! ```

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
pub const FORMAT: &str = "tfnas-validation/1";

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
}

/// What must match for a rerun to append: the table, the device and its
/// libraries, the settings, the space, the seed and the width multiple.
/// The sample count may
/// grow (a rerun with `--samples 200` extends a run of 100).
pub const RESUME_KEYS: [&str; 23] = [
    meta::FORMAT,
    keys::TABLE_SHA256,
    meta::DEVICE_UUID,
    meta::DRIVER,
    meta::CUDA,
    meta::CUDNN,
    meta::ENGINE,
    meta::LAUNCH,
    meta::L2,
    meta::DTYPE,
    meta::LAYOUT,
    meta::BATCH,
    meta::SPACE_DIGEST,
    keys::SEED,
    keys::WIDTH_MULTIPLE,
    // The CPU engine's (absent from GPU rows, so equal there): the same
    // lines a CPU table resumes on (`table::build::RESUME_KEYS`).
    meta::CPU_MODEL,
    meta::THREADS,
    meta::LLC_BYTES,
    meta::CPU_GOVERNOR,
    meta::CPU_CAPABILITY,
    meta::CPU_MEMORY,
    meta::CACHE,
    meta::TIMER,
];

pub const COLUMNS: [&str; 10] = [
    "index",
    "seed",
    "predicted_ms",
    "measured_ms",
    "error_pct",
    "measured_p10_ms",
    "measured_p90_ms",
    "samples",
    "throttled",
    "arch",
];

/// First 16 hex digits of the SHA-256 of `bytes`: how the rows name the
/// exact table they validated.
pub fn sha256_16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One validated network.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub index: u64,
    pub seed: u64,
    pub predicted_ms: f64,
    pub measured_ms: f64,
    pub measured_p10_ms: f64,
    pub measured_p90_ms: f64,
    pub samples: u64,
    pub throttled: bool,
    /// [`space::Architecture::code`].
    pub arch: String,
}

impl Row {
    /// `(predicted − measured) / measured` in percent, as
    /// [`crate::analysis::accuracy::Pair::error_pct`].
    pub fn error_pct(&self) -> f64 {
        crate::analysis::accuracy::Pair::new(self.predicted_ms, self.measured_ms).error_pct()
    }

    fn record(&self) -> [String; 10] {
        [
            self.index.to_string(),
            self.seed.to_string(),
            self.predicted_ms.to_string(),
            self.measured_ms.to_string(),
            format!("{:.4}", self.error_pct()),
            self.measured_p10_ms.to_string(),
            self.measured_p90_ms.to_string(),
            self.samples.to_string(),
            u8::from(self.throttled).to_string(),
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
                v.is_finite() && v >= 0.0,
                "line {line}: {}: {v} is not a latency",
                COLUMNS[i]
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
        Ok(Row {
            index: int(0)?,
            seed: int(1)?,
            predicted_ms: num(2)?,
            measured_ms: num(3)?,
            measured_p10_ms: num(5)?,
            measured_p90_ms: num(6)?,
            samples: int(7)?,
            throttled: match field(8) {
                "0" => false,
                "1" => true,
                other => bail!("line {line}: throttled: '{other}' is not 0 or 1"),
            },
            arch: field(9).to_string(),
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
    let format = text
        .lines()
        .find_map(|l| (header_key(l) == Some(meta::FORMAT)).then(|| header_value(l)));
    if format != Some(FORMAT) {
        bail!("{origin}: not a validation rows file (no '# format: {FORMAT}' line)");
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
    let mut rows = Vec::new();
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
        if row.index != i as u64 {
            bail!(
                "{origin}: row {} has index {}, expected {i}: the rows must be consecutive from 0",
                i + 1,
                row.index
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

impl RowsWriter {
    /// Opens `path` for this run: resumes it (returning the rows already
    /// there) when it holds rows written with the same settings, starts it
    /// afresh when it is missing, empty or only a header of ours, and
    /// refuses anything else. `check` sees every kept row, to refuse rows
    /// that this run would not have produced.
    pub fn open(
        path: &Path,
        header: &Metadata,
        mut check: impl FnMut(&Row) -> Result<()>,
        log: &mut dyn FnMut(&str),
    ) -> Result<(RowsWriter, Vec<Row>)> {
        let origin = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ProfilerError::io(path, e)),
        };
        let io = |e: std::io::Error| ProfilerError::io(path, e);
        let fresh = || -> Result<(RowsWriter, Vec<Row>)> {
            let mut file = File::create(path).map_err(io)?;
            write_header(&mut file, header).map_err(io)?;
            writeln!(file, "{}", COLUMNS.join(",")).map_err(io)?;
            file.flush().map_err(io)?;
            Ok((RowsWriter::append(file, path), Vec::new()))
        };
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
        let ours = kept
            .lines()
            .any(|l| header_key(l) == Some(meta::FORMAT) && header_value(l) == FORMAT);
        if !ours && !kept.trim().is_empty() {
            return Err(ProfilerError::CannotResume {
                path: origin,
                reason: "it is not a validation rows file; refusing to overwrite it".into(),
            });
        }
        if !has_columns {
            // Nothing measured yet: only a (partial) header or nothing.
            return fresh();
        }
        let file_rows = parse(&kept, &origin).map_err(|e| ProfilerError::CannotResume {
            path: origin.clone(),
            reason: e.chain(),
        })?;
        let diffs = settings_diffs(&RESUME_KEYS, &file_rows.header, header);
        if !diffs.is_empty() {
            return Err(ProfilerError::SettingsDiffer {
                path: origin,
                diffs: diffs.join("; "),
            });
        }
        for row in &file_rows.rows {
            check(row).map_err(|e| ProfilerError::CannotResume {
                path: origin.clone(),
                reason: e.chain(),
            })?;
        }
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
