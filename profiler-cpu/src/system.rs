//! What the machine is, for the table's fingerprint: the CPU's model and
//! cores, the CPUs this process may run on, the last-level cache, the
//! frequency governor, and which vector instructions libtorch's kernels use.
//! Everything is read, never set.

use rustix::thread::CpuSet;
use std::path::Path;

/// The facts, read once when the engine opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub model: String,
    /// Logical CPUs the machine has.
    pub cores: usize,
    /// The CPUs this process may run on (`sched_getaffinity`), in order;
    /// `taskset -c 1 profiler ...` leaves one.
    pub allowed: Vec<usize>,
    /// Bytes of the last-level cache, if sysfs says.
    pub llc_bytes: Option<u64>,
    /// Bytes of the largest cache below the last level (a core's own L2).
    pub private_bytes: Option<u64>,
    pub governor: String,
    pub hostname: String,
    pub kernel: String,
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `32768K` → 33554432 (sysfs cache sizes).
pub fn parse_cache_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let scale = match unit.trim() {
        "" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        _ => return None,
    };
    Some(n * scale)
}

/// The largest-level data or unified cache of CPU 0 in sysfs.
pub fn llc_bytes(cache_dir: &Path) -> Option<u64> {
    levels(cache_dir).last().map(|&(_, size)| size)
}

/// The data or unified cache one level below the last, if there is one.
pub fn private_bytes(cache_dir: &Path) -> Option<u64> {
    let levels = levels(cache_dir);
    let n = levels.len();
    (n >= 2).then(|| levels[n - 2].1)
}

/// `(level, bytes)` of CPU 0's data and unified caches, by level.
fn levels(cache_dir: &Path) -> Vec<(u32, u64)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir(cache_dir) else {
        return found;
    };
    for entry in dir.flatten() {
        let dir = entry.path();
        if !entry.file_name().to_string_lossy().starts_with("index") {
            continue;
        }
        let kind = read_trimmed(dir.join("type")).unwrap_or_default();
        let level = read_trimmed(dir.join("level")).and_then(|l| l.parse::<u32>().ok());
        let size = read_trimmed(dir.join("size")).and_then(|s| parse_cache_size(&s));
        if let (false, Some(level), Some(size)) = (kind == "Instruction", level, size) {
            found.push((level, size));
        }
    }
    found.sort_unstable();
    found.dedup_by_key(|l| l.0);
    found
}

/// The `model name` of /proc/cpuinfo's first processor.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Pins the calling thread (and the threads libtorch starts from it later)
/// to `cpus`; the error says why the OS refused.
pub fn pin_to(cpus: &[usize]) -> Result<(), String> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c);
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| std::io::Error::from(e).to_string())
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(cores);
        Machine {
            model: cpu_model(&cpuinfo).unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            cores,
            allowed: allowed_cpus(),
            llc_bytes: llc_bytes(Path::new("/sys/devices/system/cpu/cpu0/cache")),
            private_bytes: private_bytes(Path::new("/sys/devices/system/cpu/cpu0/cache")),
            governor: read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
                .unwrap_or_else(|| "unknown (no cpufreq in sysfs)".into()),
            hostname: read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into()),
            kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// Which vector instructions libtorch's CPU kernels dispatch to
/// (`DEFAULT`, `AVX2`, `AVX512`), asked from libtorch itself where it can
/// be, else guessed from /proc/cpuinfo's flags and labelled so.
pub fn cpu_capability() -> String {
    if let Some(cap) = libtorch_capability() {
        return format!("{cap} (at::get_cpu_capability)");
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags").and_then(|r| r.split_once(':')))
        .map_or_else(Vec::new, |(_, f)| f.split_whitespace().collect());
    let has = |f: &str| flags.contains(&f);
    let guess = if ["avx512f", "avx512bw", "avx512vl", "avx512dq"]
        .iter()
        .all(|f| has(f))
    {
        "AVX512"
    } else if has("avx2") && has("fma") {
        "AVX2"
    } else {
        "DEFAULT"
    };
    format!("{guess} (guessed from /proc/cpuinfo flags; libtorch was not asked)")
}

/// The channel multiple libtorch's CPU kernels (oneDNN's blocked layouts)
/// pad to, from [`cpu_capability`]'s answer: the floats in one vector
/// register, 16 with AVX-512 and 8 otherwise. Measured on AVX2 only (an
/// unaligned width there costs up to 10% more than the aligned widths
/// around it, docs/table-format.md); on AVX-512 it is the same rule's
/// reading, not yet a measurement.
pub fn vector_floats(capability: &str) -> u32 {
    if capability.starts_with("AVX512") {
        16
    } else {
        8
    }
}

/// `at::get_cpu_capability()` returns a `std::string` by value; it has no
/// C binding in tch, so it is looked up by its mangled name and called
/// with the x86-64 SysV convention for a returned class (a hidden pointer
/// to the result in the first argument register). Only on x86-64 Linux,
/// where that convention and libstdc++'s string layout (pointer, length,
/// 16-byte local buffer) hold; `None` elsewhere or when the symbol is gone.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[allow(unsafe_code)] // The CPU engine's one foreign call that tch does not bind.
fn libtorch_capability() -> Option<String> {
    // Make sure libtorch is loaded before the lookup (any tch call does).
    let _ = tch::utils::has_openmp();
    let name = c"_ZN2at18get_cpu_capabilityB5cxx11Ev";
    // Safety: dlsym with RTLD_DEFAULT and a NUL-terminated name only reads.
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if sym.is_null() {
        return None;
    }
    type GetCapability = unsafe extern "C" fn(*mut [usize; 4]) -> *mut [usize; 4];
    let mut out = [0usize; 4];
    // Safety: the symbol is `std::string at::get_cpu_capability()` of the
    // libtorch we link; `out` is 32 bytes, 8-aligned, as libstdc++'s string.
    // The string is read, never freed: its heap buffer (none for these
    // short names) leaks once per process.
    let text = unsafe {
        let f: GetCapability = std::mem::transmute(sym);
        f(&mut out);
        let (ptr, len) = (out[0] as *const u8, out[1]);
        if ptr.is_null() || len > 64 {
            return None;
        }
        String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len)).into_owned()
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn libtorch_capability() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_align_to_the_floats_of_one_vector_register() {
        assert_eq!(vector_floats("AVX512 (at::get_cpu_capability)"), 16);
        assert_eq!(vector_floats("AVX2 (at::get_cpu_capability)"), 8);
        assert_eq!(
            vector_floats("DEFAULT (guessed from /proc/cpuinfo flags; libtorch was not asked)"),
            8
        );
    }

    #[test]
    fn cache_sizes_parse_in_sysfs_units() {
        assert_eq!(parse_cache_size("32768K"), Some(32 << 20));
        assert_eq!(parse_cache_size("2M"), Some(2 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("1G"), None);
        assert_eq!(parse_cache_size("K"), None);
    }

    #[test]
    fn the_last_level_cache_is_the_highest_non_instruction_level() {
        let dir = tempfile::tempdir().unwrap();
        for (i, level, kind, size) in [
            (0, 1, "Data", "32K"),
            (1, 1, "Instruction", "32K"),
            (2, 2, "Unified", "1024K"),
            (3, 3, "Unified", "32768K"),
        ] {
            let d = dir.path().join(format!("index{i}"));
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
        }
        assert_eq!(llc_bytes(dir.path()), Some(32 << 20));
        assert_eq!(private_bytes(dir.path()), Some(1 << 20));
        assert_eq!(llc_bytes(&dir.path().join("missing")), None);
    }

    #[test]
    fn the_model_name_comes_from_cpuinfo() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\nflags\t: fpu avx2\n";
        assert_eq!(cpu_model(text).as_deref(), Some("AMD EPYC 9B14"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn libtorch_names_a_capability_this_cpu_has() {
        let cap = cpu_capability();
        assert!(
            ["DEFAULT", "AVX2", "AVX512"]
                .iter()
                .any(|c| cap.starts_with(c)),
            "{cap}"
        );
    }
}
