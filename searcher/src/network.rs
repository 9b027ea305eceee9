//! The derived stand-alone network of an architecture as a tch module: the
//! network a search's JSON names, built layer by layer from
//! [`space::layers::block_layers`] so that it is exactly what the cost model
//! counts and the profiler's engines time.
//!
//! Every convolution carries a batch norm of its own (no convolution bias),
//! SE and the classifier are linear layers with biases, as in PyTorch's
//! TF-NAS. Its variables are named `block{i}.layer{j}.{conv,bn,reduce,expand,fc}.*`:
//! block 0 is the stem, block 1 the second stem, the last block the head,
//! and layer `j` is the `j`-th layer `block_layers` gives for the block. A
//! weights file (safetensors) must hold exactly these names and shapes.
//!
//! [`Network::folded`] gives the inference form with each batch norm folded
//! into its convolution; that is what `searcher export` writes.

use std::collections::BTreeMap;
use std::path::Path;

use space::layers::{block_layers, Layer};
use space::{Activation, Architecture, BlockSpec};
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::error::{Result, SearchError};

/// Batch norm's epsilon, as in PyTorch (and tch's default).
pub const BN_EPS: f64 = 1e-5;

/// Images in the seeded batch a random network's batch-norm statistics are
/// measured on: at 7x7 the last stage's channels see 196 values each.
const CALIBRATION_BATCH: i64 = 4;

/// One layer of the network, holding its variables.
enum Unit {
    Conv {
        conv: Box<nn::Conv2D>,
        bn: Box<nn::BatchNorm>,
        // tch keeps a convolution's configuration private.
        stride: i64,
        groups: i64,
        act: Option<Activation>,
        residual: bool,
    },
    Se {
        reduce: nn::Linear,
        expand: nn::Linear,
        act: Activation,
    },
    Pool,
    Fc(nn::Linear),
}

/// The stand-alone network of an [`Architecture`], on the CPU.
pub struct Network {
    pub vs: nn::VarStore,
    blocks: Vec<Vec<Unit>>,
    /// The blocks it was built from, in order (stem .. head).
    pub specs: Vec<BlockSpec>,
    /// The space's input resolution.
    pub resolution: u32,
}

/// `x` through `act` (none: unchanged).
pub fn activate(x: Tensor, act: Option<Activation>) -> Tensor {
    match act {
        None => x,
        Some(Activation::Relu) => x.relu(),
        Some(Activation::Swish) => x.silu(),
        Some(Activation::Hswish) => x.hardswish(),
    }
}

fn unit(p: nn::Path, layer: &Layer) -> Unit {
    match *layer {
        Layer::Conv {
            cin,
            cout,
            kernel,
            stride,
            groups,
            act,
            residual,
            ..
        } => {
            let config = nn::ConvConfig {
                stride: stride.into(),
                padding: (kernel / 2).into(),
                groups: groups.into(),
                bias: false,
                ..Default::default()
            };
            Unit::Conv {
                conv: Box::new(nn::conv2d(
                    &p / "conv",
                    cin.into(),
                    cout.into(),
                    kernel.into(),
                    config,
                )),
                bn: Box::new(nn::batch_norm2d(&p / "bn", cout.into(), Default::default())),
                stride: stride.into(),
                groups: groups.into(),
                act,
                residual,
            }
        }
        Layer::Se {
            channels, se, act, ..
        } => Unit::Se {
            reduce: nn::linear(
                &p / "reduce",
                channels.into(),
                se.into(),
                Default::default(),
            ),
            expand: nn::linear(
                &p / "expand",
                se.into(),
                channels.into(),
                Default::default(),
            ),
            act,
        },
        Layer::Pool { .. } => Unit::Pool,
        Layer::Fc { cin, cout } => Unit::Fc(nn::linear(
            &p / "fc",
            cin.into(),
            cout.into(),
            Default::default(),
        )),
    }
}

impl Network {
    /// The network of `arch` with tch's default initialisation drawn from
    /// `seed`, batch norms given random affine parameters, and running
    /// statistics measured on a seeded random batch, so that in eval mode
    /// every batch norm normalises as a trained one does. Without the
    /// measured statistics the activations grow with depth (to about 3e4 in
    /// TF-NAS-A), SE gates saturate to subnormal floats, and CPU kernels fed
    /// subnormals run several percent slower: a random-weight export would
    /// time slower than the network the profiler's engine builds.
    pub fn random(arch: &Architecture, seed: u64) -> Result<Self> {
        tch::manual_seed(seed as i64);
        let net = Self::uninitialised(arch)?;
        tch::no_grad(|| {
            for units in &net.blocks {
                for u in units {
                    if let Unit::Conv { bn, .. } = u {
                        randomise_affine(bn);
                    }
                }
            }
            let r = i64::from(net.resolution);
            let c = i64::from(net.specs[0].shape.in_channels);
            let batch = Tensor::randn([CALIBRATION_BATCH, c, r, r], (Kind::Float, Device::Cpu));
            drop(net.run(&batch, true));
        });
        Ok(net)
    }

    /// The network of `arch` with the weights in the safetensors file
    /// `path`, which must hold exactly this network's names and shapes.
    pub fn with_weights(arch: &Architecture, path: &Path) -> Result<Self> {
        let net = Self::uninitialised(arch)?;
        net.load(path)?;
        Ok(net)
    }

    fn uninitialised(arch: &Architecture) -> Result<Self> {
        let specs = arch.block_specs()?;
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let blocks = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let p = &root / format!("block{i}");
                block_layers(spec)
                    .iter()
                    .enumerate()
                    .map(|(j, layer)| unit(&p / format!("layer{j}"), layer))
                    .collect()
            })
            .collect();
        Ok(Network {
            vs,
            blocks,
            specs,
            resolution: arch.space.input_resolution,
        })
    }

    /// Inference forward (batch norms on their running statistics).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.run(x, false)
    }

    /// The inference forward; with `calibrate`, each batch norm's running
    /// statistics are first set to those of its input in this batch.
    fn run(&self, x: &Tensor, calibrate: bool) -> Tensor {
        let mut x = x.shallow_clone();
        for units in &self.blocks {
            let input = x.shallow_clone();
            for u in units {
                x = match u {
                    Unit::Conv {
                        conv,
                        bn,
                        act,
                        residual,
                        ..
                    } => {
                        let z = conv.forward(&x);
                        if calibrate {
                            set_statistics(bn, &z);
                        }
                        let y = activate(bn.forward_t(&z, false), *act);
                        if *residual {
                            y + &input
                        } else {
                            y
                        }
                    }
                    Unit::Se {
                        reduce,
                        expand,
                        act,
                    } => {
                        let pooled = x.mean_dim(&[2i64, 3][..], false, Kind::Float);
                        let hidden = activate(reduce.forward(&pooled), Some(*act));
                        let gate = expand.forward(&hidden).sigmoid();
                        &x * gate.unsqueeze(-1).unsqueeze(-1)
                    }
                    Unit::Pool => x.mean_dim(&[2i64, 3][..], false, Kind::Float),
                    Unit::Fc(fc) => fc.forward(&x),
                };
            }
        }
        x
    }

    /// Trainable parameters, as PyTorch counts them (BN's scale and shift
    /// included, its running statistics not).
    pub fn parameter_count(&self) -> u64 {
        self.vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as u64)
            .sum()
    }

    /// Every variable (running statistics included) by name, sorted.
    pub fn named_variables(&self) -> BTreeMap<String, Tensor> {
        self.vs.variables().into_iter().collect()
    }

    /// Writes every variable to a safetensors file (what `--weights` reads).
    pub fn save(&self, path: &Path) -> Result<()> {
        let vars = self.named_variables();
        let named: Vec<(&str, &Tensor)> = vars.iter().map(|(k, v)| (k.as_str(), v)).collect();
        Tensor::write_safetensors(&named, path).map_err(|e| SearchError::Weights {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Copies the safetensors file's tensors into the variables, after
    /// checking that the names and shapes are exactly this network's.
    fn load(&self, path: &Path) -> Result<()> {
        let fail = |message: String| SearchError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let read = Tensor::read_safetensors(path).map_err(|e| fail(e.to_string()))?;
        let file: BTreeMap<String, Tensor> = read.into_iter().collect();
        let ours = self.named_variables();
        check_weights(&ours, &file).map_err(fail)?;
        tch::no_grad(|| {
            for (name, mut var) in ours {
                var.copy_(&file[&name].to_kind(Kind::Float));
            }
        });
        Ok(())
    }

    /// The inference form: each batch norm folded into its convolution.
    pub fn folded(&self) -> crate::folded::Folded {
        let blocks = self
            .blocks
            .iter()
            .map(|units| units.iter().map(fold_unit).collect())
            .collect();
        crate::folded::Folded { blocks }
    }
}

/// Random but well-conditioned batch-norm scale in [0.5, 1.5) and shift
/// ~ N(0, 0.1²).
fn randomise_affine(bn: &nn::BatchNorm) {
    let c = bn.running_mean.size()[0];
    if let (Some(w), Some(b)) = (&bn.ws, &bn.bs) {
        w.shallow_clone()
            .copy_(&(Tensor::rand([c], (Kind::Float, Device::Cpu)) + 0.5));
        b.shallow_clone()
            .copy_(&(Tensor::randn([c], (Kind::Float, Device::Cpu)) * 0.1));
    }
}

/// Sets a batch norm's running statistics to its input's, per channel over
/// the batch and the image (the population variance, so the batch comes out
/// with unit variance before the affine part).
fn set_statistics(bn: &nn::BatchNorm, z: &Tensor) {
    let dims = [0i64, 2, 3];
    let mean = z.mean_dim(&dims[..], false, Kind::Float);
    let var = z.var_dim(&dims[..], false, false);
    bn.running_mean.shallow_clone().copy_(&mean);
    bn.running_var.shallow_clone().copy_(&var);
}

/// Names missing from the file, names it has that the network lacks, and
/// shapes that differ: all of them in one message.
fn check_weights(
    ours: &BTreeMap<String, Tensor>,
    file: &BTreeMap<String, Tensor>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (name, var) in ours {
        match file.get(name) {
            None => problems.push(format!("{name} is missing")),
            Some(t) if t.size() != var.size() => problems.push(format!(
                "{name} has shape {:?} where this architecture needs {:?}",
                t.size(),
                var.size()
            )),
            Some(_) => {}
        }
    }
    for name in file.keys().filter(|n| !ours.contains_key(*n)) {
        problems.push(format!("{name} is not a variable of this architecture"));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let shown = problems.len().min(5);
    Err(format!(
        "not the weights of this architecture: {}{}",
        problems[..shown].join("; "),
        if problems.len() > shown {
            format!(" (and {} more)", problems.len() - shown)
        } else {
            String::new()
        }
    ))
}

fn fold_unit(u: &Unit) -> crate::folded::Op {
    use crate::folded::Op;
    let detach = |t: &Tensor| t.detach().copy();
    match u {
        Unit::Conv {
            conv,
            bn,
            stride,
            groups,
            act,
            residual,
        } => {
            let gamma = bn.ws.as_ref().expect("affine batch norm").detach();
            let beta = bn.bs.as_ref().expect("affine batch norm").detach();
            let scale = &gamma / (bn.running_var.detach() + BN_EPS).sqrt();
            Op::conv(
                conv.ws.detach() * scale.view([-1, 1, 1, 1]),
                beta - bn.running_mean.detach() * &scale,
                *stride,
                *groups,
                *act,
                *residual,
            )
        }
        Unit::Se {
            reduce,
            expand,
            act,
        } => Op::Se {
            w1: detach(&reduce.ws),
            b1: detach(reduce.bs.as_ref().expect("bias")),
            w2: detach(&expand.ws),
            b2: detach(expand.bs.as_ref().expect("bias")),
            act: *act,
        },
        Unit::Pool => Op::Pool,
        Unit::Fc(fc) => Op::Fc {
            w: detach(&fc.ws),
            b: detach(fc.bs.as_ref().expect("bias")),
        },
    }
}
