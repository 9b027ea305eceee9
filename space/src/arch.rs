//! A derived network as JSON: per stage its depth and, per kept block, the op
//! and widths; with the space it belongs to and, once predicted, the table
//! that predicted its latency.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::block::BlockSpec;
use crate::config::{LayerShape, SearchSpaceConfig};
use crate::error::{Result, SpaceError};
use crate::table::{LatencyTable, Metadata};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// The space the network was derived from; the TF-NAS ImageNet space
    /// when omitted.
    #[serde(default)]
    pub space: SearchSpaceConfig,
    pub stages: Vec<StageArch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Prediction>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageArch {
    /// Number of kept blocks; `blocks` lists exactly these.
    pub depth: u32,
    pub blocks: Vec<BlockArch>,
}

/// One kept block. Only `op` and `mid_channels` are choices; the other
/// fields follow from the space and are checked against it, so that the file
/// reads on its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockArch {
    pub op: String,
    pub in_channels: u32,
    pub out_channels: u32,
    pub stride: u32,
    pub mid_channels: u32,
    pub se_channels: u32,
}

/// The latency a table predicts for this network, and which table said so.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    /// The table's prediction, with its header's correction applied where
    /// it has one (`LatencyTable::corrected_total`).
    pub latency_ms: f64,
    pub batch: u32,
    pub table: String,
    pub fingerprint: Metadata,
}

impl Architecture {
    /// Builds a validated architecture from choices: per stage, the
    /// `(op index, mid width)` of each kept block.
    pub fn from_choices(space: &SearchSpaceConfig, choices: &[Vec<(usize, u32)>]) -> Result<Self> {
        let layers = space.layers();
        let mut stages = Vec::with_capacity(choices.len());
        for (s, stage) in choices.iter().enumerate() {
            let mut blocks = Vec::with_capacity(stage.len());
            for (b, &(op, mid)) in stage.iter().enumerate() {
                let (layer, op) = match (layers.get(s).and_then(|l| l.get(b)), space.ops.get(op)) {
                    (Some(layer), Some(op)) => (layer, op),
                    _ => {
                        return Err(SpaceError::Arch {
                            stage: s + 1,
                            block: Some(b + 1),
                            message: format!("no such layer or op index {op}"),
                        })
                    }
                };
                blocks.push(BlockArch {
                    op: op.name.clone(),
                    in_channels: layer.in_channels,
                    out_channels: layer.out_channels,
                    stride: layer.stride,
                    mid_channels: mid,
                    se_channels: space.se_channels(op, layer.in_channels),
                });
            }
            stages.push(StageArch {
                depth: blocks.len() as u32,
                blocks,
            });
        }
        let arch = Architecture {
            space: space.clone(),
            stages,
            prediction: None,
        };
        arch.validate()?;
        Ok(arch)
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let arch: Architecture =
            serde_json::from_str(text).map_err(|e| SpaceError::ArchJson(e.to_string()))?;
        arch.validate()?;
        Ok(arch)
    }

    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| SpaceError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            SpaceError::ArchJson(m) => SpaceError::ArchJson(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("an architecture always serializes")
    }

    /// Checks that the network fits its space; errors name stage and block.
    pub fn validate(&self) -> Result<()> {
        self.space.validate()?;
        let space = &self.space;
        let layers = space.layers();
        if self.stages.len() != space.stages.len() {
            return Err(SpaceError::Arch {
                stage: self.stages.len().min(space.stages.len()) + 1,
                block: None,
                message: format!(
                    "the space has {} stages, the architecture {}",
                    space.stages.len(),
                    self.stages.len()
                ),
            });
        }
        for (s, (stage, stage_layers)) in self.stages.iter().zip(&layers).enumerate() {
            let stage_err = |message: String| SpaceError::Arch {
                stage: s + 1,
                block: None,
                message,
            };
            let max = space.stages[s].max_depth;
            if stage.depth == 0 || stage.depth > max {
                return Err(stage_err(format!(
                    "depth {} is outside 1..={max}",
                    stage.depth
                )));
            }
            if stage.blocks.len() != stage.depth as usize {
                return Err(stage_err(format!(
                    "depth is {} but {} blocks are listed",
                    stage.depth,
                    stage.blocks.len()
                )));
            }
            for (b, (block, layer)) in stage.blocks.iter().zip(stage_layers).enumerate() {
                check_block(space, block, layer, s, b)?;
            }
        }
        Ok(())
    }

    /// The blocks of the whole network in order: stem, second stem, the
    /// kept searchable blocks, head.
    pub fn block_specs(&self) -> Result<Vec<BlockSpec>> {
        self.validate()?;
        let space = &self.space;
        let fixed = space.fixed_parts();
        let layers = space.layers();
        let mut specs = vec![fixed.stem, fixed.second_stem];
        for (stage, stage_layers) in self.stages.iter().zip(&layers) {
            for (block, layer) in stage.blocks.iter().zip(stage_layers) {
                let op = &space.ops[space.op_index(&block.op).expect("validated")];
                specs.push(space.op_shape(layer, op).at(block.mid_channels));
            }
        }
        specs.push(fixed.head);
        Ok(specs)
    }

    /// Predicts the latency with `table` and records it with the table's
    /// fingerprint.
    pub fn with_prediction(mut self, table: &LatencyTable) -> Result<Self> {
        let latency = table.predict(&self)?;
        self.prediction = Some(Prediction {
            latency_ms: table.corrected_total(latency.total_ms),
            batch: table.batch(),
            table: table.origin().to_string(),
            fingerprint: table.metadata().clone(),
        });
        Ok(self)
    }

    /// Multiply-adds of one image through the whole network.
    pub fn macs(&self) -> Result<u64> {
        Ok(self.block_specs()?.iter().map(BlockSpec::macs).sum())
    }

    /// Parameters of the deployed network, BN included (as PyTorch counts).
    pub fn params(&self) -> Result<u64> {
        Ok(self.block_specs()?.iter().map(BlockSpec::params).sum())
    }

    /// TF-NAS-A on the default space (docs/method.md §7): full depth, e6
    /// ops, summing to 17.999 ms on the official GPU table.
    pub fn tfnas_a() -> Self {
        let space = SearchSpaceConfig::default();
        let op = |name: &str| space.op_index(name).expect("default op");
        let choices: Vec<Vec<(usize, u32)>> = [
            vec![("k3_e6_se", 83), ("k5_e6", 128)],
            vec![("k3_e6_se", 138), ("k3_e6", 297), ("k5_e6_se", 170)],
            vec![
                ("k5_e6_se", 248),
                ("k3_e6", 500),
                ("k3_e6", 424),
                ("k3_e6", 477),
            ],
            vec![
                ("k3_e6_se", 504),
                ("k3_e6", 796),
                ("k3_e6_se", 723),
                ("k3_e6_se", 555),
            ],
            vec![
                ("k3_e6", 813),
                ("k3_e6", 1370),
                ("k3_e6_se", 1138),
                ("k3_e6_se", 1359),
            ],
            vec![("k5_e6_se", 1203)],
        ]
        .iter()
        .map(|stage| stage.iter().map(|&(name, mid)| (op(name), mid)).collect())
        .collect();
        Architecture::from_choices(&space, &choices).expect("TF-NAS-A fits the default space")
    }
}

/// Checks block `b` of stage `s` (both from 0) against its `layer` of
/// `space`: a known op, the layer's channels and stride, the op's SE
/// channels and a width in the op's range; the error names the block.
fn check_block(
    space: &SearchSpaceConfig,
    block: &BlockArch,
    layer: &LayerShape,
    s: usize,
    b: usize,
) -> Result<()> {
    let err = |message: String| SpaceError::Arch {
        stage: s + 1,
        block: Some(b + 1),
        message,
    };
    let op = space
        .ops
        .iter()
        .find(|o| o.name == block.op)
        .ok_or_else(|| {
            let names: Vec<&str> = space.ops.iter().map(|o| o.name.as_str()).collect();
            err(format!(
                "unknown op '{}' (the space has {})",
                block.op,
                names.join(", ")
            ))
        })?;
    let expect = [
        ("in_channels", block.in_channels, layer.in_channels),
        ("out_channels", block.out_channels, layer.out_channels),
        ("stride", block.stride, layer.stride),
        (
            "se_channels",
            block.se_channels,
            space.se_channels(op, layer.in_channels),
        ),
    ];
    for (what, found, want) in expect {
        if found != want {
            return Err(err(format!(
                "{what} is {found}, but the space has {want} here for op '{}'",
                op.name
            )));
        }
    }
    let range = space.width_range(op, layer.in_channels);
    if !range.contains(block.mid_channels) {
        return Err(err(format!(
            "width {} is out of range [{}, {}] for op '{}'",
            block.mid_channels, range.min, range.max, op.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tfnas_a_matches_the_published_size() {
        let a = Architecture::tfnas_a();
        let depths: Vec<u32> = a.stages.iter().map(|s| s.depth).collect();
        assert_eq!(depths, [2, 3, 4, 4, 4, 1]);
        // docs/method.md §7: 456.7M MACs, 8.76M params with BN.
        let macs = a.macs().unwrap() as f64 / 1e6;
        let params = a.params().unwrap() as f64 / 1e6;
        assert!((macs - 456.7).abs() < 0.5, "MACs {macs}M");
        assert!((params - 8.76).abs() < 0.01, "params {params}M");
    }

    #[test]
    fn json_round_trip_and_default_space() {
        let a = Architecture::tfnas_a();
        let back = Architecture::from_json(&a.to_json_pretty()).unwrap();
        assert_eq!(back, a);
        // A file without "space" means the default space.
        let mut v: serde_json::Value = serde_json::to_value(&a).unwrap();
        v.as_object_mut().unwrap().remove("space");
        assert_eq!(Architecture::from_json(&v.to_string()).unwrap(), a);
    }

    fn broken(edit: impl FnOnce(&mut Architecture)) -> String {
        let mut a = Architecture::tfnas_a();
        edit(&mut a);
        a.validate().unwrap_err().to_string()
    }

    #[test]
    fn misfits_name_stage_and_block() {
        let e = broken(|a| {
            a.stages[1].depth = 4;
            let extra = a.stages[1].blocks[2].clone();
            a.stages[1].blocks.push(extra);
        });
        assert!(e.contains("stage 2") && e.contains("outside 1..=3"), "{e}");
        let e = broken(|a| a.stages[3].blocks[1].mid_channels = 1000);
        assert!(
            e.contains("stage 4, block 2") && e.contains("[448, 896]"),
            "{e}"
        );
        let e = broken(|a| a.stages[0].blocks[0].op = "k7_e6".into());
        assert!(
            e.contains("stage 1, block 1") && e.contains("unknown op 'k7_e6'"),
            "{e}"
        );
        let e = broken(|a| a.stages[2].blocks[0].stride = 1);
        assert!(
            e.contains("stage 3, block 1") && e.contains("stride"),
            "{e}"
        );
        let e = broken(|a| a.stages[4].blocks[3].se_channels = 192);
        assert!(
            e.contains("stage 5, block 4") && e.contains("se_channels"),
            "{e}"
        );
        let e = broken(|a| a.stages[2].blocks.pop().map(|_| ()).unwrap());
        assert!(e.contains("stage 3") && e.contains("4 but 3 blocks"), "{e}");
        let e = broken(|a| {
            a.stages.pop();
        });
        assert!(e.contains("6 stages"), "{e}");
    }
}
