//! One timed unit of a latency table and its canonical key.
//!
//! The key spells out every field, always in the same order, so that a key is
//! readable by a person, greppable, and parses back to the same spec:
//! `mbconv_r28_i40_o80_s2_k5_m240_se80_swish`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::Activation;
use crate::error::SpaceError;
use crate::layers::conv_out;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// conv kxk (`in → out`), BN folded, activation.
    Stem,
    /// A fixed inverted-residual block (the second stem).
    Fixed,
    /// A searchable inverted-residual block.
    Mbconv,
    /// 1x1 conv `in → mid`, activation, global pool, FC `mid → out`.
    Head,
}

impl BlockKind {
    pub const ALL: [BlockKind; 4] = [
        BlockKind::Stem,
        BlockKind::Fixed,
        BlockKind::Mbconv,
        BlockKind::Head,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Stem => "stem",
            BlockKind::Fixed => "fixed",
            BlockKind::Mbconv => "mbconv",
            BlockKind::Head => "head",
        }
    }
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything about a block except its mid width: the blocks of one shape
/// form one latency curve over the mid width, which lookups interpolate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockShape {
    pub kind: BlockKind,
    /// Input resolution (square).
    pub resolution: u32,
    pub in_channels: u32,
    pub out_channels: u32,
    pub stride: u32,
    pub kernel: u32,
    /// Squeeze-and-excite width; 0 for none.
    pub se_channels: u32,
    pub activation: Activation,
}

/// One entry of a latency table: a block shape at one mid width.
///
/// `mid_channels` is the expanded width of an inverted-residual block, the
/// feature width of the head, and 0 for the stem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockSpec {
    pub shape: BlockShape,
    pub mid_channels: u32,
}

impl BlockShape {
    pub fn at(self, mid_channels: u32) -> BlockSpec {
        BlockSpec {
            shape: self,
            mid_channels,
        }
    }

    pub fn output_resolution(&self) -> u32 {
        conv_out(self.resolution, self.kernel, self.stride)
    }
}

impl BlockSpec {
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// Whether the block adds its input to its output (inverted-residual
    /// blocks that keep shape).
    pub fn has_residual(&self) -> bool {
        matches!(self.shape.kind, BlockKind::Mbconv | BlockKind::Fixed)
            && self.shape.stride == 1
            && self.shape.in_channels == self.shape.out_channels
    }

    /// Whether an inverted-residual block has its 1x1 expansion conv; TF-NAS
    /// omits it when the mid width does not exceed the input width.
    pub fn has_expansion(&self) -> bool {
        matches!(self.shape.kind, BlockKind::Mbconv | BlockKind::Fixed)
            && self.mid_channels > self.shape.in_channels
    }
}

impl fmt::Display for BlockSpec {
    /// The canonical key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shape;
        write!(
            f,
            "{}_r{}_i{}_o{}_s{}_k{}_m{}_se{}_{}",
            s.kind,
            s.resolution,
            s.in_channels,
            s.out_channels,
            s.stride,
            s.kernel,
            self.mid_channels,
            s.se_channels,
            s.activation
        )
    }
}

const KEY_FIELDS: [(&str, &str); 7] = [
    ("r", "input resolution"),
    ("i", "input channels"),
    ("o", "output channels"),
    ("s", "stride"),
    ("k", "kernel"),
    ("m", "mid channels"),
    ("se", "SE channels"),
];

impl FromStr for BlockSpec {
    type Err = SpaceError;

    fn from_str(key: &str) -> Result<Self, SpaceError> {
        let fail = |reason: String| SpaceError::Key {
            key: key.to_string(),
            reason,
        };
        let parts: Vec<&str> = key.split('_').collect();
        if parts.len() != 9 {
            return Err(fail(format!(
                "expected 9 '_'-separated fields (kind_rRES_iIN_oOUT_sSTRIDE_kK_mMID_seSE_ACT), found {}",
                parts.len()
            )));
        }
        let kind = BlockKind::ALL
            .into_iter()
            .find(|k| k.as_str() == parts[0])
            .ok_or_else(|| {
                fail(format!(
                    "unknown block kind '{}' (expected stem, fixed, mbconv or head)",
                    parts[0]
                ))
            })?;
        let mut numbers = [0u32; 7];
        for (n, ((prefix, what), part)) in KEY_FIELDS.iter().zip(&parts[1..8]).enumerate() {
            let digits = part.strip_prefix(prefix).ok_or_else(|| {
                fail(format!(
                    "field {} should be '{prefix}<{what}>', found '{part}'",
                    n + 2
                ))
            })?;
            // Only plain decimal digits: "+5" or "05" would break canonicity.
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            numbers[n] = digits
                .parse()
                .ok()
                .filter(|_| canonical)
                .ok_or_else(|| fail(format!("{what} '{digits}' is not a canonical number")))?;
        }
        let activation: Activation = parts[8].parse().map_err(fail)?;
        let [resolution, in_channels, out_channels, stride, kernel, mid_channels, se_channels] =
            numbers;
        if resolution == 0 || in_channels == 0 || out_channels == 0 || stride == 0 {
            return Err(fail(
                "resolution, channels and stride must be positive".into(),
            ));
        }
        if kernel % 2 == 0 {
            return Err(fail(format!("kernel must be odd, got {kernel}")));
        }
        let needs_mid = kind != BlockKind::Stem;
        if needs_mid != (mid_channels > 0) {
            return Err(fail(if needs_mid {
                format!("a {kind} block needs a positive mid width")
            } else {
                "a stem has no mid width: use m0".into()
            }));
        }
        if matches!(kind, BlockKind::Stem | BlockKind::Head) && se_channels != 0 {
            return Err(fail(format!("a {kind} has no SE: use se0")));
        }
        Ok(BlockSpec {
            shape: BlockShape {
                kind,
                resolution,
                in_channels,
                out_channels,
                stride,
                kernel,
                se_channels,
                activation,
            },
            mid_channels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbconv() -> BlockSpec {
        BlockShape {
            kind: BlockKind::Mbconv,
            resolution: 28,
            in_channels: 40,
            out_channels: 80,
            stride: 2,
            kernel: 5,
            se_channels: 80,
            activation: Activation::Swish,
        }
        .at(240)
    }

    #[test]
    fn key_round_trips() {
        let spec = mbconv();
        assert_eq!(spec.key(), "mbconv_r28_i40_o80_s2_k5_m240_se80_swish");
        assert_eq!(spec.key().parse::<BlockSpec>().unwrap(), spec);
        for key in [
            "stem_r224_i3_o32_s2_k3_m0_se0_relu",
            "fixed_r112_i32_o16_s1_k3_m32_se8_relu",
            "head_r7_i320_o1000_s1_k1_m1280_se0_hswish",
        ] {
            assert_eq!(key.parse::<BlockSpec>().unwrap().key(), key);
        }
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let err = |key: &str| key.parse::<BlockSpec>().unwrap_err().to_string();
        assert!(err("mbconv_r28_i40").contains("expected 9"));
        assert!(err("conv_r28_i40_o80_s2_k5_m240_se80_swish").contains("unknown block kind"));
        assert!(err("mbconv_r28_x40_o80_s2_k5_m240_se80_swish").contains("input channels"));
        assert!(err("mbconv_r28_i40_o80_s2_k5_m240_se80_gelu").contains("unknown activation"));
        assert!(err("mbconv_r28_i040_o80_s2_k5_m240_se80_swish").contains("canonical"));
        assert!(err("mbconv_r28_i-4_o80_s2_k5_m240_se80_swish").contains("canonical"));
        assert!(err("mbconv_r28_i40_o80_s2_k4_m240_se80_swish").contains("odd"));
        assert!(err("mbconv_r28_i40_o80_s2_k5_m0_se80_swish").contains("mid width"));
        assert!(err("stem_r224_i3_o32_s2_k3_m8_se0_relu").contains("m0"));
        assert!(err("head_r7_i320_o1000_s1_k1_m1280_se4_swish").contains("se0"));
    }

    #[test]
    fn residual_and_expansion_follow_tfnas() {
        let spec = mbconv();
        assert!(!spec.has_residual());
        assert!(spec.has_expansion());
        let second_stem: BlockSpec = "fixed_r112_i32_o16_s1_k3_m32_se8_relu".parse().unwrap();
        assert!(!second_stem.has_expansion());
        let inner: BlockSpec = "mbconv_r14_i80_o80_s1_k3_m480_se0_swish".parse().unwrap();
        assert!(inner.has_residual());
        assert_eq!(inner.shape.output_resolution(), 14);
        assert_eq!(spec.shape.output_resolution(), 14);
    }
}
