//! Resumable output files, shared by the table build and the validation
//! rows: `# key: value` header lines, the truncated last line a kill
//! leaves, settings compared on resume, atomic replacement, and the
//! timestamps of the `started`/`finished` lines.

pub mod resume;
pub mod timestamp;
