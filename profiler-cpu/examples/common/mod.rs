//! What the CPU benchmarks share: their summaries and the process set-up
//! the CLI does.
// Each example uses a subset of these.
#![allow(dead_code)]

/// The upper middle of `v` (not interpolated: a run's time, as measured).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The mean and the sample standard deviation of `v`.
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len().max(2) - 1) as f64;
    (m, var.sqrt())
}

/// glibc's malloc tunables, as `profiler --device cpu` sets them (the
/// process re-executes itself once), or a warning why not.
pub fn tunables() {
    if let Err(why) = profiler_cpu::memory::ensure_tunables() {
        eprintln!("warning: {why}");
    }
}
