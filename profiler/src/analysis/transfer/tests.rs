//! The plan's coverage and exact predictions where the true transfer is
//! known: synthetic tables (made-up latencies, written to a temporary
//! folder, never under tables/) whose device B is A times a factor.

use std::path::{Path, PathBuf};

use space::{meta, BlockSpec, Entry, LatencyStats, LatencyTable, Metadata, SearchSpaceConfig};

use super::*;

/// A made-up latency with bends: a curve per shape, a bump every 16 widths.
fn a_ms(s: &BlockSpec) -> f64 {
    let m = f64::from(s.mid_channels.max(1));
    let r = f64::from(s.shape.resolution);
    0.01 + 1e-6 * m * r * r / 4.0 * (1.0 + 0.1 * f64::from(s.shape.kernel))
        + if s.mid_channels % 16 == 0 { 0.002 } else { 0.0 }
}

/// The same without the bumps: every curve a straight line in its width.
fn line_ms(s: &BlockSpec) -> f64 {
    let m = f64::from(s.mid_channels.max(1));
    let r = f64::from(s.shape.resolution);
    0.01 + 1e-6 * m * r * r / 4.0 * (1.0 + 0.1 * f64::from(s.shape.kernel))
}

/// ±3%, the sign alternating with the width along each curve: what noisy
/// entries do to a straight curve.
fn noise(mid: u32) -> f64 {
    if (mid / 8) % 2 == 0 {
        1.03
    } else {
        0.97
    }
}

fn write(dir: &Path, name: &str, batch: u32, rows: &[(BlockSpec, f64)]) -> PathBuf {
    write_fitted(dir, name, batch, rows, None)
}

/// A synthetic table whose header says `curve_fit: fit` where given.
fn write_fitted(
    dir: &Path,
    name: &str,
    batch: u32,
    rows: &[(BlockSpec, f64)],
    fit: Option<&str>,
) -> PathBuf {
    let extra: Vec<(&str, &str)> = fit.map(|f| (meta::CURVE_FIT, f)).into_iter().collect();
    write_with(dir, name, batch, rows, &extra)
}

/// A synthetic table with the header lines `extra` added.
fn write_with(
    dir: &Path,
    name: &str,
    batch: u32,
    rows: &[(BlockSpec, f64)],
    extra: &[(&str, &str)],
) -> PathBuf {
    let mut md = Metadata::new();
    md.set(meta::FORMAT, space::table::FORMAT)
        .set(
            meta::DEVICE_NAME,
            format!("SYNTHETIC {name}: not a measurement"),
        )
        .set(meta::BATCH, batch)
        .set(meta::SPACE, "tfnas-imagenet")
        .set(meta::WIDTH_STEP, 8);
    for (key, value) in extra {
        md.set(key, value);
    }
    let mut w = space::TableWriter::new(Vec::new(), &md).unwrap();
    for &(spec, ms) in rows {
        // Each median known to ±5%, as a curve fit needs to judge its lines.
        let stats = LatencyStats {
            ci_low_ms: ms * 0.95,
            ci_high_ms: ms * 1.05,
            ..LatencyStats::exact(ms, 10)
        };
        w.write(&Entry { spec, batch, stats }).unwrap();
    }
    let path = dir.join(name);
    std::fs::write(&path, w.finish(&Metadata::new()).unwrap()).unwrap();
    path
}

fn blocks() -> Vec<BlockSpec> {
    SearchSpaceConfig::default().table_plan(8).unwrap().blocks
}

/// A, and B = A × factor(curve, t) restricted to `plan`'s keys, transferred.
fn transfer_with(
    fraction: f64,
    factor: impl Fn(&Curve, u32) -> f64,
) -> (Transferred, Vec<(BlockSpec, f64)>) {
    let rows_a: Vec<(BlockSpec, f64)> = blocks().into_iter().map(|s| (s, a_ms(&s))).collect();
    transfer_from(&rows_a, None, fraction, factor)
}

/// A's `rows_a` (its header's curve fit `fit_a`), and B = A's rows ×
/// factor(curve, t) restricted to `plan`'s keys, transferred.
fn transfer_from(
    rows_a: &[(BlockSpec, f64)],
    fit_a: Option<&str>,
    fraction: f64,
    factor: impl Fn(&Curve, u32) -> f64,
) -> (Transferred, Vec<(BlockSpec, f64)>) {
    let dir = tempfile::tempdir().unwrap();
    let a_path = write_fitted(dir.path(), "a.csv", 32, rows_a, fit_a);
    let reference = Reference::new(&LatencyTable::from_path(&a_path).unwrap());
    let truth: Vec<(BlockSpec, f64)> = rows_a
        .iter()
        .map(|&(s, ms)| {
            let f = match reference.index.get(&s) {
                Some(&(c, _)) => factor(&reference.curves[c], s.mid_channels),
                None => 3.0,
            };
            (s, ms * f)
        })
        .collect();
    let keys = plan::plan(&reference, fraction).keys;
    let probe: Vec<(BlockSpec, f64)> = truth
        .iter()
        .filter(|(s, _)| keys.contains(s))
        .copied()
        .collect();
    let p_path = write(dir.path(), "p.csv", 32, &probe);
    let t = transfer(&TransferArgs {
        reference: a_path,
        probe: p_path,
        allow_batch: false,
        command: "test".into(),
    })
    .unwrap();
    (t, truth)
}

/// Twenty networks of `space`, their widths multiples of 8.
fn sampling(space: &SearchSpaceConfig) -> evaluate::Sampling<'_> {
    evaluate::Sampling {
        space,
        networks: 20,
        multiple: 8,
    }
}

fn worst_error(t: &Transferred, truth: &[(BlockSpec, f64)]) -> f64 {
    truth
        .iter()
        .map(|(s, ms)| (t.table.entry(s).unwrap().stats.median_ms / ms - 1.0).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_plan_covers_fixed_parts_and_every_curves_ends() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<(BlockSpec, f64)> = blocks().into_iter().map(|s| (s, a_ms(&s))).collect();
    let path = write(dir.path(), "a.csv", 32, &rows);
    let reference = Reference::new(&LatencyTable::from_path(&path).unwrap());
    assert_eq!(reference.fixed.len(), 3);
    let p = plan::plan(&reference, 0.15);
    assert_eq!(p.keys.len(), p.budget);
    assert_eq!(p.curves_with_ends, reference.curves.len());
    for f in &reference.fixed {
        assert!(p.keys.contains(f));
    }
    for c in &reference.curves {
        let (lo, hi) = (c.points[0].0, c.points[c.points.len() - 1].0);
        assert!(p.keys.contains(&c.shape.at(lo)) && p.keys.contains(&c.shape.at(hi)));
    }
    // The bends (every 16 widths) are chosen before the straight parts.
    let inner: Vec<_> = p
        .keys
        .iter()
        .filter(|s| reference.index.contains_key(s))
        .collect();
    let bumps = inner.iter().filter(|s| s.mid_channels % 16 == 0).count();
    assert!(bumps * 2 > inner.len(), "{bumps} of {}", inner.len());
    // A budget below the fixed parts still measures them all.
    let tiny = plan::plan(&reference, 1e-6);
    assert_eq!(tiny.keys.len(), 3);
    assert!(tiny.describe(reference.len()).contains("over the budget"));
}

#[test]
fn a_factor_per_curve_is_predicted_exactly() {
    // B shares A's bends: the fitted detail weight is 1, and the ratio is
    // interpolated exactly between the probed ends.
    let (t, truth) = transfer_with(0.06, |c, _| {
        (1.0 + f64::from(c.shape.resolution + c.shape.kernel) / 50.0).exp()
    });
    assert!(
        worst_error(&t, &truth) < 1e-9,
        "{}",
        worst_error(&t, &truth)
    );
    assert!(t.cv_line.ends_with("weighted 1.00"), "{}", t.cv_line);
    assert_eq!(t.measured + t.predicted, truth.len());
}

#[test]
fn a_device_without_the_references_bends_is_interpolated_exactly() {
    // B is a straight line in the mid width on every curve (A's bumps are
    // not B's): the fitted detail weight is 0 and B is interpolated.
    let (t, truth) = transfer_with(0.06, |c, mid| {
        let a = a_ms(&c.shape.at(mid));
        let k = f64::from(c.shape.kernel);
        (0.02 * k + 1e-4 * f64::from(mid) * f64::from(c.shape.resolution)) / a
    });
    assert!(
        worst_error(&t, &truth) < 1e-9,
        "{}",
        worst_error(&t, &truth)
    );
    assert!(t.cv_line.ends_with("weighted 0.00"), "{}", t.cv_line);
    // Held out, an end is extrapolated flat from its neighbour: not exact.
    assert!(t.cv_errors.iter().any(|e| e.abs() > 1e-6));
}

#[test]
fn one_factor_is_predicted_exactly_on_curves_never_probed() {
    let (t, truth) = transfer_with(0.01, |_, _| 3.0);
    assert!(t.measured < 60);
    assert!(worst_error(&t, &truth) < 1e-9);
}

#[test]
fn the_header_says_predicted_and_lists_the_measured_rows() {
    let (t, _) = transfer_with(0.1, |_, _| 2.0);
    let md = t.table.metadata();
    assert!(md
        .get(meta::PREDICTED)
        .unwrap()
        .contains("not a measurement"));
    for key in [meta::TRANSFER_REFERENCE, meta::TRANSFER_PROBE] {
        let v = md.get(key).unwrap();
        assert!(v.contains(".csv sha256 ") && v.len() > 64, "{v}");
    }
    assert!(md
        .get(meta::TRANSFER_CV)
        .unwrap()
        .starts_with("leave-one-out"));
    assert_eq!(measured_keys(&t.table).len(), t.measured);
    assert_eq!(md.get(meta::WIDTH_STEP), Some("8"));
}

#[test]
fn a_transferred_table_scores_perfectly_against_its_truth() {
    let (t, truth) = transfer_with(0.06, |c, _| 2.0 + f64::from(c.shape.kernel) / 10.0);
    let dir = tempfile::tempdir().unwrap();
    let full = LatencyTable::from_path(&write(dir.path(), "full.csv", 32, &truth)).unwrap();
    let space = SearchSpaceConfig::default();
    let ev = evaluate::evaluate(&t.table, &full, &sampling(&space)).unwrap();
    assert_eq!(ev.compared, t.predicted);
    let e = ev.entries.unwrap();
    assert!(e.max_abs_pct < 1e-6 && e.within_1_pct == 100.0);
    assert!(ev.kendall_tau.unwrap() > 0.999);
    assert!(ev.networks.unwrap().max_abs_pct < 1e-6);
    assert!(ev.tfnas_a.unwrap().2.abs() < 1e-6);
    assert!(ev.entries_rows.is_none(), "neither table fits its curves");
}

#[test]
fn a_fitted_full_table_is_scored_on_its_curves_lines_with_its_rows_beside() {
    let rows_a: Vec<(BlockSpec, f64)> = blocks().into_iter().map(|s| (s, line_ms(&s))).collect();
    let (t, truth) = transfer_from(&rows_a, None, 0.06, |_, _| 2.0);
    let dir = tempfile::tempdir().unwrap();
    let noisy_truth: Vec<(BlockSpec, f64)> = truth
        .iter()
        .map(|&(s, ms)| (s, ms * noise(s.mid_channels)))
        .collect();
    let path = write_fitted(dir.path(), "full.csv", 32, &noisy_truth, Some("affine"));
    let full = LatencyTable::from_path(&path).unwrap();
    let ev = evaluate::evaluate(&t.table, &full, &sampling(&SearchSpaceConfig::default())).unwrap();
    assert_eq!(ev.curve_fits, ("none".to_string(), "affine".to_string()));
    let (lines, rows) = (ev.entries.unwrap(), ev.entries_rows.unwrap());
    assert!(
        rows.median_abs_pct > 2.9 && rows.median_abs_pct < 3.1,
        "{rows:?}"
    );
    assert!(lines.median_abs_pct < 0.5, "{lines:?}");
}

#[test]
fn a_fitted_reference_lends_the_transfer_its_lines_not_its_noise() {
    let rows_a: Vec<(BlockSpec, f64)> = blocks()
        .into_iter()
        .map(|s| (s, line_ms(&s) * noise(s.mid_channels)))
        .collect();
    // The new device is twice the reference's lines, not its noisy rows.
    // A probe of the curves' ends only (and the fixed parts): no inner point
    // to weigh the reference's detail, which is then taken whole.
    let dir = tempfile::tempdir().unwrap();
    let a = LatencyTable::from_path(&write(dir.path(), "a.csv", 32, &rows_a)).unwrap();
    let r = Reference::new(&a);
    let ends = (r.fixed.len() + 2 * r.curves.len()) as f64 / r.len() as f64;
    let (t, truth) = transfer_from(&rows_a, Some("affine"), ends, |_, m| 2.0 / noise(m));
    assert_eq!(t.measured, r.fixed.len() + 2 * r.curves.len());
    assert!(
        worst_error(&t, &truth) < 1e-9,
        "{}",
        worst_error(&t, &truth)
    );
}

/// A, the device (A times a factor per kernel size), a probe of `fraction`
/// measured `probe_bias` times the device, written under `dir`, and the
/// transfer's arguments.
fn biased_probe(
    dir: &Path,
    fraction: f64,
    probe_bias: f64,
) -> (TransferArgs, Vec<(BlockSpec, f64)>) {
    let rows_a: Vec<(BlockSpec, f64)> = blocks().into_iter().map(|s| (s, a_ms(&s))).collect();
    let a_path = write(dir, "a.csv", 32, &rows_a);
    let truth: Vec<(BlockSpec, f64)> = rows_a
        .iter()
        .map(|&(s, ms)| (s, ms * (2.0 + f64::from(s.shape.kernel) / 10.0)))
        .collect();
    let reference = Reference::new(&LatencyTable::from_path(&a_path).unwrap());
    let keys = plan::plan(&reference, fraction).keys;
    let probe: Vec<(BlockSpec, f64)> = truth
        .iter()
        .filter(|(s, _)| keys.contains(s))
        .map(|&(s, ms)| (s, ms * probe_bias))
        .collect();
    let args = TransferArgs {
        reference: a_path,
        probe: write(dir, "p.csv", 32, &probe),
        allow_batch: false,
        command: "test".into(),
    };
    (args, truth)
}

/// [`evaluate::with_model_alone`] of `predicted`, transferred from `args`'
/// tables, against `full`, on twenty networks of `space`.
fn with_model_alone(
    args: &TransferArgs,
    predicted: &LatencyTable,
    full: &LatencyTable,
    space: &SearchSpaceConfig,
) -> Result<evaluate::Evaluation> {
    let a = read_table(&args.reference, "reference")?;
    let p = read_table(&args.probe, "probe")?;
    evaluate::with_model_alone(args, &a, &p, predicted, full, &sampling(space))
}

/// The evaluation, model alone included, of a transfer from a probe
/// measured `probe_bias` times the device against the device's full table
/// (less the probe's first key where `drop_a_probe_key`).
fn evaluated(probe_bias: f64, drop_a_probe_key: bool) -> evaluate::Evaluation {
    let dir = tempfile::tempdir().unwrap();
    let (args, mut truth) = biased_probe(dir.path(), 0.06, probe_bias);
    if drop_a_probe_key {
        let probe = LatencyTable::from_path(&args.probe).unwrap();
        let missing = probe.entries()[0].spec;
        truth.retain(|(s, _)| *s != missing);
    }
    let full = LatencyTable::from_path(&write(dir.path(), "full.csv", 32, &truth)).unwrap();
    let made = transfer(&args).unwrap();
    let space = SearchSpaceConfig::default();
    with_model_alone(&args, &made.table, &full, &space).unwrap()
}

#[test]
fn the_model_alone_is_scored_from_the_probes_keys_at_the_full_tables_prices() {
    // A probe measured 5% high throughout: B misses by those 5%, while the
    // model, given the probe's keys as the full table prices them, is exact.
    let ev = evaluated(1.05, false);
    let e = ev.entries.as_ref().unwrap();
    assert!((e.median_abs_pct - 5.0).abs() < 1e-6, "{e:?}");
    let alone = ev
        .model_alone
        .as_ref()
        .expect("the full table has every probe key");
    assert!(
        alone.entries.as_ref().unwrap().max_abs_pct < 1e-6,
        "{alone:?}"
    );
    assert!(
        alone.networks.as_ref().unwrap().max_abs_pct < 1e-6,
        "{alone:?}"
    );
    assert!(alone.tfnas_a_pct.unwrap().abs() < 1e-6, "{alone:?}");
    assert!(evaluate::render_text(&ev).contains("the model alone"));
}

#[test]
fn a_full_table_without_a_probe_key_leaves_the_model_alone_unscored() {
    let ev = evaluated(1.0, true);
    assert!(ev.entries.is_some());
    assert_eq!(ev.model_alone, None);
    assert!(!evaluate::render_text(&ev).contains("the model alone"));
}

#[test]
fn a_probe_cut_from_the_full_table_says_the_model_alone_is_the_same() {
    let ev = evaluated(1.0, false);
    let alone = ev.model_alone.as_ref().unwrap();
    assert_eq!(
        (&alone.entries, &alone.networks),
        (&ev.entries, &ev.networks)
    );
    assert!(evaluate::render_text(&ev).contains("the model alone: the same"));
}

#[test]
fn cpu_tables_built_at_two_speeds_are_compared_at_the_full_tables() {
    // The probe was timed while the machine ran faster: its speed reference
    // 2.0 ms where the full table's is 2.2 ms, every row 2.0 / 2.2 of the
    // full table's. At one speed the transfer is exact.
    let dir = tempfile::tempdir().unwrap();
    let (args, truth) = biased_probe(dir.path(), 0.06, 2.0 / 2.2);
    let probe = LatencyTable::from_path(&args.probe).unwrap();
    let rows: Vec<(BlockSpec, f64)> = probe
        .entries()
        .iter()
        .map(|e| (e.spec, e.stats.median_ms))
        .collect();
    let args = TransferArgs {
        probe: write_with(
            dir.path(),
            "p2.csv",
            32,
            &rows,
            &[(meta::SPEED_REFERENCE_MS, "2.0")],
        ),
        ..args
    };
    let full_path = write_with(
        dir.path(),
        "full.csv",
        32,
        &truth,
        &[(meta::SPEED_REFERENCE_MS, "2.2")],
    );
    let full = LatencyTable::from_path(&full_path).unwrap();
    let made = transfer(&args).unwrap();
    let space = SearchSpaceConfig::default();
    let ev = with_model_alone(&args, &made.table, &full, &space).unwrap();
    assert!((ev.one_speed.unwrap() - 1.1).abs() < 1e-12);
    assert!(
        ev.entries.as_ref().unwrap().max_abs_pct < 1e-6,
        "{:?}",
        ev.entries
    );
    assert!(ev.networks.as_ref().unwrap().max_abs_pct < 1e-6);
    assert!(ev.tfnas_a.unwrap().2.abs() < 1e-6);
    // The model alone, from the full table's prices, is at its speed too.
    let alone = ev.model_alone.as_ref().unwrap();
    assert!(
        alone.entries.as_ref().unwrap().max_abs_pct < 1e-6,
        "{alone:?}"
    );
    assert!(evaluate::render_text(&ev).contains("at one speed"));
    // Tables without a speed reference are compared as their files stand.
    assert_eq!(evaluated(1.0, false).one_speed, None);
}

#[test]
fn rows_of_zero_as_the_official_tables_have_still_let_the_model_alone_be_scored() {
    // The official TF-NAS tables price the second stem and head at 0 (their
    // base row holds all three fixed parts).
    let dir = tempfile::tempdir().unwrap();
    let (args, truth) = biased_probe(dir.path(), 0.06, 1.0);
    let fixed = Reference::new(&LatencyTable::from_path(&args.reference).unwrap()).fixed;
    let zeroed = |rows: Vec<(BlockSpec, f64)>| -> Vec<(BlockSpec, f64)> {
        rows.into_iter()
            .map(|(s, ms)| (s, if fixed.contains(&s) { 0.0 } else { ms }))
            .collect()
    };
    let probe = LatencyTable::from_path(&args.probe).unwrap();
    let rows = zeroed(
        probe
            .entries()
            .iter()
            .map(|e| (e.spec, e.stats.median_ms))
            .collect(),
    );
    let base = [(
        space::table::BASE_KEY,
        "the stem row holds all three fixed parts",
    )];
    let args = TransferArgs {
        probe: write_with(dir.path(), "p0.csv", 32, &rows, &base),
        ..args
    };
    let full_path = write_with(dir.path(), "full.csv", 32, &zeroed(truth), &base);
    let full = LatencyTable::from_path(&full_path).unwrap();
    let made = transfer(&args).unwrap();
    let space = SearchSpaceConfig::default();
    let ev = with_model_alone(&args, &made.table, &full, &space).unwrap();
    assert!(ev.model_alone.is_some());
}
