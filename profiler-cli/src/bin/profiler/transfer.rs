//! `profiler transfer --reference A.csv --probe P.csv --out B.csv
//! [--evaluate FULL.csv]`: a full table for the probe's device, predicted
//! from the reference; the work is `profiler::analysis::transfer`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use profiler::analysis::transfer::{self, evaluate, TransferArgs as Lib};
use profiler_cli::flags::in_range;

#[derive(Args, Clone, Debug)]
pub struct TransferArgs {
    /// The full table of another device (every key the new table will have).
    #[arg(long)]
    reference: PathBuf,
    /// The probe: a table of the new device whose keys the reference has
    /// (`profiler probe --keys` says which to measure).
    #[arg(long)]
    probe: PathBuf,
    /// Where the predicted table goes (written whole or not at all).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Accept a probe at another batch size than the reference.
    #[arg(long)]
    allow_batch: bool,
    /// A fully measured table of the probe's device: report the predicted
    /// table's error against it.
    #[arg(long)]
    evaluate: Option<PathBuf>,
    /// Networks sampled from the space for the error of sums (--evaluate).
    #[arg(long, default_value_t = 200, value_parser = in_range("--networks", 1u64, 100_000))]
    networks: u64,
    /// Search space file; the TF-NAS ImageNet space by default.
    #[arg(long)]
    space: Option<PathBuf>,
    /// Print the evaluation as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &TransferArgs) -> Result<()> {
    if args.out.is_none() && args.evaluate.is_none() {
        bail!(
            "give --out B.csv for the predicted table, or --evaluate FULL.csv to score it, or both"
        );
    }
    let space = profiler_cli::flags::load_space(args.space.as_ref())?;
    let inputs = [("reference", &args.reference), ("probe", &args.probe)];
    if let Some(out) = &args.out {
        let mut named: Vec<(&str, &std::path::Path)> =
            inputs.iter().map(|(w, p)| (*w, p.as_path())).collect();
        if let Some(full) = &args.evaluate {
            named.push(("full table", full.as_path()));
        }
        space::io::check_output(out, &named)?;
    }
    let full = match &args.evaluate {
        Some(path) => Some(transfer::read_table(path, "full table")?),
        None => None,
    };
    let lib = Lib {
        reference: args.reference.clone(),
        probe: args.probe.clone(),
        allow_batch: args.allow_batch,
        command: profiler::files::command_line(),
    };
    // Read once: the model alone below transfers from them again.
    let a = transfer::read_table(&lib.reference, "reference")?;
    let p = transfer::read_table(&lib.probe, "probe")?;
    let made = transfer::transfer_tables(&a, &p, &lib)?;
    let evaluation = match &full {
        Some(full) => {
            transfer::check_compatible(&made.table, full, ("probe", "full table"), false)?;
            let step = made.table.width_step().unwrap_or(1);
            let sampling = evaluate::Sampling {
                space: &space,
                networks: args.networks,
                multiple: step,
            };
            Some(evaluate::with_model_alone(
                &lib,
                &a,
                &p,
                &made.table,
                full,
                &sampling,
            )?)
        }
        None => None,
    };
    if let Some(out) = &args.out {
        space::io::write_atomic(out, made.text.as_bytes())?;
    }
    report(args, &made, evaluation.as_ref())
}

fn report(
    args: &TransferArgs,
    made: &transfer::Transferred,
    evaluation: Option<&evaluate::Evaluation>,
) -> Result<()> {
    let line = format!(
        "{} rows: {} measured (the probe's), {} predicted\ncross-validation: {}",
        made.measured + made.predicted,
        made.measured,
        made.predicted,
        made.cv_line
    );
    match (evaluation, args.json) {
        (Some(ev), true) => {
            eprintln!("{line}");
            println!("{}", serde_json::to_string_pretty(ev)?);
        }
        (Some(ev), false) => print!("{line}\n{}", evaluate::render_text(ev)),
        (None, _) => println!("{line}"),
    }
    if let Some(out) = &args.out {
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
