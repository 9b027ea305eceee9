//! `profiler validate --table T.csv`: how far is the table's sum of blocks
//! from whole networks measured end to end?
//!
//! Networks are sampled uniformly from the table's space with a seed
//! ([`space::Architecture::sample_nth`]), predicted with the table, and timed
//! whole in the engine under the table's own batch, launch mode, L2 policy,
//! dtype and layout, read from its header: a flag that disagrees is refused,
//! because it would measure something the table never predicted. Every
//! network is predicted before the GPU is touched; if the table cannot
//! predict one (a partial table), the run stops there and names every
//! missing key rather than resampling, since resampling would quietly
//! validate only the part of the space the table covers.
//!
//! With `--passes N` the networks are swept N times and each network's time
//! is the mean of its passes ([`Job::passes`]). A row per network and pass
//! goes to `--out` and resumes like the table build; the statistics are
//! [`crate::analysis::accuracy::validation_stats`] of the combined rows.

pub mod network;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use space::{meta, Architecture, BlockSpec, LatencyTable, Metadata, SearchSpaceConfig};

use crate::analysis::accuracy::{validation_stats, Pair, ValidationStats};
use crate::analysis::rows;
pub use crate::analysis::rows::{read as read_rows, sha256_16, Row};
use crate::error::{bail, ensure, Context, ProfilerError, Result};
use crate::measure::engine::{
    Dtype, Engine, EngineConfig, EngineInfo, Launch, Layout, Workload, L2,
};
use crate::measure::monitor::Monitor;
use crate::measure::speed;
use crate::measure::timing::{time_workload, TimingFlags, TimingRule};

/// What `validate` is asked to do besides the table and the engine
/// settings, which each engine's command line resolves from the table
/// ([`resolve_settings`] for the settings every engine has).
#[derive(Clone, Debug)]
pub struct Request {
    /// How many networks to sample and measure.
    pub samples: usize,
    /// How many sweeps over the networks ([`Job::passes`]).
    pub passes: u32,
    /// Seed of the network sampler; network i of a seed is always the same.
    pub seed: u64,
    /// Sample widths on multiples of this; the table's width step if `None`
    /// ([`Sampling::new`]).
    pub width_multiple: Option<u32>,
    /// Where the rows go, one per network and pass (resumed when the file
    /// exists).
    pub out: Option<PathBuf>,
    /// Where the predicted-against-measured plot goes (.svg or .png).
    pub plot: Option<PathBuf>,
    pub timing: TimingFlags,
    /// The command line, for the rows' header.
    pub command: String,
}

/// Engine settings stated on the command line: each may fill in a setting
/// the table's header lacks, never change one it states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettingFlags {
    pub batch: Option<u32>,
    pub launch: Option<Launch>,
    pub l2: Option<L2>,
    pub dtype: Option<Dtype>,
    pub layout: Option<Layout>,
}

/// The settings a validation must time with, from the table's header and
/// the flags: a flag may fill in a setting the header lacks, never change
/// one it states.
pub fn resolve_settings(table: &LatencyTable, args: &SettingFlags) -> Result<EngineConfig> {
    fn pick<T: std::str::FromStr<Err = String> + ToString + Copy>(
        table: &LatencyTable,
        key: &'static str,
        flag: Option<T>,
        diffs: &mut Vec<String>,
        missing: &mut Vec<&'static str>,
    ) -> Result<Option<T>> {
        let header = match table.metadata().get(key) {
            Some(v) => Some(v.parse::<T>().map_err(|e| {
                ProfilerError::Invalid(format!("{}: header '{key}': {e}", table.origin()))
            })?),
            None => None,
        };
        match (header, flag) {
            (Some(h), Some(f)) if h.to_string() != f.to_string() => {
                diffs.push(format!(
                    "{key}: table '{}', flag '{}'",
                    h.to_string(),
                    f.to_string()
                ));
                Ok(None)
            }
            (Some(v), _) | (None, Some(v)) => Ok(Some(v)),
            (None, None) => {
                missing.push(key);
                Ok(None)
            }
        }
    }
    if table.batch() == 0 {
        bail!(
            "{}: the table has no rows and no batch line; there is nothing to validate",
            table.origin()
        );
    }
    let (mut diffs, mut missing) = (Vec::new(), Vec::new());
    if let Some(b) = args.batch {
        if b != table.batch() {
            diffs.push(format!("batch: table '{}', flag '{b}'", table.batch()));
        }
    }
    let launch = pick(table, meta::LAUNCH, args.launch, &mut diffs, &mut missing)?;
    let l2 = pick(table, meta::L2, args.l2, &mut diffs, &mut missing)?;
    let dtype = pick(table, meta::DTYPE, args.dtype, &mut diffs, &mut missing)?;
    let layout = pick(table, meta::LAYOUT, args.layout, &mut diffs, &mut missing)?;
    if !diffs.is_empty() {
        return Err(ProfilerError::FlagsDisagreeWithTable {
            table: table.origin().to_string(),
            diffs: diffs.join("; "),
        });
    }
    match (launch, l2, dtype, layout) {
        (Some(launch), Some(l2), Some(dtype), Some(layout)) => Ok(EngineConfig {
            batch: table.batch(),
            dtype,
            layout,
            launch,
            l2,
            seed: 0,
        }),
        _ => Err(ProfilerError::TableLacksSettings {
            table: table.origin().to_string(),
            keys: missing.join(", "),
            flags: missing
                .iter()
                .map(|k| format!("--{k}"))
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}

/// One sampled network, predicted.
#[derive(Clone, Debug)]
pub struct Network {
    pub index: u64,
    pub code: String,
    pub blocks: Vec<BlockSpec>,
    pub predicted_ms: f64,
}

/// Everything a validation run needs except the engine: the table's
/// identity, the settings, and the sampled networks with their predictions.
#[derive(Clone, Debug)]
pub struct Job {
    pub table_origin: String,
    /// The table's header, summarised into the rows file.
    pub table_header: Metadata,
    pub table_entries: usize,
    pub table_sha256: String,
    pub space: SearchSpaceConfig,
    pub config: EngineConfig,
    pub seed: u64,
    /// Every sampled width is a multiple of this (1: any width).
    pub width_multiple: u32,
    pub timing: TimingRule,
    /// Sweeps over the networks: each network is timed once per pass under
    /// `timing`, its passes far apart in time, and its time is their mean
    /// ([`rows::combine`]). On a machine whose speed wanders over tens of
    /// seconds (a VM's core) one long measurement of a network shares one
    /// stretch of that wandering; passes spread it, and their spread is the
    /// measurement's noise ([`rows::pass_noise`]). 1 unless set.
    pub passes: u32,
    pub command: String,
    pub networks: Vec<Network>,
    /// The table's `correction` line. Rows always hold the table's
    /// prediction without it (what `fit` fits); the report adds the
    /// corrected statistics.
    pub correction: Option<space::Correction>,
    /// The table's boundary (`space::LatencyTable::boundary_ms`), already
    /// in the rows' predictions; the report also says how they fare
    /// without it.
    pub boundary_ms: f64,
    /// The table's speed reference ([`crate::measure::speed`]): when it
    /// has one, every run of a network is scaled to it, as the table's were.
    pub speed_reference_ms: Option<f64>,
}

/// Which networks a validation samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// Network i of a seed is always the same.
    pub seed: u64,
    pub samples: usize,
    /// Every width a multiple of this; 1 draws any width.
    pub width_multiple: u32,
}

impl Sampling {
    /// `--width-multiple` when given, else the table's `width_step` (the
    /// searcher's default: the networks it derives from this table), else 1.
    pub fn new(
        table: &LatencyTable,
        seed: u64,
        samples: usize,
        width_multiple: Option<u32>,
    ) -> Self {
        let from_table = table
            .metadata()
            .get(meta::WIDTH_STEP)
            .and_then(|w| w.parse().ok());
        Sampling {
            seed,
            samples,
            width_multiple: width_multiple.or(from_table).unwrap_or(1).max(1),
        }
    }
}

/// More networks than anyone times on a GPU; the cap keeps a typo from
/// sampling and predicting for minutes before failing.
pub const MAX_SAMPLES: usize = 100_000;

impl Job {
    /// Samples `samples` networks of `space` with `seed` and predicts each
    /// with `table`; refuses a table of another space and one that cannot
    /// predict every sampled network (naming the missing keys).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        table: &LatencyTable,
        table_sha256: String,
        space: SearchSpaceConfig,
        config: EngineConfig,
        sampling: Sampling,
        timing: TimingRule,
        command: String,
    ) -> Result<Job> {
        let Sampling {
            seed,
            samples,
            width_multiple,
        } = sampling;
        if !(1..=MAX_SAMPLES).contains(&samples) {
            bail!("--samples must be a number in [1, {MAX_SAMPLES}], got {samples}");
        }
        if let Some(digest) = table.metadata().get(meta::SPACE_DIGEST) {
            if digest != space.digest() {
                bail!(
                    "{}: the table was built for space digest {digest}, but the space '{}' has digest {}; pass the table's space with --space",
                    table.origin(),
                    space.name,
                    space.digest()
                );
            }
        }
        let mut networks = Vec::with_capacity(samples);
        let mut missing: Vec<String> = Vec::new();
        let mut unpredictable = 0;
        for index in 0..samples as u64 {
            let arch = Architecture::sample_nth_on(&space, seed, index, width_multiple)?;
            let blocks = arch.block_specs()?;
            match table.predict_blocks(&blocks) {
                Ok(p) => networks.push(Network {
                    index,
                    code: arch.code(),
                    blocks,
                    predicted_ms: p.total_ms,
                }),
                Err(space::SpaceError::MissingEntries { keys }) => {
                    unpredictable += 1;
                    for k in keys {
                        if !missing.contains(&k) {
                            missing.push(k);
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !missing.is_empty() {
            const SHOWN: usize = 20;
            bail!(
                "{}: the table cannot predict {unpredictable} of the {samples} sampled networks; it lacks {} entr{}: {}{} (build the whole table first; nothing was measured)",
                table.origin(),
                missing.len(),
                if missing.len() == 1 { "y" } else { "ies" },
                missing[..missing.len().min(SHOWN)].join(", "),
                if missing.len() > SHOWN { ", ..." } else { "" }
            );
        }
        Ok(Job {
            table_origin: table.origin().to_string(),
            table_header: table.metadata().clone(),
            table_entries: table.len(),
            table_sha256,
            space,
            config,
            seed,
            width_multiple,
            timing,
            passes: 1,
            command,
            networks,
            correction: table.correction(),
            boundary_ms: table.boundary_ms(),
            speed_reference_ms: table.speed_reference_ms(),
        })
    }

    /// The job with [`Job::passes`] set, refused outside 1 to
    /// [`rows::MAX_PASSES`].
    pub fn with_passes(self, passes: u32) -> Result<Job> {
        if !(1..=rows::MAX_PASSES).contains(&passes) {
            bail!(
                "--passes must be a number in [1, {}], got {passes}",
                rows::MAX_PASSES
            );
        }
        Ok(Job { passes, ..self })
    }

    /// The rows file's header: the table's identity and fingerprint summary,
    /// the measuring device and the settings.
    pub fn header(&self, info: &EngineInfo, started: &str) -> Metadata {
        use rows::keys;
        let t = |k: &str| self.table_header.get(k).unwrap_or("(unknown)").to_string();
        let c = &self.config;
        let mut m = Metadata::new();
        m.set(meta::FORMAT, rows::FORMAT)
            .set(keys::TABLE, &self.table_origin)
            .set(keys::TABLE_SHA256, &self.table_sha256)
            .set(keys::TABLE_DEVICE_NAME, t(meta::DEVICE_NAME))
            .set(keys::TABLE_DEVICE_UUID, t(meta::DEVICE_UUID))
            .set(keys::TABLE_ENGINE, t(meta::ENGINE))
            .set(keys::TABLE_STARTED, t(meta::STARTED))
            .set(keys::TABLE_FINISHED, t(meta::FINISHED))
            .set(keys::TABLE_ENTRIES, self.table_entries);
        crate::measure::engine::set_measurement_lines(&mut m, info, c)
            .set(meta::SPACE, &self.space.name)
            .set(meta::SPACE_DIGEST, self.space.digest())
            .set(keys::SEED, self.seed)
            .set(keys::WIDTH_MULTIPLE, self.width_multiple)
            .set(keys::TIMING, self.timing.describe())
            .set(meta::PROFILER_VERSION, env!("CARGO_PKG_VERSION"))
            .set(meta::COMMAND, &self.command)
            .set(meta::STARTED, started);
        if let Some(r) = self.speed_reference_ms {
            m.set(speed::REFERENCE_KEY, format!("{r:.6}")).set(
                speed::REFERENCE_NOTE_KEY,
                "the table's: each run's time scaled by it over the fixed parts' time in that run (measured_ms is at the reference speed)",
            );
        }
        m
    }
}

/// What the engine runs with, against what the job needs; refuses any
/// difference, naming the keys.
fn check_engine(job: &Job, engine: &dyn Engine) -> Result<()> {
    let (want, got) = (&job.config, engine.config());
    let pairs = [
        (meta::BATCH, want.batch.to_string(), got.batch.to_string()),
        (
            meta::LAUNCH,
            want.launch.to_string(),
            got.launch.to_string(),
        ),
        (meta::L2, want.l2.to_string(), got.l2.to_string()),
        (meta::DTYPE, want.dtype.to_string(), got.dtype.to_string()),
        (
            meta::LAYOUT,
            want.layout.to_string(),
            got.layout.to_string(),
        ),
    ];
    let diffs: Vec<String> = pairs
        .iter()
        .filter(|(_, w, g)| w != g)
        .map(|(k, w, g)| format!("{k}: table '{w}', engine '{g}'"))
        .collect();
    if !diffs.is_empty() {
        return Err(ProfilerError::FlagsDisagreeWithTable {
            table: job.table_origin.clone(),
            diffs: diffs.join("; "),
        });
    }
    Ok(())
}

/// Measures every pass of every network of `job` not already in `out`,
/// pass after pass, and returns the rows of them all (the file's first),
/// one per network and pass: [`report`] and [`plot`] combine them. Generic
/// over the engine so the whole flow (settings check, resume, rows) runs
/// in tests without a GPU.
pub fn run_validation(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    job: &Job,
    out: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Row>> {
    check_engine(job, engine)?;
    let table_device = job.table_header.get(meta::DEVICE_UUID);
    if table_device.is_some_and(|u| u != engine.info().device_uuid) {
        log(&format!(
            "note: the table was measured on {} ({}), this run measures on {} ({}); the errors include the difference between the devices",
            job.table_header.get(meta::DEVICE_NAME).unwrap_or("?"),
            table_device.unwrap_or("?"),
            engine.info().device_name,
            engine.info().device_uuid
        ));
    }
    let header = job.header(engine.info(), &crate::files::timestamp::now_rfc3339());
    let expected = |row: &Row| -> Result<()> {
        let want =
            Architecture::sample_nth_on(&job.space, job.seed, row.index, job.width_multiple)?
                .code();
        ensure!(
            row.seed == job.seed && row.arch == want,
            "row {} holds network '{}' of seed {}, but seed {} samples '{want}' there",
            row.index,
            row.arch,
            row.seed,
            job.seed
        );
        Ok(())
    };
    let (mut writer, mut rows) = match out {
        Some(path) => {
            let keys = engine
                .info()
                .resume_keys(&rows::RESUME_FIRST, &rows::RESUME_THEN);
            let (w, r) = rows::RowsWriter::open(path, &header, &keys, expected, log)?;
            (Some(w), r)
        }
        None => (None, Vec::new()),
    };
    let done: std::collections::HashSet<(u64, u32)> =
        rows.iter().map(|r| (r.index, r.pass)).collect();
    let todo = job.passes as usize * job.networks.len();
    let kept = (0..job.passes)
        .flat_map(|p| job.networks.iter().map(move |n| (n.index, p)))
        .filter(|k| done.contains(k))
        .count();
    if kept > 0 {
        log(&format!(
            "resuming: {kept} of {todo} network passes already measured"
        ));
    }
    for pass in 0..job.passes {
        for net in &job.networks {
            if done.contains(&(net.index, pass)) {
                continue;
            }
            let row = measure_pass(engine, monitor, job, net, pass, log)?;
            if let Some(w) = writer.as_mut() {
                w.write(&row)?;
            }
            rows.push(row);
        }
    }
    if let Some(w) = writer {
        let mut trailing = Metadata::new();
        trailing.set(meta::FINISHED, crate::files::timestamp::now_rfc3339());
        w.finish(&trailing)?;
    }
    let held = rows.len();
    rows.retain(|r| r.index < job.networks.len() as u64 && r.pass < job.passes);
    if rows.len() < held {
        log(&format!(
            "the file holds {held} network passes; reporting the {} of this run's {} networks and {} passes",
            rows.len(),
            job.networks.len(),
            job.passes
        ));
    }
    Ok(rows)
}

/// Times pass `pass` of one network of `job`, logs it and returns its row.
fn measure_pass(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    job: &Job,
    net: &Network,
    pass: u32,
    log: &mut dyn FnMut(&str),
) -> Result<Row> {
    let workload = Workload::Network {
        name: format!("sample {} of seed {}", net.index, job.seed),
        blocks: net.blocks.clone(),
    };
    let (row, raw) = measure_row(engine, monitor, job, net, pass, &workload)?;
    let of_passes = if job.passes > 1 {
        format!("pass {}/{}, ", pass + 1, job.passes)
    } else {
        String::new()
    };
    log(&format!(
        "{of_passes}{}/{}: predicted {:.4} ms, measured {:.4} ms ({:+.2}%){}{}",
        net.index + 1,
        job.networks.len(),
        row.predicted_ms,
        row.measured_ms,
        row.error_pct(),
        raw,
        if row.throttled { ", THROTTLED" } else { "" }
    ));
    Ok(row)
}

/// Times pass `pass` of one network of `job` (at the table's speed
/// reference when it has one) and returns its row and, for the log, what
/// the raw times were.
fn measure_row(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    job: &Job,
    net: &Network,
    pass: u32,
    workload: &Workload,
) -> Result<(Row, String)> {
    let (s, throttled, raw) = match job.speed_reference_ms {
        Some(reference) => {
            let t = speed::time_at_reference(
                engine,
                workload,
                job.timing.warmup,
                &job.timing.stop,
                reference,
            )?;
            let raw = format!(
                " at the table's speed (raw {:.4} ms, the machine at {:.3}x the table's reference speed)",
                t.raw.median,
                t.factor
            );
            (t.scaled, false, raw)
        }
        None => {
            let timed = time_workload(engine, monitor, workload, &job.timing)?;
            let throttled = timed.throttled();
            (timed.summary, throttled, String::new())
        }
    };
    let row = Row {
        index: net.index,
        pass,
        seed: job.seed,
        predicted_ms: net.predicted_ms,
        measured_ms: s.median,
        measured_p10_ms: s.p10,
        measured_p90_ms: s.p90,
        samples: s.samples,
        throttled,
        arch: net.code.clone(),
    };
    Ok((row, raw))
}

/// The statistics of `rows`, one per network ([`rows::combine`]).
pub fn stats(rows: &[Row]) -> Result<ValidationStats> {
    let pairs: Vec<Pair> = rows
        .iter()
        .map(|r| Pair::new(r.predicted_ms, r.measured_ms))
        .collect();
    validation_stats(&pairs)
}

/// The JSON report: the statistics and, after two passes or more, the
/// measurement's own noise.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    stats: &'a ValidationStats,
    pass_noise: Option<rows::PassNoise>,
}

/// What `validate` prints on stdout, for every engine's command line: the
/// statistics of `rows` (every pass of every network, as
/// [`run_validation`] returns them) as JSON, or the readable report.
pub fn report(job: &Job, device: &str, rows: &[Row], json: bool) -> Result<String> {
    let networks = rows::combine(rows);
    let s = stats(&networks)?;
    let noise = rows::pass_noise(rows);
    if json {
        let text = serde_json::to_string_pretty(&JsonReport {
            stats: &s,
            pass_noise: noise,
        })
        .map_err(|e| ProfilerError::Invalid(format!("cannot write the report as JSON: {e}")))?;
        return Ok(text + "\n");
    }
    let mut text = render_text(job, device, &networks, &s);
    if let Some(n) = noise {
        use std::fmt::Write as _;
        let _ = writeln!(
            text,
            "measurement noise: one pass of a network strays {:.2}% (sd, pooled over {} networks) from the mean of its {} passes, so each network's time carries about ±{:.2}% (sd) of noise, inside the errors above",
            n.sd_pct,
            n.networks,
            n.passes,
            n.combined_sd_pct()
        );
    }
    Ok(text)
}

/// The readable report.
pub fn render_text(job: &Job, device: &str, rows: &[Row], s: &ValidationStats) -> String {
    use std::fmt::Write as _;
    let c = &job.config;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "validated {} networks of space '{}' (seed {}, {}) against {} on {device}, batch {}, launch {}, l2 {}, {} {}{}",
        s.count, job.space.name, job.seed,
        match job.width_multiple {
            1 => "any width".to_string(),
            m => format!("widths on multiples of {m}"),
        },
        job.table_origin, c.batch, c.launch, c.l2, c.dtype, c.layout,
        if job.speed_reference_ms.is_some() { ", at the table's speed reference" } else { "" }
    );
    // Each estimate with its 95% interval: 20 networks leave the goal's
    // numbers far less certain than their decimals suggest.
    let ci = |c: Option<(f64, f64)>, sign: bool| match c {
        Some((lo, hi)) if sign => format!(" (95% CI {lo:+.3}..{hi:+.3}%)"),
        Some((lo, hi)) => format!(" (95% CI {lo:.3}..{hi:.3}%)"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "MAPE {:.3}%, median |error| {:.3}%{}, RMSE {:.4} ms, mean signed error {:+.3}%{} ({:+.4} ms), Kendall tau {}",
        s.mape_pct,
        s.median_ape_pct,
        ci(s.median_ape_ci_pct, false),
        s.rmse_ms,
        s.mean_signed_error_pct,
        ci(s.mean_signed_error_ci_pct, true),
        s.mean_signed_error_ms,
        s.kendall_tau.map_or("n/a".into(), |t| format!("{t:.4}"))
    );
    let bands: Vec<String> = s
        .bands
        .iter()
        .map(|b| {
            format!(
                "±{}%: {:.1}% ({:.1}..{:.1}%)",
                b.within_pct,
                b.share * 100.0,
                b.share_ci.0 * 100.0,
                b.share_ci.1 * 100.0
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "within {} (shares with their 95% Wilson intervals)",
        bands.join(", ")
    );
    let w = &s.worst;
    let _ = writeln!(
        out,
        "worst: network {} predicted {:.4} ms, measured {:.4} ms ({:+.2}%): {}",
        rows[w.index].index, w.predicted_ms, w.measured_ms, w.error_pct, rows[w.index].arch
    );
    render_other_predictions(&mut out, job, rows);
    let throttled = rows.iter().filter(|r| r.throttled).count();
    if throttled > 0 {
        let _ = writeln!(
            out,
            "{throttled} networks were measured while the GPU throttled"
        );
    }
    out
}

/// The same rows under other predictions: the table's correction on top
/// of its own, and the plain sum of medians (no boundary taken off).
fn render_other_predictions(out: &mut String, job: &Job, rows: &[Row]) {
    use std::fmt::Write as _;
    let mut other = |what: String, predict: &dyn Fn(&Row) -> f64| {
        let pairs: Vec<Pair> = rows
            .iter()
            .map(|r| Pair::new(predict(r).max(0.0), r.measured_ms))
            .collect();
        if let Ok(cs) = validation_stats(&pairs) {
            let within3 = cs.bands.iter().find(|b| b.within_pct == 3.0);
            let _ = writeln!(
                out,
                "{what}: MAPE {:.3}%, median |error| {:.3}%, mean signed error {:+.3}%, within ±3%: {:.1}%",
                cs.mape_pct,
                cs.median_ape_pct,
                cs.mean_signed_error_pct,
                within3.map_or(f64::NAN, |b| b.share * 100.0)
            );
        }
    };
    if let Some(c) = job.correction {
        other(format!("with the table's correction ({c})"), &|r: &Row| {
            c.apply(r.predicted_ms)
        });
    }
    if job.boundary_ms > 0.0 {
        // Network i of the job is sample i (`Job::new`).
        let blocks = |r: &Row| {
            usize::try_from(r.index)
                .ok()
                .and_then(|i| job.networks.get(i))
                .map_or(0, |n| n.blocks.len())
        };
        other(
            format!(
                "as plain sums of medians (without the table's boundary of {:.4} ms per block but one)",
                job.boundary_ms
            ),
            &|r: &Row| r.predicted_ms + blocks(r).saturating_sub(1) as f64 * job.boundary_ms,
        );
    }
}

/// Draws predicted (y) against measured (x) latency, one point per
/// network (its passes combined).
pub fn plot(path: &Path, rows: &[Row]) -> Result<()> {
    let points: Vec<crate::analysis::plot::Point> = rows::combine(rows)
        .iter()
        .map(|r| crate::analysis::plot::Point {
            group: if r.throttled { "throttled" } else { "network" }.into(),
            a_ms: r.measured_ms,
            b_ms: r.predicted_ms,
        })
        .collect();
    crate::analysis::plot::scatter(
        path,
        &points,
        "Sampled networks: table prediction against end-to-end time, ms",
        "measured end to end (ms)",
        "predicted by the table (ms)",
    )
}

impl Request {
    /// Checks what needs neither the table nor an engine: the sample count
    /// and the output paths.
    pub fn check_paths(&self) -> Result<()> {
        if !(1..=MAX_SAMPLES).contains(&self.samples) {
            bail!(
                "--samples must be a number in [1, {MAX_SAMPLES}], got {}",
                self.samples
            );
        }
        if let Some(p) = &self.plot {
            crate::analysis::plot::check_plot_path(p)?;
        }
        if let Some(p) = &self.out {
            crate::files::resume::check_out_folder("--out", p)?;
        }
        Ok(())
    }

    /// The job on `table` (read by [`read_table`], with its hash) under
    /// `config`: every network sampled and predicted, so that the caller
    /// opens an engine only for a job that can run.
    pub fn job(
        &self,
        table: &LatencyTable,
        table_sha256: String,
        space: SearchSpaceConfig,
        config: EngineConfig,
    ) -> Result<Job> {
        let timing = self.timing.rule()?;
        Job::new(
            table,
            table_sha256,
            space,
            config,
            Sampling::new(table, self.seed, self.samples, self.width_multiple),
            timing,
            self.command.clone(),
        )?
        .with_passes(self.passes)
    }
}

/// The table at `path` and the hash of its bytes, from one read, so that
/// the rows name exactly the table they were predicted with.
pub fn read_table(path: &Path) -> Result<(LatencyTable, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table = LatencyTable::parse(&text, &path.display().to_string())?;
    Ok((table, sha256_16(text.as_bytes())))
}
