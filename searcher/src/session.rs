//! A search from the command line's inputs to its written result, in the
//! three steps the binary calls: [`prepare`] checks everything that can be
//! wrong before the first training step (outputs, table, target, data,
//! checkpoint), [`Session::run_epoch`] trains, [`Session::finish`] derives
//! and writes the network.
//!
//! Nothing here prints: what a user should see comes back as
//! [`Session::warnings`], [`Session::describe`] and [`Report`].

use std::path::{Path, PathBuf};
use std::rc::Rc;

use space::io::{write_atomic, OutputLock};
use space::{meta, Architecture, LatencyTable, SearchSpaceConfig};
use tch::Device;

use crate::args::{DataArgs, RunArgs};
use crate::data::{split_per_class, Dataset, Patterns, Split};
use crate::dist::Dist;
use crate::error::{Result, SearchError};
use crate::extend::Landing;
use crate::images::{ImageSet, LoaderOptions};
use crate::latency::LatencyModel;
use crate::measured;
use crate::proxy;
use crate::search::{check_split, EpochLog, Search};
use crate::settings::{Bound, Settings, WIDTH_MULTIPLE};

/// Search images: 4 px is the least a stem and two strides keep a pixel of.
pub const RESOLUTION: Bound<u32> = Bound::closed("--resolution", 4, 4096);
pub const NOISE: Bound<f32> = Bound::closed("--noise", 0.0, 10.0);
pub const EMBEDDED_IMAGES: Bound<usize> = Bound::closed("--embedded-images", 20, 10_000_000);
pub const LOADER_THREADS: Bound<usize> = Bound::closed("--loader-threads", 0, 1024);
pub const LATENCY_BATCH: Bound<u32> = Bound::closed("--latency-batch", 1, 1 << 20);

/// `--threads`: at least one, at most the cores this machine has (more only
/// oversubscribes them, and 0 makes libtorch abort).
pub fn threads(text: &str) -> std::result::Result<i32, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bound = Bound::closed("--threads", 1, cores);
    bound.parse(text).map(|n| n as i32)
}

/// Everything a search reads and writes besides its [`Settings`].
#[derive(Clone, Debug, clap::Args)]
pub struct Inputs {
    /// Latency table (CSV written by `profiler`). Without it, an analytic
    /// MAC-count proxy table is built in memory (not a measurement).
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// Where to write the derived architecture JSON.
    #[arg(long, default_value = "arch.json")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
    /// Search space file (.json or .toml); the TF-NAS ImageNet space by default.
    #[arg(long)]
    pub space: Option<PathBuf>,
    /// The batch size latencies must refer to; the table must have been
    /// measured at it. Sets the proxy table's batch (default 32).
    #[arg(long, value_parser = LATENCY_BATCH.parser())]
    pub latency_batch: Option<u32>,
    #[command(flatten)]
    pub data: DataArgs,

    /// Keep the widths elasticity scaling sets multiples of N. By default
    /// the table's width step (its `width_step` header), so every width of
    /// the derived network is a measured entry; 1 (the method's channel
    /// granularity) for a table without one. `--width-multiple 1` keeps the
    /// method's granularity on any table.
    #[arg(long, value_parser = WIDTH_MULTIPLE.parser())]
    pub width_multiple: Option<u32>,
    /// The method exactly: no landing extension (which, when width scaling
    /// alone misses the target, changes depth in β's order and ops in α's,
    /// then scales widths again) and the method's 1-channel width
    /// granularity.
    #[arg(long, conflicts_with = "width_multiple")]
    pub method_strict: bool,
}

impl Inputs {
    pub fn checkpoint_path(&self) -> PathBuf {
        self.run.checkpoint_path(&self.out)
    }

    /// The files the search reads, named for messages.
    fn read_files(&self) -> Vec<(&'static str, &Path)> {
        let named = [("table", &self.table), ("space file", &self.space)];
        let mut files: Vec<_> = named
            .into_iter()
            .filter_map(|(what, p)| p.as_deref().map(|p| (what, p)))
            .collect();
        files.extend(self.data.read_files());
        files
    }
}

/// A search ready to train: inputs read and checked, outputs checked and
/// locked, a checkpoint of the same search resumed.
pub struct Session {
    pub space: SearchSpaceConfig,
    pub table: LatencyTable,
    pub data: Box<dyn Dataset>,
    pub split: Split,
    pub search: Search,
    pub device: Device,
    /// The target in measured terms, as asked.
    pub target_ms: f64,
    pub out: PathBuf,
    pub checkpoint: PathBuf,
    /// The epoch the checkpoint was resumed after, if one was.
    pub resumed_after: Option<usize>,
    /// Things a user should know that do not stop the search.
    pub warnings: Vec<String>,
    /// Where the width multiple came from, for the user.
    pub width_note: String,
    /// `--method-strict`: derive the method's network, no landing extension.
    pub method_strict: bool,
    /// This process's data-parallel group, if any: rank 0 alone writes.
    pub dist: Option<Rc<Dist>>,
    // Held until the session drops: no other search writes these files
    // (taken by the writing rank only).
    _locks: Vec<OutputLock>,
}

/// Checks and loads everything a search needs; fails before any training
/// and before writing anything.
pub fn prepare(inputs: &Inputs, settings: &Settings) -> Result<Session> {
    settings.check()?;
    let dist = inputs.run.join()?.map(Rc::new);
    let checkpoint = inputs.checkpoint_path();
    let locks = RunArgs::lock_writer_outputs(
        dist.as_deref(),
        &inputs.out,
        &checkpoint,
        "the architecture",
        &inputs.read_files(),
    )?;
    let device = inputs.run.device(dist.as_deref())?;
    let space = match &inputs.space {
        Some(p) => SearchSpaceConfig::from_path(p)?,
        None => SearchSpaceConfig::default(),
    };
    check_memory(inputs, settings, &space, device)?;
    let mut warnings = stale_temporaries(&locks);
    let table = load_table(inputs, &space, &mut warnings)?;
    let model = LatencyModel::new(&space, &table)?;
    let (width_multiple, width_note) = width_multiple(inputs, &space, &model, &table)?;
    let target_sum = check_target(&table, &model, settings.target_ms)?;

    let (data, split) = open_data(&inputs.data.source(), settings.seed)?;
    check_split(&split, settings.batch_size)?;
    let table_id = match &inputs.table {
        Some(_) => format!("sha256:{}", table.content_sha256()),
        None => format!("MAC-count proxy at batch {}", table.batch()),
    };
    let data_id = data.describe();
    let mut search = Search::new(
        Settings {
            target_ms: target_sum,
            width_multiple,
            ..settings.clone()
        },
        &space,
        model,
        data.num_classes(),
        device,
        &[("table", &table_id), ("data", &data_id)],
    )?;
    let resumed_after = resume_or_start(&mut search, &checkpoint, inputs)?;
    if let Some(d) = &dist {
        search.join(d.clone())?;
    }
    Ok(Session {
        space,
        table,
        data,
        split,
        search,
        device,
        target_ms: settings.target_ms,
        out: inputs.out.clone(),
        checkpoint,
        resumed_after,
        warnings,
        width_note,
        method_strict: inputs.method_strict,
        dist,
        _locks: locks,
    })
}

/// What taking the output locks removed: temporary files of killed runs.
pub fn stale_temporaries(locks: &[OutputLock]) -> Vec<String> {
    locks
        .iter()
        .flat_map(|lock| lock.removed())
        .map(|(path, bytes)| {
            format!(
                "removed {} ({}), a temporary file left by a run that was killed while writing it",
                path.display(),
                crate::memory::human(*bytes)
            )
        })
        .collect()
}

/// Refuses, before anything is allocated, a search whose memory (at least
/// the estimate of [`crate::memory`]) exceeds what this machine has.
fn check_memory(
    inputs: &Inputs,
    settings: &Settings,
    space: &SearchSpaceConfig,
    device: Device,
) -> Result<()> {
    let plan = crate::memory::Plan {
        space,
        resolution: inputs.data.resolution(),
        batch: settings.batch_size,
        embedded_images: inputs
            .data
            .data
            .is_none()
            .then_some(inputs.data.embedded_images),
        prefetch: inputs.data.prefetch as usize,
        on_cpu: device == Device::Cpu,
        arch_steps: settings.epochs > settings.warmup_epochs,
    };
    crate::memory::check(&crate::memory::estimate(&plan), crate::memory::available())
}

pub fn parse_device(s: &str) -> Result<Device> {
    let bad = |m: String| Err(SearchError::Config(m));
    let device = match s {
        "cpu" => Device::Cpu,
        "auto" => Device::cuda_if_available(),
        "cuda" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::Cuda(n),
            _ => {
                return bad(format!(
                    "--device must be cpu, cuda, cuda:N or auto, got '{s}'"
                ))
            }
        },
    };
    if let Device::Cuda(n) = device {
        let count = tch::Cuda::device_count() as usize;
        if n >= count {
            return bad(format!(
                "--device {s}: this machine has {count} CUDA device(s) visible to libtorch"
            ));
        }
    }
    Ok(device)
}

fn load_table(
    inputs: &Inputs,
    space: &SearchSpaceConfig,
    warnings: &mut Vec<String>,
) -> Result<LatencyTable> {
    let table = match &inputs.table {
        Some(path) => LatencyTable::from_path(path)?,
        None => {
            warnings.push(format!(
                "no --table given: using an analytic MAC-count proxy table (ms = {:e}·MACs·batch + {} per block), not a measurement; the derived network's latency means nothing on any device",
                proxy::MS_PER_MAC,
                proxy::MS_PER_BLOCK
            ));
            proxy::proxy_table(space, inputs.latency_batch.unwrap_or(32))?
        }
    };
    if let Some(asked) = inputs.latency_batch {
        if table.batch() != asked {
            return Err(SearchError::BatchMismatch {
                table: table.origin().to_string(),
                table_batch: table.batch(),
                asked,
            });
        }
    }
    table.check_in_space(space)?;
    Ok(table)
}

fn check_width_multiple(
    space: &SearchSpaceConfig,
    model: &LatencyModel,
    multiple: u32,
) -> Result<()> {
    if multiple <= 1 {
        return Ok(());
    }
    for (s, stage) in model.curves.iter().enumerate() {
        for (b, layer) in stage.iter().enumerate() {
            for (op, c) in space.ops.iter().zip(layer) {
                if !crate::elastic::range_holds(c.range.min, c.range.max, multiple) {
                    return Err(SearchError::Config(format!(
                        "--width-multiple {multiple}: op {} in stage {} layer {} has widths {}..{}, which hold no multiple of it",
                        op.name,
                        s + 1,
                        b + 1,
                        c.range.min,
                        c.range.max
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The width multiple and where it came from: the flag (refused where a
/// layer's range holds no multiple of it), 1 under `--method-strict`, else
/// the table's width step (1 where the table has none, or where a range
/// cannot hold it).
fn width_multiple(
    inputs: &Inputs,
    space: &SearchSpaceConfig,
    model: &LatencyModel,
    table: &LatencyTable,
) -> Result<(u32, String)> {
    if let Some(m) = inputs.width_multiple {
        check_width_multiple(space, model, m)?;
        return Ok((m, format!("width multiple {m} (--width-multiple)")));
    }
    if inputs.method_strict {
        let why = "width multiple 1: the method's granularity (--method-strict)";
        return Ok((1, why.into()));
    }
    let d = measured::default_width_multiple(table);
    match check_width_multiple(space, model, d.multiple) {
        Ok(()) => Ok((d.multiple, d.why)),
        Err(e) => Ok((
            1,
            format!(
                "width multiple 1: the table's width step {} does not fit this space ({e})",
                d.multiple
            ),
        )),
    }
}

/// The target as a sum of the table's blocks, after checking the table can
/// reach it. The search runs on the table's sums of blocks; a correction
/// fitted by `profiler fit` maps them to measured latency, so the target is
/// mapped back once (the correction keeps order) and every bound and report
/// is in measured terms.
fn check_target(table: &LatencyTable, model: &LatencyModel, target_ms: f64) -> Result<f64> {
    let target_sum = table
        .correction()
        .map_or(target_ms, |c| c.invert(target_ms));
    let (min_ms, max_ms) = table_bounds(table, model);
    if !(min_ms..=max_ms).contains(&target_ms) {
        return Err(SearchError::TargetOutOfRange {
            table: table.origin().to_string(),
            target_ms,
            min_ms,
            max_ms,
        });
    }
    Ok(target_sum)
}

/// The fastest and slowest networks of the space, in measured terms.
fn table_bounds(table: &LatencyTable, model: &LatencyModel) -> (f64, f64) {
    let (min_ms, max_ms) = model.bounds();
    (table.corrected_total(min_ms), table.corrected_total(max_ms))
}

/// Where a run's images come from: the data flags the search and
/// `searcher train` share.
pub struct DataSource<'a> {
    pub data: Option<&'a Path>,
    pub train_list: Option<&'a Path>,
    pub val_list: Option<&'a Path>,
    pub resolution: u32,
    pub embedded_images: usize,
    pub noise: f32,
    pub options: LoaderOptions,
}

/// Opens the data set and its split: the official lists, an image or
/// CIFAR-10 folder split 80/20 per class, or the embedded set.
pub fn open_data(source: &DataSource, seed: u64) -> Result<(Box<dyn Dataset>, Split)> {
    let (resolution, options) = (source.resolution, source.options);
    // Absolute paths, so that the data's description (part of what a
    // checkpoint must match) does not depend on how the path was spelled.
    let absolute =
        |p: Option<&Path>| p.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    let (data, train, val) = (
        absolute(source.data),
        absolute(source.train_list),
        absolute(source.val_list),
    );
    Ok(match (&data, &train, &val) {
        (Some(root), Some(train), Some(val)) => {
            let (set, split) = ImageSet::lists(root, train, val, resolution, seed, options)?;
            (Box::new(set), split)
        }
        (Some(dir), _, _) => {
            let set = ImageSet::open(dir, resolution, seed, options)?;
            let split = split_per_class(&set, 0.8, seed);
            (Box::new(set), split)
        }
        _ => {
            let set = Patterns::new(source.embedded_images, resolution, source.noise, seed)?;
            let split = split_per_class(&set, 0.8, seed);
            (Box::new(set), split)
        }
    })
}

/// A checkpoint of this search is resumed; one of another search is
/// refused (naming what differs) unless `--restart` says to start over; a
/// missing one is an error only under `--resume`. Returns the epoch resumed
/// after.
fn resume_or_start(
    search: &mut Search,
    checkpoint: &Path,
    inputs: &Inputs,
) -> Result<Option<usize>> {
    if !inputs.run.resumes(checkpoint)? {
        return Ok(None);
    }
    search.load(checkpoint)?;
    Ok(Some(search.next_epoch))
}

/// What a finished search derived.
pub struct Report {
    pub arch: Architecture,
    pub predicted_ms: f64,
    /// What the landing extension changed (nothing under `--method-strict`).
    pub landing: Landing,
    /// The derived network's widths that the table interpolates.
    pub interpolated: Vec<String>,
}

impl Session {
    /// Lines describing the prepared search, for the user.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.space.describe().lines().map(str::to_string).collect();
        let target_sum = self.search.settings.target_ms;
        if let Some(c) = self.table.correction() {
            lines.push(format!(
                "the table's correction ({c}) maps the target {} ms to a sum of blocks of {target_sum:.4} ms, which the search and its log aim at",
                self.target_ms
            ));
        }
        let (min_ms, max_ms) = table_bounds(&self.table, &self.search.model);
        lines.push(format!(
            "table {} ({}, batch {}): networks from {min_ms:.3} to {max_ms:.3} ms; target {} ms",
            self.table.origin(),
            self.table
                .metadata()
                .get(meta::DEVICE_NAME)
                .unwrap_or("unknown device"),
            self.table.batch(),
            self.target_ms
        ));
        if let Some(what) = self.table.metadata().get(meta::PREDICTED) {
            lines.push(format!(
                "the table is predicted by `profiler transfer`, not measured: {what}"
            ));
        }
        lines.push(format!(
            "data: {} ({} for weights, {} held out for architecture steps)",
            self.data.describe(),
            self.split.train.len(),
            self.split.held_out.len()
        ));
        if let Some(epoch) = self.resumed_after {
            lines.push(format!(
                "resumed from {} after epoch {epoch}/{}",
                self.checkpoint.display(),
                self.search.settings.epochs
            ));
        }
        lines.push(self.width_note.clone());
        if let Some(d) = &self.dist {
            lines.push(d.describe(self.search.settings.batch_size));
        }
        lines.push(format!(
            "searching on {:?}; checkpoint {}",
            self.device,
            self.checkpoint.display()
        ));
        lines
    }

    pub fn is_done(&self) -> bool {
        self.search.is_done()
    }

    /// Trains one epoch and checkpoints it. A loss that turned NaN stops
    /// here with the previous epoch's checkpoint untouched.
    pub fn run_epoch(&mut self, progress: &mut dyn FnMut(usize, usize)) -> Result<EpochLog> {
        let log = self
            .search
            .run_epoch(self.data.as_ref(), &self.split, progress)
            .map_err(|e| match e {
                SearchError::Diverged {
                    epoch,
                    step,
                    message,
                    last_epoch,
                    ..
                } => SearchError::Diverged {
                    epoch,
                    step,
                    message,
                    last_epoch,
                    hint: format!(
                        " ({}); a smaller --weight-lr or --arch-lr avoids it, with --restart or another --out (these settings differ from the checkpoint's)",
                        self.checkpoint.display()
                    ),
                },
                other => other,
            })?;
        if self.writes() {
            self.search.save(&self.checkpoint)?;
        }
        Ok(log)
    }

    /// Whether this process writes the checkpoint and the architecture:
    /// rank 0 of a group, or the one process.
    pub fn writes(&self) -> bool {
        crate::dist::writes(self.dist.as_deref())
    }

    /// Derives the network and writes it to `--out`.
    pub fn finish(&self) -> Result<Report> {
        let landing = self.search.land(!self.method_strict);
        let arch = Architecture::from_choices(&self.space, &landing.choices)?
            .with_prediction(&self.table)?;
        write_atomic(&self.out, arch.to_json_pretty().as_bytes())?;
        let predicted_ms = arch.prediction.as_ref().map_or(f64::NAN, |p| p.latency_ms);
        let interpolated = measured::interpolated_widths(&self.table, &arch)?;
        Ok(Report {
            arch,
            predicted_ms,
            landing,
            interpolated,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Inputs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        inputs: Inputs,
    }

    fn resolution(args: &[&str]) -> u32 {
        let argv = std::iter::once("searcher").chain(args.iter().copied());
        Cli::parse_from(argv).inputs.data.resolution()
    }

    #[test]
    fn the_search_resolution_defaults_to_224_for_images_and_48_for_the_embedded_set() {
        assert_eq!(resolution(&[]), 48);
        assert_eq!(resolution(&["--data", "images"]), 224);
        assert_eq!(resolution(&["--data", "images", "--resolution", "64"]), 64);
        assert_eq!(resolution(&["--resolution", "96"]), 96);
    }
}
