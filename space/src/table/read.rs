//! Reading and validating a table. Every row is checked, and the first
//! problem is reported with file, line and column, because a silently wrong
//! latency table produces a silently wrong network.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::fit::{CurveCheck, CurveFit};
use super::metadata::{meta, Metadata};
use super::width::{LayerKey, WidthModel};
use super::{Entry, LatencyStats, COLUMNS, FORMAT};
use crate::block::{BlockShape, BlockSpec};
use crate::error::{Result, SpaceError};

/// A validated table, indexed for lookups by key and by curve.
#[derive(Clone, Debug)]
pub struct LatencyTable {
    origin: String,
    sha256: String,
    metadata: Metadata,
    /// 1-based line of each header key's first line.
    header_lines: HashMap<String, u64>,
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
    /// `curves` as the table prices them: under `curve_fit: affine`, the
    /// fitted widths moved onto their curve's line ([`super::fit`]).
    pub(super) priced: HashMap<BlockShape, Vec<(u32, f64)>>,
    /// The header's `width_model` (linear without one).
    pub(super) width_model: WidthModel,
    /// The header's `curve_fit` (none without one).
    pub(super) curve_fit: CurveFit,
    /// Under `affine`, the curves against their lines ([`super::fit`]).
    pub(super) curve_check: Option<CurveCheck>,
    /// Under `align N`, each layer's measured surcharge for unaligned
    /// widths ([`super::width`]).
    pub(super) surcharges: HashMap<LayerKey, f64>,
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
        let sha256 = hex_sha256(text.as_bytes());
        // Editors on some systems start a UTF-8 file with a byte-order mark;
        // it is no part of the first line.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let at = Locator { origin };
        let header = Header::read(text, &at)?;
        let body = csv_body(text);
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(body.text.as_bytes());
        check_columns(&mut reader, body.header_line, &at)?;
        if let Some(line) = header.format_line.filter(|&l| l > body.header_line) {
            return Err(at.fail(
                line,
                None,
                format!(
                    "the '# {}' line must come before the column header (line {})",
                    meta::FORMAT,
                    body.header_line
                ),
            ));
        }
        let mut table = LatencyTable {
            origin: origin.to_string(),
            sha256,
            batch: header.batch.unwrap_or(0),
            metadata: header.metadata,
            header_lines: header.lines,
            entries: Vec::new(),
            lines: Vec::new(),
            by_spec: HashMap::new(),
            boundary_ms: header.boundary_ms,
            curves: HashMap::new(),
            priced: HashMap::new(),
            width_model: WidthModel::Linear,
            curve_fit: CurveFit::None,
            curve_check: None,
            surcharges: HashMap::new(),
        };
        let mut first_batch_line = 0;
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| body.file_line(p.line()));
                at.fail(line, None, format!("unreadable row: {e}"))
            })?;
            let line = record.position().map_or(0, |p| body.file_line(p.line()));
            let entry = parse_row(&record, line, table.boundary_ms, &at)?;
            check_zero(&entry, &table.metadata, line, &at)?;
            if table.entries.is_empty() && header.batch.is_none() {
                table.batch = entry.batch;
                first_batch_line = line;
            }
            if entry.batch != table.batch {
                let batch = entry.batch;
                let why = match header.batch {
                    Some(b) => format!("batch {batch} contradicts the header's batch {b}"),
                    None => format!("batch {batch} differs from batch {} on line {first_batch_line}: a table holds one batch size", table.batch),
                };
                return Err(at.fail(line, Some("batch"), why));
            }
            if let Some(&earlier) = table.by_spec.get(&entry.spec) {
                return Err(at.fail(
                    line,
                    Some("key"),
                    format!(
                        "'{}' already appears on line {}",
                        entry.spec, table.lines[earlier]
                    ),
                ));
            }
            table.push(entry, line);
        }
        for points in table.curves.values_mut() {
            points.sort_by_key(|&(mid, _)| mid);
        }
        table.set_models(header.width_model, header.curve_fit);
        Ok(table)
    }

    /// The SHA-256 of the table's text as read, in hex: what a search
    /// resumed on it must see again, whatever path names it.
    pub fn content_sha256(&self) -> &str {
        &self.sha256
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

    /// The header's `width_step` (checked to be a positive integer when the
    /// table was read), `None` for a table without the line.
    pub fn width_step(&self) -> Option<u32> {
        self.metadata
            .get(meta::WIDTH_STEP)
            .and_then(positive_integer)
    }

    /// The header's `speed_reference_ms` (checked when the table was
    /// read), `None` for a table without the line.
    pub fn speed_reference_ms(&self) -> Option<f64> {
        self.metadata
            .get(meta::SPEED_REFERENCE_MS)
            .and_then(speed_reference)
    }

    /// The header's speed standard (checked when the table was read): its
    /// time in ms and its blocks; `None` for a table without both lines.
    pub fn speed_standard(&self) -> Option<(f64, Vec<BlockSpec>)> {
        let ms = self
            .metadata
            .get(meta::SPEED_STANDARD_MS)
            .and_then(speed_reference)?;
        let blocks = standard_network(self.metadata.get(meta::SPEED_STANDARD_NETWORK)?).ok()?;
        Some((ms, blocks))
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

    /// Source line of the header line `key`, if the table has one.
    pub fn header_line_of(&self, key: &str) -> Option<u64> {
        self.header_lines.get(key).copied()
    }

    /// Source line of the entry for `spec`, for messages that point back
    /// into the file.
    pub fn line_of(&self, spec: &BlockSpec) -> Option<u64> {
        self.by_spec.get(spec).map(|&i| self.lines[i])
    }
}

/// Names the table in its errors.
struct Locator<'a> {
    origin: &'a str,
}

impl Locator<'_> {
    fn fail(&self, line: u64, column: Option<&str>, message: String) -> SpaceError {
        SpaceError::Table {
            file: self.origin.to_string(),
            line,
            column: column.map(str::to_string),
            message,
        }
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the `# key: value` lines say, each checked where it is read.
struct Header {
    metadata: Metadata,
    batch: Option<u32>,
    boundary_ms: f64,
    /// Line of the `format` line.
    format_line: Option<u64>,
    lines: HashMap<String, u64>,
    width_model: WidthModel,
    curve_fit: CurveFit,
}

impl Header {
    fn read(text: &str, at: &Locator) -> Result<Header> {
        let (metadata, lines) = header_lines(text, at)?;
        let line = |key: &str| lines.get(key).copied().unwrap_or(1);
        check_format(&metadata, line(meta::FORMAT), at)?;
        let batch = match metadata.get(meta::BATCH) {
            Some(b) => Some(positive_integer(b).ok_or_else(|| {
                at.fail(
                    line(meta::BATCH),
                    None,
                    format!("header batch '{b}' is not a positive integer"),
                )
            })?),
            None => None,
        };
        check_kept_as_text(&metadata, &line, at)?;
        let boundary_ms = match metadata.get(meta::BOUNDARY_MS) {
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|b| b.is_finite() && (0.0..=super::MAX_MS).contains(b))
                .ok_or_else(|| {
                    at.fail(
                        line(meta::BOUNDARY_MS),
                        None,
                        format!(
                            "header {} '{v}' is not a non-negative number of milliseconds",
                            meta::BOUNDARY_MS
                        ),
                    )
                })?,
            None => 0.0,
        };
        let width_model = model_line(&metadata, meta::WIDTH_MODEL, WidthModel::parse, &line, at)?;
        let curve_fit = model_line(&metadata, meta::CURVE_FIT, CurveFit::parse, &line, at)?;
        Ok(Header {
            format_line: lines.get(meta::FORMAT).copied(),
            lines,
            metadata,
            batch,
            boundary_ms,
            width_model,
            curve_fit,
        })
    }
}

/// The header line `key` read by `parse` (its default without the line);
/// a value `parse` refuses fails at its line with `parse`'s reason.
fn model_line<T: Default>(
    metadata: &Metadata,
    key: &str,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
    line: &impl Fn(&str) -> u64,
    at: &Locator,
) -> Result<T> {
    match metadata.get(key) {
        Some(v) => parse(v).map_err(|why| at.fail(line(key), None, format!("header {key} {why}"))),
        None => Ok(T::default()),
    }
}

/// The `# key: value` lines of `text` and the line each key first appears
/// on; refuses a key repeated with another value, since either value would
/// be a guess.
fn header_lines(text: &str, at: &Locator) -> Result<(Metadata, HashMap<String, u64>)> {
    let mut metadata = Metadata::new();
    let mut lines: HashMap<String, u64> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let Some((k, v)) = Metadata::parse_line(line) else {
            continue;
        };
        let n = n as u64 + 1;
        if let Some(old) = metadata.get(k).filter(|old| *old != v) {
            return Err(at.fail(
                n,
                None,
                format!("header line '{k}' repeats with another value ('{old}' then '{v}')"),
            ));
        }
        metadata.set(k, v);
        lines.entry(k.to_string()).or_insert(n);
    }
    Ok((metadata, lines))
}

/// Checks the header lines the table keeps only as text (width step, space
/// digest, correction, speed reference): their readers parse them leniently,
/// so a bad one is refused here, at its line (`line` of its key), rather
/// than taken later for an absent one.
fn check_kept_as_text(metadata: &Metadata, line: &dyn Fn(&str) -> u64, at: &Locator) -> Result<()> {
    if let Some(w) = metadata.get(meta::WIDTH_STEP) {
        if positive_integer(w).is_none() {
            return Err(at.fail(
                line(meta::WIDTH_STEP),
                None,
                format!(
                    "header {} '{w}' is not a positive integer",
                    meta::WIDTH_STEP
                ),
            ));
        }
    }
    if let Some(d) = metadata.get(meta::SPACE_DIGEST) {
        if d.len() != 16 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(at.fail(
                line(meta::SPACE_DIGEST),
                None,
                format!(
                    "header {} '{d}' is not a space digest (16 hex digits)",
                    meta::SPACE_DIGEST
                ),
            ));
        }
    }
    if let Some(c) = metadata.get(meta::CORRECTION) {
        if let Err(e) = c.parse::<super::Correction>() {
            return Err(at.fail(
                line(meta::CORRECTION),
                None,
                format!("header correction: {e}"),
            ));
        }
    }
    if let Some(v) = metadata.get(meta::SPEED_REFERENCE_MS) {
        if speed_reference(v).is_none() {
            return Err(at.fail(
                line(meta::SPEED_REFERENCE_MS),
                None,
                format!(
                    "header {} '{v}' is not a positive number of milliseconds",
                    meta::SPEED_REFERENCE_MS
                ),
            ));
        }
    }
    check_standard(metadata, at, line)
}

/// The speed standard's two lines: both or neither, a positive time, and
/// block keys that parse.
fn check_standard(metadata: &Metadata, at: &Locator, line: &dyn Fn(&str) -> u64) -> Result<()> {
    let ms = metadata.get(meta::SPEED_STANDARD_MS);
    let network = metadata.get(meta::SPEED_STANDARD_NETWORK);
    let fail = |key: &str, why: String| Err(at.fail(line(key), None, why));
    match (ms, network) {
        (None, None) => Ok(()),
        // Located at the line that is there.
        (Some(_), None) | (None, Some(_)) => fail(
            if ms.is_some() {
                meta::SPEED_STANDARD_MS
            } else {
                meta::SPEED_STANDARD_NETWORK
            },
            format!(
                "header {} and {} go together: one is missing",
                meta::SPEED_STANDARD_MS,
                meta::SPEED_STANDARD_NETWORK
            ),
        ),
        (Some(v), Some(_)) if speed_reference(v).is_none() => fail(
            meta::SPEED_STANDARD_MS,
            format!(
                "header {} '{v}' is not a positive number of milliseconds",
                meta::SPEED_STANDARD_MS
            ),
        ),
        (Some(_), Some(n)) => match standard_network(n) {
            Ok(_) => Ok(()),
            Err(e) => fail(
                meta::SPEED_STANDARD_NETWORK,
                format!("header {}: {e}", meta::SPEED_STANDARD_NETWORK),
            ),
        },
    }
}

/// The speed standard's blocks from their space-separated keys.
fn standard_network(text: &str) -> std::result::Result<Vec<BlockSpec>, SpaceError> {
    let blocks = text
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<Vec<BlockSpec>, _>>()?;
    if blocks.is_empty() {
        return Err(SpaceError::Key {
            key: String::new(),
            reason: "no block keys".into(),
        });
    }
    Ok(blocks)
}

/// A speed reference: a positive, finite number of milliseconds up to the
/// largest median a table takes.
fn speed_reference(text: &str) -> Option<f64> {
    text.parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0 && *r <= super::MAX_MS)
}

fn positive_integer(text: &str) -> Option<u32> {
    text.parse::<u32>().ok().filter(|&v| v > 0)
}

fn check_format(metadata: &Metadata, line: u64, at: &Locator) -> Result<()> {
    match metadata.get(meta::FORMAT) {
        Some(FORMAT) => Ok(()),
        Some(other) => Err(at.fail(
            line,
            None,
            format!("unsupported table format '{other}' (this build reads '{FORMAT}')"),
        )),
        None => Err(at.fail(
            1,
            None,
            format!(
                "not a latency table: no '# {}: {FORMAT}' header line",
                meta::FORMAT
            ),
        )),
    }
}

/// The text the CSV reader sees: the file without its comment and blank
/// lines, with the file's line of each line it keeps. (The reader's own
/// comment support misses a last comment line with no newline, and it
/// does not count a blank line between two rows, so blanking comments
/// shifted every later row's line.)
struct Body {
    text: String,
    /// The file's line of each line of `text`.
    lines: Vec<u64>,
    /// Line of the column header.
    header_line: u64,
}

impl Body {
    /// The file's line of the reader's 1-based `line`.
    fn file_line(&self, line: u64) -> u64 {
        let i = line.saturating_sub(1) as usize;
        self.lines.get(i).copied().unwrap_or(0)
    }
}

fn csv_body(text: &str) -> Body {
    let mut kept = Vec::new();
    let mut lines = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if !l.trim_start().starts_with('#') && !l.trim().is_empty() {
            kept.push(l);
            lines.push(n as u64 + 1);
        }
    }
    Body {
        text: kept.join("\n"),
        header_line: lines.first().copied().unwrap_or(1),
        lines,
    }
}

fn check_columns(reader: &mut csv::Reader<&[u8]>, line: u64, at: &Locator) -> Result<()> {
    let header = reader
        .headers()
        .map_err(|e| at.fail(line, None, format!("cannot read the column header: {e}")))?;
    let found: Vec<&str> = header.iter().collect();
    if found != COLUMNS {
        return Err(at.fail(
            line,
            None,
            format!(
                "column header must be '{}', found '{}'",
                COLUMNS.join(","),
                found.join(",")
            ),
        ));
    }
    Ok(())
}

/// Refuses a zero latency outside a table whose header has a
/// [`super::BASE_KEY`] line (the official TF-NAS tables fold their fixed
/// parts into one row and hold 0 in the others).
fn check_zero(entry: &Entry, metadata: &Metadata, line: u64, at: &Locator) -> Result<()> {
    if entry.stats.median_ms == 0.0 && metadata.get(super::BASE_KEY).is_none() {
        return Err(at.fail(
            line,
            Some("median_ms"),
            format!(
                "0 ms is no latency (only a table whose header has a '{}' line, which folds its fixed parts into one row, holds zero rows)",
                super::BASE_KEY
            ),
        ));
    }
    Ok(())
}

/// One row, checked field by field; the batch against the table's is the
/// caller's.
fn parse_row(
    record: &csv::StringRecord,
    line: u64,
    boundary_ms: f64,
    at: &Locator,
) -> Result<Entry> {
    if record.len() != COLUMNS.len() {
        let missing = COLUMNS.get(record.len()).copied();
        return Err(at.fail(
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
        .map_err(|e: SpaceError| at.fail(line, Some("key"), e.to_string()))?;
    let batch = positive_integer(field(1)).ok_or_else(|| {
        at.fail(
            line,
            Some("batch"),
            format!("'{}' is not a positive batch size", field(1)),
        )
    })?;
    let number = |i: usize| -> Result<f64> {
        let col = COLUMNS[i];
        field(i)
            .parse::<f64>()
            .map_err(|_| at.fail(line, Some(col), format!("'{}' is not a number", field(i))))
    };
    let (median_ms, p10_ms, p90_ms, ci_low_ms, ci_high_ms) =
        (number(2)?, number(3)?, number(4)?, number(5)?, number(6)?);
    let samples: u64 = field(7).parse().map_err(|_| {
        at.fail(
            line,
            Some("samples"),
            format!("'{}' is not a sample count", field(7)),
        )
    })?;
    let throttled = match field(8) {
        "0" | "false" => false,
        "1" | "true" => true,
        other => return Err(at.fail(line, Some("throttled"), format!("'{other}' is not 0 or 1"))),
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
        .map_err(|(col, msg)| at.fail(line, Some(col), msg))?;
    if boundary_ms > 0.0 && median_ms <= boundary_ms {
        return Err(at.fail(
            line,
            Some("median_ms"),
            format!(
                "{median_ms} ms is not above the header's {} {boundary_ms} ms (what an empty run costs)",
                meta::BOUNDARY_MS
            ),
        ));
    }
    Ok(Entry { spec, batch, stats })
}
