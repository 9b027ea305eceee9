//! `profiler fit --validation rows.csv --table T.csv [--out T2.csv]`: the
//! flags and the printing; the fit is `profiler::analysis::fit`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};
use profiler::analysis::fit::{self, render_text, Model};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// measured ≈ a · predicted + b, by least squares.
    Linear,
    /// measured ≈ predicted + b: only a constant offset (a = 1).
    Offset,
    /// measured ≈ a · predicted: only a factor (b = 0).
    Scale,
    /// measured ≈ predicted − (blocks − 1)·δ: the table's boundary grows by
    /// δ (least squares through the origin).
    Boundary,
}

impl From<ModelArg> for Model {
    fn from(m: ModelArg) -> Model {
        match m {
            ModelArg::Linear => Model::Linear,
            ModelArg::Offset => Model::Offset,
            ModelArg::Scale => Model::Scale,
            ModelArg::Boundary => Model::Boundary,
        }
    }
}

/// `profiler fit`.
#[derive(Args, Clone, Debug)]
pub struct FitArgs {
    /// The rows written by `profiler validate --out`.
    #[arg(long)]
    pub validation: PathBuf,
    /// The table those rows validated.
    #[arg(long)]
    pub table: PathBuf,
    /// Write a copy of the table with the correction (or, for the boundary
    /// model, the new boundary) in its header.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "linear")]
    pub model: ModelArg,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `profiler fit`.
pub fn run(args: &FitArgs) -> Result<()> {
    let fitted = fit::run(&fit::FitArgs {
        validation: args.validation.clone(),
        table: args.table.clone(),
        out: args.out.clone(),
        model: args.model.into(),
    })?;
    // The copy was made (and checked) before anything is printed, so that a
    // refused fit prints its error alone.
    for note in &fitted.notes {
        eprintln!("{note}");
    }
    let report = &fitted.report;
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", render_text(report));
    }
    if report.after.mape_pct >= report.before.mape_pct {
        eprintln!(
            "warning: the correction does not lower the held-out MAPE ({:.3}% → {:.3}%)",
            report.before.mape_pct, report.after.mape_pct
        );
    }
    if let (Some(out), Some(text)) = (&args.out, &fitted.copy) {
        fit::write_copy(out, text)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
