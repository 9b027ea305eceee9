//! Rank agreement between two paired samples: Kendall's τ-b and Spearman's ρ.
//!
//! Both tell whether two latency tables (or a table and measurements) order
//! blocks or networks the same way, which is what a search cares about more
//! than the absolute values. Latency tables have ties (equal medians, shared
//! curves), so both statistics handle them: τ-b corrects for ties on either
//! side, ρ uses average ranks. Kendall's τ runs in O(n log n) (Knight's
//! algorithm, as scipy does), because a per-channel table has ~60k entries and
//! the naive O(n²) pair count would take seconds.

use std::cmp::Ordering;

/// Kendall's τ-b of the pairs `(x[i], y[i])`.
///
/// `None` when it is undefined: fewer than two pairs, a length mismatch, a
/// non-finite value, or one side constant (every pair tied).
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 || !all_finite(x) || !all_finite(y) {
        return None;
    }
    let n = x.len();
    let mut pairs: Vec<(f64, f64)> = x.iter().copied().zip(y.iter().copied()).collect();
    pairs.sort_by(|a, b| cmp(a.0, b.0).then(cmp(a.1, b.1)));

    let total = pairs_in(n as u64);
    // Pairs tied in x, and tied in both x and y.
    let tied_x = tie_pairs(&pairs, |a, b| a.0 == b.0);
    let tied_xy = tie_pairs(&pairs, |a, b| a.0 == b.0 && a.1 == b.1);

    // Sorting by y now counts the discordant pairs: every pair that a stable
    // merge sort must swap has x strictly increasing and y strictly
    // decreasing (pairs tied in x are already in y order).
    let mut ys: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let mut buffer = vec![0.0; n];
    let discordant = merge_count(&mut ys, &mut buffer);
    let tied_y = tie_pairs(&ys, |a, b| a == b);

    let untied_x = total - tied_x;
    let untied_y = total - tied_y;
    if untied_x == 0 || untied_y == 0 {
        return None;
    }
    // concordant - discordant = (total - tied_x - tied_y + tied_xy) - 2·discordant
    let numerator =
        total as f64 - tied_x as f64 - tied_y as f64 + tied_xy as f64 - 2.0 * discordant as f64;
    Some(numerator / ((untied_x as f64) * (untied_y as f64)).sqrt())
}

/// Spearman's ρ: the Pearson correlation of the average ranks.
///
/// `None` under the same conditions as [`kendall_tau_b`].
pub fn spearman_rho(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 || !all_finite(x) || !all_finite(y) {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// 1-based ranks, tied values sharing the mean of the ranks they span
/// (`[10, 20, 20, 30]` → `[1, 2.5, 2.5, 4]`).
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| cmp(values[a], values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// Total order on finite floats (callers reject NaN first).
fn cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

fn pairs_in(run: u64) -> u64 {
    run * run.saturating_sub(1) / 2
}

/// Σ t(t−1)/2 over the runs of consecutive items equal under `same`.
fn tie_pairs<T>(sorted: &[T], same: impl Fn(&T, &T) -> bool) -> u64 {
    let mut total = 0;
    let mut run = 1u64;
    for w in sorted.windows(2) {
        if same(&w[0], &w[1]) {
            run += 1;
        } else {
            total += pairs_in(run);
            run = 1;
        }
    }
    total + pairs_in(run)
}

/// Stable merge sort of `v`, returning the number of strict inversions.
fn merge_count(v: &mut [f64], buffer: &mut [f64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut count = {
        let (left, right) = v.split_at_mut(mid);
        let (bl, br) = buffer.split_at_mut(mid);
        merge_count(left, bl) + merge_count(right, br)
    };
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        // Equal values are not inversions: take the left one first.
        if v[j] < v[i] {
            buffer[k] = v[j];
            count += (mid - i) as u64;
            j += 1;
        } else {
            buffer[k] = v[i];
            i += 1;
        }
        k += 1;
    }
    buffer[k..k + mid - i].copy_from_slice(&v[i..mid]);
    k += mid - i;
    buffer[k..k + n - j].copy_from_slice(&v[j..n]);
    v.copy_from_slice(&buffer[..n]);
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// The definition, pair by pair, to check the fast version against.
    fn naive_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
        let (mut c, mut d, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                let sx = (x[i] - x[j]).signum() * f64::from(x[i] != x[j]);
                let sy = (y[i] - y[j]).signum() * f64::from(y[i] != y[j]);
                match (sx == 0.0, sy == 0.0) {
                    (true, true) => {}
                    (true, false) => tx += 1,
                    (false, true) => ty += 1,
                    (false, false) if sx == sy => c += 1,
                    (false, false) => d += 1,
                }
            }
        }
        let denom = (((c + d + tx) * (c + d + ty)) as f64).sqrt();
        (denom > 0.0).then(|| (c - d) as f64 / denom)
    }

    #[test]
    fn perfect_and_reversed_orders() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let rev = [5.0, 4.0, 3.0, 2.0, 1.0];
        assert_eq!(kendall_tau_b(&x, &x), Some(1.0));
        assert_eq!(kendall_tau_b(&x, &rev), Some(-1.0));
        assert!(close(spearman_rho(&x, &x).unwrap(), 1.0));
        assert!(close(spearman_rho(&x, &rev).unwrap(), -1.0));
    }

    #[test]
    fn one_swap_by_hand() {
        // Swapping 2 and 4 in 1..5: pairs (2,4), (2,3), (3,4) turn
        // discordant, 7 of the 10 stay concordant: τ = (7 − 3)/10.
        // Rank differences 0, 2, 0, −2, 0: ρ = 1 − 6·8/(5·24) = 0.6.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [1.0, 4.0, 3.0, 2.0, 5.0];
        assert!(close(kendall_tau_b(&x, &y).unwrap(), 0.4));
        assert!(close(spearman_rho(&x, &y).unwrap(), 0.6));
    }

    #[test]
    fn ties_by_hand() {
        // x = [1, 2, 2, 3], y = [1, 3, 2, 4]. Of the 6 pairs, (2,3) is tied
        // in x only; the other 5 are concordant. τ-b = 5 / √(5·6).
        let x = [1.0, 2.0, 2.0, 3.0];
        let y = [1.0, 3.0, 2.0, 4.0];
        assert!(close(kendall_tau_b(&x, &y).unwrap(), 5.0 / 30f64.sqrt()));
        // Ranks x: 1, 2.5, 2.5, 4 (mean 2.5); y: 1, 3, 2, 4.
        // Σdx·dy = (−1.5)(−1.5) + 0 + 0 + 1.5·1.5 = 4.5; Σdx² = 4.5; Σdy² = 5.
        assert_eq!(average_ranks(&x), [1.0, 2.5, 2.5, 4.0]);
        assert!(close(
            spearman_rho(&x, &y).unwrap(),
            4.5 / (4.5f64 * 5.0).sqrt()
        ));
        // Ties on both sides: x = [1, 1, 2, 2], y = [1, 2, 2, 3]. Pairs:
        // (0,1) x-tie, (2,3) x-tie, (1,2) y-tie, (0,2) (0,3) (1,3)
        // concordant: τ-b = 3 / √((6−2)(6−1)) = 3/√20.
        let x = [1.0, 1.0, 2.0, 2.0];
        let y = [1.0, 2.0, 2.0, 3.0];
        assert!(close(kendall_tau_b(&x, &y).unwrap(), 3.0 / 20f64.sqrt()));
    }

    #[test]
    fn undefined_cases_are_none() {
        assert_eq!(kendall_tau_b(&[1.0], &[1.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, 2.0], &[1.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman_rho(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(kendall_tau_b(&[1.0, f64::NAN], &[1.0, 2.0]), None);
    }

    #[test]
    fn fast_tau_matches_the_definition_with_many_ties() {
        // A small deterministic generator: values in 0..7 force ties.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 7) as f64
        };
        for n in [2, 3, 10, 57, 200] {
            let x: Vec<f64> = (0..n).map(|_| next()).collect();
            let y: Vec<f64> = (0..n).map(|_| next()).collect();
            let (fast, slow) = (kendall_tau_b(&x, &y), naive_tau_b(&x, &y));
            match (fast, slow) {
                (Some(f), Some(s)) => assert!(close(f, s), "n={n}: {f} vs {s}"),
                (f, s) => assert_eq!(f, s, "n={n}"),
            }
        }
    }
}
