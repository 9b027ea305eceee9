//! Building a latency table: every block of the space's plan, timed by an
//! [`Engine`], written row by row (each flushed) under a fingerprint header.
//!
//! With an output file the build resumes: a rerun with the same settings
//! keeps what is there and times only the rest, so a run killed at any
//! moment loses at most the entry in flight; a rerun with other settings
//! refuses to append, because a table that mixes two setups is silently
//! wrong.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use space::TableWriter;
use space::{
    meta, BlockSpec, Entry, LatencyTable, Metadata, SearchSpaceConfig, TablePlan, WidthModel,
};

use crate::error::{ProfilerError, Result};
use crate::files::resume::{
    cut_truncated_line, header_key, header_value, replace_file, settings_diffs,
};
use crate::files::timestamp::now_rfc3339;
use crate::measure::boundary::Boundary;
use crate::measure::engine::{Engine, EngineConfig, EngineInfo, Workload};
use crate::measure::monitor::{settings_changes, ClockRange, Monitor};
use crate::measure::speed;
use crate::measure::timing::{time_workload, TimingRule};
use crate::table::entry::entry;
use crate::table::in_network::{reference_network, time_in_networks, InNetwork};
use crate::table::progress::Progress;

/// Header line with the timing rule (informative; not compared on resume).
pub const TIMING_KEY: &str = "timing";

/// Header line saying how entries were timed inside networks (informative:
/// the engine's own lines, a CPU table's `cache: network`, are compared).
pub const IN_NETWORK_KEY: &str = "in_network";

/// The header keys that must match for a run of an engine described by
/// `info` to append to an existing table: everything that changes what a
/// latency means, the engine's own keys last. Timestamps, the command line,
/// the timing rule and the clocks seen may differ.
pub fn resume_keys(info: &EngineInfo) -> Vec<&'static str> {
    info.resume_keys(
        &[meta::FORMAT, meta::DEVICE_NAME],
        &[meta::WIDTH_STEP, meta::SPACE_DIGEST, meta::PROBE_OF],
    )
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildSettings {
    pub space: SearchSpaceConfig,
    pub width_step: u32,
    pub timing: TimingRule,
    /// The command line, for the header.
    pub command: String,
    /// Time at most this many entries in this run; the table then stays
    /// unfinished, for a later run to resume.
    pub limit: Option<usize>,
    /// Time the entries inside networks of the space instead of alone
    /// ([`crate::table::in_network`]); needs an engine that can time blocks
    /// inside a run.
    pub in_network: Option<InNetwork>,
    /// Time only these keys (a probe for `profiler transfer`), not the
    /// whole plan.
    pub probe: Option<ProbeKeys>,
}

/// A probe build: the keys of another device's table that `profiler
/// probe` chose, timed on this engine's device into a table of their own
/// (docs/transfer.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeKeys {
    /// In the reference's order. Keys the plan lacks (another width step)
    /// join it, so that a network of the space can hold them.
    pub keys: Vec<BlockSpec>,
    /// The `probe_of` header line: which table, of which device, how many.
    pub of: String,
}

/// The fingerprint header of a new table.
pub fn fingerprint(
    info: &EngineInfo,
    config: &EngineConfig,
    settings: &BuildSettings,
    started: &str,
) -> Metadata {
    let mut m = Metadata::new();
    m.set(meta::FORMAT, space::table::FORMAT);
    crate::measure::engine::set_measurement_lines(&mut m, info, config)
        .set(meta::WIDTH_STEP, settings.width_step)
        .set(meta::WIDTH_MODEL, width_model(info).describe())
        .set(meta::CURVE_FIT, info.curve_fit.describe())
        .set(meta::SPACE, &settings.space.name)
        .set(meta::SPACE_DIGEST, settings.space.digest())
        .set(TIMING_KEY, settings.timing.describe())
        .set(meta::PROFILER_VERSION, env!("CARGO_PKG_VERSION"))
        .set(meta::COMMAND, &settings.command)
        .set(meta::STARTED, started);
    if let Some(how) = &settings.in_network {
        m.set(IN_NETWORK_KEY, how.describe());
    }
    if let Some(probe) = &settings.probe {
        m.set(meta::PROBE_OF, &probe.of);
    }
    m
}

/// How a table built by an engine described by `info` prices widths it
/// did not measure: `align N` where its kernels pad channels to N (its
/// plan then holds the probes that model needs), linear otherwise.
pub fn width_model(info: &EngineInfo) -> WidthModel {
    info.width_align
        .map_or(WidthModel::Linear, |multiple| WidthModel::Align {
            multiple,
        })
}

/// What a build did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildReport {
    pub planned: usize,
    /// Entries already in the output file.
    pub skipped: usize,
    pub measured: usize,
    /// Entries timed twice because the GPU throttled during the first try.
    pub remeasured: usize,
    /// Entries written with the throttled flag (throttled on both tries).
    pub throttled: usize,
    pub seconds: f64,
    pub clocks: ClockRange,
    /// Whether every planned entry is now in the table (`finished` written).
    pub complete: bool,
}

/// Where the rows go.
pub enum Output<'a> {
    /// A stream (stdout): a complete table every time, no resume.
    Stream(&'a mut dyn Write),
    /// A file, resumed when it exists.
    File(&'a Path),
}

impl Output<'_> {
    /// The file's path; `None` for a stream.
    fn path(&self) -> Option<std::path::PathBuf> {
        match self {
            Output::File(path) => Some(path.to_path_buf()),
            Output::Stream(_) => None,
        }
    }
}

/// An existing output file, made ready to append to.
struct Resumed {
    done: HashSet<BlockSpec>,
    clocks: ClockRange,
    /// The file's `gpu_settings` line, if it has one.
    gpu_settings: Option<String>,
    /// The file's `boundary_ms`, if it has the line.
    boundary_ms: Option<f64>,
    /// The file's `speed_reference_ms`, if it has the line.
    speed_reference_ms: Option<f64>,
    /// What was cut or dropped, for the log.
    notes: Vec<String>,
}

/// Reads `path` for a resume. `Ok(None)` when there is nothing to keep (no
/// file, an empty one, or one killed before its column header was written).
/// Otherwise the file is rewritten without a truncated last line and
/// without the trailing `clocks`/`finished` lines of an earlier run, and its
/// settings are compared with `header`.
fn prepare_resume(path: &Path, header: &Metadata, keys: &[&str]) -> Result<Option<Resumed>> {
    let origin = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ProfilerError::io(path, e)),
    };
    let mut notes = Vec::new();
    // A kill mid-write leaves a last line without its newline: cut it.
    let (complete, cut) = cut_truncated_line(&text);
    if let Some(cut) = cut {
        notes.push(format!(
            "dropped a truncated last line ('{}')",
            cut.trim_end()
        ));
    }
    let mut clocks = ClockRange::default();
    let mut kept = String::with_capacity(complete.len());
    for line in complete.lines() {
        match header_key(line) {
            Some(meta::FINISHED) => continue,
            Some(meta::CLOCKS) => {
                if let Some(c) = ClockRange::parse(header_value(line)) {
                    clocks.merge(&c);
                }
                continue;
            }
            _ => {}
        }
        kept.push_str(line);
        kept.push('\n');
    }
    let has_columns = kept
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    if !has_columns {
        // Nothing measured yet: only a (partial) header or nothing at all.
        let ours = kept.trim().is_empty()
            || kept.lines().any(|l| {
                header_key(l) == Some(meta::FORMAT) && header_value(l) == space::table::FORMAT
            });
        return if ours {
            Ok(None)
        } else {
            Err(ProfilerError::CannotResume {
                path: origin,
                reason: "it is not a latency table; refusing to overwrite it".into(),
            })
        };
    }
    let table = LatencyTable::parse(&kept, &origin).map_err(|e| ProfilerError::CannotResume {
        path: origin.clone(),
        reason: e.to_string(),
    })?;
    let diffs = settings_diffs(keys, table.metadata(), header);
    if !diffs.is_empty() {
        return Err(ProfilerError::SettingsDiffer {
            path: origin,
            diffs: diffs.join("; "),
        });
    }
    if kept != text {
        replace_file(path, &kept)?;
    }
    Ok(Some(Resumed {
        done: table.entries().iter().map(|e| e.spec).collect(),
        clocks,
        boundary_ms: table.header_boundary_ms(),
        speed_reference_ms: table.speed_reference_ms(),
        gpu_settings: table.metadata().get(meta::GPU_SETTINGS).map(str::to_string),
        notes,
    }))
}

/// Measures a new table's boundary, logs it and puts it in `header`.
fn new_boundary(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    settings: &BuildSettings,
    header: &mut Metadata,
    progress: &dyn Progress,
) -> Result<Boundary> {
    let boundary = Boundary::measure(engine, monitor, &settings.timing)?;
    progress.log(&format!(
        "boundary of a timed run: {:.4} ms (95% CI {:.4}..{:.4}), {:.4} ms per empty kernel{}",
        boundary.ms,
        boundary.ci_low,
        boundary.ci_high,
        boundary.per_kernel_ms,
        if boundary.throttled {
            "; the GPU throttled meanwhile"
        } else {
            ""
        }
    ));
    boundary.set_header(header);
    Ok(boundary)
}

/// What every entry of a build is measured against: the boundary, the
/// speed reference of a `network` table, and the GPU states the probe saw.
struct Baseline {
    reference_ms: Option<f64>,
    boundary_ms: f64,
    probe_states: Vec<crate::measure::monitor::GpuState>,
}

/// A new table's boundary (or, for a `network` table, its speed reference
/// and a boundary of 0) is measured once, before any entry, into `header`;
/// a resume keeps the file's and refuses a `network` file without a
/// reference.
#[allow(clippy::too_many_arguments)]
fn baseline(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    settings: &BuildSettings,
    plan: &TablePlan,
    output: &Output<'_>,
    resumed: &Option<Resumed>,
    header: &mut Metadata,
    progress: &dyn Progress,
) -> Result<Baseline> {
    let mut probe_states = Vec::new();
    let reference_ms =
        match (&settings.in_network, resumed, output) {
            (None, _, _) => None,
            (Some(_), Some(r), Output::File(path)) => Some(r.speed_reference_ms.ok_or_else(
                || ProfilerError::CannotResume {
                    path: path.display().to_string(),
                    reason: format!("it has no '{}' line", speed::REFERENCE_KEY),
                },
            )?),
            (Some(_), _, _) => Some(new_reference(engine, settings, plan, header, progress)?),
        };
    let boundary_ms = match resumed {
        Some(r) => r.boundary_ms.unwrap_or(0.0),
        None if settings.in_network.is_some() => {
            header.set(meta::BOUNDARY_MS, "0").set(
                meta::BOUNDARY,
                "0: entries timed inside networks, between two readings of one clock, carry no start or end of a run",
            );
            0.0
        }
        None => {
            let boundary = new_boundary(engine, monitor, settings, header, progress)?;
            probe_states = boundary.states;
            boundary.ms
        }
    };
    Ok(Baseline {
        reference_ms,
        boundary_ms,
        probe_states,
    })
}

/// Measures a new in-network table's speed reference
/// ([`crate::measure::speed`]), logs it and puts it in `header`.
fn new_reference(
    engine: &mut dyn Engine,
    settings: &BuildSettings,
    plan: &TablePlan,
    header: &mut Metadata,
    progress: &dyn Progress,
) -> Result<f64> {
    let blocks = reference_network(&settings.space, plan)?;
    let c = speed::calibrate(engine, &blocks, settings.timing.warmup, &speed::CALIBRATION)?;
    let s = &c.fixed;
    progress.log(&format!(
        "speed reference: the fixed parts take {:.4} ms (95% CI {:.4}..{:.4}) in a full-depth network, the whole network {:.4} ms; every run is scaled to it",
        s.median, s.ci_low, s.ci_high, c.standard_ms
    ));
    let keys: Vec<String> = blocks.iter().map(BlockSpec::key).collect();
    header
        .set(speed::REFERENCE_KEY, format!("{:.6}", s.median))
        .set(
            speed::REFERENCE_NOTE_KEY,
            format!(
                "median time of the fixed parts (stem, second stem, head) over {} runs of a full-depth network (95% CI {:.6}..{:.6} ms); each run's times are scaled by it over the fixed parts' time in that run",
                s.samples, s.ci_low, s.ci_high
            ),
        )
        .set(meta::SPEED_STANDARD_MS, format!("{:.6}", c.standard_ms))
        .set(meta::SPEED_STANDARD_NETWORK, keys.join(" "));
    Ok(s.median)
}

/// Says on stderr what a resumed file lacks or what changed since it began.
fn log_resume_notes(path: &Path, r: &Resumed, gpu_settings: &str, progress: &dyn Progress) {
    if r.boundary_ms.is_none() {
        progress.log(
            &format!(
                "{}: no boundary line (a table begun before the profiler measured one): its blocks stay priced at their medians",
                path.display()
            ),
        );
    }
    let changes = r
        .gpu_settings
        .as_deref()
        .map_or_else(Vec::new, |then| settings_changes(then, gpu_settings));
    if !changes.is_empty() {
        progress.log(
            &format!(
                "warning: {}: the GPU's settings changed since the table began ({}); the new entries are measured under the new ones",
                path.display(),
                changes.join(", ")
            ),
        );
    }
}

/// The table's rows, going to a file or a stream.
type Writer<'a> = TableWriter<Box<dyn Write + 'a>>;

/// Opens the table's writer on `output`: a new table gets `header`, a
/// resumed file its notes logged and the resume line appended. Returns the
/// writer and the entries already in the file; `report` takes the file's
/// clocks.
fn open_writer<'a>(
    output: Output<'a>,
    resumed: Option<Resumed>,
    header: &Metadata,
    gpu_settings: &str,
    report: &mut BuildReport,
    progress: &dyn Progress,
) -> Result<(Writer<'a>, HashSet<BlockSpec>)> {
    let mut done = HashSet::new();
    let writer: Writer<'a> = match (output, resumed) {
        (Output::Stream(w), _) => TableWriter::new(Box::new(w) as Box<dyn Write + 'a>, header)?,
        (Output::File(path), Some(resumed)) => {
            for note in &resumed.notes {
                progress.log(&format!("{}: {note}", path.display()));
            }
            done = resumed.done;
            report.clocks = resumed.clocks;
            let mut file = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| ProfilerError::io(path, e))?;
            writeln!(file, "# resumed {} ({gpu_settings})", now_rfc3339())
                .map_err(|e| ProfilerError::io(path, e))?;
            TableWriter::append(Box::new(file) as Box<dyn Write>)
        }
        (Output::File(path), None) => {
            let file = File::create(path).map_err(|e| ProfilerError::io(path, e))?;
            TableWriter::new(Box::new(file) as Box<dyn Write>, header)?
        }
    };
    Ok((writer, done))
}

/// Times one entry, counting its throttling in `report`; refuses a median
/// at or below the boundary before its row is written.
#[allow(clippy::too_many_arguments)]
fn time_entry(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    spec: BlockSpec,
    settings: &BuildSettings,
    boundary_ms: f64,
    file_path: Option<&Path>,
    report: &mut BuildReport,
    progress: &dyn Progress,
) -> Result<Entry> {
    let batch = engine.config().batch;
    let timed = time_workload(engine, monitor, &Workload::Block(spec), &settings.timing)?;
    report.clocks.see(&timed.before);
    report.clocks.see(&timed.after);
    if timed.remeasured {
        report.remeasured += 1;
    }
    if timed.throttled() {
        report.throttled += 1;
        report.clocks.throttled_entries += 1;
        progress.log(&format!(
            "{spec}: throttled ({}; {})",
            timed.slowdowns.join(", "),
            timed.after
        ));
    }
    let s = &timed.summary;
    if boundary_ms > 0.0 && s.median <= boundary_ms {
        // Cannot be: a block does more than an empty run. The boundary
        // is wrong, and the reader would refuse the row.
        return Err(ProfilerError::BelowBoundary {
            block: spec.key(),
            median: s.median,
            boundary: boundary_ms,
            table: file_path
                .as_ref()
                .map_or("the table".into(), |p| p.display().to_string()),
        });
    }
    Ok(entry(spec, batch, s, timed.throttled()))
}

/// The planned entries this run times, in plan order: those not `done`,
/// at most `limit`; `report` learns how many were skipped and whether the
/// table will be complete.
fn to_do(
    plan: &[BlockSpec],
    done: &HashSet<BlockSpec>,
    limit: Option<usize>,
    report: &mut BuildReport,
    progress: &dyn Progress,
) -> Vec<BlockSpec> {
    let mut todo: Vec<BlockSpec> = plan
        .iter()
        .filter(|b| !done.contains(*b))
        .copied()
        .collect();
    report.skipped = plan.len() - todo.len();
    if let Some(limit) = limit {
        todo.truncate(limit);
    }
    report.complete = report.skipped + todo.len() == plan.len();
    if report.skipped > 0 {
        progress.log(&format!(
            "resuming: {} of {} entries already measured, {} to go",
            report.skipped,
            plan.len(),
            todo.len()
        ));
    }
    todo
}

/// Times the entries `todo`, inside networks or each alone as `settings`
/// say, and hands each to `write` as soon as it is final. Returns the rows
/// to put in place of those written to a file: entries timed inside
/// networks go on gathering samples as context after they are written
/// ([`crate::table::in_network`]). A stream cannot be rewritten, so there
/// such entries are written once, when the build ends.
#[allow(clippy::too_many_arguments)]
fn time_todo(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    settings: &BuildSettings,
    plan: &TablePlan,
    todo: Vec<BlockSpec>,
    (reference_ms, boundary_ms): (Option<f64>, f64),
    file_path: Option<&Path>,
    report: &mut BuildReport,
    progress: &dyn Progress,
    write: &mut dyn FnMut(&Entry) -> Result<()>,
) -> Result<Vec<Entry>> {
    if let Some(how) = &settings.in_network {
        let mut counted = |entry: Entry| {
            if file_path.is_some() {
                write(&entry)?;
            }
            report.measured += 1;
            Ok(())
        };
        let done = time_in_networks(
            engine,
            &settings.space,
            plan,
            &todo,
            &settings.timing,
            how,
            reference_ms,
            progress,
            &mut counted,
        )?;
        progress.log(&format!(
            "timed {} entries inside {} networks",
            done.written, done.networks
        ));
        if file_path.is_some() {
            return Ok(done.entries);
        }
        done.entries.iter().try_for_each(write)?;
        return Ok(Vec::new());
    }
    for spec in todo {
        progress.working_on(&spec.key());
        let entry = time_entry(
            engine,
            monitor,
            spec,
            settings,
            boundary_ms,
            file_path,
            report,
            progress,
        )?;
        write(&entry)?;
        report.measured += 1;
        progress.advance();
    }
    Ok(Vec::new())
}

/// Builds the table of `settings.space` with `engine` into `output`.
pub fn build_table(
    engine: &mut dyn Engine,
    monitor: &mut dyn Monitor,
    settings: &BuildSettings,
    output: Output<'_>,
    progress: &dyn Progress,
) -> Result<BuildReport> {
    let mut plan = settings
        .space
        .table_plan_aligned(settings.width_step, engine.info().width_align)?;
    let wanted = wanted_keys(&mut plan, settings.probe.as_ref());
    let mut header = fingerprint(engine.info(), engine.config(), settings, &now_rfc3339());
    let gpu_settings = monitor.settings().to_string();
    header.set(meta::GPU_SETTINGS, &gpu_settings);

    let mut report = BuildReport {
        planned: wanted.len(),
        ..BuildReport::default()
    };
    let resumed = match &output {
        Output::File(path) => prepare_resume(path, &header, &resume_keys(engine.info()))?,
        Output::Stream(_) => None,
    };
    let Baseline {
        reference_ms,
        boundary_ms,
        probe_states,
    } = baseline(
        engine,
        monitor,
        settings,
        &plan,
        &output,
        &resumed,
        &mut header,
        progress,
    )?;
    if let (Output::File(path), Some(r)) = (&output, &resumed) {
        log_resume_notes(path, r, &gpu_settings, progress);
    }
    let file_path = output.path();
    let (mut writer, done) = open_writer(
        output,
        resumed,
        &header,
        &gpu_settings,
        &mut report,
        progress,
    )?;
    for state in &probe_states {
        report.clocks.see(state);
    }
    let io_error = |e: space::SpaceError| match &file_path {
        Some(p) => ProfilerError::io(p, std::io::Error::other(e.to_string())),
        None => ProfilerError::Output(e.to_string()),
    };

    let todo = to_do(&wanted, &done, settings.limit, &mut report, progress);
    progress.start(wanted.len() as u64, report.skipped as u64);
    let start = Instant::now();
    let final_rows = time_todo(
        engine,
        monitor,
        settings,
        &plan,
        todo,
        (reference_ms, boundary_ms),
        file_path.as_deref(),
        &mut report,
        progress,
        &mut |entry| writer.write(entry).map_err(io_error),
    )?;
    report.seconds = start.elapsed().as_secs_f64();
    progress.finish();
    finish_table(writer, &report, wanted.len(), io_error, progress)?;
    put_in_place(file_path.as_deref(), &final_rows)?;
    Ok(report)
}

/// Rewrites the rows of `entries` in the table at `path` (write aside, then
/// rename), every other line as it is: the rows written early by a build
/// inside networks, replaced by the same entries with all their samples.
fn put_in_place(path: Option<&Path>, entries: &[Entry]) -> Result<()> {
    let Some(path) = path.filter(|_| !entries.is_empty()) else {
        return Ok(());
    };
    let io = |e: std::io::Error| ProfilerError::io(path, e);
    let row_error = |e: space::SpaceError| io(std::io::Error::other(e.to_string()));
    let mut rows = HashMap::new();
    for e in entries {
        let mut w = TableWriter::append(Vec::new());
        w.write(e).map_err(row_error)?;
        let row = w.finish(&Metadata::new()).map_err(row_error)?;
        rows.insert(e.spec.key(), String::from_utf8_lossy(&row).into_owned());
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let key = line.split(',').next().unwrap_or_default();
        match rows.get(key) {
            Some(row) if !line.starts_with('#') => out.push_str(row),
            _ => out.push_str(line),
        }
    }
    replace_file(path, &out)
}

/// The entries this table holds when complete: the plan's, or a probe's
/// keys (which then join the plan where it lacks them).
fn wanted_keys(plan: &mut TablePlan, probe: Option<&ProbeKeys>) -> Vec<BlockSpec> {
    let Some(probe) = probe else {
        return plan.blocks.clone();
    };
    let planned: HashSet<BlockSpec> = plan.blocks.iter().copied().collect();
    plan.blocks
        .extend(probe.keys.iter().filter(|k| !planned.contains(*k)));
    probe.keys.clone()
}

/// Closes a complete table with its trailing lines (the clocks seen, the
/// finish time); a table stopped at the limit stays unfinished, without
/// them, for a later run to resume.
fn finish_table(
    writer: Writer<'_>,
    report: &BuildReport,
    planned: usize,
    io_error: impl Fn(space::SpaceError) -> ProfilerError,
    progress: &dyn Progress,
) -> Result<()> {
    if !report.complete {
        progress.log(&format!(
            "stopped at the limit: {} of {} entries in the table, run again to go on",
            report.skipped + report.measured,
            planned
        ));
        return Ok(());
    }
    let mut trailing = Metadata::new();
    trailing
        .set(meta::CLOCKS, &report.clocks)
        .set(meta::FINISHED, now_rfc3339());
    writer.finish(&trailing).map_err(io_error)?;
    Ok(())
}

#[cfg(test)]
mod tests;
