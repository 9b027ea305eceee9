//! Resumable output files, shared by the table build and the validation
//! rows: `# key: value` header lines, the truncated last line a kill
//! leaves, settings compared on resume, atomic replacement, and the
//! timestamps of the `started`/`finished` lines.

pub mod resume;
pub mod timestamp;

/// The command line as typed, for the header of a table or rows file.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.contains([' ', '\t']) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
