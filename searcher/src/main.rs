//! `searcher`: the TF-NAS search from a latency table to a network that
//! meets its latency target.
//!
//! Parse, prepare, run, report: the library's `session` checks everything
//! that can be wrong with the inputs and outputs (table entries, target
//! range, batch size, data set, checkpoint, output paths) before the first
//! training step; this file holds the command line and the printing.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Parser;
use searcher::extend::Landing;
use searcher::proxy;
use searcher::session::{self, Inputs, Report, Session};
use searcher::settings::Settings;

#[derive(Parser)]
#[command(
    name = "searcher",
    version,
    // `--lambda -1` is a value to refuse with its range, not a flag.
    allow_negative_numbers = true,
    args_conflicts_with_subcommands = true,
    about = "TF-NAS search against a latency table",
    long_about = "TF-NAS search against a latency table. Hyper-parameter defaults are the method's \
                  (docs/method.md §5); scripts/run.sh passes a short run's settings when given no arguments. \
                  `searcher train --arch A.json` trains a derived network from scratch (`searcher train --help`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    inputs: Inputs,
    #[command(flatten)]
    settings: Settings,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Write an architecture's stand-alone network as TorchScript or ONNX, in
    /// eval mode with batch norm folded, traced at batch 1 and the space's
    /// resolution (224x224 for TF-NAS) unless --batch/--resolution say otherwise.
    Export(searcher::export::ExportArgs),
    /// Write networks like the search's outputs without a search: random
    /// starts landed on targets from 10% to 95% of a table's range by the
    /// method's scaling and the landing extension, as architecture JSON for
    /// `profiler validate --arch`.
    Land(searcher::landings::LandArgs),
}

fn export(args: &searcher::export::ExportArgs) -> Result<()> {
    for line in searcher::export::run(args)?.lines() {
        say(&line)?;
    }
    Ok(())
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

fn progress_bar(epoch: usize, epochs: usize) -> impl FnMut(usize, usize) {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty {
            let width = 30;
            let filled = done * width / total.max(1);
            eprint!(
                "\repoch {}/{epochs} [{}{}] {done}/{total}",
                epoch + 1,
                "#".repeat(filled),
                " ".repeat(width - filled)
            );
            if done == total {
                eprint!("\r{}\r", " ".repeat(width + 40));
            }
            let _ = std::io::stderr().flush();
        }
    }
}

/// Parse, prepare, run, report. Nothing is printed before everything
/// that can be checked has been: an error is the only line a bad command
/// gets.
fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Some(Command::Export(args)) => return export(args),
        Some(Command::Land(args)) => {
            for line in searcher::landings::run(args)? {
                say(&line)?;
            }
            return Ok(());
        }
        None => {}
    }
    let mut session = session::prepare(&cli.inputs, &cli.settings)?;
    if !session.writes() {
        // Another rank of a data-parallel group: the same steps, silently.
        while !session.is_done() {
            session.run_epoch(&mut |_, _| {})?;
        }
        return Ok(());
    }
    for warning in &session.warnings {
        note(&format!("warning: {warning}"));
    }
    say(&toolchain())?;
    for line in session.describe() {
        say(&line)?;
    }
    let epochs = session.search.settings.epochs;
    let target_sum = session.search.settings.target_ms;
    while !session.is_done() {
        let epoch = session.search.next_epoch;
        let log = session.run_epoch(&mut progress_bar(epoch, epochs))?;
        note(&log.line(epochs, target_sum));
        if let Some(warning) = session.search.divergence_warning() {
            note(&format!("warning: {warning}"));
        }
    }
    let report = session.finish()?;
    say(&format!(
        "derived architecture written to {}",
        session.out.display()
    ))?;
    print_report(&session, &report)
}

fn print_report(session: &Session, report: &Report) -> Result<()> {
    let (arch, predicted, target) = (&report.arch, report.predicted_ms, session.target_ms);
    for line in landing_lines(
        &report.landing,
        session.method_strict,
        session.search.settings.target_ms,
    ) {
        say(&line)?;
    }
    for (s, stage) in arch.stages.iter().enumerate() {
        let blocks: Vec<String> = stage
            .blocks
            .iter()
            .map(|b| format!("{} m{}", b.op, b.mid_channels))
            .collect();
        say(&format!(
            "  stage {}: depth {} | {}",
            s + 1,
            stage.depth,
            blocks.join(" | ")
        ))?;
    }
    say(&format!(
        "predicted latency {predicted:.4} ms for target {target} ms ({:+.2}%), batch {}{}",
        100.0 * (predicted / target - 1.0),
        session.table.batch(),
        if proxy::is_proxy(&session.table) {
            " [MAC-count proxy, not a measurement]"
        } else {
            ""
        }
    ))?;
    let res = session.space.input_resolution;
    say(&format!(
        "{:.2}M parameters, {:.1}M multiply-adds per {res}x{res} image",
        arch.params()? as f64 / 1e6,
        arch.macs()? as f64 / 1e6,
    ))?;
    if report.interpolated.is_empty() {
        say(&format!(
            "every width of the derived network is {} of the table",
            searcher::measured::entry_kind(&session.table)
        ))?;
    } else {
        say(&format!(
            "{} width(s) interpolated by the table (optimistic: an unmeasured width tends to run slower): {}",
            report.interpolated.len(),
            report.interpolated.join("; ")
        ))?;
    }
    if predicted < 0.99 * target {
        note(&format!(
            "warning: the derived network is {:.1}% under the target: the ops and depths the search chose cannot get closer even at their widest (a longer search lets the latency loss move them)",
            100.0 * (1.0 - predicted / target)
        ));
    }
    // The correction's round trip may add an ulp to a network that sits
    // exactly on the target.
    if predicted > target * (1.0 + 1e-12) {
        bail!(
            "the derived network's predicted latency {predicted:.4} ms exceeds the target {target} ms: even its narrowest widths are too slow for the ops and depths the search chose"
        );
    }
    Ok(())
}

/// What the landing extension changed, and why.
fn landing_lines(landing: &Landing, strict: bool, target_sum: f64) -> Vec<String> {
    if strict {
        return vec![format!(
            "--method-strict: the method's argmax network as elasticity scaling left it, {:.4} ms",
            landing.ms
        )];
    }
    if landing.changes.is_empty() && landing.lands(target_sum) {
        return vec![format!(
            "the method's network lands ({:.4} ms for {target_sum:.4}): the landing extension changed nothing",
            landing.ms
        )];
    }
    if landing.changes.is_empty() {
        return vec![format!(
            "the method's network costs {:.4} ms for {target_sum:.4}, and the landing extension found no change that lands",
            landing.ms
        )];
    }
    let mut lines = vec![format!(
        "landing extension (--method-strict turns it off): the method's network costs {:.4} ms for {target_sum:.4}; {} change(s):",
        landing.method_ms,
        landing.changes.len()
    )];
    lines.extend(landing.changes.iter().map(|c| format!("  {c}")));
    lines
}

/// A line on stdout. A closed stdout (`searcher ... | head -1`) stops the
/// search with an error at the next line: every checkpoint written so far
/// stays, and the same command continues from it.
fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            anyhow::anyhow!(
                "standard output was closed (as by `| head`); stopped here, keeping every file written so far (the checkpoint after each epoch): rerun the same command to continue"
            )
        } else {
            anyhow::anyhow!("cannot write to standard output: {e}")
        }
    })
}

/// A line on stderr; if stderr is gone too there is no one to tell.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

fn main() -> ExitCode {
    // `searcher train ...` has a command line of its own (src/train/cli.rs).
    let mut args = std::env::args_os();
    if std::env::args_os().nth(1).is_some_and(|a| a == "train") {
        let program = args.next().unwrap_or_default();
        return searcher::train::cli::main(std::iter::once(program).chain(args.skip(1)));
    }
    // SIGPIPE stays ignored (Rust's default), so a closed stdout is an
    // error `say` reports rather than a silent death mid-epoch.
    let cli = Cli::parse();
    let run_args = &cli.inputs.run;
    if cli.command.is_none() && run_args.launches() {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        return run_args.launch(&args);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            note(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}
