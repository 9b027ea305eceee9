//! What a resumable output file needs, shared by the table build and
//! `profiler validate`: both write a `# key: value` header and then one
//! flushed CSV row per finished item, so a kill leaves at most a truncated
//! last line; a rerun cuts that line, checks that the settings in the file's
//! header match its own, and appends.

use std::path::Path;

use space::Metadata;

use crate::error::{ProfilerError, Result};

/// Refuses, before any engine work, an output file whose folder does not
/// exist (`flag` names the option), and one that exists but is not a
/// regular file (a device, FIFO or socket, which a resume would read
/// without end or wait on): a table build or a validation may time for a
/// while before its first write, and must not fail only then.
pub fn check_out_folder(flag: &str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            return Err(ProfilerError::Invalid(format!(
                "{flag} {}: not a regular file (a folder, device, FIFO or socket); the output must be a file, which a rerun resumes",
                path.display()
            )));
        }
    }
    if dir.is_dir() {
        Ok(())
    } else {
        Err(ProfilerError::Invalid(format!(
            "{flag} {}: the folder {} does not exist",
            path.display(),
            dir.display()
        )))
    }
}

/// The key of a `# key: value` header line; `None` for rows and remarks.
pub fn header_key(line: &str) -> Option<&str> {
    Metadata::parse_line(line).map(|(key, _)| key)
}

/// The value of a `# key: value` line (empty when there is none).
pub fn header_value(line: &str) -> &str {
    Metadata::parse_line(line).map_or("", |(_, value)| value)
}

/// Splits `text` into its complete lines and the truncated last line a kill
/// mid-write leaves (a line without its newline), if there is one.
pub fn cut_truncated_line(text: &str) -> (&str, Option<&str>) {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let rest = &text[complete.len()..];
    (complete, (!rest.is_empty()).then_some(rest))
}

/// One `key: file has 'x', this run 'y'` per key of `keys` whose values
/// differ between the file's header and this run's.
pub fn settings_diffs(keys: &[&str], file: &Metadata, run: &Metadata) -> Vec<String> {
    keys.iter()
        .filter_map(|&k| {
            let (old, new) = (file.get(k), run.get(k));
            (old != new).then(|| {
                format!(
                    "{k}: file has '{}', this run '{}'",
                    old.unwrap_or("(none)"),
                    new.unwrap_or("(none)")
                )
            })
        })
        .collect()
}

/// Replaces `path` with `text` atomically (write aside, then rename), so
/// that a kill during a resume leaves either file whole.
pub fn replace_file(path: &Path, text: &str) -> Result<()> {
    Ok(space::io::write_atomic(path, text.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_and_truncation() {
        assert_eq!(header_key("# batch: 32"), Some("batch"));
        assert_eq!(header_value("# batch: 32"), "32");
        assert_eq!(header_key("# resumed 2026-11-27T10:00:00Z"), None);
        assert_eq!(header_key("key,batch"), None);
        assert_eq!(cut_truncated_line("a\nb\n"), ("a\nb\n", None));
        assert_eq!(cut_truncated_line("a\nb,1"), ("a\n", Some("b,1")));
        assert_eq!(cut_truncated_line("b,1"), ("", Some("b,1")));
    }

    #[test]
    fn differences_name_the_key_and_both_values() {
        let mut file = Metadata::new();
        file.set("batch", 32).set("launch", "graph");
        let mut run = Metadata::new();
        run.set("batch", 8).set("launch", "graph").set("l2", "cold");
        assert_eq!(
            settings_diffs(&["batch", "launch", "l2"], &file, &run),
            [
                "batch: file has '32', this run '8'",
                "l2: file has '(none)', this run 'cold'"
            ]
        );
    }
}
