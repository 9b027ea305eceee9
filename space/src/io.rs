//! The one way both programs write a result file.
//!
//! A table can cost hours of GPU time and a search days, so a result is
//! never written in place: [`AtomicFile`] writes a temporary file unique to
//! the process in the output's own folder (so the final rename never crosses
//! a file system), syncs it, and renames it over the output; a failure or a
//! panic before [`AtomicFile::commit`] removes the temporary file. Before any
//! work starts, [`check_output`] refuses an output whose folder is missing or
//! read-only, an output that is a folder, and an output that is also one of
//! the inputs; [`OutputLock`] keeps two runs from writing the same output.
//!
//! A temporary file is named `.NAME.PID.RANDOM.tmp` (`.tmp.EXT` where the
//! output has an extension), so that a writer killed before it could remove
//! its own is recognisable: [`OutputLock::acquire`] removes those of its
//! output whose process is gone ([`remove_stale_temporaries`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, SpaceError};

fn fail(path: &Path, message: impl ToString) -> SpaceError {
    SpaceError::Output {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// The folder a file path lives in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Whether two paths name the same file: by device and inode where both
/// exist (so a hard link or another spelling is caught), else by their
/// canonical paths.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    // A file that does not exist yet: compare where it would be.
    let canonical = |p: &Path| -> Option<PathBuf> {
        let name = p.file_name()?;
        Some(std::fs::canonicalize(folder_of(p)).ok()?.join(name))
    };
    match (canonical(a), canonical(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Checks, before any work, that `output` can be written and is none of
/// `inputs` (`(what, path)` pairs named in the message): its folder exists
/// and takes a new file, and the output is not a folder.
pub fn check_output(output: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    if output.as_os_str().is_empty() || output.file_name().is_none() {
        return Err(fail(output, "not a file name"));
    }
    if output.is_dir() {
        return Err(fail(output, "is a folder, not a file"));
    }
    not_special(output)?;
    for (what, input) in inputs {
        if same_file(output, input) {
            return Err(fail(
                output,
                format!(
                    "is also the {what} ({}): writing it would destroy an input; choose another output path",
                    input.display()
                ),
            ));
        }
    }
    let folder = folder_of(output);
    if !folder.is_dir() {
        return Err(fail(
            output,
            format!("its folder {} does not exist", folder.display()),
        ));
    }
    // The only reliable test of a writable folder is writing into it; the
    // probe is removed when it drops.
    temp_in(output).map(drop)
}

/// Refuses an output that exists and is neither a regular file nor a link:
/// a device, FIFO or socket would be replaced by a regular file (`/dev/null`
/// gone, as root), or block a reader.
pub fn not_special(output: &Path) -> Result<()> {
    match std::fs::symlink_metadata(output) {
        Ok(m) if !m.is_file() && !m.file_type().is_symlink() && !m.is_dir() => Err(fail(
            output,
            "is not a regular file (a device, FIFO or socket); write results to a file",
        )),
        _ => Ok(()),
    }
}

/// The parts around the pid and the random letters in the name of an
/// output's temporary files: `(".NAME.", ".tmp[.EXT]")`.
fn temp_name_parts(output: &Path) -> (String, String) {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The output's extension stays last: some writers (PNG plots) choose
    // their format by it.
    let suffix = match output.extension() {
        Some(ext) => format!(".tmp.{}", ext.to_string_lossy()),
        None => ".tmp".to_string(),
    };
    (format!(".{name}."), suffix)
}

fn temp_in(output: &Path) -> Result<tempfile::NamedTempFile> {
    let (prefix, suffix) = temp_name_parts(output);
    let mut builder = tempfile::Builder::new();
    // tempfile's own 0600 would leave results unreadable to the group.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    builder
        .prefix(&format!("{prefix}{}.", std::process::id()))
        .suffix(&suffix)
        .tempfile_in(folder_of(output))
        .map_err(|e| {
            fail(
                output,
                format!(
                    "cannot create a file in {}: {e}",
                    folder_of(output).display()
                ),
            )
        })
}

/// The pid in `file_name` if it is one of `output`'s temporary files,
/// `.NAME.PID.RANDOM.tmp[.EXT]` with RANDOM letters and digits only.
fn temp_writer(output: &Path, file_name: &str) -> Option<u32> {
    let (prefix, suffix) = temp_name_parts(output);
    let middle = file_name.strip_prefix(&prefix)?.strip_suffix(&suffix)?;
    let (pid, random) = middle.split_once('.')?;
    let alphanumeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !alphanumeric(random) || !pid.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` is running, where this system says (Linux's
/// `/proc`); `None` elsewhere. A pid reused since is taken as running, so
/// a doubt keeps the file.
fn process_alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes the temporary files of `output` whose writer is gone: a run
/// killed while writing (a checkpoint can be hundreds of MB) cannot remove
/// its own. A file whose process still runs is kept (it may be writing
/// now), and so is every file where processes cannot be looked up. Returns
/// each removed file with its size in bytes; a file that cannot be removed
/// is left, as it does no harm to this run.
pub fn remove_stale_temporaries(output: &Path) -> Vec<(PathBuf, u64)> {
    let folder = folder_of(output);
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| temp_writer(output, n)) else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_file()
            && process_alive(pid) == Some(false)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed.push((folder.join(&name), meta.len()));
        }
    }
    removed.sort();
    removed
}

/// A result being written: a temporary file beside the output, renamed over
/// it by [`commit`](Self::commit) and removed if dropped before.
pub struct AtomicFile {
    output: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl AtomicFile {
    pub fn new(output: &Path) -> Result<Self> {
        Ok(AtomicFile {
            output: output.to_path_buf(),
            temp: temp_in(output)?,
        })
    }

    /// The temporary file's path, for writers that take a path (plots,
    /// tensors); whatever they write there is what [`commit`](Self::commit)
    /// publishes.
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Syncs the temporary file and renames it over the output, so a crash
    /// leaves either the old output or the whole new one.
    pub fn commit(self) -> Result<()> {
        let output = self.output;
        // Checked again at the rename: the path may have become a device
        // node or FIFO since the run's start.
        not_special(&output)?;
        // Reopened by path: a writer given `temp_path` may have replaced
        // the file rather than written into the open handle.
        File::open(self.temp.path())
            .and_then(|f| f.sync_all())
            .map_err(|e| fail(&output, format!("cannot sync: {e}")))?;
        self.temp
            .persist(&output)
            .map_err(|e| fail(&output, format!("cannot move into place: {}", e.error)))?;
        Ok(())
    }
}

/// Writes `bytes` to `path` through an [`AtomicFile`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::new(path)?;
    file.file()
        .write_all(bytes)
        .map_err(|e| fail(path, format!("cannot write: {e}")))?;
    file.commit()
}

/// An exclusive lock on an output, held until dropped: a second run that
/// asks for the same output is refused at once rather than sharing it.
///
/// The lock is an advisory `flock` on a hidden `.<name>.lock` file beside
/// the output, removed when the lock drops (a killed run leaves the file,
/// but the kernel releases its lock, so the next run takes it). Taking it
/// removes the temporary files a killed writer of the output left
/// ([`remove_stale_temporaries`]); [`removed`](Self::removed) lists them.
pub struct OutputLock {
    path: PathBuf,
    _file: File,
    removed: Vec<(PathBuf, u64)>,
}

impl OutputLock {
    pub fn acquire(output: &Path) -> Result<Self> {
        let name = output
            .file_name()
            .ok_or_else(|| fail(output, "not a file name"))?;
        let path = folder_of(output).join(format!(".{}.lock", name.to_string_lossy()));
        // A run that removes the lock file between our open and our lock
        // leaves us holding a lock on a file nobody else can find: retry
        // until the locked file is the one under the name.
        for _ in 0..10 {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| fail(output, format!("cannot create its lock file: {e}")))?;
            try_lock(&file).map_err(|_| {
                fail(
                    output,
                    "another run is writing it (its lock is held); wait for it or choose another output",
                )
            })?;
            if still_named(&file, &path) {
                let removed = remove_stale_temporaries(output);
                return Ok(OutputLock {
                    path,
                    _file: file,
                    removed,
                });
            }
        }
        Err(fail(output, "its lock file keeps being replaced"))
    }

    /// The stale temporary files taking the lock removed, with their sizes.
    pub fn removed(&self) -> &[(PathBuf, u64)] {
        &self.removed
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still held, so no other run can lock the old file.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_named(_file: &File, _path: &Path) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_written_file_replaces_the_output_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("table.csv");
        std::fs::write(&out, "old").unwrap();
        write_atomic(&out, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "new");
        assert_eq!(names(dir.path()), ["table.csv"]);
    }

    #[test]
    fn a_dropped_file_leaves_the_output_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("plot.png");
        std::fs::write(&out, "old").unwrap();
        let mut f = AtomicFile::new(&out).unwrap();
        assert!(f.temp_path().to_string_lossy().ends_with(".png"));
        f.file().write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "old");
        assert_eq!(names(dir.path()), ["plot.png"]);
    }

    #[test]
    fn two_writers_of_one_output_get_their_own_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("arch.json");
        let a = AtomicFile::new(&out).unwrap();
        let b = AtomicFile::new(&out).unwrap();
        assert_ne!(a.temp_path(), b.temp_path());
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_by_any_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("t.csv");
        std::fs::write(&table, "x").unwrap();
        let other_spelling = dir.path().join(".").join("t.csv");
        let e = check_output(&other_spelling, &[("table", &table)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is also the table"), "{e}");
        let link = dir.path().join("link.csv");
        std::fs::hard_link(&table, &link).unwrap();
        assert!(check_output(&link, &[("table", &table)]).is_err());
        // Not yet existing on either side: compared by where they would be.
        let a = dir.path().join("x.ckpt");
        let b = dir.path().join("sub/../x.ckpt");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(same_file(&a, &b));
        check_output(&dir.path().join("new.json"), &[("table", &table)]).unwrap();
        assert_eq!(names(dir.path()), ["link.csv", "sub", "t.csv"]);
    }

    #[test]
    fn a_missing_folder_or_a_folder_as_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_output(&dir.path().join("no/such/arch.json"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = check_output(dir.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("folder"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn an_output_that_is_a_fifo_is_refused_and_never_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("arch.json");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let e = check_output(&fifo, &[]).unwrap_err().to_string();
        assert!(e.contains("is not a regular file"), "{e}");
        let e = write_atomic(&fifo, b"{}").unwrap_err().to_string();
        assert!(e.contains("is not a regular file"), "{e}");
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn a_held_lock_refuses_a_second_and_is_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("arch.json");
        let first = OutputLock::acquire(&out).unwrap();
        let e = OutputLock::acquire(&out).err().unwrap().to_string();
        assert!(e.contains("another run"), "{e}");
        drop(first);
        assert!(names(dir.path()).is_empty());
        let _again = OutputLock::acquire(&out).unwrap();
    }

    /// The pid of a process that has ended.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn taking_the_lock_removes_a_dead_writers_temporary_and_keeps_a_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("arch.ckpt");
        let dead = format!(".arch.ckpt.{}.a1B2c3.tmp.ckpt", dead_pid());
        let live = format!(".arch.ckpt.{}.x9Y8z7.tmp.ckpt", std::process::id());
        // Not a temporary file of this output, whatever its pid.
        let other = format!(".arch.ckpt.{}.notes.txt", dead_pid());
        let another_output = format!(".arch.json.{}.a1B2c3.tmp.json", dead_pid());
        for name in [&dead, &live, &other, &another_output] {
            std::fs::write(dir.path().join(name), "half").unwrap();
        }
        let lock = OutputLock::acquire(&out).unwrap();
        if Path::new("/proc/self").exists() {
            assert_eq!(lock.removed(), [(dir.path().join(&dead), 4)]);
            let mut kept = vec![".arch.ckpt.lock".to_string(), live, other, another_output];
            kept.sort();
            assert_eq!(names(dir.path()), kept);
        } else {
            assert!(lock.removed().is_empty());
        }
    }

    #[test]
    fn a_temporary_files_name_gives_its_writer() {
        let out = Path::new("dir/arch.json");
        let f = AtomicFile::new(&std::env::temp_dir().join("arch.json")).unwrap();
        let name = f.temp_path().file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_writer(out, name), Some(std::process::id()));
        for name in [
            ".arch.json.12..tmp.json",
            ".arch.json.x1.abc.tmp.json",
            ".arch.json.12.a.b.tmp.json",
            "arch.json.12.abc.tmp.json",
            ".arch.json.12.abc.tmp",
        ] {
            assert_eq!(temp_writer(out, name), None, "{name}");
        }
        assert_eq!(temp_writer(Path::new("t"), ".t.7.Ab1.tmp"), Some(7));
    }
}
