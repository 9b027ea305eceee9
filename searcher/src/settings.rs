//! The search's hyper-parameters, each stated once: its default (the
//! method's, docs/method.md §5), its flag, and the range it must lie in.
//!
//! The binary flattens [`Settings`] into its command line, so a flag's
//! default and range are these; a library caller gets the same ranges from
//! [`Settings::check`]. A number is refused where it is parsed, with the
//! flag and the allowed range in the message, because a NaN learning rate
//! or a negative λ trains for hours on nonsense without a word.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SearchError};

pub use space::bound::{Bound, Number};

// The ranges: wide enough for any sensible experiment, narrow enough to
// catch a typo or a sign error before a run of hours.
pub const TARGET_MS: Bound<f64> = Bound::above("--target-ms", 0.0, 1e6);
pub const EPOCHS: Bound<usize> = Bound::closed("--epochs", 1, 100_000);
/// `searcher land`: how many networks, and their width multiple.
pub const LAND_COUNT: Bound<usize> = Bound::closed("--count", 1, 1000);
pub const LAND_MULTIPLE: Bound<u32> = Bound::closed("--width-multiple", 1, 4096);
pub const WARMUP_EPOCHS: Bound<usize> = Bound::closed("--warmup-epochs", 0, 100_000);
/// Batch norm on batch statistics needs two images.
pub const BATCH_SIZE: Bound<usize> = Bound::closed("--batch-size", 2, 65_536);
pub const WEIGHT_LR: Bound<f64> = Bound::above("--weight-lr", 0.0, 10.0);
pub const WEIGHT_MOMENTUM: Bound<f64> = Bound::below("--weight-momentum", 0.0, 1.0);
pub const WEIGHT_DECAY: Bound<f64> = Bound::below("--weight-decay", 0.0, 1.0);
pub const WEIGHT_CLIP: Bound<f64> = Bound::above("--weight-clip", 0.0, 1e6);
pub const ARCH_LR: Bound<f64> = Bound::above("--arch-lr", 0.0, 10.0);
pub const ARCH_BETA1: Bound<f64> = Bound::below("--arch-beta1", 0.0, 1.0);
pub const ARCH_BETA2: Bound<f64> = Bound::below("--arch-beta2", 0.0, 1.0);
pub const ARCH_WEIGHT_DECAY: Bound<f64> = Bound::below("--arch-weight-decay", 0.0, 1.0);
pub const ARCH_CLIP: Bound<f64> = Bound::above("--arch-clip", 0.0, 1e6);
pub const TEMPERATURE: Bound<f64> = Bound::above("--temperature", 0.0, 1e3);
pub const TEMPERATURE_DECAY: Bound<f64> = Bound::above("--temperature-decay", 0.0, 1.0);
/// A negative λ would reward missing the target.
pub const LAMBDA: Bound<f64> = Bound::closed("--lambda", 0.0, 1e3);
pub const SEED: Bound<u64> = Bound::closed("--seed", 0, u64::MAX);
pub const WIDTH_MULTIPLE: Bound<u32> = Bound::closed("--width-multiple", 1, 1024);

/// The method's settings (docs/method.md §5) with the official example's
/// 15 ms target: the defaults of every flag below.
pub const DEFAULT: Settings = Settings {
    target_ms: 15.0,
    epochs: 90,
    warmup_epochs: 10,
    batch_size: 32,
    weight_lr: 0.025,
    weight_momentum: 0.9,
    weight_decay: 1e-5,
    weight_clip: 5.0,
    arch_lr: 0.01,
    arch_beta1: 0.5,
    arch_beta2: 0.999,
    arch_weight_decay: 5e-4,
    arch_clip: 5.0,
    temperature: 5.0,
    temperature_decay: 0.96,
    lambda: 0.1,
    seed: 2,
    width_multiple: 1,
};

/// Every hyper-parameter of the search; `Default` is [`DEFAULT`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct Settings {
    /// Latency target in milliseconds per batch of the table.
    #[arg(long, default_value_t = DEFAULT.target_ms, value_parser = TARGET_MS.parser())]
    pub target_ms: f64,
    #[arg(long, default_value_t = DEFAULT.epochs, value_parser = EPOCHS.parser())]
    pub epochs: usize,
    /// Weights-only epochs on single sampled paths before architecture steps.
    #[arg(long, default_value_t = DEFAULT.warmup_epochs, value_parser = WARMUP_EPOCHS.parser())]
    pub warmup_epochs: usize,
    /// Batch size of weight and architecture steps.
    #[arg(long, default_value_t = DEFAULT.batch_size, value_parser = BATCH_SIZE.parser())]
    pub batch_size: usize,
    /// SGD learning rate of the weights (cosine over the epochs).
    #[arg(long, default_value_t = DEFAULT.weight_lr, value_parser = WEIGHT_LR.parser())]
    pub weight_lr: f64,
    #[arg(long, default_value_t = DEFAULT.weight_momentum, value_parser = WEIGHT_MOMENTUM.parser())]
    pub weight_momentum: f64,
    #[arg(long, default_value_t = DEFAULT.weight_decay, value_parser = WEIGHT_DECAY.parser())]
    pub weight_decay: f64,
    /// Gradient-norm clip of weight steps.
    #[arg(long, default_value_t = DEFAULT.weight_clip, value_parser = WEIGHT_CLIP.parser())]
    pub weight_clip: f64,
    /// Adam learning rate of α and β.
    #[arg(long, default_value_t = DEFAULT.arch_lr, value_parser = ARCH_LR.parser())]
    pub arch_lr: f64,
    #[arg(long, default_value_t = DEFAULT.arch_beta1, value_parser = ARCH_BETA1.parser())]
    pub arch_beta1: f64,
    #[arg(long, default_value_t = DEFAULT.arch_beta2, value_parser = ARCH_BETA2.parser())]
    pub arch_beta2: f64,
    #[arg(long, default_value_t = DEFAULT.arch_weight_decay, value_parser = ARCH_WEIGHT_DECAY.parser())]
    pub arch_weight_decay: f64,
    #[arg(long, default_value_t = DEFAULT.arch_clip, value_parser = ARCH_CLIP.parser())]
    pub arch_clip: f64,
    /// Initial Gumbel-softmax temperature T.
    #[arg(long, default_value_t = DEFAULT.temperature, value_parser = TEMPERATURE.parser())]
    pub temperature: f64,
    /// Factor on T after every epoch past warm-up.
    #[arg(long, default_value_t = DEFAULT.temperature_decay, value_parser = TEMPERATURE_DECAY.parser())]
    pub temperature_decay: f64,
    /// Weight λ of the latency loss λ·|LAT/target − 1|.
    #[arg(long, default_value_t = DEFAULT.lambda, value_parser = LAMBDA.parser())]
    pub lambda: f64,
    /// Seed of weights, data order, sampling and the data split.
    #[arg(long, default_value_t = DEFAULT.seed, value_parser = SEED.parser())]
    pub seed: u64,
    /// The widths elasticity scaling sets are multiples of it. Not a flag
    /// of its own: `--width-multiple` (in the inputs) is resolved against
    /// the table's width step before the search starts. Left out of the
    /// settings' JSON at 1, so that checkpoints of searches without it
    /// still resume.
    #[arg(skip = DEFAULT.width_multiple)]
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub width_multiple: u32,
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

impl Default for Settings {
    fn default() -> Self {
        DEFAULT
    }
}

impl Settings {
    /// The ranges the flags enforce, for settings built in code.
    pub fn check(&self) -> Result<()> {
        let checks = [
            TARGET_MS.check(self.target_ms).map(drop),
            EPOCHS.check(self.epochs).map(drop),
            WARMUP_EPOCHS.check(self.warmup_epochs).map(drop),
            BATCH_SIZE.check(self.batch_size).map(drop),
            WEIGHT_LR.check(self.weight_lr).map(drop),
            WEIGHT_MOMENTUM.check(self.weight_momentum).map(drop),
            WEIGHT_DECAY.check(self.weight_decay).map(drop),
            WEIGHT_CLIP.check(self.weight_clip).map(drop),
            ARCH_LR.check(self.arch_lr).map(drop),
            ARCH_BETA1.check(self.arch_beta1).map(drop),
            ARCH_BETA2.check(self.arch_beta2).map(drop),
            ARCH_WEIGHT_DECAY.check(self.arch_weight_decay).map(drop),
            ARCH_CLIP.check(self.arch_clip).map(drop),
            TEMPERATURE.check(self.temperature).map(drop),
            TEMPERATURE_DECAY.check(self.temperature_decay).map(drop),
            LAMBDA.check(self.lambda).map(drop),
            WIDTH_MULTIPLE.check(self.width_multiple).map(drop),
        ];
        for check in checks {
            check.map_err(SearchError::Config)?;
        }
        if self.warmup_epochs > self.epochs {
            return Err(SearchError::Config(format!(
                "--warmup-epochs {} exceeds --epochs {}",
                self.warmup_epochs, self.epochs
            )));
        }
        Ok(())
    }

    /// The settings that differ from `other`'s, as `(flag, ours, theirs)`,
    /// in the order of the struct.
    pub fn differences(&self, other: &Settings) -> Vec<(String, String, String)> {
        let (a, b) = (as_fields(self), as_fields(other));
        a.into_iter()
            .zip(b)
            .filter(|((_, x), (_, y))| x != y)
            .map(|((name, x), (_, y))| (format!("--{}", name.replace('_', "-")), x, y))
            .collect()
    }

    /// T at `epoch`: T0 until warm-up ends, then × decay per epoch.
    pub fn temperature_at(&self, epoch: usize) -> f64 {
        self.temperature
            * self
                .temperature_decay
                .powi(epoch.saturating_sub(self.warmup_epochs) as i32)
    }

    /// The weights' learning rate at `epoch`: cosine over all epochs, set
    /// once per epoch (the official schedule).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let t = std::f64::consts::PI * epoch as f64 / self.epochs as f64;
        self.weight_lr * (1.0 + t.cos()) / 2.0
    }
}

/// Every field as `(name, value)`, through serde so a field added later is
/// compared without being listed here (skipped fields read as their
/// default).
fn as_fields(s: &Settings) -> Vec<(String, String)> {
    let mut value = serde_json::to_value(s).expect("settings serialize");
    let map = value.as_object_mut().expect("settings are an object");
    if !map.contains_key("width_multiple") {
        map.insert("width_multiple".into(), 1.into());
    }
    let mut fields: Vec<(String, String)> = map
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    fields.sort();
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_infinite_and_out_of_range_numbers_are_refused_naming_flag_and_range() {
        for text in ["NaN", "inf", "-inf", "50", "0", "-1", "banana"] {
            let e = WEIGHT_LR.parse(text).unwrap_err();
            assert!(e.contains("--weight-lr") && e.contains("(0, 10]"), "{e}");
        }
        assert_eq!(WEIGHT_LR.parse("0.1"), Ok(0.1));
        assert!(ARCH_BETA1.parse("1.5").unwrap_err().contains("[0, 1)"));
        assert!(ARCH_BETA1.parse("1").is_err());
        assert!(LAMBDA.parse("-1").unwrap_err().contains("--lambda"));
        assert_eq!(LAMBDA.parse("0"), Ok(0.0));
        assert!(BATCH_SIZE.parse("1").unwrap_err().contains("[2, 65536]"));
    }

    #[test]
    fn the_defaults_lie_in_their_ranges() {
        Settings::default().check().unwrap();
        let e = Settings {
            warmup_epochs: 91,
            ..Settings::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--warmup-epochs 91"), "{e}");
        let e = Settings {
            weight_clip: -1.0,
            ..Settings::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--weight-clip"), "{e}");
    }

    #[test]
    fn differences_name_each_flag_with_both_values() {
        let a = Settings::default();
        let b = Settings {
            lambda: 0.5,
            width_multiple: 8,
            ..Settings::default()
        };
        let d = a.differences(&b);
        assert_eq!(
            d,
            [
                ("--lambda".to_string(), "0.1".to_string(), "0.5".to_string()),
                (
                    "--width-multiple".to_string(),
                    "1".to_string(),
                    "8".to_string()
                ),
            ]
        );
        assert!(a.differences(&a.clone()).is_empty());
    }
}
