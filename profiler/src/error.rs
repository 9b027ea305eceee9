//! The profiler library's one error type. Every variant reads as a complete
//! sentence for the user and names the block where there is one, because the
//! binary prints it as `error: ...` and exits with status 2.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProfilerError {
    #[error("no CUDA driver: {reason} (this machine cannot time anything; run the profiler on a machine with an NVIDIA GPU and driver)")]
    NoDriver { reason: String },

    #[error("no CUDA device: the driver reports none")]
    NoDevice,

    #[error("no CUDA device {index}: this machine has {count} (valid: 0..={max})", max = count.saturating_sub(1))]
    BadDeviceIndex { index: usize, count: usize },

    #[error("out of GPU memory while preparing {block}")]
    OutOfMemory { block: String },

    #[error("a kernel for {block} failed to compile:\n{log}")]
    KernelCompile { block: String, log: String },

    #[error("CUDA failed in {block}: {msg}")]
    Cuda { block: String, msg: String },

    #[error("cuDNN failed in {block}: {msg}")]
    Cudnn { block: String, msg: String },

    #[error("{block}: a timed run returned {value} ms, not a positive finite latency")]
    BadSample { block: String, value: f64 },

    #[error("{what} is not supported by the {engine} engine yet")]
    Unsupported { engine: String, what: String },

    // The cause is in the message, not a `#[source]`, as in `SpaceError`.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{path}: refusing to append: the file was built with other settings ({diffs}); use another --out file or the same settings")]
    SettingsDiffer { path: String, diffs: String },

    /// `validate` times with the table's own settings; a flag that says
    /// otherwise would measure something the table never predicted.
    #[error("{table}: the flags disagree with the table's header ({diffs}); a validation runs the table's own settings: drop these flags, or validate a table built with them")]
    FlagsDisagreeWithTable { table: String, diffs: String },

    #[error(
        "{table}: the header does not say {keys}; pass {flags} to state how the table was measured"
    )]
    TableLacksSettings {
        table: String,
        keys: String,
        flags: String,
    },

    #[error("{path}: cannot resume: {reason}")]
    CannotResume { path: String, reason: String },

    #[error(transparent)]
    Space(#[from] space::SpaceError),

    #[error("{block}: its median {median} ms is not above the boundary of {table}, {boundary} ms, which is what a run of no work costs: the boundary was mismeasured; the row was not written (delete the `# boundary_ms` line of {table} to go on pricing blocks at their medians, or start a new table)")]
    BelowBoundary {
        block: String,
        median: f64,
        boundary: f64,
        table: String,
    },

    #[error("{0}")]
    Invalid(String),

    #[error("writing the table: {0}")]
    Output(String),

    /// What was being done when `cause` failed; printed as `context: cause`
    /// by the binary (which walks the sources), as anyhow's context was.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        cause: Box<ProfilerError>,
    },

    // Errors of other crates, as they read; `Context` says where.
    #[error(transparent)]
    Os(#[from] std::io::Error),

    #[error(transparent)]
    Float(#[from] std::num::ParseFloatError),

    #[error(transparent)]
    Int(#[from] std::num::ParseIntError),

    #[error(transparent)]
    Csv(#[from] csv::Error),
}

pub type Result<T, E = ProfilerError> = std::result::Result<T, E>;

impl ProfilerError {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        ProfilerError::Io {
            path: path.into(),
            error,
        }
    }
}

impl ProfilerError {
    /// The message with every cause after it, `a: b: c`, as the binary
    /// prints it (for messages that quote another error).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cause = e.source();
        }
        out
    }
}

/// Adds what was being done to an error, instead of a `map_err` closure per
/// call: `std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))`.
pub trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<ProfilerError>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| ProfilerError::Context {
            context: context.into(),
            cause: Box::new(e.into()),
        })
    }

    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| ProfilerError::Context {
            context: context().into(),
            cause: Box::new(e.into()),
        })
    }
}

/// Returns early with [`ProfilerError::Invalid`] and a formatted message.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::ProfilerError::Invalid(format!($($arg)*)))
    };
}

/// [`bail!`] unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        let holds: bool = $cond;
        if !holds {
            $crate::error::bail!($($arg)*);
        }
    };
}

pub(crate) use {bail, ensure};
