//! Seeded weights: a small deterministic generator, batch norm and its
//! folding into a convolution, and each layer's parameters drawn in one
//! order, so that every engine and the reference build the same network
//! from the same seed.

use space::layers::Layer;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rng_repeats_its_seed_and_stays_in_range() {
        let (a, b) = (
            Rng::new(1).fill(4, -1.0, 1.0),
            Rng::new(1).fill(4, -1.0, 1.0),
        );
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        assert_ne!(a, Rng::new(2).fill(4, -1.0, 1.0));
    }
}
