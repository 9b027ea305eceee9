//! Human-readable descriptions of a space and its table plan, shared by both
//! programs so they describe a space the same way.

use std::fmt::Write;

use crate::block::BlockKind;
use crate::config::SearchSpaceConfig;
use crate::plan::TablePlan;

impl SearchSpaceConfig {
    /// A few lines per stage: shapes, depth, activation, and the ops.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let f = self.fixed_parts();
        let _ = writeln!(
            s,
            "space '{}' (digest {}): {}x{} input, {} classes",
            self.name,
            self.digest(),
            self.input_resolution,
            self.input_resolution,
            self.num_classes
        );
        let _ = writeln!(s, "  stem         {}", f.stem);
        let _ = writeln!(s, "  second stem  {}", f.second_stem);
        for (i, (stage, layers)) in self.stages.iter().zip(self.layers()).enumerate() {
            let first = layers[0];
            let _ = writeln!(
                s,
                "  stage {}      {}->{} stride {} at {}x{}, depth 1..={}, {}",
                i + 1,
                first.in_channels,
                stage.out_channels,
                stage.stride,
                first.resolution,
                first.resolution,
                stage.max_depth,
                stage.activation
            );
        }
        let _ = writeln!(s, "  head         {}", f.head);
        let ops: Vec<String> = self
            .ops
            .iter()
            .map(|o| {
                let se = if o.se_ratio == 0 {
                    String::new()
                } else {
                    format!(", SE {}x in", o.se_ratio)
                };
                format!(
                    "{} (k{}, mid {}x in within [{}x, {}x]{se})",
                    o.name, o.kernel, o.expansion, o.min_expansion, o.max_expansion
                )
            })
            .collect();
        let _ = writeln!(s, "  ops          {}", ops.join("; "));
        s
    }
}

impl TablePlan {
    /// Counts of the plan: entries by kind and curves.
    pub fn describe(&self) -> String {
        let count = |k: BlockKind| self.blocks.iter().filter(|b| b.shape.kind == k).count();
        format!(
            "table plan at width step {}: {} entries ({} searchable on {} curves, {} stem, {} fixed, {} head)",
            self.width_step,
            self.len(),
            count(BlockKind::Mbconv),
            self.searchable_shapes().len(),
            count(BlockKind::Stem),
            count(BlockKind::Fixed),
            count(BlockKind::Head),
        )
    }
}
