//! How long the GPU spins before each timed graph replay, so that the CPU
//! has enqueued the start event, the replay and the end event before the
//! GPU reaches them: the timed interval is then the GPU's alone.
//!
//! The spin starts longer than the CPU normally needs. When the start event
//! has already passed once the CPU is done enqueuing (the GPU may then have
//! idled inside the interval, waiting for the replay), it doubles, up to
//! [`SPIN_NS_MAX`]; after [`SHRINK_AFTER`] runs in a row on time it halves
//! again, down to [`SPIN_NS`], so that a passing stall (the OS, a progress
//! bar redraw) does not charge every later run, and every later candidate
//! interval, the longer spin for the rest of a table build.

/// The spin at first and at least, in nanoseconds.
pub(super) const SPIN_NS: i64 = 50_000;
/// The longest spin.
pub(super) const SPIN_NS_MAX: i64 = 1_000_000;
/// On-time runs in a row after which a longer spin halves.
pub(super) const SHRINK_AFTER: u32 = 256;

/// The current spin, adapted to how fast the CPU enqueues.
#[derive(Debug)]
pub(super) struct Spin {
    ns: i64,
    on_time: u32,
}

impl Spin {
    pub(super) fn new() -> Self {
        Spin {
            ns: SPIN_NS,
            on_time: 0,
        }
    }

    pub(super) fn ns(&self) -> i64 {
        self.ns
    }

    /// Notes whether the run just timed started late.
    pub(super) fn after_run(&mut self, late: bool) {
        if late {
            self.ns = (self.ns * 2).min(SPIN_NS_MAX);
            self.on_time = 0;
            return;
        }
        self.on_time += 1;
        if self.on_time >= SHRINK_AFTER && self.ns > SPIN_NS {
            self.ns = (self.ns / 2).max(SPIN_NS);
            self.on_time = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spin_doubles_when_late_and_shrinks_back_when_on_time() {
        let mut s = Spin::new();
        // On time at the shortest spin: stays.
        for _ in 0..1000 {
            s.after_run(false);
        }
        assert_eq!(s.ns(), SPIN_NS);
        // Late runs double it, up to the bound.
        s.after_run(true);
        assert_eq!(s.ns(), 2 * SPIN_NS);
        for _ in 0..10 {
            s.after_run(true);
        }
        assert_eq!(s.ns(), SPIN_NS_MAX);
        // One late run among on-time ones restarts the count.
        for _ in 0..SHRINK_AFTER - 1 {
            s.after_run(false);
        }
        s.after_run(true);
        assert_eq!(s.ns(), SPIN_NS_MAX);
        for _ in 0..SHRINK_AFTER - 1 {
            s.after_run(false);
        }
        assert_eq!(s.ns(), SPIN_NS_MAX);
        s.after_run(false);
        assert_eq!(s.ns(), SPIN_NS_MAX / 2);
        // Enough on-time runs bring it back to the shortest, never below.
        for _ in 0..10 * SHRINK_AFTER {
            s.after_run(false);
        }
        assert_eq!(s.ns(), SPIN_NS);
    }
}
