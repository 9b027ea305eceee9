//! The plain CPU implementation of every layer and of a whole forward
//! pass: direct loops, slow and obviously right, the reference both engines'
//! outputs are held to (`profiler verify`, `profiler --device cpu verify`).

use space::layers::{block_input_len, block_layers, Layer};
use space::{Activation, BlockSpec};

use crate::reference::weights::{random_params, Params, Rng};

/// The activation functions, as the engines compute them (the CUDA
/// kernels take them as `act` codes, `cuda::kernels::act_code`).
pub fn activate(act: Option<Activation>, x: f32) -> f32 {
    match act {
        None => x,
        Some(Activation::Relu) => x.max(0.0),
        Some(Activation::Swish) => x / (1.0 + (-x).exp()),
        Some(Activation::Hswish) => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

/// A plain CPU implementation of one layer on a batch, the reference the
/// engines' outputs are checked against. `block_input` is the block's input, for
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
/// layer's parameters), so its output is what an engine should produce.
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
    use crate::reference::weights::{fold_bn, BatchNorm};

    #[test]
    fn activations_are_as_documented() {
        assert_eq!(activate(Some(Activation::Relu), -1.0), 0.0);
        assert!((activate(Some(Activation::Swish), 1.0) - 0.731_058_6).abs() < 1e-6);
        assert_eq!(activate(Some(Activation::Hswish), 3.0), 3.0);
        assert_eq!(activate(Some(Activation::Hswish), -3.0), 0.0);
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
}
