//! Resumable output files, shared by the table build and the validation
//! rows: `# key: value` header lines, the truncated last line a kill
//! leaves, settings compared on resume, atomic replacement, and the
//! timestamps of the `started`/`finished` lines.

pub mod resume;
pub mod timestamp;

/// The command line as typed, for the header of a table or rows file; an
/// argument that is not UTF-8 (a file name in another encoding) is written
/// with its bytes replaced, never a panic.
pub fn command_line() -> String {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
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
