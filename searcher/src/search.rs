//! The search loop (docs/method.md §2–§5): warm-up epochs on single
//! Gumbel-max paths, then bi-sampled weight steps, an architecture step on
//! the held-out split every other step, temperature decay and elasticity
//! scaling after every epoch past warm-up.
//!
//! Every random draw of an epoch comes from `(seed, epoch)`: the order,
//! paths and Gumbel noise from one ChaCha stream of it, each image's flips
//! and crops from a stream of `(seed, epoch, index)`; and the checkpoint
//! written after each epoch holds everything else (weights, α, β, masks,
//! both optimizers' state), so a resumed search repeats the uninterrupted
//! one exactly on the CPU.

use std::rc::Rc;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use space::SearchSpaceConfig;
use tch::{Device, Kind, Tensor};

use crate::data::{Augment, Dataset, Split};
use crate::dist::{whole_means, Dist};
use crate::elastic::{self, ElasticBlock, Outcome};
use crate::error::{Result, SearchError};
use crate::extend::{Landing, Problem};
use crate::identity::Identity;
use crate::latency::{Choices, LatencyModel};
use crate::optim::{clip_grad_norm, Adam, Sgd};
use crate::supernet::{Ops, Supernet};

pub use crate::settings::Settings;

pub(crate) mod checkpoint;

/// One epoch's report: the per-epoch line and the checkpoint's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub warmup: bool,
    pub lr: f64,
    pub temperature: f64,
    /// Mean weight-step loss (CE of path A, plus CE of path B after warm-up).
    pub weight_loss: f64,
    /// Mean cross-entropy of path A alone, comparable across all epochs.
    pub path_a_loss: f64,
    pub train_acc: f64,
    /// Mean arch-step cross-entropy and latency loss (none in warm-up).
    pub arch_ce: Option<f64>,
    pub latency_loss: Option<f64>,
    /// Held-out accuracy: of the arch steps' soft mixture, or in warm-up of
    /// a sampled path.
    pub held_out_acc: f64,
    /// LAT with α and β as they end the epoch (no Gumbel noise).
    pub expected_ms: f64,
    /// Table latency of the argmax network after elasticity scaling.
    pub argmax_ms: f64,
    pub elastic: Option<(f64, f64)>,
    pub seconds: f64,
}

impl EpochLog {
    pub fn line(&self, epochs: usize, target_ms: f64) -> String {
        let arch = match (self.arch_ce, self.latency_loss) {
            (Some(ce), Some(lat)) => format!("arch CE {ce:.4} lat-loss {lat:.4}"),
            _ => "warm-up (weights only)".to_string(),
        };
        let elastic = match self.elastic {
            // Only when even the narrowest widths of these ops and depths
            // are too slow (docs/method.md §3, quirks).
            Some((before, after)) if after > target_ms => {
                format!(", elastic {before:.3}->{after:.3} (over target at minimum widths)")
            }
            Some((before, after)) => format!(", elastic {before:.3}->{after:.3}"),
            None => String::new(),
        };
        format!(
            "epoch {}/{epochs}: w-loss {:.4} (path A {:.4}), {arch}, train acc {:.1}%, held-out acc {:.1}%, LAT {:.3} ms, argmax {:.3} ms (target {target_ms}){elastic}, T {:.3}, lr {:.5}, {:.1}s",
            self.epoch + 1,
            self.weight_loss,
            self.path_a_loss,
            100.0 * self.train_acc,
            100.0 * self.held_out_acc,
            self.expected_ms,
            self.argmax_ms,
            self.temperature,
            self.lr,
            self.seconds
        )
    }
}

/// Per layer, a Gumbel-max sample from softmax(α): path A.
pub fn gumbel_max_path(alphas: &[Vec<Vec<f64>>], rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    alphas
        .iter()
        .map(|stage| {
            stage
                .iter()
                .map(|a| {
                    let mut best = (0, f64::MIN);
                    for (k, &v) in a.iter().enumerate() {
                        let score = v + gumbel(rng);
                        if score > best.1 {
                            best = (k, score);
                        }
                    }
                    best.0
                })
                .collect()
        })
        .collect()
}

/// Per layer, an op drawn uniformly from the ops path A did not take:
/// path B, never equal to A in any layer.
pub fn other_path(first: &[Vec<usize>], num_ops: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    first
        .iter()
        .map(|stage| {
            stage
                .iter()
                .map(|&a| {
                    let r = rng.gen_range(0..num_ops - 1);
                    if r >= a {
                        r + 1
                    } else {
                        r
                    }
                })
                .collect()
        })
        .collect()
}

fn gumbel(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    -(-u.ln()).ln()
}

/// What one weight step measured.
pub struct WeightStep {
    pub loss: f64,
    pub path_a_loss: f64,
    /// Correct predictions of path A.
    pub correct: usize,
}

/// What one architecture step measured.
pub struct ArchStep {
    pub ce: f64,
    pub latency_loss: f64,
    /// Correct predictions of the soft mixture.
    pub correct: usize,
}

fn count_correct(logits: &Tensor, labels: &Tensor) -> usize {
    logits
        .argmax(1, false)
        .eq_tensor(labels)
        .sum(Kind::Int64)
        .int64_value(&[]) as usize
}

/// What an epoch runs with, from its index.
#[derive(Clone, Copy)]
struct Schedule {
    epoch: usize,
    warmup: bool,
    temperature: f64,
    lr: f64,
}

/// Sums over an epoch's steps, for its [`EpochLog`].
#[derive(Default)]
struct Totals {
    steps: usize,
    weight_loss: f64,
    path_a_loss: f64,
    /// Correct predictions of path A and training images seen.
    correct: usize,
    train_seen: usize,
    arch_steps: usize,
    arch_ce: f64,
    latency_loss: f64,
    /// Correct held-out predictions and held-out images seen.
    held_correct: usize,
    held_seen: usize,
}

/// The held-out batches of the architecture steps, in the epoch's shuffled
/// order, starting over where one more would run past the end.
struct HeldOutBatches<'a> {
    order: &'a [usize],
    size: usize,
    pos: usize,
}

impl<'a> HeldOutBatches<'a> {
    fn new(order: &'a [usize], batch: usize) -> Self {
        HeldOutBatches {
            order,
            size: batch.min(order.len()),
            pos: 0,
        }
    }

    fn next_batch(&mut self) -> &'a [usize] {
        if self.pos + self.size > self.order.len() {
            self.pos = 0;
        }
        let batch = &self.order[self.pos..self.pos + self.size];
        self.pos += self.size;
        batch
    }
}

/// A search in progress: the supernet, its latency model, both optimizers
/// and the history so far.
pub struct Search {
    pub settings: Settings,
    pub net: Supernet,
    pub model: LatencyModel,
    sgd: Sgd,
    adam: Adam,
    /// The next epoch to run (0-based); equal to `settings.epochs` when done.
    pub next_epoch: usize,
    pub history: Vec<EpochLog>,
    /// What a checkpoint must match to be resumed by this search.
    identity: Identity,
    /// The data-parallel group this search is a rank of, if any.
    dist: Option<Rc<Dist>>,
}

impl Search {
    /// A fresh search. `inputs` fingerprints everything outside `settings`
    /// and the space a resumed run must share (`("table", "sha256:…")`,
    /// the data set).
    pub fn new(
        settings: Settings,
        space: &SearchSpaceConfig,
        model: LatencyModel,
        num_classes: usize,
        device: Device,
        inputs: &[(&str, &str)],
    ) -> Result<Self> {
        settings.check()?;
        if space.ops.len() < 2 {
            return Err(SearchError::Config(
                "bi-sampling needs at least 2 candidate ops".into(),
            ));
        }
        tch::manual_seed(settings.seed as i64);
        let net = Supernet::new(space, num_classes as i64, device)?;
        let weights = net.weight_tensors();
        let sgd = Sgd::new(&weights, settings.weight_momentum, settings.weight_decay);
        let adam = Adam::new(
            &net.arch_tensors(),
            settings.arch_lr,
            (settings.arch_beta1, settings.arch_beta2),
            settings.arch_weight_decay,
        );
        let identity = Identity {
            inputs: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            space_digest: space.digest(),
            settings: settings.clone(),
        };
        Ok(Search {
            settings,
            net,
            model,
            sgd,
            adam,
            next_epoch: 0,
            history: Vec::new(),
            identity,
            dist: None,
        })
    }

    /// Makes this search a rank of `dist`: weights, α, β and masks set to
    /// rank 0's (call after a resume, which every rank does from the same
    /// file), batch norm over the whole batch under `--sync-bn`. The ranks
    /// then sample the same paths and noise from the same seeded streams.
    pub fn join(&mut self, dist: Rc<Dist>) -> Result<()> {
        let mut state = self.net.weight_tensors();
        state.extend(self.net.arch_tensors());
        tch::no_grad(|| dist.broadcast(&state))?;
        self.net.share_widths(&dist)?;
        if dist.sync_bn {
            self.net.sync_bn = Some(dist.clone());
        }
        self.dist = Some(dist);
        Ok(())
    }

    /// This rank's share of a batch (all of it alone).
    fn share<'a>(&self, batch: &'a [usize]) -> &'a [usize] {
        crate::dist::share_in(self.dist.as_deref(), batch)
    }

    /// The counts summed over the ranks (as they are alone).
    fn sum_counts(&self, t: &mut Totals) -> Result<()> {
        let Some(d) = &self.dist else { return Ok(()) };
        let counts = [t.correct, t.train_seen, t.held_correct, t.held_seen];
        let v = d.sum(&counts.map(|c| c as f64))?;
        (t.correct, t.train_seen, t.held_correct, t.held_seen) =
            (v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize);
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.next_epoch >= self.settings.epochs
    }

    /// The argmax network at its current widths.
    pub fn derive(&self) -> Choices {
        self.net.derive()
    }

    fn alpha_values(&self) -> Vec<Vec<Vec<f64>>> {
        self.net
            .alphas
            .iter()
            .map(|s| {
                s.iter()
                    .map(|a| {
                        Vec::<f64>::try_from(a.to_device(Device::Cpu).to_kind(Kind::Double))
                            .expect("α is a vector")
                    })
                    .collect()
            })
            .collect()
    }

    /// LAT with plain softmax(α) weights, for reports.
    pub fn expected_ms(&self) -> f64 {
        tch::no_grad(|| {
            let w: Vec<Vec<Tensor>> = self
                .net
                .alphas
                .iter()
                .map(|s| s.iter().map(|a| a.softmax(0, Kind::Float)).collect())
                .collect();
            self.model
                .expected(&w, &self.net.betas, &self.net.widths)
                .double_value(&[])
        })
    }

    /// Runs the next epoch. `progress(done, total)` is called after every
    /// weight step.
    pub fn run_epoch(
        &mut self,
        data: &dyn Dataset,
        split: &Split,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<EpochLog> {
        let epoch = self.next_epoch;
        let s = &self.settings;
        check_split(split, s.batch_size)?;
        let start = Instant::now();
        let plan = Schedule {
            epoch,
            warmup: epoch < s.warmup_epochs,
            temperature: s.temperature_at(epoch),
            lr: s.lr_at(epoch),
        };
        // The draws' order is part of the replay: both shuffles, then each
        // step's, then the warm-up's held-out paths.
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        rng.set_stream(epoch as u64 + 1);
        let mut train = split.train.clone();
        train.shuffle(&mut rng);
        let mut held_out = split.held_out.clone();
        held_out.shuffle(&mut rng);
        let mut held = HeldOutBatches::new(&held_out, s.batch_size);
        let mut t = self.train_steps(data, &train, &mut held, plan, &mut rng, progress)?;
        if plan.warmup {
            // No arch steps: measure held-out accuracy on sampled paths.
            let (c, n) = self.sampled_path_accuracy(data, &held_out, held.size, &mut rng)?;
            t.held_correct += c;
            t.held_seen += n;
        }
        self.sum_counts(&mut t)?;
        let elastic = (!plan.warmup)
            .then(|| self.scale_widths())
            .map(|o| (o.before_ms, o.after_ms));
        if let Some(d) = self.dist.clone() {
            self.net.share_widths(&d)?;
        }
        let n = t.steps as f64;
        let per_arch = |v: f64| (t.arch_steps > 0).then(|| v / t.arch_steps as f64);
        let log = EpochLog {
            epoch,
            warmup: plan.warmup,
            lr: plan.lr,
            temperature: plan.temperature,
            weight_loss: t.weight_loss / n,
            path_a_loss: t.path_a_loss / n,
            train_acc: t.correct as f64 / t.train_seen.max(1) as f64,
            arch_ce: per_arch(t.arch_ce),
            latency_loss: per_arch(t.latency_loss),
            held_out_acc: t.held_correct as f64 / t.held_seen.max(1) as f64,
            expected_ms: self.expected_ms(),
            argmax_ms: self.model.discrete_ms(&self.derive()),
            elastic,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.history.push(log.clone());
        self.next_epoch += 1;
        Ok(log)
    }

    /// The epoch's weight steps over the whole batches of `train`, after
    /// warm-up with an architecture step on a held-out batch every other
    /// step.
    fn train_steps(
        &mut self,
        data: &dyn Dataset,
        train: &[usize],
        held: &mut HeldOutBatches,
        plan: Schedule,
        rng: &mut ChaCha8Rng,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Totals> {
        let (epoch, bs, device) = (plan.epoch, self.settings.batch_size, self.net.device);
        let steps = train.len() / bs;
        let augment = Augment::Train {
            epoch: epoch as u64,
        };
        let planned: Vec<Vec<usize>> = train[..steps * bs]
            .chunks_exact(bs)
            .map(|whole| self.share(whole).to_vec())
            .collect();
        data.prefetch(&planned, augment);
        let mut t = Totals {
            steps,
            ..Totals::default()
        };
        for (step, idx) in planned.iter().enumerate() {
            let (x, y) = data.batch(idx, augment)?;
            // A set may have skipped unreadable images.
            t.train_seen += y.size()[0] as usize;
            let (x, y) = (x.to_device(device), y.to_device(device));
            let w = self.weight_step(&x, &y, plan.warmup, plan.lr, rng, bs)?;
            self.check_loss(epoch, step, "weight", w.loss)?;
            t.weight_loss += w.loss;
            t.path_a_loss += w.path_a_loss;
            t.correct += w.correct;
            // Architecture step on held-out data every other step.
            if !plan.warmup && step % 2 == 0 {
                let whole = held.next_batch();
                let (hx, hy) = data.batch(self.share(whole), Augment::HeldOut)?;
                let (hx, hy) = (hx.to_device(device), hy.to_device(device));
                let a = self.arch_step(&hx, &hy, plan.temperature, rng, whole.len())?;
                self.check_loss(epoch, step, "architecture", a.ce + a.latency_loss)?;
                t.arch_ce += a.ce;
                t.latency_loss += a.latency_loss;
                t.held_correct += a.correct;
                t.held_seen += hy.size()[0] as usize;
                t.arch_steps += 1;
            }
            progress(step + 1, steps);
        }
        Ok(t)
    }

    /// Correct predictions and images seen over the held-out split, each
    /// batch through a path sampled from α.
    fn sampled_path_accuracy(
        &self,
        data: &dyn Dataset,
        held_out: &[usize],
        batch: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<(usize, usize)> {
        let device = self.net.device;
        let (mut correct, mut seen) = (0, 0);
        let world = self.dist.as_ref().map_or(1, |d| d.world());
        tch::no_grad(|| -> Result<()> {
            for chunk in held_out.chunks(batch) {
                if chunk.len() < 2 * world {
                    continue;
                }
                let (hx, hy) = data.batch(self.share(chunk), Augment::HeldOut)?;
                let (hx, hy) = (hx.to_device(device), hy.to_device(device));
                let path = gumbel_max_path(&self.alpha_values(), rng);
                let logits = self.net.forward(&hx, &Ops::Path(&path));
                correct += count_correct(&logits, &hy);
                seen += hy.size()[0] as usize;
            }
            Ok(())
        })?;
        Ok((correct, seen))
    }

    /// A loss that is no longer finite stops the search: every later step
    /// would train on NaN. The last checkpoint, written after the last
    /// whole epoch, is left as it is.
    fn check_loss(&self, epoch: usize, step: usize, what: &str, loss: f64) -> Result<()> {
        if loss.is_finite() {
            return Ok(());
        }
        Err(SearchError::Diverged {
            epoch: epoch + 1,
            step: step + 1,
            message: format!("the {what} loss became {loss}"),
            last_epoch: self.next_epoch,
            hint: String::new(),
        })
    }

    /// A warning when the latest epoch's path-A loss has grown well past
    /// the first epoch's: the search is likely diverging (a learning rate
    /// too high), and hours later would end on an untrained supernet.
    pub fn divergence_warning(&self) -> Option<String> {
        let (first, last) = (self.history.first()?, self.history.last()?);
        (self.history.len() > 1 && last.path_a_loss > 2.0 * first.path_a_loss).then(|| {
            format!(
                "the training loss grew from {:.4} (epoch 1) to {:.4} (epoch {}): the search may be diverging; a smaller --weight-lr (now {}) usually helps",
                first.path_a_loss,
                last.path_a_loss,
                last.epoch + 1,
                self.settings.weight_lr
            )
        })
    }

    /// One weight step on a batch already on the device: path A by
    /// Gumbel-max from α and, after warm-up, path B among the other ops of
    /// every layer, CE(A) + CE(B) on the same batch, clipped SGD.
    pub fn weight_step(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        warmup: bool,
        lr: f64,
        rng: &mut ChaCha8Rng,
        whole: usize,
    ) -> Result<WeightStep> {
        let weights = self.net.weight_tensors();
        let n_ops = self.net.space.ops.len();
        let path_a = gumbel_max_path(&self.alpha_values(), rng);
        let logits = self.net.forward(x, &Ops::Path(&path_a));
        let ce_a = logits.cross_entropy_for_logits(y);
        let path_a_loss = ce_a.double_value(&[]);
        let correct = count_correct(&logits, y);
        let loss = if warmup {
            ce_a
        } else {
            let path_b = other_path(&path_a, n_ops, rng);
            ce_a + self
                .net
                .forward(x, &Ops::Path(&path_b))
                .cross_entropy_for_logits(y)
        };
        let local = y.size()[0] as usize;
        let [value, path_a_loss] = whole_means(
            self.dist.as_deref(),
            [loss.double_value(&[]), path_a_loss],
            local,
            whole,
        )?;
        let step = WeightStep {
            loss: value,
            path_a_loss,
            correct,
        };
        if !value.is_finite() {
            return Ok(step);
        }
        let mut grads = Tensor::f_run_backward(&[&loss], &weights, false, false)?;
        if let Some(d) = &self.dist {
            // Only the sampled ops' gradients exist, alike on every rank
            // (the same paths): unsampled ops get no zeros, and so neither
            // momentum nor decay, as alone.
            let defined: Vec<Tensor> = grads
                .iter()
                .filter(|g| g.defined())
                .map(Tensor::shallow_clone)
                .collect();
            d.average_gradients(&defined, local, whole)?;
        }
        clip_grad_norm(&mut grads, self.settings.weight_clip);
        // Masked-out channels exist only as zeros: no decay, no momentum.
        self.sgd
            .step_masked(&weights, &grads, &self.net.weight_masks(), lr);
        Ok(step)
    }

    /// One architecture step on a held-out batch already on the device:
    /// every op mixed by a soft Gumbel-softmax sample at `temperature`,
    /// loss CE + λ·|LAT/target − 1|, clipped Adam on α and β, then both
    /// re-projected with log-softmax.
    pub fn arch_step(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        temperature: f64,
        rng: &mut ChaCha8Rng,
        whole: usize,
    ) -> Result<ArchStep> {
        let arch = self.net.arch_tensors();
        let n_ops = self.net.space.ops.len();
        let device = self.net.device;
        let soft: Vec<Vec<Tensor>> = self
            .net
            .alphas
            .iter()
            .map(|stage| {
                stage
                    .iter()
                    .map(|a| {
                        let g: Vec<f32> = (0..n_ops).map(|_| gumbel(rng) as f32).collect();
                        let g = Tensor::from_slice(&g).to_device(device);
                        ((a.log_softmax(0, Kind::Float) + g) / temperature).softmax(0, Kind::Float)
                    })
                    .collect()
            })
            .collect();
        let logits = self.net.forward(x, &Ops::Mixed(&soft));
        let ce = logits.cross_entropy_for_logits(y);
        let lat = self
            .model
            .expected(&soft, &self.net.betas, &self.net.widths);
        let l_lat = (lat / self.settings.target_ms - 1.0).abs() * self.settings.lambda;
        let local = y.size()[0] as usize;
        let [ce_value] = whole_means(self.dist.as_deref(), [ce.double_value(&[])], local, whole)?;
        let step = ArchStep {
            ce: ce_value,
            // A function of α and β alone: the same on every rank.
            latency_loss: l_lat.double_value(&[]),
            correct: count_correct(&logits, y),
        };
        if !(step.ce + step.latency_loss).is_finite() {
            return Ok(step);
        }
        // The latency term is the same on every rank; weighted by the
        // shares in the average, its gradient still sums to one whole.
        let loss = ce + l_lat;
        let mut grads = Tensor::f_run_backward(&[&loss], &arch, false, false)?;
        for (g, p) in grads.iter_mut().zip(&arch) {
            if !g.defined() {
                *g = p.zeros_like();
            }
        }
        if let Some(d) = &self.dist {
            d.average_gradients(&grads, local, whole)?;
        }
        clip_grad_norm(&mut grads, self.settings.arch_clip);
        self.adam.step(&arch, &grads);
        tch::no_grad(|| {
            for p in &arch {
                let mut p = p.shallow_clone();
                p.copy_(&p.log_softmax(0, Kind::Float));
            }
        });
        Ok(step)
    }

    /// Elasticity scaling of the argmax network's widths to the target.
    pub fn scale_widths(&mut self) -> Outcome {
        let choices = self.derive();
        let mut blocks = Vec::new();
        for (s, stage) in choices.iter().enumerate() {
            for (b, &(op, mid)) in stage.iter().enumerate() {
                let curve = self.model.curve(s, b, op);
                blocks.push(ElasticBlock {
                    stage: s,
                    mid,
                    min: curve.range.min,
                    max: curve.range.max,
                    ms: curve.all().to_vec(),
                });
            }
        }
        let outcome = elastic::scale(
            self.model.base_ms,
            &mut blocks,
            choices.len(),
            self.settings.target_ms,
            self.settings.width_multiple,
        );
        let mut n = 0;
        for (s, stage) in choices.iter().enumerate() {
            for (b, &(op, mid)) in stage.iter().enumerate() {
                // As the official code: a mask is re-chosen only when the
                // width changed, so channels are not re-ranked needlessly.
                if blocks[n].mid != mid {
                    self.net.set_width(s, b, op, blocks[n].mid);
                }
                n += 1;
            }
        }
        outcome
    }

    /// The derived network: the argmax network as elasticity scaling left
    /// it, changed by the landing extension (`extend.rs`) where that
    /// misses the target and `extend` is on.
    pub fn land(&self, extend: bool) -> Landing {
        let betas: Vec<Vec<f64>> = self
            .net
            .betas
            .iter()
            .map(|b| {
                Vec::<f64>::try_from(b.to_device(Device::Cpu).to_kind(Kind::Double))
                    .expect("β is a vector")
            })
            .collect();
        let alphas = self.alpha_values();
        let names: Vec<String> = self.net.space.ops.iter().map(|o| o.name.clone()).collect();
        let problem = Problem {
            model: &self.model,
            op_names: &names,
            alphas: &alphas,
            betas: &betas,
            widths: &self.net.widths,
            target_ms: self.settings.target_ms,
            multiple: self.settings.width_multiple,
        };
        problem.land(&self.derive(), extend)
    }
}

/// Whether `split` can feed an epoch at batch size `batch`: one whole
/// training batch and two held-out images.
pub fn check_split(split: &Split, batch: usize) -> Result<()> {
    if split.train.len() < batch {
        return Err(SearchError::Data(format!(
            "the training split has {} images, fewer than one batch of {batch}",
            split.train.len()
        )));
    }
    if split.held_out.len() < 2 {
        return Err(SearchError::Data(format!(
            "the held-out split has {} images; the architecture steps need at least 2",
            split.held_out.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{self, tiny_data, tiny_search as tiny, tiny_settings};

    /// Boosts the depthwise filters that op `op` of layer `(s, b)` has
    /// masked out, so that an L1 re-ranking would now choose them.
    fn boost_masked_out(search: &Search, s: usize, b: usize, op: usize) -> Vec<i64> {
        let name = format!("s{}.b{}.{}.dw", s + 1, b + 1, search.net.space.ops[op].name);
        let (_, dw) = search
            .net
            .weights()
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a depthwise weight");
        let out: Vec<i64> = search
            .net
            .mask(s, b, op)
            .iter()
            .enumerate()
            .filter(|(_, &m)| m == 0.0)
            .map(|(i, _)| i as i64)
            .collect();
        tch::no_grad(|| {
            let mut dw = dw.shallow_clone();
            let _ = dw.index_fill_(0, &Tensor::from_slice(&out), 100.0);
        });
        out
    }

    #[test]
    fn a_mask_is_rechosen_only_when_its_width_changes() {
        let mut search = tiny(tiny_settings(2, 1));
        search.scale_widths();
        let choices = search.derive();
        // A chosen op below its maximum width, with channels masked out.
        let (s, b, op) = choices
            .iter()
            .enumerate()
            .flat_map(|(s, st)| st.iter().enumerate().map(move |(b, &(op, _))| (s, b, op)))
            .find(|&(s, b, op)| search.net.mask(s, b, op).contains(&0.0))
            .expect("a block narrower than its maximum");
        let before = search.net.mask(s, b, op);
        let boosted = boost_masked_out(&search, s, b, op);
        // The same target again: the widths are already scaled, so none
        // changes and no mask is rewritten, re-ranking or not.
        search.scale_widths();
        assert_eq!(search.derive(), choices, "scaling again moved a width");
        assert_eq!(search.net.mask(s, b, op), before);
        // A target that moves the widths: the changed masks are re-chosen
        // by L1 norm, so the boosted channels come in.
        search.settings.target_ms = 10.0;
        search.scale_widths();
        let wider = search.derive();
        assert_ne!(wider[s][b].1, choices[s][b].1);
        let after = search.net.mask(s, b, op);
        assert!(
            boosted.iter().all(|&i| after[i as usize] == 1.0),
            "{boosted:?} {after:?}"
        );
    }

    #[test]
    fn masked_out_channels_get_neither_weight_decay_nor_momentum() {
        let (data, split) = tiny_data(200);
        // One warm-up epoch: the initial widths (3/4 and 6/8 of each op's
        // maximum) mask channels out all along.
        let mut search = tiny(tiny_settings(1, 1));
        let masks = search.net.weight_masks();
        let before: Vec<Tensor> = search.net.weights().iter().map(|(_, w)| w.copy()).collect();
        search.run_epoch(&data, &split, &mut |_, _| {}).unwrap();
        let mut checked = 0;
        for (((name, w), b), m) in search.net.weights().iter().zip(&before).zip(&masks) {
            let Some(m) = m else { continue };
            let m = m.expand_as(w);
            let off = m.ones_like() - &m;
            let moved = (w - b).abs().detach();
            let out = (&moved * &off).max().double_value(&[]);
            let kept = (&moved * &m).max().double_value(&[]);
            assert_eq!(out, 0.0, "{name}: a masked-out entry moved by {out}");
            if kept > 0.0 {
                checked += 1;
            }
        }
        // Every layer's sampled ops trained their kept channels.
        assert!(checked > 5, "{checked}");
        for (buf, m) in search.sgd.buffers.iter().zip(&masks) {
            if let Some(m) = m {
                let m = m.expand_as(buf);
                let out = (buf * (m.ones_like() - &m)).abs().max().double_value(&[]);
                assert_eq!(out, 0.0);
            }
        }
    }

    #[test]
    fn the_second_path_never_repeats_the_first() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n_ops in [2usize, 3, 8] {
            let alphas: Vec<Vec<Vec<f64>>> = (0..3)
                .map(|_| {
                    (0..4)
                        .map(|_| (0..n_ops).map(|_| rng.gen_range(-3.0..0.0)).collect())
                        .collect()
                })
                .collect();
            let mut seen_b = vec![0usize; n_ops];
            for _ in 0..500 {
                let a = gumbel_max_path(&alphas, &mut rng);
                let b = other_path(&a, n_ops, &mut rng);
                for (sa, sb) in a.iter().zip(&b) {
                    for (&x, &y) in sa.iter().zip(sb) {
                        assert_ne!(x, y);
                        assert!(y < n_ops);
                        seen_b[y] += 1;
                    }
                }
            }
            // Every op is drawn as the second path.
            assert!(seen_b.iter().all(|&c| c > 0), "{seen_b:?}");
        }
    }

    #[test]
    fn temperature_and_lr_follow_the_method() {
        let s = Settings::default();
        assert_eq!(s.temperature_at(0), 5.0);
        assert_eq!(s.temperature_at(10), 5.0);
        assert!((s.temperature_at(89) - 5.0 * 0.96f64.powi(79)).abs() < 1e-12);
        assert!((s.lr_at(10) - 0.02425).abs() < 1e-5);
        assert!((s.lr_at(89) - 8e-6).abs() < 1e-6);
    }

    #[test]
    fn a_loss_that_turns_nan_stops_the_search_and_names_the_kept_epoch() {
        let (data, split) = tiny_data(100);
        let mut search = tiny(tiny_settings(3, 1));
        search.run_epoch(&data, &split, &mut |_, _| {}).unwrap();
        // A weight gone to NaN, as a too-large step leaves it.
        tch::no_grad(|| {
            let (_, w) = &search.net.weights()[0];
            let _ = w.shallow_clone().fill_(f64::NAN);
        });
        let e = search
            .run_epoch(&data, &split, &mut |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("epoch 2, step 1")
                && e.contains("NaN")
                && e.contains("checkpoint of epoch 1"),
            "{e}"
        );
        assert_eq!(search.next_epoch, 1);
    }

    #[test]
    fn a_growing_loss_warns_and_a_falling_one_does_not() {
        let mut search = tiny(tiny_settings(3, 1));
        let log = |epoch: usize, loss: f64| EpochLog {
            epoch,
            warmup: false,
            lr: 0.1,
            temperature: 5.0,
            weight_loss: loss,
            path_a_loss: loss,
            train_acc: 0.1,
            arch_ce: None,
            latency_loss: None,
            held_out_acc: 0.1,
            expected_ms: 1.0,
            argmax_ms: 1.0,
            elastic: None,
            seconds: 1.0,
        };
        search.history = vec![log(0, 2.3), log(1, 1.9)];
        assert_eq!(search.divergence_warning(), None);
        search.history.push(log(2, 199.0));
        let w = search.divergence_warning().unwrap();
        assert!(
            w.contains("grew from 2.3000") && w.contains("--weight-lr"),
            "{w}"
        );
    }

    #[test]
    fn a_tiny_search_learns_and_lands_just_under_the_target() {
        let (data, split) = tiny_data(400);
        let mut search = tiny(Settings {
            lambda: 1.0,
            ..tiny_settings(6, 2)
        });
        while !search.is_done() {
            let log = search.run_epoch(&data, &split, &mut |_, _| {}).unwrap();
            eprintln!("{}", log.line(6, 3.0));
        }
        let h = &search.history;
        assert!(
            h.last().unwrap().path_a_loss < 0.8 * h[0].path_a_loss,
            "{h:?}"
        );
        let choices = search.derive();
        let lat = search.model.discrete_ms(&choices);
        assert!((0.99 * 3.0..=3.0).contains(&lat), "{lat} for {choices:?}");
        let arch = space::Architecture::from_choices(&search.net.space, &choices)
            .unwrap()
            .with_prediction(&fixture::tiny_table())
            .unwrap();
        assert!((arch.prediction.unwrap().latency_ms - lat).abs() < 1e-9);
    }
}
