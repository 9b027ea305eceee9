//! The search space as data.
//!
//! TF-NAS hard-codes its space in Python, so dropping SE or trying kernel 7
//! meant editing two model files (official issue #3). Here the space is a
//! serializable [`SearchSpaceConfig`] whose default is the TF-NAS ImageNet
//! space; every other space is a JSON or TOML file.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, SpaceError};

/// Activation of a block. Set per stage in TF-NAS, never searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    /// `x * sigmoid(x)`; TF-NAS's "hswish" in its issue #3 is this one.
    Swish,
    /// `x * relu6(x + 3) / 6`, MobileNetV3's hard swish.
    Hswish,
}

impl Activation {
    pub const ALL: [Activation; 3] = [Activation::Relu, Activation::Swish, Activation::Hswish];

    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Swish => "swish",
            Activation::Hswish => "hswish",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Activation::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown activation '{s}' (expected relu, swish or hswish)"))
    }
}

/// The first convolution: conv kxk, BN, activation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemConfig {
    pub out_channels: u32,
    pub kernel: u32,
    pub stride: u32,
    pub activation: Activation,
}

/// A fixed inverted-residual block (TF-NAS's second stem). The expansion conv
/// exists only when `mid_channels > in_channels`; `se_channels = 0` drops SE.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedBlockConfig {
    pub out_channels: u32,
    pub mid_channels: u32,
    pub se_channels: u32,
    pub kernel: u32,
    pub stride: u32,
    pub activation: Activation,
}

/// One stage of searchable layers. Its first block has the stage's stride and
/// changes channels; the others keep `out_channels` at stride 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub out_channels: u32,
    pub max_depth: u32,
    pub stride: u32,
    pub activation: Activation,
}

/// A candidate operation: an inverted-residual (MBConv) block whose mid width
/// is `expansion × in` initially and may move within
/// `[min_expansion × in, max_expansion × in]` during the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpConfig {
    pub name: String,
    pub kernel: u32,
    pub expansion: u32,
    pub min_expansion: u32,
    pub max_expansion: u32,
    /// SE width = `se_ratio × in` (fixed, does not follow the mid width);
    /// 0 means no squeeze-and-excite.
    pub se_ratio: u32,
}

/// The 1x1 feature-mix conv to `feature_channels`, global pooling and the
/// fully connected classifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    pub feature_channels: u32,
    pub activation: Activation,
}

/// A whole search space. `Default` is the TF-NAS ImageNet space
/// (docs/method.md §1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpaceConfig {
    pub name: String,
    pub input_resolution: u32,
    pub input_channels: u32,
    pub num_classes: u32,
    pub stem: StemConfig,
    pub second_stem: FixedBlockConfig,
    pub stages: Vec<StageConfig>,
    pub ops: Vec<OpConfig>,
    pub head: HeadConfig,
}

/// The shape of one searchable layer, fixed by the space whatever op fills it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayerShape {
    /// Input resolution (square).
    pub resolution: u32,
    pub in_channels: u32,
    pub out_channels: u32,
    pub stride: u32,
    pub activation: Activation,
}

/// The mid-width range of one op in one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WidthRange {
    pub min: u32,
    pub initial: u32,
    pub max: u32,
}

impl WidthRange {
    pub fn contains(&self, mid: u32) -> bool {
        (self.min..=self.max).contains(&mid)
    }
}

/// The sane bounds of a space, `(min, max)` per kind of field: wide enough
/// for any network a latency table is made for, narrow enough that every
/// width product fits u32 (channels × expansion ≤ 2^14 × 2^16) and a
/// complete table fits in memory.
pub struct Limits {
    pub resolution: (u32, u32),
    pub input_channels: (u32, u32),
    pub classes: (u32, u32),
    pub channels: (u32, u32),
    pub stride: (u32, u32),
    pub stages: (u32, u32),
    pub depth: (u32, u32),
    pub ops: (u32, u32),
    pub expansion: (u32, u32),
    /// Widths of all layers and ops at width step 1, summed.
    pub plan_widths: u64,
}

pub const LIMITS: Limits = Limits {
    resolution: (8, 4096),
    input_channels: (1, 64),
    classes: (1, 1_000_000),
    channels: (1, 16_384),
    stride: (1, 8),
    stages: (1, 32),
    depth: (1, 64),
    ops: (1, 64),
    // Large enough for a space made to exhaust GPU memory
    // (tests/fixtures/space_oom.json, 8000); the plan size bounds the rest.
    expansion: (1, 65_536),
    plan_widths: 2_000_000,
};

/// Output size of a conv with padding `k/2` and odd `k`: `ceil(res / stride)`.
/// The size is the same for every odd kernel, so this is
/// [`conv_out`](crate::layers::conv_out), the one formula, at kernel 1.
pub fn conv_output_resolution(resolution: u32, stride: u32) -> u32 {
    crate::layers::conv_out(resolution, 1, stride)
}

fn op(name: &str, kernel: u32, expansion: u32, se_ratio: u32) -> OpConfig {
    // TF-NAS: e3 moves in [2ic, 4ic], e6 in [4ic, 8ic], i.e. [max/2, max].
    let max_expansion = if expansion == 3 { 4 } else { 8 };
    OpConfig {
        name: name.to_string(),
        kernel,
        expansion,
        min_expansion: max_expansion / 2,
        max_expansion,
        se_ratio,
    }
}

impl Default for SearchSpaceConfig {
    fn default() -> Self {
        use Activation::{Relu, Swish};
        let stage = |out_channels, max_depth, stride, activation| StageConfig {
            out_channels,
            max_depth,
            stride,
            activation,
        };
        SearchSpaceConfig {
            name: "tfnas-imagenet".to_string(),
            input_resolution: 224,
            input_channels: 3,
            num_classes: 1000,
            stem: StemConfig {
                out_channels: 32,
                kernel: 3,
                stride: 2,
                activation: Relu,
            },
            second_stem: FixedBlockConfig {
                out_channels: 16,
                mid_channels: 32,
                se_channels: 8,
                kernel: 3,
                stride: 1,
                activation: Relu,
            },
            stages: vec![
                stage(24, 2, 2, Relu),
                stage(40, 3, 2, Swish),
                stage(80, 4, 2, Swish),
                stage(112, 4, 1, Swish),
                stage(192, 4, 2, Swish),
                stage(320, 1, 1, Swish),
            ],
            // PRIMITIVES of the official model_search.py, in its order.
            ops: vec![
                op("k3_e3", 3, 3, 0),
                op("k3_e6", 3, 6, 0),
                op("k5_e3", 5, 3, 0),
                op("k5_e6", 5, 6, 0),
                op("k3_e3_se", 3, 3, 1),
                op("k3_e6_se", 3, 6, 2),
                op("k5_e3_se", 5, 3, 1),
                op("k5_e6_se", 5, 6, 2),
            ],
            head: HeadConfig {
                feature_channels: 1280,
                activation: Swish,
            },
        }
    }
}

impl SearchSpaceConfig {
    /// Reads a space from a `.json` or `.toml` file and validates it.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| SpaceError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let file_error = |message: String| SpaceError::ConfigFile {
            path: path.to_path_buf(),
            message,
        };
        let config: SearchSpaceConfig = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| file_error(e.to_string()))?,
            Some("json") => serde_json::from_str(&text).map_err(|e| file_error(e.to_string()))?,
            _ => {
                return Err(file_error(
                    "a search space file must end in .json or .toml".into(),
                ))
            }
        };
        config.validate().map_err(|e| file_error(e.to_string()))?;
        Ok(config)
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a space always serializes")
    }

    /// A short digest of the canonical JSON, so a table or an architecture can
    /// say which space it belongs to.
    pub fn digest(&self) -> String {
        let json = serde_json::to_string(self).expect("a space always serializes");
        let hash = Sha256::digest(json.as_bytes());
        hash[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks everything the rest of the code relies on, so that a bad file
    /// fails here with a message rather than deep inside the profiler.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(SpaceError::Config(m));
        if self.input_resolution == 0 || self.input_channels == 0 || self.num_classes == 0 {
            return bad("input_resolution, input_channels and num_classes must be positive".into());
        }
        self.check_bounds()?;
        check_conv(
            "stem",
            self.stem.kernel,
            self.stem.stride,
            self.stem.out_channels,
        )?;
        let s = &self.second_stem;
        check_conv("second_stem", s.kernel, s.stride, s.out_channels)?;
        if s.mid_channels == 0 {
            return bad("second_stem: mid_channels must be positive".into());
        }
        if self.stages.is_empty() {
            return bad("the space has no stages".into());
        }
        for (i, stage) in self.stages.iter().enumerate() {
            let what = format!("stage {}", i + 1);
            check_conv(&what, 1, stage.stride, stage.out_channels)?;
            if stage.max_depth == 0 {
                return bad(format!("{what}: max_depth must be at least 1"));
            }
        }
        if self.ops.is_empty() {
            return bad("the space has no candidate ops".into());
        }
        for (i, op) in self.ops.iter().enumerate() {
            if op.name.trim().is_empty() {
                return bad(format!("op {}: empty name", i + 1));
            }
            // Names go into architecture codes (`op:mid` joined by `+` and
            // `/`) and CSV rows, which must parse back.
            if op
                .name
                .contains(|c: char| matches!(c, ':' | '+' | '/' | ',' | '"') || c.is_whitespace())
            {
                return bad(format!(
                    "op name '{}': no ':', '+', '/', ',', quotes or spaces (names go into architecture codes and CSV rows)",
                    op.name
                ));
            }
            if self.ops[..i].iter().any(|o| o.name == op.name) {
                return bad(format!("op name '{}' appears twice", op.name));
            }
            check_conv(&format!("op '{}'", op.name), op.kernel, 1, 1)?;
            if !(1 <= op.min_expansion
                && op.min_expansion <= op.expansion
                && op.expansion <= op.max_expansion)
            {
                return bad(format!(
                    "op '{}': need 1 <= min_expansion <= expansion <= max_expansion, got {} <= {} <= {}",
                    op.name, op.min_expansion, op.expansion, op.max_expansion
                ));
            }
        }
        if self.head.feature_channels == 0 {
            return bad("head: feature_channels must be positive".into());
        }
        self.check_duplicate_ops()?;
        self.check_kernels_fit()?;
        self.check_plan_size()
    }

    /// Every count within [`LIMITS`]: beyond them u32 width arithmetic
    /// wraps (4e9 channels became `m1935228928`) or a plan takes gigabytes.
    fn check_bounds(&self) -> Result<()> {
        let mut fields: Vec<(String, u32, (u32, u32))> = vec![
            (
                "input_resolution".into(),
                self.input_resolution,
                LIMITS.resolution,
            ),
            (
                "input_channels".into(),
                self.input_channels,
                LIMITS.input_channels,
            ),
            ("num_classes".into(), self.num_classes, LIMITS.classes),
            (
                "stem.out_channels".into(),
                self.stem.out_channels,
                LIMITS.channels,
            ),
            ("stem.stride".into(), self.stem.stride, LIMITS.stride),
            (
                "second_stem.out_channels".into(),
                self.second_stem.out_channels,
                LIMITS.channels,
            ),
            (
                "second_stem.mid_channels".into(),
                self.second_stem.mid_channels,
                LIMITS.channels,
            ),
            (
                "second_stem.se_channels".into(),
                self.second_stem.se_channels,
                LIMITS.channels,
            ),
            (
                "second_stem.stride".into(),
                self.second_stem.stride,
                LIMITS.stride,
            ),
            (
                "head.feature_channels".into(),
                self.head.feature_channels,
                LIMITS.channels,
            ),
            (
                "the number of stages".into(),
                self.stages.len().min(u32::MAX as usize) as u32,
                LIMITS.stages,
            ),
            (
                "the number of ops".into(),
                self.ops.len().min(u32::MAX as usize) as u32,
                LIMITS.ops,
            ),
        ];
        for (i, stage) in self.stages.iter().enumerate() {
            let name = |f: &str| format!("stage {}: {f}", i + 1);
            fields.push((name("out_channels"), stage.out_channels, LIMITS.channels));
            fields.push((name("max_depth"), stage.max_depth, LIMITS.depth));
            fields.push((name("stride"), stage.stride, LIMITS.stride));
        }
        for op in &self.ops {
            let name = |f: &str| format!("op '{}': {f}", op.name);
            fields.push((name("max_expansion"), op.max_expansion, LIMITS.expansion));
            fields.push((name("se_ratio"), op.se_ratio, LIMITS.expansion));
        }
        for (field, value, (lo, hi)) in fields {
            // Zero counts have their own messages further on.
            if value != 0 && !(lo..=hi).contains(&value) {
                return Err(SpaceError::Config(format!(
                    "{field} {value} is outside [{lo}, {hi}]"
                )));
            }
        }
        Ok(())
    }

    /// Two ops with the same kernel, widths and SE are one op under two
    /// names: its latency and probability would be counted twice.
    fn check_duplicate_ops(&self) -> Result<()> {
        let same = |a: &OpConfig, b: &OpConfig| {
            (
                a.kernel,
                a.expansion,
                a.min_expansion,
                a.max_expansion,
                a.se_ratio,
            ) == (
                b.kernel,
                b.expansion,
                b.min_expansion,
                b.max_expansion,
                b.se_ratio,
            )
        };
        for (i, op) in self.ops.iter().enumerate() {
            if let Some(twin) = self.ops[..i].iter().find(|o| same(o, op)) {
                return Err(SpaceError::Config(format!(
                    "ops '{}' and '{}' are the same op (kernel, expansions and se_ratio) under two names",
                    twin.name, op.name
                )));
            }
        }
        Ok(())
    }

    /// A kernel wider than twice its feature map (plus one) has taps that
    /// only ever see padding (kernel 99 on a 7x7 map).
    fn check_kernels_fit(&self) -> Result<()> {
        let fits = |kernel: u32, resolution: u32| kernel <= 2 * resolution + 1;
        let stem_res = self.input_resolution;
        if !fits(self.stem.kernel, stem_res) {
            return Err(SpaceError::Config(format!(
                "stem: kernel {} does not fit its {stem_res}x{stem_res} input (at most {})",
                self.stem.kernel,
                2 * stem_res + 1
            )));
        }
        let second_res = conv_output_resolution(stem_res, self.stem.stride);
        if !fits(self.second_stem.kernel, second_res) {
            return Err(SpaceError::Config(format!(
                "second_stem: kernel {} does not fit its {second_res}x{second_res} input (at most {})",
                self.second_stem.kernel,
                2 * second_res + 1
            )));
        }
        for (s, stage) in self.layers().iter().enumerate() {
            let res = stage.iter().map(|l| l.resolution).min().unwrap_or(1);
            let res = res.min(
                stage
                    .last()
                    .map_or(res, |l| conv_output_resolution(l.resolution, l.stride)),
            );
            for op in &self.ops {
                if !fits(op.kernel, res) {
                    return Err(SpaceError::Config(format!(
                        "op '{}': kernel {} does not fit stage {}'s {res}x{res} feature maps (at most {})",
                        op.name,
                        op.kernel,
                        s + 1,
                        2 * res + 1
                    )));
                }
            }
        }
        Ok(())
    }

    /// The widths a complete table at width step 1 would time, counted in
    /// u64 before any plan is built (max_expansion 1,000,000 made `plan`
    /// take 5 GB).
    fn check_plan_size(&self) -> Result<()> {
        let mut widths: u64 = 0;
        for stage in self.layers() {
            for layer in &stage {
                for op in &self.ops {
                    let ic = u64::from(layer.in_channels);
                    let span = (u64::from(op.max_expansion) - u64::from(op.min_expansion)) * ic + 1;
                    widths += span;
                }
            }
        }
        if widths > LIMITS.plan_widths {
            return Err(SpaceError::Config(format!(
                "the ops' width ranges (min_expansion..max_expansion times each layer's input channels) hold {widths} widths, more than the {} a table can sensibly time",
                LIMITS.plan_widths
            )));
        }
        Ok(())
    }

    /// Resolution after the stem and the second stem, i.e. at stage 1's input.
    pub fn stem_output_resolution(&self) -> u32 {
        let r = conv_output_resolution(self.input_resolution, self.stem.stride);
        conv_output_resolution(r, self.second_stem.stride)
    }

    /// The shapes of every searchable layer, stage by stage, at full depth.
    pub fn layers(&self) -> Vec<Vec<LayerShape>> {
        let mut resolution = self.stem_output_resolution();
        let mut channels = self.second_stem.out_channels;
        let mut out = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let mut layers = Vec::with_capacity(stage.max_depth as usize);
            for b in 0..stage.max_depth {
                let stride = if b == 0 { stage.stride } else { 1 };
                layers.push(LayerShape {
                    resolution,
                    in_channels: channels,
                    out_channels: stage.out_channels,
                    stride,
                    activation: stage.activation,
                });
                resolution = conv_output_resolution(resolution, stride);
                channels = stage.out_channels;
            }
            out.push(layers);
        }
        out
    }

    /// Resolution entering the head (after every stage at full depth; depth
    /// never changes it because only first blocks have a stride).
    pub fn head_resolution(&self) -> u32 {
        self.stages
            .iter()
            .fold(self.stem_output_resolution(), |r, s| {
                conv_output_resolution(r, s.stride)
            })
    }

    pub fn op_index(&self, name: &str) -> Option<usize> {
        self.ops.iter().position(|o| o.name == name)
    }

    /// Mid-width range of `op` in a layer with `in_channels` inputs.
    pub fn width_range(&self, op: &OpConfig, in_channels: u32) -> WidthRange {
        WidthRange {
            min: op.min_expansion * in_channels,
            initial: op.expansion * in_channels,
            max: op.max_expansion * in_channels,
        }
    }

    pub fn se_channels(&self, op: &OpConfig, in_channels: u32) -> u32 {
        op.se_ratio * in_channels
    }
}

fn check_conv(what: &str, kernel: u32, stride: u32, channels: u32) -> Result<()> {
    if kernel == 0 || kernel % 2 == 0 {
        return Err(SpaceError::Config(format!(
            "{what}: kernel must be odd and positive, got {kernel}"
        )));
    }
    if stride == 0 {
        return Err(SpaceError::Config(format!(
            "{what}: stride must be positive"
        )));
    }
    if channels == 0 {
        return Err(SpaceError::Config(format!(
            "{what}: channels must be positive"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_space_matches_the_method() {
        let space = SearchSpaceConfig::default();
        space.validate().unwrap();
        let depths: Vec<u32> = space.stages.iter().map(|s| s.max_depth).collect();
        assert_eq!(depths, [2, 3, 4, 4, 4, 1]);
        let layers = space.layers();
        let res: Vec<u32> = layers.iter().map(|l| l[0].resolution).collect();
        assert_eq!(res, [112, 56, 28, 14, 14, 7]);
        assert_eq!(space.head_resolution(), 7);
        assert_eq!(layers[2][1].in_channels, 80);
        assert_eq!(layers[2][1].resolution, 14);
        let e6 = &space.ops[space.op_index("k3_e6").unwrap()];
        assert_eq!(
            space.width_range(e6, 40),
            WidthRange {
                min: 160,
                initial: 240,
                max: 320
            }
        );
        let e6se = &space.ops[space.op_index("k5_e6_se").unwrap()];
        assert_eq!(space.se_channels(e6se, 40), 80);
    }

    #[test]
    fn json_and_toml_round_trip() {
        let space = SearchSpaceConfig::default();
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("s.json");
        std::fs::write(&json, space.to_json_pretty()).unwrap();
        assert_eq!(SearchSpaceConfig::from_path(&json).unwrap(), space);
        let tml = dir.path().join("s.toml");
        std::fs::write(&tml, toml::to_string(&space).unwrap()).unwrap();
        assert_eq!(SearchSpaceConfig::from_path(&tml).unwrap(), space);
    }

    #[test]
    fn bad_spaces_are_refused_with_a_reason() {
        let mut space = SearchSpaceConfig::default();
        space.ops[1].kernel = 4;
        assert!(space.validate().unwrap_err().to_string().contains("odd"));
        let mut space = SearchSpaceConfig::default();
        space.ops[2].name = "k3_e3".into();
        assert!(space.validate().unwrap_err().to_string().contains("twice"));
        // Out of range, wrapping, too large to plan, duplicated, too wide.
        type Change = fn(&mut SearchSpaceConfig);
        let cases: [(&str, Change); 7] = [
            ("stage 2: out_channels 4000000000", |s| {
                s.stages[1].out_channels = 4_000_000_000
            }),
            ("input_resolution 1 ", |s| s.input_resolution = 1),
            ("input_resolution 100000", |s| s.input_resolution = 100_000),
            ("stage 6: max_depth 1000", |s| s.stages[5].max_depth = 1000),
            ("max_expansion 1000000", |s| {
                s.ops[0].max_expansion = 1_000_000
            }),
            ("same op", |s| {
                s.ops.push(OpConfig {
                    name: "again".into(),
                    ..s.ops[0].clone()
                })
            }),
            ("kernel 99", |s| s.ops[0].kernel = 99),
        ];
        for (words, change) in cases {
            let mut space = SearchSpaceConfig::default();
            change(&mut space);
            let e = space.validate().unwrap_err().to_string();
            assert!(e.contains(words), "{words}: {e}");
        }
        let mut space = SearchSpaceConfig::default();
        space.ops[0].max_expansion = 64;
        space.stages[4].out_channels = 16_000;
        let e = space.validate().unwrap_err().to_string();
        assert!(e.contains("widths, more than"), "{e}");
        let mut space = SearchSpaceConfig::default();
        space.ops[0].max_expansion = 20_000;
        let e = space.validate().unwrap_err().to_string();
        assert!(e.contains("widths, more than"), "{e}");
        let mut space = SearchSpaceConfig::default();
        space.stages[3].max_depth = 0;
        assert!(space
            .validate()
            .unwrap_err()
            .to_string()
            .contains("stage 4"));
        // A name that would not parse back out of an architecture code or a
        // CSV row.
        for bad in ["x:1+y", "a/b", "a+b", "a:b", "a,b", "a b", "a\"b"] {
            let mut space = SearchSpaceConfig::default();
            space.ops[0].name = bad.into();
            let e = space.validate().unwrap_err().to_string();
            assert!(e.contains("architecture codes"), "{bad}: {e}");
        }
    }

    #[test]
    fn digest_tells_spaces_apart() {
        let a = SearchSpaceConfig::default();
        let mut b = a.clone();
        b.ops.retain(|o| o.se_ratio == 0);
        assert_eq!(a.digest(), SearchSpaceConfig::default().digest());
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest().len(), 16);
    }
}
