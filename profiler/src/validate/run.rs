//! Measuring a job's networks in the engine, pass after pass, resuming the
//! rows file when there is one.

use std::collections::HashSet;
use std::path::Path;

use space::{meta, Metadata};

use super::job::{check_engine, Job, Network};
use crate::analysis::rows::{self, Row};
use crate::error::{ensure, Result};
use crate::measure::engine::{Engine, EngineInfo, Workload};
use crate::measure::monitor::Monitor;
use crate::measure::speed;
use crate::measure::timing::time_workload;

/// Measures every pass of every network of `job` not already in `out`,
/// pass after pass, and returns the rows of them all (the file's first),
/// one per network and pass: [`report`](super::report) and
/// [`plot`](super::plot) combine them. `standard_engine` times the
/// table's speed standard in turns with each network when the job gauges
/// by it (an error otherwise). Generic over the engine so the
/// whole flow (settings check, resume, rows) runs in tests without a GPU.
pub fn run_validation(
    engine: &mut dyn Engine,
    mut standard_engine: Option<&mut dyn Engine>,
    monitor: &mut dyn Monitor,
    job: &Job,
    out: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Row>> {
    check_engine(job, engine)?;
    note_other_device(job, engine.info(), log);
    let (mut writer, mut rows) = open_rows(job, engine.info(), out, log)?;
    let done = already_measured(job, &rows, log);
    for pass in 0..job.passes {
        for net in &job.networks {
            if done.contains(&(net.index, pass)) {
                continue;
            }
            let standard = standard_engine.as_deref_mut();
            let row = measure_pass(engine, standard, monitor, job, net, pass, log)?;
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
    keep_this_run(job, &mut rows, log);
    Ok(rows)
}

/// Logs that the errors will include the difference between two devices
/// when the table names a device other than the engine's.
fn note_other_device(job: &Job, info: &EngineInfo, log: &mut dyn FnMut(&str)) {
    let table_device = job.table_header.get(meta::DEVICE_UUID);
    if table_device.is_some_and(|u| u != info.device_uuid) {
        log(&format!(
            "note: the table was measured on {} ({}), this run measures on {} ({}); the errors include the difference between the devices",
            job.table_header.get(meta::DEVICE_NAME).unwrap_or("?"),
            table_device.unwrap_or("?"),
            info.device_name,
            info.device_uuid
        ));
    }
}

/// The rows file at `out` opened to go on with, and the rows it already
/// holds, each checked to be the network `job` samples at its index (a row
/// of another seed or space would be reported as this job's); no writer
/// and no rows without `out`.
fn open_rows(
    job: &Job,
    info: &EngineInfo,
    out: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> Result<(Option<rows::RowsWriter>, Vec<Row>)> {
    let header = job.header(info, &crate::files::timestamp::now_rfc3339());
    let expected = |row: &Row| -> Result<()> {
        let want = job.expected_code(row.index)?;
        let there = match job.given {
            Some(_) => format!("this run's --arch gives '{want}' there"),
            None => format!("seed {} samples '{want}' there", job.seed),
        };
        ensure!(
            row.seed == job.seed && row.arch == want,
            "row {} holds network '{}' of seed {}, but {there}",
            row.index,
            row.arch,
            row.seed,
        );
        Ok(())
    };
    Ok(match out {
        Some(path) => {
            let keys = info.resume_keys(&rows::RESUME_FIRST, &rows::RESUME_THEN);
            let (w, r) = rows::RowsWriter::open(path, &header, &keys, expected, log)?;
            (Some(w), r)
        }
        None => (None, Vec::new()),
    })
}

/// The (network, pass) pairs `rows` already holds, to be skipped; logs how
/// many of this job's they are when there are any.
fn already_measured(job: &Job, rows: &[Row], log: &mut dyn FnMut(&str)) -> HashSet<(u64, u32)> {
    let done: HashSet<(u64, u32)> = rows.iter().map(|r| (r.index, r.pass)).collect();
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
    done
}

/// Drops the rows of networks and passes beyond this run's (a file from a
/// run with more samples or passes), saying so: the report covers this
/// run's networks only.
fn keep_this_run(job: &Job, rows: &mut Vec<Row>, log: &mut dyn FnMut(&str)) {
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
}

/// Times pass `pass` of one network of `job`, logs it and returns its row.
fn measure_pass(
    engine: &mut dyn Engine,
    // `+ '_`: the engine's own lifetime apart from this borrow's, so that
    // the caller lends it again for each pass.
    standard: Option<&mut (dyn Engine + '_)>,
    monitor: &mut dyn Monitor,
    job: &Job,
    net: &Network,
    pass: u32,
    log: &mut dyn FnMut(&str),
) -> Result<Row> {
    let workload = Workload::Network {
        name: job.name_of(net),
        blocks: net.blocks.clone(),
    };
    let (row, raw) = measure_row(engine, standard, monitor, job, net, pass, &workload)?;
    let of_passes = if job.passes > 1 {
        format!("pass {}/{}, ", pass + 1, job.passes)
    } else {
        String::new()
    };
    log(&format!(
        "{of_passes}{}/{}{}: predicted {:.4} ms, measured {:.4} ms ({:+.2}%){}{}",
        net.index + 1,
        job.networks.len(),
        match job.given {
            Some(_) => format!(" {}", job.name_of(net)),
            None => String::new(),
        },
        row.predicted_ms,
        row.measured_ms,
        row.error_pct(),
        raw,
        // A CPU row's unsteadiness is in its standard's note already.
        if row.throttled && job.gauge.is_none() {
            ", THROTTLED"
        } else {
            ""
        }
    ));
    Ok(row)
}

/// Times pass `pass` of one network of `job` (at the table's speed
/// reference when it has one) and returns its row and, for the log, what
/// the raw times were.
fn measure_row(
    engine: &mut dyn Engine,
    // `+ '_`: the engine's own lifetime apart from this borrow's, so that
    // the caller lends it again for each pass.
    standard: Option<&mut (dyn Engine + '_)>,
    monitor: &mut dyn Monitor,
    job: &Job,
    net: &Network,
    pass: u32,
    workload: &Workload,
) -> Result<(Row, String)> {
    let (s, throttled, raw, raw_ms) = match &job.gauge {
        Some(gauge) => {
            let t = speed::time_at_reference(
                engine,
                standard,
                workload,
                job.timing.warmup,
                &job.timing.stop,
                gauge,
            )?;
            let raw = format!(
                " at the table's speed (raw {:.4} ms, the machine at {:.3}x the table's reference speed{})",
                t.raw.median,
                t.factor,
                t.standard_note()
            );
            (t.scaled, t.unsteady(), raw, t.raw.median)
        }
        None => {
            let timed = time_workload(engine, monitor, workload, &job.timing)?;
            let throttled = timed.throttled();
            let median = timed.summary.median;
            (timed.summary, throttled, String::new(), median)
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
        raw_ms,
        arch: net.code.clone(),
    };
    Ok((row, raw))
}
