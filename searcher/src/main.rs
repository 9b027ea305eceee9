//! `searcher`: the TF-NAS search from a latency table to a network that
//! meets its latency target.
//!
//! Everything that can be wrong with the inputs (table entries, target
//! range, batch size, data set, checkpoint) is checked before the first
//! training step, and reported with a non-zero exit.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use searcher::data::{split_per_class, Dataset, Patterns, Split};
use searcher::images::{ImageSet, LoaderOptions};
use searcher::latency::LatencyModel;
use searcher::proxy;
use searcher::search::{Search, Settings};
use space::{meta, Architecture, LatencyTable, SearchSpaceConfig};
use tch::Device;

/// A latency in milliseconds: a positive finite number, refused while the
/// arguments are parsed rather than after the table and data are loaded.
fn positive_ms(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms > 0.0 => Ok(ms),
        _ => Err(format!("'{text}' is not a positive number of milliseconds")),
    }
}

#[derive(Parser)]
#[command(
    name = "searcher",
    version,
    about = "TF-NAS search against a latency table",
    long_about = "TF-NAS search against a latency table. Hyper-parameter defaults are the method's \
                  (tfnas-method.md §5); scripts/run.sh passes a short run's settings when given no arguments."
)]
struct Cli {
    /// Latency table (CSV written by `profiler`). Without it, an analytic
    /// MAC-count proxy table is built in memory (not a measurement).
    #[arg(long)]
    table: Option<PathBuf>,
    /// Latency target in milliseconds per batch of the table.
    #[arg(long, default_value_t = 15.0, value_parser = positive_ms)]
    target_ms: f64,
    /// Where to write the derived architecture JSON.
    #[arg(long, default_value = "arch.json")]
    out: PathBuf,
    /// Checkpoint file, written after every epoch; by default `--out` with
    /// its extension replaced by `.ckpt`.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint (same settings, space, table and data).
    #[arg(long)]
    resume: bool,
    /// `cpu`, `cuda`, `cuda:N`, or `auto` (the first GPU if there is one).
    #[arg(long, default_value = "auto")]
    device: String,
    /// libtorch CPU threads (its default when omitted).
    #[arg(long)]
    threads: Option<i32>,
    /// Search space file (.json or .toml); the TF-NAS ImageNet space by default.
    #[arg(long)]
    space: Option<PathBuf>,
    /// The batch size latencies must refer to; the table must have been
    /// measured at it. Sets the proxy table's batch (default 32).
    #[arg(long)]
    latency_batch: Option<u32>,

    /// Image folder (one subfolder per class, JPEG or PNG, split 80/20 per
    /// class), a CIFAR-10 binary folder (data_batch_1.bin ..), or the root
    /// the --train-list and --val-list paths are relative to. Without it,
    /// the embedded pattern set.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Threads decoding images (0: one per core).
    #[arg(long, default_value_t = 0)]
    loader_threads: usize,
    /// Training batches decoded ahead of the search (memory: this many
    /// batches plus the one in use).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..1024))]
    prefetch: u64,
    /// Stop at the first unreadable image instead of skipping it with a
    /// warning.
    #[arg(long)]
    strict: bool,
    /// Official-format split list (`wnid/file.JPEG label`) for weight steps.
    #[arg(long, requires_all = ["data", "val_list"])]
    train_list: Option<PathBuf>,
    /// Official-format split list for architecture steps.
    #[arg(long, requires_all = ["data", "train_list"])]
    val_list: Option<PathBuf>,
    /// Images of the embedded pattern set (10 classes, split 80/20).
    #[arg(long, default_value_t = 2000)]
    embedded_images: usize,
    /// Side of the search images: by default 224 for image data (--data,
    /// with or without the official split lists), the method's search
    /// resolution, and 48 for the embedded set. Below 33x33 the late stages
    /// run at 1x1 and learn nothing. The table's deployment resolution is
    /// independent of it.
    #[arg(long)]
    resolution: Option<u32>,
    /// Pixel noise of the embedded set.
    #[arg(long, default_value_t = 0.3)]
    noise: f32,

    #[arg(long, default_value_t = 90)]
    epochs: usize,
    /// Weights-only epochs on single sampled paths before architecture steps.
    #[arg(long, default_value_t = 10)]
    warmup_epochs: usize,
    /// Batch size of weight and architecture steps.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// SGD learning rate of the weights (cosine over the epochs).
    #[arg(long, default_value_t = 0.025)]
    weight_lr: f64,
    #[arg(long, default_value_t = 0.9)]
    weight_momentum: f64,
    #[arg(long, default_value_t = 1e-5)]
    weight_decay: f64,
    /// Gradient-norm clip of weight steps.
    #[arg(long, default_value_t = 5.0)]
    weight_clip: f64,
    /// Adam learning rate of α and β.
    #[arg(long, default_value_t = 0.01)]
    arch_lr: f64,
    #[arg(long, default_value_t = 0.5)]
    arch_beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    arch_beta2: f64,
    #[arg(long, default_value_t = 5e-4)]
    arch_weight_decay: f64,
    #[arg(long, default_value_t = 5.0)]
    arch_clip: f64,
    /// Initial Gumbel-softmax temperature T.
    #[arg(long, default_value_t = 5.0)]
    temperature: f64,
    /// Factor on T after every epoch past warm-up.
    #[arg(long, default_value_t = 0.96)]
    temperature_decay: f64,
    /// Weight λ of the latency loss λ·|LAT/target − 1|.
    #[arg(long, default_value_t = 0.1)]
    lambda: f64,
    /// Seed of weights, data order, sampling and the data split.
    #[arg(long, default_value_t = 2)]
    seed: u64,
    /// Keep the widths elasticity scaling sets multiples of N. By default
    /// the table's width step (its `width_step` header), so every width of
    /// the derived network is a measured entry; 1 (the method's channel
    /// granularity) for a table without one. `--width-multiple 1` keeps the
    /// method's granularity on any table.
    #[arg(long)]
    width_multiple: Option<u32>,
    /// The method exactly: no landing extension (which, when width scaling
    /// alone misses the target, changes depth in β's order and ops in α's,
    /// then scales widths again) and the method's 1-channel width
    /// granularity.
    #[arg(long, conflicts_with = "width_multiple")]
    method_strict: bool,
}

/// The search resolution: the flag, else the method's 224 for image data
/// and 48 for the embedded set.
fn resolution(cli: &Cli) -> u32 {
    cli.resolution
        .unwrap_or(if cli.data.is_some() { 224 } else { 48 })
}

/// The width multiple: the flag (refused where a layer's range holds no
/// multiple of it), 1 with `--method-strict`, else the table's width step
/// (1 where the table has none, or where a range cannot hold it).
fn width_multiple(
    cli: &Cli,
    space: &SearchSpaceConfig,
    model: &LatencyModel,
    table: &LatencyTable,
) -> Result<u32> {
    let unheld = |m: u32| {
        for (s, stage) in model.curves.iter().enumerate() {
            for (b, layer) in stage.iter().enumerate() {
                for (op, c) in space.ops.iter().zip(layer) {
                    if !searcher::elastic::range_holds(c.range.min, c.range.max, m) {
                        return Some(format!(
                            "op {} in stage {} layer {} has widths {}..{}, which hold no multiple of it",
                            op.name,
                            s + 1,
                            b + 1,
                            c.range.min,
                            c.range.max
                        ));
                    }
                }
            }
        }
        None
    };
    if let Some(m) = cli.width_multiple {
        if let Some(why) = unheld(m) {
            return Err(
                searcher::SearchError::Config(format!("--width-multiple {m}: {why}")).into(),
            );
        }
        println!("width multiple {m} (--width-multiple)");
        return Ok(m);
    }
    if cli.method_strict {
        println!("width multiple 1: the method's granularity (--method-strict)");
        return Ok(1);
    }
    let d = searcher::measured::default_width_multiple(table);
    if let Some(why) = unheld(d.multiple) {
        println!(
            "width multiple 1: the table's width step {} does not fit this space ({why})",
            d.multiple
        );
        return Ok(1);
    }
    println!("{}", d.why);
    Ok(d.multiple)
}

fn toolchain() -> String {
    let cuda = tch::Cuda::is_available();
    format!(
        "searcher {} with tch 0.24.0 on libtorch {}; CUDA available: {} ({} devices), cuDNN: {}",
        env!("CARGO_PKG_VERSION"),
        env!("LIBTORCH_VERSION"),
        if cuda { "yes" } else { "no" },
        tch::Cuda::device_count(),
        if tch::Cuda::cudnn_is_available() {
            "yes"
        } else {
            "no"
        },
    )
}

fn parse_device(s: &str) -> Result<Device> {
    let device = match s {
        "cpu" => Device::Cpu,
        "auto" => Device::cuda_if_available(),
        "cuda" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => Device::Cuda(n),
            _ => bail!("--device must be cpu, cuda, cuda:N or auto, got '{s}'"),
        },
    };
    if let Device::Cuda(n) = device {
        let count = tch::Cuda::device_count() as usize;
        if n >= count {
            bail!("--device {s}: this machine has {count} CUDA device(s) visible to libtorch");
        }
    }
    Ok(device)
}

/// Writes `text` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

fn load_data(cli: &Cli) -> Result<(Box<dyn Dataset>, Split)> {
    let options = LoaderOptions {
        threads: cli.loader_threads,
        prefetch: cli.prefetch as usize,
        strict: cli.strict,
    };
    Ok(match (&cli.data, &cli.train_list, &cli.val_list) {
        (Some(root), Some(train), Some(val)) => {
            let (set, split) =
                ImageSet::lists(root, train, val, resolution(cli), cli.seed, options)?;
            (Box::new(set), split)
        }
        (Some(dir), _, _) => {
            let set = ImageSet::open(dir, resolution(cli), cli.seed, options)?;
            let split = split_per_class(&set, 0.8, cli.seed);
            (Box::new(set), split)
        }
        _ => {
            let set = Patterns::new(cli.embedded_images, resolution(cli), cli.noise, cli.seed)?;
            let split = split_per_class(&set, 0.8, cli.seed);
            (Box::new(set), split)
        }
    })
}

fn progress_bar(epoch: usize, epochs: usize) -> impl FnMut(usize, usize) {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty {
            let width = 30;
            let filled = done * width / total.max(1);
            eprint!(
                "\repoch {}/{epochs} [{}{}] {done}/{total}",
                epoch + 1,
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            if done == total {
                eprint!("\r{}\r", " ".repeat(width + 40));
            }
            let _ = std::io::stderr().flush();
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    println!("{}", toolchain());
    if let Some(n) = cli.threads {
        tch::set_num_threads(n);
    }
    let device = parse_device(&cli.device)?;
    let space = match &cli.space {
        Some(p) => SearchSpaceConfig::from_path(p)?,
        None => SearchSpaceConfig::default(),
    };
    print!("{}", space.describe());

    let table = match &cli.table {
        Some(path) => LatencyTable::from_path(path)?,
        None => {
            let t = proxy::proxy_table(&space, cli.latency_batch.unwrap_or(32))?;
            eprintln!(
                "warning: no --table given: using an analytic MAC-count proxy table (ms = {:e}·MACs·batch + {} per block), not a measurement; the derived network's latency means nothing on any device",
                proxy::MS_PER_MAC,
                proxy::MS_PER_BLOCK
            );
            t
        }
    };
    if let Some(asked) = cli.latency_batch {
        if table.batch() != asked {
            return Err(searcher::SearchError::BatchMismatch {
                table: table.origin().to_string(),
                table_batch: table.batch(),
                asked,
            }
            .into());
        }
    }
    if let Some(digest) = table.metadata().get(meta::SPACE_DIGEST) {
        if digest != space.digest() {
            eprintln!(
                "warning: the table was planned for space digest {digest}, this search uses {}; every needed entry is checked next",
                space.digest()
            );
        }
    }
    let model = LatencyModel::new(&space, &table)?;
    let multiple = width_multiple(&cli, &space, &model, &table)?;
    // The search runs on the table's sums of blocks; a correction fitted
    // by `profiler fit` maps them to measured latency, so the target is
    // mapped back once (the correction keeps order) and every bound and
    // report below is in measured terms.
    let correction = table.correction();
    let target_sum = correction.map_or(cli.target_ms, |c| c.invert(cli.target_ms));
    let (min_ms, max_ms) = model.bounds();
    let (min_ms, max_ms) = (table.corrected_total(min_ms), table.corrected_total(max_ms));
    if !(min_ms..=max_ms).contains(&cli.target_ms) {
        return Err(searcher::SearchError::TargetOutOfRange {
            table: table.origin().to_string(),
            target_ms: cli.target_ms,
            min_ms,
            max_ms,
        }
        .into());
    }
    if let Some(c) = correction {
        println!(
            "the table's correction ({c}) maps the target {} ms to a sum of blocks of {target_sum:.4} ms, which the search and its log aim at",
            cli.target_ms
        );
    }
    println!(
        "table {} ({}, batch {}): networks from {min_ms:.3} to {max_ms:.3} ms; target {} ms",
        table.origin(),
        table
            .metadata()
            .get(meta::DEVICE_NAME)
            .unwrap_or("unknown device"),
        table.batch(),
        cli.target_ms
    );

    let (data, split) = load_data(&cli)?;
    println!(
        "data: {} ({} for weights, {} held out for architecture steps)",
        data.describe(),
        split.train.len(),
        split.held_out.len()
    );
    let settings = Settings {
        target_ms: target_sum,
        epochs: cli.epochs,
        warmup_epochs: cli.warmup_epochs,
        batch_size: cli.batch_size,
        weight_lr: cli.weight_lr,
        weight_momentum: cli.weight_momentum,
        weight_decay: cli.weight_decay,
        weight_clip: cli.weight_clip,
        arch_lr: cli.arch_lr,
        arch_beta1: cli.arch_beta1,
        arch_beta2: cli.arch_beta2,
        arch_weight_decay: cli.arch_weight_decay,
        arch_clip: cli.arch_clip,
        temperature: cli.temperature,
        temperature_decay: cli.temperature_decay,
        lambda: cli.lambda,
        seed: cli.seed,
        width_multiple: multiple,
    };
    let identity = format!(
        "table {} {:?}; data {}",
        table.origin(),
        table.metadata(),
        data.describe()
    );
    let mut search = Search::new(
        settings,
        &space,
        model,
        data.num_classes(),
        device,
        &identity,
    )?;
    let checkpoint = cli
        .checkpoint
        .clone()
        .unwrap_or_else(|| cli.out.with_extension("ckpt"));
    if cli.resume {
        if !checkpoint.exists() {
            bail!(
                "--resume: there is no checkpoint at {}",
                checkpoint.display()
            );
        }
        search.load(&checkpoint)?;
        println!(
            "resumed from {} after epoch {}/{}",
            checkpoint.display(),
            search.next_epoch,
            cli.epochs
        );
    }
    println!(
        "searching on {device:?}; checkpoint {}",
        checkpoint.display()
    );

    while !search.is_done() {
        let epoch = search.next_epoch;
        let log = search.run_epoch(data.as_ref(), &split, &mut progress_bar(epoch, cli.epochs))?;
        eprintln!("{}", log.line(cli.epochs, target_sum));
        search.save(&checkpoint)?;
    }

    let landing = search.land(!cli.method_strict);
    report_landing(&landing, cli.method_strict, target_sum);
    let arch = Architecture::from_choices(&space, &landing.choices)?.with_prediction(&table)?;
    write_atomically(&cli.out, &arch.to_json_pretty())?;
    let predicted = arch.prediction.as_ref().map_or(f64::NAN, |p| p.latency_ms);
    println!("derived architecture written to {}", cli.out.display());
    for (s, stage) in arch.stages.iter().enumerate() {
        let blocks: Vec<String> = stage
            .blocks
            .iter()
            .map(|b| format!("{} m{}", b.op, b.mid_channels))
            .collect();
        println!(
            "  stage {}: depth {} | {}",
            s + 1,
            stage.depth,
            blocks.join(" | ")
        );
    }
    println!(
        "predicted latency {predicted:.4} ms for target {} ms ({:+.2}%), batch {}{}",
        cli.target_ms,
        100.0 * (predicted / cli.target_ms - 1.0),
        table.batch(),
        if proxy::is_proxy(&table) {
            " [MAC-count proxy, not a measurement]"
        } else {
            ""
        }
    );
    println!(
        "{:.2}M parameters, {:.1}M multiply-adds per {}x{} image",
        arch.params()? as f64 / 1e6,
        arch.macs()? as f64 / 1e6,
        space.input_resolution,
        space.input_resolution
    );
    let interpolated = searcher::measured::interpolated_widths(&table, &arch)?;
    if interpolated.is_empty() {
        println!("every width of the derived network is a measured entry of the table");
    } else {
        println!(
            "{} width(s) interpolated by the table (optimistic: an unmeasured width tends to run slower): {}",
            interpolated.len(),
            interpolated.join("; ")
        );
    }
    if predicted < 0.99 * cli.target_ms {
        eprintln!(
            "warning: the derived network is {:.1}% under the target: the ops and depths the search chose cannot get closer even at their widest (a longer search lets the latency loss move them)",
            100.0 * (1.0 - predicted / cli.target_ms)
        );
    }
    // The correction's round trip may add an ulp to a network that sits
    // exactly on the target.
    if predicted > cli.target_ms * (1.0 + 1e-12) {
        bail!(
            "the derived network's predicted latency {predicted:.4} ms exceeds the target {} ms: even its narrowest widths are too slow for the ops and depths the search chose",
            cli.target_ms
        );
    }
    Ok(())
}

/// What the landing extension changed, and why.
fn report_landing(landing: &searcher::extend::Landing, strict: bool, target_sum: f64) {
    if strict {
        println!(
            "--method-strict: the method's argmax network as elasticity scaling left it, {:.4} ms",
            landing.ms
        );
    } else if landing.changes.is_empty() && landing.lands(target_sum) {
        println!(
            "the method's network lands ({:.4} ms for {target_sum:.4}): the landing extension changed nothing",
            landing.ms
        );
    } else if landing.changes.is_empty() {
        println!(
            "the method's network costs {:.4} ms for {target_sum:.4}, and the landing extension found no change that lands",
            landing.ms
        );
    } else {
        println!(
            "landing extension (--method-strict turns it off): the method's network costs {:.4} ms for {target_sum:.4}; {} change(s):",
            landing.method_ms,
            landing.changes.len()
        );
        for change in &landing.changes {
            println!("  {change}");
        }
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A closed stdout (`... | head`) ends the process quietly, as it ends any
/// Unix tool, instead of a panic in `println!`: Rust ignores SIGPIPE by
/// default, turning it into an error every print would have to handle.
fn restore_sigpipe() {
    #[cfg(unix)]
    // Safety: called first thing in `main`, before any other thread exists;
    // `SIG_DFL` is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
