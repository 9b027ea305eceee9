//! How a long build reports progress: the binary draws a bar, tests and
//! other callers may log or stay silent.

/// A sink for the build's progress and its log lines.
pub trait Progress {
    /// `done` of `len` items are finished before this run times anything.
    fn start(&self, len: u64, done: u64);
    /// The item being timed now.
    fn working_on(&self, item: &str);
    /// One more item finished.
    fn advance(&self);
    /// A line for the log (on stderr, without tearing a bar).
    fn log(&self, msg: &str);
    /// Timing is over (the bar goes).
    fn finish(&self);
}

/// Progress that logs on stderr and draws nothing.
pub struct LogOnly;

impl Progress for LogOnly {
    fn start(&self, _len: u64, _done: u64) {}
    fn working_on(&self, _item: &str) {}
    fn advance(&self) {}
    fn log(&self, msg: &str) {
        eprintln!("{msg}");
    }
    fn finish(&self) {}
}
