//! `profiler plan`: the space and every block a complete table needs.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct PlanArgs {
    /// Search space file (.json or .toml); the TF-NAS ImageNet space by default.
    #[arg(long)]
    space: Option<PathBuf>,
    /// Measure every N-th mid width (plus each op's min, initial and max).
    #[arg(long, default_value_t = space::TablePlan::DEFAULT_WIDTH_STEP)]
    width_step: u32,
    /// Add the unaligned widths a build times for an engine whose kernels
    /// pad channels to multiples of N (`width_model: align N`): 8 on an
    /// AVX2 CPU or a GPU, 16 with AVX-512.
    #[arg(long, value_name = "N")]
    align: Option<u32>,
    /// Also print every block key, one per line, on stdout.
    #[arg(long)]
    keys: bool,
}

pub fn run(args: &PlanArgs) -> Result<()> {
    let space = profiler_cli::flags::load_space(args.space.as_ref())?;
    let plan = space.table_plan_aligned(args.width_step, args.align)?;
    // The plan is the command's output; with --keys the keys are, one per
    // line for a script, and the plan goes to stderr for the reader.
    if args.keys {
        eprint!("{}", space.describe());
        eprintln!("{}", plan.describe());
        for block in &plan.blocks {
            println!("{block}");
        }
    } else {
        print!("{}", space.describe());
        println!("{}", plan.describe());
    }
    Ok(())
}
