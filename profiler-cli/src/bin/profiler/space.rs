//! `profiler space`: a search space as JSON, to edit into a space file.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Clone, Debug)]
pub struct SpaceArgs {
    /// Search space file to normalise; the TF-NAS ImageNet space by default.
    #[arg(long)]
    space: Option<PathBuf>,
}

pub fn run(args: &SpaceArgs) -> Result<()> {
    println!(
        "{}",
        profiler_cli::flags::load_space(args.space.as_ref())?.to_json_pretty()
    );
    Ok(())
}
