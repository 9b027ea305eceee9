//! `profiler measure --arch FILE ...`: time a whole network end to end.

use std::path::PathBuf;

use clap::Args;
use profiler::error::Result;
use profiler::measure::boundary::Boundary;
use profiler::measure::engine::Engine;
use profiler::validate::network::{sum_of_blocks_alone, table_prediction, time_network};
use space::Architecture;

use super::engine_args::EngineArgs;

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

/// Times a whole network and prints its statistics on stdout.
pub fn run(args: &MeasureArgs) -> Result<()> {
    let arch = Architecture::from_path(&args.arch)?;
    let blocks = arch.block_specs()?;
    let rule = args.engine.timing()?;
    let (mut engine, mut monitor) = args.engine.open()?;
    let name = args
        .arch
        .file_stem()
        .map_or("network".into(), |s| s.to_string_lossy().into_owned());
    let (workload, timed) = time_network(&mut engine, monitor.as_mut(), name, &blocks, &rule)?;
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
        let sum = sum_of_blocks_alone(
            &mut engine,
            monitor.as_mut(),
            &blocks,
            &rule,
            &mut |spec, ms| println!("block {spec} {ms:.4} ms"),
        )?;
        println!(
            "sum of per-block medians {sum:.4} ms, {:+.2}% against end to end {:.4} ms",
            (sum / s.median - 1.0) * 100.0,
            s.median
        );
        // What a table built now would predict (see `profiler::measure::boundary`).
        let boundary = Boundary::measure(&mut engine, monitor.as_mut(), &rule)?;
        let (extra, predicted) = table_prediction(sum, blocks.len(), boundary.ms);
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
