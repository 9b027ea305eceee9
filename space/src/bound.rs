//! The allowed range of a number flag, and its refusal in the one wording
//! every binary of the project uses: `--passes must be a number in [1,
//! 100], got 0`. A number is refused where it is parsed, with the flag and
//! the range in the message (the searcher's hyper-parameters, the
//! profiler's flags).

use std::fmt::Display;
use std::str::FromStr;

/// A number type a flag may hold.
pub trait Number: Copy + PartialOrd + Display + FromStr + Send + Sync + 'static {
    fn is_finite_number(self) -> bool;
}

impl Number for f64 {
    fn is_finite_number(self) -> bool {
        self.is_finite()
    }
}

impl Number for f32 {
    fn is_finite_number(self) -> bool {
        self.is_finite()
    }
}

macro_rules! integer_number {
    ($($t:ty),*) => {$(
        impl Number for $t {
            fn is_finite_number(self) -> bool {
                true
            }
        }
    )*};
}
integer_number!(usize, u32, u64);

/// The allowed range of one flag, open or closed at either end.
#[derive(Clone, Copy, Debug)]
pub struct Bound<T> {
    pub flag: &'static str,
    pub min: T,
    pub max: T,
    pub min_open: bool,
    pub max_open: bool,
}

impl<T: Number> Bound<T> {
    /// `[min, max]`.
    pub const fn closed(flag: &'static str, min: T, max: T) -> Self {
        Bound {
            flag,
            min,
            max,
            min_open: false,
            max_open: false,
        }
    }

    /// `(min, max]`.
    pub const fn above(flag: &'static str, min: T, max: T) -> Self {
        Bound {
            flag,
            min,
            max,
            min_open: true,
            max_open: false,
        }
    }

    /// `[min, max)`.
    pub const fn below(flag: &'static str, min: T, max: T) -> Self {
        Bound {
            flag,
            min,
            max,
            min_open: false,
            max_open: true,
        }
    }

    fn contains(&self, v: T) -> bool {
        let low = if self.min_open {
            v > self.min
        } else {
            v >= self.min
        };
        let high = if self.max_open {
            v < self.max
        } else {
            v <= self.max
        };
        v.is_finite_number() && low && high
    }

    /// The range as `(0, 10]`.
    pub fn range(&self) -> String {
        format!(
            "{}{}, {}{}",
            if self.min_open { '(' } else { '[' },
            self.min,
            self.max,
            if self.max_open { ')' } else { ']' }
        )
    }

    /// `v` if it lies in the range, else the message naming the flag.
    pub fn check(&self, v: T) -> Result<T, String> {
        if self.contains(v) {
            Ok(v)
        } else {
            Err(format!(
                "{} must be a number in {}, got {v}",
                self.flag,
                self.range()
            ))
        }
    }

    pub fn parse(&self, text: &str) -> Result<T, String> {
        let v = text.trim().parse::<T>().map_err(|_| {
            format!(
                "'{text}' is not a number ({} must lie in {})",
                self.flag,
                self.range()
            )
        })?;
        self.check(v)
    }

    /// A clap value parser for the flag.
    pub fn parser(self) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
        move |text: &str| self.parse(text)
    }
}
