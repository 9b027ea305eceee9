//! The CUDA engine's plug-in: its flags (device, batch, launch mode, L2
//! policy, dtype, layout), its defaults, and how it opens with an NVML
//! monitor of its device.

use anyhow::Result;
use clap::Args;
use profiler::cuda::cuda_engine::CudaEngine;
use profiler::measure::engine::{Dtype, Engine, EngineConfig, Launch, Layout, L2};
use profiler::measure::monitor::{Monitor, NvmlMonitor};
use profiler::reference::{check_blocks, check_tfnas_a, Comparison, TOLERANCE};
use profiler::table::build::BuildReport;
use profiler::validate::{resolve_settings, SettingFlags};
use profiler_cli::flags::in_range;
use profiler_cli::{Defaults, EngineCli};
use space::LatencyTable;

/// The largest batch the GPU flags take: far beyond what a table is built
/// at, small enough that a typo does not ask for the GPU's whole memory.
const MAX_BATCH: u32 = 4096;

/// The CUDA engine, for the shared command line.
pub struct Gpu;

/// `--device`: a CUDA index; `cpu` never gets here (`cpu_exec` hands it
/// over first), so anything else is a typo to name.
fn cuda_index(text: &str) -> Result<usize, String> {
    text.parse().map_err(|_| {
        format!(
            "--device takes a CUDA device index (0, 1, ...) or cpu (in lower case), got '{text}'"
        )
    })
}

/// The GPU's settings: every one is part of a table's fingerprint.
#[derive(Args, Clone, Debug)]
pub struct GpuArgs {
    /// The device: a CUDA device index (`profiler --device cpu ...` times
    /// on the CPU instead, with the CPU engine's flags).
    #[arg(long, default_value_t = 0, value_parser = cuda_index)]
    pub device: usize,
    /// Images per run (TF-NAS times at batch 32).
    #[arg(long, default_value_t = 32, value_parser = in_range::<u32>("--batch", 1, MAX_BATCH))]
    pub batch: u32,
    /// `graph` replays a captured CUDA graph per run, keeping CPU launch
    /// overhead out; `eager` launches every kernel.
    #[arg(long, default_value = "graph")]
    pub launch: Launch,
    /// `cold` flushes the L2 cache before every timed run.
    #[arg(long, default_value = "warm")]
    pub l2: L2,
    #[arg(long, default_value = "fp32")]
    pub dtype: Dtype,
    #[arg(long, default_value = "nchw")]
    pub layout: Layout,
}

/// `validate`'s GPU flags: the device, and settings for a table whose
/// header does not state them (refused if it states others).
#[derive(Args, Clone, Debug)]
pub struct GpuTableFlags {
    /// The device: a CUDA device index (`--device cpu` validates a CPU
    /// table on the CPU).
    #[arg(long, default_value_t = 0, value_parser = cuda_index)]
    pub device: usize,
    /// Batch size; the table's own (refused if different).
    #[arg(long)]
    pub batch: Option<u32>,
    /// Launch mode, for a table whose header does not say (refused if
    /// different from the header).
    #[arg(long)]
    pub launch: Option<Launch>,
    /// L2 policy, for a table whose header does not say.
    #[arg(long)]
    pub l2: Option<L2>,
    /// Element type, for a table whose header does not say.
    #[arg(long)]
    pub dtype: Option<Dtype>,
    /// Memory layout, for a table whose header does not say.
    #[arg(long)]
    pub layout: Option<Layout>,
}

/// `verify`'s GPU flags.
#[derive(Args, Clone, Debug)]
pub struct GpuVerifyArgs {
    /// The device: a CUDA device index (`--device cpu` checks the CPU
    /// engine).
    #[arg(long, default_value_t = 0, value_parser = cuda_index)]
    pub device: usize,
    /// Images per check (the CPU reference is slow; keep it small).
    #[arg(long, default_value_t = 2, value_parser = in_range::<u32>("--batch", 1, MAX_BATCH))]
    pub batch: u32,
    #[arg(long, default_value = "graph")]
    pub launch: Launch,
    /// Also check TF-NAS-A end to end at batch 1.
    #[arg(long)]
    pub network: bool,
}

impl EngineCli for Gpu {
    const NAME: &'static str = "profiler";
    const ABOUT: &'static str = "Latency tables for latency-constrained NAS: on a GPU (--device N), or on the CPU (--device cpu)";
    const DEFAULTS: Defaults = Defaults {
        network_cap_ms: profiler::measure::timing::TimingFlags::DEFAULT.cap_ms,
        validate_passes: 1,
        progress_bar: true,
    };

    type Engine = CudaEngine;
    type Settings = GpuArgs;
    type TableFlags = GpuTableFlags;
    type VerifyArgs = GpuVerifyArgs;

    fn open(args: &GpuArgs) -> Result<(CudaEngine, Box<dyn Monitor>)> {
        let engine = CudaEngine::open(args.device, Self::config(args)?)?;
        let mut monitor = NvmlMonitor::open(&engine.info().device_uuid);
        profiler_cli::engine::describe_once(&format!(
            "device {}: {} ({}), driver {}, CUDA {}, cuDNN {}; {}; {}",
            args.device,
            engine.info().device_name,
            engine.info().device_uuid,
            engine.info().driver,
            engine.info().cuda,
            engine.info().cudnn,
            monitor.describe(),
            monitor.settings()
        ));
        Ok((engine, monitor))
    }

    fn batch(args: &GpuArgs) -> u32 {
        args.batch
    }

    fn describe(args: &GpuArgs) -> String {
        format!(
            "batch {}, launch {}, l2 {}",
            args.batch, args.launch, args.l2
        )
    }

    fn measures_boundary() -> bool {
        true
    }

    fn build_note(report: &BuildReport) -> String {
        format!(
            "; {} re-measured after throttling, {} flagged throttled; clocks {}",
            report.remeasured, report.throttled, report.clocks
        )
    }

    fn table_settings(table: &LatencyTable, flags: &GpuTableFlags) -> Result<GpuArgs> {
        let config = resolve_settings(
            table,
            &SettingFlags {
                batch: flags.batch,
                launch: flags.launch,
                l2: flags.l2,
                dtype: flags.dtype,
                layout: flags.layout,
            },
        )?;
        Ok(GpuArgs {
            device: flags.device,
            batch: config.batch,
            launch: config.launch,
            l2: config.l2,
            dtype: config.dtype,
            layout: config.layout,
        })
    }

    fn config(args: &GpuArgs) -> Result<EngineConfig> {
        Ok(EngineConfig {
            batch: args.batch,
            dtype: args.dtype,
            layout: args.layout,
            launch: args.launch,
            l2: args.l2,
            seed: 0,
        })
    }

    /// Every sample block (and TF-NAS-A with `--network`) against the CPU
    /// reference.
    fn verify(args: &GpuVerifyArgs) -> Result<Vec<Comparison>> {
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
        Ok(results)
    }
}
