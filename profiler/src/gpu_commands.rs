//! The two commands that time on the GPU: building the table (the
//! profiler's default command) and `measure`, which times a whole network
//! end to end in the same engine. Their arguments are clap structs so that
//! `main.rs` only wires them in.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use space::{Architecture, SearchSpaceConfig};

use crate::boundary::Boundary;
use crate::cuda::CudaEngine;
use crate::engine::{Dtype, Engine, EngineConfig, Layout, Workload, L2};
use crate::error::{ProfilerError, Result};
use crate::monitor::{Monitor, NvmlMonitor};
use crate::stats::StopRule;
use crate::table_build::{build_table, BuildSettings, Output};
use crate::timing::{time_workload, TimingRule};

/// The device, the engine settings and the timing rule, shared by both
/// commands.
#[derive(Args, Clone, Debug)]
pub struct EngineArgs {
    /// CUDA device index.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Images per run (TF-NAS times at batch 32).
    #[arg(long, default_value_t = 32)]
    pub batch: u32,
    /// `graph` replays a captured CUDA graph per run, keeping CPU launch
    /// overhead out; `eager` launches every kernel.
    #[arg(long, default_value = "graph")]
    pub launch: crate::engine::Launch,
    /// `cold` flushes the L2 cache before every timed run.
    #[arg(long, default_value = "warm")]
    pub l2: L2,
    #[arg(long, default_value = "fp32")]
    pub dtype: Dtype,
    #[arg(long, default_value = "nchw")]
    pub layout: Layout,
    #[command(flatten)]
    pub timing: TimingArgs,
}

/// When to stop timing one workload; shared with `validate`, whose engine
/// settings come from the table instead of these defaults.
#[derive(Args, Clone, Debug)]
pub struct TimingArgs {
    /// Untimed warm-up per entry, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub warmup_ms: u64,
    /// Per-entry cap on sampling time, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub cap_ms: u64,
    /// Stop once the 95% CI of the median is within this percentage of it.
    #[arg(long, default_value_t = 0.5)]
    pub ci_percent: f64,
    /// Fewest timed runs per entry.
    #[arg(long, default_value_t = 10)]
    pub min_samples: u64,
}

impl TimingArgs {
    pub fn timing(&self) -> Result<TimingRule> {
        if !(self.ci_percent > 0.0 && self.ci_percent.is_finite()) {
            return Err(ProfilerError::Invalid(
                "--ci-percent must be a positive number".into(),
            ));
        }
        Ok(TimingRule {
            warmup: Duration::from_millis(self.warmup_ms),
            stop: StopRule {
                rel_half_width: self.ci_percent / 100.0,
                min_samples: self.min_samples.max(1),
                cap: Duration::from_millis(self.cap_ms),
                ..StopRule::default()
            },
        })
    }
}

impl EngineArgs {
    pub fn engine_config(&self) -> Result<EngineConfig> {
        if self.batch == 0 {
            return Err(ProfilerError::Invalid("--batch must be at least 1".into()));
        }
        Ok(EngineConfig {
            batch: self.batch,
            dtype: self.dtype,
            layout: self.layout,
            launch: self.launch,
            l2: self.l2,
            seed: 0,
        })
    }

    pub fn timing(&self) -> Result<TimingRule> {
        self.timing.timing()
    }

    /// Opens the engine and a monitor for its device (what `measure` and
    /// `validate` time with).
    pub fn open(&self) -> Result<(CudaEngine, Box<dyn Monitor>)> {
        let engine = CudaEngine::open(self.device, self.engine_config()?)?;
        let mut monitor = NvmlMonitor::open(&engine.info().device_uuid);
        eprintln!(
            "device {}: {} ({}), driver {}, CUDA {}, cuDNN {}; {}; {}",
            self.device,
            engine.info().device_name,
            engine.info().device_uuid,
            engine.info().driver,
            engine.info().cuda,
            engine.info().cudnn,
            monitor.describe(),
            monitor.settings()
        );
        Ok((engine, monitor))
    }
}

/// `profiler [--out FILE] ...`: build the latency table.
#[derive(Args, Clone, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Write the table to FILE instead of stdout, resuming it when it exists
    /// and was built with the same settings.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Measure every N-th mid width (plus each op's min, initial and max).
    #[arg(long, default_value_t = 8)]
    pub width_step: u32,
    /// Search space file (.json or .toml); the TF-NAS ImageNet space by default.
    #[arg(long)]
    pub space: Option<PathBuf>,
    /// Time at most N entries in this run, leaving the table unfinished for
    /// a later run with the same --out to resume.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `profiler measure --arch FILE ...`: time a whole network end to end.
#[derive(Args, Clone, Debug)]
pub struct MeasureArgs {
    /// Architecture JSON (as `searcher` writes and `predict` reads).
    #[arg(long)]
    pub arch: PathBuf,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Also time every block alone, as the table does, and print their sum
    /// against the end-to-end time (how well a table predicts the network).
    #[arg(long)]
    pub per_block: bool,
}

/// The command line as typed, for the table header.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if a.contains([' ', '\t']) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if std::io::stderr().is_terminal() {
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
    }
    bar
}

/// Builds the table as `args` say.
pub fn build(args: &BuildArgs) -> Result<()> {
    let space = match &args.space {
        Some(p) => SearchSpaceConfig::from_path(p)?,
        None => SearchSpaceConfig::default(),
    };
    // Check everything that needs no GPU before opening it.
    let plan_len = space.table_plan(args.width_step)?.len();
    if let Some(out) = &args.out {
        crate::resume::check_out_folder("--out", out)?;
    }
    let settings = BuildSettings {
        space,
        width_step: args.width_step,
        timing: args.engine.timing()?,
        command: command_line(),
        limit: args.limit,
    };
    let (mut engine, mut monitor) = args.engine.open()?;
    eprintln!(
        "timing {plan_len} entries of space '{}' at batch {}, width step {}",
        settings.space.name, args.engine.batch, args.width_step
    );
    let bar = progress_bar();
    let report = match &args.out {
        Some(path) => build_table(
            &mut engine,
            monitor.as_mut(),
            &settings,
            Output::File(path),
            &bar,
        )?,
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            build_table(
                &mut engine,
                monitor.as_mut(),
                &settings,
                Output::Stream(&mut lock),
                &bar,
            )?
        }
    };
    eprintln!(
        "measured {} entries ({} already there) in {:.1} s, {:.2} entries/s; {} re-measured after throttling, {} flagged throttled; clocks {}",
        report.measured,
        report.skipped,
        report.seconds,
        report.measured as f64 / report.seconds.max(1e-9),
        report.remeasured,
        report.throttled,
        report.clocks
    );
    Ok(())
}

/// Times a whole network and prints its statistics on stdout.
pub fn measure(args: &MeasureArgs) -> Result<()> {
    let arch = Architecture::from_path(&args.arch)?;
    let blocks = arch.block_specs()?;
    let rule = args.engine.timing()?;
    let (mut engine, mut monitor) = args.engine.open()?;
    let name = args
        .arch
        .file_stem()
        .map_or("network".into(), |s| s.to_string_lossy().into_owned());
    let workload = Workload::Network {
        name,
        blocks: blocks.clone(),
    };
    let timed = time_workload(&mut engine, monitor.as_mut(), &workload, &rule)?;
    let s = &timed.summary;
    println!(
        "{workload}: median {:.4} ms (p10 {:.4}, p90 {:.4}, 95% CI [{:.4}, {:.4}], {} runs) at batch {}, launch {}, l2 {}, {}{}",
        s.median,
        s.p10,
        s.p90,
        s.ci_low,
        s.ci_high,
        s.samples,
        args.engine.batch,
        args.engine.launch,
        args.engine.l2,
        engine.info().device_name,
        if timed.throttled() { ", THROTTLED" } else { "" }
    );
    if args.per_block {
        let mut medians: std::collections::HashMap<space::BlockSpec, f64> = Default::default();
        let mut sum = 0.0;
        for spec in &blocks {
            let ms = match medians.get(spec) {
                Some(&ms) => ms,
                None => {
                    let t = time_workload(
                        &mut engine,
                        monitor.as_mut(),
                        &Workload::Block(*spec),
                        &rule,
                    )?;
                    medians.insert(*spec, t.summary.median);
                    t.summary.median
                }
            };
            println!("block {spec} {ms:.4} ms");
            sum += ms;
        }
        println!(
            "sum of per-block medians {sum:.4} ms, {:+.2}% against end to end {:.4} ms",
            (sum / s.median - 1.0) * 100.0,
            s.median
        );
        // What a table built now would predict (see `crate::boundary`).
        let boundary = Boundary::measure(&mut engine, monitor.as_mut(), &rule)?;
        let extra = blocks.len().saturating_sub(1);
        let predicted = sum - extra as f64 * boundary.ms;
        println!(
            "table prediction {predicted:.4} ms (the sum less {extra} boundaries of {:.4} ms, 95% CI {:.4}..{:.4}), {:+.2}% against end to end {:.4} ms",
            boundary.ms,
            boundary.ci_low,
            boundary.ci_high,
            (predicted / s.median - 1.0) * 100.0,
            s.median
        );
    }
    Ok(())
}

/// `profiler verify`: the engine's outputs against the CPU reference.
#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// CUDA device index.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
    /// Images per check (the CPU reference is slow; keep it small).
    #[arg(long, default_value_t = 2)]
    pub batch: u32,
    #[arg(long, default_value = "graph")]
    pub launch: crate::engine::Launch,
    /// Also check TF-NAS-A end to end at batch 1.
    #[arg(long)]
    pub network: bool,
}

/// Checks every sample block (and TF-NAS-A with `--network`); fails when
/// any output is off by more than the tolerance.
pub fn verify(args: &VerifyArgs) -> Result<()> {
    use crate::numerics::{check_blocks, check_tfnas_a, Comparison, TOLERANCE};
    let open = |batch: u32| {
        CudaEngine::open(
            args.device,
            EngineConfig {
                batch,
                launch: args.launch,
                ..EngineConfig::default()
            },
        )
    };
    let mut engine = open(args.batch.max(1))?;
    eprintln!(
        "device {}: {} ({}); checking against the CPU at batch {}, launch {}, tolerance {TOLERANCE} of the largest value",
        args.device,
        engine.info().device_name,
        engine.info().device_uuid,
        args.batch,
        args.launch
    );
    let mut results = check_blocks(&mut engine)?;
    drop(engine);
    if args.network {
        let mut engine = open(1)?;
        results.push(check_tfnas_a(&mut engine)?);
    }
    let print = |c: &Comparison| {
        println!(
            "{} {}: max abs error {:.3e} (relative {:.3e}) over {} values",
            if c.ok() { "ok  " } else { "FAIL" },
            c.name,
            c.max_abs_err,
            c.relative(),
            c.len
        )
    };
    results.iter().for_each(print);
    let failed = results.iter().filter(|c| !c.ok()).count();
    if failed > 0 {
        return Err(ProfilerError::Invalid(format!(
            "{failed} of {} outputs differ from the CPU reference",
            results.len()
        )));
    }
    Ok(())
}
