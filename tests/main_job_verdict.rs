//! The main job's verdict (`scripts/verdict.awk`, step 5 of
//! `scripts/run.sh`) on rows written here: each figure with its interval,
//! and a miss told apart from one inside the noise.

use std::path::Path;
use std::process::Command;

/// One validate row: network (0 searched, 1 TF-NAS-A/8), pass, predicted
/// and measured (at the table's speed) ms, throttled, raw ms.
type Row = (u32, u32, f64, f64, bool, f64);

/// The verdict's output on `rows`, target 20 ms, no correction.
fn verdict(rows: &[Row]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    let mut text = String::from("# format: tfnas-validation/3\nindex,pass,seed,predicted_ms,measured_ms,error_pct,measured_p10_ms,measured_p90_ms,samples,throttled,raw_ms,arch\n");
    for &(i, pass, p, m, throttled, raw) in rows {
        let e = (p / m - 1.0) * 100.0;
        text += &format!(
            "{i},{pass},0,{p},{m},{e:.4},{m},{m},20,{},{raw},x\n",
            u8::from(throttled)
        );
    }
    std::fs::write(&path, text).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/verdict.awk");
    let out = Command::new("awk")
        .args([
            "-F,",
            "-v",
            "t=20",
            "-v",
            "a=1",
            "-v",
            "sp= at the table's speed",
        ])
        .args(["-v", "s=500", "-v", "unstable=", "-f"])
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Three pass pairs: the searched network predicted `p0` and measured
/// `m0[j]`, TF-NAS-A/8 predicted and measured 21 ms; raw = measured.
fn pairs(p0: f64, m0: [f64; 3]) -> Vec<Row> {
    (0..3)
        .flat_map(|j| {
            [
                (0, j, p0, m0[j as usize], false, m0[j as usize]),
                (1, j, 21.0, 21.0, false, 21.0),
            ]
        })
        .collect()
}

fn line<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no {start} in\n{out}"))
}

#[test]
fn a_network_on_its_price_lands_with_its_interval_printed() {
    let out = verdict(&pairs(20.0, [19.8, 20.0, 20.2]));
    // Mean 20, sd 0.2 over 3 passes: t(2) = 4.303, half-width 0.4969 ms.
    let h = 4.303 * (0.04f64 / 3.0).sqrt();
    let (lo, hi) = (
        (20.0 / (20.0 + h) - 1.0) * 100.0,
        (20.0 / (20.0 - h) - 1.0) * 100.0,
    );
    assert_eq!(
        line(&out, "searched "),
        format!("searched   predicted 20.0000 ms, measured 20.0000 ms (mean of 3 passes at the table's speed): table error +0.00% (95% interval {lo:+.2}..{hi:+.2}%)")
    );
    assert!(line(&out, "TF-NAS-A/8 ").ends_with("table error +0.00% (95% interval +0.00..+0.00%)"));
    // Three pairs: their range holds the median with probability 75%.
    assert!(
        line(&out, "ratio ").contains("(range 0.9429..0.9619; +0.00%, 75% interval -0.99..+1.01%)"),
        "{out}"
    );
    assert!(
        line(&out, "verdict: ").starts_with("verdict: LANDED: "),
        "{out}"
    );
}

#[test]
fn a_miss_beyond_the_noise_is_plain_and_one_inside_it_says_so() {
    let beyond = verdict(&pairs(20.8, [20.0, 20.0, 20.0]));
    assert!(
        line(&beyond, "searched ").ends_with("table error +4.00% (95% interval +4.00..+4.00%)"),
        "{beyond}"
    );
    assert!(
        line(&beyond, "verdict: ")
            .starts_with("verdict: MISSED: the searched network is +4.00% off"),
        "{beyond}"
    );
    // Passes 19, 20 and 21 ms: +3% off, but the interval reaches the band.
    let inside = verdict(&pairs(20.6, [19.0, 20.0, 21.0]));
    assert!(
        line(&inside, "verdict: ").starts_with("verdict: MISSED (within the noise: each figure's interval reaches into the 2% band): the searched network is +3.00% off"),
        "{inside}"
    );
}

#[test]
fn throttled_pairs_are_left_out_whole_and_too_few_left_is_unsure() {
    let mut rows = pairs(20.0, [19.8, 20.0, 20.2]);
    rows.push((0, 3, 20.0, 40.0, true, 40.0));
    rows.push((1, 3, 21.0, 21.0, false, 21.0));
    let out = verdict(&rows);
    assert!(
        out.contains("left out: 1 of 4 pass pairs, throttled\n"),
        "{out}"
    );
    assert_eq!(
        line(&out, "verdict: "),
        line(&verdict(&pairs(20.0, [19.8, 20.0, 20.2])), "verdict: ")
    );
    rows.truncate(4);
    assert!(line(&verdict(&rows), "verdict: ")
        .starts_with("verdict: UNSURE (fewer than 3 pass pairs left)"));
}
