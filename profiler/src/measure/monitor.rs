//! Reading the GPU's clocks, temperature and throttle reasons around each
//! entry, read only: the profiler never sets clocks or power limits
//! (docs/gpu-facts.md, "Running there"). Behind a trait so that tests can fake a
//! throttling GPU.

use std::fmt;

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{Clock, PerformancePolicy, TemperatureSensor};
use nvml_wrapper::Nvml;

/// One reading; `None` where the value could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuState {
    pub sm_clock_mhz: Option<u32>,
    pub temperature_c: Option<u32>,
    /// Throttle reasons that slow the GPU down (idle and application-clock
    /// settings are not slowdowns and are left out), by NVML name.
    pub throttle: Vec<String>,
    /// NVML's cumulative violation counters, where it keeps them.
    pub violations: Vec<Violation>,
}

/// How long, in all, the GPU has run below its requested clocks for one
/// reason (NVML's violation status): unlike the throttle reasons, which say
/// only what holds at the instant of reading, the difference of two such
/// readings covers everything in between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// `power` or `thermal`.
    pub policy: &'static str,
    /// When NVML took the reading (its CPU timestamp, microseconds).
    pub at_us: u64,
    /// The counter, in nanoseconds.
    pub total_ns: u64,
}

/// Violation time above this share of the interval between two readings
/// counts as a slowdown: less cannot move a median by a measurable amount,
/// and counters that tick now and then do not re-measure every entry.
pub const VIOLATION_SHARE: f64 = 0.01;

impl GpuState {
    pub fn throttled(&self) -> bool {
        !self.throttle.is_empty()
    }

    /// Why the GPU ran slow between this reading and `later`: a slowdown
    /// either reading shows, and each violation counter that grew by more
    /// than [`VIOLATION_SHARE`] of the time between them. Empty when it
    /// did not (or nothing could be read).
    pub fn slowdowns_until(&self, later: &GpuState) -> Vec<String> {
        let mut why: Vec<String> = Vec::new();
        for reason in self.throttle.iter().chain(&later.throttle) {
            if !why.contains(reason) {
                why.push(reason.clone());
            }
        }
        for v in &later.violations {
            let Some(u) = self.violations.iter().find(|u| u.policy == v.policy) else {
                continue;
            };
            let span_ns = v.at_us.saturating_sub(u.at_us) as f64 * 1e3;
            let grew_ns = v.total_ns.saturating_sub(u.total_ns) as f64;
            if span_ns > 0.0 && grew_ns > VIOLATION_SHARE * span_ns {
                why.push(format!(
                    "{}_violation {:.1}% of {:.0} ms",
                    v.policy,
                    100.0 * grew_ns / span_ns,
                    span_ns / 1e6
                ));
            }
        }
        why
    }
}

impl fmt::Display for GpuState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sm_clock_mhz {
            Some(c) => write!(f, "SM {c} MHz")?,
            None => write!(f, "SM clock unknown")?,
        }
        if let Some(t) = self.temperature_c {
            write!(f, ", {t} C")?;
        }
        if self.throttled() {
            write!(f, ", throttled: {}", self.throttle.join("+"))?;
        }
        Ok(())
    }
}

/// The GPU's settings that bear on its speed, read once per run and
/// recorded in the table's header (never set: docs/gpu-facts.md, "Running there").
/// `None` where the value could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuSettings {
    /// Application clocks (graphics and memory domains): what the GPU
    /// runs at when not boosting.
    pub graphics_app_mhz: Option<u32>,
    pub mem_app_mhz: Option<u32>,
    pub sm_max_mhz: Option<u32>,
    pub mem_max_mhz: Option<u32>,
    /// The power limit in force, and the board's default.
    pub power_limit_w: Option<u32>,
    pub power_default_w: Option<u32>,
    /// Multi-instance GPU mode: a MIG slice has a fraction of the SMs.
    pub mig: Option<bool>,
    pub persistence: Option<bool>,
}

impl fmt::Display for GpuSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: Option<u32>| v.map_or("unknown".to_string(), |v| v.to_string());
        let b = |v: Option<bool>| match v {
            Some(true) => "on",
            Some(false) => "off",
            None => "unknown",
        };
        write!(
            f,
            "graphics_app_mhz {}, mem_app_mhz {}, sm_max_mhz {}, mem_max_mhz {}, power_limit_w {}, power_default_w {}, mig {}, persistence {}",
            n(self.graphics_app_mhz),
            n(self.mem_app_mhz),
            n(self.sm_max_mhz),
            n(self.mem_max_mhz),
            n(self.power_limit_w),
            n(self.power_default_w),
            b(self.mig),
            b(self.persistence)
        )
    }
}

/// What differs between two `gpu_settings` lines ([`GpuSettings`]'s
/// display), field by field, as `key then -> now`; a field unknown on
/// either side, or on one side only, is not a difference.
pub fn settings_changes(then: &str, now: &str) -> Vec<String> {
    let fields = |s: &str| -> Vec<(String, String)> {
        s.split(", ")
            .filter_map(|f| f.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let now = fields(now);
    fields(then)
        .into_iter()
        .filter_map(|(k, a)| {
            let (_, b) = now.iter().find(|(k2, _)| *k2 == k)?;
            (a != "unknown" && b != "unknown" && a != *b).then(|| format!("{k} {a} -> {b}"))
        })
        .collect()
}

/// A source of GPU readings.
pub trait Monitor {
    fn read(&mut self) -> GpuState;
    /// How the monitor reads, for the log (and why it cannot, if so).
    fn describe(&self) -> String;
    /// The GPU's settings; all unknown unless the monitor can read them.
    fn settings(&mut self) -> GpuSettings {
        GpuSettings::default()
    }
}

/// No readings at all; used where NVML is missing, so the table says
/// "clocks unknown" instead of pretending nothing throttled.
pub struct Unmonitored {
    pub why: String,
}

impl Monitor for Unmonitored {
    fn read(&mut self) -> GpuState {
        GpuState::default()
    }
    fn describe(&self) -> String {
        format!("no clock monitoring: {}", self.why)
    }
}

/// NVML, finding the device by UUID: NVML numbers GPUs in PCI order and
/// CUDA fastest first, so an index could name another GPU.
pub struct NvmlMonitor {
    nvml: Nvml,
    uuid: String,
}

impl NvmlMonitor {
    /// Opens NVML for the device with `uuid`; `Unmonitored` with the reason
    /// when the library or the device is not there.
    pub fn open(uuid: &str) -> Box<dyn Monitor> {
        let nvml = match Nvml::init() {
            Ok(n) => n,
            Err(e) => {
                return Box::new(Unmonitored {
                    why: format!("NVML unavailable ({e})"),
                })
            }
        };
        if let Err(e) = nvml.device_by_uuid(uuid) {
            return Box::new(Unmonitored {
                why: format!("NVML does not know device {uuid} ({e})"),
            });
        }
        Box::new(NvmlMonitor {
            nvml,
            uuid: uuid.to_string(),
        })
    }
}

/// `NVML_DEVICE_MIG_ENABLE` of nvml.h (in nvml-wrapper-sys, not in
/// nvml-wrapper's public API).
const MIG_ENABLE: u32 = 1;

/// The throttle reasons that mean the GPU runs slower than it could.
const SLOWDOWNS: [(ThrottleReasons, &str); 5] = [
    (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
    (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
    (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal"),
    (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal"),
    (ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN, "hw_power_brake"),
];

impl Monitor for NvmlMonitor {
    fn read(&mut self) -> GpuState {
        let Ok(device) = self.nvml.device_by_uuid(self.uuid.as_str()) else {
            return GpuState::default();
        };
        let throttle = device
            .current_throttle_reasons()
            .map(|r| {
                SLOWDOWNS
                    .iter()
                    .filter(|(bit, _)| r.contains(*bit))
                    .map(|(_, name)| name.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let violations = [
            (PerformancePolicy::Power, "power"),
            (PerformancePolicy::Thermal, "thermal"),
        ]
        .into_iter()
        .filter_map(|(policy, name)| {
            let v = device.violation_status(policy).ok()?;
            Some(Violation {
                policy: name,
                at_us: v.reference_time,
                total_ns: v.violation_time,
            })
        })
        .collect();
        GpuState {
            sm_clock_mhz: device.clock_info(Clock::SM).ok(),
            temperature_c: device.temperature(TemperatureSensor::Gpu).ok(),
            throttle,
            violations,
        }
    }

    fn describe(&self) -> String {
        format!("NVML on {}", self.uuid)
    }

    fn settings(&mut self) -> GpuSettings {
        let Ok(device) = self.nvml.device_by_uuid(self.uuid.as_str()) else {
            return GpuSettings::default();
        };
        // NVML's power readings are milliwatts.
        let watts = |mw: u32| (mw + 500) / 1000;
        GpuSettings {
            graphics_app_mhz: device.applications_clock(Clock::Graphics).ok(),
            mem_app_mhz: device.applications_clock(Clock::Memory).ok(),
            sm_max_mhz: device.max_clock_info(Clock::SM).ok(),
            mem_max_mhz: device.max_clock_info(Clock::Memory).ok(),
            power_limit_w: device.enforced_power_limit().ok().map(watts),
            power_default_w: device.power_management_limit_default().ok().map(watts),
            mig: device.mig_mode().ok().map(|m| m.current == MIG_ENABLE),
            persistence: device.is_in_persistent_mode().ok(),
        }
    }
}

/// The range of readings seen over a run, for the `clocks` header line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockRange {
    pub sm_mhz: Option<(u32, u32)>,
    pub temp_c: Option<(u32, u32)>,
    pub throttled_entries: u64,
}

fn widen(range: &mut Option<(u32, u32)>, v: Option<u32>) {
    if let Some(v) = v {
        *range = Some(match *range {
            Some((lo, hi)) => (lo.min(v), hi.max(v)),
            None => (v, v),
        });
    }
}

impl ClockRange {
    pub fn see(&mut self, s: &GpuState) {
        widen(&mut self.sm_mhz, s.sm_clock_mhz);
        widen(&mut self.temp_c, s.temperature_c);
    }

    /// Merges the range an earlier (resumed) run recorded.
    pub fn merge(&mut self, other: &ClockRange) {
        for (mine, theirs) in [
            (&mut self.sm_mhz, other.sm_mhz),
            (&mut self.temp_c, other.temp_c),
        ] {
            if let Some((lo, hi)) = theirs {
                widen(mine, Some(lo));
                widen(mine, Some(hi));
            }
        }
        self.throttled_entries += other.throttled_entries;
    }

    /// Parses what [`fmt::Display`] writes; `None` for anything else.
    pub fn parse(s: &str) -> Option<ClockRange> {
        let mut r = ClockRange::default();
        for part in s.split(", ") {
            let (key, value) = part.split_once(' ')?;
            let range = |v: &str| -> Option<Option<(u32, u32)>> {
                if v == "unknown" {
                    return Some(None);
                }
                let (lo, hi) = v.split_once("..")?;
                Some(Some((lo.parse().ok()?, hi.parse().ok()?)))
            };
            match key {
                "sm_mhz" => r.sm_mhz = range(value)?,
                "temp_c" => r.temp_c = range(value)?,
                "throttled_entries" => r.throttled_entries = value.parse().ok()?,
                _ => return None,
            }
        }
        Some(r)
    }
}

impl fmt::Display for ClockRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = |r: Option<(u32, u32)>| match r {
            Some((lo, hi)) => format!("{lo}..{hi}"),
            None => "unknown".into(),
        };
        write!(
            f,
            "sm_mhz {}, temp_c {}, throttled_entries {}",
            range(self.sm_mhz),
            range(self.temp_c),
            self.throttled_entries
        )
    }
}

#[cfg(test)]
mod tests {

    fn reading(throttle: &[&str], violations: &[(&'static str, u64, u64)]) -> super::GpuState {
        super::GpuState {
            throttle: throttle.iter().map(|t| t.to_string()).collect(),
            violations: violations
                .iter()
                .map(|&(policy, at_us, total_ns)| super::Violation {
                    policy,
                    at_us,
                    total_ns,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn slowdowns_come_from_either_reading_or_from_counters_that_grew() {
        // Nothing read, nothing slow.
        assert!(reading(&[], &[])
            .slowdowns_until(&reading(&[], &[]))
            .is_empty());
        // An instant reason in either reading, once each.
        let why = reading(&["sw_power_cap"], &[])
            .slowdowns_until(&reading(&["sw_power_cap", "hw_thermal"], &[]));
        assert_eq!(why, ["sw_power_cap", "hw_thermal"]);
        // 100 ms apart: 2 ms of power violation is 2%, a slowdown; 0.5 ms
        // (0.5%) is not; a counter read on one side only says nothing.
        let before = reading(
            &[],
            &[("power", 1_000_000, 5_000_000), ("thermal", 1_000_000, 0)],
        );
        let grew = reading(
            &[],
            &[("power", 1_100_000, 7_000_000), ("thermal", 1_100_000, 0)],
        );
        assert_eq!(
            before.slowdowns_until(&grew),
            ["power_violation 2.0% of 100 ms"]
        );
        let ticked = reading(&[], &[("power", 1_100_000, 5_500_000)]);
        assert!(before.slowdowns_until(&ticked).is_empty());
        let one_side = reading(&[], &[("power", 1_100_000, 90_000_000)]);
        assert!(reading(&[], &[]).slowdowns_until(&one_side).is_empty());
        // A counter that went back (a driver reload) or readings out of
        // order are no slowdown, not a panic.
        let reset = reading(&[], &[("power", 1_100_000, 0)]);
        assert!(before.slowdowns_until(&reset).is_empty());
        assert!(grew.slowdowns_until(&before).is_empty());
    }

    #[test]
    fn settings_change_field_by_field_and_unknowns_are_no_change() {
        let then = GpuSettings {
            graphics_app_mhz: Some(1980),
            mem_app_mhz: Some(2619),
            sm_max_mhz: Some(1980),
            mem_max_mhz: None,
            power_limit_w: Some(700),
            power_default_w: Some(700),
            mig: Some(false),
            persistence: Some(true),
        };
        let now = GpuSettings {
            power_limit_w: Some(500),
            persistence: None,
            mem_max_mhz: Some(2619),
            ..then.clone()
        };
        assert_eq!(
            settings_changes(&then.to_string(), &now.to_string()),
            ["power_limit_w 700 -> 500"]
        );
        assert!(settings_changes(&then.to_string(), &then.to_string()).is_empty());
        // A line of another format has nothing in common to compare.
        assert!(settings_changes("something else", &now.to_string()).is_empty());
    }
    use super::*;

    #[test]
    fn clock_range_round_trips_and_merges() {
        let mut r = ClockRange::default();
        assert_eq!(
            r.to_string(),
            "sm_mhz unknown, temp_c unknown, throttled_entries 0"
        );
        r.see(&GpuState {
            sm_clock_mhz: Some(1980),
            temperature_c: Some(40),
            throttle: vec![],
            ..Default::default()
        });
        r.see(&GpuState {
            sm_clock_mhz: Some(1755),
            temperature_c: None,
            throttle: vec![],
            ..Default::default()
        });
        r.throttled_entries = 2;
        let text = r.to_string();
        assert_eq!(
            text,
            "sm_mhz 1755..1980, temp_c 40..40, throttled_entries 2"
        );
        assert_eq!(ClockRange::parse(&text), Some(r.clone()));
        let mut other =
            ClockRange::parse("sm_mhz 1900..1990, temp_c unknown, throttled_entries 1").unwrap();
        other.merge(&r);
        assert_eq!(
            other.to_string(),
            "sm_mhz 1755..1990, temp_c 40..40, throttled_entries 3"
        );
        assert_eq!(ClockRange::parse("sm 5"), None);
    }

    #[test]
    fn state_display_names_throttle_reasons() {
        let s = GpuState {
            sm_clock_mhz: Some(1410),
            temperature_c: Some(83),
            throttle: vec!["sw_thermal".into(), "hw_slowdown".into()],
            ..Default::default()
        };
        assert!(s.throttled());
        assert_eq!(
            s.to_string(),
            "SM 1410 MHz, 83 C, throttled: sw_thermal+hw_slowdown"
        );
    }
}
