use super::*;
use space::{Entry, LatencyStats, Metadata, TableWriter};

/// Consistent synthetic statistics around `median` (p10 ≤ median ≤ p90).
fn stats(median: f64) -> LatencyStats {
    LatencyStats {
        median_ms: median,
        p10_ms: median * 0.99,
        p90_ms: median * 1.01,
        ci_low_ms: median * 0.995,
        ci_high_ms: median * 1.005,
        samples: 100,
        throttled: false,
    }
}

/// A table through the real writer and reader, as a file would be.
fn table(device: &str, batch: u32, rows: &[(BlockSpec, f64)]) -> LatencyTable {
    table_with(device, batch, rows, &[])
}

/// The same with more header lines.
fn table_with(
    device: &str,
    batch: u32,
    rows: &[(BlockSpec, f64)],
    header: &[(&str, &str)],
) -> LatencyTable {
    let mut md = Metadata::new();
    md.set(meta::FORMAT, space::table::FORMAT)
        .set(meta::DEVICE_NAME, device)
        .set(meta::BATCH, batch);
    for (k, v) in header {
        md.set(k, v);
    }
    let mut w = TableWriter::new(Vec::new(), &md).unwrap();
    for &(spec, m) in rows {
        w.write(&Entry {
            spec,
            batch,
            stats: stats(m),
        })
        .unwrap();
    }
    let text = String::from_utf8(w.finish(&Metadata::new()).unwrap()).unwrap();
    LatencyTable::parse(&text, device).unwrap()
}

/// Every block of the default space's plan at width step 64, with a
/// made-up latency growing with the block's MACs.
fn synthetic_rows() -> Vec<(BlockSpec, f64)> {
    let space = SearchSpaceConfig::default();
    space
        .table_plan(64)
        .unwrap()
        .blocks
        .into_iter()
        .map(|s| (s, 0.01 + s.macs() as f64 * 1e-8))
        .collect()
}

fn run(a: &LatencyTable, b: &LatencyTable) -> Report {
    compare(a, b, &SearchSpaceConfig::default(), 10)
        .unwrap()
        .report
}

#[test]
fn a_table_against_itself() {
    let rows = synthetic_rows();
    let a = table("SYNTHETIC A", 32, &rows);
    let r = run(&a, &a);
    assert_eq!(r.common, rows.len());
    assert_eq!(r.beyond_noise, 0);
    assert_eq!((r.only_in_a.count, r.only_in_b.count), (0, 0));
    assert!(r.header_differences.is_empty());
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let one = RatioSummary {
        count: rows.len(),
        median: 1.0,
        p10: 1.0,
        p90: 1.0,
        min: 1.0,
        max: 1.0,
        geometric_mean: 1.0,
    };
    assert_eq!(r.ratio, one);
    assert_eq!(r.rank_all.kendall_tau_b, Some(1.0));
    assert!((r.rank_all.spearman_rho.unwrap() - 1.0).abs() < 1e-12);
    let l = &r.ops_within_layers;
    assert_eq!((l.layers, l.compared, l.fastest_op_differs), (18, 18, 0));
    assert_eq!(l.mean_kendall_tau_b, Some(1.0));
    // stem, fixed, 6 stages, head: every group present, nothing "other".
    let groups: Vec<&str> = r.ratio_by_group.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(
        groups,
        ["stem", "fixed", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "head"]
    );
    for p in &r.references {
        assert!(p.missing_in_a.is_empty() && p.missing_in_b.is_empty());
        assert_eq!(p.a_ms, p.b_ms);
        assert_eq!(p.ratio, Some(1.0));
    }
}

#[test]
fn a_copy_scaled_by_a_constant() {
    let rows = synthetic_rows();
    let a = table("SYNTHETIC A", 32, &rows);
    // ×2 is exact in binary floating point, so every ratio is exactly 2.
    let doubled: Vec<_> = rows.iter().map(|&(s, m)| (s, m * 2.0)).collect();
    let b = table("SYNTHETIC B", 32, &doubled);
    let r = run(&a, &b);
    for v in [
        r.ratio.median,
        r.ratio.p10,
        r.ratio.p90,
        r.ratio.min,
        r.ratio.max,
    ] {
        assert_eq!(v, 2.0);
    }
    assert!((r.ratio.geometric_mean - 2.0).abs() < 1e-12);
    for g in &r.ratio_by_group {
        assert_eq!((g.ratio.min, g.ratio.max), (2.0, 2.0), "{}", g.group);
    }
    assert_eq!(r.rank_all.kendall_tau_b, Some(1.0));
    assert_eq!(r.ops_within_layers.fastest_op_differs, 0);
    assert_eq!(
        r.header_differences
            .iter()
            .map(|d| d.key.as_str())
            .collect::<Vec<_>>(),
        ["device_name"]
    );
    for p in &r.references {
        assert!((p.ratio.unwrap() - 2.0).abs() < 1e-12, "{}", p.name);
    }
    // Every median's ±0.5% interval is far from its double's.
    assert_eq!(r.beyond_noise, rows.len());
    assert!(r.most_different.iter().all(|e| e.beyond_noise));
    // 0.4% slower: [0.995, 1.005]·m against [0.999, 1.009]·m overlap, so
    // no entry differs beyond the noise, though every ratio is 1.004.
    let slower: Vec<_> = rows.iter().map(|&(s, m)| (s, m * 1.004)).collect();
    let r = run(&a, &table("SYNTHETIC D", 32, &slower));
    assert_eq!(r.beyond_noise, 0);
    assert!((r.ratio.median - 1.004).abs() < 1e-12);
    // A non-binary factor: equal up to rounding.
    let scaled: Vec<_> = rows.iter().map(|&(s, m)| (s, m * 1.3)).collect();
    let r = run(&a, &table("SYNTHETIC C", 32, &scaled));
    assert!((r.ratio.min - 1.3).abs() < 1e-12 && (r.ratio.max - 1.3).abs() < 1e-12);
    assert_eq!(r.rank_all.kendall_tau_b, Some(1.0));
}

#[test]
fn two_swapped_entries_by_hand() {
    // Five stage-3 entries at 1..5 ms; B swaps the 2 and 4 ms medians.
    // Pairs (2,4), (2,3), (3,4) turn discordant: τ = (7 − 3)/10 = 0.4.
    // Rank differences 0, 2, 0, −2, 0: ρ = 1 − 6·8/(5·24) = 0.6.
    let shape: BlockShape = "mbconv_r14_i80_o80_s1_k3_m480_se0_swish"
        .parse::<BlockSpec>()
        .unwrap()
        .shape;
    let specs: Vec<BlockSpec> = [160, 240, 320, 400, 480].map(|m| shape.at(m)).to_vec();
    let a_rows: Vec<_> = specs
        .iter()
        .zip([1.0, 2.0, 3.0, 4.0, 5.0])
        .map(|(&s, m)| (s, m))
        .collect();
    let b_rows: Vec<_> = specs
        .iter()
        .zip([1.0, 4.0, 3.0, 2.0, 5.0])
        .map(|(&s, m)| (s, m))
        .collect();
    let r = run(&table("A", 32, &a_rows), &table("B", 32, &b_rows));
    assert!((r.rank_all.kendall_tau_b.unwrap() - 0.4).abs() < 1e-12);
    assert!((r.rank_all.spearman_rho.unwrap() - 0.6).abs() < 1e-12);
    // Ratios 1, 2, 1, 0.5, 1: the two swapped entries differ most.
    assert_eq!(r.ratio.min, 0.5);
    assert_eq!(r.ratio.max, 2.0);
    assert_eq!(r.ratio.median, 1.0);
    let top: Vec<f64> = r.most_different.iter().map(|e| e.ratio).collect();
    assert_eq!(&top[..2], [2.0, 0.5]);
    // Only the swapped two differ beyond their intervals.
    assert_eq!(r.beyond_noise, 2);
    let beyond: Vec<bool> = r.most_different.iter().map(|e| e.beyond_noise).collect();
    assert_eq!(beyond, [true, true, false, false, false]);
    assert_eq!(r.ratio_by_group.len(), 1);
    assert_eq!(r.ratio_by_group[0].group, "stage3");
    // No layer has every op, and no reference network is covered.
    assert_eq!(r.ops_within_layers.compared, 0);
    assert!(r
        .references
        .iter()
        .all(|p| p.a_ms.is_none() && !p.missing_in_a.is_empty()));
}

#[test]
fn a_faster_op_in_one_layer_changes_the_fastest_op() {
    let space = SearchSpaceConfig::default();
    let rows = synthetic_rows();
    let a = table("A", 32, &rows);
    // In stage 4's first layer, make the k5_e6_se curve ten times faster.
    let layer = space.layers()[3][0];
    let op = &space.ops[space.op_index("k5_e6_se").unwrap()];
    let target = space.op_shape(&layer, op);
    let b_rows: Vec<_> = rows
        .iter()
        .map(|&(s, m)| (s, if s.shape == target { m / 10.0 } else { m }))
        .collect();
    let r = run(&a, &table("B", 32, &b_rows));
    let l = &r.ops_within_layers;
    assert_eq!(l.fastest_op_differs, 1);
    let changed: Vec<_> = l
        .per_layer
        .iter()
        .filter(|x| x.fastest_a != x.fastest_b)
        .collect();
    assert_eq!((changed[0].stage, changed[0].layer), (4, 1));
    assert_eq!(changed[0].fastest_b, "k5_e6_se");
    assert!(changed[0].kendall_tau_b.unwrap() < 1.0);
    // Only stage 4's ratios moved.
    for g in &r.ratio_by_group {
        let moved = g.ratio.min < 1.0;
        assert_eq!(moved, g.group == "stage4", "{}", g.group);
    }
    assert_eq!(r.most_different[0].group, "stage4");
}

#[test]
fn ops_are_compared_at_their_initial_width() {
    let space = SearchSpaceConfig::default();
    let rows = synthetic_rows();
    let a = table("A", 32, &rows);
    // Only the entry at k5_e6_se's initial width (6·ic) in stage 2's last
    // layer gets faster in B; its other widths stay as in A. Stage 2's
    // layers 2 and 3 have one shape (28², 40 → 40, stride 1), so both see it.
    let layer = space.layers()[1][2];
    let op = &space.ops[space.op_index("k5_e6_se").unwrap()];
    let initial = space.width_range(op, layer.in_channels).initial;
    let target = space.op_shape(&layer, op).at(initial);
    let b_rows: Vec<_> = rows
        .iter()
        .map(|&(s, m)| (s, if s == target { m / 100.0 } else { m }))
        .collect();
    let r = run(&a, &table("B", 32, &b_rows));
    let changed: Vec<_> = r
        .ops_within_layers
        .per_layer
        .iter()
        .filter(|x| x.fastest_a != x.fastest_b)
        .map(|x| (x.stage, x.layer, x.fastest_b.as_str()))
        .collect();
    assert_eq!(changed, [(2, 2, "k5_e6_se"), (2, 3, "k5_e6_se")]);
    assert_eq!(r.most_different[0].key, target.key());
}

#[test]
fn keys_on_one_side_are_counted_and_listed() {
    let rows = synthetic_rows();
    let a = table("A", 32, &rows);
    let b = table("B", 16, &rows[..rows.len() - 15]);
    let r = compare(&a, &b, &SearchSpaceConfig::default(), 4)
        .unwrap()
        .report;
    assert_eq!(r.common, rows.len() - 15);
    assert_eq!(r.only_in_a.count, 15);
    assert_eq!(r.only_in_a.first.len(), 4);
    assert_eq!(r.only_in_a.first[0], rows[rows.len() - 15].0.key());
    assert_eq!(r.only_in_b.count, 0);
    assert_eq!(r.most_different.len(), 4);
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("batch sizes (32 and 16)")));
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("15 keys are only in A")));
    // The head is among the dropped keys: no reference network on B.
    let head = SearchSpaceConfig::default().fixed_parts().head.key();
    for p in &r.references {
        assert_eq!(p.missing_in_b.last(), Some(&head), "{}", p.name);
    }
    let text = render_text(&r);
    assert!(text.contains("Only in A: 15 keys (first 4)"), "{text}");
    assert!(text.contains("B lacks"), "{text}");
}

#[test]
fn disjoint_tables_are_an_error() {
    let rows = synthetic_rows();
    let (left, right) = rows.split_at(rows.len() / 2);
    let err = compare(
        &table("A", 32, left),
        &table("B", 32, right),
        &SearchSpaceConfig::default(),
        10,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("share no block key"), "{err}");
    assert!(err.contains(&left[0].0.key()), "{err}");
}

#[test]
fn reference_networks_on_the_default_space() {
    let refs = reference_architectures(&SearchSpaceConfig::default()).unwrap();
    let names: Vec<&str> = refs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["tfnas-a", "smallest", "largest"]);
    let small = &refs[1].2;
    assert!(small.stages.iter().all(|s| s.depth == 1));
    assert!(small.stages.iter().all(|s| s.blocks[0].op == "k3_e3"));
    // k3_e3's minimum width is 2·ic: stage 1 enters with 16 channels.
    assert_eq!(small.stages[0].blocks[0].mid_channels, 32);
    let large = &refs[2].2;
    let depths: Vec<u32> = large.stages.iter().map(|s| s.depth).collect();
    assert_eq!(depths, [2, 3, 4, 4, 4, 1]);
    assert!(large
        .stages
        .iter()
        .flat_map(|s| &s.blocks)
        .all(|b| b.op == "k5_e6_se"));
    // 8·ic at the last stage's 192 input channels.
    assert_eq!(large.stages[5].blocks[0].mid_channels, 1536);
}

#[test]
fn zero_medians_have_no_ratio_and_foreign_shapes_are_other() {
    let rows = synthetic_rows();
    let mut with_zero = rows.clone();
    with_zero[5].1 = 0.0;
    // A block of no layer of the default space (kernel 7).
    let foreign: BlockSpec = "mbconv_r14_i80_o80_s1_k7_m480_se0_swish".parse().unwrap();
    with_zero.push((foreign, 1.0));
    let mut b_rows = rows.clone();
    b_rows.push((foreign, 3.0));
    // Zero rows exist in tables that fold their fixed parts into one
    // (the official TF-NAS tables), which say so in their header.
    let base = [(space::table::BASE_KEY, "fixed parts in one row")];
    let a = table_with("A", 32, &with_zero, &base);
    let r = run(&a, &table("B", 32, &b_rows));
    assert_eq!(r.common, rows.len() + 1);
    assert_eq!(r.zero_latency_excluded, 1);
    assert_eq!(r.ratio.count, rows.len());
    let other = r
        .ratio_by_group
        .iter()
        .find(|g| g.group == "other")
        .unwrap();
    assert_eq!((other.ratio.count, other.ratio.median), (1, 3.0));
    assert_eq!(r.most_different[0].key, foreign.key());
}

#[test]
fn quantiles_interpolate_like_numpy() {
    let v = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(quantile(&v, 0.5), 2.5);
    assert!((quantile(&v, 0.1) - 1.3).abs() < 1e-12);
    assert!((quantile(&v, 0.9) - 3.7).abs() < 1e-12);
    let s = ratio_summary(&[0.5, 2.0]).unwrap();
    assert!((s.geometric_mean - 1.0).abs() < 1e-12);
    assert!(ratio_summary(&[]).is_none());
}

#[test]
fn entries_are_compared_as_priced_less_their_boundary() {
    let rows = synthetic_rows();
    let a = table("SYNTHETIC A", 32, &rows);
    let b = table_with("SYNTHETIC A", 32, &rows, &[(meta::BOUNDARY_MS, "0.005")]);
    // The same table with a boundary against itself: nothing to say.
    let r = run(&b, &b);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.ratio.median, 1.0);
    assert_eq!(r.beyond_noise, 0);
    // Against the plain one: each ratio is (m - 0.005) / m, and a warning.
    let r = run(&a, &b);
    let ratios: Vec<f64> = rows.iter().map(|&(_, m)| (m - 0.005) / m).collect();
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(0.0, f64::max);
    assert!(
        (r.ratio.min - min).abs() < 1e-12,
        "{} vs {min}",
        r.ratio.min
    );
    assert!(
        (r.ratio.max - max).abs() < 1e-12,
        "{} vs {max}",
        r.ratio.max
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("only one table takes a boundary")),
        "{:?}",
        r.warnings
    );
}
