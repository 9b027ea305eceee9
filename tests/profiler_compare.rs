//! End-to-end tests of `profiler compare` on synthetic tables written with the
//! space crate's own writer into a temporary directory (never under tables/).
//! Every latency here is made up; the device names say so.

#[path = "support/mod.rs"]
mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use space::{meta, BlockSpec, LatencyStats, SearchSpaceConfig};

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

fn write_table(path: &Path, device: &str, batch: u32, rows: &[(BlockSpec, f64)]) -> PathBuf {
    let header = [
        (
            meta::DEVICE_NAME,
            format!("SYNTHETIC {device}: test data, not a measurement"),
        ),
        (meta::BATCH, batch.to_string()),
        (meta::DTYPE, "fp32".to_string()),
    ];
    support::write_table(path, batch, &header, rows, stats)
}

/// The default space's plan at width step 64; entry `i` gets the median
/// `(i + 1) / 100` ms, so every median is distinct and their order is the
/// plan order.
fn ranked_rows() -> Vec<(BlockSpec, f64)> {
    SearchSpaceConfig::default()
        .table_plan(64)
        .unwrap()
        .blocks
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, (i + 1) as f64 / 100.0))
        .collect()
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_table_against_itself_reads_as_identical() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ranked_rows();
    let a = write_table(&dir.path().join("a.csv"), "A", 32, &rows);

    let out = profiler(&["compare", s(&a), s(&a)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("Headers: identical"), "{report}");
    assert!(
        report.contains(&format!(
            "Keys: {} common, 0 only in A, 0 only in B",
            rows.len()
        )),
        "{report}"
    );
    assert!(
        report.contains("Kendall tau-b 1.0000, Spearman rho 1.0000"),
        "{report}"
    );
    assert!(
        report.contains("fastest op differs in 0 of 18 layers"),
        "{report}"
    );

    let j = json_of(&profiler(&["compare", s(&a), s(&a), "--json"]));
    for stat in ["median", "p10", "p90", "min", "max"] {
        assert_eq!(j["ratio"][stat], 1.0, "{stat}");
    }
    assert_eq!(j["rank_all"]["kendall_tau_b"], 1.0);
    assert_eq!(j["ops_within_layers"]["mean_kendall_tau_b"], 1.0);
    assert_eq!(j["common"], rows.len());
    for r in j["references"].as_array().unwrap() {
        assert_eq!(r["ratio"], 1.0, "{r}");
    }
}

#[test]
fn a_scaled_copy_has_exactly_that_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ranked_rows();
    let a = write_table(&dir.path().join("a.csv"), "A", 32, &rows);
    // ×4 is exact in binary floating point, and the table stores shortest
    // round-trip decimals, so B/A is exactly 4 for every entry.
    let scaled: Vec<_> = rows.iter().map(|&(s, m)| (s, m * 4.0)).collect();
    let b = write_table(&dir.path().join("b.csv"), "B", 32, &scaled);

    let j = json_of(&profiler(&["compare", s(&a), s(&b), "--json"]));
    for stat in ["median", "p10", "p90", "min", "max"] {
        assert_eq!(j["ratio"][stat], 4.0, "{stat}");
    }
    let geo = j["ratio"]["geometric_mean"].as_f64().unwrap();
    assert!((geo - 4.0).abs() < 1e-12, "{geo}");
    assert_eq!(j["rank_all"]["kendall_tau_b"], 1.0);
    let diffs: Vec<&str> = j["header_differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(diffs, ["device_name"]);
}

#[test]
fn two_swapped_medians_lower_tau_by_the_expected_amount() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ranked_rows();
    let n = rows.len();
    let (p, q) = (100, 110);
    let mut swapped = rows.clone();
    let (mp, mq) = (swapped[p].1, swapped[q].1);
    swapped[p].1 = mq;
    swapped[q].1 = mp;
    let a = write_table(&dir.path().join("a.csv"), "A", 32, &rows);
    let b = write_table(&dir.path().join("b.csv"), "B", 32, &swapped);

    // All medians distinct and in plan order. Swapping entries p < q makes
    // the pair (p, q) discordant, and for each of the k = q − p − 1 entries
    // between them both of its pairs with p and q: D = 2k + 1 = 19 of
    // n(n−1)/2 pairs, τ = 1 − 2D / (n(n−1)/2).
    let pairs = (n * (n - 1) / 2) as f64;
    let expected_tau = 1.0 - 2.0 * 19.0 / pairs;
    // Spearman: only p and q move, by ±10 ranks: ρ = 1 − 6·200 / (n(n²−1)).
    let nf = n as f64;
    let expected_rho = 1.0 - 6.0 * 200.0 / (nf * (nf * nf - 1.0));

    let j = json_of(&profiler(&[
        "compare",
        s(&a),
        s(&b),
        "--json",
        "--top",
        "2",
    ]));
    let tau = j["rank_all"]["kendall_tau_b"].as_f64().unwrap();
    let rho = j["rank_all"]["spearman_rho"].as_f64().unwrap();
    assert!(
        (tau - expected_tau).abs() < 1e-12,
        "{tau} vs {expected_tau}"
    );
    assert!(
        (rho - expected_rho).abs() < 1e-12,
        "{rho} vs {expected_rho}"
    );
    let top: Vec<&str> = j["most_different"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    let mut want = vec![rows[p].0.key(), rows[q].0.key()];
    want.sort();
    let mut got: Vec<String> = top.iter().map(|k| k.to_string()).collect();
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn disjoint_tables_exit_2_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ranked_rows();
    let (left, right) = rows.split_at(rows.len() / 2);
    let a = write_table(&dir.path().join("a.csv"), "A", 32, left);
    let b = write_table(&dir.path().join("b.csv"), "B", 32, right);
    let out = profiler(&["compare", s(&a), s(&b)]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: the tables share no block key"),
        "{err}"
    );
    assert!(
        err.contains(&format!("has {} entries", left.len())),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn partial_overlap_and_other_batch_are_reported_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ranked_rows();
    let a = write_table(&dir.path().join("a.csv"), "A", 32, &rows);
    let b = write_table(&dir.path().join("b.csv"), "B", 1, &rows[5..]);
    let out = profiler(&["compare", s(&a), s(&b), "--top", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let batch_warning = "warning: the tables were measured at different batch sizes (32 and 1)";
    assert!(report.contains(batch_warning), "{report}");
    assert!(report.contains("Only in A: 5 keys (first 3)"), "{report}");
    assert!(report.contains(&rows[0].0.key()), "{report}");
    assert!(
        !report.contains(&rows[3].0.key()),
        "only the first 3: {report}"
    );
    // The stem and second stem are among the missing keys of B.
    assert!(report.contains("B lacks"), "{report}");
    assert!(report.contains("batch: 32 | 1"), "{report}");
    // With --json the warnings go to stderr, and into the JSON.
    let out = profiler(&["compare", s(&a), s(&b), "--json"]);
    assert!(text(&out.stderr).contains(batch_warning));
    let j = json_of(&out);
    assert_eq!(j["only_in_a"]["count"], 5);
    assert_eq!(j["only_in_a"]["first"].as_array().unwrap().len(), 5);
    assert!(j["warnings"].to_string().contains("different batch sizes"));
}

#[test]
fn bad_input_exits_2_with_an_error_message() {
    let dir = tempfile::tempdir().unwrap();
    let rows = ranked_rows();
    let a = write_table(&dir.path().join("a.csv"), "A", 32, &rows);
    let broken = dir.path().join("broken.csv");
    let mut body = std::fs::read_to_string(&a).unwrap();
    body.push_str("mbconv_r14_i80_o80_s1_k3_m999_se0_swish,32,oops,1,1,1,1,1,0\n");
    std::fs::write(&broken, body).unwrap();

    let cases: [(Vec<&str>, &str); 5] = [
        (vec![s(&a), s(&broken)], "column 'median_ms'"),
        (
            vec![s(&a), "/nonexistent/b.csv"],
            "cannot read /nonexistent/b.csv",
        ),
        (
            vec![s(&a), s(&a), "--top", "0"],
            "--top must be a number in [1, 100000], got 0",
        ),
        (
            vec![s(&a), s(&a), "--plot", "out.pdf"],
            "must end in .svg or .png",
        ),
        (
            vec![s(&a), s(&a), "--plot", "/nonexistent/dir/out.png"],
            "the folder /nonexistent/dir does not exist",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["compare"];
        all.extend(args);
        let out = profiler(&all);
        assert_eq!(out.status.code(), Some(2), "{all:?}");
        let err = text(&out.stderr);
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{all:?}: {err}"
        );
    }
    // An unreadable file's cause is said once, not again by the chain.
    let out = profiler(&["compare", s(&a), "/nonexistent/b.csv"]);
    let err = text(&out.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    // The malformed row's file and line are named.
    let out = profiler(&["compare", s(&a), s(&broken)]);
    let line = rows.len() + 6; // 4 header lines, the column header, then rows.
    let err = text(&out.stderr);
    assert!(err.contains(&format!("broken.csv:{line}:")), "{err}");
    // clap's own refusal of a non-number is exit 2 too.
    let out = profiler(&["compare", s(&a), s(&a), "--top", "many"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Tables A and B, B's medians 1.5 times A's, in `dir`; and A's rows.
fn a_and_scaled_b(dir: &Path) -> (PathBuf, PathBuf, Vec<(BlockSpec, f64)>) {
    let rows = ranked_rows();
    let a = write_table(&dir.join("a.csv"), "A", 32, &rows);
    let scaled: Vec<_> = rows.iter().map(|&(s, m)| (s, m * 1.5)).collect();
    let b = write_table(&dir.join("b.csv"), "B", 32, &scaled);
    (a, b, rows)
}

#[test]
fn the_plot_is_an_svg_with_a_point_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, rows) = a_and_scaled_b(dir.path());
    let svg = dir.path().join("scatter.svg");
    let out = profiler(&["compare", s(&a), s(&b), "--plot", s(&svg)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = std::fs::read_to_string(&svg).unwrap();
    assert!(!body.is_empty());
    let doc = roxmltree::Document::parse(&body).expect("the SVG parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let circles = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "circle")
        .count();
    // One per entry, plus one legend marker per group (9 groups).
    assert_eq!(circles, rows.len() + 9);
    let labels: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for want in ["stage1", "stage6", "head", "y = x"] {
        assert!(
            labels.iter().any(|t| t.trim() == want),
            "legend lacks {want}"
        );
    }
}

#[test]
fn the_plot_is_a_png_with_text_and_points_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, _) = a_and_scaled_b(dir.path());
    let png = dir.path().join("scatter.PNG");
    let out = profiler(&["compare", s(&a), s(&b), "--plot", s(&png)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let img = image::open(&png).expect("the PNG decodes").to_rgb8();
    assert_eq!(img.dimensions(), (900, 800));
    // The caption, drawn with the built-in font: dark pixels in the band
    // above the chart, which is white otherwise.
    let dark = |x: u32, y: u32| img.get_pixel(x, y).0.iter().all(|&c| c < 100);
    let caption = (0..900)
        .flat_map(|x| (0..40).map(move |y| (x, y)))
        .filter(|&(x, y)| dark(x, y))
        .count();
    assert!(caption > 200, "caption pixels: {caption}");
    // Points in the first two stages' colours (blended with white).
    let near = |p: &image::Rgb<u8>, c: [u8; 3]| {
        p.0.iter()
            .zip(c)
            .all(|(&v, w)| (i32::from(v) - i32::from(w)).abs() < 40)
    };
    for colour in [[31, 119, 180], [255, 127, 14]] {
        let hits = img.pixels().filter(|p| near(p, colour)).count();
        assert!(hits > 20, "{colour:?}: {hits}");
    }
}

#[test]
fn another_space_groups_its_own_stages() {
    let dir = tempfile::tempdir().unwrap();
    let mut space = SearchSpaceConfig {
        name: "synthetic-wose".into(),
        ..Default::default()
    };
    space.ops.retain(|o| o.se_ratio == 0);
    space.second_stem.se_channels = 0;
    let space_file = dir.path().join("wose.json");
    std::fs::write(&space_file, space.to_json_pretty()).unwrap();
    let rows: Vec<_> = space
        .table_plan(64)
        .unwrap()
        .blocks
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, 0.01 * (i + 1) as f64))
        .collect();
    let a = write_table(&dir.path().join("a.csv"), "A", 32, &rows);

    let j = json_of(&profiler(&[
        "compare",
        s(&a),
        s(&a),
        "--json",
        "--space",
        s(&space_file),
    ]));
    assert_eq!(j["ops_within_layers"]["compared"], 18);
    let groups: Vec<&str> = j["ratio_by_group"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group"].as_str().unwrap())
        .collect();
    assert!(!groups.contains(&"other"), "{groups:?}");
    // TF-NAS-A uses SE ops, which this table lacks: said, not hidden.
    let refs = j["references"].as_array().unwrap();
    assert_eq!(refs[0]["name"], "tfnas-a");
    assert!(refs[0]["a_ms"].is_null());
    assert!(!refs[0]["missing_in_a"].as_array().unwrap().is_empty());
    assert!(refs[1]["a_ms"].is_number() && refs[2]["a_ms"].is_number());

    // Against the default space (8 ops, 4 with SE) no layer of this table
    // has every op, so no layer is compared: reported, not guessed.
    let j = json_of(&profiler(&["compare", s(&a), s(&a), "--json"]));
    assert_eq!(j["ops_within_layers"]["compared"], 0);
    let not_covered = j["ops_within_layers"]["not_covered"].as_array().unwrap();
    assert_eq!(not_covered.len(), 18);
}
