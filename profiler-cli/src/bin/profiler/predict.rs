//! `profiler predict --table T.csv --arch A.json`: an architecture's
//! latency from a table.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use space::{Architecture, LatencyTable};

#[derive(Args, Clone, Debug)]
pub struct PredictArgs {
    #[arg(long)]
    table: PathBuf,
    #[arg(long)]
    arch: PathBuf,
    /// Print every block's estimate and whether it was interpolated.
    #[arg(long)]
    blocks: bool,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let table = LatencyTable::from_path(&args.table)?;
    let arch = Architecture::from_path(&args.arch)?;
    table.check_in_space(&arch.space)?;
    let latency = table
        .predict(&arch)
        .with_context(|| format!("cannot predict the architecture from {}", table.origin()))?;
    if args.blocks {
        for (spec, e) in &latency.blocks {
            println!("{:>10.4} ms  {spec}  ({})", e.ms, e.source);
        }
        if table.boundary_ms() > 0.0 {
            println!(
                "{:>10.4} ms  the table's boundary, once per network (each block above is its median less it)",
                table.boundary_ms()
            );
        }
    }
    println!(
        "predicted {:.4} ms at batch {} (base {:.4} ms), {:.1}M MACs, {:.2}M params",
        latency.total_ms,
        table.batch(),
        latency.base_ms,
        arch.macs()? as f64 / 1e6,
        arch.params()? as f64 / 1e6
    );
    if let Some(c) = table.correction() {
        println!(
            "with the table's correction ({c}): {:.4} ms",
            c.apply(latency.total_ms)
        );
    }
    Ok(())
}
