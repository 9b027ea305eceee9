//! The training recipe of `searcher train`, each setting stated once: its
//! default (the official TF-NAS ImageNet recipe, `train_eval.py` of
//! github.com/AberHu/TF-NAS), its flag and the range it must lie in
//! (docs/train-export.md).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SearchError};
use crate::settings::Bound;

pub const EPOCHS: Bound<usize> = Bound::closed("--epochs", 1, 100_000);
/// Batch norm on batch statistics needs two images.
pub const BATCH_SIZE: Bound<usize> = Bound::closed("--batch-size", 2, 65_536);
pub const LR: Bound<f64> = Bound::above("--lr", 0.0, 10.0);
pub const MOMENTUM: Bound<f64> = Bound::below("--momentum", 0.0, 1.0);
pub const WEIGHT_DECAY: Bound<f64> = Bound::below("--weight-decay", 0.0, 1.0);
pub const GRAD_CLIP: Bound<f64> = Bound::above("--grad-clip", 0.0, 1e6);
pub const LABEL_SMOOTHING: Bound<f64> = Bound::below("--label-smoothing", 0.0, 1.0);
pub const DROPOUT: Bound<f64> = Bound::below("--dropout", 0.0, 1.0);
pub const DROP_CONNECT: Bound<f64> = Bound::below("--drop-connect", 0.0, 1.0);
pub const WARMUP_EPOCHS: Bound<usize> = Bound::closed("--warmup-epochs", 0, 100_000);
pub const SEED: Bound<u64> = Bound::closed("--seed", 0, u64::MAX);

/// The learning rate of [`BASE_BATCH`] images; `--lr` defaults to it
/// scaled linearly with `--batch-size`.
pub const BASE_LR: f64 = 0.2;
pub const BASE_BATCH: usize = 512;
/// Warm-up runs only for batches above this (the official rule).
pub const WARMUP_ABOVE_BATCH: usize = 256;
/// Batch-norm scales start at 1 and shifts at 0 (the official
/// `_initialization`; tch's default scale is uniform in [0, 1]).
pub const BN_INIT_SCALE: f64 = 1.0;

/// The official recipe: the default of every flag below.
pub const DEFAULT: Recipe = Recipe {
    epochs: 250,
    batch_size: 512,
    lr: None,
    momentum: 0.9,
    weight_decay: 1e-5,
    grad_clip: 5.0,
    label_smoothing: 0.1,
    dropout: 0.2,
    drop_connect: 0.2,
    warmup_epochs: 5,
    seed: 2,
};

/// Every hyper-parameter of a training run; `Default` is [`DEFAULT`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct Recipe {
    #[arg(long, default_value_t = DEFAULT.epochs, value_parser = EPOCHS.parser())]
    pub epochs: usize,
    #[arg(long, default_value_t = DEFAULT.batch_size, value_parser = BATCH_SIZE.parser())]
    pub batch_size: usize,
    /// SGD learning rate at the top of the cosine schedule [default:
    /// 0.2 × batch size / 512].
    #[arg(long, value_parser = LR.parser())]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = DEFAULT.momentum, value_parser = MOMENTUM.parser())]
    pub momentum: f64,
    /// L2 weight decay of every parameter (batch norm's included).
    #[arg(long, default_value_t = DEFAULT.weight_decay, value_parser = WEIGHT_DECAY.parser())]
    pub weight_decay: f64,
    /// Gradient-norm clip.
    #[arg(long, default_value_t = DEFAULT.grad_clip, value_parser = GRAD_CLIP.parser())]
    pub grad_clip: f64,
    #[arg(long, default_value_t = DEFAULT.label_smoothing, value_parser = LABEL_SMOOTHING.parser())]
    pub label_smoothing: f64,
    /// Dropout before the classifier.
    #[arg(long, default_value_t = DEFAULT.dropout, value_parser = DROPOUT.parser())]
    pub dropout: f64,
    /// Drop-connect of the residual blocks' branch: block i of n gets
    /// this × i / n.
    #[arg(long, default_value_t = DEFAULT.drop_connect, value_parser = DROP_CONNECT.parser())]
    pub drop_connect: f64,
    /// Epochs of linear warm-up, applied only when the batch exceeds 256.
    #[arg(long, default_value_t = DEFAULT.warmup_epochs, value_parser = WARMUP_EPOCHS.parser())]
    pub warmup_epochs: usize,
    /// Seed of the weights, the data split and order, dropout and
    /// drop-connect.
    #[arg(long, default_value_t = DEFAULT.seed, value_parser = SEED.parser())]
    pub seed: u64,
}

impl Default for Recipe {
    fn default() -> Self {
        DEFAULT
    }
}

impl Recipe {
    /// The peak learning rate: `--lr`, else 0.2 × batch / 512.
    pub fn peak_lr(&self) -> f64 {
        self.lr
            .unwrap_or(BASE_LR * self.batch_size as f64 / BASE_BATCH as f64)
    }

    /// The recipe with its learning rate resolved, as a checkpoint records it.
    pub fn resolved(&self) -> Recipe {
        Recipe {
            lr: Some(self.peak_lr()),
            ..self.clone()
        }
    }

    /// Whether the warm-up applies (the official rule: batches above 256).
    pub fn warms_up(&self) -> bool {
        self.batch_size > WARMUP_ABOVE_BATCH && self.warmup_epochs > 0
    }

    /// The learning rate of `epoch` (from 0), set once per epoch: cosine
    /// from the peak over all epochs, times (epoch + 1) / warm-up epochs
    /// during warm-up, as `train_eval.py` does.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let t = std::f64::consts::PI * epoch as f64 / self.epochs as f64;
        let cosine = self.peak_lr() * (1.0 + t.cos()) / 2.0;
        if self.warms_up() && epoch < self.warmup_epochs {
            cosine * (epoch + 1) as f64 / self.warmup_epochs as f64
        } else {
            cosine
        }
    }

    /// The ranges the flags enforce, for recipes built in code.
    pub fn check(&self) -> Result<()> {
        let checks = [
            EPOCHS.check(self.epochs).map(drop),
            BATCH_SIZE.check(self.batch_size).map(drop),
            LR.check(self.peak_lr()).map(drop),
            MOMENTUM.check(self.momentum).map(drop),
            WEIGHT_DECAY.check(self.weight_decay).map(drop),
            GRAD_CLIP.check(self.grad_clip).map(drop),
            LABEL_SMOOTHING.check(self.label_smoothing).map(drop),
            DROPOUT.check(self.dropout).map(drop),
            DROP_CONNECT.check(self.drop_connect).map(drop),
            WARMUP_EPOCHS.check(self.warmup_epochs).map(drop),
        ];
        for check in checks {
            check.map_err(SearchError::Config)?;
        }
        Ok(())
    }

    /// The recipe for the run's header: every setting, with where the
    /// learning rate and the warm-up came from.
    pub fn describe(&self) -> Vec<String> {
        let lr = match self.lr {
            Some(lr) => format!("{lr} (--lr)"),
            None => format!("{} (0.2 × batch {} / 512)", self.peak_lr(), self.batch_size),
        };
        let warmup = if self.warms_up() {
            format!("{} warm-up epochs (batch > 256)", self.warmup_epochs)
        } else {
            "no warm-up (only batches above 256 warm up)".to_string()
        };
        vec![
            format!(
                "recipe: {} epochs, batch {}, SGD lr {lr}, momentum {}, weight decay {}, gradient clip {}",
                self.epochs, self.batch_size, self.momentum, self.weight_decay, self.grad_clip
            ),
            format!(
                "recipe: cosine schedule per epoch, {warmup}; label smoothing {}, dropout {} before the classifier, drop-connect {} × i/n, batch-norm scales start at {BN_INIT_SCALE}, seed {}",
                self.label_smoothing, self.dropout, self.drop_connect, self.seed
            ),
        ]
    }

    /// The settings that differ from `other`'s (both resolved), as
    /// `(flag, ours, theirs)`.
    pub fn differences(&self, other: &Recipe) -> Vec<(String, String, String)> {
        let fields = |r: &Recipe| -> Vec<(String, String)> {
            let value = serde_json::to_value(r.resolved()).expect("recipe serializes");
            let map = value.as_object().expect("recipe is an object").clone();
            map.into_iter().map(|(k, v)| (k, v.to_string())).collect()
        };
        fields(self)
            .into_iter()
            .zip(fields(other))
            .filter(|((_, a), (_, b))| a != b)
            .map(|((name, a), (_, b))| (format!("--{}", name.replace('_', "-")), a, b))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_official_recipe_and_lie_in_their_ranges() {
        let r = Recipe::default();
        r.check().unwrap();
        assert_eq!((r.epochs, r.batch_size), (250, 512));
        assert_eq!(r.peak_lr(), 0.2);
        // Warm-up: epoch 0 gets a fifth of the cosine's value.
        assert!((r.lr_at(0) - 0.2 / 5.0).abs() < 1e-12);
        let cosine4 = 0.2 * (1.0 + (std::f64::consts::PI * 4.0 / 250.0).cos()) / 2.0;
        assert!((r.lr_at(4) - cosine4).abs() < 1e-12);
        let cosine5 = 0.2 * (1.0 + (std::f64::consts::PI * 5.0 / 250.0).cos()) / 2.0;
        assert!((r.lr_at(5) - cosine5).abs() < 1e-12);
    }

    #[test]
    fn the_lr_scales_with_the_batch_and_small_batches_skip_the_warm_up() {
        let r = Recipe {
            batch_size: 128,
            ..Recipe::default()
        };
        assert!((r.peak_lr() - 0.05).abs() < 1e-12);
        assert!(!r.warms_up());
        assert!((r.lr_at(0) - 0.05).abs() < 1e-12);
        let given = Recipe {
            lr: Some(0.1),
            ..r.clone()
        };
        assert_eq!(given.peak_lr(), 0.1);
        // The same resolved learning rate is no difference.
        let same = Recipe {
            lr: Some(0.05),
            ..r.clone()
        };
        assert!(r.differences(&same).is_empty());
        let d = r.differences(&given);
        assert_eq!(d, [("--lr".into(), "0.05".into(), "0.1".into())]);
    }

    #[test]
    fn out_of_range_numbers_name_the_flag_and_range() {
        let e = DROPOUT.parse("1").unwrap_err();
        assert!(e.contains("--dropout") && e.contains("[0, 1)"), "{e}");
        let e = Recipe {
            lr: Some(f64::NAN),
            ..Recipe::default()
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("--lr"), "{e}");
    }
}
