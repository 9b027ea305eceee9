//! A per-network correction of a table's sum of blocks, stored in the
//! header as `# correction: linear a=1.0213 b=-0.0412`.
//!
//! A sum of separately timed blocks misses what only a whole network has
//! (one launch instead of many, caches shared across blocks), which shows
//! as a near-constant offset or a slope in `profiler validate`.
//! `profiler fit` estimates `measured ≈ a · predicted + b` from validation
//! rows and writes it here; [`LatencyTable::corrected_total`] applies it.
//! It corrects whole-network totals only, never single entries, because it
//! was fitted on whole networks.

use std::fmt;
use std::str::FromStr;

use super::read::LatencyTable;

/// `measured ≈ a · predicted + b`, in ms; a constant offset is `a = 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Correction {
    pub a: f64,
    pub b: f64,
}

impl Correction {
    /// The corrected network latency for a sum of blocks `ms`.
    pub fn apply(&self, ms: f64) -> f64 {
        self.a * ms + self.b
    }

    /// The sum of blocks whose corrected latency is `ms` (`a > 0`, so the
    /// correction keeps order): how the searcher aims at a measured target
    /// in the table's own terms.
    pub fn invert(&self, ms: f64) -> f64 {
        (ms - self.b) / self.a
    }
}

/// The only form written and read: `linear a=<f64> b=<f64>`, with `a`
/// positive (a correction that reverses the order of networks is a fit
/// gone wrong, not a correction) and both finite.
impl fmt::Display for Correction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linear a={} b={}", self.a, self.b)
    }
}

/// The bounds of a correction's slope and offset (see [`Correction`]'s
/// parser).
pub const MIN_SLOPE: f64 = 0.1;
pub const MAX_SLOPE: f64 = 10.0;
pub const MAX_OFFSET_MS: f64 = 1e4;

impl FromStr for Correction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not 'linear a=<number> b=<number>'");
        let mut words = s.split_whitespace();
        if words.next() != Some("linear") {
            return Err(bad());
        }
        let mut value = |name: &str| -> Result<f64, String> {
            words
                .next()
                .and_then(|w| w.strip_prefix(name))
                .and_then(|w| w.strip_prefix('='))
                .and_then(|w| w.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(bad)
        };
        let (a, b) = (value("a")?, value("b")?);
        if words.next().is_some() {
            return Err(bad());
        }
        // A correction adjusts a table by percent, not by orders of
        // magnitude: a slope outside [0.1, 10] or an offset beyond ±1e4 ms
        // is a corrupt or mistyped line.
        if !(MIN_SLOPE..=MAX_SLOPE).contains(&a) {
            return Err(format!(
                "'{s}': the slope a must be a number in [{MIN_SLOPE}, {MAX_SLOPE}], got {a}"
            ));
        }
        if b.abs() > MAX_OFFSET_MS {
            return Err(format!(
                "'{s}': the offset b must be a number in [-{MAX_OFFSET_MS:e}, {MAX_OFFSET_MS:e}] ms, got {b}"
            ));
        }
        Ok(Correction { a, b })
    }
}

impl LatencyTable {
    /// The header's correction, if it has one (checked when the table was
    /// read, so a malformed line never gets this far).
    pub fn correction(&self) -> Option<Correction> {
        self.metadata()
            .get(super::meta::CORRECTION)
            .and_then(|v| v.parse().ok())
    }

    /// A network total (as [`LatencyTable::predict`] sums it) with the
    /// header's correction applied; `ms` unchanged without one.
    pub fn corrected_total(&self, ms: f64) -> f64 {
        self.correction().map_or(ms, |c| c.apply(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_round_trips_and_bad_lines_are_refused() {
        let c = Correction { a: 1.05, b: -0.25 };
        assert_eq!(c.to_string(), "linear a=1.05 b=-0.25");
        assert_eq!(c.to_string().parse::<Correction>(), Ok(c));
        assert_eq!(c.apply(10.0), 10.25);
        for bad in [
            "",
            "offset b=1",
            "linear a=1",
            "linear b=1 a=1",
            "linear a=x b=1",
            "linear a=1 b=inf",
            "linear a=1 b=1 c=2",
        ] {
            assert!(bad.parse::<Correction>().is_err(), "{bad}");
        }
        let e = "linear a=-1 b=0".parse::<Correction>().unwrap_err();
        assert!(e.contains("the slope a must be a number in"), "{e}");
    }

    const TABLE: &str = "# format: tfnas-latency-table/1\n# batch: 32\n\
        key,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\n";

    #[test]
    fn a_table_applies_its_correction_and_refuses_a_bad_one() {
        let plain = LatencyTable::parse(TABLE, "t").unwrap();
        assert_eq!(plain.correction(), None);
        assert_eq!(plain.corrected_total(4.0), 4.0);
        let c = Correction { a: 1.25, b: -0.5 };
        for ms in [0.5, 4.0, 17.0] {
            assert!((c.invert(c.apply(ms)) - ms).abs() < 1e-12);
        }
        let text = TABLE.replace("# batch", "# correction: linear a=0.5 b=1\n# batch");
        let t = LatencyTable::parse(&text, "t").unwrap();
        assert_eq!(t.corrected_total(4.0), 3.0);
        let text = TABLE.replace("# batch", "# correction: linear a=0.5\n# batch");
        let e = LatencyTable::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("t:2") && e.contains("correction"), "{e}");
    }
}
