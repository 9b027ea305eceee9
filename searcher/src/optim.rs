//! SGD with momentum and Adam, written out on tensors so that their state
//! is plain named tensors a checkpoint can save and restore (tch's built-in
//! optimizers keep theirs inside libtorch, out of reach). Semantics follow
//! PyTorch's `SGD` (no dampening, no Nesterov) and `Adam` (L2 weight decay
//! added to the gradient), both with `clip_grad_norm_` before the step.
//!
//! Unlike the official code, which rebuilds the network and so both
//! optimizers every epoch, state is kept across epochs.

use tch::Tensor;

/// Scales `grads` in place (undefined ones skipped) so their joint L2 norm is at most `max_norm`
/// (PyTorch's `clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> f64 {
    // One pass over each gradient (its 2-norm), not a squared copy and a
    // sum: the step is memory-bound on a CPU, as PyTorch's own clip is.
    let total = tch::no_grad(|| {
        let norms: Vec<Tensor> = grads
            .iter()
            .filter(|g| g.defined())
            .map(|g| g.norm())
            .collect();
        if norms.is_empty() {
            0.0
        } else {
            Tensor::stack(&norms, 0).norm().double_value(&[])
        }
    });
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        tch::no_grad(|| {
            for g in grads.iter_mut().filter(|g| g.defined()) {
                let _ = g.f_mul_scalar_(coef);
            }
        });
    }
    total
}

pub struct Sgd {
    pub momentum: f64,
    pub weight_decay: f64,
    /// One momentum buffer per parameter, zero before the first step (which
    /// makes the first step PyTorch's `buf = grad`).
    pub buffers: Vec<Tensor>,
}

impl Sgd {
    pub fn new(params: &[Tensor], momentum: f64, weight_decay: f64) -> Self {
        Sgd {
            momentum,
            weight_decay,
            buffers: params.iter().map(Tensor::zeros_like).collect(),
        }
    }

    /// One step. A parameter whose gradient is undefined (not used by this
    /// step's paths) is left alone, momentum included, as PyTorch does for
    /// `grad = None`.
    pub fn step(&mut self, params: &[Tensor], grads: &[Tensor], lr: f64) {
        let none: Vec<Option<Tensor>> = params.iter().map(|_| None).collect();
        self.step_masked(params, grads, &none, lr);
    }

    /// [`step`](Self::step), where `masks[i]` (0/1, broadcast over
    /// parameter `i`) marks the entries that exist: the others get neither
    /// weight decay nor momentum, and their momentum is dropped, as in the
    /// official code, whose network holds only the unmasked channels (and
    /// whose optimizer starts a channel that comes back from zero state).
    pub fn step_masked(
        &mut self,
        params: &[Tensor],
        grads: &[Tensor],
        masks: &[Option<Tensor>],
        lr: f64,
    ) {
        // In place, through addcmul with a 0-dim factor: no temporary the
        // size of a parameter (the step reads and writes each tensor as
        // few times as PyTorch's), the same arithmetic. The gradients
        // become the decayed ones, which nothing reads after the step.
        // 0-dim factors: a scalar in type promotion, whatever the
        // parameters' float kind.
        let (decay, step) = (
            Tensor::from(self.weight_decay as f32),
            Tensor::from(-lr as f32),
        );
        tch::no_grad(|| {
            for (((p, g), buf), mask) in params.iter().zip(grads).zip(&mut self.buffers).zip(masks)
            {
                if !g.defined() {
                    continue;
                }
                let mut d = g.shallow_clone();
                let _ = d.f_addcmul_(p, &decay);
                let _ = buf
                    .f_mul_scalar_(self.momentum)
                    .and_then(|mut b| b.f_add_(&d));
                if let Some(m) = mask {
                    let _ = buf.f_mul_(m);
                }
                let mut p = p.shallow_clone();
                let _ = p.f_addcmul_(buf, &step);
            }
        });
    }
}

pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Steps taken so far (bias correction).
    pub steps: i64,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl Adam {
    pub fn new(params: &[Tensor], lr: f64, betas: (f64, f64), weight_decay: f64) -> Self {
        Adam {
            lr,
            beta1: betas.0,
            beta2: betas.1,
            eps: 1e-8,
            weight_decay,
            steps: 0,
            m: params.iter().map(Tensor::zeros_like).collect(),
            v: params.iter().map(Tensor::zeros_like).collect(),
        }
    }

    pub fn step(&mut self, params: &[Tensor], grads: &[Tensor]) {
        self.steps += 1;
        let bc1 = 1.0 - self.beta1.powi(self.steps as i32);
        let bc2 = 1.0 - self.beta2.powi(self.steps as i32);
        tch::no_grad(|| {
            for (((p, g), m), v) in params.iter().zip(grads).zip(&mut self.m).zip(&mut self.v) {
                let g = g + p * self.weight_decay;
                let _ = m
                    .f_mul_scalar_(self.beta1)
                    .and_then(|mut t| t.f_add_(&(&g * (1.0 - self.beta1))));
                let _ = v
                    .f_mul_scalar_(self.beta2)
                    .and_then(|mut t| t.f_add_(&(g.square() * (1.0 - self.beta2))));
                let denom = (&*v / bc2).sqrt() + self.eps;
                let mut p = p.shallow_clone();
                let _ = p.f_sub_(&(&*m / &denom * (self.lr / bc1)));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn sgd_matches_pytorch_by_hand() {
        let p = t(&[1.0, -2.0]);
        let mut sgd = Sgd::new(&[p.shallow_clone()], 0.9, 0.1);
        // Step 1: d = g + 0.1 p = [0.6, 0.8]; buf = d; p -= 0.5 buf.
        sgd.step(&[p.shallow_clone()], &[t(&[0.5, 1.0])], 0.5);
        let v: Vec<f32> = Vec::try_from(&p).unwrap();
        assert!(
            (v[0] - 0.7).abs() < 1e-6 && (v[1] + 2.4).abs() < 1e-6,
            "{v:?}"
        );
        // Step 2: d = [0.57, 0.76]; buf = 0.9·[0.6,0.8] + d = [1.11, 1.48].
        sgd.step(&[p.shallow_clone()], &[t(&[0.5, 1.0])], 0.5);
        let v: Vec<f32> = Vec::try_from(&p).unwrap();
        assert!((v[0] - (0.7 - 0.555)).abs() < 1e-6, "{v:?}");
        assert!((v[1] - (-2.4 - 0.74)).abs() < 1e-6, "{v:?}");
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction the first step is lr · sign(g) (eps aside).
        let p = Tensor::zeros([3], (Kind::Float, Device::Cpu));
        let mut adam = Adam::new(&[p.shallow_clone()], 0.01, (0.5, 0.999), 0.0);
        adam.step(&[p.shallow_clone()], &[t(&[3.0, -0.5, 0.0])]);
        let v: Vec<f32> = Vec::try_from(&p).unwrap();
        assert!(
            (v[0] + 0.01).abs() < 1e-6 && (v[1] - 0.01).abs() < 1e-6 && v[2] == 0.0,
            "{v:?}"
        );
        assert_eq!(adam.steps, 1);
    }

    #[test]
    fn clipping_caps_the_joint_norm() {
        let mut g = vec![t(&[3.0]), t(&[4.0])];
        let norm = clip_grad_norm(&mut g, 1.0);
        assert!((norm - 5.0).abs() < 1e-6);
        let a = g[0].double_value(&[0]);
        let b = g[1].double_value(&[0]);
        assert!(((a * a + b * b).sqrt() - 1.0).abs() < 1e-5);
        let mut small = vec![t(&[0.3])];
        clip_grad_norm(&mut small, 1.0);
        assert!((small[0].double_value(&[0]) - 0.3).abs() < 1e-7);
    }
}
