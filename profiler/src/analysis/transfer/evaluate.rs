//! `profiler transfer --evaluate FULL.csv`: a predicted table against a
//! fully measured table of the same device.
//!
//! Per entry, over the predicted rows only (the measured ones are the
//! probe's own, exact by construction): the median and p90 of |error|, the
//! share within ±1, ±2 and ±5%, and Kendall's τ-b of the predicted against
//! the measured prices. Per network: the error of the sum of blocks for
//! networks sampled from the space and for TF-NAS-A. Entries and networks
//! alike are priced as every lookup prices them: a table whose header says
//! `curve_fit: affine` prices its measured widths on their curve's line,
//! which averages out the noise of single entries. Where either table
//! fits its curves, the entries are also compared row with row, as the
//! files hold them, so the report shows what the lines changed. Two CPU
//! tables, each at the speed of its own speed reference, are compared at
//! the full table's. And the model alone is scored (the probe's keys at
//! the full table's prices), so the report separates what the model
//! misses from what the probe's measurement does.

use serde::Serialize;
use space::{meta, Architecture, BlockSpec, CurveFit, Entry, LatencyTable, SearchSpaceConfig};

use super::{render, scaled_stats, transfer_tables, TransferArgs};
use crate::error::{bail, Result};
use crate::stats::{kendall_tau_b, quantile};

/// |error| quantiles and bands of a set of relative errors, in percent.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Errors {
    pub n: usize,
    pub median_abs_pct: f64,
    pub p90_abs_pct: f64,
    pub max_abs_pct: f64,
    pub mean_signed_pct: f64,
    pub within_1_pct: f64,
    pub within_2_pct: f64,
    pub within_5_pct: f64,
}

impl Errors {
    /// From relative errors (predicted / measured − 1); `None` when empty.
    pub fn of(errors: &[f64]) -> Option<Errors> {
        if errors.is_empty() {
            return None;
        }
        let mut abs: Vec<f64> = errors.iter().map(|e| e.abs() * 100.0).collect();
        abs.sort_by(f64::total_cmp);
        let share =
            |w: f64| 100.0 * abs.iter().filter(|&&a| a <= w).count() as f64 / abs.len() as f64;
        Some(Errors {
            n: abs.len(),
            median_abs_pct: quantile(&abs, 0.5),
            p90_abs_pct: quantile(&abs, 0.9),
            max_abs_pct: abs[abs.len() - 1],
            mean_signed_pct: 100.0 * errors.iter().sum::<f64>() / errors.len() as f64,
            within_1_pct: share(1.0),
            within_2_pct: share(2.0),
            within_5_pct: share(5.0),
        })
    }
}

/// What `--evaluate` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub full: String,
    /// Predicted rows the full table has, and those it lacks.
    pub compared: usize,
    pub not_in_full: usize,
    /// The entries as each table prices them (on its curves' lines under a
    /// curve fit).
    pub entries: Option<Errors>,
    /// The same entries row against row, where either table fits its
    /// curves (otherwise the rows are the prices and this is `None`).
    pub entries_rows: Option<Errors>,
    /// Each table's `curve_fit` (predicted, full), as its header says it.
    pub curve_fits: (String, String),
    pub kendall_tau: Option<f64>,
    pub networks: Option<Errors>,
    /// Sampled networks one of the tables could not price.
    pub networks_skipped: usize,
    /// TF-NAS-A: predicted, measured (ms) and the relative error in percent.
    pub tfnas_a: Option<(f64, f64, f64)>,
    /// The factor the predicted table's prices were multiplied by to compare
    /// them at the full table's speed: its speed reference over the
    /// predicted table's, where both have one (CPU tables), else `None`.
    pub one_speed: Option<f64>,
    /// The same transfer from the probe's keys at the full table's prices,
    /// where [`with_model_alone`] was asked and the full table has them all.
    pub model_alone: Option<ModelAlone>,
}

/// The transfer's error with the probe's own noise taken out: the same
/// reference and model, each of the probe's keys at the full table's price
/// of it. The gap between this and [`Evaluation::entries`] is what the
/// probe's measurement costs (its noise, and a level or a state of the
/// machine the full table was not built in); this is what the model costs.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModelAlone {
    pub entries: Option<Errors>,
    pub networks: Option<Errors>,
    /// TF-NAS-A's relative error in percent.
    pub tfnas_a_pct: Option<f64>,
}

/// The networks whose sums an evaluation compares: `networks` networks of
/// `space` sampled with seed 0, their widths multiples of `multiple`.
#[derive(Clone, Copy, Debug)]
pub struct Sampling<'a> {
    pub space: &'a SearchSpaceConfig,
    pub networks: u64,
    pub multiple: u32,
}

/// Scores `predicted` (a transferred table) against `full`, entry by entry
/// and on the networks of `sampling`.
pub fn evaluate(
    predicted: &LatencyTable,
    full: &LatencyTable,
    sampling: &Sampling,
) -> Result<Evaluation> {
    let one_speed = one_speed(predicted, full);
    let scale = one_speed.unwrap_or(1.0);
    let priced = entry_errors(predicted, full, scale, |t, spec| {
        t.estimate(spec).map(|e| e.ms)
    });
    if priced.errors.is_empty() && priced.not_in_full > 0 {
        bail!(
            "the full table {} has none of the predicted table's predicted keys: nothing to evaluate",
            full.origin()
        );
    }
    // Without a fit on either side the rows are the prices: nothing to add.
    let fitted = [predicted, full]
        .iter()
        .any(|t| t.curve_fit() != CurveFit::None);
    let entries_rows = fitted
        .then(|| {
            let rows = entry_errors(predicted, full, scale, |t, spec| {
                t.entry(spec).map(|e| e.stats.median_ms - t.boundary_ms())
            });
            Errors::of(&rows.errors)
        })
        .flatten();
    let (net_errors, skipped) = network_errors(predicted, full, scale, sampling)?;
    let tfnas_a = match (
        predicted.predict(&Architecture::tfnas_a()),
        full.predict(&Architecture::tfnas_a()),
    ) {
        (Ok(p), Ok(m)) => Some((
            p.total_ms * scale,
            m.total_ms,
            100.0 * (p.total_ms * scale / m.total_ms - 1.0),
        )),
        _ => None,
    };
    Ok(Evaluation {
        full: full.origin().to_string(),
        compared: priced.errors.len(),
        not_in_full: priced.not_in_full,
        entries: Errors::of(&priced.errors),
        entries_rows,
        curve_fits: (
            predicted.curve_fit().describe().to_string(),
            full.curve_fit().describe().to_string(),
        ),
        kendall_tau: kendall_tau_b(&priced.ours, &priced.theirs),
        networks: Errors::of(&net_errors),
        networks_skipped: skipped,
        tfnas_a,
        one_speed,
        model_alone: None,
    })
}

/// A CPU table prices every block at the speed its speed reference was
/// measured at (docs/cpu.md, "What a CPU table predicts"), so two of them
/// built at different moments are compared at one speed: the full table's
/// reference over the predicted table's (which is its probe's).
fn one_speed(predicted: &LatencyTable, full: &LatencyTable) -> Option<f64> {
    match (predicted.speed_reference_ms(), full.speed_reference_ms()) {
        (Some(p), Some(f)) => Some(f / p),
        _ => None,
    }
}

/// [`evaluate`] of `predicted` (transferred from reference `a` and probe
/// `p`, as `args` names them), with [`Evaluation::model_alone`]: the
/// probe's rows moved to `full`'s prices, transferred and scored the same
/// way. Left `None` where `full` lacks a probe key.
pub fn with_model_alone(
    args: &TransferArgs,
    a: &LatencyTable,
    p: &LatencyTable,
    predicted: &LatencyTable,
    full: &LatencyTable,
    sampling: &Sampling,
) -> Result<Evaluation> {
    let mut ev = evaluate(predicted, full, sampling)?;
    if let Some(exact) = probe_at_prices(p, full)? {
        let made = transfer_tables(a, &exact, args)?;
        let alone = evaluate(&made.table, full, sampling)?;
        ev.model_alone = Some(ModelAlone {
            entries: alone.entries,
            networks: alone.networks,
            tfnas_a_pct: alone.tfnas_a.map(|t| t.2),
        });
    }
    Ok(ev)
}

/// The probe with each row moved to `full`'s price of its key (its
/// quantiles and interval scaled alike), or `None` where `full` cannot
/// price one of its keys as a row (no price, or one below the probe's
/// boundary).
fn probe_at_prices(p: &LatencyTable, full: &LatencyTable) -> Result<Option<LatencyTable>> {
    let mut rows = Vec::with_capacity(p.len());
    for e in p.entries() {
        let Some(price) = full.estimate(&e.spec) else {
            return Ok(None);
        };
        let median = price.ms + p.boundary_ms();
        if median.is_nan() || median < 0.0 {
            return Ok(None);
        }
        rows.push(Entry {
            stats: scaled_stats(&e.stats, median, 0.0),
            ..*e
        });
    }
    // Its rows are now at the full table's speed, and so is its header.
    let mut header = p.metadata().clone();
    if let Some(reference) = full.metadata().get(meta::SPEED_REFERENCE_MS) {
        header.set(meta::SPEED_REFERENCE_MS, reference);
    }
    let text = render(&header, &rows)?;
    Ok(Some(LatencyTable::parse(
        &text,
        "the probe at the full table's prices",
    )?))
}

/// The predicted table's predicted entries against the full table's, each
/// valued by `value` (ms added to a network), with the values compared.
struct EntryErrors {
    ours: Vec<f64>,
    theirs: Vec<f64>,
    errors: Vec<f64>,
    /// Predicted keys the full table lacks.
    not_in_full: usize,
}

/// `scale` multiplies the predicted table's values (see [`one_speed`]).
fn entry_errors(
    predicted: &LatencyTable,
    full: &LatencyTable,
    scale: f64,
    value: impl Fn(&LatencyTable, &BlockSpec) -> Option<f64>,
) -> EntryErrors {
    let measured: std::collections::HashSet<&str> =
        super::measured_keys(predicted).into_iter().collect();
    let mut out = EntryErrors {
        ours: Vec::new(),
        theirs: Vec::new(),
        errors: Vec::new(),
        not_in_full: 0,
    };
    for e in predicted.entries() {
        if measured.contains(e.spec.key().as_str()) {
            continue;
        }
        if full.entry(&e.spec).is_none() {
            out.not_in_full += 1;
            continue;
        }
        if let (Some(p), Some(m)) = (value(predicted, &e.spec), value(full, &e.spec)) {
            if m > 0.0 {
                out.ours.push(p * scale);
                out.theirs.push(m);
                out.errors.push(p * scale / m - 1.0);
            }
        }
    }
    out
}

/// Relative errors of the sums for the networks of `sampling`, the
/// predicted table's multiplied by `scale`, and how many one of the tables
/// could not price.
fn network_errors(
    predicted: &LatencyTable,
    full: &LatencyTable,
    scale: f64,
    sampling: &Sampling,
) -> Result<(Vec<f64>, usize)> {
    let (mut errors, mut skipped) = (Vec::new(), 0);
    for i in 0..sampling.networks {
        let arch = Architecture::sample_nth_on(sampling.space, 0, i, sampling.multiple)?;
        match (predicted.predict(&arch), full.predict(&arch)) {
            (Ok(p), Ok(m)) if m.total_ms > 0.0 => {
                errors.push(p.total_ms * scale / m.total_ms - 1.0)
            }
            _ => skipped += 1,
        }
    }
    Ok((errors, skipped))
}

fn errors_line(what: &str, e: &Errors) -> String {
    format!(
        "  {what:<9} n {:>5}  median |error| {:>6.2}%  p90 {:>6.2}%  max {:>7.2}%  mean signed {:>+6.2}%  within ±1% {:>5.1}%  ±2% {:>5.1}%  ±5% {:>5.1}%\n",
        e.n,
        e.median_abs_pct,
        e.p90_abs_pct,
        e.max_abs_pct,
        e.mean_signed_pct,
        e.within_1_pct,
        e.within_2_pct,
        e.within_5_pct
    )
}

pub fn render_text(ev: &Evaluation) -> String {
    let mut out = format!(
        "against {}: {} predicted entries compared ({} not in it)\n",
        ev.full, ev.compared, ev.not_in_full
    );
    if let Some(f) = ev.one_speed {
        out.push_str(&format!(
            "  at one speed: the predicted table's prices × {f:.4}, the full table's speed reference over its own (a CPU table prices at its reference's speed)\n"
        ));
    }
    if ev.entries_rows.is_some() {
        out.push_str(&format!(
            "  entries priced as each table prices them (curve_fit: predicted {}, full {}); rows: the files' medians as they stand\n",
            ev.curve_fits.0, ev.curve_fits.1
        ));
    }
    if let Some(e) = &ev.entries {
        out.push_str(&errors_line("entries", e));
    }
    if let Some(e) = &ev.entries_rows {
        out.push_str(&errors_line("rows", e));
    }
    if let Some(t) = ev.kendall_tau {
        out.push_str(&format!(
            "  Kendall tau-b of the predicted entries: {t:.4}\n"
        ));
    }
    if let Some(e) = &ev.networks {
        out.push_str(&errors_line("networks", e));
    }
    if ev.networks_skipped > 0 {
        out.push_str(&format!(
            "  {} sampled networks not priced by both tables\n",
            ev.networks_skipped
        ));
    }
    match ev.tfnas_a {
        Some((p, m, e)) => out.push_str(&format!(
            "  TF-NAS-A: predicted {p:.4} ms, measured {m:.4} ms, error {e:+.3}%\n"
        )),
        None => out.push_str("  TF-NAS-A: not priced by both tables\n"),
    }
    match &ev.model_alone {
        Some(alone) if alone.entries == ev.entries && alone.networks == ev.networks => out
            .push_str(
                "  the model alone: the same (the probe's rows are the full table's own prices)\n",
            ),
        Some(alone) => out.push_str(&model_alone_text(alone)),
        None => {}
    }
    out
}

fn model_alone_text(alone: &ModelAlone) -> String {
    let mut out = String::from(
        "  the model alone: the same transfer with the probe's keys at the full table's prices (the probe's own noise taken out)\n",
    );
    if let Some(e) = &alone.entries {
        out.push_str(&errors_line("entries", e));
    }
    if let Some(e) = &alone.networks {
        out.push_str(&errors_line("networks", e));
    }
    if let Some(e) = alone.tfnas_a_pct {
        out.push_str(&format!("  TF-NAS-A: error {e:+.3}%\n"));
    }
    out
}
