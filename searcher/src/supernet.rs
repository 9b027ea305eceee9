//! The TF-NAS supernet (docs/method.md §1) over a `SearchSpaceConfig`.
//!
//! - Per searchable layer a mixed op: every candidate op holds full-size
//!   weights at its maximum mid width, and a 0/1 channel mask selects its
//!   current width. Elasticity scaling changes only the mask, so weights,
//!   optimizer state and autograd graphs never change shape (the official
//!   code rebuilds the network every epoch instead).
//! - Per stage the sink-connecting depth: every block output feeds
//!   `Σ_j softmax(β)_j · o_j`; the first block always exists.
//! - Batch norm uses batch statistics and has no affine parameters, for
//!   every layer, as in the official search network.
//!
//! Masking is exact: a masked mid channel is zero after the expansion
//! conv's activation and after the depthwise conv's, so the SE pooling, the
//! SE convs and the projection see exactly the sliced network. Its weights
//! get a zero gradient, and the weight step (`Sgd::step_masked` with
//! [`Supernet::weight_masks`]) gives them neither weight decay nor leftover
//! momentum either, so they keep their values while masked out, as in the
//! official network, which does not hold them at all. (Without that, the
//! momentum buffer's steady state multiplies weight decay by
//! 1/(1 − momentum) = 10: a channel masked out for a whole 90-epoch search
//! would shrink by about 30% and be ranked down when widths are re-chosen.)

use std::rc::Rc;

use space::{Activation, SearchSpaceConfig};
use tch::{Device, Kind, Tensor};

use crate::dist::{BatchNorm, Dist};
use crate::error::{Result, SearchError};
use crate::latency::{initial_widths, Choices, Widths};

/// Which ops run in a forward pass.
pub enum Ops<'a> {
    /// One op per layer: `[stage][block]` op index (weight steps).
    Path(&'a [Vec<usize>]),
    /// Every op, weighted: `[stage][block]` an `[ops]` weight tensor (arch
    /// steps).
    Mixed(&'a [Vec<Tensor>]),
}

fn act(x: &Tensor, a: Activation) -> Tensor {
    match a {
        Activation::Relu => x.relu(),
        Activation::Swish => x.silu(),
        Activation::Hswish => x.hardswish(),
    }
}

/// Batch norm on batch statistics, no affine parameters, no running stats;
/// over a data-parallel group's whole batch when `sync` is given.
fn bn(x: &Tensor, sync: Option<&Dist>) -> Tensor {
    if let Some(d) = sync {
        let bn = BatchNorm {
            affine: None,
            running: None,
            momentum: 0.1,
            eps: 1e-5,
        };
        return d.batch_norm(x, &bn);
    }
    x.batch_norm(
        None::<Tensor>,
        None::<Tensor>,
        None::<Tensor>,
        None::<Tensor>,
        true,
        0.1,
        1e-5,
        true,
    )
}

fn conv(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, stride: i64, groups: i64) -> Tensor {
    let k = w.size()[2];
    x.conv2d(w, bias, [stride, stride], [k / 2, k / 2], [1, 1], groups)
}

/// The named trainable tensors: weights with PyTorch's default init
/// (uniform in ±1/√fan_in, as the official code leaves convs at default),
/// biases at zero (the official `_initialization` zeroes every conv and
/// linear bias).
struct Registry {
    device: Device,
    named: Vec<(String, Tensor)>,
}

impl Registry {
    fn param(&mut self, name: String, shape: &[i64], fan_in: i64) -> Tensor {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let t = Tensor::empty(shape, (Kind::Float, self.device))
            .uniform_(-bound, bound)
            .set_requires_grad(true);
        self.named.push((name, t.shallow_clone()));
        t
    }

    fn bias(&mut self, name: String, len: i64) -> Tensor {
        let t = Tensor::zeros([len], (Kind::Float, self.device)).set_requires_grad(true);
        self.named.push((name, t.shallow_clone()));
        t
    }
}

/// An inverted-residual block at its maximum mid width.
struct MbConv {
    expand: Option<Tensor>,
    dw: Tensor,
    /// Reduce weight and bias, expand weight and bias.
    se: Option<[Tensor; 4]>,
    pw: Tensor,
    stride: i64,
    activation: Activation,
    residual: bool,
}

impl MbConv {
    #[allow(clippy::too_many_arguments)]
    fn new(
        reg: &mut Registry,
        name: &str,
        cin: u32,
        cout: u32,
        mid: u32,
        se: u32,
        kernel: u32,
        stride: u32,
        activation: Activation,
        with_expansion: bool,
    ) -> Self {
        let (i, o, m, s, k) = (
            cin as i64,
            cout as i64,
            mid as i64,
            se as i64,
            kernel as i64,
        );
        let expand = with_expansion.then(|| reg.param(format!("{name}.expand"), &[m, i, 1, 1], i));
        let dw = reg.param(format!("{name}.dw"), &[m, 1, k, k], k * k);
        let se = (se > 0).then(|| {
            [
                reg.param(format!("{name}.se_reduce.w"), &[s, m, 1, 1], m),
                reg.bias(format!("{name}.se_reduce.b"), s),
                reg.param(format!("{name}.se_expand.w"), &[m, s, 1, 1], s),
                reg.bias(format!("{name}.se_expand.b"), m),
            ]
        });
        let pw = reg.param(format!("{name}.pw"), &[o, m, 1, 1], m);
        MbConv {
            expand,
            dw,
            se,
            pw,
            stride: stride as i64,
            activation,
            residual: stride == 1 && cin == cout,
        }
    }

    fn forward(&self, x: &Tensor, mask: Option<&Tensor>, sync: Option<&Dist>) -> Tensor {
        let bn = |x: &Tensor| bn(x, sync);
        let masked = |h: Tensor| match mask {
            Some(m) => h * m,
            None => h,
        };
        let mut h = match &self.expand {
            Some(w) => masked(act(&bn(&conv(x, w, None, 1, 1)), self.activation)),
            None => x.shallow_clone(),
        };
        let groups = self.dw.size()[0];
        h = masked(act(
            &bn(&conv(&h, &self.dw, None, self.stride, groups)),
            self.activation,
        ));
        if let Some([rw, rb, ew, eb]) = &self.se {
            let s = h.adaptive_avg_pool2d([1, 1]);
            let s = act(&conv(&s, rw, Some(rb), 1, 1), self.activation);
            h = &h * conv(&s, ew, Some(eb), 1, 1).sigmoid();
        }
        let out = bn(&conv(&h, &self.pw, None, 1, 1));
        if self.residual {
            out + x
        } else {
            out
        }
    }
}

/// The supernet with its architecture parameters and width masks.
pub struct Supernet {
    pub space: SearchSpaceConfig,
    pub num_classes: i64,
    pub device: Device,
    weights: Vec<(String, Tensor)>,
    stem: Tensor,
    second_stem: MbConv,
    /// `[stage][block][op]`.
    layers: Vec<Vec<Vec<MbConv>>>,
    head: Tensor,
    fc_w: Tensor,
    fc_b: Tensor,
    /// `[stage][block]` log-α over the ops, kept log-softmax-normalised.
    pub alphas: Vec<Vec<Tensor>>,
    /// `[stage]` β over the depths 1..=max_depth.
    pub betas: Vec<Tensor>,
    /// Current mid width of every op of every layer.
    pub widths: Widths,
    /// `[stage][block][op]` masks of shape `[1, max_mid, 1, 1]`.
    masks: Vec<Vec<Vec<Tensor>>>,
    /// The data-parallel group whose whole batch batch norm spans
    /// (`--sync-bn`), if any.
    pub sync_bn: Option<Rc<Dist>>,
}

/// A channel count as a tensor dimension.
fn dim(v: u32) -> i64 {
    v as i64
}

/// The second stem's block, which has no expansion conv unless its mid
/// width exceeds its input width.
fn second_stem(reg: &mut Registry, space: &SearchSpaceConfig) -> Result<MbConv> {
    let s2 = &space.second_stem;
    let cin = space.stem.out_channels;
    if s2.mid_channels < cin {
        return Err(SearchError::Config(format!(
            "second stem: mid width {} below its input width {cin} needs an expansion conv TF-NAS does not have",
            s2.mid_channels
        )));
    }
    Ok(MbConv::new(
        reg,
        "second_stem",
        cin,
        s2.out_channels,
        s2.mid_channels,
        s2.se_channels,
        s2.kernel,
        s2.stride,
        s2.activation,
        s2.mid_channels > cin,
    ))
}

/// `[stage][block][op]` blocks and their width masks.
type Layers = (Vec<Vec<Vec<MbConv>>>, Vec<Vec<Vec<Tensor>>>);

/// Every op of every searchable layer at its maximum mid width, masked to
/// its width in `widths`.
fn searchable_layers(
    reg: &mut Registry,
    space: &SearchSpaceConfig,
    widths: &Widths,
) -> Result<Layers> {
    let mut layers = Vec::new();
    let mut masks = Vec::new();
    for (s, stage) in space.layers().iter().enumerate() {
        let mut stage_ops = Vec::new();
        let mut stage_masks = Vec::new();
        for (b, layer) in stage.iter().enumerate() {
            let mut ops = Vec::new();
            let mut op_masks = Vec::new();
            for (k, op) in space.ops.iter().enumerate() {
                let range = space.width_range(op, layer.in_channels);
                if range.min <= layer.in_channels {
                    return Err(SearchError::Config(format!(
                        "op '{}' may narrow to {} channels in a layer with {} inputs; width masks need every width above the input width (an expansion conv)",
                        op.name, range.min, layer.in_channels
                    )));
                }
                ops.push(MbConv::new(
                    reg,
                    &format!("s{}.b{}.{}", s + 1, b + 1, op.name),
                    layer.in_channels,
                    layer.out_channels,
                    range.max,
                    space.se_channels(op, layer.in_channels),
                    op.kernel,
                    layer.stride,
                    layer.activation,
                    true,
                ));
                op_masks.push(prefix_mask(widths[s][b][k], range.max, reg.device));
            }
            stage_ops.push(ops);
            stage_masks.push(op_masks);
        }
        layers.push(stage_ops);
        masks.push(stage_masks);
    }
    Ok((layers, masks))
}

/// The initial mask of `width` out of `max` mid channels: the first ones.
fn prefix_mask(width: u32, max: u32, device: Device) -> Tensor {
    let mask: Vec<f32> = (0..max)
        .map(|i| if i < width { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_slice(&mask)
        .view([1, dim(max), 1, 1])
        .to_device(device)
}

/// `[stage][block]` log-α: every op equally likely.
fn uniform_alphas(space: &SearchSpaceConfig, device: Device) -> Vec<Vec<Tensor>> {
    let n_ops = space.ops.len() as i64;
    space
        .layers()
        .iter()
        .map(|stage| {
            stage
                .iter()
                .map(|_| {
                    Tensor::full([n_ops], -(n_ops as f64).ln(), (Kind::Float, device))
                        .set_requires_grad(true)
                })
                .collect()
        })
        .collect()
}

/// `[stage]` β over the depths: every depth equally likely.
fn zero_betas(space: &SearchSpaceConfig, device: Device) -> Vec<Tensor> {
    space
        .stages
        .iter()
        .map(|s| Tensor::zeros([s.max_depth as i64], (Kind::Float, device)).set_requires_grad(true))
        .collect()
}

impl Supernet {
    /// Builds the supernet of `space` for `num_classes` classes (the search
    /// data's, not the space's: latency always refers to the table).
    /// Weights are drawn from tch's generator, so seed it first.
    pub fn new(space: &SearchSpaceConfig, num_classes: i64, device: Device) -> Result<Self> {
        space.validate()?;
        let mut reg = Registry {
            device,
            named: Vec::new(),
        };
        // The order of the draws below is the order of the weights, and so
        // of a checkpoint's tensors: stem, second stem, layers, head, fc.
        let stem = reg.param(
            "stem".into(),
            &[
                dim(space.stem.out_channels),
                dim(space.input_channels),
                dim(space.stem.kernel),
                dim(space.stem.kernel),
            ],
            dim(space.input_channels * space.stem.kernel * space.stem.kernel),
        );
        let second_stem = second_stem(&mut reg, space)?;
        let widths = initial_widths(space);
        let (layers, masks) = searchable_layers(&mut reg, space, &widths)?;
        let last = space
            .stages
            .last()
            .map_or(space.second_stem.out_channels, |s| s.out_channels);
        let feat = dim(space.head.feature_channels);
        let head = reg.param("head".into(), &[feat, dim(last), 1, 1], dim(last));
        let fc_w = reg.param("fc.w".into(), &[num_classes, feat], feat);
        let fc_b = reg.bias("fc.b".into(), num_classes);
        Ok(Supernet {
            space: space.clone(),
            num_classes,
            device,
            weights: reg.named,
            stem,
            second_stem,
            layers,
            head,
            fc_w,
            fc_b,
            alphas: uniform_alphas(space, device),
            betas: zero_betas(space, device),
            widths,
            masks,
            sync_bn: None,
        })
    }

    /// The trainable weights with their names (not the arch parameters).
    pub fn weights(&self) -> &[(String, Tensor)] {
        &self.weights
    }

    /// Per trainable weight, in [`weights`](Self::weights) order, the 0/1
    /// mask of its op's mid channels shaped to broadcast over it; `None`
    /// for weights outside the searchable ops and for the SE reduce bias,
    /// which has no mid axis.
    pub fn weight_masks(&self) -> Vec<Option<Tensor>> {
        self.weights
            .iter()
            .map(|(name, _)| self.mask_of(name))
            .collect()
    }

    /// The mask of weight `name` ("s{stage}.b{block}.{op}.{part}", as
    /// [`Supernet::new`] names them), shaped for its mid axis.
    fn mask_of(&self, name: &str) -> Option<Tensor> {
        let rest = name.strip_prefix('s')?;
        let (stage, rest) = rest.split_once(".b")?;
        let (block, rest) = rest.split_once('.')?;
        let (s, b) = (
            stage.parse::<usize>().ok()? - 1,
            block.parse::<usize>().ok()? - 1,
        );
        let (k, part) = self
            .space
            .ops
            .iter()
            .enumerate()
            .filter_map(|(k, op)| {
                rest.strip_prefix(op.name.as_str())
                    .and_then(|p| p.strip_prefix('.'))
                    .map(|part| (k, part))
            })
            .min_by_key(|(_, part)| part.len())?;
        let mask = self.masks.get(s)?.get(b)?.get(k)?;
        let max = mask.size()[1];
        match part {
            // Mid channels on the output axis.
            "expand" | "dw" | "se_expand.w" => Some(mask.view([max, 1, 1, 1])),
            "se_expand.b" => Some(mask.view([max])),
            // Mid channels on the input axis.
            "pw" | "se_reduce.w" => Some(mask.shallow_clone()),
            _ => None,
        }
    }

    pub fn weight_tensors(&self) -> Vec<Tensor> {
        self.weights
            .iter()
            .map(|(_, t)| t.shallow_clone())
            .collect()
    }

    /// α of every layer, then β of every stage, in a fixed order.
    pub fn arch_tensors(&self) -> Vec<Tensor> {
        self.alphas
            .iter()
            .flatten()
            .chain(&self.betas)
            .map(Tensor::shallow_clone)
            .collect()
    }

    /// Logits for a batch `[n, c, h, w]`.
    pub fn forward(&self, x: &Tensor, ops: &Ops) -> Tensor {
        let space = &self.space;
        let sync = self.sync_bn.as_deref();
        let mut h = act(
            &bn(
                &conv(x, &self.stem, None, space.stem.stride as i64, 1),
                sync,
            ),
            space.stem.activation,
        );
        h = self.second_stem.forward(&h, None, sync);
        for (s, stage) in self.layers.iter().enumerate() {
            let depth = self.betas[s].softmax(0, Kind::Float);
            let mut sink: Option<Tensor> = None;
            for (b, layer) in stage.iter().enumerate() {
                h = match ops {
                    Ops::Path(path) => {
                        let k = path[s][b];
                        layer[k].forward(&h, Some(&self.masks[s][b][k]), sync)
                    }
                    Ops::Mixed(weights) => layer
                        .iter()
                        .enumerate()
                        .map(|(k, op)| {
                            op.forward(&h, Some(&self.masks[s][b][k]), sync)
                                * weights[s][b].get(k as i64)
                        })
                        .reduce(|a, b| a + b)
                        .expect("a space has ops"),
                };
                let term = &h * depth.get(b as i64);
                sink = Some(match sink {
                    Some(acc) => acc + term,
                    None => term,
                });
            }
            h = sink.expect("a stage has a block");
        }
        let h = act(
            &bn(&conv(&h, &self.head, None, 1, 1), sync),
            space.head.activation,
        );
        let h = h.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        h.linear(&self.fc_w, Some(&self.fc_b))
    }

    /// Sets op `op` of layer `(stage, block)` to `mid` channels: those whose
    /// depthwise filters have the largest L1 norm (docs/method.md §3).
    pub fn set_width(&mut self, stage: usize, block: usize, op: usize, mid: u32) {
        let dw = &self.layers[stage][block][op].dw;
        let max = dw.size()[0];
        assert!(
            mid >= 1 && i64::from(mid) <= max,
            "width {mid} outside 1..={max}"
        );
        let mask = tch::no_grad(|| {
            let l1 = dw
                .abs()
                .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float);
            let (_, keep) = l1.topk(i64::from(mid), 0, true, false);
            Tensor::zeros([max], (Kind::Float, self.device))
                .index_fill(0, &keep, 1.0)
                .view([1, max, 1, 1])
        });
        self.masks[stage][block][op] = mask;
        self.widths[stage][block][op] = mid;
    }

    /// Every rank's widths and masks set to rank 0's: the ranks decide
    /// alike from the same α and weights, and this keeps them so.
    pub fn share_widths(&mut self, dist: &Dist) -> Result<()> {
        let masks: Vec<Tensor> = self
            .masks
            .iter()
            .flatten()
            .flatten()
            .map(Tensor::shallow_clone)
            .collect();
        let flat: Vec<f32> = self
            .widths
            .iter()
            .flatten()
            .flatten()
            .map(|&w| w as f32)
            .collect();
        let widths = Tensor::from_slice(&flat).to_device(self.device);
        dist.broadcast(&masks)?;
        dist.broadcast(std::slice::from_ref(&widths))?;
        let flat = Vec::<f32>::try_from(widths.to_device(Device::Cpu))?;
        for (w, v) in self.widths.iter_mut().flatten().flatten().zip(flat) {
            *w = v as u32;
        }
        Ok(())
    }

    /// The mask of op `op` in layer `(stage, block)` as 0/1 values.
    pub fn mask(&self, stage: usize, block: usize, op: usize) -> Vec<f32> {
        Vec::<f32>::try_from(
            self.masks[stage][block][op]
                .flatten(0, -1)
                .to_device(Device::Cpu),
        )
        .expect("a float mask")
    }

    /// Every mask with a stable name, for checkpoints.
    pub fn named_masks(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (s, stage) in self.masks.iter().enumerate() {
            for (b, layer) in stage.iter().enumerate() {
                for (k, m) in layer.iter().enumerate() {
                    out.push((format!("mask.{s}.{b}.{k}"), m.shallow_clone()));
                }
            }
        }
        out
    }

    /// Replaces a mask (restoring a checkpoint); the width follows its sum.
    pub fn load_mask(&mut self, stage: usize, block: usize, op: usize, mask: &Tensor) {
        let m = mask.to_device(self.device).to_kind(Kind::Float);
        self.widths[stage][block][op] = m.sum(Kind::Float).double_value(&[]).round() as u32;
        self.masks[stage][block][op] = m;
    }

    /// The argmax architecture (docs/method.md §1, parsing): per stage
    /// depth = argmax β + 1, per kept block the argmax-α op at its current
    /// width.
    pub fn derive(&self) -> Choices {
        let argmax = |t: &Tensor| t.argmax(0, false).int64_value(&[]) as usize;
        self.betas
            .iter()
            .enumerate()
            .map(|(s, beta)| {
                let depth = argmax(beta) + 1;
                (0..depth)
                    .map(|b| {
                        let op = argmax(&self.alphas[s][b]);
                        (op, self.widths[s][b][op])
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    fn net() -> Supernet {
        tch::manual_seed(0);
        Supernet::new(&fixture::tiny_space(), 10, Device::Cpu).unwrap()
    }

    #[test]
    fn forward_gives_logits_in_every_mode() {
        let net = net();
        let x = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
        let path = vec![vec![0, 1], vec![1]];
        assert_eq!(net.forward(&x, &Ops::Path(&path)).size(), [4, 10]);
        let w = Tensor::from_slice(&[0.3f32, 0.7]);
        let weights = vec![vec![w.shallow_clone(), w.shallow_clone()], vec![w]];
        assert_eq!(net.forward(&x, &Ops::Mixed(&weights)).size(), [4, 10]);
    }

    #[test]
    fn mixed_weights_get_the_gradient_finite_differences_give() {
        // The arch step's gradient reaches α only through the mixture
        // weights and β; check both against central differences. Swish
        // everywhere keeps the function smooth (ReLU kinks spoil them).
        let mut space = fixture::tiny_space();
        space.stem.activation = Activation::Swish;
        space.second_stem.activation = Activation::Swish;
        space.head.activation = Activation::Swish;
        for stage in &mut space.stages {
            stage.activation = Activation::Swish;
        }
        tch::manual_seed(0);
        let net = Supernet::new(&space, 10, Device::Cpu).unwrap();
        let x = Tensor::randn([6, 3, 16, 16], (Kind::Float, Device::Cpu));
        // A fixed linear read-out of the logits: better conditioned in f32
        // than a cross-entropy near its uniform value.
        let r = Tensor::randn([6, 10], (Kind::Float, Device::Cpu));
        let w = Tensor::from_slice(&[0.3f32, 0.7]).set_requires_grad(true);
        let fixed = Tensor::from_slice(&[0.5f32, 0.5]);
        let loss = |w: &Tensor| {
            let weights = vec![
                vec![fixed.shallow_clone(), w.shallow_clone()],
                vec![fixed.shallow_clone()],
            ];
            (net.forward(&x, &Ops::Mixed(&weights)) * &r).sum(Kind::Float)
        };
        let grads = Tensor::run_backward(&[loss(&w)], &[&w, &net.betas[0]], false, false);
        let h = 2e-3f32;
        let at = |d0: f32, d1: f32| {
            tch::no_grad(|| loss(&Tensor::from_slice(&[0.3 + d0, 0.7 + d1])).double_value(&[]))
        };
        let numeric = [
            (at(h, 0.0) - at(-h, 0.0)) / (2.0 * f64::from(h)),
            (at(0.0, h) - at(0.0, -h)) / (2.0 * f64::from(h)),
        ];
        for (k, n) in numeric.iter().enumerate() {
            let g = grads[0].double_value(&[k as i64]);
            assert!(
                (g - n).abs() < 2e-2 * n.abs().max(0.1),
                "w[{k}]: {g} vs {n}"
            );
        }
        assert!(grads[1].abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    #[test]
    fn a_mask_equals_slicing_the_weights() {
        // Op 0 of stage 2 at width 40 of 64: the masked supernet must give
        // what a block built with only the kept channels gives.
        let mut net = net();
        net.set_width(1, 0, 0, 40);
        let mask = net.mask(1, 0, 0);
        assert_eq!(mask.iter().filter(|&&m| m == 1.0).count(), 40);
        let kept: Vec<i64> = (0..64).filter(|&i| mask[i as usize] == 1.0).collect();
        let keep = Tensor::from_slice(&kept);
        let op = &net.layers[1][0][0];
        let x = Tensor::randn([4, 16, 4, 4], (Kind::Float, Device::Cpu));
        let masked = op.forward(&x, Some(&net.masks[1][0][0]), None);
        let sliced = MbConv {
            expand: op.expand.as_ref().map(|w| w.index_select(0, &keep)),
            dw: op.dw.index_select(0, &keep),
            se: None,
            pw: op.pw.index_select(1, &keep),
            stride: op.stride,
            activation: op.activation,
            residual: op.residual,
        }
        .forward(&x, None, None);
        let diff = (masked - sliced).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn widths_keep_the_largest_l1_depthwise_filters() {
        let mut net = net();
        let l1: Vec<f32> = Vec::try_from(
            net.layers[0][0][1]
                .dw
                .abs()
                .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float)
                .detach(),
        )
        .unwrap();
        net.set_width(0, 0, 1, 35);
        let mask = net.mask(0, 0, 1);
        let kept_min = (0..64)
            .filter(|&i| mask[i] == 1.0)
            .map(|i| l1[i])
            .fold(f32::MAX, f32::min);
        let dropped_max = (0..64)
            .filter(|&i| mask[i] == 0.0)
            .map(|i| l1[i])
            .fold(f32::MIN, f32::max);
        assert!(kept_min >= dropped_max);
        assert_eq!(net.widths[0][0][1], 35);
    }

    #[test]
    fn derive_reads_argmax_ops_and_depths() {
        let mut net = net();
        tch::no_grad(|| {
            net.alphas[0][0].copy_(&Tensor::from_slice(&[0.1f32, 0.9]).log());
            net.alphas[0][1].copy_(&Tensor::from_slice(&[0.8f32, 0.2]).log());
            net.alphas[1][0].copy_(&Tensor::from_slice(&[0.4f32, 0.6]).log());
            net.betas[0].copy_(&Tensor::from_slice(&[2.0f32, 1.0]));
        });
        // Stage 1 depth 1 (β favours the first sink), op b at its initial
        // width 48; stage 2 op b at 96.
        assert_eq!(net.derive(), vec![vec![(1, 48)], vec![(1, 96)]]);
        let arch = space::Architecture::from_choices(&net.space, &net.derive()).unwrap();
        assert_eq!(arch.stages[0].depth, 1);
        assert_eq!(arch.stages[0].blocks[0].op, "b");
        assert_eq!(arch.stages[1].blocks[0].mid_channels, 96);
    }
}
