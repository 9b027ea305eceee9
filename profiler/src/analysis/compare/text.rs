//! The readable text form of a comparison report.

use std::fmt::Write as _;

use super::report::{KeyList, RatioSummary, Report};

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |x| format!("{x:.4}"))
}

fn ratio_row(name: &str, r: &RatioSummary) -> String {
    format!(
        "  {name:<8} {:>6} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}\n",
        r.count, r.median, r.p10, r.p90, r.min, r.max, r.geometric_mean
    )
}

fn render_keys(out: &mut String, side: &str, list: &KeyList) {
    if list.count == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "Only in {side}: {} keys{}",
        list.count,
        if list.first.len() < list.count {
            format!(" (first {})", list.first.len())
        } else {
            String::new()
        }
    );
    for k in &list.first {
        let _ = writeln!(out, "  {k}");
    }
}

/// The readable report for stdout.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    render_tables(&mut out, r);
    render_ratios(&mut out, r);
    render_ranks(&mut out, r);
    render_most_different(&mut out, r);
    render_references(&mut out, r);
    out
}

/// The two tables, their header differences, the warnings and the keys
/// on one side only.
fn render_tables(out: &mut String, r: &Report) {
    for (side, t) in [("A", &r.a), ("B", &r.b)] {
        let _ = writeln!(
            out,
            "{side}: {}: {} entries at batch {}, device '{}'",
            t.path,
            t.entries,
            t.batch,
            t.device.as_deref().unwrap_or("unknown")
        );
    }
    let _ = writeln!(out, "Space for stages and layers: {}", r.space);
    if r.header_differences.is_empty() {
        out.push_str("Headers: identical\n");
    } else {
        out.push_str("Header differences (A | B):\n");
        for d in &r.header_differences {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
            let _ = writeln!(out, "  {}: {} | {}", d.key, show(&d.a), show(&d.b));
        }
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(
        out,
        "\nKeys: {} common, {} only in A, {} only in B",
        r.common, r.only_in_a.count, r.only_in_b.count
    );
    render_keys(out, "A", &r.only_in_a);
    render_keys(out, "B", &r.only_in_b);
    if r.zero_latency_excluded > 0 {
        let _ = writeln!(
            out,
            "{} common entries have a zero median and no ratio",
            r.zero_latency_excluded
        );
    }
}

/// The ratios B/A, overall and by group, and how many are beyond noise.
fn render_ratios(out: &mut String, r: &Report) {
    out.push_str("\nRatio B/A of latency as priced (median less the table's boundary):\n");
    let _ = writeln!(
        out,
        "  {:<8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "group", "n", "median", "p10", "p90", "min", "max", "geomean"
    );
    out.push_str(&ratio_row("all", &r.ratio));
    for g in &r.ratio_by_group {
        out.push_str(&ratio_row(&g.group, &g.ratio));
    }
    let _ = writeln!(
        out,
        "Beyond measurement noise (the medians' 95% intervals do not overlap): {} of {} common entries ({:.1}%)",
        r.beyond_noise,
        r.common,
        100.0 * r.beyond_noise as f64 / r.common.max(1) as f64
    );
}

/// Rank agreement, over all entries and of the ops within each layer.
fn render_ranks(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "\nRank agreement over the {} common entries: Kendall tau-b {}, Spearman rho {}",
        r.rank_all.count,
        opt(r.rank_all.kendall_tau_b),
        opt(r.rank_all.spearman_rho)
    );
    let l = &r.ops_within_layers;
    let _ = writeln!(
        out,
        "Candidate ops within each searchable layer (initial widths), {} of {} layers:",
        l.compared, l.layers
    );
    let _ = writeln!(
        out,
        "  mean Kendall tau-b {}, mean Spearman rho {}",
        opt(l.mean_kendall_tau_b),
        opt(l.mean_spearman_rho)
    );
    if let Some(share) = l.fastest_op_differs_share {
        let _ = writeln!(
            out,
            "  fastest op differs in {} of {} layers ({:.1}%)",
            l.fastest_op_differs,
            l.compared,
            share * 100.0
        );
    }
    for layer in l.per_layer.iter().filter(|x| x.fastest_a != x.fastest_b) {
        let _ = writeln!(
            out,
            "    stage{}.layer{}: A {} | B {}",
            layer.stage, layer.layer, layer.fastest_a, layer.fastest_b
        );
    }
    if !l.not_covered.is_empty() {
        let _ = writeln!(
            out,
            "  not covered by both tables: {}",
            l.not_covered.join(", ")
        );
    }
}

/// The entries that differ most.
fn render_most_different(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "\nThe {} entries that differ most (|ln B/A|):",
        r.most_different.len()
    );
    let _ = writeln!(
        out,
        "  {:>8} {:>10} {:>10} {:>6}  key",
        "B/A", "A ms", "B ms", "noise"
    );
    for e in &r.most_different {
        let _ = writeln!(
            out,
            "  {:>8.4} {:>10.4} {:>10.4} {:>6}  {}",
            e.ratio,
            e.a_ms,
            e.b_ms,
            if e.beyond_noise { "beyond" } else { "within" },
            e.key
        );
    }
}

/// The reference networks under both tables.
fn render_references(out: &mut String, r: &Report) {
    out.push_str("\nReference networks (predicted ms per batch):\n");
    for p in &r.references {
        let _ = writeln!(out, "  {}: {}", p.name, p.description);
        match (p.a_ms, p.b_ms) {
            (Some(a), Some(b)) => {
                let _ = writeln!(out, "    A {a:.4}  B {b:.4}  B/A {}", opt(p.ratio));
            }
            _ => {
                for (side, ms, missing) in [
                    ("A", p.a_ms, &p.missing_in_a),
                    ("B", p.b_ms, &p.missing_in_b),
                ] {
                    if let Some(ms) = ms {
                        let _ = writeln!(out, "    {side} {ms:.4}");
                        continue;
                    }
                    // JSON has every key; five show which parts are absent.
                    let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
                    let more = missing.len() - shown.len();
                    let _ = writeln!(
                        out,
                        "    {side} lacks {} keys: {}{}",
                        missing.len(),
                        shown.join(", "),
                        if more > 0 {
                            format!(" ... and {more} more")
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
    }
}
