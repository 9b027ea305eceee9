//! `profiler check --table T.csv`: validate a table and report what it
//! covers of a space, and how precisely it knows its medians.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use space::{meta, LatencyTable};

#[derive(Args, Clone, Debug)]
pub struct CheckArgs {
    #[arg(long)]
    table: PathBuf,
    /// Search space file; the TF-NAS ImageNet space by default.
    #[arg(long)]
    space: Option<PathBuf>,
}

pub fn run(args: &CheckArgs) -> Result<()> {
    let space = profiler_cli::flags::load_space(args.space.as_ref())?;
    let table = LatencyTable::from_path(&args.table)?;
    let md = table.metadata();
    println!(
        "{}: {} entries at batch {}, device '{}'",
        table.origin(),
        table.len(),
        table.batch(),
        md.get(meta::DEVICE_NAME).unwrap_or("unknown")
    );
    if let Some(what) = md.get(meta::PREDICTED) {
        println!("predicted table (profiler transfer): {what}");
        for (key, name) in [
            (meta::TRANSFER_REFERENCE, "reference"),
            (meta::TRANSFER_PROBE, "probe"),
            (meta::TRANSFER_CV, "estimated error"),
        ] {
            if let Some(v) = md.get(key) {
                println!("  {name}: {v}");
            }
        }
    }
    if let Some(of) = md.get(meta::PROBE_OF) {
        println!("a probe (profiler probe --out), for `profiler transfer --probe`, of: {of}");
    }
    if let Some(digest) = md.get(meta::SPACE_DIGEST) {
        if digest != space.digest() {
            println!(
                "note: the table was built for space digest {digest}, not {} ({})",
                space.digest(),
                space.name
            );
        }
    }
    let outside = table.keys_outside(&space);
    if !outside.is_empty() {
        println!(
            "outside the space: {}; the searcher and `predict` refuse this table",
            space::table::describe_outside(&outside, &space)
        );
    }
    let throttled = table.entries().iter().filter(|e| e.stats.throttled).count();
    if throttled > 0 {
        println!("{throttled} entries were measured while the GPU throttled");
    }
    if let Some(line) = precision(&table) {
        println!("{line}");
    }
    if let Some(line) = curve_line(&table) {
        println!("{line}");
    }
    match table.header_boundary_ms() {
        Some(ms) => println!("boundary {ms:.4} ms: taken off every block, added once per network"),
        None => println!("no boundary line: blocks are priced at their medians"),
    }
    let step = table
        .width_step()
        .unwrap_or(space::TablePlan::DEFAULT_WIDTH_STEP);
    let plan = space.table_plan_aligned(step, table.width_model().multiple())?;
    let missing: Vec<_> = plan
        .blocks
        .iter()
        .filter(|b| table.entry(b).is_none())
        .collect();
    println!(
        "covers {} of the {} entries of the space's plan at width step {step}",
        plan.len() - missing.len(),
        plan.len()
    );
    for b in missing.iter().take(10) {
        println!("  missing {b}");
    }
    if missing.len() > 10 {
        println!("  ... and {} more", missing.len() - 10);
    }
    Ok(())
}

/// Under `curve_fit: affine`, whether the curves' lines price the table and
/// why (`None` without a fit to check).
fn curve_line(table: &LatencyTable) -> Option<String> {
    let c = table.curve_check()?;
    // Entries off their lines that give no interval at all stray without
    // measure.
    let stray = if c.stray.is_finite() {
        format!("{:.2}", c.stray)
    } else {
        "more than any noise (entries off their lines give no interval)".into()
    };
    let how = format!(
        "the {} curves stray from their lines by {stray} (median reduced chi-square in their entries' 95% intervals; at most {} allowed)",
        c.curves,
        space::CurveFit::MAX_STRAY
    );
    Some(if c.applied {
        format!("curve_fit affine: measured widths priced on their curve's line; {how}")
    } else {
        format!("curve_fit affine not applied: each measured width at its own entry, because {how}")
    })
}

/// How precisely the table knows its medians: the half-widths of their 95%
/// intervals relative to the median (typical and worst), how many are wider
/// than the default `--ci-percent` (the time cap stopped them first), and
/// the samples per entry. `None` for an empty table.
fn precision(table: &LatencyTable) -> Option<String> {
    // Each entry's half-width in percent of its median, narrowest first.
    let mut widths: Vec<(f64, &space::Entry)> = table
        .entries()
        .iter()
        .map(|e| {
            let s = &e.stats;
            ((s.ci_high_ms - s.ci_low_ms) / 2.0 / s.median_ms * 100.0, e)
        })
        .collect();
    widths.sort_by(|a, b| a.0.total_cmp(&b.0));
    let &(worst, worst_entry) = widths.last()?;
    let target = 0.5;
    let wider = widths.iter().filter(|w| w.0 > target + 1e-9).count();
    let samples = table.entries().iter().map(|e| e.stats.samples);
    let (lo, hi) = (samples.clone().min()?, samples.max()?);
    Some(format!(
        "precision: the medians' 95% intervals are ±{:.2}% typically (median over entries), ±{worst:.2}% at worst ({}); {wider} of {} entries wider than ±{target}%; {lo}..{hi} samples per entry",
        widths[widths.len() / 2].0,
        worst_entry.spec,
        widths.len()
    ))
}
