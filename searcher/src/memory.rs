//! The memory a search will hold, estimated before any of it is allocated,
//! and refused above what the machine has: a search that cannot fit should
//! stop with a message naming the flags to lower, not abort minutes later
//! (or at once, when the embedded set alone is asked for 25 GB).
//!
//! The estimate is a lower bound, made of what can be bounded cheaply from
//! the flags and the space: the embedded set (generated up front), the
//! image batches in flight, the supernet's weights with their SGD momentum
//! (on the CPU, or the checkpoint's host copy on a GPU), and, when the
//! search runs on the CPU, the activations one training step keeps for its
//! backward pass. A GPU's own memory is not checked.

use space::{block_layers, BlockSpec, SearchSpaceConfig};

use crate::error::{Result, SearchError};

/// One part of the estimate: what it is, its bytes, and the flags that
/// shrink it.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub what: String,
    pub bytes: u64,
    pub flags: &'static [&'static str],
}

/// What the estimate depends on, from the command line and the space.
pub struct Plan<'a> {
    pub space: &'a SearchSpaceConfig,
    pub resolution: u32,
    pub batch: usize,
    /// `Some(n)` for the embedded set of `n` images; `None` for image data.
    pub embedded_images: Option<usize>,
    /// Batches decoded ahead (`--prefetch`), for image data.
    pub prefetch: usize,
    /// Whether the supernet runs on the CPU (its activations are then in
    /// this machine's memory).
    pub on_cpu: bool,
    /// Whether architecture steps run (every op of a layer is computed).
    pub arch_steps: bool,
}

const F32: u64 = 4;

/// The parts of the estimate, each in bytes.
pub fn estimate(plan: &Plan) -> Vec<Part> {
    let r = plan.resolution as u64;
    let image = 3 * r * r * F32;
    let mut parts = Vec::new();
    match plan.embedded_images {
        Some(n) => parts.push(Part {
            what: format!("the embedded set, {n} images at {r}x{r}"),
            bytes: (n as u64).saturating_mul(image),
            flags: &["--embedded-images", "--resolution"],
        }),
        None => {
            let batches = plan.prefetch as u64 + 2;
            parts.push(Part {
                what: format!("{batches} decoded batches of {} at {r}x{r}", plan.batch),
                bytes: batches * plan.batch as u64 * image,
                flags: &["--batch-size", "--resolution", "--prefetch"],
            });
        }
    }
    let (weights, activations) = supernet_sizes(plan);
    parts.push(Part {
        what: "the supernet's weights and SGD momentum".into(),
        bytes: 2 * weights * F32,
        flags: &["--space"],
    });
    if plan.on_cpu {
        parts.push(Part {
            what: format!(
                "the activations a training step keeps, batch {} at {r}x{r}",
                plan.batch
            ),
            // Each layer's output and at least one more tensor as large
            // (its batch norm's or activation's) live until the backward pass.
            bytes: (plan.batch as u64).saturating_mul(2 * activations * F32),
            flags: &["--batch-size", "--resolution"],
        });
    }
    parts
}

/// The supernet's weights and the elements per image of its layers'
/// outputs at the search resolution: every op of every layer at its widest
/// when architecture steps mix them all, else the widest op of each layer.
fn supernet_sizes(plan: &Plan) -> (u64, u64) {
    let space = SearchSpaceConfig {
        input_resolution: plan.resolution,
        ..plan.space.clone()
    };
    let count = |spec: &BlockSpec| -> (u64, u64) {
        block_layers(spec).iter().fold((0, 0), |(w, a), l| {
            (w + l.params(), a + l.output_len() as u64)
        })
    };
    let (mut weights, mut activations) = (0, 0);
    for spec in space.fixed_parts().all() {
        let (w, a) = count(&spec);
        weights += w;
        activations += a;
    }
    for layer in space.layers().iter().flatten() {
        let mut widest = 0;
        for op in &space.ops {
            let range = space.width_range(op, layer.in_channels);
            let (w, a) = count(&space.op_shape(layer, op).at(range.max));
            weights += w;
            widest = widest.max(a);
            if plan.arch_steps {
                activations += a;
            }
        }
        if !plan.arch_steps {
            activations += widest;
        }
    }
    (weights, activations)
}

/// The memory this machine has available: `MemAvailable` of /proc/meminfo,
/// `None` where there is none (other systems: the check is skipped).
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// `bytes` for a reader: GB or MB, one decimal.
pub fn human(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// Refuses `parts` when their sum exceeds `available` (where known), with
/// the estimate, each part, what is available, and the flags to lower.
pub fn check(parts: &[Part], available: Option<u64>) -> Result<()> {
    let Some(available) = available else {
        return Ok(());
    };
    let total = parts.iter().fold(0u64, |t, p| t.saturating_add(p.bytes));
    if total <= available {
        return Ok(());
    }
    let mut biggest: Vec<&Part> = parts.iter().filter(|p| p.bytes > 0).collect();
    biggest.sort_by_key(|p| std::cmp::Reverse(p.bytes));
    let mut flags: Vec<&str> = Vec::new();
    for flag in biggest.iter().flat_map(|p| p.flags.iter()) {
        if !flags.contains(flag) {
            flags.push(flag);
        }
    }
    let listed: Vec<String> = biggest
        .iter()
        .map(|p| format!("{} {}", p.what, human(p.bytes)))
        .collect();
    Err(SearchError::Memory(format!(
        "this search needs at least {} of memory ({}), but {} is available (MemAvailable in /proc/meminfo); lower {}",
        human(total),
        listed.join("; "),
        human(available),
        flags.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(space: &SearchSpaceConfig, images: Option<usize>, r: u32, on_cpu: bool) -> Plan<'_> {
        Plan {
            space,
            resolution: r,
            batch: 32,
            embedded_images: images,
            prefetch: 4,
            on_cpu,
            arch_steps: true,
        }
    }

    #[test]
    fn the_embedded_set_at_1024_is_25_gb_and_refused_on_a_smaller_machine() {
        let space = SearchSpaceConfig::default();
        let parts = estimate(&plan(&space, Some(2000), 1024, false));
        assert_eq!(parts[0].bytes, 2000 * 3 * 1024 * 1024 * 4);
        let err = check(&parts, Some(16_000_000_000)).unwrap_err().to_string();
        assert!(
            err.contains("needs at least 25.")
                && err.contains("the embedded set, 2000 images at 1024x1024 25.2 GB")
                && err.contains("but 16.0 GB is available")
                && err.contains("lower --embedded-images, --resolution"),
            "{err}"
        );
        // Unknown memory: not checked.
        check(&parts, None).unwrap();
    }

    #[test]
    fn the_short_default_fits_and_cpu_activations_grow_with_the_resolution() {
        let space = SearchSpaceConfig::default();
        let small = estimate(&plan(&space, Some(1000), 48, true));
        let total = |p: &[Part]| p.iter().map(|p| p.bytes).sum::<u64>();
        assert!(total(&small) < 4_000_000_000, "{small:?}");
        check(&small, Some(4_000_000_000)).unwrap();
        let large = estimate(&plan(&space, None, 480, true));
        let act = |p: &[Part]| p.last().unwrap().bytes;
        assert!(act(&large) > 90 * act(&small), "{small:?} {large:?}");
        // On a GPU the activations are not this machine's.
        assert_eq!(estimate(&plan(&space, None, 480, false)).len(), 2);
    }
}
