//! `profiler probe --reference A.csv --fraction F [--keys]`: the keys to
//! measure on a new device so that `profiler transfer` predicts the rest
//! best; the plan is `profiler::analysis::transfer::plan`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use profiler::analysis::transfer::{plan, read_table, Reference};
use profiler_cli::flags::in_range;

#[derive(Args, Clone, Debug)]
pub struct ProbeArgs {
    /// The full table of another device the new one is transferred from.
    #[arg(long)]
    reference: PathBuf,
    /// The share of the reference's entries to measure (the fixed parts are
    /// measured even beyond it).
    #[arg(long, value_parser = in_range("--fraction", 1e-6, 1.0))]
    fraction: f64,
    /// Print the keys, one per line, on stdout.
    #[arg(long)]
    keys: bool,
}

pub fn run(args: &ProbeArgs) -> Result<()> {
    let table = read_table(&args.reference, "reference")?;
    let reference = Reference::new(&table);
    let plan = plan::plan(&reference, args.fraction);
    eprintln!("{}", plan.describe(reference.len()));
    if args.keys {
        for key in &plan.keys {
            println!("{key}");
        }
    }
    Ok(())
}
