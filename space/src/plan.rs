//! Which blocks a space has, and which of them a complete table must time.

use std::collections::{BTreeSet, HashMap};

use crate::block::{BlockKind, BlockShape, BlockSpec};
use crate::config::{LayerShape, OpConfig, SearchSpaceConfig};
use crate::error::{Result, SpaceError};

/// The blocks every network of a space has: stem, second stem, head. Their
/// summed latency is TF-NAS's `base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedParts {
    pub stem: BlockSpec,
    pub second_stem: BlockSpec,
    pub head: BlockSpec,
}

impl FixedParts {
    pub fn all(&self) -> [BlockSpec; 3] {
        [self.stem, self.second_stem, self.head]
    }
}

impl SearchSpaceConfig {
    pub fn fixed_parts(&self) -> FixedParts {
        let stem_res = self.input_resolution;
        let stem_out = crate::config::conv_output_resolution(stem_res, self.stem.stride);
        let stem = BlockShape {
            kind: BlockKind::Stem,
            resolution: stem_res,
            in_channels: self.input_channels,
            out_channels: self.stem.out_channels,
            stride: self.stem.stride,
            kernel: self.stem.kernel,
            se_channels: 0,
            activation: self.stem.activation,
        }
        .at(0);
        let s = &self.second_stem;
        let second_stem = BlockShape {
            kind: BlockKind::Fixed,
            resolution: stem_out,
            in_channels: self.stem.out_channels,
            out_channels: s.out_channels,
            stride: s.stride,
            kernel: s.kernel,
            se_channels: s.se_channels,
            activation: s.activation,
        }
        .at(s.mid_channels);
        let last = self
            .stages
            .last()
            .map_or(s.out_channels, |st| st.out_channels);
        let head = BlockShape {
            kind: BlockKind::Head,
            resolution: self.head_resolution(),
            in_channels: last,
            out_channels: self.num_classes,
            stride: 1,
            kernel: 1,
            se_channels: 0,
            activation: self.head.activation,
        }
        .at(self.head.feature_channels);
        FixedParts {
            stem,
            second_stem,
            head,
        }
    }

    /// The latency curve `op` follows in `layer`: ops that differ only in
    /// their width range (TF-NAS's non-SE e3 and e6) share one.
    pub fn op_shape(&self, layer: &LayerShape, op: &OpConfig) -> BlockShape {
        BlockShape {
            kind: BlockKind::Mbconv,
            resolution: layer.resolution,
            in_channels: layer.in_channels,
            out_channels: layer.out_channels,
            stride: layer.stride,
            kernel: op.kernel,
            se_channels: self.se_channels(op, layer.in_channels),
            activation: layer.activation,
        }
    }

    /// Every block a complete table of this space needs at `width_step`.
    pub fn table_plan(&self, width_step: u32) -> Result<TablePlan> {
        TablePlan::new(self, width_step, None)
    }

    /// [`table_plan`](Self::table_plan) plus, for an engine whose kernels
    /// pad channels to multiples of `align`, the unaligned probes a table
    /// with the `align N` width model prices unaligned widths from
    /// ([`TablePlan::probe_widths`]).
    pub fn table_plan_aligned(&self, width_step: u32, align: Option<u32>) -> Result<TablePlan> {
        TablePlan::new(self, width_step, align)
    }
}

/// The blocks to time, in network order (stem first, head last), each once.
#[derive(Clone, Debug)]
pub struct TablePlan {
    pub width_step: u32,
    pub blocks: Vec<BlockSpec>,
}

impl TablePlan {
    /// The width step of a table that names none: the build's and `plan`'s
    /// default (every 8th mid width, plus each op's min, initial and max).
    pub const DEFAULT_WIDTH_STEP: u32 = 8;

    /// Per curve, every multiple of `width_step` inside each op's width
    /// range, plus each op's min, initial and max width; `width_step = 1`
    /// gives every width. With `align`, each op's range also gets its
    /// [`probe_widths`](Self::probe_widths).
    pub fn new(space: &SearchSpaceConfig, width_step: u32, align: Option<u32>) -> Result<Self> {
        if width_step == 0 {
            return Err(SpaceError::Config(
                "the width step must be at least 1".into(),
            ));
        }
        if let Some(a) = align {
            crate::table::WidthModel::align(a).map_err(SpaceError::Config)?;
        }
        space.validate()?;
        let fixed = space.fixed_parts();
        // Curves in order of first appearance, widths sorted within a curve.
        let mut order: Vec<BlockShape> = Vec::new();
        let mut widths: HashMap<BlockShape, BTreeSet<u32>> = HashMap::new();
        let mut add = |shape: BlockShape, mids: &mut dyn Iterator<Item = u32>| {
            let set = widths.entry(shape).or_insert_with(|| {
                order.push(shape);
                BTreeSet::new()
            });
            set.extend(mids);
        };
        add(fixed.stem.shape, &mut [fixed.stem.mid_channels].into_iter());
        add(
            fixed.second_stem.shape,
            &mut [fixed.second_stem.mid_channels].into_iter(),
        );
        for layer in space.layers().iter().flatten() {
            for op in &space.ops {
                let range = space.width_range(op, layer.in_channels);
                let first = range.min.div_ceil(width_step) * width_step;
                let probes = align.map_or(Vec::new(), |a| Self::probe_widths(range, a));
                let mut mids = [range.min, range.initial, range.max]
                    .into_iter()
                    .chain((first..=range.max).step_by(width_step as usize))
                    .chain(probes);
                add(space.op_shape(layer, op), &mut mids);
            }
        }
        add(fixed.head.shape, &mut [fixed.head.mid_channels].into_iter());
        let blocks = order
            .iter()
            .flat_map(|shape| widths[shape].iter().map(|&m| shape.at(m)))
            .collect();
        Ok(TablePlan { width_step, blocks })
    }

    /// The unaligned widths a build times in a range so that the `align`
    /// width model can measure what unaligned widths cost: two, at about a
    /// third and two thirds of the range, each `align / 2 - 1` past an
    /// aligned width (3 past a multiple of 8: odd, as far from both aligned
    /// neighbours as an odd width gets), kept only strictly inside the
    /// range. A layer's six curves give twelve, whose mean is steady enough
    /// (docs/table-format.md).
    pub fn probe_widths(range: crate::config::WidthRange, align: u32) -> Vec<u32> {
        let past = (align / 2).saturating_sub(1).max(1);
        [1.0 / 3.0, 2.0 / 3.0]
            .into_iter()
            .map(|f| {
                let target = f64::from(range.min) + f * f64::from(range.max - range.min);
                (target as u32) / align * align + past
            })
            .filter(|&m| m > range.min && m < range.max && m % align != 0)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The distinct curves (shapes) of searchable blocks.
    pub fn searchable_shapes(&self) -> Vec<BlockShape> {
        let mut seen = Vec::new();
        for b in &self.blocks {
            if b.shape.kind == BlockKind::Mbconv && !seen.contains(&b.shape) {
                seen.push(b.shape);
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_space_has_the_official_66_curves_on_11_shapes() {
        let plan = SearchSpaceConfig::default().table_plan(8).unwrap();
        let shapes = plan.searchable_shapes();
        assert_eq!(shapes.len(), 66);
        let layer_shapes: BTreeSet<_> = shapes
            .iter()
            .map(|s| {
                (
                    s.resolution,
                    s.in_channels,
                    s.out_channels,
                    s.stride,
                    s.activation,
                )
            })
            .collect();
        assert_eq!(layer_shapes.len(), 11);
    }

    #[test]
    fn plan_counts_for_steps_1_and_8() {
        let space = SearchSpaceConfig::default();
        // Hand count. 11 layer shapes; per shape, 6 curves: non-SE k3 and
        // k5 span [2ic, 8ic] (e3 and e6 share them), SE curves span [2ic, 4ic]
        // (se = ic, e3 ops) or [4ic, 8ic] (se = 2ic, e6 ops).
        // Step 1: 2·(6ic+1) + 2·(2ic+1) + 2·(4ic+1) = 24ic + 6 per shape.
        // The 11 shapes' ic: 16, 24, 24, 40, 40, 80, 80, 112, 112, 192, 192.
        let ics = [16u32, 24, 24, 40, 40, 80, 80, 112, 112, 192, 192];
        let step1: u32 = ics.iter().map(|ic| 24 * ic + 6).sum();
        // Step 8: every ic is a multiple of 8, so per shape
        // 2·(6ic/8+1) + 2·(2ic/8+1) + 2·(4ic/8+1) = 3ic + 6, plus the initial
        // widths 3ic and 6ic that are multiples of 8 already.
        let step8: u32 = ics.iter().map(|ic| 3 * ic + 6).sum();
        let fixed = 3;
        assert_eq!(space.table_plan(1).unwrap().len() as u32, step1 + fixed);
        assert_eq!(space.table_plan(8).unwrap().len() as u32, step8 + fixed);
    }

    #[test]
    fn plan_is_deduplicated_ordered_and_keeps_op_widths() {
        let space = SearchSpaceConfig::default();
        let plan = space.table_plan(64).unwrap();
        let unique: BTreeSet<_> = plan.blocks.iter().collect();
        assert_eq!(unique.len(), plan.len());
        assert_eq!(plan.blocks[0].shape.kind, BlockKind::Stem);
        assert_eq!(plan.blocks.last().unwrap().shape.kind, BlockKind::Head);
        // Every op's min, initial and max width is there whatever the step.
        for layer in space.layers().iter().flatten() {
            for op in &space.ops {
                let r = space.width_range(op, layer.in_channels);
                for mid in [r.min, r.initial, r.max] {
                    assert!(plan.blocks.contains(&space.op_shape(layer, op).at(mid)));
                }
            }
        }
        assert!(space.table_plan(0).is_err());
    }
}
