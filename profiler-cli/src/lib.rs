//! The command line every engine binary of the profiler shares, as
//! ripgrep's `grep-cli` is the routines its binaries share: an engine
//! plugs in by implementing [`EngineCli`], and gets the table build,
//! `measure`, `validate` and `verify` with the same flags, printing, refusals
//! and exit status as every other engine.
//!
//! | Module | What it holds |
//! |--------|---------------|
//! | [`engine`] | [`EngineCli`], the plug-in: an engine's settings flags, its defaults, how it opens and describes itself |
//! | [`build`], [`measure`], [`validate`], [`verify`], [`probe`] | one runner per command, generic over the plug-in |
//! | [`command`] | the commands as clap types, and [`main`] for a binary that is an engine and nothing else |
//! | [`flags`] | the flags every command shares (timing, ranges, the space) |
//! | [`progress`] | the table build's progress bar |
//! | [`exit`] | one `error:` line and status 2 for every failure, SIGPIPE restored |
//!
//! The `profiler` binary (`src/bin/profiler/`) is this crate's too: the
//! CUDA engine's plug-in, the commands that need no engine (plan, space,
//! check, predict, fit, compare) and the hand-over of `--device cpu` to
//! `profiler-cpu`. Like the profiler library it links cudarc only, never
//! libtorch (docs/gpu-facts.md, pitfall 1: two cuDNNs in one process fail).

pub mod build;
pub mod command;
pub mod engine;
pub mod exit;
pub mod flags;
pub mod measure;
pub mod probe;
pub mod progress;
pub mod validate;
pub mod verify;

pub use command::{main, Command, EngineCommand};
pub use engine::{Defaults, EngineCli};
