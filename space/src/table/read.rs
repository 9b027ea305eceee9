//! Reading and validating a table. Every row is checked, and the first
//! problem is reported with file, line and column, because a silently wrong
//! latency table produces a silently wrong network.

use std::collections::HashMap;
use std::path::Path;

use super::metadata::{meta, Metadata};
use super::{Entry, LatencyStats, COLUMNS, FORMAT};
use crate::block::{BlockShape, BlockSpec};
use crate::error::{Result, SpaceError};

/// A validated table, indexed for lookups by key and by curve.
#[derive(Clone, Debug)]
pub struct LatencyTable {
    origin: String,
    metadata: Metadata,
    batch: u32,
    entries: Vec<Entry>,
    /// 1-based source line of each entry.
    lines: Vec<u64>,
    by_spec: HashMap<BlockSpec, usize>,
    /// The header's `boundary_ms`, 0 without one.
    boundary_ms: f64,
    /// Per shape, the `(mid, median_ms - boundary_ms)` points sorted by mid:
    /// what each block adds to a network.
    pub(super) curves: HashMap<BlockShape, Vec<(u32, f64)>>,
}

impl LatencyTable {
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| SpaceError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses table text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let fail = |line: u64, column: Option<&str>, message: String| SpaceError::Table {
            file: origin.to_string(),
            line,
            column: column.map(str::to_string),
            message,
        };

        let mut metadata = Metadata::new();
        for (n, line) in text.lines().enumerate() {
            if let Some((k, v)) = Metadata::parse_line(line) {
                if metadata.get(k).is_some_and(|old| old != v) {
                    return Err(fail(
                        n as u64 + 1,
                        None,
                        format!(
                            "header line '{k}' repeats with another value ('{}' then '{v}')",
                            metadata.get(k).unwrap_or_default()
                        ),
                    ));
                }
                metadata.set(k, v);
            }
        }
        match metadata.get(meta::FORMAT) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(fail(
                    1,
                    None,
                    format!("unsupported table format '{other}' (this build reads '{FORMAT}')"),
                ))
            }
            None => {
                return Err(fail(
                    1,
                    None,
                    format!(
                        "not a latency table: no '# {}: {FORMAT}' header line",
                        meta::FORMAT
                    ),
                ))
            }
        }
        let header_batch = match metadata.get(meta::BATCH) {
            Some(b) => Some(b.parse::<u32>().ok().filter(|&b| b > 0).ok_or_else(|| {
                fail(
                    header_line(text, meta::BATCH),
                    None,
                    format!("header batch '{b}' is not a positive integer"),
                )
            })?),
            None => None,
        };

        if let Some(c) = metadata.get(meta::CORRECTION) {
            if let Err(e) = c.parse::<super::Correction>() {
                return Err(fail(
                    header_line(text, meta::CORRECTION),
                    None,
                    format!("header correction: {e}"),
                ));
            }
        }

        let boundary_ms = match metadata.get(meta::BOUNDARY_MS) {
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|b| b.is_finite() && *b >= 0.0)
                .ok_or_else(|| {
                    fail(
                        header_line(text, meta::BOUNDARY_MS),
                        None,
                        format!(
                            "header {} '{v}' is not a non-negative number of milliseconds",
                            meta::BOUNDARY_MS
                        ),
                    )
                })?,
            None => 0.0,
        };

        // Comment lines become empty lines, which the CSV reader skips but
        // still counts, so its positions stay the file's line numbers. (Its
        // own comment support misses a last comment line with no newline.)
        let body: Vec<&str> = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with('#') {
                    ""
                } else {
                    l
                }
            })
            .collect();
        let body = body.join("\n");
        let header_line_no = body
            .lines()
            .position(|l| !l.trim().is_empty())
            .map_or(1, |n| n as u64 + 1);
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(body.as_bytes());
        let header = reader
            .headers()
            .map_err(|e| {
                fail(
                    header_line_no,
                    None,
                    format!("cannot read the column header: {e}"),
                )
            })?
            .clone();
        let found: Vec<&str> = header.iter().collect();
        if found != COLUMNS {
            return Err(fail(
                header_line_no,
                None,
                format!(
                    "column header must be '{}', found '{}'",
                    COLUMNS.join(","),
                    found.join(",")
                ),
            ));
        }

        let mut table = LatencyTable {
            origin: origin.to_string(),
            batch: header_batch.unwrap_or(0),
            metadata,
            entries: Vec::new(),
            lines: Vec::new(),
            by_spec: HashMap::new(),
            boundary_ms,
            curves: HashMap::new(),
        };
        let mut first_batch_line = 0;
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                fail(line, None, format!("unreadable row: {e}"))
            })?;
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != COLUMNS.len() {
                let missing = COLUMNS.get(record.len()).copied();
                return Err(fail(
                    line,
                    missing,
                    format!(
                        "row has {} of {} fields (truncated or malformed)",
                        record.len(),
                        COLUMNS.len()
                    ),
                ));
            }
            let field = |i: usize| &record[i];
            let spec: BlockSpec = field(0)
                .parse()
                .map_err(|e: SpaceError| fail(line, Some("key"), e.to_string()))?;
            let batch: u32 = field(1).parse().ok().filter(|&b| b > 0).ok_or_else(|| {
                fail(
                    line,
                    Some("batch"),
                    format!("'{}' is not a positive batch size", field(1)),
                )
            })?;
            if table.entries.is_empty() && header_batch.is_none() {
                table.batch = batch;
                first_batch_line = line;
            }
            if batch != table.batch {
                let why = match header_batch {
                    Some(b) => format!("batch {batch} contradicts the header's batch {b}"),
                    None => format!("batch {batch} differs from batch {} on line {first_batch_line}: a table holds one batch size", table.batch),
                };
                return Err(fail(line, Some("batch"), why));
            }
            let number = |i: usize| -> Result<f64> {
                let col = COLUMNS[i];
                field(i)
                    .parse::<f64>()
                    .map_err(|_| fail(line, Some(col), format!("'{}' is not a number", field(i))))
            };
            let (median_ms, p10_ms, p90_ms, ci_low_ms, ci_high_ms) =
                (number(2)?, number(3)?, number(4)?, number(5)?, number(6)?);
            let samples: u64 = field(7).parse().map_err(|_| {
                fail(
                    line,
                    Some("samples"),
                    format!("'{}' is not a sample count", field(7)),
                )
            })?;
            let throttled = match field(8) {
                "0" | "false" => false,
                "1" | "true" => true,
                other => {
                    return Err(fail(
                        line,
                        Some("throttled"),
                        format!("'{other}' is not 0 or 1"),
                    ))
                }
            };
            let stats = LatencyStats {
                median_ms,
                p10_ms,
                p90_ms,
                ci_low_ms,
                ci_high_ms,
                samples,
                throttled,
            };
            stats
                .check()
                .map_err(|(col, msg)| fail(line, Some(col), msg))?;
            if boundary_ms > 0.0 && median_ms <= boundary_ms {
                return Err(fail(
                    line,
                    Some("median_ms"),
                    format!(
                        "{median_ms} ms is not above the header's {} {boundary_ms} ms (what an empty run costs)",
                        meta::BOUNDARY_MS
                    ),
                ));
            }
            if let Some(&earlier) = table.by_spec.get(&spec) {
                return Err(fail(
                    line,
                    Some("key"),
                    format!("'{spec}' already appears on line {}", table.lines[earlier]),
                ));
            }
            table.push(Entry { spec, batch, stats }, line);
        }
        for points in table.curves.values_mut() {
            points.sort_by_key(|&(mid, _)| mid);
        }
        Ok(table)
    }

    fn push(&mut self, entry: Entry, line: u64) {
        self.by_spec.insert(entry.spec, self.entries.len());
        self.curves.entry(entry.spec.shape).or_default().push((
            entry.spec.mid_channels,
            entry.stats.median_ms - self.boundary_ms,
        ));
        self.entries.push(entry);
        self.lines.push(line);
    }

    /// The file (or other origin) this table was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// What timing a block alone adds over the same block inside a network
    /// (header `boundary_ms`; 0 in a table without one). Each entry keeps its
    /// measured median; [`estimate`](Self::estimate) prices a block at its
    /// median less this, and [`predict`](Self::predict) adds it back once
    /// per network, because a network timed end to end has one start and
    /// one end where the sum of its blocks has one per block.
    pub fn boundary_ms(&self) -> f64 {
        self.boundary_ms
    }

    /// The header's `boundary_ms`, `None` for a table without the line
    /// (which [`boundary_ms`](Self::boundary_ms) reads as 0).
    pub fn header_boundary_ms(&self) -> Option<f64> {
        self.metadata
            .get(meta::BOUNDARY_MS)
            .map(|_| self.boundary_ms)
    }

    /// The batch size every entry was measured at; 0 for a table with no
    /// rows and no `batch` header line.
    pub fn batch(&self) -> u32 {
        self.batch
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entry(&self, spec: &BlockSpec) -> Option<&Entry> {
        self.by_spec.get(spec).map(|&i| &self.entries[i])
    }

    /// Source line of the entry for `spec`, for messages that point back
    /// into the file.
    pub fn line_of(&self, spec: &BlockSpec) -> Option<u64> {
        self.by_spec.get(spec).map(|&i| self.lines[i])
    }
}

fn header_line(text: &str, key: &str) -> u64 {
    text.lines()
        .position(|l| Metadata::parse_line(l).is_some_and(|(k, _)| k == key))
        .map_or(1, |n| n as u64 + 1)
}
