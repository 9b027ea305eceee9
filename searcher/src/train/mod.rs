//! `searcher train`: the derived network trained from scratch as a
//! stand-alone network ([`model::Network`]), with the official TF-NAS
//! recipe ([`recipe::Recipe`]), on the search's data sources, with the
//! search's checkpoint, resume and refusal rules (docs/train-export.md).
//!
//! Every random draw of an epoch follows from `(seed, epoch)`: the order
//! from a ChaCha stream, each image's augmentation from the data set, and
//! dropout and drop-connect from libtorch's generator seeded per epoch, so
//! a resumed run replays the uninterrupted one on the CPU.

use std::rc::Rc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use space::Architecture;
use tch::{Device, Kind, Reduction, Tensor};

use crate::data::{image_stream, Augment, Dataset, Split};
use crate::dist::{share_in, whole_means, Dist};
use crate::error::{Result, SearchError};
use crate::optim::{clip_grad_norm, Sgd};

mod checkpoint;
pub mod cli;
pub mod model;
pub mod recipe;

use model::{correct_top_k, Network};
use recipe::Recipe;

/// One epoch's report: its progress line and the checkpoint's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    /// Mean label-smoothed training loss and top-1 on the training images.
    pub train_loss: f64,
    pub train_top1: f64,
    /// Plain cross-entropy and accuracy on the held-out split.
    pub held_out_loss: f64,
    pub top1: f64,
    pub top5: f64,
    /// SGD steps taken.
    pub steps: usize,
    pub seconds: f64,
}

impl EpochLog {
    pub fn line(&self, epochs: usize) -> String {
        format!(
            "epoch {}/{epochs}: lr {:.6}, train loss {:.4} top-1 {:.2}%, held-out loss {:.4} top-1 {:.2}% top-5 {:.2}%, {:.1} s",
            self.epoch + 1,
            self.lr,
            self.train_loss,
            100.0 * self.train_top1,
            self.held_out_loss,
            100.0 * self.top1,
            100.0 * self.top5,
            self.seconds
        )
    }
}

/// What a checkpoint must share with the run that resumes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainIdentity {
    /// `(what, fingerprint)`: the architecture's digest, the data set.
    pub inputs: Vec<(String, String)>,
    /// With its learning rate resolved.
    pub recipe: Recipe,
}

impl TrainIdentity {
    /// One line per difference, `what: <checkpoint's> in the checkpoint,
    /// <ours> now`.
    pub fn differences(&self, checkpoint: &TrainIdentity) -> Vec<String> {
        let line = |what: &str, then: &str, now: &str| {
            format!("{what}: {then} in the checkpoint, {now} now")
        };
        let mut out = Vec::new();
        for (name, now) in &self.inputs {
            let then = checkpoint
                .inputs
                .iter()
                .find(|(k, _)| k == name)
                .map_or("nothing", |(_, v)| v.as_str());
            if then != now {
                out.push(line(name, then, now));
            }
        }
        for (flag, then, now) in checkpoint.recipe.differences(&self.recipe) {
            out.push(line(&flag, &then, &now));
        }
        out
    }
}

/// The SHA-256 of an architecture's space and stages: what a checkpoint's
/// network must be (its prediction and file name do not matter).
pub fn arch_digest(arch: &Architecture) -> String {
    let stages = serde_json::to_string(&arch.stages).expect("stages serialize");
    let digest = Sha256::digest(format!("{}\n{stages}", arch.space.digest()).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A training run in progress.
pub struct Trainer {
    pub recipe: Recipe,
    pub net: Network,
    /// The trained parameters by name, in the SGD buffers' order.
    params: Vec<(String, Tensor)>,
    sgd: Sgd,
    /// The next epoch to run (from 0); `recipe.epochs` when done.
    pub next_epoch: usize,
    pub history: Vec<EpochLog>,
    identity: TrainIdentity,
    /// A testing hook: before this epoch (from 1) a weight is set to NaN,
    /// as a step too large leaves it.
    pub poison_epoch: Option<usize>,
    /// The data-parallel group this trainer is a rank of, if any.
    dist: Option<Rc<Dist>>,
}

/// Sums over an epoch's steps or held-out batches.
#[derive(Default)]
struct Tally {
    loss: f64,
    batches: usize,
    top1: usize,
    top5: usize,
    seen: usize,
}

impl Trainer {
    /// A fresh run. `inputs` fingerprints what a resumed run must share
    /// besides the recipe (the architecture is added here).
    pub fn new(
        arch: &Architecture,
        classes: usize,
        recipe: &Recipe,
        device: Device,
        inputs: &[(&str, &str)],
    ) -> Result<Self> {
        recipe.check()?;
        tch::manual_seed(recipe.seed as i64);
        let net = Network::new(arch, classes, recipe.dropout, recipe.drop_connect, device)?;
        let params = net.parameters();
        let tensors: Vec<Tensor> = params.iter().map(|(_, t)| t.shallow_clone()).collect();
        let sgd = Sgd::new(&tensors, recipe.momentum, recipe.weight_decay);
        let mut fingerprints = vec![(
            "architecture".to_string(),
            format!("sha256:{}", arch_digest(arch)),
        )];
        fingerprints.extend(inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Ok(Trainer {
            recipe: recipe.resolved(),
            net,
            params,
            sgd,
            next_epoch: 0,
            history: Vec::new(),
            identity: TrainIdentity {
                inputs: fingerprints,
                recipe: recipe.resolved(),
            },
            poison_epoch: None,
            dist: None,
        })
    }

    /// Makes this trainer a rank of `dist`: every variable set to rank 0's
    /// (call after a resume, which every rank does from the same file), and
    /// batch norm over the whole batch under `--sync-bn`.
    pub fn join(&mut self, dist: Rc<Dist>) -> Result<()> {
        let vars: Vec<Tensor> = self
            .net
            .named_variables()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        tch::no_grad(|| dist.broadcast(&vars))?;
        if dist.sync_bn {
            self.net.sync_bn = Some(dist.clone());
        }
        self.dist = Some(dist);
        Ok(())
    }

    /// Sums over the ranks of this rank's `t` (itself alone).
    fn sum_tally(&self, t: Tally) -> Result<Tally> {
        let Some(d) = &self.dist else { return Ok(t) };
        let v = d.sum(&[t.top1 as f64, t.top5 as f64, t.seen as f64, t.loss])?;
        Ok(Tally {
            top1: v[0] as usize,
            top5: v[1] as usize,
            seen: v[2] as usize,
            loss: v[3],
            batches: t.batches,
        })
    }

    pub fn is_done(&self) -> bool {
        self.next_epoch >= self.recipe.epochs
    }

    /// Trains the next epoch and measures the held-out split.
    /// `progress(done, total)` follows the training steps.
    pub fn run_epoch(
        &mut self,
        data: &dyn Dataset,
        split: &Split,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<EpochLog> {
        check_split(split, self.recipe.batch_size)?;
        let (epoch, start) = (self.next_epoch, Instant::now());
        let lr = self.recipe.lr_at(epoch);
        if self.poison_epoch == Some(epoch + 1) {
            let _ = tch::no_grad(|| self.params[0].1.shallow_clone().fill_(f64::NAN));
        }
        let train = self.train_steps(data, &split.train, lr, progress)?;
        let held = self.evaluate(data, &split.held_out)?;
        let log = EpochLog {
            epoch,
            lr,
            train_loss: train.loss / train.batches.max(1) as f64,
            train_top1: train.top1 as f64 / train.seen.max(1) as f64,
            held_out_loss: held.loss / held.seen.max(1) as f64,
            top1: held.top1 as f64 / held.seen.max(1) as f64,
            top5: held.top5 as f64 / held.seen.max(1) as f64,
            steps: train.batches,
            seconds: start.elapsed().as_secs_f64(),
        };
        if !log.held_out_loss.is_finite() {
            return Err(self.diverged(0, format!("the held-out loss became {}", log.held_out_loss)));
        }
        self.history.push(log.clone());
        self.next_epoch += 1;
        Ok(log)
    }

    /// The epoch's steps over `train` in its shuffled order, in batches of
    /// the recipe's size (a last partial batch of at least 2 images too,
    /// as the official loader keeps it).
    fn train_steps(
        &mut self,
        data: &dyn Dataset,
        train: &[usize],
        lr: f64,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Tally> {
        let (epoch, seed) = (self.next_epoch, self.recipe.seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch as u64 + 1);
        let mut order = train.to_vec();
        order.shuffle(&mut rng);
        let rank = self.dist.as_ref().map_or(0, |d| d.rank()) as u64;
        tch::manual_seed(image_stream(seed, epoch as u64, u64::MAX - rank) as i64);
        // The whole batches, and this rank's shares of them (each rank
        // needs two images of a partial last batch for its batch norm).
        let world = self.dist.as_ref().map_or(1, |d| d.world());
        let whole: Vec<&[usize]> = order
            .chunks(self.recipe.batch_size)
            .filter(|c| c.len() >= 2 * world)
            .collect();
        let dist = self.dist.as_deref();
        let batches: Vec<Vec<usize>> = whole.iter().map(|c| share_in(dist, c).to_vec()).collect();
        let augment = Augment::Train {
            epoch: epoch as u64,
        };
        data.prefetch(&batches, augment);
        let mut t = Tally::default();
        let device = self.net.device();
        for (step, idx) in batches.iter().enumerate() {
            let (x, y) = data.batch(idx, augment)?;
            let (x, y) = (x.to_device(device), y.to_device(device));
            let (loss, logits) = self.train_step(&x, &y, lr, whole[step].len())?;
            if !loss.is_finite() {
                return Err(self.diverged(step + 1, format!("the training loss became {loss}")));
            }
            t.loss += loss;
            t.batches += 1;
            t.top1 += correct_top_k(&logits, &y, 1);
            t.seen += y.size()[0] as usize;
            progress(step + 1, batches.len());
        }
        let loss = t.loss;
        let mut t = self.sum_tally(t)?;
        t.loss = loss;
        Ok(t)
    }

    /// One SGD step on a batch on the device (this rank's share of a batch
    /// of `whole` images): label-smoothed cross-entropy, gradients clipped
    /// to the recipe's norm. Returns the whole batch's loss (the step is
    /// skipped when it is not finite) and this share's logits.
    pub fn train_step(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        lr: f64,
        whole: usize,
    ) -> Result<(f64, Tensor)> {
        let logits = self.net.forward(x, true);
        let loss = logits.cross_entropy_loss::<Tensor>(
            y,
            None,
            Reduction::Mean,
            -100,
            self.recipe.label_smoothing,
        );
        let local = y.size()[0] as usize;
        let [value] = whole_means(self.dist.as_deref(), [loss.double_value(&[])], local, whole)?;
        if !value.is_finite() {
            return Ok((value, logits.detach()));
        }
        let tensors: Vec<Tensor> = self.params.iter().map(|(_, p)| p.shallow_clone()).collect();
        // The gradients as backward returns them, not accumulated into
        // each parameter's `.grad` (which would want zeroing first, and a
        // pass over every gradient each way): PyTorch's `zero_grad(set_to_
        // none=True)` default does the same.
        let mut grads = Tensor::f_run_backward(&[&loss], &tensors, false, false)?;
        if let Some(d) = &self.dist {
            d.average_gradients(&grads, local, whole)?;
        }
        clip_grad_norm(&mut grads, self.recipe.grad_clip);
        self.sgd.step(&tensors, &grads, lr);
        Ok((value, logits.detach()))
    }

    /// Summed cross-entropy (no smoothing, as the official validation),
    /// top-1 and top-5 hits over `held_out`, in eval mode.
    fn evaluate(&self, data: &dyn Dataset, held_out: &[usize]) -> Result<Tally> {
        let device = self.net.device();
        let mut t = Tally::default();
        self.align_statistics()?;
        let (rank, world) = self.dist.as_ref().map_or((0, 1), |d| (d.rank(), d.world()));
        tch::no_grad(|| -> Result<()> {
            for chunk in held_out
                .chunks(self.recipe.batch_size)
                .skip(rank)
                .step_by(world)
            {
                let (x, y) = data.batch(chunk, Augment::HeldOut)?;
                let (x, y) = (x.to_device(device), y.to_device(device));
                let logits = self.net.forward(&x, false);
                let loss = logits.cross_entropy_loss::<Tensor>(&y, None, Reduction::Sum, -100, 0.0);
                t.loss += loss.to_kind(Kind::Double).double_value(&[]);
                t.top1 += correct_top_k(&logits, &y, 1);
                t.top5 += correct_top_k(&logits, &y, 5);
                t.seen += y.size()[0] as usize;
                t.batches += 1;
            }
            Ok(())
        })?;
        self.sum_tally(t)
    }

    /// Every rank's batch-norm statistics set to rank 0's, as DDP's
    /// `broadcast_buffers` does (here once an epoch, before they are used):
    /// without `--sync-bn` each rank's follow its own share.
    fn align_statistics(&self) -> Result<()> {
        let Some(d) = self.dist.as_ref().filter(|d| !d.sync_bn) else {
            return Ok(());
        };
        let stats: Vec<Tensor> = self
            .net
            .named_variables()
            .into_iter()
            .filter(|(name, _)| name.ends_with(".running_mean") || name.ends_with(".running_var"))
            .map(|(_, t)| t)
            .collect();
        tch::no_grad(|| d.broadcast(&stats))
    }

    fn diverged(&self, step: usize, message: String) -> SearchError {
        SearchError::TrainingDiverged {
            epoch: self.next_epoch + 1,
            step,
            message,
            last_epoch: self.next_epoch,
            hint: String::new(),
        }
    }
}

/// Whether `split` can feed an epoch at batch size `batch`: one whole
/// training batch and one held-out image.
pub fn check_split(split: &Split, batch: usize) -> Result<()> {
    if split.train.len() < batch {
        return Err(SearchError::Data(format!(
            "the training split has {} images, fewer than one batch of {batch} (--batch-size)",
            split.train.len()
        )));
    }
    if split.held_out.is_empty() {
        return Err(SearchError::Data(
            "the held-out split is empty: there is nothing to measure accuracy on".into(),
        ));
    }
    Ok(())
}
