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
    verdict_with(rows, "")
}

/// The verdict's output on `rows` and `turns`, the output of `profiler
/// measure --arch TF-NAS-A/8 --versus SEARCHED` (empty: none).
fn verdict_with(rows: &[Row], turns: &str) -> String {
    verdict_in(rows, turns, "")
}

/// The same with `drift`, the level's move expected between the level
/// step and the verdict (points, sd; empty: none).
fn verdict_in(rows: &[Row], turns: &str, drift: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let turns_path = dir.path().join("turns.txt");
    std::fs::write(&turns_path, turns).unwrap();
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
    // The level step's rows: one run at 0.85 of the table's speed (17 ms
    // at it, 20 ms raw), read only for the machine's speed.
    let level_path = dir.path().join("level.csv");
    std::fs::write(
        &level_path,
        "# format: tfnas-validation/3\nindex,pass,seed,predicted_ms,measured_ms,error_pct,measured_p10_ms,measured_p90_ms,samples,throttled,raw_ms,arch\n0,0,0,16,17,-5.8824,17,17,20,0,20,x\n",
    )
    .unwrap();
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
        .args(["-v", "s=500", "-v", "unstable=", "-v"])
        .arg(format!("drift={drift}"))
        .arg("-v")
        .arg(format!("tf={}", turns_path.display()))
        .arg("-v")
        .arg(format!("lf={}", level_path.display()))
        .arg("-f")
        .arg(script)
        .arg(&path)
        .arg(&turns_path)
        .arg(&level_path)
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
        line(&out, "ratio ").ends_with(
            "the median of 3 pass pairs (range 0.9429..0.9619, a 75% interval): +0.00% (interval -0.99..+1.01%); 0.9524 at the table's speed (+0.00%)"
        ),
        "{out}"
    );
    // Beside the verdict, the machine's speed here (each row's time at the
    // table's speed over its raw time: 1 in these rows) and in the level
    // step's rows (0.85).
    assert_eq!(
        line(&out, "machine speed: "),
        "machine speed: 1.000x the table's in these passes, 0.850x in the level step's (step 2)"
    );
    // The searched network's interval (-2.43..+2.55%) reaches past the
    // band: a landing, said to be within the noise.
    assert!(
        line(&out, "verdict: ").starts_with("verdict: LANDED (within the noise: an interval reaches past the 2% band): the searched network is +0.00% off"),
        "{out}"
    );
    // Passes within 0.1 ms: every interval inside the band, a plain landing.
    let tight = verdict(&pairs(20.0, [19.95, 20.0, 20.05]));
    assert!(
        line(&tight, "verdict: ").starts_with("verdict: LANDED: "),
        "{tight}"
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

#[test]
fn throttled_pairs_are_kept_when_leaving_them_out_would_leave_fewer_than_three() {
    // Two steady pairs and two throttled: leaving the throttled out would
    // leave a verdict on two passes, so all four are kept, and said so.
    let mut rows = pairs(20.0, [19.8, 20.2, 20.0]);
    rows.truncate(4);
    for (j, m) in [(2, 19.6), (3, 20.4)] {
        rows.push((0, j, 20.0, m, true, m));
        rows.push((1, j, 21.0, 21.0, false, 21.0));
    }
    let out = verdict(&rows);
    assert!(
        out.contains("kept: 2 of 4 pass pairs throttled, as only 2 steady would be left\n"),
        "{out}"
    );
    assert!(!out.contains("left out:"), "{out}");
    assert!(
        line(&out, "searched ").contains("(mean of 4 passes"),
        "{out}"
    );
    assert!(
        line(&out, "verdict: ").starts_with("verdict: LANDED (within the noise"),
        "{out}"
    );
}

/// `measure --versus`'s pass lines, as it prints them.
fn turns(passes: &[(f64, f64, f64)]) -> String {
    let mut text = String::from("cpu: a line on stderr is not here\n");
    for (j, (r, lo, hi)) in passes.iter().enumerate() {
        text += &format!(
            "pass {}/{}, run by run: network tfnas_a_up8 (21 blocks) median 21.0000 ms (21 runs), network arch (21 blocks) median 20.0000 ms (20 runs), network arch (21 blocks) {r:+.2}% (95% CI {lo:+.2}..{hi:+.2}%, 20 pairs) against network tfnas_a_up8 (21 blocks)\n",
            j + 1,
            passes.len()
        );
    }
    text + "A/B over 3 passes, run by run (median of pass medians): +9.99% is not read\n"
}

#[test]
fn the_ratio_comes_from_the_runs_in_turns_when_there_are_some() {
    // The pass pairs say the searched network runs at its predicted ratio
    // (20/21); the runs in turns, 0.8% slower than that: -4.00%, -3.50%,
    // -5.00% against TF-NAS-A/8, so the ratio measured is 0.96.
    let rows = pairs(20.0, [20.0, 20.0, 20.0]);
    let text = turns(&[(-4.0, -4.5, -3.5), (-3.5, -4.0, -3.0), (-5.0, -6.0, -4.5)]);
    let out = verdict_with(&rows, &text);
    let rp = 20.0 / 21.0;
    let pct = |r: f64| (rp / r - 1.0) * 100.0;
    assert_eq!(
        line(&out, "ratio "),
        format!(
            "ratio searched/TF-NAS-A/8: predicted 0.9524, measured 0.9600 raw, in turns run by run, the median of 3 passes (their 95% intervals within 0.9400..0.9700): {:+.2}% (interval {:+.2}..{:+.2}%); 0.9524 at the table's speed (+0.00%)",
            pct(0.96),
            pct(0.97),
            pct(0.94)
        )
    );
    // Each network's time from both networks' passes: the searched
    // network's three at 20 ms and TF-NAS-A/8's three at 21 ms times the
    // ratio 0.96 (20.16 ms); TF-NAS-A/8's own three and the searched
    // network's over the ratio (20.8333 ms).
    let x = [20.0, 20.0, 20.0, 20.16, 20.16, 20.16];
    let mean = x.iter().sum::<f64>() / 6.0;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 5.0).sqrt();
    let h = 2.571 * sd / 6f64.sqrt();
    let err = |m: f64| (20.0 / m - 1.0) * 100.0;
    assert_eq!(
        line(&out, "searched "),
        format!(
            "searched   predicted 20.0000 ms, measured {mean:.4} ms (its 3 passes and the other's 3 through their ratio in turns at the table's speed): table error {:+.2}% (95% interval {:+.2}..{:+.2}%); its own passes alone 20.0000 ms, +0.00%",
            err(mean),
            err(mean + h),
            err(mean - h)
        )
    );
    assert!(
        line(&out, "TF-NAS-A/8 ").contains("measured 20.9167 ms (its 3 passes"),
        "{out}"
    );
    // -0.79% off, inside the band: a landing, which the pass pairs alone
    // (+0.00%) would have called too.
    assert!(
        line(&out, "verdict: ").starts_with("verdict: LANDED: "),
        "{out}"
    );
    // 8% slower in turns: beyond the band and its interval too.
    let text = turns(&[(-12.0, -12.5, -11.5); 3]);
    let out = verdict_with(&rows, &text);
    assert!(
        line(&out, "verdict: ").starts_with("verdict: MISSED: "),
        "{out}"
    );
    assert!(
        line(&out, "ratio ").contains("the median of 3 passes"),
        "{out}"
    );
}

/// Three passes whose machine speed wobbles by 0.2%: the level's eight
/// networks (index 2 to 9, predicted 10 to 24 ms) and TF-NAS-A/8 (21 ms)
/// all measured at `level` times their prediction, the searched network
/// (20 ms) at `level * off`; the level networks' pass 1 marked throttled.
fn with_level(level: f64, off: f64) -> Vec<Row> {
    with_level_wobbling(level, off, 0.002)
}

/// The same with the machine's speed wobbling by `x` a pass.
fn with_level_wobbling(level: f64, off: f64, x: f64) -> Vec<Row> {
    let w = [1.0, 1.0 + x, 1.0 - x];
    let mut rows = Vec::new();
    for (j, w) in w.iter().enumerate() {
        let j = j as u32;
        let m0 = 20.0 * level * off * w;
        rows.push((0, j, 20.0, m0, false, m0));
        rows.push((1, j, 21.0, 21.0 * level * w, false, 21.0 * level * w));
        for i in 2..10 {
            let p = 10.0 + 2.0 * (i - 2) as f64;
            rows.push((i, j, p, p * level * w, j == 1, p * level * w));
        }
    }
    rows
}

#[test]
fn networks_are_judged_at_the_level_their_passes_measure_on_the_level_networks() {
    // Every network 4% faster than the level step's factor said: at that
    // level the searched network is +4.17% off, at the level its own
    // passes measure on the eight networks beside it, on its price.
    let out = verdict(&with_level(0.96, 1.0));
    assert!(
        line(&out, "searched ").contains("table error +4.17%"),
        "{out}"
    );
    // The level of each pass is 0.96 times its wobble: mean 0.96, sd
    // 0.00192 over three passes.
    let h = 4.303 * 0.96 * 0.002 / 3f64.sqrt();
    assert_eq!(
        line(&out, "level "),
        format!(
            "level      measured over predicted on the 8 networks the table's correction was fitted on (step 2), in these passes: 0.9600 (95% interval {:.4}..{:.4}): the level -4.00% from step 2's",
            0.96 - h,
            0.96 + h
        )
    );
    // 19.2 ms over the level 0.96: 20 ms, its price. The interval: its
    // own relative half-width and the level's, in quadrature.
    let r = 2f64.sqrt() * h / 0.96;
    let (lo, hi) = (
        (1.0 / (1.0 + r) - 1.0) * 100.0,
        (1.0 / (1.0 - r) - 1.0) * 100.0,
    );
    assert_eq!(
        line(&out, "searched   at the level"),
        format!("searched   at the level of these passes: measured 20.0000 ms at it, table error +0.00% (95% interval {lo:+.2}..{hi:+.2}%)")
    );
    assert!(
        line(&out, "TF-NAS-A/8 at the level").contains("table error +0.00% (95% interval "),
        "{out}"
    );
    // A level network's throttled pass leaves no pass pair out.
    assert!(!out.contains("left out:"), "{out}");
    assert!(
        line(&out, "verdict: ").starts_with(
            "verdict: LANDED: the searched network is +0.00% off its prediction at the level of these passes and its ratio"
        ),
        "{out}"
    );
    // 3% slower than networks like it: a miss at any level.
    let slow = verdict(&with_level(0.96, 1.03));
    assert!(
        line(&slow, "verdict: ").starts_with(
            "verdict: MISSED: the searched network is -2.91% off its prediction at the level of these passes"
        ),
        "{slow}"
    );
}

#[test]
fn with_a_drift_expected_the_level_is_weighted_with_step_2s_by_their_variances() {
    // The level 4% off step 2's; each pass's level is 0.96 times its
    // wobble x, so these passes know it to 0.96 x / sqrt(3) (sd). A move of
    // 1.2 points sd expected between the steps: the level moves by that
    // weight of the 4 points measured, and the searched network, on its
    // price at 0.96, is off by what the weight leaves.
    for (x, verdict) in [(0.002, "LANDED"), (0.03, "MISSED")] {
        let out = verdict_in(&with_level_wobbling(0.96, 1.0, x), "", "1.2");
        let se = 0.96 * x / 3f64.sqrt();
        let weight = 0.012f64.powi(2) / (0.012f64.powi(2) + se * se);
        let level = 1.0 - weight * 0.04;
        let weighted = line(&out, "weighted ");
        assert!(
            weighted.contains(&format!(
                "these passes' level known to {:.2}): {level:.4} (95% interval {:.4}..{:.4}), weight {weight:.2} on these passes",
                se * 100.0,
                level - 1.96 * weight.sqrt() * se,
                level + 1.96 * weight.sqrt() * se
            )),
            "{out}"
        );
        let e = (level / 0.96 - 1.0) * 100.0;
        assert!(
            line(&out, "searched   at the weighted").contains(&format!("table error {e:+.2}%")),
            "{out}"
        );
        assert!(
            line(&out, "verdict: ").contains(verdict)
                && line(&out, "verdict: ").contains(&format!(
                    "the searched network is {e:+.2}% off its prediction at the weighted level"
                )),
            "{out}"
        );
    }
    // Without a drift, no weighting: judged at the level of these passes.
    let plain = verdict(&with_level(0.96, 1.0));
    assert!(!plain.contains("weighted"), "{plain}");
}
