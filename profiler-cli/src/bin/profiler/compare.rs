//! `profiler compare A.csv B.csv`: the flags and the printing; the
//! comparison is `profiler::analysis::compare`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use profiler::analysis::compare::{compare, render_text};
use profiler::analysis::plot;
use profiler_cli::flags::in_range;
use space::{LatencyTable, SearchSpaceConfig};

#[derive(Args, Clone, Debug)]
pub struct CompareArgs {
    /// The reference table.
    a: PathBuf,
    /// The table compared with it (ratios are B/A).
    b: PathBuf,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also draw a log-log scatter of A against B (.svg or .png).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// How many keys and entries each listing shows.
    #[arg(long, default_value_t = 10, value_parser = in_range::<usize>("--top", 1, 100_000))]
    top: usize,
    /// Search space file for stages and layers; the TF-NAS ImageNet space by default.
    #[arg(long)]
    space: Option<PathBuf>,
}

/// `profiler compare`: reads both tables, prints the report (or JSON) and
/// draws the plot. The text report carries its warnings; with `--json` they
/// also go to stderr, so that JSON piped elsewhere still shows them.
pub fn run(args: &CompareArgs) -> Result<()> {
    if let Some(p) = &args.plot {
        plot::check_plot_path(p)?;
        space::io::check_output(p, &[("table A", &args.a), ("table B", &args.b)])?;
    }
    let space = match &args.space {
        Some(p) => SearchSpaceConfig::from_path(p)?,
        None => SearchSpaceConfig::default(),
    };
    let ta = LatencyTable::from_path(&args.a)?;
    let tb = LatencyTable::from_path(&args.b)?;
    let cmp = compare(&ta, &tb, &space, args.top)?;
    if args.json {
        for w in &cmp.report.warnings {
            eprintln!("warning: {w}");
        }
        println!("{}", serde_json::to_string_pretty(&cmp.report)?);
    } else {
        print!("{}", render_text(&cmp.report));
    }
    if let Some(p) = &args.plot {
        plot::scatter(
            p,
            &cmp.points,
            "Latency per entry as priced (median less boundary), ms (log-log)",
            &format!("A: {}", ta.origin()),
            &format!("B: {}", tb.origin()),
        )?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
