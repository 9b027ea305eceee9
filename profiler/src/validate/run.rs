//! Measuring a job's networks in the engine, pass after pass, resuming the
//! rows file when there is one.

use std::path::Path;

use space::{meta, Architecture, Metadata};

use super::job::{check_engine, Job, Network};
use crate::analysis::rows::{self, Row};
use crate::error::{ensure, Result};
use crate::measure::engine::{Engine, Workload};
use crate::measure::monitor::Monitor;
use crate::measure::speed;
use crate::measure::timing::time_workload;

/// Measures every pass of every network of `job` not already in `out`,
/// pass after pass, and returns the rows of them all (the file's first),
/// one per network and pass: [`report`](super::report) and
/// [`plot`](super::plot) combine them. Generic over the engine so the
/// whole flow (settings check, resume, rows) runs in tests without a GPU.
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
