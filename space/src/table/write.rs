//! Writing a table row by row, flushing each, so that a run killed at any
//! moment leaves every finished entry on disk.

use std::io::Write;

use super::metadata::Metadata;
use super::{Entry, COLUMNS};
use crate::error::{Result, SpaceError};

pub struct TableWriter<W: Write> {
    out: csv::Writer<W>,
}

fn write_error(e: impl std::fmt::Display) -> SpaceError {
    SpaceError::Write(e.to_string())
}

impl<W: Write> TableWriter<W> {
    /// Starts a new table: the metadata lines, then the column header.
    pub fn new(mut out: W, metadata: &Metadata) -> Result<Self> {
        write_metadata(&mut out, metadata)?;
        let mut writer = Self::append(out);
        writer.out.write_record(COLUMNS).map_err(write_error)?;
        writer.out.flush().map_err(write_error)?;
        Ok(writer)
    }

    /// Continues a table whose header is already written (resuming a run).
    pub fn append(out: W) -> Self {
        TableWriter {
            out: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(out),
        }
    }

    pub fn write(&mut self, entry: &Entry) -> Result<()> {
        let s = &entry.stats;
        // Refuse here what the reader would refuse, so no bad row lands.
        s.check()
            .map_err(|(col, msg)| write_error(format!("{}: {col}: {msg}", entry.spec)))?;
        self.out
            .write_record([
                entry.spec.key(),
                entry.batch.to_string(),
                s.median_ms.to_string(),
                s.p10_ms.to_string(),
                s.p90_ms.to_string(),
                s.ci_low_ms.to_string(),
                s.ci_high_ms.to_string(),
                s.samples.to_string(),
                u8::from(s.throttled).to_string(),
            ])
            .map_err(write_error)?;
        self.out.flush().map_err(write_error)
    }

    /// Appends trailing metadata (such as the end time) and returns the sink.
    pub fn finish(mut self, trailing: &Metadata) -> Result<W> {
        self.out.flush().map_err(write_error)?;
        let mut out = self.out.into_inner().map_err(write_error)?;
        write_metadata(&mut out, trailing)?;
        Ok(out)
    }
}

fn write_metadata(out: &mut impl Write, metadata: &Metadata) -> Result<()> {
    for (k, v) in metadata.iter() {
        writeln!(out, "# {k}: {v}").map_err(write_error)?;
    }
    out.flush().map_err(write_error)
}
