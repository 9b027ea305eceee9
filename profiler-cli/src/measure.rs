//! `profiler measure --arch FILE ...`: a whole network timed end to end on
//! any engine; with `--per-block` its blocks alone as a table times them,
//! with `--table` at the table's speed reference beside its prediction.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use profiler::measure::boundary::Boundary;
use profiler::measure::engine::{Engine, Workload};
use profiler::measure::monitor::Monitor;
use profiler::measure::speed;
use profiler::measure::timing::TimingRule;
use profiler::validate::network::{sum_of_blocks_alone, table_prediction, time_network};
use space::{Architecture, BlockSpec, LatencyTable};

use crate::engine::EngineCli;
use crate::flags::TimingArgs;

/// `measure`'s flags.
#[derive(Args, Clone, Debug)]
pub struct MeasureArgs<S: Args> {
    /// Architecture JSON (as `searcher` writes and `predict` reads).
    #[arg(long)]
    pub arch: PathBuf,
    #[command(flatten)]
    pub engine: S,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// Also time every block alone, as the table does, and print their sum
    /// against the end-to-end time (how well a table predicts the network).
    #[arg(long)]
    pub per_block: bool,
    /// Also time the network at this table's speed reference (a CPU table
    /// built `--cache network` has one), as `validate` does, and print the
    /// table's prediction beside.
    #[arg(long)]
    pub table: Option<PathBuf>,
}

/// Times a whole network and prints its statistics on stdout.
pub fn run<E: EngineCli>(args: &MeasureArgs<E::Settings>) -> Result<()> {
    let arch = Architecture::from_path(&args.arch)?;
    let blocks = arch.block_specs()?;
    let rule = args.timing.flags(E::DEFAULTS.network_cap_ms).rule()?;
    let at_speed = match &args.table {
        Some(path) => Some(table_speed(path, &blocks)?),
        None => None,
    };
    let (mut engine, mut monitor) = E::open(&args.engine)?;
    let name = args
        .arch
        .file_stem()
        .map_or("network".into(), |s| s.to_string_lossy().into_owned());
    let (workload, timed) = time_network(&mut engine, monitor.as_mut(), name, &blocks, &rule)?;
    let s = &timed.summary;
    println!(
        "{workload}: median {:.4} ms (p10 {:.4}, p90 {:.4}, 95% CI [{:.4}, {:.4}], {} runs) at {}, {}{}",
        s.median,
        s.p10,
        s.p90,
        s.ci_low,
        s.ci_high,
        s.samples,
        E::describe(&args.engine),
        engine.info().device_name,
        if timed.throttled() { ", THROTTLED" } else { "" }
    );
    if let Some(table) = at_speed {
        at_table_speed(&mut engine, &workload, &rule, table)?;
    }
    if args.per_block {
        let note = E::per_block_note(&args.engine);
        per_block::<E>(
            &mut engine,
            monitor.as_mut(),
            &blocks,
            &rule,
            &note,
            s.median,
        )?;
    }
    Ok(())
}

/// `--per-block`: every block alone, their sum against the end-to-end
/// `median`, and where the engine has one, what a table built now would
/// predict after its boundary.
fn per_block<E: EngineCli>(
    engine: &mut E::Engine,
    monitor: &mut dyn Monitor,
    blocks: &[BlockSpec],
    rule: &TimingRule,
    note: &str,
    median: f64,
) -> Result<()> {
    let sum = sum_of_blocks_alone(engine, monitor, blocks, rule, &mut |spec, ms| {
        println!("block {spec} {ms:.4} ms")
    })?;
    println!(
        "sum of per-block medians {note}{sum:.4} ms, {:+.2}% against end to end {median:.4} ms",
        (sum / median - 1.0) * 100.0,
    );
    if E::measures_boundary() {
        // What a table built now would predict (see `profiler::measure::boundary`).
        let boundary = Boundary::measure(engine, monitor, rule)?;
        let (extra, predicted) = table_prediction(sum, blocks.len(), boundary.ms);
        println!(
            "table prediction {predicted:.4} ms (the sum less {extra} boundaries of {:.4} ms, 95% CI {:.4}..{:.4}), {:+.2}% against end to end {median:.4} ms",
            boundary.ms,
            boundary.ci_low,
            boundary.ci_high,
            (predicted / median - 1.0) * 100.0,
        );
    }
    Ok(())
}

/// `--table`: the table's speed reference and its prediction of `blocks`,
/// read before anything is timed.
fn table_speed(path: &Path, blocks: &[BlockSpec]) -> Result<(f64, f64)> {
    let table = LatencyTable::from_path(path)?;
    let Some(reference) = table.speed_reference_ms() else {
        let gpu = table.metadata().get(space::meta::THREADS).is_none();
        bail!(
            "{}: no '{}' line: `measure --table` times the network at a table's speed reference, which only a CPU table built with --cache network has{}",
            path.display(),
            speed::REFERENCE_KEY,
            if gpu { " (this is a GPU table: its header has no 'threads' line)" } else { "" }
        );
    };
    Ok((reference, table.predict_blocks(blocks)?.total_ms))
}

/// `--table`: the network at the table's speed reference, against the
/// table's prediction of it.
fn at_table_speed(
    engine: &mut dyn Engine,
    workload: &Workload,
    rule: &TimingRule,
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
