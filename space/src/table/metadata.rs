//! The fingerprint header: ordered `# key: value` lines.
//!
//! Kept as an ordered list of strings rather than a struct so that a newer
//! profiler can add lines an older reader still carries through, and so that
//! comparing two tables' headers is a plain key-by-key diff.

use std::collections::BTreeMap;

/// Metadata keys the profiler writes (all optional to the reader except
/// [`meta::FORMAT`] and [`meta::BATCH`]).
pub mod meta {
    pub const FORMAT: &str = "format";
    pub const DEVICE_NAME: &str = "device_name";
    pub const DEVICE_UUID: &str = "device_uuid";
    pub const DRIVER: &str = "driver";
    pub const CUDA: &str = "cuda";
    pub const CUDNN: &str = "cudnn";
    pub const ENGINE: &str = "engine";
    pub const LAUNCH: &str = "launch";
    pub const L2: &str = "l2";
    pub const DTYPE: &str = "dtype";
    pub const LAYOUT: &str = "layout";
    pub const BATCH: &str = "batch";
    pub const WIDTH_STEP: &str = "width_step";
    /// How a width the table did not measure is priced: `linear`, or
    /// `align N` (kernels pad channels to multiples of N; the table holds
    /// probes at unaligned widths). See [`crate::table::WidthModel`].
    pub const WIDTH_MODEL: &str = "width_model";
    /// How the widths the table measured are priced: `none` (each at its
    /// entry), or `affine` (on its curve's least-squares line). See
    /// [`crate::table::CurveFit`].
    pub const CURVE_FIT: &str = "curve_fit";
    pub const SPACE: &str = "space";
    pub const SPACE_DIGEST: &str = "space_digest";
    pub const CLOCKS: &str = "clocks";
    /// The GPU's clock, power and MIG settings when the table began (read,
    /// never set).
    pub const GPU_SETTINGS: &str = "gpu_settings";
    pub const PROFILER_VERSION: &str = "profiler_version";
    pub const COMMAND: &str = "command";
    pub const STARTED: &str = "started";
    pub const FINISHED: &str = "finished";
    /// `linear a=<f64> b=<f64>`: measured ≈ a · (sum of blocks) + b for a
    /// whole network, fitted by `profiler fit` ([`crate::table::Correction`]).
    pub const CORRECTION: &str = "correction";
    /// Milliseconds that timing a block alone adds over the same block
    /// inside a network, once per block: the run's start and end, less one
    /// gap between kernels. Measured by the profiler before the first entry
    /// ([`crate::LatencyTable::boundary_ms`] says how it is applied).
    pub const BOUNDARY_MS: &str = "boundary_ms";
    /// How [`BOUNDARY_MS`] was measured (informative).
    pub const BOUNDARY: &str = "boundary";

    // The CPU engine's fingerprint (`profiler --device cpu`); a GPU table
    // has none of these lines, and a CPU table always has [`THREADS`].
    /// The CPU's model name, as /proc/cpuinfo says it.
    pub const CPU_MODEL: &str = "cpu_model";
    /// Cores the machine has (informative).
    pub const CPU_CORES: &str = "cpu_cores";
    /// libtorch's intra-op threads the entries ran with.
    pub const THREADS: &str = "threads";
    /// The CPUs the threads were pinned to, or why they were not (informative).
    pub const CPU_AFFINITY: &str = "cpu_affinity";
    /// Last-level cache size in bytes, read from sysfs.
    pub const LLC_BYTES: &str = "llc_bytes";
    /// The cpufreq governor, or `unknown` where the system does not say.
    pub const CPU_GOVERNOR: &str = "cpu_governor";
    /// libtorch's version.
    pub const LIBTORCH: &str = "libtorch";
    /// The vector instructions libtorch's kernels use (AVX512, AVX2...),
    /// and where that was read.
    pub const CPU_CAPABILITY: &str = "cpu_capability";
    /// What the cache held before each timed run (`warm`, `cold`...).
    pub const CACHE: &str = "cache";
    /// The clock around each timed run: `thread` (the thread's CPU time,
    /// blind to time other processes take the core) or `wall` (monotonic).
    pub const TIMER: &str = "timer";
    /// How the process's memory was set up: glibc malloc's tunables and the
    /// system's transparent huge pages (a CPU table's latencies depend on
    /// both: page faults and TLB misses, docs/cpu.md).
    pub const CPU_MEMORY: &str = "cpu_memory";
    /// A CPU table's speed reference in ms: the fixed parts' time every
    /// run was scaled to (the profiler's `measure::speed`).
    pub const SPEED_REFERENCE_MS: &str = "speed_reference_ms";
    /// A CPU table's speed standard in ms: the whole time of
    /// [`SPEED_STANDARD_NETWORK`] run back to back, measured with the
    /// speed reference. `measure` and `validate` time that network in its
    /// own context beside every network they time, so the machine's speed
    /// is gauged by a network that does not change with the one timed.
    pub const SPEED_STANDARD_MS: &str = "speed_standard_ms";
    /// The speed standard's blocks: their keys, space-separated, in order.
    pub const SPEED_STANDARD_NETWORK: &str = "speed_standard_network";

    // A table predicted by `profiler transfer` from a reference table and
    // a probe measured on its own device (docs/transfer.md).
    /// What the table is: present only on a predicted table, whose rows are
    /// partly predicted rather than measured (`check` and the searcher say so).
    pub const PREDICTED: &str = "predicted";
    /// The reference table the ratios were taken against: file, sha256, device.
    pub const TRANSFER_REFERENCE: &str = "transfer_reference";
    /// The probe measured on this table's device: file, sha256, device.
    pub const TRANSFER_PROBE: &str = "transfer_probe";
    /// The prediction's error estimated by leave-one-out over the probe.
    pub const TRANSFER_CV: &str = "transfer_cv";
    /// On a probe (`profiler probe --out`): the reference table whose keys
    /// it measured (file, sha256, device) and how many of them.
    pub const PROBE_OF: &str = "probe_of";
    /// The keys of the measured rows (copied from the probe), space-separated;
    /// every other row is predicted.
    pub const TRANSFER_MEASURED: &str = "transfer_measured";
}

/// In JSON (an architecture's prediction), an object in header order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, String)>,
}

impl Metadata {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`, replacing an earlier value in place. Keys are single
    /// tokens and values single lines, so a header always parses back.
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        assert!(
            !key.is_empty() && !key.contains([':', '\n', ' ', '#']),
            "metadata key '{key}' must be a single token"
        );
        let value = value.to_string().replace(['\n', '\r'], " ");
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys whose values differ between two headers, with both values
    /// (`None` where one side lacks the key), in a stable order.
    pub fn differences<'a>(
        &'a self,
        other: &'a Metadata,
    ) -> Vec<(&'a str, Option<&'a str>, Option<&'a str>)> {
        let mut keys: BTreeMap<&str, ()> = BTreeMap::new();
        for (k, _) in self.iter().chain(other.iter()) {
            keys.insert(k, ());
        }
        keys.into_keys()
            .map(|k| (k, self.get(k), other.get(k)))
            .filter(|(_, a, b)| a != b)
            .collect()
    }

    /// Parses one `# key: value` line; `None` for other comments and rows.
    /// Every reader of a header (tables, validation rows) parses with this.
    pub fn parse_line(line: &str) -> Option<(&str, &str)> {
        let body = line.strip_prefix('#')?.trim_start();
        let (key, value) = body.split_once(':')?;
        let key = key.trim();
        (!key.is_empty() && !key.contains(' ')).then_some((key, value.trim()))
    }
}

impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Metadata;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of header lines")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Metadata, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    entries.push((k, v));
                }
                Ok(Metadata { entries })
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_keeps_order() {
        let mut m = Metadata::new();
        m.set("a", 1).set("b", "x\ny").set("a", 2);
        let all: Vec<_> = m.iter().collect();
        assert_eq!(all, [("a", "2"), ("b", "x y")]);
    }

    #[test]
    fn differences_list_changed_and_missing_keys() {
        let mut a = Metadata::new();
        a.set("device_name", "H100")
            .set("batch", 32)
            .set("dtype", "fp32");
        let mut b = Metadata::new();
        b.set("device_name", "A100")
            .set("batch", 32)
            .set("layout", "nchw");
        let d = a.differences(&b);
        assert_eq!(
            d,
            [
                ("device_name", Some("H100"), Some("A100")),
                ("dtype", Some("fp32"), None),
                ("layout", None, Some("nchw")),
            ]
        );
    }

    #[test]
    fn json_is_an_ordered_object() {
        let mut m = Metadata::new();
        m.set("z", "last-first").set("a", "second");
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"z":"last-first","a":"second"}"#);
        assert_eq!(serde_json::from_str::<Metadata>(&json).unwrap(), m);
    }

    #[test]
    fn parses_header_lines_only() {
        assert_eq!(
            Metadata::parse_line("# started: 2026-11-27T10:00:00Z"),
            Some(("started", "2026-11-27T10:00:00Z"))
        );
        assert_eq!(Metadata::parse_line("# just a remark"), None);
        assert_eq!(Metadata::parse_line("key,batch"), None);
    }
}
