//! The derived network as a stand-alone trainable network (not the
//! supernet), built from `space::Architecture::block_specs()` with the
//! layers `space/src/layers.rs` lowers a block to, but with batch norm as
//! its own layer (trained, not folded):
//!
//! - stem: conv kxk, BN, activation;
//! - second stem and searchable blocks: expansion 1x1 conv, BN, activation
//!   (absent when the block does not expand), depthwise kxk conv, BN,
//!   activation, optional squeeze-and-excite, projection 1x1 conv, BN, and
//!   the input added when the stride is 1 and the widths match, its branch
//!   dropped per image with drop-connect while training;
//! - head: 1x1 conv to the head width, BN, activation, global average pool,
//!   dropout, fully connected layer to the data's classes.
//!
//! Parameter names are TF-NAS's (`models/model_eval.py` and
//! `models/layers.py` of the official code, without DataParallel's
//! `module.` prefix): `first_stem.conv.weight`,
//! `second_stem.depth_conv.bn.running_mean`,
//! `stage3.0.inverted_bottleneck.conv.weight`,
//! `stage3.0.squeeze_excite.conv_reduce.bias`,
//! `feature_mix_layer.bn.weight`, `classifier.linear.weight`
//! (docs/train-export.md).

use std::rc::Rc;

use space::{Activation, Architecture, BlockKind, BlockSpec};
use tch::nn::{self, Init, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::dist::{BatchNorm, Dist};
use crate::error::{Result, SearchError};
use crate::layout;
use crate::train::recipe::BN_INIT_SCALE;

/// PyTorch's default initialisation of a convolution or linear layer
/// (`kaiming_uniform_(a=√5)`: uniform in ±1/√fan_in), which the official
/// code keeps; biases start at 0 as its `_initialization` sets them.
fn default_init(fan_in: i64) -> Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

fn conv(
    p: &nn::Path,
    cin: i64,
    cout: i64,
    k: i64,
    stride: i64,
    groups: i64,
    bias: bool,
) -> nn::Conv2D {
    let config = nn::ConvConfig {
        stride,
        padding: k / 2,
        groups,
        bias,
        ws_init: default_init(cin / groups * k * k),
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, config)
}

fn batch_norm(p: &nn::Path, c: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        ws_init: Init::Const(BN_INIT_SCALE),
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    nn::batch_norm2d(p, c, config)
}

pub fn activate(x: &Tensor, act: Activation) -> Tensor {
    match act {
        Activation::Relu => x.relu(),
        // x·sigmoid(x) (TF-NAS's Swish) as libtorch's fused SiLU: one
        // kernel each way instead of three, the same numbers to rounding.
        Activation::Swish => x.silu(),
        Activation::Hswish => x.hardswish(),
    }
}

/// A convolution, its batch norm and an optional activation: TF-NAS's
/// `ConvLayer` or one `nn.Sequential(conv, bn, act)` of a block.
struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    act: Option<Activation>,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: nn::Path,
        cin: u32,
        cout: u32,
        k: u32,
        stride: u32,
        depthwise: bool,
        act: Option<Activation>,
    ) -> Self {
        let groups = if depthwise { i64::from(cin) } else { 1 };
        ConvBn {
            conv: conv(
                &(&p / "conv"),
                cin.into(),
                cout.into(),
                k.into(),
                stride.into(),
                groups,
                false,
            ),
            bn: batch_norm(&(&p / "bn"), cout.into()),
            act,
        }
    }

    fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        let x = x.apply(&self.conv);
        let y = match pass.sync {
            Some(d) if pass.train => {
                let (bn, config) = (&self.bn, nn::BatchNormConfig::default());
                let params = BatchNorm {
                    affine: bn.ws.as_ref().zip(bn.bs.as_ref()),
                    running: Some((&bn.running_mean, &bn.running_var)),
                    momentum: config.momentum,
                    eps: config.eps,
                };
                d.batch_norm(&x, &params)
            }
            _ => self.bn.forward_t(&x, pass.train),
        };
        match self.act {
            Some(act) => activate(&y, act),
            None => y,
        }
    }
}

/// Squeeze-and-excite: pool, 1x1 conv with bias, activation, 1x1 conv
/// with bias, sigmoid, channel scale.
struct SqueezeExcite {
    reduce: nn::Conv2D,
    expand: nn::Conv2D,
    act: Activation,
}

/// An inverted-residual block (the second stem and the searchable ones).
struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    se: Option<SqueezeExcite>,
    project: ConvBn,
    residual: bool,
    drop_connect: f64,
}

impl Block {
    fn new(p: nn::Path, spec: &BlockSpec, drop_connect: f64) -> Self {
        let s = &spec.shape;
        let act = Some(s.activation);
        let expand = spec.has_expansion().then(|| {
            ConvBn::new(
                &p / "inverted_bottleneck",
                s.in_channels,
                spec.mid_channels,
                1,
                1,
                false,
                act,
            )
        });
        let mid = if spec.has_expansion() {
            spec.mid_channels
        } else {
            s.in_channels
        };
        let se = (s.se_channels > 0).then(|| {
            let q = &p / "squeeze_excite";
            let (mid, se) = (i64::from(mid), i64::from(s.se_channels));
            SqueezeExcite {
                reduce: conv(&(&q / "conv_reduce"), mid, se, 1, 1, 1, true),
                expand: conv(&(&q / "conv_expand"), se, mid, 1, 1, 1, true),
                act: s.activation,
            }
        });
        Block {
            expand,
            depthwise: ConvBn::new(&p / "depth_conv", mid, mid, s.kernel, s.stride, true, act),
            se,
            project: ConvBn::new(&p / "point_linear", mid, s.out_channels, 1, 1, false, None),
            residual: spec.has_residual(),
            drop_connect,
        }
    }

    fn forward(&self, x: &Tensor, pass: Pass) -> Tensor {
        let train = pass.train;
        let mut y = match &self.expand {
            Some(e) => e.forward(x, pass),
            None => x.shallow_clone(),
        };
        y = self.depthwise.forward(&y, pass);
        if let Some(se) = &self.se {
            let pooled = y.adaptive_avg_pool2d([1, 1]);
            let scale = activate(&pooled.apply(&se.reduce), se.act)
                .apply(&se.expand)
                .sigmoid();
            // Not `*=`: in place would overwrite what autograd keeps for the SE gradient.
            y = y.multiply(&scale);
        }
        y = self.project.forward(&y, pass);
        if !self.residual {
            return y;
        }
        if train && self.drop_connect > 0.0 {
            y = drop_connect(&y, self.drop_connect);
        }
        y + x
    }
}

/// Zeroes the branch of whole images with probability `rate` and scales
/// the kept ones by 1 / (1 − rate), as the official `drop_connect`.
pub fn drop_connect(x: &Tensor, rate: f64) -> Tensor {
    let keep = 1.0 - rate;
    let n = x.size()[0];
    let mask = (Tensor::rand([n, 1, 1, 1], (x.kind(), x.device())) + keep).floor();
    x / keep * mask
}

/// The derived network, its variables in `vs` under TF-NAS's names.
pub struct Network {
    pub vs: nn::VarStore,
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    classifier: nn::Linear,
    dropout: f64,
    /// The group whose whole batch training-mode batch norm spans
    /// (`--sync-bn`), if any.
    pub sync_bn: Option<Rc<Dist>>,
    /// Whether the weights and each input are held channels-last
    /// ([`layout`]: on the CPU).
    channels_last: bool,
}

/// How a forward pass runs: training or evaluation, and over whose batch.
#[derive(Clone, Copy)]
struct Pass<'a> {
    train: bool,
    sync: Option<&'a Dist>,
}

/// The TF-NAS name of each block of `arch.block_specs()`, in order.
pub fn block_names(arch: &Architecture) -> Vec<String> {
    let mut names = vec!["first_stem".to_string(), "second_stem".to_string()];
    for (s, stage) in arch.stages.iter().enumerate() {
        names.extend((0..stage.blocks.len()).map(|b| format!("stage{}.{b}", s + 1)));
    }
    names.push("feature_mix_layer".into());
    names
}

impl Network {
    /// A freshly initialised network for `classes` classes (seed libtorch
    /// first for reproducible weights). `dropout` precedes the classifier;
    /// drop-connect grows with depth: block i of the n inverted-residual
    /// blocks gets `drop_connect · i / n`.
    pub fn new(
        arch: &Architecture,
        classes: usize,
        dropout: f64,
        drop_connect: f64,
        device: Device,
    ) -> Result<Self> {
        let specs = arch.block_specs()?;
        let names = block_names(arch);
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let (stem, rest) = specs.split_first().expect("a stem");
        let (head, middle) = rest.split_last().expect("a head");
        if stem.shape.kind != BlockKind::Stem || head.shape.kind != BlockKind::Head {
            return Err(SearchError::Config(
                "the architecture's blocks do not start with a stem and end with a head".into(),
            ));
        }
        let s = &stem.shape;
        let stem_layer = ConvBn::new(
            &root / "first_stem",
            s.in_channels,
            s.out_channels,
            s.kernel,
            s.stride,
            false,
            Some(s.activation),
        );
        let n = middle.len() as f64;
        let blocks = middle
            .iter()
            .zip(&names[1..])
            .enumerate()
            .map(|(i, (spec, name))| {
                let mut p = root.clone();
                for part in name.split('.') {
                    p = &p / part;
                }
                Block::new(p, spec, drop_connect * (i + 1) as f64 / n)
            })
            .collect();
        let h = &head.shape;
        let head_layer = ConvBn::new(
            &root / "feature_mix_layer",
            h.in_channels,
            head.mid_channels,
            1,
            1,
            false,
            Some(h.activation),
        );
        let width = i64::from(head.mid_channels);
        let linear = nn::LinearConfig {
            ws_init: default_init(width),
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        };
        let classifier = nn::linear(
            &root / "classifier" / "linear",
            width,
            classes as i64,
            linear,
        );
        let on_cpu = layout::wanted_on(device);
        if on_cpu {
            layout::hold_channels_last(vs.variables().values());
        }
        Ok(Network {
            vs,
            stem: stem_layer,
            blocks,
            head: head_layer,
            classifier,
            dropout,
            sync_bn: None,
            channels_last: on_cpu,
        })
    }

    /// Logits `[n, classes]`; `train` selects batch statistics, dropout and
    /// drop-connect.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let pass = Pass {
            train,
            sync: self.sync_bn.as_deref(),
        };
        let x = if self.channels_last {
            layout::channels_last(x)
        } else {
            x.shallow_clone()
        };
        let mut y = self.stem.forward(&x, pass);
        for block in &self.blocks {
            y = block.forward(&y, pass);
        }
        let y = self
            .head
            .forward(&y, pass)
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1);
        y.dropout(self.dropout, train).apply(&self.classifier)
    }

    /// Every variable (weights, batch-norm statistics), sorted by name.
    pub fn named_variables(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// The trained parameters (not the statistics), sorted by name.
    pub fn parameters(&self) -> Vec<(String, Tensor)> {
        self.named_variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect()
    }

    pub fn parameter_count(&self) -> i64 {
        self.parameters()
            .iter()
            .map(|(_, t)| t.numel() as i64)
            .sum()
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }
}

/// The number of correct predictions among the `k` best logits of each row.
pub fn correct_top_k(logits: &Tensor, labels: &Tensor, k: i64) -> usize {
    let k = k.min(logits.size()[1]);
    let (_, top) = logits.topk(k, 1, true, true);
    top.eq_tensor(&labels.unsqueeze(1))
        .any_dim(1, false)
        .sum(Kind::Int64)
        .int64_value(&[]) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_has_the_parameters_the_cost_model_counts() {
        let arch = Architecture::tfnas_a();
        let net = Network::new(&arch, 1000, 0.2, 0.2, Device::Cpu).unwrap();
        assert_eq!(net.parameter_count() as u64, arch.params().unwrap());
        let x = Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        assert_eq!(net.forward(&x, true).size(), [2, 1000]);
        // Batch norm starts at scale 1, not tch's uniform draw.
        let names = net.named_variables();
        let (_, bn) = names
            .iter()
            .find(|(n, _)| n == "stage2.0.depth_conv.bn.weight")
            .unwrap();
        assert_eq!(bn.min().double_value(&[]), 1.0);
    }

    #[test]
    fn a_channels_last_network_computes_what_a_contiguous_one_does() {
        tch::manual_seed(5);
        let arch = Architecture::tfnas_a();
        let mut net = Network::new(&arch, 10, 0.0, 0.0, Device::Cpu).unwrap();
        let x = Tensor::randn([2, 3, 48, 48], (Kind::Float, Device::Cpu));
        let nhwc = net.forward(&x, true);
        // The stem's 3x3 convolution over 3 channels is held with NHWC
        // strides (depthwise and 1x1 weights are laid out alike either way) ...
        let (name, w) = net
            .named_variables()
            .into_iter()
            .find(|(n, _)| n == "first_stem.conv.weight")
            .unwrap();
        let [_, c, h, k] = w.size()[..] else {
            panic!("{name}")
        };
        assert_eq!(w.stride(), [h * k * c, 1, k * c, c], "{name}");
        assert!(!w.is_contiguous(), "{name}");
        // ... and the same network held contiguous gives the same logits.
        for (_, mut v) in net.vs.variables() {
            if v.dim() == 4 {
                let c = v.detach().contiguous();
                tch::no_grad(|| v.set_data(&c));
            }
        }
        net.channels_last = false;
        let nchw = net.forward(&x, true);
        let diff = (&nhwc - &nchw).abs().max().double_value(&[]);
        let scale = nchw.abs().max().double_value(&[]);
        assert!(diff <= 1e-4 * scale, "{diff} against {scale}");
    }

    #[test]
    fn drop_connect_keeps_whole_images_scaled_or_none() {
        let x = Tensor::ones([64, 2, 2, 2], (Kind::Float, Device::Cpu));
        let y = drop_connect(&x, 0.25);
        let per_image = y.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float);
        let v: Vec<f32> = Vec::try_from(per_image).unwrap();
        assert!(
            v.iter().all(|&s| s == 0.0 || (s - 8.0 / 0.75).abs() < 1e-4),
            "{v:?}"
        );
        assert!(v.contains(&0.0) && v.iter().any(|&s| s > 0.0));
    }
}
