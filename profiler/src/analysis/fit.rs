//! `profiler fit --validation rows.csv --table T.csv [--out T2.csv]`: a
//! per-network correction of the table's sum of blocks, estimated from a
//! validation run and checked out of sample.
//!
//! The rows are split by index parity: even indices fit, odd ones test.
//! The networks were sampled independently, so parity is as good as a
//! random split, and it needs no seed. The error before and after is
//! reported on the test half only, so a correction that merely memorises
//! the fitted networks shows no gain. The correction is written as the
//! `correction` header line of a copy of the table ([`space::Correction`]),
//! through which the searcher maps its target (and reports with
//! `LatencyTable::corrected_total`).
//!
//! `--model boundary` fits instead a change to the table's boundary (what
//! each block timed alone adds over the same block in a network,
//! `space::LatencyTable::boundary_ms`): a network of `k` blocks is then
//! predicted `(k - 1)·δ` lower. Unlike a constant, this follows depth,
//! which the search changes; the copy gets the new `boundary_ms`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use space::{meta, Correction, LatencyTable};

use crate::analysis::accuracy::{validation_stats, Pair, ValidationStats};
use crate::analysis::rows::{read as read_rows, sha256_16, Row};
use crate::error::{bail, ensure, Context, ProfilerError, Result};

/// Header line naming where a correction came from (informative).
pub const CORRECTION_SOURCE_KEY: &str = "correction_source";

/// Header line naming where a fitted boundary came from (informative; the
/// `boundary` line keeps saying how the profiler measured the first one).
pub const BOUNDARY_SOURCE_KEY: &str = "boundary_source";

/// What `fit` fits (the binary's `--model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// measured ≈ a · predicted + b, by least squares.
    Linear,
    /// measured ≈ predicted + b: only a constant offset (a = 1).
    Offset,
    /// measured ≈ a · predicted: only a factor (b = 0), what a table's
    /// level off by a few percent needs (least squares through the origin).
    Scale,
    /// measured ≈ predicted − (blocks − 1)·δ: the table's boundary grows by
    /// δ (least squares through the origin).
    Boundary,
}

/// What `profiler fit` reads and writes.
#[derive(Clone, Debug)]
pub struct FitArgs {
    /// The rows written by `profiler validate --out`.
    pub validation: PathBuf,
    /// The table those rows validated.
    pub table: PathBuf,
    /// Where the corrected copy of the table goes, if anywhere.
    pub out: Option<PathBuf>,
    pub model: Model,
}

#[derive(Clone, Debug, Serialize)]
pub struct FitReport {
    pub model: &'static str,
    /// The correction (`a = 1, b = 0` for the boundary model).
    pub a: f64,
    pub b: f64,
    /// The boundary model's δ, ms per block but one.
    pub boundary_delta_ms: Option<f64>,
    pub fitted_on: usize,
    pub tested_on: usize,
    /// On the held-out half: the table's sums as they are ...
    pub before: ValidationStats,
    /// ... and corrected.
    pub after: ValidationStats,
}

impl FitReport {
    pub fn correction(&self) -> Correction {
        Correction {
            a: self.a,
            b: self.b,
        }
    }
}

/// Block boundaries between a row's blocks: its blocks less one.
fn joins(r: &Row) -> Result<f64> {
    space::blocks_in_code(&r.arch)
        .map(|k| k.saturating_sub(1) as f64)
        .ok_or_else(|| {
            ProfilerError::Invalid(format!(
                "row {}: '{}' is not an architecture code",
                r.index, r.arch
            ))
        })
}

/// Fits `model` on the even-indexed rows and scores it on the odd ones.
pub fn fit(rows: &[Row], model: Model) -> Result<FitReport> {
    let (train, test): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| r.index % 2 == 0);
    ensure!(
        train.len() >= 2 && !test.is_empty(),
        "a fit needs at least 3 networks (2 to fit, 1 to test), the file has {}",
        rows.len()
    );
    if model == Model::Boundary {
        return fit_boundary(&train, &test);
    }
    let n = train.len() as f64;
    let mean_p = train.iter().map(|r| r.predicted_ms).sum::<f64>() / n;
    let mean_m = train.iter().map(|r| r.measured_ms).sum::<f64>() / n;
    let (a, b) = match model {
        Model::Boundary => unreachable!("fitted above"),
        Model::Offset => (1.0, mean_m - mean_p),
        Model::Scale => {
            let spm: f64 = train.iter().map(|r| r.predicted_ms * r.measured_ms).sum();
            let spp: f64 = train.iter().map(|r| r.predicted_ms.powi(2)).sum();
            let a = spm / spp;
            ensure!(
                a > 0.0 && a.is_finite(),
                "the fitted factor {a} is not positive: the predictions do not follow the measurements; no correction can fix that"
            );
            (a, 0.0)
        }
        Model::Linear => {
            let sxx: f64 = train
                .iter()
                .map(|r| (r.predicted_ms - mean_p).powi(2))
                .sum();
            let sxy: f64 = train
                .iter()
                .map(|r| (r.predicted_ms - mean_p) * (r.measured_ms - mean_m))
                .sum();
            ensure!(
                sxx > 1e-12 * mean_p.powi(2).max(1e-300),
                "the fitted networks all have the same prediction; a slope cannot be fitted (use --model offset)"
            );
            let a = sxy / sxx;
            ensure!(
                a > 0.0 && a.is_finite(),
                "the fitted slope {a} is not positive: the predictions do not follow the measurements; no correction can fix that"
            );
            (a, mean_m - a * mean_p)
        }
    };
    let pairs = |f: &dyn Fn(f64) -> f64| -> Vec<Pair> {
        test.iter()
            .map(|r| Pair::new(f(r.predicted_ms), r.measured_ms))
            .collect()
    };
    let corrected = pairs(&|p| (a * p + b).max(0.0));
    Ok(FitReport {
        model: match model {
            Model::Offset => "offset",
            Model::Scale => "scale",
            _ => "linear",
        },
        a,
        b,
        boundary_delta_ms: None,
        fitted_on: train.len(),
        tested_on: test.len(),
        before: validation_stats(&pairs(&|p| p))?,
        after: validation_stats(&corrected)?,
    })
}

/// The boundary model: `predicted − measured = (k − 1)·δ` by least
/// squares through the origin on `train`, scored on `test`.
fn fit_boundary(train: &[&Row], test: &[&Row]) -> Result<FitReport> {
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for r in train {
        let j = joins(r)?;
        sxy += j * (r.predicted_ms - r.measured_ms);
        sxx += j * j;
    }
    ensure!(sxx > 0.0, "the fitted networks have no block boundaries");
    let delta = sxy / sxx;
    let pairs = |d: f64| -> Result<Vec<Pair>> {
        test.iter()
            .map(|r| {
                Ok(Pair::new(
                    (r.predicted_ms - joins(r)? * d).max(0.0),
                    r.measured_ms,
                ))
            })
            .collect()
    };
    Ok(FitReport {
        model: "boundary",
        a: 1.0,
        b: 0.0,
        boundary_delta_ms: Some(delta),
        fitted_on: train.len(),
        tested_on: test.len(),
        before: validation_stats(&pairs(0.0)?)?,
        after: validation_stats(&pairs(delta)?)?,
    })
}

/// `text` (a table) with `lines` set in its header: an existing line of
/// the same key is replaced in place, a new one goes before the columns.
pub fn set_header_lines(text: &str, lines: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(text.len() + 200);
    let mut pending: Vec<&(&str, String)> = lines.iter().collect();
    let mut in_header = true;
    for line in text.lines() {
        let key = crate::files::resume::header_key(line);
        if let Some(pos) = pending.iter().position(|(k, _)| Some(*k) == key) {
            let (k, v) = pending.remove(pos);
            out.push_str(&format!("# {k}: {v}\n"));
            continue;
        }
        if lines.iter().any(|(k, _)| Some(*k) == key) {
            continue; // a repeat of a key already replaced
        }
        if in_header && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            in_header = false;
            for (k, v) in pending.drain(..) {
                out.push_str(&format!("# {k}: {v}\n"));
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `text` (a table) without its header lines of these `keys`.
pub fn drop_header_lines(text: &str, keys: &[&str]) -> String {
    text.lines()
        .filter(|l| crate::files::resume::header_key(l).is_none_or(|k| !keys.contains(&k)))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn pct(s: &ValidationStats, within: f64) -> f64 {
    s.bands
        .iter()
        .find(|b| b.within_pct == within)
        .map_or(f64::NAN, |b| b.share * 100.0)
}

pub fn render_text(r: &FitReport) -> String {
    let row = |name: &str, s: &ValidationStats| {
        format!(
            "  {name:<7} MAPE {:>7.3}%  median |error| {:>7.3}%  mean signed {:>+8.3}%  within ±3% {:>5.1}%  ±5% {:>5.1}%  RMSE {:.4} ms\n",
            s.mape_pct,
            s.median_ape_pct,
            s.mean_signed_error_pct,
            pct(s, 3.0),
            pct(s, 5.0),
            s.rmse_ms
        )
    };
    let what = match r.boundary_delta_ms {
        Some(d) => format!(
            "boundary: measured ≈ predicted − (blocks − 1) · {d:+.6} ms, the table's boundary {} by {:.6} ms",
            if d >= 0.0 { "raised" } else { "lowered" },
            d.abs()
        ),
        None => format!("correction: measured ≈ {:.6} · predicted {:+.6} ms", r.a, r.b),
    };
    format!(
        "{what} (fitted on {} networks, tested on the other {})\n{}{}",
        r.fitted_on,
        r.tested_on,
        row("before", &r.before),
        row("after", &r.after)
    )
}

/// What `profiler fit` found: the report and, with `--out`, the table's
/// corrected copy, with the notes to say before the report.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub report: FitReport,
    pub copy: Option<String>,
    pub notes: Vec<String>,
}

/// `profiler fit` up to its output: reads the rows and the table they
/// validated, fits, and makes (and checks) the corrected copy, so that a
/// refused fit is refused before anything is printed or written.
pub fn run(args: &FitArgs) -> Result<Fitted> {
    // Read once: the rows' SHA-256, the table and its copy all come from
    // the same text.
    let text = std::fs::read_to_string(&args.table)
        .with_context(|| format!("cannot read {}", args.table.display()))?;
    let table = LatencyTable::parse(&text, &args.table.display().to_string())?;
    let rows = read_rows(&args.validation)?;
    let sha = sha256_16(text.as_bytes());
    match rows.header.get("table_sha256") {
        Some(s) if s == sha => {}
        Some(s) => bail!(
            "{} validated another table (sha256 {s}), not {} ({sha}): fit on the rows of this table",
            args.validation.display(),
            table.origin()
        ),
        None => bail!(
            "{}: no table_sha256 header line; cannot tell which table these rows validated",
            args.validation.display()
        ),
    }
    if let Some(out) = &args.out {
        if same_file(out, &args.table) {
            bail!(
                "--out {}: write the corrected table to another file, keeping the measured one",
                out.display()
            );
        }
    }
    if let Some(out) = &args.out {
        space::io::check_output(
            out,
            &[
                ("table", &args.table),
                ("validation rows", &args.validation),
            ],
        )?;
    }
    // One row per network: its passes combined, as `validate` reported.
    let networks = crate::analysis::rows::combine(&rows.rows);
    let report = fit(&networks, args.model)?;
    let mut notes = Vec::new();
    let copy = match &args.out {
        Some(_) => Some(corrected_copy(
            args,
            &text,
            &table,
            &report,
            networks.len(),
            &mut notes,
        )?),
        None => None,
    };
    Ok(Fitted {
        report,
        copy,
        notes,
    })
}

/// Writes the corrected copy to `out`.
pub fn write_copy(out: &Path, text: &str) -> Result<()> {
    Ok(space::io::write_atomic(out, text.as_bytes())?)
}

/// The table's copy (`text`, the bytes whose SHA-256 the rows named) with
/// `report` in its header, read back.
fn corrected_copy(
    args: &FitArgs,
    text: &str,
    table: &LatencyTable,
    report: &FitReport,
    rows: usize,
    notes: &mut Vec<String>,
) -> Result<String> {
    let source = format!(
        "{} ({rows} rows, fitted on even indices; held-out MAPE {:.3}% -> {:.3}%)",
        args.validation.display(),
        report.before.mape_pct,
        report.after.mape_pct
    );
    let lines = match report.boundary_delta_ms {
        Some(delta) => {
            let boundary = table.boundary_ms() + delta;
            let cheapest = table
                .entries()
                .iter()
                .map(|e| e.stats.median_ms)
                .fold(f64::INFINITY, f64::min);
            ensure!(
                boundary >= 0.0 && boundary < cheapest,
                "the fitted boundary {boundary:.6} ms is not between 0 and the cheapest entry's median {cheapest:.6} ms: the table and these networks disagree by more than a boundary can explain; no copy written"
            );
            if table.correction().is_some() {
                notes.push(
                    "note: the copy drops the table's correction line: it was fitted under the old boundary".into(),
                );
            }
            vec![
                (meta::BOUNDARY_MS, format!("{boundary:.6}")),
                (BOUNDARY_SOURCE_KEY, source),
            ]
        }
        None => vec![
            (meta::CORRECTION, report.correction().to_string()),
            (CORRECTION_SOURCE_KEY, source),
        ],
    };
    let mut new = set_header_lines(text, &lines);
    if report.boundary_delta_ms.is_some() {
        new = drop_header_lines(&new, &[meta::CORRECTION, CORRECTION_SOURCE_KEY]);
    }
    let out = args.out.as_deref().unwrap_or(&args.table);
    LatencyTable::parse(&new, &out.display().to_string())?;
    Ok(new)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: u64, predicted_ms: f64, measured_ms: f64) -> Row {
        Row {
            index,
            pass: 0,
            seed: 1,
            predicted_ms,
            measured_ms,
            measured_p10_ms: measured_ms,
            measured_p90_ms: measured_ms,
            samples: 10,
            throttled: false,
            raw_ms: measured_ms,
            arch: String::new(),
        }
    }

    #[test]
    fn an_exact_linear_relation_is_recovered_and_removes_the_error() {
        // measured = 0.9 · predicted + 0.4
        let rows: Vec<Row> = (0..10)
            .map(|i| {
                let p = 3.0 + f64::from(i as u32) * 0.37;
                row(i, p, 0.9 * p + 0.4)
            })
            .collect();
        let r = fit(&rows, Model::Linear).unwrap();
        assert!(
            (r.a - 0.9).abs() < 1e-12 && (r.b - 0.4).abs() < 1e-12,
            "{r:?}"
        );
        assert_eq!((r.fitted_on, r.tested_on), (5, 5));
        assert!(r.before.mape_pct > 1.0);
        assert!(r.after.mape_pct < 1e-9, "{}", r.after.mape_pct);
        // An offset alone cannot remove a slope.
        let o = fit(&rows, Model::Offset).unwrap();
        assert_eq!(o.a, 1.0);
        assert!(o.after.mape_pct > 1e-3 && o.after.mape_pct < o.before.mape_pct);
    }

    #[test]
    fn the_report_gives_the_held_out_shares_within_3_and_5_percent() {
        // The fitted half exact (factor 1); the held-out half's errors
        // (predicted over measured − 1) +1, +4, +4 and +8%.
        let errors = [1.0, 4.0, 4.0, 8.0];
        let rows: Vec<Row> = (0..8)
            .map(|i| {
                let p = 10.0 + i as f64;
                let e = if i % 2 == 0 { 0.0 } else { errors[i / 2] };
                row(i as u64, p, p / (1.0 + e / 100.0))
            })
            .collect();
        let r = fit(&rows, Model::Scale).unwrap();
        assert!((r.a - 1.0).abs() < 1e-12, "{r:?}");
        let text = render_text(&r);
        let after = text.lines().find(|l| l.starts_with("  after")).unwrap();
        assert!(after.contains("within ±3%  25.0%  ±5%  75.0%"), "{text}");
    }

    #[test]
    fn the_scale_is_fitted_through_the_origin_on_the_fitted_half_only() {
        // Even rows measure 2% under their prediction, odd rows 3% under.
        let rows: Vec<Row> = (0..8)
            .map(|i| {
                let p = 10.0 + 3.0 * i as f64;
                row(i, p, p * if i % 2 == 0 { 0.98 } else { 0.97 })
            })
            .collect();
        let r = fit(&rows, Model::Scale).unwrap();
        assert_eq!((r.model, r.b), ("scale", 0.0));
        assert!((r.a - 0.98).abs() < 1e-12, "{r:?}");
        // Held out: every error +3.09% before (1/0.97 − 1), +1.03% after.
        assert!((r.before.mape_pct - (1.0 / 0.97 - 1.0) * 100.0).abs() < 1e-9);
        assert!((r.after.mape_pct - (0.98 / 0.97 - 1.0) * 100.0).abs() < 1e-9);
    }

    #[test]
    fn the_offset_is_the_mean_difference_on_the_fitted_half_only() {
        // Even rows: measured = predicted + 0.5; odd rows + 0.7.
        let rows: Vec<Row> = (0..8)
            .map(|i| {
                let p = 4.0 + i as f64;
                row(i, p, p + if i % 2 == 0 { 0.5 } else { 0.7 })
            })
            .collect();
        let r = fit(&rows, Model::Offset).unwrap();
        assert!((r.b - 0.5).abs() < 1e-12, "fitted on even rows only");
        // Held out: before, each error is −0.7/m; after, −0.2/m.
        let want_before: f64 = [1.0, 3.0, 5.0, 7.0]
            .iter()
            .map(|i| 0.7 / (4.7 + i) * 100.0)
            .sum::<f64>()
            / 4.0;
        assert!((r.before.mape_pct - want_before).abs() < 1e-9);
        assert!((r.after.mape_pct - want_before * 0.2 / 0.7).abs() < 1e-9);
    }

    #[test]
    fn the_boundary_model_recovers_a_per_block_excess() {
        // Predictions high by 3 us per block but one; networks of 4..=9
        // blocks (codes of 1..=6 kept blocks).
        let rows: Vec<Row> = (0..12)
            .map(|i| {
                let kept = (i * 5 % 6 + 1) as usize;
                let p = 3.0 + i as f64 * 0.2;
                Row {
                    arch: vec!["k3_e6:120"; kept].join("+"),
                    ..row(i, p, p - (kept + 2) as f64 * 0.003)
                }
            })
            .collect();
        let r = fit(&rows, Model::Boundary).unwrap();
        let d = r.boundary_delta_ms.unwrap();
        assert!((d - 0.003).abs() < 1e-12, "{d}");
        assert_eq!((r.a, r.b, r.model), (1.0, 0.0, "boundary"));
        assert!(r.before.mean_signed_error_pct > 0.1);
        assert!(r.after.mape_pct < 1e-9, "{}", r.after.mape_pct);
        assert!(render_text(&r).contains("raised by 0.003000 ms"));
        // A constant offset cannot follow depth: worse held out.
        let o = fit(&rows, Model::Offset).unwrap();
        assert!(o.after.mape_pct > 1e-3);
        // Rows without an architecture code cannot be fitted this way.
        let e = fit(
            &[row(0, 1.0, 1.0), row(1, 1.0, 1.0), row(2, 1.0, 1.0)],
            Model::Boundary,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not an architecture code"), "{e}");
    }

    #[test]
    fn hopeless_fits_are_refused() {
        assert!(fit(&[row(0, 1.0, 1.0), row(1, 1.0, 1.0)], Model::Linear).is_err());
        let same: Vec<Row> = (0..6).map(|i| row(i, 2.0, 2.0 + i as f64)).collect();
        let e = fit(&same, Model::Linear).unwrap_err().to_string();
        assert!(e.contains("--model offset"), "{e}");
        let reversed: Vec<Row> = (0..6)
            .map(|i| row(i, 1.0 + i as f64, 10.0 - i as f64))
            .collect();
        let e = fit(&reversed, Model::Linear).unwrap_err().to_string();
        assert!(e.contains("not positive"), "{e}");
    }

    #[test]
    fn header_lines_are_added_once_and_replaced_in_place() {
        let table =
            "# format: tfnas-latency-table/1\n# batch: 32\nkey,batch\nx,32\n# finished: t\n";
        let once = set_header_lines(table, &[("correction", "linear a=1 b=0".into())]);
        assert_eq!(
            once,
            "# format: tfnas-latency-table/1\n# batch: 32\n# correction: linear a=1 b=0\nkey,batch\nx,32\n# finished: t\n"
        );
        let twice = set_header_lines(&once, &[("correction", "linear a=2 b=1".into())]);
        assert_eq!(twice, once.replace("a=1 b=0", "a=2 b=1"));
        assert_eq!(drop_header_lines(&twice, &["correction"]), table);
    }
}
