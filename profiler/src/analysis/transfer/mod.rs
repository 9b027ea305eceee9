//! `profiler probe` and `profiler transfer`: a new device's table from a
//! small probe measured there and a full table of another device.
//!
//! Blocks on two devices are not priced by one factor, but along one curve
//! of the reference (one block shape, the mid width varying) the ratio
//! moves slowly. So [`plan`] picks the keys to measure (the fixed parts,
//! every curve's ends, then where the reference's curves bend), [`model`]
//! fits a ratio per curve from the probe, and [`transfer`] writes every key
//! of the reference: the probe's rows as measured, the others predicted,
//! with a header that says so and the error cross-validation estimates.
//! [`evaluate`] scores such a table against a fully measured one.

pub mod evaluate;
pub mod model;
pub mod plan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use space::{meta, BlockShape, BlockSpec, Entry, LatencyStats, LatencyTable, Metadata};

use crate::error::{bail, Context, Result};
use crate::stats::quantile;
use model::RatioModel;

/// One curve of the reference: a block shape and its `(mid, priced ms)`
/// points sorted by mid (priced: the median less the table's boundary).
#[derive(Clone, Debug)]
pub struct Curve {
    pub shape: BlockShape,
    pub points: Vec<(u32, f64)>,
}

impl Curve {
    /// Where `mid` lies between the curve's ends, 0 to 1.
    pub fn t(&self, mid: u32) -> f64 {
        let (lo, hi) = (self.points[0].0, self.points[self.points.len() - 1].0);
        if hi == lo {
            return 0.0;
        }
        (f64::from(mid) - f64::from(lo)) / (f64::from(hi) - f64::from(lo))
    }
}

/// What `e` adds to a network as `table` prices it: on its curve's line
/// under `curve_fit: affine`, so that a noisy entry of the reference or the
/// probe does not carry its noise into the ratio or the predicted rows;
/// its median less the boundary otherwise.
fn priced(table: &LatencyTable, e: &Entry) -> f64 {
    table
        .estimate(&e.spec)
        .map_or(e.stats.median_ms - table.boundary_ms(), |x| x.ms)
}

/// The reference table arranged by curve: shapes with two or more widths
/// are curves; the others (stem, second stem, head) are fixed parts.
#[derive(Clone, Debug)]
pub struct Reference {
    pub curves: Vec<Curve>,
    pub fixed: Vec<BlockSpec>,
    /// Each curve entry's curve and point index.
    pub index: HashMap<BlockSpec, (usize, usize)>,
    /// Every key in the table's row order.
    pub order: Vec<BlockSpec>,
}

impl Reference {
    pub fn new(table: &LatencyTable) -> Reference {
        let mut by_shape: HashMap<BlockShape, Vec<(u32, f64)>> = HashMap::new();
        for e in table.entries() {
            by_shape
                .entry(e.spec.shape)
                .or_default()
                .push((e.spec.mid_channels, priced(table, e)));
        }
        let mut shapes: Vec<BlockShape> = by_shape.keys().copied().collect();
        shapes.sort();
        let (mut curves, mut fixed, mut index) = (Vec::new(), Vec::new(), HashMap::new());
        for shape in shapes {
            let mut points = by_shape.remove(&shape).expect("shape");
            points.sort_by_key(|p| p.0);
            if points.len() < 2 {
                fixed.push(shape.at(points[0].0));
                continue;
            }
            for (i, p) in points.iter().enumerate() {
                index.insert(shape.at(p.0), (curves.len(), i));
            }
            curves.push(Curve { shape, points });
        }
        Reference {
            curves,
            fixed,
            index,
            order: table.entries().iter().map(|e| e.spec).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// What `profiler transfer` reads and how.
#[derive(Clone, Debug)]
pub struct TransferArgs {
    pub reference: PathBuf,
    pub probe: PathBuf,
    /// Accept a probe at another batch size than the reference.
    pub allow_batch: bool,
    /// The command line, for the header.
    pub command: String,
}

/// A transferred table: its text, the table as read back, and its numbers.
#[derive(Clone, Debug)]
pub struct Transferred {
    pub text: String,
    pub table: LatencyTable,
    pub measured: usize,
    pub predicted: usize,
    /// Leave-one-out relative errors over the probe's curve points.
    pub cv_errors: Vec<f64>,
    pub cv_line: String,
}

/// Reads a table, naming its role in the error.
pub fn read_table(path: &Path, role: &str) -> Result<LatencyTable> {
    LatencyTable::from_path(path).with_context(|| format!("cannot read the {role}"))
}

/// Refuses two tables of different spaces, or of different batch sizes
/// unless `allow_batch`: one sentence naming both.
pub fn check_compatible(
    a: &LatencyTable,
    b: &LatencyTable,
    roles: (&str, &str),
    allow_batch: bool,
) -> Result<()> {
    for key in [meta::SPACE, meta::SPACE_DIGEST] {
        if let (Some(x), Some(y)) = (a.metadata().get(key), b.metadata().get(key)) {
            if x != y {
                bail!(
                    "the {} {} is of {key} '{x}' and the {} {} of '{y}': a transfer needs tables of one space",
                    roles.0,
                    a.origin(),
                    roles.1,
                    b.origin()
                );
            }
        }
    }
    if !allow_batch && a.batch() != b.batch() {
        bail!(
            "the {} {} is at batch {} and the {} {} at batch {}: a ratio across batch sizes is another transfer (pass --allow-batch to make it anyway)",
            roles.0,
            a.origin(),
            a.batch(),
            roles.1,
            b.origin(),
            b.batch()
        );
    }
    Ok(())
}

/// Refuses a probe with keys the reference lacks, naming the first few.
fn check_probe_keys(reference: &LatencyTable, probe: &LatencyTable) -> Result<()> {
    let outside: Vec<String> = probe
        .entries()
        .iter()
        .filter(|e| reference.entry(&e.spec).is_none())
        .map(|e| e.spec.key())
        .collect();
    if outside.is_empty() {
        return Ok(());
    }
    bail!(
        "the probe {} has {} keys the reference {} lacks (first: {}): a probe measures keys of the reference",
        probe.origin(),
        outside.len(),
        reference.origin(),
        outside.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
    )
}

/// The probe's `(t, log ratio)` points per curve of `reference`.
fn observations(reference: &Reference, p: &LatencyTable) -> Vec<Vec<model::Obs>> {
    let mut observed = vec![Vec::new(); reference.curves.len()];
    for e in p.entries() {
        let Some(&(c, i)) = reference.index.get(&e.spec) else {
            continue;
        };
        let priced_a = reference.curves[c].points[i].1;
        let priced_p = priced(p, e);
        if priced_a > 0.0 && priced_p > 0.0 {
            let t = reference.curves[c].t(e.spec.mid_channels);
            observed[c].push(model::Obs {
                t,
                y: (priced_p / priced_a).ln(),
                ln_a: priced_a.ln(),
            });
        }
    }
    observed
}

/// `profiler transfer` up to its output: reads and checks both tables,
/// fits the ratio model, and makes the predicted table's text (read back).
pub fn transfer(args: &TransferArgs) -> Result<Transferred> {
    let a = read_table(&args.reference, "reference")?;
    let p = read_table(&args.probe, "probe")?;
    transfer_tables(&a, &p, args)
}

/// [`transfer`] from tables already read (`args` names their files for
/// the header).
pub fn transfer_tables(
    a: &LatencyTable,
    p: &LatencyTable,
    args: &TransferArgs,
) -> Result<Transferred> {
    check_compatible(a, p, ("reference", "probe"), args.allow_batch)?;
    check_probe_keys(a, p)?;
    let reference = Reference::new(a);
    let observed = observations(&reference, p);
    let Some(model) = RatioModel::fit(&reference, observed) else {
        bail!(
            "the probe {} has no entry on a curve of the reference {} (a shape at two or more widths): there is no ratio to learn",
            p.origin(),
            a.origin()
        );
    };
    let cv_errors = model.cross_validate();
    let cv_line = format!(
        "{}; the reference's detail between probed widths weighted {:.2}",
        cv_summary(&cv_errors),
        model.detail_weight
    );
    let (rows, measured) = predicted_rows(&reference, a, p, &model, &cv_errors);
    let header = header(a, p, args, &cv_line, &measured);
    let text = render(&header, &rows)?;
    let table = LatencyTable::parse(&text, "the transferred table")?;
    Ok(Transferred {
        text,
        table,
        measured: measured.len(),
        predicted: rows.len() - measured.len(),
        cv_errors,
        cv_line,
    })
}

/// Median, p90 and max of |errors| in percent, as the header's line says it.
pub fn cv_summary(errors: &[f64]) -> String {
    let mut abs: Vec<f64> = errors.iter().map(|e| e.abs() * 100.0).collect();
    abs.sort_by(f64::total_cmp);
    if abs.is_empty() {
        return "no probed curve point to hold out".into();
    }
    format!(
        "leave-one-out over the probe's {} curve entries (each predicted from the others): median |error| {:.2}%, p90 {:.2}%, max {:.2}%",
        abs.len(),
        quantile(&abs, 0.5),
        quantile(&abs, 0.9),
        abs[abs.len() - 1]
    )
}

/// Every row of the reference for the probe's device, in the reference's
/// order: the probe's own rows, the others predicted; and the measured keys.
fn predicted_rows(
    reference: &Reference,
    a: &LatencyTable,
    p: &LatencyTable,
    model: &RatioModel,
    cv_errors: &[f64],
) -> (Vec<Entry>, Vec<String>) {
    let mut abs: Vec<f64> = cv_errors.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let spread = if abs.is_empty() {
        0.0
    } else {
        quantile(&abs, 0.9)
    };
    let (mut rows, mut measured) = (Vec::new(), Vec::new());
    for spec in &reference.order {
        if let Some(e) = p.entry(spec) {
            rows.push(*e);
            measured.push(spec.key());
            continue;
        }
        let log_ratio = match reference.index.get(spec) {
            Some(&(c, i)) => {
                let curve = &reference.curves[c];
                let ln_a = curve.points[i].1.max(1e-300).ln();
                model.log_ratio(c, curve.t(spec.mid_channels), ln_a)
            }
            None => model.global,
        };
        let ea = a.entry(spec).expect("a key of the reference");
        let priced = priced(a, ea).max(0.0) * log_ratio.exp();
        rows.push(Entry {
            spec: *spec,
            batch: p.batch(),
            stats: scaled_stats(&ea.stats, priced + p.boundary_ms(), spread),
        });
    }
    (rows, measured)
}

/// A predicted row's statistics: the median predicted, p10 and p90 scaled
/// from the reference's row, and a 95% interval at least as wide as the
/// cross-validated p90 error `spread` (a fraction); one sample, its own.
fn scaled_stats(a: &LatencyStats, median: f64, spread: f64) -> LatencyStats {
    let scale = if a.median_ms > 0.0 {
        median / a.median_ms
    } else {
        1.0
    };
    let ci_rel = ((a.ci_high_ms - a.ci_low_ms) / 2.0 / a.median_ms.max(1e-300)).max(spread);
    LatencyStats {
        median_ms: median,
        p10_ms: (a.p10_ms * scale).min(median),
        p90_ms: (a.p90_ms * scale).max(median),
        ci_low_ms: (median * (1.0 - ci_rel)).max(0.0),
        ci_high_ms: median * (1.0 + ci_rel),
        samples: 1,
        throttled: false,
    }
}

/// The predicted table's header: the probe's (its device), less the lines
/// of its own run, with the reference's width step and the transfer's lines.
fn header(
    a: &LatencyTable,
    p: &LatencyTable,
    args: &TransferArgs,
    cv_line: &str,
    measured: &[String],
) -> Metadata {
    let drop = [
        meta::COMMAND,
        meta::STARTED,
        meta::FINISHED,
        meta::CLOCKS,
        meta::WIDTH_STEP,
    ];
    let mut md = Metadata::new();
    for (k, v) in p.metadata().iter() {
        if !drop.contains(&k) {
            md.set(k, v);
        }
    }
    md.set(meta::FORMAT, space::table::FORMAT)
        .set(meta::BATCH, p.batch());
    if let Some(step) = a.metadata().get(meta::WIDTH_STEP) {
        md.set(meta::WIDTH_STEP, step);
    }
    let total = a.len();
    md.set(
        meta::PREDICTED,
        format!(
            "{} of {total} rows measured (the probe's), the other {} predicted from the reference along each curve (docs/transfer.md); not a measurement",
            measured.len(),
            total - measured.len()
        ),
    )
    .set(meta::TRANSFER_REFERENCE, describe(a, &args.reference))
    .set(meta::TRANSFER_PROBE, describe(p, &args.probe))
    .set(meta::TRANSFER_CV, cv_line)
    .set(meta::COMMAND, &args.command)
    .set(meta::TRANSFER_MEASURED, measured.join(" "));
    md
}

/// A table as another table's header names it: file, SHA-256, device, batch, size.
pub fn describe(t: &LatencyTable, path: &Path) -> String {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    format!(
        "{name} sha256 {}, device '{}', batch {}, {} entries",
        t.content_sha256(),
        t.metadata().get(meta::DEVICE_NAME).unwrap_or("unknown"),
        t.batch(),
        t.len()
    )
}

fn render(header: &Metadata, rows: &[Entry]) -> Result<String> {
    let mut w = space::TableWriter::new(Vec::new(), header)?;
    for row in rows {
        w.write(row)?;
    }
    let bytes = w.finish(&Metadata::new())?;
    Ok(String::from_utf8(bytes).expect("the writer writes UTF-8"))
}

/// The measured keys a predicted table's header lists (empty for a table
/// that is not predicted).
pub fn measured_keys(table: &LatencyTable) -> Vec<&str> {
    table
        .metadata()
        .get(meta::TRANSFER_MEASURED)
        .map(|v| v.split_whitespace().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
