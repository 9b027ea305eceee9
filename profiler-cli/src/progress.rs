//! The table build's progress bar on stderr; without a terminal, a line
//! every 100 entries instead.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use profiler::table::progress::Progress;

pub struct Bar {
    bar: ProgressBar,
    /// No terminal: the bar draws nothing, so log a line now and then.
    plain: bool,
    len: Cell<u64>,
    done: Cell<u64>,
    measured: Cell<u64>,
    start: Cell<Option<Instant>>,
}

impl Bar {
    pub fn new() -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let terminal = std::io::stderr().is_terminal();
        if terminal {
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
        }
        Bar {
            bar,
            plain: !terminal,
            len: Cell::new(0),
            done: Cell::new(0),
            measured: Cell::new(0),
            start: Cell::new(None),
        }
    }
}

impl Progress for Bar {
    fn start(&self, len: u64, done: u64) {
        self.bar.set_length(len);
        self.bar.set_position(done);
        self.len.set(len);
        self.done.set(done);
        self.start.set(Some(Instant::now()));
    }

    fn working_on(&self, item: &str) {
        self.bar.set_message(item.to_string());
    }

    fn advance(&self) {
        self.bar.inc(1);
        let measured = self.measured.get() + 1;
        self.measured.set(measured);
        if self.plain && measured % 100 == 0 {
            let seconds = self.start.get().map_or(0.0, |s| s.elapsed().as_secs_f64());
            self.log(&format!(
                "{}/{} entries, {:.1} entries/s",
                self.done.get() + measured,
                self.len.get(),
                measured as f64 / seconds
            ));
        }
    }

    /// Logs a line on stderr without tearing the progress bar.
    fn log(&self, msg: &str) {
        self.bar.suspend(|| eprintln!("{msg}"));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}
