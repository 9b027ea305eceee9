//! The table format end to end: writing, reading, refusing bad files, and
//! predicting a network's latency. Fixtures are synthetic and live under the
//! workspace's `tests/fixtures/`, never `tables/`.

use std::path::PathBuf;

use space::{
    meta, Architecture, BlockSpec, Entry, LatencyStats, LatencyTable, Metadata, Source, SpaceError,
    TableWriter,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn fixture_text() -> String {
    std::fs::read_to_string(fixture("tfnas_a_synthetic.csv")).unwrap()
}

fn stats(median_ms: f64) -> LatencyStats {
    LatencyStats {
        median_ms,
        p10_ms: median_ms * 0.99,
        p90_ms: median_ms * 1.02,
        ci_low_ms: median_ms * 0.995,
        ci_high_ms: median_ms * 1.004,
        samples: 57,
        throttled: false,
    }
}

#[test]
fn round_trip_keeps_rows_and_metadata() {
    let plan = space::SearchSpaceConfig::default().table_plan(64).unwrap();
    let mut head = Metadata::new();
    head.set(meta::FORMAT, space::table::FORMAT)
        .set(meta::DEVICE_NAME, "test device")
        .set(meta::BATCH, 8)
        .set(meta::COMMAND, "profiler --batch 8 --width-step 64");
    let mut writer = TableWriter::new(Vec::new(), &head).unwrap();
    let entries: Vec<Entry> = plan
        .blocks
        .iter()
        .enumerate()
        .map(|(i, &spec)| Entry {
            spec,
            batch: 8,
            stats: LatencyStats {
                throttled: i % 7 == 0,
                ..stats(0.01 + i as f64 / 3.0)
            },
        })
        .collect();
    for e in &entries {
        writer.write(e).unwrap();
    }
    let mut tail = Metadata::new();
    tail.set(meta::FINISHED, "2026-11-27T12:00:00Z");
    let bytes = writer.finish(&tail).unwrap();
    let text = String::from_utf8(bytes).unwrap();

    let table = LatencyTable::parse(&text, "memory").unwrap();
    assert_eq!(table.entries(), entries.as_slice());
    assert_eq!(table.batch(), 8);
    assert_eq!(table.metadata().get(meta::DEVICE_NAME), Some("test device"));
    assert_eq!(
        table.metadata().get(meta::FINISHED),
        Some("2026-11-27T12:00:00Z")
    );
    // Line numbers count the comment lines too: 4 header lines, the column
    // header on line 5, the first row on line 6.
    assert_eq!(table.line_of(&entries[0].spec), Some(6));
    assert_eq!(table.line_of(&entries[3].spec), Some(9));
}

#[test]
fn writer_refuses_rows_the_reader_would_refuse() {
    let mut head = Metadata::new();
    head.set(meta::FORMAT, space::table::FORMAT)
        .set(meta::BATCH, 32);
    let mut writer = TableWriter::new(Vec::new(), &head).unwrap();
    let spec: BlockSpec = "stem_r224_i3_o32_s2_k3_m0_se0_relu".parse().unwrap();
    let err = writer
        .write(&Entry {
            spec,
            batch: 32,
            stats: stats(f64::NAN),
        })
        .unwrap_err();
    assert!(err.to_string().contains("not a finite"), "{err}");
}

/// Replaces the fixture's line `line` (1-based) and parses the result.
fn with_line(line: usize, replacement: &str) -> SpaceError {
    let mut lines: Vec<String> = fixture_text().lines().map(str::to_string).collect();
    lines[line - 1] = replacement.to_string();
    LatencyTable::parse(&lines.join("\n"), "bad.csv").unwrap_err()
}

#[track_caller]
fn assert_names(err: &SpaceError, line: u64, column: Option<&str>, words: &str) {
    match err {
        SpaceError::Table {
            file,
            line: l,
            column: c,
            message,
        } => {
            assert_eq!(file, "bad.csv");
            assert_eq!(*l, line, "{err}");
            assert_eq!(c.as_deref(), column, "{err}");
            assert!(message.contains(words), "{err}");
        }
        other => panic!("expected a table error, got {other}"),
    }
    let text = err.to_string();
    assert!(text.starts_with(&format!("bad.csv:{line}:")), "{text}");
}

#[test]
fn bad_rows_are_refused_with_file_line_and_column() {
    // Line 8 is the stem row, line 9 the second stem.
    let truncated = with_line(9, "fixed_r112_i32_o16_s1_k3_m32_se8_relu,32,0.2,0.198");
    assert_names(&truncated, 9, Some("p90_ms"), "4 of 9 fields");
    let nan = with_line(
        9,
        "fixed_r112_i32_o16_s1_k3_m32_se8_relu,32,NaN,0.198,0.202,0.199,0.201,100,0",
    );
    assert_names(&nan, 9, Some("median_ms"), "not a finite");
    let negative = with_line(
        8,
        "stem_r224_i3_o32_s2_k3_m0_se0_relu,32,-0.1,-0.2,0.1,-0.15,0,100,0",
    );
    assert_names(&negative, 8, Some("median_ms"), "negative");
    let unknown = with_line(
        8,
        "conv_r224_i3_o32_s2_k3_m0_se0_relu,32,0.1,0.098,0.102,0.099,0.101,100,0",
    );
    assert_names(&unknown, 8, Some("key"), "unknown block kind");
    let not_number = with_line(
        8,
        "stem_r224_i3_o32_s2_k3_m0_se0_relu,32,0.1,fast,0.102,0.099,0.101,100,0",
    );
    assert_names(&not_number, 8, Some("p10_ms"), "not a number");
    let unordered = with_line(
        8,
        "stem_r224_i3_o32_s2_k3_m0_se0_relu,32,0.1,0.2,0.102,0.099,0.101,100,0",
    );
    assert_names(&unordered, 8, Some("median_ms"), "p10 <= median");
    let no_samples = with_line(
        8,
        "stem_r224_i3_o32_s2_k3_m0_se0_relu,32,0.1,0.098,0.102,0.099,0.101,0,0",
    );
    assert_names(&no_samples, 8, Some("samples"), "at least one");
    let throttle = with_line(
        8,
        "stem_r224_i3_o32_s2_k3_m0_se0_relu,32,0.1,0.098,0.102,0.099,0.101,5,yes",
    );
    assert_names(&throttle, 8, Some("throttled"), "0 or 1");
    let dup = with_line(
        9,
        "stem_r224_i3_o32_s2_k3_m0_se0_relu,32,0.1,0.098,0.102,0.099,0.101,100,0",
    );
    assert_names(&dup, 9, Some("key"), "already appears on line 8");
}

#[test]
fn batch_sizes_must_agree_with_each_other_and_the_header() {
    let contradicts = with_line(
        9,
        "fixed_r112_i32_o16_s1_k3_m32_se8_relu,64,0.2,0.198,0.202,0.199,0.201,100,0",
    );
    assert_names(
        &contradicts,
        9,
        Some("batch"),
        "contradicts the header's batch 32",
    );
    // Without a header batch, rows still may not mix batch sizes.
    let text = fixture_text().replace("# batch: 32\n", "").replacen(
        "fixed_r112_i32_o16_s1_k3_m32_se8_relu,32,",
        "fixed_r112_i32_o16_s1_k3_m32_se8_relu,16,",
        1,
    );
    let mixed = LatencyTable::parse(&text, "bad.csv").unwrap_err();
    assert_names(&mixed, 8, Some("batch"), "differs from batch 32 on line 7");
}

#[test]
fn bad_headers_are_refused() {
    let no_format = LatencyTable::parse(
        &fixture_text().replace("# format: tfnas-latency-table/1\n", ""),
        "bad.csv",
    )
    .unwrap_err();
    assert_names(&no_format, 1, None, "not a latency table");
    let columns = with_line(7, "key,batch,median_ms,p10_ms,p90_ms,samples,throttled");
    assert_names(&columns, 7, None, "column header must be");
    let batch = with_line(4, "# batch: many");
    assert_names(&batch, 4, None, "not a positive integer");
    let repeated =
        LatencyTable::parse(&format!("{}# batch: 64\n", fixture_text()), "bad.csv").unwrap_err();
    assert!(repeated.to_string().contains("repeats"), "{repeated}");
}

#[test]
fn unreadable_file_names_the_path() {
    let err = LatencyTable::from_path(&fixture("no_such_table.csv")).unwrap_err();
    assert!(err.to_string().contains("no_such_table.csv"), "{err}");
}

#[test]
fn interpolates_between_measured_widths_only() {
    let table = LatencyTable::from_path(&fixture("tfnas_a_synthetic.csv")).unwrap();
    let at = |mid| {
        let spec: BlockSpec = format!("mbconv_r14_i80_o80_s1_k3_m{mid}_se0_swish")
            .parse()
            .unwrap();
        table.estimate(&spec)
    };
    let measured = at(480).unwrap();
    assert_eq!(measured.ms, 0.660);
    assert!(measured.is_measured());
    let between = at(477).unwrap();
    assert!((between.ms - (0.640 + 5.0 / 8.0 * 0.020)).abs() < 1e-12);
    assert_eq!(
        between.source,
        Source::Interpolated {
            lower: 472,
            upper: 480
        }
    );
    // Below the lowest and above the highest measured width: unknown.
    assert!(at(400).is_none());
    assert!(at(512).is_none());
    let err = table
        .block_ms(&"mbconv_r14_i80_o80_s1_k3_m512_se0_swish".parse().unwrap())
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("mbconv_r14_i80_o80_s1_k3_m512_se0_swish"));
}

#[test]
fn tfnas_a_prediction_equals_the_hand_sum() {
    let table = LatencyTable::from_path(&fixture("tfnas_a_synthetic.csv")).unwrap();
    let arch = Architecture::tfnas_a();
    let got = table.predict(&arch).unwrap();
    // Stem, second stem and head are measured exactly.
    let base = 0.100 + 0.200 + 0.300;
    // Block by block, interpolating between the fixture's measured widths.
    let stage1 = (0.300 + 3.0 / 8.0 * 0.040) + 0.250;
    let stage2 =
        (0.400 + 2.0 / 8.0 * 0.080) + (0.500 + 1.0 / 8.0 * 0.080) + (0.300 + 2.0 / 8.0 * 0.040);
    let stage3 = 0.450 + (0.700 + 4.0 / 8.0 * 0.020) + 0.600 + (0.640 + 5.0 / 8.0 * 0.020);
    let stage4 = 0.800
        + (0.900 + 4.0 / 8.0 * 0.040)
        + (1.000 + 3.0 / 8.0 * 0.040)
        + (0.700 + 3.0 / 8.0 * 0.040);
    let stage5 = (0.500 + 5.0 / 8.0 * 0.020)
        + (0.600 + 2.0 / 8.0 * 0.040)
        + (0.700 + 2.0 / 8.0 * 0.040)
        + (0.800 + 7.0 / 8.0 * 0.008);
    let stage6 = 0.900 + 3.0 / 8.0 * 0.016;
    let hand = base + stage1 + stage2 + stage3 + stage4 + stage5 + stage6;
    assert!(
        (got.total_ms - hand).abs() < 1e-9,
        "{} vs {hand}",
        got.total_ms
    );
    assert!((got.base_ms - base).abs() < 1e-12);
    assert_eq!(got.blocks.len(), 2 + 18 + 1);
    let measured = got.blocks.iter().filter(|(_, e)| e.is_measured()).count();
    assert_eq!(measured, 3 + 4); // stems, head, and four exact widths

    let with = arch.clone().with_prediction(&table).unwrap();
    let p = with.prediction.as_ref().unwrap();
    assert_eq!(p.batch, 32);
    assert!((p.latency_ms - hand).abs() < 1e-9);
    assert!(p
        .fingerprint
        .get(meta::DEVICE_NAME)
        .unwrap()
        .contains("SYNTHETIC"));
    // The prediction survives the JSON round trip.
    assert_eq!(
        Architecture::from_json(&with.to_json_pretty()).unwrap(),
        with
    );
}

#[test]
fn missing_entries_are_all_named() {
    let text = fixture_text()
        .lines()
        .filter(|l| !l.starts_with("head_") && !l.contains("_m1368_") && !l.contains("_m1376_"))
        .collect::<Vec<_>>()
        .join("\n");
    let table = LatencyTable::parse(&text, "partial.csv").unwrap();
    match table.predict(&Architecture::tfnas_a()).unwrap_err() {
        SpaceError::MissingEntries { keys } => assert_eq!(
            keys,
            [
                "mbconv_r7_i192_o192_s1_k3_m1370_se0_swish",
                "head_r7_i320_o1000_s1_k1_m1280_se0_swish"
            ]
        ),
        other => panic!("expected missing entries, got {other}"),
    }
}

/// The fixture with a `boundary_ms` header line.
fn with_boundary(value: &str) -> Result<LatencyTable, SpaceError> {
    let text = fixture_text().replacen("# batch", &format!("# boundary_ms: {value}\n# batch"), 1);
    LatencyTable::parse(&text, "boundary.csv")
}

#[test]
fn a_boundary_comes_off_every_block_and_back_once_per_network() {
    let plain = LatencyTable::from_path(&fixture("tfnas_a_synthetic.csv")).unwrap();
    let table = with_boundary("0.004").unwrap();
    assert_eq!(plain.boundary_ms(), 0.0);
    assert_eq!(table.boundary_ms(), 0.004);
    let arch = Architecture::tfnas_a();
    let (p, b) = (plain.predict(&arch).unwrap(), table.predict(&arch).unwrap());
    // 21 blocks timed alone carry 21 starts and ends; the network one.
    let n = p.blocks.len() as f64;
    assert_eq!(n, 21.0);
    assert!((b.total_ms - (p.total_ms - (n - 1.0) * 0.004)).abs() < 1e-9);
    assert!((b.base_ms - (p.base_ms - 2.0 * 0.004)).abs() < 1e-12);
    for ((spec, e), (_, f)) in p.blocks.iter().zip(&b.blocks) {
        assert!((e.ms - f.ms - 0.004).abs() < 1e-12, "{spec}");
    }
    // The rows keep what was measured.
    assert_eq!(table.entries(), plain.entries());
}

#[test]
fn a_bad_boundary_is_refused_with_its_line() {
    for bad in ["-0.001", "fast", "NaN", "inf"] {
        let e = with_boundary(bad).unwrap_err().to_string();
        assert!(e.contains("boundary_ms") && e.contains(bad), "{e}");
    }
    // The fixture's smallest median is 0.1 ms (the stem): a boundary that
    // large would price it at nothing.
    let e = with_boundary("0.1").unwrap_err().to_string();
    assert!(e.contains("median_ms") && e.contains("not above"), "{e}");
    assert!(with_boundary("0.0999").is_ok());
}

/// A tiny well-formed table: its header lines, then the stem of the
/// default space, then `rows`.
fn small_table(header: &str, rows: &str) -> String {
    format!(
        "# format: tfnas-latency-table/1\n{header}key,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\nstem_r224_i3_o32_s2_k3_m0_se0_relu,32,0.1,0.1,0.1,0.1,0.1,5,0\n{rows}"
    )
}

fn refusal(text: &str) -> String {
    LatencyTable::parse(text, "t.csv").unwrap_err().to_string()
}

#[test]
fn malformed_or_misplaced_header_lines_are_refused_with_their_line() {
    let e = refusal(&small_table("# batch: 32\n# width_step: banana\n", ""));
    assert!(
        e.starts_with("t.csv:3:") && e.contains("width_step 'banana'"),
        "{e}"
    );
    let e = refusal(&small_table("# space_digest: not-a-digest\n", ""));
    assert!(
        e.starts_with("t.csv:2:") && e.contains("16 hex digits"),
        "{e}"
    );
    // A speed reference scales every run: nothing but a positive number.
    for bad in ["0", "-1", "NaN", "fast", "inf"] {
        let e = refusal(&small_table(&format!("# speed_reference_ms: {bad}\n"), ""));
        assert!(
            e.starts_with("t.csv:2:") && e.contains(&format!("speed_reference_ms '{bad}'")),
            "{e}"
        );
    }
    let ok =
        LatencyTable::parse(&small_table("# speed_reference_ms: 3.19\n", ""), "t.csv").unwrap();
    assert_eq!(ok.speed_reference_ms(), Some(3.19));
    assert_eq!(ok.speed_standard(), None);
    // The speed standard: a positive time and the keys of its blocks, the
    // two lines together.
    let stem = "stem_r224_i3_o32_s2_k3_m0_se0_relu";
    let head = "head_r7_i320_o1000_s1_k1_m1280_se0_swish";
    let both = |ms: &str, keys: &str| {
        small_table(
            &format!("# speed_standard_ms: {ms}\n# speed_standard_network: {keys}\n"),
            "",
        )
    };
    let good = LatencyTable::parse(&both("24.5", &format!("{stem} {head}")), "t.csv").unwrap();
    let (ms, blocks) = good.speed_standard().unwrap();
    assert_eq!((ms, blocks.len()), (24.5, 2));
    assert_eq!(blocks[1].key(), head);
    for (text, says) in [
        (both("0", stem), "speed_standard_ms '0'"),
        (both("NaN", stem), "speed_standard_ms 'NaN'"),
        (both("24.5", "stem_r224"), "speed_standard_network"),
        (
            small_table("# speed_standard_ms: 24.5\n", ""),
            "go together: one is missing",
        ),
        (
            small_table(&format!("# speed_standard_network: {stem}\n"), ""),
            "go together: one is missing",
        ),
    ] {
        let e = refusal(&text);
        assert!(e.starts_with("t.csv:") && e.contains(says), "{e}");
    }
    // A line without its partner is named where it stands.
    let e = refusal(&small_table(
        &format!("# speed_standard_network: {stem}\n"),
        "",
    ));
    assert!(e.starts_with("t.csv:2:"), "{e}");
    let late = "key,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\n# format: tfnas-latency-table/1\n";
    let e = refusal(late);
    assert!(
        e.starts_with("t.csv:2:") && e.contains("before the column header (line 1)"),
        "{e}"
    );
}

#[test]
fn a_byte_order_mark_is_read_as_no_part_of_the_first_line() {
    let text = format!("\u{feff}{}", small_table("", ""));
    let table = LatencyTable::parse(&text, "t.csv").unwrap();
    assert_eq!(table.len(), 1);
}

#[test]
fn a_median_beyond_a_million_ms_is_refused() {
    let e = refusal(&small_table(
        "",
        "head_r7_i320_o1000_s1_k1_m1280_se0_swish,32,1e300,1e300,1e300,1e300,1e300,5,0\n",
    ));
    assert!(
        e.starts_with("t.csv:4:") && e.contains("above 1e6 ms"),
        "{e}"
    );
}

#[test]
fn a_median_of_zero_or_below_a_tenth_of_a_microsecond_is_refused() {
    let row = |ms: &str| {
        format!("head_r7_i320_o1000_s1_k1_m1280_se0_swish,32,{ms},{ms},{ms},{ms},{ms},5,0\n")
    };
    let e = refusal(&small_table("", &row("1e-300")));
    assert!(e.contains("below 1e-4 ms"), "{e}");
    let e = refusal(&small_table("", &row("0")));
    assert!(e.contains("0 ms is no latency"), "{e}");
    // The official TF-NAS tables fold their fixed parts into one row and
    // say so: their other fixed rows hold 0.
    let base = "# base: the stem row holds stem, second stem and head\n";
    let text = small_table(base, &row("0"));
    LatencyTable::parse(&text, "t.csv").unwrap();
}

#[test]
fn a_correction_of_orders_of_magnitude_is_refused() {
    for (line, want) in [
        (
            "linear a=1e300 b=0",
            "the slope a must be a number in [0.1, 10]",
        ),
        (
            "linear a=1 b=-1e9",
            "the offset b must be a number in [-1e4, 1e4] ms",
        ),
    ] {
        let e = line.parse::<space::Correction>().unwrap_err();
        assert!(e.contains(want), "{line}: {e}");
    }
    assert!("linear a=1.03 b=-0.2".parse::<space::Correction>().is_ok());
}

#[test]
fn a_huge_key_is_cut_short_in_the_message() {
    let key = "x".repeat(1_000_000);
    let e = refusal(&small_table("", &format!("{key},32,1,1,1,1,1,5,0\n")));
    assert!(
        e.len() < 3000 && e.contains("bytes in all"),
        "{} bytes",
        e.len()
    );
}

#[test]
fn keys_outside_the_space_and_another_spaces_digest_are_refused() {
    let space = space::SearchSpaceConfig::default();
    let outside = small_table(
        "",
        "mbconv_r28_i40_o80_s2_k5_m9999_se0_swish,32,0.1,0.1,0.1,0.1,0.1,5,0\nstem_r999_i3_o32_s2_k3_m0_se0_relu,32,0.1,0.1,0.1,0.1,0.1,5,0\n",
    );
    let table = LatencyTable::parse(&outside, "t.csv").unwrap();
    assert_eq!(table.keys_outside(&space).len(), 2);
    let e = table.check_in_space(&space).unwrap_err().to_string();
    assert!(
        e.starts_with("t.csv:4: column 'key': 2 entries are")
            && e.contains("m9999")
            && e.contains("(line 5)"),
        "{e}"
    );
    let other = small_table("# space_digest: 0123456789abcdef\n", "");
    let table = LatencyTable::parse(&other, "t.csv").unwrap();
    let e = table.check_in_space(&space).unwrap_err().to_string();
    assert!(
        e.starts_with("t.csv:2:") && e.contains("contradicts the space"),
        "{e}"
    );
    let own = small_table(&format!("# space_digest: {}\n", space.digest()), "");
    LatencyTable::parse(&own, "t.csv")
        .unwrap()
        .check_in_space(&space)
        .unwrap();
}

#[test]
fn the_content_digest_follows_the_text_not_the_path() {
    let text = fixture_text();
    let a = LatencyTable::parse(&text, "a.csv").unwrap();
    let b = LatencyTable::parse(&text, "./b.csv").unwrap();
    assert_eq!(a.content_sha256(), b.content_sha256());
    let doubled = text.replacen(",0.", ",1.", 1);
    let c = LatencyTable::parse(&doubled, "a.csv");
    if let Ok(c) = c {
        assert_ne!(a.content_sha256(), c.content_sha256());
    }
}

#[test]
fn the_reference_tables_hold_only_keys_of_the_default_space() {
    let space = space::SearchSpaceConfig::default();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tables/reference");
    for name in [
        "h100-pytorch-2.11-graph.csv",
        "titanrtx-tfnas-official.csv",
        "xeon6130-tfnas-official.csv",
    ] {
        let table = LatencyTable::from_path(&dir.join(name)).unwrap();
        let outside = table.keys_outside(&space);
        assert!(
            outside.is_empty(),
            "{name}: {:?}",
            &outside[..outside.len().min(3)]
        );
    }
}

#[test]
fn a_row_after_a_comment_line_is_named_by_its_file_line() {
    let text = small_table(
        "",
        "# a note between rows\n\nhead_r7_i320_o1000_s1_k1_m1280_se0_swish,32,banana,1,1,1,1,5,0\n",
    );
    let e = refusal(&text);
    assert!(e.starts_with("t.csv:6: column 'median_ms'"), "{e}");
}

/// A table of two curves of one layer (k3 and k5 at 14x14, 80 -> 80), each
/// measured at the aligned widths 64, 72 and 80 and at one unaligned probe,
/// under the header line `width_model` (none when `model` is `None`).
fn aligned_table(model: Option<&str>) -> LatencyTable {
    let header = model.map_or(String::new(), |m| format!("# width_model: {m}\n"));
    two_curves(&header)
}

/// [`aligned_table`]'s rows under the header lines `header`.
fn two_curves(header: &str) -> LatencyTable {
    let mut text = format!("# format: tfnas-latency-table/1\n{header}");
    text.push_str("key,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\n");
    // k3: 67 costs 1.2 x its aligned interpolation 1.375 (between 64 and 72).
    // k5: 75 costs 1.1 x its aligned interpolation 2.875 (between 72 and 80).
    for (k, mid, ms) in [
        (3, 64, 1.0),
        (3, 67, 1.65),
        (3, 72, 2.0),
        (3, 80, 3.0),
        (5, 64, 2.0),
        (5, 72, 2.5),
        (5, 75, 3.1625),
        (5, 80, 3.5),
    ] {
        // Each median known to ±10%: a curve fit judges the lines by it.
        let (lo, hi) = (ms * 0.9, ms * 1.1);
        text.push_str(&format!(
            "mbconv_r14_i80_o80_s1_k{k}_m{mid}_se0_swish,1,{ms},{ms},{ms},{lo},{hi},10,0\n"
        ));
    }
    LatencyTable::parse(&text, "two-curves.csv").unwrap()
}

fn k3_at(mid: u32) -> BlockSpec {
    format!("mbconv_r14_i80_o80_s1_k3_m{mid}_se0_swish")
        .parse()
        .unwrap()
}

#[test]
fn an_aligned_table_prices_unaligned_widths_with_its_layers_measured_surcharge() {
    let table = aligned_table(Some("align 8"));
    assert_eq!(
        table.width_model(),
        space::WidthModel::Align { multiple: 8 }
    );
    // The layer's surcharge is the mean of its probes' ratios: (1.2 + 1.1) / 2.
    let e = table.estimate(&k3_at(77)).unwrap();
    let base = 2.0 + 5.0 / 8.0 * 1.0;
    assert!((e.ms - base * 1.15).abs() < 1e-12, "{e:?}");
    match e.source {
        Source::Unaligned {
            lower,
            upper,
            surcharge,
        } => {
            assert_eq!((lower, upper), (72, 80));
            assert!((surcharge - 1.15).abs() < 1e-12);
        }
        other => panic!("{other:?}"),
    }
    // A probe is interpolated past, not through: 69 lies between the
    // aligned 64 and 72 whatever 67 measured.
    let e = table.estimate(&k3_at(69)).unwrap();
    assert!((e.ms - (1.0 + 5.0 / 8.0) * 1.15).abs() < 1e-12, "{e:?}");
    // Measured widths, probes included, are their measurements.
    assert_eq!(table.estimate(&k3_at(67)).unwrap().ms, 1.65);
    assert_eq!(table.estimate(&k3_at(72)).unwrap().ms, 2.0);
    assert!(table.estimate(&k3_at(88)).is_none());
}

#[test]
fn an_aligned_width_the_table_did_not_measure_pays_no_surcharge() {
    let mut text = String::from("# format: tfnas-latency-table/1\n# width_model: align 4\n");
    text.push_str("key,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\n");
    for (mid, ms) in [(64, 1.0), (67, 1.5), (72, 2.0)] {
        text.push_str(&format!(
            "mbconv_r14_i80_o80_s1_k3_m{mid}_se0_swish,1,{ms},{ms},{ms},{ms},{ms},10,0\n"
        ));
    }
    let table = LatencyTable::parse(&text, "align4.csv").unwrap();
    let e = table.estimate(&k3_at(68)).unwrap();
    assert_eq!(e.ms, 1.5);
    assert_eq!(
        e.source,
        Source::Interpolated {
            lower: 64,
            upper: 72
        }
    );
}

#[test]
fn a_table_without_a_width_model_interpolates_linearly_through_every_measured_width() {
    for table in [aligned_table(None), aligned_table(Some("linear"))] {
        assert_eq!(table.width_model(), space::WidthModel::Linear);
        let e = table.estimate(&k3_at(69)).unwrap();
        assert!((e.ms - (1.65 + 2.0 / 5.0 * 0.35)).abs() < 1e-12, "{e:?}");
        assert_eq!(
            e.source,
            Source::Interpolated {
                lower: 67,
                upper: 72
            }
        );
    }
}

/// [`aligned_table`]'s rows under `align 8` and `curve_fit: affine`.
fn fitted_table() -> LatencyTable {
    two_curves("# width_model: align 8\n# curve_fit: affine\n")
}

fn k5_at(mid: u32) -> BlockSpec {
    format!("mbconv_r14_i80_o80_s1_k5_m{mid}_se0_swish")
        .parse()
        .unwrap()
}

/// The line a + b·x through `points` minimising Σ((y − a − b·x)/y)², from
/// the normal equations written out.
fn relative_line(points: &[(f64, f64)]) -> (f64, f64) {
    let w = |y: f64| 1.0 / (y * y);
    let sum = |f: &dyn Fn(f64, f64) -> f64| points.iter().map(|&(x, y)| f(x, y)).sum::<f64>();
    let (sw, sx, sy) = (
        sum(&|_, y| w(y)),
        sum(&|x, y| w(y) * x),
        sum(&|_, y| w(y) * y),
    );
    let (sxx, sxy) = (sum(&|x, y| w(y) * x * x), sum(&|x, y| w(y) * x * y));
    let b = (sw * sxy - sx * sy) / (sw * sxx - sx * sx);
    ((sy - b * sx) / sw, b)
}

#[test]
fn an_affine_curve_fit_prices_measured_aligned_widths_on_their_curves_line() {
    let table = fitted_table();
    assert_eq!(table.curve_fit(), space::CurveFit::Affine);
    assert!(table.curve_check().unwrap().applied);
    let (a, b) = relative_line(&[(64.0, 2.0), (72.0, 2.5), (80.0, 3.5)]);
    let line = |m: f64| a + b * m;
    let e = table.estimate(&k5_at(72)).unwrap();
    assert!((e.ms - line(72.0)).abs() < 1e-12, "{e:?}");
    assert_eq!(e.source, Source::Fitted { measured_ms: 2.5 });
    assert!(e.is_measured());
    // k3's aligned widths lie on a line already: they stay measured.
    assert_eq!(table.estimate(&k3_at(72)).unwrap().source, Source::Measured);
    // A probe keeps its own entry; the layer's surcharge is measured
    // against the line: (1.65 / 1.375 + 3.1625 / line(75)) / 2.
    let probe = table.estimate(&k5_at(75)).unwrap();
    assert_eq!((probe.ms, probe.source), (3.1625, Source::Measured));
    let surcharge = (1.65 / 1.375 + 3.1625 / line(75.0)) / 2.0;
    let e = table.estimate(&k5_at(77)).unwrap();
    assert!((e.ms - line(77.0) * surcharge).abs() < 1e-12, "{e:?}");
    // The same rows without the fit: each width at its entry.
    let raw = table.with_curve_fit(space::CurveFit::None);
    assert_eq!(raw.estimate(&k5_at(72)).unwrap().ms, 2.5);
    assert_eq!(
        aligned_table(Some("align 8")).curve_fit(),
        space::CurveFit::None
    );
}

/// One curve on a parabola under `curve_fit: affine`, each median known to
/// ±`rel` (its 95% interval).
fn parabola(rel: f64) -> LatencyTable {
    let mut text = String::from("# format: tfnas-latency-table/1\n# curve_fit: affine\n");
    text.push_str("key,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\n");
    for mid in [64, 72, 80, 88, 96] {
        let ms = 1.0 + f64::from((mid - 56) * (mid - 56)) / 1000.0;
        let (lo, hi) = (ms * (1.0 - rel), ms * (1.0 + rel));
        text.push_str(&format!(
            "mbconv_r14_i80_o80_s1_k3_m{mid}_se0_swish,1,{ms},{ms},{ms},{lo},{hi},10,0\n"
        ));
    }
    LatencyTable::parse(&text, "parabola.csv").unwrap()
}

#[test]
fn curves_that_bend_beyond_their_entries_noise_keep_their_entries_under_affine() {
    let tight = parabola(0.001);
    let check = tight.curve_check().unwrap();
    assert!(
        !check.applied && check.stray > space::CurveFit::MAX_STRAY,
        "{check:?}"
    );
    assert_eq!(check.curves, 1);
    assert_eq!(tight.curve_fit(), space::CurveFit::None);
    let e = tight.estimate(&k3_at(72)).unwrap();
    assert_eq!((e.ms, e.source), (1.256, Source::Measured));
    // The same curve known to ±20%: the bend is within its noise.
    let loose = parabola(0.2);
    assert!(loose.curve_check().unwrap().applied);
    assert_eq!(loose.curve_fit(), space::CurveFit::Affine);
    assert!(matches!(
        loose.estimate(&k3_at(72)).unwrap().source,
        Source::Fitted { .. }
    ));
}

#[test]
fn a_curve_fit_the_reader_does_not_know_is_refused_at_its_line() {
    let text = "# format: tfnas-latency-table/1\n# curve_fit: quadratic\nkey,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\n";
    let e = LatencyTable::parse(text, "bad.csv")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad.csv:2") && e.contains("curve_fit"), "{e}");
    assert!(e.contains("`none` or `affine`"), "{e}");
}

#[test]
fn a_width_model_outside_its_range_is_refused_at_its_line() {
    for bad in ["align 1", "align 300", "pad 8", "align x"] {
        let text = format!(
            "# format: tfnas-latency-table/1\n# width_model: {bad}\nkey,batch,median_ms,p10_ms,p90_ms,ci_low_ms,ci_high_ms,samples,throttled\n"
        );
        let e = LatencyTable::parse(&text, "bad.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.csv") && e.contains('2') && e.contains("width_model"),
            "{bad}: {e}"
        );
        assert!(e.contains("[2, 256]"), "{bad}: {e}");
    }
}

#[test]
fn an_aligned_plan_adds_two_unaligned_probes_inside_each_ops_range() {
    let space = space::SearchSpaceConfig::default();
    let grid = space.table_plan(8).unwrap();
    let aligned = space.table_plan_aligned(8, Some(8)).unwrap();
    assert_eq!(
        space.table_plan_aligned(8, None).unwrap().blocks,
        grid.blocks
    );
    let probes: Vec<_> = aligned
        .blocks
        .iter()
        .filter(|b| !grid.blocks.contains(b))
        .collect();
    assert!(probes.iter().all(|b| b.mid_channels % 8 != 0), "{probes:?}");
    // Every searchable curve has at least two; shared curves (TF-NAS's
    // non-SE e3 and e6) get their two ops' probes.
    for shape in grid.searchable_shapes() {
        let n = probes.iter().filter(|b| b.shape == shape).count();
        assert!(n >= 2, "{shape:?} has {n} probes");
    }
    assert_eq!(aligned.len(), grid.len() + probes.len());
    let range = space::WidthRange {
        min: 64,
        initial: 96,
        max: 128,
    };
    assert_eq!(space::TablePlan::probe_widths(range, 8), vec![83, 107]);
    assert_eq!(space::TablePlan::probe_widths(range, 16), vec![87, 103]);
    assert!(space.table_plan_aligned(8, Some(1)).is_err());
}
