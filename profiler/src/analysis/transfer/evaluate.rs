//! `profiler transfer --evaluate FULL.csv`: a predicted table against a
//! fully measured table of the same device.
//!
//! Per entry, over the predicted rows only (the measured ones are the
//! probe's own, exact by construction): the median and p90 of |error|, the
//! share within ±1, ±2 and ±5%, and Kendall's τ-b of the predicted against
//! the measured medians. Per network: the error of the sum of blocks for
//! networks sampled from the space and for TF-NAS-A, both tables pricing
//! them as every lookup does (interpolating between their widths).

use serde::Serialize;
use space::{Architecture, LatencyTable, SearchSpaceConfig};

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
    pub entries: Option<Errors>,
    pub kendall_tau: Option<f64>,
    pub networks: Option<Errors>,
    /// Sampled networks one of the tables could not price.
    pub networks_skipped: usize,
    /// TF-NAS-A: predicted, measured (ms) and the relative error in percent.
    pub tfnas_a: Option<(f64, f64, f64)>,
}

/// Scores `predicted` (a transferred table) against `full`: `networks`
/// networks sampled with `seed`, their widths multiples of `multiple`.
pub fn evaluate(
    predicted: &LatencyTable,
    full: &LatencyTable,
    space: &SearchSpaceConfig,
    networks: u64,
    multiple: u32,
) -> Result<Evaluation> {
    let measured: std::collections::HashSet<&str> =
        super::measured_keys(predicted).into_iter().collect();
    let (mut ours, mut theirs, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut not_in_full = 0;
    for e in predicted.entries() {
        if measured.contains(e.spec.key().as_str()) {
            continue;
        }
        let Some(f) = full.entry(&e.spec) else {
            not_in_full += 1;
            continue;
        };
        let (p, m) = (
            e.stats.median_ms - predicted.boundary_ms(),
            f.stats.median_ms - full.boundary_ms(),
        );
        if m > 0.0 {
            ours.push(p);
            theirs.push(m);
            errors.push(p / m - 1.0);
        }
    }
    if errors.is_empty() && not_in_full > 0 {
        bail!(
            "the full table {} has none of the predicted table's predicted keys: nothing to evaluate",
            full.origin()
        );
    }
    let (net_errors, skipped) = network_errors(predicted, full, space, networks, multiple)?;
    let tfnas_a = match (
        predicted.predict(&Architecture::tfnas_a()),
        full.predict(&Architecture::tfnas_a()),
    ) {
        (Ok(p), Ok(m)) => Some((
            p.total_ms,
            m.total_ms,
            100.0 * (p.total_ms / m.total_ms - 1.0),
        )),
        _ => None,
    };
    Ok(Evaluation {
        full: full.origin().to_string(),
        compared: errors.len(),
        not_in_full,
        entries: Errors::of(&errors),
        kendall_tau: kendall_tau_b(&ours, &theirs),
        networks: Errors::of(&net_errors),
        networks_skipped: skipped,
        tfnas_a,
    })
}

/// Relative errors of the sums for `n` sampled networks (seed 0), and how
/// many one of the tables could not price.
fn network_errors(
    predicted: &LatencyTable,
    full: &LatencyTable,
    space: &SearchSpaceConfig,
    n: u64,
    multiple: u32,
) -> Result<(Vec<f64>, usize)> {
    let (mut errors, mut skipped) = (Vec::new(), 0);
    for i in 0..n {
        let arch = Architecture::sample_nth_on(space, 0, i, multiple)?;
        match (predicted.predict(&arch), full.predict(&arch)) {
            (Ok(p), Ok(m)) if m.total_ms > 0.0 => errors.push(p.total_ms / m.total_ms - 1.0),
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
    if let Some(e) = &ev.entries {
        out.push_str(&errors_line("entries", e));
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
    out
}
