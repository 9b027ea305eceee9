//! The command line of `searcher train`: its inputs, the checks before
//! training (the search's rules: ranges, outputs that are inputs, locks,
//! the checkpoint's identity), the epoch loop and the weights file.
//! `main.rs` hands `searcher train ...` to [`main`] before parsing its own
//! flags.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use space::io::OutputLock;
use space::Architecture;
use tch::{Device, Kind, Tensor};

use super::recipe::Recipe;
use super::{check_split, Trainer};
use crate::args::{DataArgs, RunArgs};
use crate::data::{Dataset, Split};
use crate::dist::Dist;
use crate::error::{Result, SearchError};
use crate::session::{open_data, stale_temporaries};

#[derive(Parser)]
#[command(
    name = "searcher train",
    bin_name = "searcher train",
    version,
    allow_negative_numbers = true,
    about = "Train a derived network from scratch with the TF-NAS recipe",
    long_about = "Train a derived network (the architecture JSON the search wrote) from scratch as a stand-alone network, with the official TF-NAS ImageNet recipe by default (docs/train-export.md). Writes its weights as safetensors under TF-NAS's parameter names."
)]
pub struct TrainCli {
    #[command(flatten)]
    pub inputs: TrainInputs,
    #[command(flatten)]
    pub recipe: Recipe,
}

/// Everything a training run reads and writes besides its [`Recipe`].
#[derive(Clone, Debug, clap::Args)]
pub struct TrainInputs {
    /// The architecture JSON to train (what `searcher --out` wrote).
    #[arg(long)]
    pub arch: PathBuf,
    /// Where to write the trained weights (safetensors).
    #[arg(long, default_value = "model.safetensors")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Testing hook: set a weight to NaN before this epoch (from 1).
    #[arg(long, hide = true)]
    pub poison_epoch: Option<usize>,
}

impl TrainInputs {
    pub fn checkpoint_path(&self) -> PathBuf {
        self.run.checkpoint_path(&self.out)
    }

    fn read_files(&self) -> Vec<(&'static str, &Path)> {
        let mut files = vec![("architecture", self.arch.as_path())];
        files.extend(self.data.read_files());
        files
    }
}

/// A training run ready to go: inputs read and checked, outputs locked, a
/// checkpoint of the same run resumed.
pub struct TrainSession {
    pub arch: Architecture,
    pub data: Box<dyn Dataset>,
    pub split: Split,
    pub trainer: Trainer,
    pub device: Device,
    pub out: PathBuf,
    pub checkpoint: PathBuf,
    pub resumed_after: Option<usize>,
    pub warnings: Vec<String>,
    /// This process's data-parallel group, if any: rank 0 alone writes.
    pub dist: Option<Rc<Dist>>,
    _locks: Vec<OutputLock>,
}

/// Checks and loads everything; fails before training and before writing.
pub fn prepare(inputs: &TrainInputs, recipe: &Recipe) -> Result<TrainSession> {
    recipe.check()?;
    let dist = inputs.run.join()?.map(Rc::new);
    let checkpoint = inputs.checkpoint_path();
    let locks = RunArgs::lock_writer_outputs(
        dist.as_deref(),
        &inputs.out,
        &checkpoint,
        "the weights",
        &inputs.read_files(),
    )?;
    let device = inputs.run.device(dist.as_deref())?;
    let arch = Architecture::from_path(&inputs.arch)?;
    let (data, split) = open_data(&inputs.data.source(), recipe.seed)?;
    check_split(&split, recipe.batch_size)?;
    let data_id = data.describe();
    let resolution = inputs.data.resolution().to_string();
    let mut trainer = Trainer::new(
        &arch,
        data.num_classes(),
        recipe,
        device,
        &[("data", &data_id), ("resolution", &resolution)],
    )?;
    trainer.poison_epoch = inputs.poison_epoch;
    let resumed_after = resume_or_start(&mut trainer, &checkpoint, inputs)?;
    if let Some(d) = &dist {
        trainer.join(d.clone())?;
    }
    Ok(TrainSession {
        arch,
        data,
        split,
        trainer,
        device,
        out: inputs.out.clone(),
        checkpoint,
        resumed_after,
        warnings: stale_temporaries(&locks),
        dist,
        _locks: locks,
    })
}

fn resume_or_start(
    trainer: &mut Trainer,
    checkpoint: &Path,
    inputs: &TrainInputs,
) -> Result<Option<usize>> {
    if !inputs.run.resumes(checkpoint)? {
        return Ok(None);
    }
    trainer.load(checkpoint)?;
    Ok(Some(trainer.next_epoch))
}

impl TrainSession {
    /// The run's header: toolchain, network, data, every recipe setting.
    pub fn describe(&self) -> Vec<String> {
        let t = &self.trainer;
        let res = self.arch.space.input_resolution;
        let mut lines = vec![
            format!(
                "searcher train {} with tch 0.24.0 on libtorch {}",
                env!("CARGO_PKG_VERSION"),
                env!("LIBTORCH_VERSION")
            ),
            format!(
                "network: {} blocks, {:.3}M parameters ({} classes), {:.1}M multiply-adds per {res}x{res} image at 1000 classes",
                self.arch.stages.iter().map(|s| s.blocks.len()).sum::<usize>() + 3,
                t.net.parameter_count() as f64 / 1e6,
                self.data.num_classes(),
                self.arch.macs().unwrap_or(0) as f64 / 1e6,
            ),
            format!(
                "data: {} ({} to train on, {} held out)",
                self.data.describe(),
                self.split.train.len(),
                self.split.held_out.len()
            ),
        ];
        lines.extend(t.recipe.describe());
        if let Some(epoch) = self.resumed_after {
            lines.push(format!(
                "resumed from {} after epoch {epoch}/{}",
                self.checkpoint.display(),
                t.recipe.epochs
            ));
        }
        if let Some(d) = &self.dist {
            lines.push(d.describe(t.recipe.batch_size));
        }
        lines.push(format!(
            "training on {:?}; checkpoint {}; weights to {}",
            self.device,
            self.checkpoint.display(),
            self.out.display()
        ));
        lines
    }

    /// Trains one epoch and checkpoints it; a loss that turned NaN stops
    /// here with the previous epoch's checkpoint untouched.
    pub fn run_epoch(&mut self, progress: &mut dyn FnMut(usize, usize)) -> Result<super::EpochLog> {
        let log = self
            .trainer
            .run_epoch(self.data.as_ref(), &self.split, progress)
            .map_err(|e| match e {
                SearchError::TrainingDiverged { epoch, step, message, last_epoch, .. } => {
                    SearchError::TrainingDiverged {
                        epoch,
                        step,
                        message,
                        last_epoch,
                        hint: format!(
                            " ({}); a smaller --lr avoids it, with --restart or another --out (the checkpoint's recipe differs)",
                            self.checkpoint.display()
                        ),
                    }
                }
                other => other,
            })?;
        if self.writes() {
            self.trainer.save(&self.checkpoint)?;
        }
        Ok(log)
    }

    /// Whether this process writes the checkpoint and the weights: rank 0
    /// of a group, or the one process.
    pub fn writes(&self) -> bool {
        crate::dist::writes(self.dist.as_deref())
    }

    /// Writes the weights (and each batch norm's `num_batches_tracked`, so
    /// that PyTorch's strict `load_state_dict` takes the file) to `--out`.
    pub fn finish(&self) -> Result<()> {
        if !self.writes() {
            return Ok(());
        }
        let steps: usize = self.trainer.history.iter().map(|l| l.steps).sum();
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (name, t) in self.trainer.net.named_variables() {
            if let Some(bn) = name.strip_suffix(".running_var") {
                let count = Tensor::from_slice(&[steps as i64]).reshape([]);
                named.push((format!("{bn}.num_batches_tracked"), count));
            }
            named.push((
                name,
                t.detach()
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float)
                    .contiguous(),
            ));
        }
        let file = space::io::AtomicFile::new(&self.out)?;
        Tensor::write_safetensors(&named, file.temp_path()).map_err(|e| SearchError::Io {
            path: self.out.clone(),
            error: std::io::Error::other(e.to_string()),
        })?;
        Ok(file.commit()?)
    }
}

fn progress_bar(epoch: usize, epochs: usize) -> impl FnMut(usize, usize) {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty {
            let filled = done * 30 / total.max(1);
            eprint!(
                "\repoch {}/{epochs} [{}{}] {done}/{total}",
                epoch + 1,
                "#".repeat(filled),
                " ".repeat(30 - filled)
            );
            if done == total {
                eprint!("\r{}\r", " ".repeat(70));
            }
            let _ = std::io::stderr().flush();
        }
    }
}

fn run(cli: &TrainCli) -> anyhow::Result<()> {
    let mut session = prepare(&cli.inputs, &cli.recipe)?;
    if !session.writes() {
        // Another rank of the group: the same steps, silently.
        while !session.trainer.is_done() {
            session.run_epoch(&mut |_, _| {})?;
        }
        return Ok(());
    }
    for warning in &session.warnings {
        note(&format!("warning: {warning}"));
    }
    for line in session.describe() {
        say(&line)?;
    }
    let epochs = session.trainer.recipe.epochs;
    while !session.trainer.is_done() {
        let epoch = session.trainer.next_epoch;
        let log = session.run_epoch(&mut progress_bar(epoch, epochs))?;
        note(&log.line(epochs));
    }
    session.finish()?;
    let last = session.trainer.history.last();
    say(&format!(
        "weights written to {} (held-out top-1 {:.2}%, top-5 {:.2}%)",
        session.out.display(),
        100.0 * last.map_or(f64::NAN, |l| l.top1),
        100.0 * last.map_or(f64::NAN, |l| l.top5)
    ))?;
    Ok(())
}

/// A line on stdout; a closed stdout stops the run with an error, keeping
/// every checkpoint written so far.
fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| {
        anyhow::anyhow!("cannot write to standard output ({e}); stopped here, keeping the checkpoint after each epoch: rerun the same command to continue")
    })
}

fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `searcher train ...`: `args` start with the program's name, `train`
/// dropped. Every failure is one `error:` line and status 2.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let cli = TrainCli::parse_from(&args);
    let run_args = &cli.inputs.run;
    if run_args.launches() {
        // The ranks run `searcher train` with the same flags.
        let mut relaunch = vec![args[0].clone(), "train".into()];
        relaunch.extend(args[1..].iter().cloned());
        return run_args.launch(&relaunch);
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}
