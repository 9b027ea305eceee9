//! The layers a block or network runs, as an inference graph would: batch
//! norm already folded into each convolution's weights and bias, the
//! activation and residual add attached to the layer they follow. Host-side
//! only (shapes and weights), so it is tested without a GPU; the engine turns
//! it into kernel launches.

use space::{Activation, BlockKind, BlockSpec};

/// One layer, on NCHW tensors of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// A convolution with folded BN: `groups == cin == cout` is depthwise.
    /// `act` follows it; `residual` adds the block's input after it.
    Conv {
        cin: u32,
        cout: u32,
        kernel: u32,
        stride: u32,
        groups: u32,
        res_in: u32,
        res_out: u32,
        act: Option<Activation>,
        residual: bool,
    },
    /// Squeeze-and-excite in place on a `channels × res × res` tensor:
    /// global pool, FC to `se` with bias and `act`, FC back with bias,
    /// sigmoid, channel scale.
    Se {
        channels: u32,
        se: u32,
        res: u32,
        act: Activation,
    },
    /// Global average pool to `N × channels`.
    Pool { channels: u32, res: u32 },
    /// Fully connected with bias on `N × cin`.
    Fc { cin: u32, cout: u32 },
}

impl Layer {
    /// Elements per image of the output.
    pub fn output_len(&self) -> usize {
        match *self {
            Layer::Conv { cout, res_out, .. } => (cout * res_out * res_out) as usize,
            Layer::Se { channels, res, .. } => (channels * res * res) as usize,
            Layer::Pool { channels, .. } => channels as usize,
            Layer::Fc { cout, .. } => cout as usize,
        }
    }

    /// A fully connected layer as the 1x1 convolution on a 1x1 map it
    /// equals (the same weights, `cout × cin`, and bias); any other layer
    /// as it is.
    pub fn as_convolution(&self) -> Layer {
        match *self {
            Layer::Fc { cin, cout } => Layer::Conv {
                cin,
                cout,
                kernel: 1,
                stride: 1,
                groups: 1,
                res_in: 1,
                res_out: 1,
                act: None,
                residual: false,
            },
            other => other,
        }
    }

    pub fn is_depthwise(&self) -> bool {
        matches!(*self, Layer::Conv { cin, cout, groups, .. } if groups > 1 && groups == cin && cin == cout)
    }
}

/// Output resolution of a `kernel`/`stride` convolution padded by
/// `kernel / 2` (TF-NAS and PyTorch "same" padding for odd kernels).
pub fn conv_out(res: u32, kernel: u32, stride: u32) -> u32 {
    (res + 2 * (kernel / 2) - kernel) / stride + 1
}

/// The layers of one table entry, in order.
pub fn block_layers(spec: &BlockSpec) -> Vec<Layer> {
    let s = &spec.shape;
    let r = s.resolution;
    match s.kind {
        BlockKind::Stem => vec![Layer::Conv {
            cin: s.in_channels,
            cout: s.out_channels,
            kernel: s.kernel,
            stride: s.stride,
            groups: 1,
            res_in: r,
            res_out: conv_out(r, s.kernel, s.stride),
            act: Some(s.activation),
            residual: false,
        }],
        BlockKind::Fixed | BlockKind::Mbconv => {
            let mut layers = Vec::new();
            let mid = if spec.has_expansion() {
                layers.push(Layer::Conv {
                    cin: s.in_channels,
                    cout: spec.mid_channels,
                    kernel: 1,
                    stride: 1,
                    groups: 1,
                    res_in: r,
                    res_out: r,
                    act: Some(s.activation),
                    residual: false,
                });
                spec.mid_channels
            } else {
                // TF-NAS drops the expansion when mid <= in; the depthwise
                // conv then runs on the input's channels.
                s.in_channels
            };
            let r_out = conv_out(r, s.kernel, s.stride);
            layers.push(Layer::Conv {
                cin: mid,
                cout: mid,
                kernel: s.kernel,
                stride: s.stride,
                groups: mid,
                res_in: r,
                res_out: r_out,
                act: Some(s.activation),
                residual: false,
            });
            if s.se_channels > 0 {
                layers.push(Layer::Se {
                    channels: mid,
                    se: s.se_channels,
                    res: r_out,
                    act: s.activation,
                });
            }
            layers.push(Layer::Conv {
                cin: mid,
                cout: s.out_channels,
                kernel: 1,
                stride: 1,
                groups: 1,
                res_in: r_out,
                res_out: r_out,
                act: None,
                residual: spec.has_residual(),
            });
            layers
        }
        BlockKind::Head => vec![
            Layer::Conv {
                cin: s.in_channels,
                cout: spec.mid_channels,
                kernel: 1,
                stride: 1,
                groups: 1,
                res_in: r,
                res_out: r,
                act: Some(s.activation),
                residual: false,
            },
            Layer::Pool {
                channels: spec.mid_channels,
                res: r,
            },
            Layer::Fc {
                cin: spec.mid_channels,
                cout: s.out_channels,
            },
        ],
    }
}

/// Elements per image of a block's input.
pub fn block_input_len(spec: &BlockSpec) -> usize {
    let s = &spec.shape;
    (s.in_channels * s.resolution * s.resolution) as usize
}

/// A small deterministic generator (SplitMix64) for weights and inputs: a
/// fixed seed gives the same network on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    pub fn fill(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Batch-norm parameters of one convolution's output channels.
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub eps: f32,
}

impl BatchNorm {
    pub fn random(channels: usize, rng: &mut Rng) -> Self {
        BatchNorm {
            gamma: rng.fill(channels, 0.5, 1.5),
            beta: rng.fill(channels, -0.1, 0.1),
            mean: rng.fill(channels, -0.1, 0.1),
            var: rng.fill(channels, 0.5, 1.5),
            eps: 1e-5,
        }
    }
}

/// Folds `bn` into a bias-free convolution with weights `[cout][...]`:
/// `w' = w·γ/√(σ²+ε)`, `b' = β − μ·γ/√(σ²+ε)`. Returns the folded weights
/// and the bias.
pub fn fold_bn(weights: &[f32], bn: &BatchNorm) -> (Vec<f32>, Vec<f32>) {
    let cout = bn.gamma.len();
    let per = weights.len() / cout;
    let mut w = weights.to_vec();
    let mut b = vec![0.0; cout];
    for c in 0..cout {
        let scale = bn.gamma[c] / (bn.var[c] + bn.eps).sqrt();
        for x in &mut w[c * per..(c + 1) * per] {
            *x *= scale;
        }
        b[c] = bn.beta[c] - bn.mean[c] * scale;
    }
    (w, b)
}

/// The host-side parameters of one layer, already folded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Params {
    /// Conv `[cout][cin/groups][k][k]`; SE `fc1 [se][c]`; FC `[cout][cin]`.
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    /// SE only: `fc2 [c][se]` and its bias.
    pub w2: Vec<f32>,
    pub b2: Vec<f32>,
}

/// Random parameters for `layer`, scaled like PyTorch's default init so that
/// activations stay in range through a deep network.
pub fn random_params(layer: &Layer, rng: &mut Rng) -> Params {
    let uniform = |rng: &mut Rng, n: usize, fan_in: u32| {
        let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
        rng.fill(n, -bound, bound)
    };
    match *layer {
        Layer::Conv {
            cin,
            cout,
            kernel,
            groups,
            ..
        } => {
            let fan_in = cin / groups * kernel * kernel;
            let raw = uniform(rng, (cout * fan_in) as usize, fan_in);
            let bn = BatchNorm::random(cout as usize, rng);
            let (w, b) = fold_bn(&raw, &bn);
            Params {
                w,
                b,
                ..Params::default()
            }
        }
        Layer::Se { channels, se, .. } => Params {
            w: uniform(rng, (se * channels) as usize, channels),
            b: uniform(rng, se as usize, channels),
            w2: uniform(rng, (channels * se) as usize, se),
            b2: uniform(rng, channels as usize, se),
        },
        Layer::Pool { .. } => Params::default(),
        Layer::Fc { cin, cout } => Params {
            w: uniform(rng, (cout * cin) as usize, cin),
            b: uniform(rng, cout as usize, cin),
            ..Params::default()
        },
    }
}

/// The activation functions, as the kernels compute them (`act` codes in
/// `kernels.rs` follow [`act_code`]).
pub fn activate(act: Option<Activation>, x: f32) -> f32 {
    match act {
        None => x,
        Some(Activation::Relu) => x.max(0.0),
        Some(Activation::Swish) => x / (1.0 + (-x).exp()),
        Some(Activation::Hswish) => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

/// The integer the kernels take for an activation.
pub fn act_code(act: Option<Activation>) -> i32 {
    match act {
        None => 0,
        Some(Activation::Relu) => 1,
        Some(Activation::Swish) => 2,
        Some(Activation::Hswish) => 3,
    }
}

/// A plain CPU implementation of one layer on a batch, the reference the
/// GPU output is checked against. `block_input` is the block's input, for
/// the residual add.
pub fn reference_layer(
    layer: &Layer,
    p: &Params,
    batch: usize,
    x: &[f32],
    block_input: &[f32],
) -> Vec<f32> {
    match *layer {
        Layer::Conv { .. } => reference_conv(layer, p, batch, x, block_input),
        Layer::Se { .. } => reference_se(layer, p, batch, x),
        Layer::Pool { channels, res } => {
            let (c, hw) = (channels as usize, (res * res) as usize);
            (0..batch * c)
                .map(|i| x[i * hw..(i + 1) * hw].iter().sum::<f32>() / hw as f32)
                .collect()
        }
        Layer::Fc { cin, cout } => {
            let (cin, cout) = (cin as usize, cout as usize);
            let mut y = vec![0.0; batch * cout];
            for n in 0..batch {
                for o in 0..cout {
                    let dot: f32 = (0..cin).map(|i| p.w[o * cin + i] * x[n * cin + i]).sum();
                    y[n * cout + o] = dot + p.b[o];
                }
            }
            y
        }
    }
}

/// [`reference_layer`] for a convolution: direct loops, with groups,
/// bias, activation and the residual add.
fn reference_conv(
    layer: &Layer,
    p: &Params,
    batch: usize,
    x: &[f32],
    block_input: &[f32],
) -> Vec<f32> {
    let Layer::Conv {
        cin,
        cout,
        kernel,
        stride,
        groups,
        res_in,
        res_out,
        act,
        residual,
    } = *layer
    else {
        unreachable!("reference_conv is called for its own layer only")
    };
    let (cin, cout, k, s, g) = (
        cin as usize,
        cout as usize,
        kernel as usize,
        stride as usize,
        groups as usize,
    );
    let (h, oh) = (res_in as usize, res_out as usize);
    let pad = k / 2;
    let (cin_g, cout_g) = (cin / g, cout / g);
    let mut y = vec![0.0f32; batch * cout * oh * oh];
    for n in 0..batch {
        for co in 0..cout {
            let grp = co / cout_g;
            for oy in 0..oh {
                for ox in 0..oh {
                    let mut acc = p.b[co];
                    for ci in 0..cin_g {
                        let c = grp * cin_g + ci;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky) as isize - pad as isize;
                                let ix = (ox * s + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= h as isize {
                                    continue;
                                }
                                let xv = x[((n * cin + c) * h + iy as usize) * h + ix as usize];
                                let wv = p.w[((co * cin_g + ci) * k + ky) * k + kx];
                                acc += xv * wv;
                            }
                        }
                    }
                    let i = ((n * cout + co) * oh + oy) * oh + ox;
                    let mut v = activate(act, acc);
                    if residual {
                        v += block_input[i];
                    }
                    y[i] = v;
                }
            }
        }
    }
    y
}

/// [`reference_layer`] for squeeze-and-excite.
fn reference_se(layer: &Layer, p: &Params, batch: usize, x: &[f32]) -> Vec<f32> {
    let Layer::Se {
        channels,
        se,
        res,
        act,
    } = *layer
    else {
        unreachable!("reference_se is called for its own layer only")
    };
    let (c, se, hw) = (channels as usize, se as usize, (res * res) as usize);
    let mut y = x.to_vec();
    for n in 0..batch {
        let pooled: Vec<f32> = (0..c)
            .map(|ch| {
                let base = (n * c + ch) * hw;
                x[base..base + hw].iter().sum::<f32>() / hw as f32
            })
            .collect();
        let hidden: Vec<f32> = (0..se)
            .map(|j| {
                let dot: f32 = (0..c).map(|ch| p.w[j * c + ch] * pooled[ch]).sum();
                activate(Some(act), dot + p.b[j])
            })
            .collect();
        for ch in 0..c {
            let dot: f32 = (0..se).map(|j| p.w2[ch * se + j] * hidden[j]).sum();
            let gate = 1.0 / (1.0 + (-(dot + p.b2[ch])).exp());
            let base = (n * c + ch) * hw;
            for v in &mut y[base..base + hw] {
                *v *= gate;
            }
        }
    }
    y
}

/// The whole forward pass of `specs` on the CPU, drawing input and weights
/// from `Rng::new(seed)` in the order the engine does (input, then each
/// layer's parameters), so its output is what the GPU should produce.
pub fn reference_forward(specs: &[BlockSpec], batch: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let Some(first) = specs.first() else {
        return Vec::new();
    };
    let mut x = rng.fill(batch * block_input_len(first), -1.0, 1.0);
    for spec in specs {
        let block_input = x.clone();
        for layer in block_layers(spec) {
            let p = random_params(&layer, &mut rng);
            x = reference_layer(&layer, &p, batch, &x, &block_input);
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &str) -> BlockSpec {
        key.parse().unwrap()
    }

    #[test]
    fn blocks_lower_to_the_tfnas_layers() {
        let stem = block_layers(&spec("stem_r224_i3_o32_s2_k3_m0_se0_relu"));
        assert_eq!(stem.len(), 1);
        assert_eq!(stem[0].output_len(), 32 * 112 * 112);

        // Second stem: no expansion (mid 32 = in 32), dw on 32, SE, project.
        let fixed = block_layers(&spec("fixed_r112_i32_o16_s1_k3_m32_se8_relu"));
        assert_eq!(fixed.len(), 3);
        assert!(fixed[0].is_depthwise());
        assert!(matches!(
            fixed[1],
            Layer::Se {
                channels: 32,
                se: 8,
                res: 112,
                ..
            }
        ));
        assert!(matches!(
            fixed[2],
            Layer::Conv {
                cin: 32,
                cout: 16,
                residual: false,
                act: None,
                ..
            }
        ));

        let mb = block_layers(&spec("mbconv_r28_i40_o80_s2_k5_m240_se80_swish"));
        assert_eq!(mb.len(), 4);
        assert!(matches!(
            mb[0],
            Layer::Conv {
                cin: 40,
                cout: 240,
                kernel: 1,
                ..
            }
        ));
        assert!(matches!(
            mb[1],
            Layer::Conv {
                groups: 240,
                kernel: 5,
                stride: 2,
                res_in: 28,
                res_out: 14,
                ..
            }
        ));
        assert_eq!(mb[3].output_len(), 80 * 14 * 14);

        let inner = block_layers(&spec("mbconv_r14_i80_o80_s1_k3_m480_se0_swish"));
        assert_eq!(inner.len(), 3);
        assert!(matches!(inner[2], Layer::Conv { residual: true, .. }));

        let head = block_layers(&spec("head_r7_i320_o1000_s1_k1_m1280_se0_swish"));
        assert_eq!(
            head.iter().map(Layer::output_len).collect::<Vec<_>>(),
            [1280 * 49, 1280, 1000]
        );
    }

    #[test]
    fn same_padding_output_sizes() {
        assert_eq!(conv_out(224, 3, 2), 112);
        assert_eq!(conv_out(28, 5, 2), 14);
        assert_eq!(conv_out(7, 3, 1), 7);
        assert_eq!(conv_out(7, 1, 1), 7);
    }

    #[test]
    fn folding_bn_equals_conv_then_bn() {
        let mut rng = Rng::new(7);
        let layer = Layer::Conv {
            cin: 3,
            cout: 4,
            kernel: 3,
            stride: 2,
            groups: 1,
            res_in: 5,
            res_out: 3,
            act: None,
            residual: false,
        };
        let raw = rng.fill(4 * 3 * 9, -1.0, 1.0);
        let bn = BatchNorm::random(4, &mut rng);
        let x = rng.fill(2 * 3 * 25, -1.0, 1.0);
        let plain = Params {
            w: raw.clone(),
            b: vec![0.0; 4],
            ..Params::default()
        };
        let conv = reference_layer(&layer, &plain, 2, &x, &[]);
        let (w, b) = fold_bn(&raw, &bn);
        let folded = reference_layer(
            &layer,
            &Params {
                w,
                b,
                ..Params::default()
            },
            2,
            &x,
            &[],
        );
        for (i, (&c, &f)) in conv.iter().zip(&folded).enumerate() {
            let ch = i / 9 % 4;
            let bn_out =
                (c - bn.mean[ch]) / (bn.var[ch] + bn.eps).sqrt() * bn.gamma[ch] + bn.beta[ch];
            assert!((bn_out - f).abs() < 1e-5, "{i}: {bn_out} vs {f}");
        }
    }

    #[test]
    fn reference_depthwise_and_se_on_hand_values() {
        // Depthwise 3x3 of ones on a 3x3 image of ones, bias 1: the centre
        // sees 9 inputs, corners 4, edges 6.
        let dw = Layer::Conv {
            cin: 1,
            cout: 1,
            kernel: 3,
            stride: 1,
            groups: 1,
            res_in: 3,
            res_out: 3,
            act: Some(Activation::Relu),
            residual: true,
        };
        let p = Params {
            w: vec![1.0; 9],
            b: vec![1.0],
            ..Params::default()
        };
        let x = vec![1.0; 9];
        let y = reference_layer(&dw, &p, 1, &x, &x);
        assert_eq!(y, [6.0, 8.0, 6.0, 8.0, 11.0, 8.0, 6.0, 8.0, 6.0]);

        // SE with zero weights and biases: the gate is sigmoid(0) = 1/2.
        let se = Layer::Se {
            channels: 2,
            se: 1,
            res: 1,
            act: Activation::Swish,
        };
        let p = Params {
            w: vec![0.0; 2],
            b: vec![0.0],
            w2: vec![0.0; 2],
            b2: vec![0.0; 2],
        };
        assert_eq!(reference_layer(&se, &p, 1, &[4.0, -2.0], &[]), [2.0, -1.0]);
    }

    #[test]
    fn activations_and_rng_are_as_documented() {
        assert_eq!(activate(Some(Activation::Relu), -1.0), 0.0);
        assert!((activate(Some(Activation::Swish), 1.0) - 0.731_058_6).abs() < 1e-6);
        assert_eq!(activate(Some(Activation::Hswish), 3.0), 3.0);
        assert_eq!(activate(Some(Activation::Hswish), -3.0), 0.0);
        assert_eq!(act_code(Some(Activation::Hswish)), 3);
        let (a, b) = (
            Rng::new(1).fill(4, -1.0, 1.0),
            Rng::new(1).fill(4, -1.0, 1.0),
        );
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        assert_ne!(a, Rng::new(2).fill(4, -1.0, 1.0));
    }
}
