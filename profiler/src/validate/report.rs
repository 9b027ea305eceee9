//! What a validation reports: the statistics of its rows, as text or JSON,
//! and the predicted-against-measured plot.

use std::path::Path;

use super::job::{Job, Network};
use crate::analysis::accuracy::{validation_stats, Pair, ValidationStats};
use crate::analysis::rows::{self, Row};
use crate::error::{ProfilerError, Result};

/// The statistics of `rows`, one per network ([`rows::combine`]).
pub fn stats(rows: &[Row]) -> Result<ValidationStats> {
    let pairs: Vec<Pair> = rows
        .iter()
        .map(|r| Pair::new(r.predicted_ms, r.measured_ms))
        .collect();
    validation_stats(&pairs)
}

/// The JSON report: the statistics and, after two passes or more, the
/// measurement's own noise.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    stats: &'a ValidationStats,
    pass_noise: Option<rows::PassNoise>,
    /// Networks whose passes disagree far beyond the others' noise.
    unstable: Vec<rows::Unstable>,
}

/// What `validate` prints on stdout, for every engine's command line: the
/// statistics of `rows` (every pass of every network, as
/// [`run_validation`](super::run_validation) returns them) as JSON, or the
/// readable report.
pub fn report(job: &Job, device: &str, rows: &[Row], json: bool) -> Result<String> {
    let networks = rows::combine(rows);
    let s = stats(&networks)?;
    let noise = rows::pass_noise(rows);
    let unstable = rows::unstable(rows);
    if json {
        let text = serde_json::to_string_pretty(&JsonReport {
            stats: &s,
            pass_noise: noise,
            unstable,
        })
        .map_err(|e| ProfilerError::Invalid(format!("cannot write the report as JSON: {e}")))?;
        return Ok(text + "\n");
    }
    let mut text = render_text(job, device, &networks, &s);
    if let Some(n) = noise {
        use std::fmt::Write as _;
        let _ = writeln!(
            text,
            "measurement noise: one pass of a network strays {:.2}% (sd, pooled over {} networks) from the mean of its {} passes, so each network's time carries about ±{:.2}% (sd) of noise, inside the errors above",
            n.sd_pct,
            n.networks,
            n.passes,
            n.combined_sd_pct()
        );
    }
    render_unstable(&mut text, &networks, &unstable);
    Ok(text)
}

/// One line per network whose latency has several modes, so that no one
/// reads its mean as a measurement.
fn render_unstable(out: &mut String, networks: &[Row], unstable: &[rows::Unstable]) {
    use std::fmt::Write as _;
    for u in unstable {
        let passes: Vec<String> = u.passes_ms.iter().map(|m| format!("{m:.4}")).collect();
        let arch = networks
            .iter()
            .find(|r| r.index == u.index)
            .map_or("", |r| r.arch.as_str());
        let _ = writeln!(
            out,
            "unstable: network {} took {} ms in its passes ({:.1}% apart, beyond {:.0}% and three times the median network's spread): its latency has several modes, and its mean above is not one number: {arch}",
            u.index,
            passes.join(", "),
            u.spread_pct,
            rows::UNSTABLE_FLOOR_PCT
        );
    }
}

/// The readable report.
pub fn render_text(job: &Job, device: &str, rows: &[Row], s: &ValidationStats) -> String {
    use std::fmt::Write as _;
    let c = &job.config;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "validated {} networks of space '{}' ({}) against {} on {device}, batch {}, launch {}, l2 {}, {} {}{}",
        s.count, job.space.name,
        match (&job.given, job.width_multiple) {
            (Some(_), _) => "given by --arch".to_string(),
            (None, 1) => format!("seed {}, any width", job.seed),
            (None, m) => format!("seed {}, widths on multiples of {m}", job.seed),
        },
        job.table_origin, c.batch, c.launch, c.l2, c.dtype, c.layout,
        if job.gauge.is_some() { ", at the table's speed reference" } else { "" }
    );
    // Each estimate with its 95% interval: 20 networks leave the goal's
    // numbers far less certain than their decimals suggest.
    let ci = |c: Option<(f64, f64)>, sign: bool| match c {
        Some((lo, hi)) if sign => format!(" (95% CI {lo:+.3}..{hi:+.3}%)"),
        Some((lo, hi)) => format!(" (95% CI {lo:.3}..{hi:.3}%)"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "MAPE {:.3}%, median |error| {:.3}%{}, RMSE {:.4} ms, mean signed error {:+.3}%{} ({:+.4} ms), Kendall tau {}",
        s.mape_pct,
        s.median_ape_pct,
        ci(s.median_ape_ci_pct, false),
        s.rmse_ms,
        s.mean_signed_error_pct,
        ci(s.mean_signed_error_ci_pct, true),
        s.mean_signed_error_ms,
        s.kendall_tau.map_or("n/a".into(), |t| format!("{t:.4}"))
    );
    let bands: Vec<String> = s
        .bands
        .iter()
        .map(|b| {
            format!(
                "±{}%: {:.1}% ({:.1}..{:.1}%)",
                b.within_pct,
                b.share * 100.0,
                b.share_ci.0 * 100.0,
                b.share_ci.1 * 100.0
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "within {} (shares with their 95% Wilson intervals)",
        bands.join(", ")
    );
    let w = &s.worst;
    let _ = writeln!(
        out,
        "worst: network {} predicted {:.4} ms, measured {:.4} ms ({:+.2}%): {}",
        rows[w.index].index, w.predicted_ms, w.measured_ms, w.error_pct, rows[w.index].arch
    );
    render_other_predictions(&mut out, job, rows);
    super::position::render_by_position(&mut out, job, rows);
    let throttled = rows.iter().filter(|r| r.throttled).count();
    if throttled > 0 {
        let _ = writeln!(
            out,
            "{throttled} network passes were measured while the device's speed was not steady (a GPU throttling, or a CPU table's speed standard moving over 3% around them)"
        );
    }
    out
}

/// A network's price under one of the table's twin rules, if it has one.
type TwinPrice = fn(&Network) -> Option<f64>;

/// The same rows under other predictions: the table's correction on top
/// of its own, and the plain sum of medians (no boundary taken off).
fn render_other_predictions(out: &mut String, job: &Job, rows: &[Row]) {
    use std::fmt::Write as _;
    let mut other = |what: String, predict: &dyn Fn(&Row) -> f64| {
        let pairs: Vec<Pair> = rows
            .iter()
            .map(|r| Pair::new(predict(r).max(0.0), r.measured_ms))
            .collect();
        if let Ok(cs) = validation_stats(&pairs) {
            let within3 = cs.bands.iter().find(|b| b.within_pct == 3.0);
            let _ = writeln!(
                out,
                "{what}: MAPE {:.3}%, median |error| {:.3}%, mean signed error {:+.3}%, within ±3%: {:.1}%",
                cs.mape_pct,
                cs.median_ape_pct,
                cs.mean_signed_error_pct,
                within3.map_or(f64::NAN, |b| b.share * 100.0)
            );
        }
    };
    if let Some(c) = job.correction {
        other(format!("with the table's correction ({c})"), &|r: &Row| {
            c.apply(r.predicted_ms)
        });
    }
    // Network i of the job is row i (`Job::new`, `Job::given`).
    let network = |r: &Row| {
        usize::try_from(r.index)
            .ok()
            .and_then(|i| job.networks.get(i))
    };
    // The table under its twin rules (`job::Twins`), where every network
    // has a price under them.
    let header = |key: &str| job.table_header.get(key).unwrap_or("");
    let twins: [(String, TwinPrice); 2] = [
        (
            format!(
                "priced by linear interpolation instead of the table's width model ({})",
                header(space::meta::WIDTH_MODEL)
            ),
            |n| n.linear_ms,
        ),
        (
            format!(
                "each measured width at its own entry instead of on its curve's line (curve_fit {})",
                header(space::meta::CURVE_FIT)
            ),
            |n| n.unfitted_ms,
        ),
    ];
    for (what, ms) in twins {
        if !job.networks.is_empty() && job.networks.iter().all(|n| ms(n).is_some()) {
            other(what, &|r: &Row| network(r).and_then(ms).unwrap_or(f64::NAN));
        }
    }
    if job.boundary_ms > 0.0 {
        let blocks = |r: &Row| network(r).map_or(0, |n| n.blocks.len());
        other(
            format!(
                "as plain sums of medians (without the table's boundary of {:.4} ms per block but one)",
                job.boundary_ms
            ),
            &|r: &Row| r.predicted_ms + blocks(r).saturating_sub(1) as f64 * job.boundary_ms,
        );
    }
}

/// Draws predicted (y) against measured (x) latency, one point per
/// network (its passes combined).
pub fn plot(path: &Path, rows: &[Row]) -> Result<()> {
    let points: Vec<crate::analysis::plot::Point> = rows::combine(rows)
        .iter()
        .map(|r| crate::analysis::plot::Point {
            group: if r.throttled { "throttled" } else { "network" }.into(),
            a_ms: r.measured_ms,
            b_ms: r.predicted_ms,
        })
        .collect();
    crate::analysis::plot::scatter(
        path,
        &points,
        "Sampled networks: table prediction against end-to-end time, ms",
        "measured end to end (ms)",
        "predicted by the table (ms)",
    )
}
