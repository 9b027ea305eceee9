//! `profiler-cpu`: the profiler's table build, `measure` and `validate` on
//! the CPU engine. Users run it as `profiler --device cpu ...`, which runs
//! this binary with the same arguments (`profiler/src/cpu_exec.rs`).
//!
//! Every failure prints one `error:` line on stderr and exits with status 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use profiler::analysis::plot;
use profiler::engine::{Engine, Workload};
use profiler::files::command_line;
use profiler::files::resume::check_out_folder;
use profiler::measure::speed;
use profiler::measure::timing::TimingFlags;
use profiler::monitor::Unmonitored;
use profiler::table::build::{build_table, BuildSettings, Output};
use profiler::table::{InNetwork, LogOnly};
use profiler::timing::time_workload;
use profiler::validate;
use profiler_cpu::{Cache, CpuEngine, CpuSettings, Timer};
use space::{meta, Architecture, LatencyTable, SearchSpaceConfig};

/// The default cache policy of a CPU table (see docs/cpu.md for why).
const DEFAULT_CACHE: &str = "network";
/// The default clock: the thread's CPU time where one thread does the
/// work (see docs/cpu.md), else the wall clock.
fn default_timer(threads: usize) -> Timer {
    if threads == 1 {
        Timer::Thread
    } else {
        Timer::Wall
    }
}

#[derive(Parser)]
#[command(
    name = "profiler-cpu",
    version,
    about = "Latency tables on the CPU (run as `profiler --device cpu ...`)"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// With no subcommand, build the latency table of the space on the CPU.
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    build: BuildArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Time a whole network from an architecture JSON end to end on the CPU.
    Measure(MeasureArgs),
    /// Check the CPU engine's output for each block kind against the CPU
    /// reference implementation.
    Verify(DeviceArgs),
    /// Sample networks of a CPU table's space, time each end to end with
    /// the table's settings, and report how well the table predicts them.
    Validate(Box<ValidateArgs>),
}

/// `--device cpu` (the only device here) and the GPU-only flags, refused
/// with one line rather than clap's usage text.
#[derive(Args, Clone, Debug)]
struct DeviceArgs {
    /// Must be `cpu` (how `profiler` chose this binary).
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, hide = true)]
    launch: Option<String>,
    #[arg(long, hide = true)]
    l2: Option<String>,
    #[arg(long, hide = true)]
    dtype: Option<String>,
    #[arg(long, hide = true)]
    layout: Option<String>,
}

impl DeviceArgs {
    fn check(&self) -> Result<()> {
        if self.device != "cpu" {
            bail!(
                "--device {}: profiler-cpu times on the CPU only (--device cpu); GPUs are the profiler's own (--device N)",
                self.device
            );
        }
        for (flag, given) in [
            ("--launch", &self.launch),
            ("--l2", &self.l2),
            ("--dtype", &self.dtype),
            ("--layout", &self.layout),
        ] {
            if given.is_some() {
                bail!("{flag} is a GPU setting; the CPU engine runs fp32 NCHW ops eagerly (use --cache warm|cold for the CPU's caches)");
            }
        }
        Ok(())
    }
}

/// When to stop timing one workload: the profiler's timing flags, with the
/// library's defaults.
#[derive(Args, Clone, Debug)]
struct TimingArgs {
    /// Untimed warm-up per entry, in milliseconds.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.warmup_ms)]
    warmup_ms: u64,
    /// Per-entry cap on sampling time, in milliseconds [default: 100 for a
    /// table's entries, 1000 for a whole network (measure, validate)].
    #[arg(long)]
    cap_ms: Option<u64>,
    /// Stop once the 95% CI of the median is within this percentage of it.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.ci_percent)]
    ci_percent: f64,
    /// Fewest timed runs per entry.
    #[arg(long, default_value_t = TimingFlags::DEFAULT.min_samples)]
    min_samples: u64,
}

/// The default cap for timing a whole network on the CPU: a network at
/// batch 1 runs 10 to 40 ms, so the table's 100 ms would stop at the
/// minimum count; at 1 s (about 60 runs) the median at the speed
/// reference moved by about 1% between windows on the development VM
/// (docs/cpu.md, "Speed").
const NETWORK_CAP_MS: u64 = 1000;

/// `validate`'s default passes on the CPU. On the development VM one
/// network's median at the speed reference wanders over tens of seconds:
/// 1 s windows of one process spread by 1.5% (sd), windows a minute apart
/// by 2 to 3%, so one contiguous measurement, however long, keeps one
/// stretch of that wandering. Three sweeps put a network's passes 30 s or
/// more apart in a validation of 30 networks (docs/cpu.md, "Accuracy").
const VALIDATE_PASSES: u32 = 3;

impl TimingArgs {
    /// The flags, with `cap_ms` when the command line does not say.
    fn flags(&self, cap_ms: u64) -> TimingFlags {
        TimingFlags {
            warmup_ms: self.warmup_ms,
            cap_ms: self.cap_ms.unwrap_or(cap_ms),
            ci_percent: self.ci_percent,
            min_samples: self.min_samples,
        }
    }
}

/// The CPU engine's settings.
#[derive(Args, Clone, Debug)]
struct CpuArgs {
    #[command(flatten)]
    device: DeviceArgs,
    /// Images per run (1: the CPU deployment case).
    #[arg(long, default_value_t = 1)]
    batch: u32,
    /// libtorch's intra-op threads, pinned to the first N CPUs this process
    /// may run on.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where a block finds its data when timed: `network` times each block
    /// inside networks of the space run back to back (a clock read between
    /// blocks); the others time it alone, and before each run `warm` does
    /// nothing, `llc` evicts the core's private caches, `cold` the
    /// last-level cache too.
    #[arg(long, default_value = DEFAULT_CACHE)]
    cache: Cache,
    /// `thread`: the thread's CPU time, blind to other processes' turns on
    /// the core (one thread only; the default with one); `wall`: the
    /// monotonic clock (the default with more threads).
    #[arg(long)]
    timer: Option<Timer>,
    #[command(flatten)]
    timing: TimingArgs,
}

impl CpuArgs {
    fn open(&self) -> Result<CpuEngine> {
        self.device.check()?;
        let engine = CpuEngine::open(CpuSettings {
            batch: self.batch,
            threads: self.threads,
            cache: self.cache,
            timer: self.timer.unwrap_or(default_timer(self.threads)),
            seed: 0,
        })?;
        describe(&engine);
        Ok(engine)
    }
}

fn describe(engine: &CpuEngine) {
    eprintln!(
        "cpu: {} ({} cores), {} thread(s) {}, LLC {} bytes, governor {}, libtorch {} {}, batch {}, cache {}, timer {}\nmemory: {}",
        engine.info().device_name,
        engine.fact(meta::CPU_CORES),
        engine.settings().threads,
        engine.fact(meta::CPU_AFFINITY),
        engine.fact(meta::LLC_BYTES),
        engine.fact(meta::CPU_GOVERNOR),
        engine.fact(meta::LIBTORCH),
        engine.fact(meta::CPU_CAPABILITY),
        engine.settings().batch,
        engine.settings().cache,
        engine.settings().timer,
        engine.fact(meta::CPU_MEMORY)
    );
}

#[derive(Args, Clone, Debug)]
struct BuildArgs {
    #[command(flatten)]
    cpu: CpuArgs,
    /// Write the table to FILE instead of stdout, resuming it when it exists
    /// and was built with the same settings.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Measure every N-th mid width (plus each op's min, initial and max).
    #[arg(long, default_value_t = 8)]
    width_step: u32,
    /// Search space file (.json or .toml); the TF-NAS ImageNet space by default.
    #[arg(long)]
    space: Option<PathBuf>,
    /// Time at most N entries in this run, leaving the table for a later run.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Args, Clone, Debug)]
struct MeasureArgs {
    /// Architecture JSON (as `searcher` writes and `predict` reads).
    #[arg(long)]
    arch: PathBuf,
    #[command(flatten)]
    cpu: CpuArgs,
    /// Also time every block alone, as the table does, and print their sum
    /// against the end-to-end time.
    #[arg(long)]
    per_block: bool,
    /// Also time the network at this table's speed reference (a table
    /// built `--cache network`), as `validate` does, and print its
    /// prediction beside.
    #[arg(long)]
    table: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
struct ValidateArgs {
    /// The CPU latency table to validate.
    #[arg(long)]
    table: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
    /// How many networks to sample and measure.
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Sweep the networks N times, each network timed for --cap-ms in every
    /// sweep, and report each network's mean: its passes lie far apart in
    /// time, and their spread is printed as the measurement's noise.
    #[arg(long, default_value_t = VALIDATE_PASSES,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(profiler::analysis::rows::MAX_PASSES)))]
    passes: u32,
    /// Seed of the network sampler; network i of a seed is always the same.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Draw every width as a multiple of N, as the searcher does with
    /// `--width-multiple N`; by default the table's width step (the networks
    /// the searcher derives from this table, every width a measured entry).
    /// 1 draws any width, interpolation included.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    width_multiple: Option<u32>,
    /// A row per network and pass as CSV, resumed when the file exists.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also draw predicted against measured latency (.svg or .png).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print the statistics as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Search space file the table was built for.
    #[arg(long)]
    space: Option<PathBuf>,
    /// The table's batch (refused if different).
    #[arg(long)]
    batch: Option<u32>,
    /// The table's threads (refused if different).
    #[arg(long)]
    threads: Option<usize>,
    /// The table's cache policy (refused if different).
    #[arg(long)]
    cache: Option<Cache>,
    /// The table's clock (refused if different).
    #[arg(long)]
    timer: Option<Timer>,
    #[command(flatten)]
    timing: TimingArgs,
}

fn load_space(path: Option<&PathBuf>) -> Result<SearchSpaceConfig> {
    Ok(match path {
        Some(p) => SearchSpaceConfig::from_path(p)?,
        None => SearchSpaceConfig::default(),
    })
}

fn build(args: &BuildArgs) -> Result<()> {
    let space = load_space(args.space.as_ref())?;
    let plan_len = space.table_plan(args.width_step)?.len();
    if let Some(out) = &args.out {
        check_out_folder("--out", out)?;
    }
    let settings = BuildSettings {
        space,
        width_step: args.width_step,
        timing: args.cpu.timing.flags(TimingFlags::DEFAULT.cap_ms).rule()?,
        command: command_line(),
        limit: args.limit,
        in_network: (args.cpu.cache == Cache::Network).then(InNetwork::default),
    };
    let mut engine = args.cpu.open()?;
    eprintln!(
        "timing {plan_len} entries of space '{}' at batch {}, width step {}",
        settings.space.name, args.cpu.batch, args.width_step
    );
    let mut monitor = Unmonitored {
        why: "a CPU".into(),
    };
    let bar = LogOnly;
    let report = match &args.out {
        Some(path) => build_table(
            &mut engine,
            &mut monitor,
            &settings,
            Output::File(path),
            &bar,
        )?,
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            build_table(
                &mut engine,
                &mut monitor,
                &settings,
                Output::Stream(&mut lock),
                &bar,
            )?
        }
    };
    eprintln!(
        "measured {} entries ({} already there) in {:.1} s, {:.2} entries/s",
        report.measured,
        report.skipped,
        report.seconds,
        report.measured as f64 / report.seconds.max(1e-9)
    );
    Ok(())
}

fn measure(args: &MeasureArgs) -> Result<()> {
    let arch = Architecture::from_path(&args.arch)?;
    let blocks = arch.block_specs()?;
    let rule = args.cpu.timing.flags(NETWORK_CAP_MS).rule()?;
    let at_speed = match &args.table {
        Some(path) => Some(table_speed(path, &blocks)?),
        None => None,
    };
    let mut engine = args.cpu.open()?;
    let mut monitor = Unmonitored {
        why: "a CPU".into(),
    };
    let name = args
        .arch
        .file_stem()
        .map_or("network".into(), |s| s.to_string_lossy().into_owned());
    let workload = Workload::Network {
        name,
        blocks: blocks.clone(),
    };
    let s = time_workload(&mut engine, &mut monitor, &workload, &rule)?.summary;
    println!(
        "{workload}: median {:.4} ms (p10 {:.4}, p90 {:.4}, 95% CI [{:.4}, {:.4}], {} runs) at batch {}, {} thread(s), {}",
        s.median, s.p10, s.p90, s.ci_low, s.ci_high, s.samples, args.cpu.batch, args.cpu.threads,
        engine.info().device_name
    );
    if let Some(table) = at_speed {
        at_table_speed(&mut engine, &workload, &rule, table)?;
    }
    if args.per_block {
        let mut medians = std::collections::HashMap::new();
        let mut sum = 0.0;
        for spec in &blocks {
            let ms = match medians.get(spec) {
                Some(&ms) => ms,
                None => {
                    let t =
                        time_workload(&mut engine, &mut monitor, &Workload::Block(*spec), &rule)?;
                    medians.insert(*spec, t.summary.median);
                    t.summary.median
                }
            };
            println!("block {spec} {ms:.4} ms");
            sum += ms;
        }
        println!(
            "sum of per-block medians (cache {}) {sum:.4} ms, {:+.2}% against end to end {:.4} ms",
            args.cpu.cache,
            (sum / s.median - 1.0) * 100.0,
            s.median
        );
    }
    Ok(())
}

/// `measure --table`: the table's speed reference and its prediction of
/// `blocks`, read before anything is timed.
fn table_speed(path: &Path, blocks: &[space::BlockSpec]) -> Result<(f64, f64)> {
    let table = LatencyTable::from_path(path)?;
    let Some(reference) = table.speed_reference_ms() else {
        bail!(
            "{}: no '{}' line (a table built with --cache network has one)",
            path.display(),
            speed::REFERENCE_KEY
        );
    };
    Ok((reference, table.predict_blocks(blocks)?.total_ms))
}

/// `measure --table`: the network at the table's speed reference, against
/// the table's prediction of it.
fn at_table_speed(
    engine: &mut CpuEngine,
    workload: &Workload,
    rule: &profiler::timing::TimingRule,
    (reference, predicted): (f64, f64),
) -> Result<()> {
    let t = speed::time_at_reference(engine, workload, rule.warmup, &rule.stop, reference)?;
    let s = &t.scaled;
    println!(
        "{workload}: at the table's speed median {:.4} ms (p10 {:.4}, p90 {:.4}, 95% CI [{:.4}, {:.4}], {} runs; raw {:.4} ms, the machine at {:.3}x the table's reference speed); the table predicts {predicted:.4} ms ({:+.2}%)",
        s.median, s.p10, s.p90, s.ci_low, s.ci_high, s.samples, t.raw.median,
        t.factor,
        (predicted / s.median - 1.0) * 100.0
    );
    Ok(())
}

fn verify(args: &DeviceArgs) -> Result<()> {
    args.check()?;
    let mut engine = CpuEngine::open(CpuSettings {
        batch: 2,
        threads: 1,
        cache: Cache::Warm,
        timer: Timer::Wall,
        seed: 0,
    })?;
    let results = profiler_cpu::numerics::check_blocks(&mut engine)?;
    for c in &results {
        println!(
            "{} {}: max abs error {:.3e} (relative {:.3e}) over {} values",
            if c.ok() { "ok  " } else { "FAIL" },
            c.name,
            c.max_abs_err,
            c.relative(),
            c.len
        );
    }
    let failed = results.iter().filter(|c| !c.ok()).count();
    if failed > 0 {
        bail!(
            "{failed} of {} outputs differ from the CPU reference",
            results.len()
        );
    }
    Ok(())
}

/// A CPU table's settings, with the flags allowed only to repeat them.
fn resolve(table: &LatencyTable, args: &ValidateArgs) -> Result<CpuSettings> {
    let md = table.metadata();
    let Some(threads) = md.get(meta::THREADS) else {
        bail!(
            "{}: a GPU table (its header has no '{}' line); validate it with `profiler validate --device N`",
            table.origin(),
            meta::THREADS
        );
    };
    let threads: usize = threads
        .parse()
        .with_context(|| format!("{}: header '{}: {threads}'", table.origin(), meta::THREADS))?;
    let cache: Cache = md
        .get(meta::CACHE)
        .unwrap_or("warm")
        .parse()
        .map_err(|e: String| {
            anyhow::anyhow!("{}: header '{}': {e}", table.origin(), meta::CACHE)
        })?;
    let timer: Timer = md
        .get(meta::TIMER)
        .unwrap_or("wall")
        .parse()
        .map_err(|e: String| {
            anyhow::anyhow!("{}: header '{}': {e}", table.origin(), meta::TIMER)
        })?;
    let mut diffs = Vec::new();
    if args.timer.is_some_and(|t| t != timer) {
        diffs.push(format!(
            "timer: table '{timer}', flag '{}'",
            args.timer.unwrap_or(timer)
        ));
    }
    if args.batch.is_some_and(|b| b != table.batch()) {
        diffs.push(format!(
            "batch: table '{}', flag '{}'",
            table.batch(),
            args.batch.unwrap_or(0)
        ));
    }
    if args.threads.is_some_and(|t| t != threads) {
        diffs.push(format!(
            "threads: table '{threads}', flag '{}'",
            args.threads.unwrap_or(0)
        ));
    }
    if args.cache.is_some_and(|c| c != cache) {
        diffs.push(format!(
            "cache: table '{cache}', flag '{}'",
            args.cache.unwrap_or(cache)
        ));
    }
    if !diffs.is_empty() {
        bail!(profiler::ProfilerError::FlagsDisagreeWithTable {
            table: table.origin().to_string(),
            diffs: diffs.join("; "),
        });
    }
    Ok(CpuSettings {
        batch: table.batch(),
        threads,
        cache,
        timer,
        seed: 0,
    })
}

fn validate_cmd(args: &ValidateArgs) -> Result<()> {
    args.device.check()?;
    if let Some(p) = &args.plot {
        plot::check_plot_path(p)?;
    }
    if let Some(p) = &args.out {
        check_out_folder("--out", p)?;
    }
    let space = load_space(args.space.as_ref())?;
    let text = std::fs::read_to_string(&args.table)
        .with_context(|| format!("cannot read {}", args.table.display()))?;
    let table = LatencyTable::parse(&text, &args.table.display().to_string())?;
    let settings = resolve(&table, args)?;
    let job = validate::Job::new(
        &table,
        validate::sha256_16(text.as_bytes()),
        space,
        settings.engine_config(),
        validate::Sampling::new(&table, args.seed, args.samples, args.width_multiple),
        args.timing.flags(NETWORK_CAP_MS).rule()?,
        command_line(),
    )?
    .with_passes(args.passes)?;
    let mut engine = CpuEngine::open(settings)?;
    describe(&engine);
    let mut monitor = Unmonitored {
        why: "a CPU".into(),
    };
    let mut log = |m: &str| eprintln!("{m}");
    let rows = validate::run_validation(
        &mut engine,
        &mut monitor,
        &job,
        args.out.as_deref(),
        &mut log,
    )?;
    let device = &engine.info().device_name;
    print!("{}", validate::report(&job, device, &rows, args.json)?);
    if let Some(p) = &args.plot {
        validate::plot(p, &rows)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => build(&cli.build),
        Some(Command::Measure(args)) => measure(&args),
        Some(Command::Verify(args)) => verify(&args),
        Some(Command::Validate(args)) => validate_cmd(&args),
    }
}

fn main() -> ExitCode {
    if let Err(why) = profiler_cpu::memory::ensure_tunables() {
        eprintln!("warning: {why}; timing with glibc's malloc defaults");
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
