//! Whether a table's keys belong to a space: a well-formed key of another
//! space (`m9999`, `r999`) is no measurement of any network the search can
//! build, and a table carrying one was made for something else.

use std::collections::HashMap;

use super::{meta, LatencyTable};
use crate::block::{BlockShape, BlockSpec};
use crate::config::SearchSpaceConfig;
use crate::error::{Result, SpaceError};

/// How many out-of-space keys a message lists before it counts the rest.
const LISTED: usize = 5;

/// Every block shape of a space with the mid width ranges its ops allow.
struct Blocks {
    fixed: [BlockSpec; 3],
    ranges: HashMap<BlockShape, Vec<(u32, u32)>>,
}

impl Blocks {
    fn of(space: &SearchSpaceConfig) -> Self {
        let mut ranges: HashMap<BlockShape, Vec<(u32, u32)>> = HashMap::new();
        for stage in space.layers() {
            for layer in &stage {
                for op in &space.ops {
                    let r = space.width_range(op, layer.in_channels);
                    ranges
                        .entry(space.op_shape(layer, op))
                        .or_default()
                        .push((r.min, r.max));
                }
            }
        }
        Blocks {
            fixed: space.fixed_parts().all(),
            ranges,
        }
    }

    /// A fixed part exactly, or a searchable shape of the space at a mid
    /// width no wider than its ops allow. Narrower widths are accepted:
    /// the official TF-NAS tables time each shape's curve from below its
    /// ops' ranges, which costs a search nothing.
    fn contains(&self, spec: &BlockSpec) -> bool {
        self.fixed.contains(spec)
            || self
                .ranges
                .get(&spec.shape)
                .is_some_and(|rs| rs.iter().any(|&(_, hi)| spec.mid_channels <= hi))
    }
}

impl LatencyTable {
    /// The entries no network of `space` contains, with their lines.
    pub fn keys_outside(&self, space: &SearchSpaceConfig) -> Vec<(u64, BlockSpec)> {
        let blocks = Blocks::of(space);
        self.entries()
            .iter()
            .filter(|e| !blocks.contains(&e.spec))
            .map(|e| (self.line_of(&e.spec).unwrap_or(0), e.spec))
            .collect()
    }

    /// Refuses a table whose header names another space's digest, or with
    /// entries outside `space`, naming the first few with their lines.
    pub fn check_in_space(&self, space: &SearchSpaceConfig) -> Result<()> {
        if let Some(digest) = self.metadata().get(meta::SPACE_DIGEST) {
            if digest != space.digest() {
                return Err(SpaceError::Table {
                    file: self.origin().to_string(),
                    line: self.header_line_of(meta::SPACE_DIGEST).unwrap_or(1),
                    column: None,
                    message: format!(
                        "header {} {digest} contradicts the space '{}' in use (digest {}): the table was planned for another space",
                        meta::SPACE_DIGEST,
                        space.name,
                        space.digest()
                    ),
                });
            }
        }
        let outside = self.keys_outside(space);
        let Some(&(line, _)) = outside.first() else {
            return Ok(());
        };
        Err(SpaceError::Table {
            file: self.origin().to_string(),
            line,
            column: Some("key".into()),
            message: describe_outside(&outside, space),
        })
    }
}

/// `3 entries are outside the space 'x': 'k' (line 9), ...`.
pub fn describe_outside(outside: &[(u64, BlockSpec)], space: &SearchSpaceConfig) -> String {
    let listed: Vec<String> = outside
        .iter()
        .take(LISTED)
        .map(|(line, spec)| format!("'{spec}' (line {line})"))
        .collect();
    let more = outside.len().saturating_sub(LISTED);
    format!(
        "{} entr{} no network of the space '{}' (digest {}) contains: {}{}",
        outside.len(),
        if outside.len() == 1 {
            "y is"
        } else {
            "ies are"
        },
        space.name,
        space.digest(),
        listed.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}
