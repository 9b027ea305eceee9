//! `searcher`: the TF-NAS search from a latency table to a network that
//! meets its latency target.
//!
//! Until the search lands (issue 5), it reports the toolchain (tch, libtorch,
//! CUDA) and describes the space and the table it would search with.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use space::SearchSpaceConfig;

#[derive(Parser)]
#[command(
    name = "searcher",
    version,
    about = "TF-NAS search against a latency table"
)]
struct Cli {
    /// Search space file (.json or .toml); the TF-NAS ImageNet space by default.
    #[arg(long)]
    space: Option<PathBuf>,
    /// Width step of the table plan to describe.
    #[arg(long, default_value_t = 8)]
    width_step: u32,
}

fn toolchain() -> String {
    let cuda = tch::Cuda::is_available();
    format!(
        "searcher {} with tch 0.24.0 on libtorch {}; CUDA available: {} ({} devices), cuDNN: {}",
        env!("CARGO_PKG_VERSION"),
        env!("LIBTORCH_VERSION"),
        if cuda { "yes" } else { "no" },
        tch::Cuda::device_count(),
        if tch::Cuda::cudnn_is_available() {
            "yes"
        } else {
            "no"
        },
    )
}

fn run(cli: Cli) -> Result<()> {
    println!("{}", toolchain());
    let space = match &cli.space {
        Some(p) => SearchSpaceConfig::from_path(p)?,
        None => SearchSpaceConfig::default(),
    };
    print!("{}", space.describe());
    println!("{}", space.table_plan(cli.width_step)?.describe());
    // A tensor round trip proves libtorch is not only linked but usable.
    let x = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    let sum = x.sum(tch::Kind::Float).double_value(&[]);
    anyhow::ensure!(sum == 6.0, "libtorch computed 1+2+3 = {sum}");
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
