//! An analytic stand-in for a measured table, used when `--table` is
//! omitted: every block of the space's table plan priced from its
//! multiply-adds. It is labelled as what it is in its fingerprint, and the
//! binary warns whenever it is used. It exists so that the search runs end
//! to end before any GPU has measured a table; it says nothing about any
//! device.

use space::{
    meta, BlockSpec, Entry, LatencyStats, LatencyTable, Metadata, SearchSpaceConfig, TableWriter,
};

use crate::error::Result;

/// The proxy's device name, also how callers recognise it.
pub const PROXY_DEVICE: &str = "none (MAC-count proxy, not a measurement)";

/// Milliseconds per multiply-add of a whole batch (1 ms per 10^9 MACs).
pub const MS_PER_MAC: f64 = 1e-9;
/// Fixed cost per block, in milliseconds (a stand-in for launch overhead).
pub const MS_PER_BLOCK: f64 = 0.02;

/// Proxy latency of one block at `batch`: `MS_PER_MAC · MACs · batch +
/// MS_PER_BLOCK`.
pub fn proxy_ms(spec: &BlockSpec, batch: u32) -> f64 {
    MS_PER_MAC * spec.macs() as f64 * f64::from(batch) + MS_PER_BLOCK
}

/// The proxy table of `space` at `batch`, every width of every op priced
/// (width step 1), built through the real table writer and reader so it
/// behaves exactly like a file.
pub fn proxy_table(space: &SearchSpaceConfig, batch: u32) -> Result<LatencyTable> {
    let plan = space.table_plan(1)?;
    let mut metadata = Metadata::new();
    metadata
        .set(meta::FORMAT, space::table::FORMAT)
        .set(meta::DEVICE_NAME, PROXY_DEVICE)
        .set(meta::ENGINE, "none")
        .set(meta::BATCH, batch)
        .set(meta::WIDTH_STEP, 1)
        .set(meta::SPACE, &space.name)
        .set(meta::SPACE_DIGEST, space.digest())
        .set(
            "proxy",
            format!("ms = {MS_PER_MAC:e} * MACs * batch + {MS_PER_BLOCK} per block"),
        );
    let mut writer = TableWriter::new(Vec::new(), &metadata)?;
    for spec in &plan.blocks {
        let ms = proxy_ms(spec, batch);
        writer.write(&Entry {
            spec: *spec,
            batch,
            stats: LatencyStats::exact(ms, 1),
        })?;
    }
    let bytes = writer.finish(&Metadata::new())?;
    let text = String::from_utf8(bytes).expect("the writer writes UTF-8");
    Ok(LatencyTable::parse(&text, "mac-proxy (in memory)")?)
}

/// Whether `table` is this module's proxy rather than a measurement.
pub fn is_proxy(table: &LatencyTable) -> bool {
    table.metadata().get(meta::DEVICE_NAME) == Some(PROXY_DEVICE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use space::Architecture;

    #[test]
    fn proxy_prices_tfnas_a_from_its_macs() {
        let space = SearchSpaceConfig::default();
        let table = proxy_table(&space, 32).unwrap();
        assert!(is_proxy(&table));
        let a = Architecture::tfnas_a();
        let predicted = table.predict(&a).unwrap().total_ms;
        let blocks = a.block_specs().unwrap().len() as f64;
        let by_hand = MS_PER_MAC * a.macs().unwrap() as f64 * 32.0 + MS_PER_BLOCK * blocks;
        assert!(
            (predicted - by_hand).abs() < 1e-6,
            "{predicted} vs {by_hand}"
        );
    }
}
