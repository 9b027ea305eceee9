//! `searcher export`: an architecture's stand-alone network, in eval mode
//! with batch norm folded into the convolutions, written as TorchScript or
//! ONNX, with its parameters and multiply-adds checked against the
//! architecture's (the cost model of `space`).

use std::fmt;
use std::path::{Path, PathBuf};

use space::io::{check_output, write_atomic, AtomicFile};
use space::Architecture;
use tch::{Device, Kind, Tensor};

use crate::error::{Result, SearchError};
use crate::network::Network;
use crate::onnx;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A traced TorchScript module (`torch.jit.load`), any batch and
    /// resolution.
    Torchscript,
    /// An ONNX model (opset 13), symbolic batch `N`, fixed resolution.
    Onnx,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Torchscript => "TorchScript",
            Format::Onnx => "ONNX",
        })
    }
}

/// `searcher export`'s flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ExportArgs {
    /// The architecture JSON (a search's `--out`).
    #[arg(long)]
    pub arch: PathBuf,
    /// Trained weights (safetensors, the variable names of
    /// docs/train-export.md); without it, random weights drawn from --seed
    /// (enough for latency work).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub format: Format,
    /// Where to write the model (.pt for TorchScript, .onnx for ONNX).
    #[arg(long)]
    pub out: PathBuf,
    /// Batch of the example input the export is traced and checked at.
    /// The TorchScript runs at any batch, the ONNX batch is symbolic.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// Input height and width [default: the space's, 224 for TF-NAS].
    /// Fixed in the ONNX file; the TorchScript runs at any resolution.
    #[arg(long, value_parser = clap::value_parser!(u32).range(8..=2048))]
    pub resolution: Option<u32>,
    /// Seed of the random weights (without --weights) and example input.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// What an export wrote, for the report.
pub struct Exported {
    pub format: Format,
    pub out: PathBuf,
    pub bytes: u64,
    pub batch: u32,
    pub channels: u32,
    pub resolution: u32,
    pub weights: String,
    /// Trainable parameters of the network (BN's scale and shift
    /// included), equal to the architecture's.
    pub params: u64,
    /// Multiply-adds per image at the space's resolution, counted from
    /// the folded network's tensors as it ran, equal to the architecture's.
    pub macs: u64,
    pub space_resolution: u32,
    /// Floats the file stores (BN folded: one bias per convolution in
    /// place of BN's scale and shift).
    pub stored_floats: u64,
    /// Largest |folded − unfolded| over the largest |unfolded| output on the
    /// example input.
    pub fold_error: f64,
}

impl Exported {
    pub fn lines(&self) -> Vec<String> {
        let r = self.resolution;
        vec![
            format!(
                "{} export, eval mode (batch norm folded into the convolutions, no dropout), at batch {} and {}x{}x{r}; weights {}",
                self.format, self.batch, self.channels, r, self.weights
            ),
            format!(
                "{} parameters (BN scale and shift included, as PyTorch counts), {} multiply-adds per {}x{} image: both equal the architecture's",
                self.params, self.macs, self.space_resolution, self.space_resolution
            ),
            format!(
                "the file stores {} floats (folded); folding changed the outputs by {:.2e} relative",
                self.stored_floats, self.fold_error
            ),
            format!("written to {} ({} bytes)", self.out.display(), self.bytes),
        ]
    }
}

/// Largest |a − b| over the largest |b|.
pub fn relative_error(a: &Tensor, b: &Tensor) -> f64 {
    let diff = (a - b).abs().max().double_value(&[]);
    let scale = b.abs().max().double_value(&[]);
    diff / scale.max(f64::MIN_POSITIVE)
}

fn check_paths(args: &ExportArgs) -> Result<()> {
    let mut inputs: Vec<(&str, &Path)> = vec![("architecture", &args.arch)];
    if let Some(w) = &args.weights {
        inputs.push(("weights", w));
    }
    check_output(&args.out, &inputs)?;
    Ok(())
}

/// Builds the network, checks it against the architecture and writes the
/// file; nothing is written unless every check passed.
pub fn run(args: &ExportArgs) -> Result<Exported> {
    let arch = Architecture::from_path(&args.arch)?;
    check_paths(args)?;
    let net = match &args.weights {
        Some(path) => Network::with_weights(&arch, path)?,
        None => Network::random(&arch, args.seed)?,
    };
    let space_res = arch.space.input_resolution;
    let resolution = args.resolution.unwrap_or(space_res);
    let channels = net.specs[0].shape.in_channels;
    let params = checked_params(&net, &arch)?;
    let folded = net.folded();
    let macs = checked_macs(&folded, &arch, channels, space_res)?;
    tch::manual_seed(args.seed as i64);
    let shape = [args.batch, channels, resolution, resolution].map(i64::from);
    let example = Tensor::randn(shape, (Kind::Float, Device::Cpu));
    let fold_error =
        tch::no_grad(|| relative_error(&folded.forward(&example), &net.forward(&example)));
    match args.format {
        Format::Torchscript => {
            let file = AtomicFile::new(&args.out)?;
            folded.save_torchscript(&example, file.temp_path())?;
            file.commit()?;
        }
        Format::Onnx => {
            let classes = net.specs.last().expect("a head").shape.out_channels;
            let doc = format!("{} with BN folded", args.arch.display());
            let model = onnx::model(&folded, channels.into(), resolution, classes.into(), &doc)?;
            write_atomic(&args.out, &onnx::encode(&model))?;
        }
    }
    let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    Ok(Exported {
        format: args.format,
        out: args.out.clone(),
        bytes,
        batch: args.batch,
        channels,
        resolution,
        weights: match &args.weights {
            Some(w) => format!("from {}", w.display()),
            None => format!("random (seed {})", args.seed),
        },
        params,
        macs,
        space_resolution: space_res,
        stored_floats: folded.stored_floats(),
        fold_error,
    })
}

fn checked_params(net: &Network, arch: &Architecture) -> Result<u64> {
    let (ours, theirs) = (net.parameter_count(), arch.params()?);
    if ours != theirs {
        return Err(SearchError::Export(format!(
            "the network has {ours} parameters but the architecture counts {theirs}"
        )));
    }
    Ok(ours)
}

/// Multiply-adds of one image at the space's resolution, counted as the
/// folded network runs.
fn checked_macs(
    folded: &crate::folded::Folded,
    arch: &Architecture,
    channels: u32,
    res: u32,
) -> Result<u64> {
    let x = Tensor::zeros(
        [1, channels, res, res].map(i64::from),
        (Kind::Float, Device::Cpu),
    );
    let (_, counts) = tch::no_grad(|| folded.forward_counted(&x));
    let theirs = arch.macs()?;
    if counts.macs != theirs {
        return Err(SearchError::Export(format!(
            "the network runs {} multiply-adds per image but the architecture counts {theirs}",
            counts.macs
        )));
    }
    Ok(counts.macs)
}
