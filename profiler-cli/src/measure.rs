//! `profiler measure --arch FILE ...`: a whole network timed end to end on
//! any engine; with `--per-block` its blocks alone as a table times them,
//! with `--table` at the table's speed reference beside its prediction.
//! `--model F.pt` times a `searcher export` TorchScript instead, on an
//! engine that links libtorch, alone or in turns with `--arch`'s network;
//! `--versus B.json` times a second architecture in turns with `--arch`'s.
//! Two things compared are timed run by run (A B A B ...), each on an
//! engine of its own ([`time_paired`]): their ratio is the figure.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use profiler::analysis::rows::{spread_pct, UNSTABLE_FLOOR_PCT};
use profiler::measure::boundary::Boundary;
use profiler::measure::engine::{Engine, Workload};
use profiler::measure::monitor::Monitor;
use profiler::measure::paired::time_paired;
use profiler::measure::speed;
use profiler::measure::timing::{time_workload, Timed, TimingRule};
use profiler::validate::network::{sum_of_blocks_alone, table_prediction, time_network};
use space::{ArchLatency, Architecture, BlockSpec, LatencyTable, SearchSpaceConfig};

use crate::engine::{standard_engine, EngineCli};
use crate::flags::{GaugeArgs, TimingArgs};

/// `measure`'s flags.
#[derive(Args, Clone, Debug)]
pub struct MeasureArgs<S: Args> {
    /// Architecture JSON (as `searcher` writes and `predict` reads).
    #[arg(long, required_unless_present = "model")]
    pub arch: Option<PathBuf>,
    /// A TorchScript network written by `searcher export`, timed with the
    /// same rule (CPU engine only: `--device cpu`). With --arch too, the two
    /// are timed in turns, run by run (A B A B ...), in --passes passes, and
    /// the model's time is printed against the network's with its interval.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A second architecture JSON, timed in turns with --arch's network run
    /// by run (A B A B ...), in --passes passes; prints its time against
    /// --arch's with the ratio's 95% interval (each of its runs against the
    /// --arch runs either side, so the machine's speed cancels).
    #[arg(long, requires = "arch", conflicts_with = "model")]
    pub versus: Option<PathBuf>,
    /// Input height and width of --model [default: --arch's space's, else
    /// 224]; its batch is --batch and its channels the space's (3).
    #[arg(long, requires = "model", value_parser = clap::value_parser!(u32).range(8..=2048))]
    pub model_resolution: Option<u32>,
    /// Passes: with --arch alone, the network is prepared and timed N times
    /// and a spread of its passes wider than 5% is named as several latency
    /// modes [default: 1]; with --model or --versus, the passes of runs in
    /// turns, each prepared afresh [default: 3].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub passes: Option<u32>,
    #[command(flatten)]
    pub engine: S,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// Also time every block alone, as the table does, and print their sum
    /// against the end-to-end time (how well a table predicts the network).
    /// With --table, first each block's time inside the network at the
    /// table's speed beside the table's price of it (where the table
    /// misprices this network).
    #[arg(long, requires = "arch", conflicts_with_all = ["model", "versus"])]
    pub per_block: bool,
    /// Also time the network at this table's speed reference (a CPU table
    /// built `--cache network` has one), as `validate` does, and print the
    /// table's prediction beside.
    #[arg(long, requires = "arch", conflicts_with_all = ["model", "versus"])]
    pub table: Option<PathBuf>,
    #[command(flatten)]
    pub gauge: GaugeArgs,
}

/// Times a whole network (or an exported model, or both alternately) and
/// prints its statistics on stdout.
pub fn run<E: EngineCli>(args: &MeasureArgs<E::Settings>) -> Result<()> {
    match (&args.arch, &args.model) {
        (_, Some(model)) => run_model::<E>(args, args.arch.as_deref(), model),
        (Some(arch), None) => match &args.versus {
            Some(versus) => run_versus::<E>(args, arch, versus),
            None => run_arch::<E>(args, arch),
        },
        (None, None) => bail!("measure needs --arch or --model"),
    }
}

fn run_arch<E: EngineCli>(args: &MeasureArgs<E::Settings>, arch_path: &Path) -> Result<()> {
    let arch = Architecture::from_path(arch_path)?;
    let blocks = arch.block_specs()?;
    let rule = args.timing.flags(E::DEFAULTS.network_cap_ms).rule()?;
    let at_speed = match &args.table {
        Some(path) => Some(table_speed(path, &blocks, args.gauge.standard())?),
        None => None,
    };
    let (mut engine, mut monitor) = E::open(&args.engine)?;
    let passes = args.passes.unwrap_or(1);
    let mut medians = Vec::new();
    let mut last = None;
    for pass in 1..=passes {
        let (workload, timed) = time_network(
            &mut engine,
            monitor.as_mut(),
            stem(arch_path),
            &blocks,
            &rule,
        )?;
        let prefix = if passes > 1 {
            format!("pass {pass}/{passes}: ")
        } else {
            String::new()
        };
        print_timed::<E>(&args.engine, &engine, &workload, &timed, &prefix);
        medians.push(timed.summary.median);
        last = Some(workload);
    }
    let workload = last.expect("at least one pass");
    let median = median_of(&mut medians.clone());
    say_if_unstable(&workload, &medians, median);
    if let Some(table) = at_speed {
        let mut standard = standard_engine::<E>(&args.engine, Some(&table.0))?;
        let standard = standard.as_mut().map(|e| e as &mut dyn Engine);
        at_table_speed(
            &mut engine,
            standard,
            &workload,
            &rule,
            table,
            args.per_block,
        )?;
    }
    if args.per_block {
        let note = E::per_block_note(&args.engine);
        per_block::<E>(&mut engine, monitor.as_mut(), &blocks, &rule, &note, median)?;
    }
    Ok(())
}

/// The network of `arch`, read from `path` and named by its file.
fn network_workload(path: &Path, arch: &Architecture) -> Result<Workload> {
    Ok(Workload::Network {
        name: stem(path),
        blocks: arch.block_specs()?,
    })
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or("network".into(), |s| s.to_string_lossy().into_owned())
}

/// One timed workload's statistics line.
fn print_timed<E: EngineCli>(
    settings: &E::Settings,
    engine: &E::Engine,
    workload: &Workload,
    timed: &Timed,
    prefix: &str,
) {
    let s = &timed.summary;
    println!(
        "{prefix}{workload}: median {:.4} ms (p10 {:.4}, p90 {:.4}, 95% CI [{:.4}, {:.4}], {} runs) at {}, {}{}",
        s.median,
        s.p10,
        s.p90,
        s.ci_low,
        s.ci_high,
        s.samples,
        E::describe(settings),
        engine.info().device_name,
        if timed.throttled() { ", THROTTLED" } else { "" }
    );
}

/// `--model`: the exported network alone, or alternated with `--arch`'s
/// network built by the engine from its blocks.
fn run_model<E: EngineCli>(
    args: &MeasureArgs<E::Settings>,
    arch_path: Option<&Path>,
    model: &Path,
) -> Result<()> {
    if !E::times_models() {
        bail!(
            "--model: the {} engine cannot time a TorchScript network (it needs libtorch, which only the CPU engine links); use --device cpu",
            E::NAME
        );
    }
    if !model.is_file() {
        bail!("--model {}: no such file", model.display());
    }
    let arch = arch_path.map(Architecture::from_path).transpose()?;
    let space = arch
        .as_ref()
        .map_or_else(SearchSpaceConfig::default, |a| a.space.clone());
    let model_workload = Workload::Model {
        path: model.to_path_buf(),
        channels: space.input_channels,
        resolution: args.model_resolution.unwrap_or(space.input_resolution),
    };
    let network = match (&arch, arch_path) {
        (Some(a), Some(p)) => Some(network_workload(p, a)?),
        _ => None,
    };
    let rule = args.timing.flags(E::DEFAULTS.network_cap_ms).rule()?;
    let Some(network) = network else {
        let (mut engine, mut monitor) = E::open(&args.engine)?;
        let timed = time_workload(&mut engine, monitor.as_mut(), &model_workload, &rule)?;
        print_timed::<E>(&args.engine, &engine, &model_workload, &timed, "");
        return Ok(());
    };
    in_turns::<E>(args, &network, &model_workload, &rule)
}

/// `--versus`: two architectures timed in turns, run by run.
fn run_versus<E: EngineCli>(
    args: &MeasureArgs<E::Settings>,
    arch: &Path,
    versus: &Path,
) -> Result<()> {
    let workload = |path: &Path| network_workload(path, &Architecture::from_path(path)?);
    let (a, b) = (workload(arch)?, workload(versus)?);
    let rule = args.timing.flags(E::DEFAULTS.network_cap_ms).rule()?;
    in_turns::<E>(args, &a, &b, &rule)
}

/// Times `a` and `b` in turns, run by run, `--passes` times (each pass
/// prepares both afresh, on an engine each), prints every pass and the
/// passes' summary: the median of the passes' ratios of B over A
/// ([`time_paired`]) and their range.
fn in_turns<E: EngineCli>(
    args: &MeasureArgs<E::Settings>,
    a: &Workload,
    b: &Workload,
    rule: &TimingRule,
) -> Result<()> {
    let (mut ea, _monitor) = E::open(&args.engine)?;
    let (mut eb, _) = E::open(&args.engine)?;
    let passes = args.passes.unwrap_or(3);
    let (mut ma, mut mb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for pass in 1..=passes {
        let p = time_paired(&mut ea, a, &mut eb, b, rule)?;
        println!(
            "pass {pass}/{passes}, run by run: {a} median {:.4} ms ({} runs), {b} median {:.4} ms ({} runs), {b} {} against {a}",
            p.a.median,
            p.a.samples,
            p.b.median,
            p.b.samples,
            p.describe_ratio()
        );
        ma.push(p.a.median);
        mb.push(p.b.median);
        ratios.push(p.ratio.median);
    }
    // median_of sorts them: their range is then the first and the last.
    let ratio = median_of(&mut ratios);
    let (lo, hi) = (ratios[0], ratios[ratios.len() - 1]);
    println!(
        "A/B over {passes} passes, run by run (median of pass medians): {a} {:.4} ms, {b} {:.4} ms, {b} {:+.2}% against {a} (passes {:+.2}..{:+.2}%) at {}, {}",
        median_of(&mut ma),
        median_of(&mut mb),
        (ratio - 1.0) * 100.0,
        (lo - 1.0) * 100.0,
        (hi - 1.0) * 100.0,
        E::describe(&args.engine),
        ea.info().device_name,
    );
    Ok(())
}

/// After several passes of one network: their `median`, and an
/// `unstable:` line when they spread wider than validate's floor (with one
/// network there is no median network's spread to compare with).
fn say_if_unstable(workload: &Workload, medians: &[f64], median: f64) {
    if medians.len() < 2 {
        return;
    }
    let spread = spread_pct(medians);
    println!(
        "{workload}: median of {} pass medians {median:.4} ms, passes {spread:.1}% apart",
        medians.len()
    );
    if spread > UNSTABLE_FLOOR_PCT {
        let passes: Vec<String> = medians.iter().map(|m| format!("{m:.4}")).collect();
        println!(
            "unstable: {workload} took {} ms in its passes ({spread:.1}% apart, beyond {UNSTABLE_FLOOR_PCT:.0}%): its latency has several modes, and no one of them is its latency",
            passes.join(", ")
        );
    }
}

fn median_of(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
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
fn table_speed(
    path: &Path,
    blocks: &[BlockSpec],
    standard: bool,
) -> Result<(speed::Gauge, ArchLatency)> {
    let table = LatencyTable::from_path(path)?;
    let Some(gauge) = speed::Gauge::of(&table, standard)? else {
        let gpu = table.metadata().get(space::meta::THREADS).is_none();
        bail!(
            "{}: no '{}' line: `measure --table` times the network at a table's speed reference, which only a CPU table built with --cache network has{}",
            path.display(),
            speed::REFERENCE_KEY,
            if gpu { " (this is a GPU table: its header has no 'threads' line)" } else { "" }
        );
    };
    Ok((gauge, table.predict_blocks(blocks)?))
}

/// `--table`: the network at the table's speed reference, against the
/// table's prediction of it; with `per_block`, each block's median inside
/// the network against the table's price of it.
fn at_table_speed(
    engine: &mut dyn Engine,
    standard: Option<&mut dyn Engine>,
    workload: &Workload,
    rule: &TimingRule,
    (gauge, prediction): (speed::Gauge, ArchLatency),
    per_block: bool,
) -> Result<()> {
    let t = speed::time_at_reference(engine, standard, workload, rule.warmup, &rule.stop, &gauge)?;
    if per_block {
        print_in_network(&t.blocks, &prediction);
    }
    let predicted = prediction.total_ms;
    let s = &t.scaled;
    let by = t.standard_note();
    println!(
        "{workload}: at the table's speed median {:.4} ms (p10 {:.4}, p90 {:.4}, 95% CI [{:.4}, {:.4}], {} runs; raw {:.4} ms, the machine at {:.3}x the table's reference speed{by}); the table predicts {predicted:.4} ms ({:+.2}%)",
        s.median, s.p10, s.p90, s.ci_low, s.ci_high, s.samples, t.raw.median,
        t.factor,
        (predicted / s.median - 1.0) * 100.0
    );
    Ok(())
}

/// Each block's median inside the network (at the table's speed) beside
/// the table's price of it, the error as `validate`'s (predicted over
/// measured − 1), and the sums. The medians of blocks need not sum to the
/// median of the network; their errors say where a bias lives.
fn print_in_network(measured: &[f64], prediction: &ArchLatency) {
    for (ms, (spec, estimate)) in measured.iter().zip(&prediction.blocks) {
        let how = match estimate.source.between() {
            Some((lo, hi)) => format!(" (priced between {lo} and {hi})"),
            None => String::new(),
        };
        println!(
            "in network: block {spec} {ms:.4} ms, the table {:.4} ms{how} ({:+.2}%)",
            estimate.ms,
            (estimate.ms / ms - 1.0) * 100.0
        );
    }
    let sum: f64 = measured.iter().sum();
    let priced: f64 = prediction.blocks.iter().map(|(_, e)| e.ms).sum();
    println!(
        "in network: sum of block medians {sum:.4} ms, the table's {priced:.4} ms ({:+.2}%)",
        (priced / sum - 1.0) * 100.0
    );
}
