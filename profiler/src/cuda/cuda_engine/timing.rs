//! Timing a prepared workload: the spin before graph replays, the L2 flush
//! under `--l2 cold`, the events around the run, and the count of runs
//! that started late.

use super::*;

/// The spin's bound in SM clock cycles per nanosecond, in case
/// `%globaltimer` does not advance: eight cycles per nanosecond waits four
/// times as long at the H100's 1980 MHz, and is never reached while the
/// timer works.
const SPIN_CYCLES_PER_NS: i64 = 8;

impl CudaEngine {
    /// One timed run of the prepared workload (see [`Engine::run_timed`]).
    pub(super) fn timed_run(&mut self) -> Result<f64> {
        let prepared = self
            .prepared
            .as_ref()
            .ok_or_else(|| unsupported("timing before prepare".into()))?;
        let block = prepared.name.as_str();
        self.flush_l2().in_block(block)?;
        if prepared.graph.is_some() {
            // Eager runs keep the CPU's launch cost in the time: that is
            // what they are for. Graph runs should not include the CPU's
            // latency in submitting the graph.
            launch_spin(&self.stream, self.function("spin"), self.spin.ns(), 1).in_block(block)?;
        }
        self.start.record(&self.stream).in_block(block)?;
        match &prepared.graph {
            Some(graph) => graph.launch().in_block(block)?,
            None => self.launch_all(&prepared.steps, block)?,
        }
        self.end.record(&self.stream).in_block(block)?;
        // Graph runs: the start event must still be pending now that the
        // CPU has enqueued everything; if it is not, the spin was too short.
        let late = prepared.graph.is_some() && self.start.try_is_complete().in_block(block)?;
        self.end.synchronize().in_block(block)?;
        let ms = self.start.elapsed_ms(&self.end).in_block(block)?;
        self.runs += 1;
        if prepared.graph.is_some() {
            self.spin.after_run(late);
        }
        if late {
            self.late_runs += 1;
        }
        Ok(f64::from(ms))
    }
}

/// Keeps `blocks` one-thread blocks of the GPU busy for `ns` nanoseconds
/// (the `spin` kernel), bounded in cycles in case the timer stands still.
pub(super) fn launch_spin(
    stream: &CudaStream,
    spin: &CudaFunction,
    ns: i64,
    blocks: u32,
) -> std::result::Result<(), DriverError> {
    let max_cycles = ns * SPIN_CYCLES_PER_NS;
    // Safety: `spin` takes two i64 and touches no memory.
    unsafe {
        stream
            .launch_builder(spin)
            .arg(&ns)
            .arg(&max_cycles)
            .launch(LaunchConfig {
                grid_dim: (blocks, 1, 1),
                block_dim: (1, 1, 1),
                shared_mem_bytes: 0,
            })
    }
    .map(|_| ())
}

impl CudaEngine {
    /// Under `--l2 cold`, fills the L2 with clean lines of the flush
    /// buffer (twice its size, read by `l2_flush`) so that the next run
    /// finds none of its data there and nothing dirty to write back;
    /// nothing under `--l2 warm`.
    pub(super) fn flush_l2(&self) -> std::result::Result<(), DriverError> {
        let Some(flush) = &self.flush else {
            return Ok(());
        };
        let n4 = (flush.buffer.len() / 16) as i64;
        // Safety: `l2_flush` reads `n4` float4 of the live flush buffer
        // (its length is a multiple of 16 bytes) and adds to the one float
        // of the live sink; the argument types match the kernel.
        unsafe {
            self.stream
                .launch_builder(self.function("l2_flush"))
                .arg(&self.ptr(&flush.buffer))
                .arg(&n4)
                .arg(&self.ptr(&flush.sink))
                .launch(LaunchConfig {
                    grid_dim: (flush.blocks, 1, 1),
                    block_dim: (THREADS, 1, 1),
                    shared_mem_bytes: 0,
                })
        }
        .map(drop)
    }

    /// Says on stderr how many timed runs of the workload just finished
    /// started late (see [`spin`]), and starts counting afresh.
    pub(super) fn report_late_runs(&mut self) {
        if self.late_runs > 0 {
            let name = self.prepared.as_ref().map_or("", |p| p.name.as_str());
            eprintln!(
                "warning: {name}: {} of {} timed runs found the GPU already past the spin (the CPU was slow to enqueue); the spin is now {} us",
                self.late_runs,
                self.runs,
                self.spin.ns() / 1000
            );
        }
        self.late_runs = 0;
        self.runs = 0;
    }
}
