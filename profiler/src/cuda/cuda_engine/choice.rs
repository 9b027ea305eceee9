//! Choosing how each convolution runs, by timing: the candidates for a
//! layer ([`candidates`]), what a candidate takes over from the layers
//! around it ([`Fuse`]), the cache of choices ([`ChoiceKey`]), and the joint
//! choice of an expansion and the depthwise convolution after it
//! ([`Pending`], `plan_pair`).

use super::timing::launch_spin;
use super::*;

/// How one convolution runs, chosen per shape by timing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConvImpl {
    /// The cuDNN algorithm, then the engine's bias/activation (or
    /// bias/residual) kernel.
    Cudnn(cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t),
    /// The cuDNN algorithm with bias, activation and residual in the same
    /// call (`cudnnConvolutionBiasActivationForward`): ReLU or no
    /// activation only, and no activation with `IMPLICIT_PRECOMP_GEMM` only.
    CudnnFused(cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t),
    /// A 1x1 stride-1 convolution as cuBLAS's batched product, then the
    /// engine's bias kernel.
    Gemm,
    /// The same after SE: the gate folded into per-image copies of the
    /// weights (`se_weights`), so that the product reads the input unscaled
    /// and SE's pass scaling it in place is not needed.
    GemmScaled,
    /// The NVRTC depthwise kernel with bias and activation fused: one
    /// thread per output, reading its window through the cache.
    Depthwise,
    /// The NVRTC depthwise kernel that stages whole planes in shared
    /// memory, with the expansion's bias and activation applied on load and
    /// SE's global pool computed on the way (`dwconv_plane` in kernels.rs).
    DepthwisePlane,
    /// The NVRTC `fc` kernel (one warp per output, bias included) for a 1x1
    /// convolution on a 1x1 map: the head's fully connected layer, which
    /// also runs as any 1x1 convolution does.
    Fc,
    /// The NVRTC direct convolution (`conv_direct`, bias and activation
    /// fused) for a dense k x k convolution with k > 1: the stem's way to
    /// run that needs no cuDNN, so that a stem still runs where cuDNN's
    /// legacy API fails under capture (issue 17).
    Direct,
}

/// Work from the layers around a convolution that its candidates take on,
/// so that each is timed with it and the one that fuses it competes fairly
/// with those that run it as a kernel of its own.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Fuse {
    /// The previous layer's bias and activation, not yet applied to this
    /// convolution's input (in place).
    pub(super) prologue: Option<Prologue>,
    /// Where the global average pool of this convolution's output goes (the
    /// SE layer after it).
    pub(super) pool_into: Option<CUdeviceptr>,
    /// This convolution leaves its bias and activation to the next layer
    /// (its prologue): candidates that would run them as a kernel of their
    /// own skip it.
    pub(super) hand_off: bool,
    /// SE's per-(image, channel) gate, not yet applied to this
    /// convolution's input: [`ConvImpl::GemmScaled`] folds it into the
    /// weights, every other candidate scales the input in place first.
    pub(super) scale: Option<CUdeviceptr>,
}

/// Which of a layer's candidates a choice is made among.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Among {
    All,
    /// All but the fused cuDNN ones (those that can hand their bias off).
    Plain,
    /// The fused cuDNN ones only.
    Fused,
}

impl Among {
    pub(super) fn admits(self, how: &ConvImpl) -> bool {
        let fused = matches!(how, ConvImpl::CudnnFused(_));
        match self {
            Among::All => true,
            Among::Plain => !fused,
            Among::Fused => fused,
        }
    }
}

/// The device buffers of one convolution: input, weights, bias, output, and
/// the block's input for a residual add.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConvBufs {
    pub(super) x: CUdeviceptr,
    pub(super) w: CUdeviceptr,
    pub(super) b: CUdeviceptr,
    pub(super) y: CUdeviceptr,
    pub(super) residual: CUdeviceptr,
}

/// An expansion convolution whose steps wait for the depthwise one after
/// it: which of the two plans runs (the expansion fused with its ReLU, or
/// plain with its bias and activation handed to the depthwise convolution)
/// is decided on the pair's time.
pub(super) struct Pending {
    pub(super) layer: Layer,
    pub(super) bufs: ConvBufs,
    pub(super) act: i32,
    /// The fastest plain candidate without its bias step, and its time,
    /// where one runs.
    pub(super) plain: Option<(ConvImpl, f64)>,
    /// The fastest fused candidate, where one runs (at least one of the
    /// two does).
    pub(super) fused: Option<(ConvImpl, f64)>,
}

/// A bias and activation left by the previous layer for this one to apply
/// to its input.
#[derive(Clone, Copy, Debug)]
pub(super) struct Prologue {
    pub(super) bias: CUdeviceptr,
    pub(super) act: i32,
}

/// What a choice is cached under: the convolution's shape, and what follows
/// it (which decides whether the fused candidates apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct ChoiceKey {
    pub(super) shape: ConvShape,
    pub(super) act: i32,
    pub(super) residual: bool,
    /// The prologue's activation code, -1 for none.
    pub(super) prologue: i32,
    pub(super) pooled: bool,
    pub(super) hand_off: bool,
    pub(super) scaled: bool,
    pub(super) among: Among,
}

/// How many times slower than the best so far a candidate may be before it
/// is timed no further: FFT algorithms on depthwise shapes take 100 times
/// as long as the others.
pub(super) const PRUNE_FACTOR: f64 = 10.0;

/// Whether a candidate that took `ms` has no chance against `best`.
pub(super) fn hopeless(ms: f64, best: Option<f64>) -> bool {
    best.is_some_and(|b| ms > PRUNE_FACTOR * b)
}

/// What timing one candidate gave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Timed {
    /// Its time, measured the way the table measures.
    Measured(f64),
    /// Its eager probe took this long, [`hopeless`] against the best so
    /// far: it was neither captured nor timed further.
    Pruned(f64),
}

impl CudaEngine {
    /// Time of one run of `steps`, the way the engine will time them in the
    /// table (a graph replay behind the spin under `--launch graph`, eager
    /// launches otherwise; after an L2 flush under `--l2 cold`): after one
    /// eager warm-up run, the best of three means of `RUNS` runs, so that
    /// noise rarely flips the choice between two close candidates (two
    /// processes must pick alike for repeatable tables). An error when a run
    /// or the capture fails (an algorithm that does not apply or cannot be
    /// captured). A candidate whose first mean is [`hopeless`] against
    /// `best` is not timed further; one whose eager probe (one run after
    /// the warm-up, behind the spin under `--launch graph`) already is, is
    /// not even captured ([`Timed::Pruned`]): capturing and instantiating a
    /// graph of a slow algorithm costs more than running it, and the full
    /// table has 10 minutes (issue 17).
    ///
    /// Without the spin, the GPU would idle from the start event until the
    /// CPU's first launch arrives: a few microseconds in every interval,
    /// alike for all candidates, which would shrink their differences
    /// below the 1% a later candidate needs to win, most for small layers.
    pub(super) fn time_candidate(
        &mut self,
        steps: &[Step],
        block: &str,
        best: Option<f64>,
    ) -> Result<Timed> {
        const RUNS: u32 = 5;
        const REPS: usize = 3;
        // The warm-up: first-use costs and errors surface here.
        self.launch_all(steps, block)?;
        self.stream.synchronize().in_block(block)?;
        if best.is_some() {
            let probe = self.probe(steps, block)?;
            if hopeless(probe, best) {
                return Ok(Timed::Pruned(probe));
            }
        }
        let graph = match self.config.launch {
            Launch::Graph => Some(self.capture(steps, block)?),
            Launch::Eager => None,
        };
        let run = |engine: &Self| -> Result<()> {
            match &graph {
                Some(g) => g.launch().in_block(block),
                None => engine.launch_all(steps, block),
            }
        };
        run(self)?;
        // Cold: every run after its own flush, so one run per interval.
        let (intervals, runs) = match self.flush {
            Some(_) => (RUNS, 1),
            None => (1, RUNS),
        };
        let mut fastest = f64::INFINITY;
        for _ in 0..REPS {
            let mut total = 0.0;
            for _ in 0..intervals {
                self.stream.synchronize().in_block(block)?;
                self.flush_l2().in_block(block)?;
                if graph.is_some() {
                    // `timed_run`'s spin, which outlasts enqueueing all the
                    // replays and the end event: the GPU then runs them back
                    // to back, with no CPU in the interval.
                    launch_spin(&self.stream, self.function("spin"), self.spin.ns(), 1)
                        .in_block(block)?;
                }
                self.start.record(&self.stream).in_block(block)?;
                for _ in 0..runs {
                    run(self)?;
                }
                self.end.record(&self.stream).in_block(block)?;
                if graph.is_some() {
                    // The spin is the same for these intervals and the
                    // table's timed runs, and adapts to both.
                    let late = self.start.try_is_complete().in_block(block)?;
                    self.spin.after_run(late);
                }
                self.end.synchronize().in_block(block)?;
                total += f64::from(self.start.elapsed_ms(&self.end).in_block(block)?);
            }
            let ms = total / f64::from(RUNS);
            fastest = fastest.min(ms);
            if hopeless(ms, best) {
                break;
            }
        }
        // The graph goes before the steps' buffers: the caller drops them.
        drop(graph);
        if fastest.is_finite() && fastest > 0.0 {
            Ok(Timed::Measured(fastest))
        } else {
            Err(ProfilerError::BadSample {
                block: block.into(),
                value: fastest,
            })
        }
    }

    /// One eager run of `steps` between the events, behind the spin under
    /// `--launch graph` so that the GPU runs the launches back to back
    /// (close to a replay's time; the spin is not adapted to it, eager
    /// launches being slower to enqueue than a graph). Warm L2: flushing
    /// would only make it slower, and it decides a prune only.
    fn probe(&mut self, steps: &[Step], block: &str) -> Result<f64> {
        if self.config.launch == Launch::Graph {
            launch_spin(&self.stream, self.function("spin"), self.spin.ns(), 1).in_block(block)?;
        }
        self.start.record(&self.stream).in_block(block)?;
        self.launch_all(steps, block)?;
        self.end.record(&self.stream).in_block(block)?;
        self.end.synchronize().in_block(block)?;
        Ok(f64::from(self.start.elapsed_ms(&self.end).in_block(block)?))
    }

    /// Chooses how to run a convolution of this shape by timing every
    /// candidate once (cached per shape for the engine's lifetime); an error
    /// when none runs.
    pub(super) fn choose(
        &mut self,
        layer: &Layer,
        fuse: Fuse,
        among: Among,
        bufs: ConvBufs,
        block: &str,
    ) -> Result<(ConvImpl, f64)> {
        self.try_choose(layer, fuse, among, bufs, block)?
    }

    /// [`Self::choose`] for a subset that may have no candidate that runs
    /// (the fused ones: cuDNN may refuse them all): `None` then, remembered
    /// like a choice. Errors that leave the stream unusable are still errors.
    pub(super) fn choose_if_any(
        &mut self,
        layer: &Layer,
        fuse: Fuse,
        among: Among,
        bufs: ConvBufs,
        block: &str,
    ) -> Result<Option<(ConvImpl, f64)>> {
        Ok(self.try_choose(layer, fuse, among, bufs, block)?.ok())
    }

    /// What a choice for `layer` with `fuse` among `among` is cached under.
    fn choice_key(&self, layer: &Layer, fuse: Fuse, among: Among) -> ChoiceKey {
        let shape = conv_shape(self.config.batch, layer);
        let Layer::Conv {
            act,
            residual: has_res,
            ..
        } = *layer
        else {
            unreachable!("choose is called for convolutions only")
        };
        ChoiceKey {
            shape,
            act: act_code(act),
            residual: has_res,
            prologue: fuse.prologue.map_or(-1, |p| p.act),
            pooled: fuse.pool_into.is_some(),
            hand_off: fuse.hand_off,
            scaled: fuse.scale.is_some(),
            among,
        }
    }

    /// The candidates that apply to `layer` here, in the order they are
    /// timed (a test's preferred one first).
    fn candidates_in_order(&self, layer: &Layer, fuse: Fuse, among: Among) -> Vec<ConvImpl> {
        let mut candidates = candidates(layer);
        candidates.retain(|c| {
            let needs_blas = matches!(c, ConvImpl::Gemm | ConvImpl::GemmScaled);
            among.admits(c)
                && (self.blas.is_some() || !needs_blas)
                && (fuse.scale.is_some() || *c != ConvImpl::GemmScaled)
        });
        if let Some(p) = self.prefer.filter(|p| candidates.contains(p)) {
            // Tests: the preferred one alone, the others only if it fails.
            candidates.retain(|c| *c != p);
            candidates.insert(0, p);
        }
        candidates
    }

    /// The outer error: the stream is broken. The inner one: no candidate
    /// of the subset ran (the last one's error), also remembered per key.
    pub(super) fn try_choose(
        &mut self,
        layer: &Layer,
        fuse: Fuse,
        among: Among,
        bufs: ConvBufs,
        block: &str,
    ) -> Result<Result<(ConvImpl, f64)>> {
        let key = self.choice_key(layer, fuse, among);
        let shape = key.shape;
        if let Some(&chosen) = self.choices.get(&key) {
            return Ok(Ok(chosen));
        }
        if self.unchosen.contains(&key) {
            return Ok(Err(unsupported(format!(
                "{shape:?}: no candidate among {among:?} ran for this shape (an earlier block's error said why) in {block}"
            ))));
        }
        let candidates = self.candidates_in_order(layer, fuse, among);
        let mut best: Option<(f64, ConvImpl)> = None;
        let mut last_error = None;
        let mut log = Vec::new();
        for how in candidates {
            if best.is_some() && self.prefer.is_some() {
                break;
            }
            let mut ws = Vec::new();
            match self.conv_steps(how, layer, fuse, bufs, &mut ws, block) {
                Ok(steps) => match self.time_candidate(&steps, block, best.map(|(b, _)| b)) {
                    Ok(Timed::Pruned(ms)) => log.push(format!(
                        "{how:?} pruned (its eager run took {ms:.4} ms, over {PRUNE_FACTOR} times the best)"
                    )),
                    Ok(Timed::Measured(ms)) => {
                        log.push(format!("{how:?} {ms:.4} ms"));
                        // A later candidate must be 1% faster to win, so
                        // that timing noise between two near-equal ones
                        // does not make two processes choose differently.
                        if best.is_none_or(|(b, _)| ms < 0.99 * b) {
                            best = Some((ms, how));
                        }
                    }
                    Err(e) => {
                        log.push(format!("{how:?} failed: {e}"));
                        last_error = Some(e)
                    }
                },
                // A candidate that does not apply or does not fit is
                // skipped; only when none runs is it an error.
                Err(e) => {
                    log.push(format!("{how:?} does not apply: {e}"));
                    last_error = Some(e)
                }
            }
            // A failed candidate may leave an error on the stream: clear
            // it by synchronizing, and stop if the context is broken (its
            // workspace, dropped above, is freed in stream order).
            self.stream.synchronize().in_block(block)?;
        }
        let Some((ms, how)) = best else {
            if self.log_choices {
                eprintln!(
                    "no choice for {shape:?} among {among:?} in {block}; candidates: {}",
                    log.join("; ")
                );
            }
            self.unchosen.insert(key);
            return Ok(Err(last_error.unwrap_or_else(|| ProfilerError::Cudnn {
                block: block.into(),
                msg: "no convolution algorithm ran for this shape".into(),
            })));
        };
        self.log_choice(&key, how, &log, block);
        self.choices.insert(key, (how, ms));
        Ok(Ok((how, ms)))
    }

    /// With `log_choices`, says on stderr which implementation `how` won
    /// for `key` and how each candidate fared (`log`).
    fn log_choice(&self, key: &ChoiceKey, how: ConvImpl, log: &[String], block: &str) {
        if self.log_choices {
            let (shape, among) = (key.shape, key.among);
            eprintln!(
                "choice for {shape:?} (act {}, residual {}, prologue {}, pooled {}, hand-off {}, scaled {}, among {among:?}) in {block}: {how:?}; candidates: {}",
                key.act,
                key.residual,
                key.prologue,
                key.pooled,
                key.hand_off,
                key.scaled,
                log.join("; ")
            );
        }
    }

    /// How a pending expansion and the depthwise convolution `dw` after it
    /// run: the expansion's implementation and [`Fuse`], and the depthwise
    /// convolution's [`Fuse`] (`alone`: its own, without a prologue). Plan
    /// P: the plain expansion hands its bias and activation to the depthwise
    /// convolution; plan F: the expansion runs fused with its ReLU. The pair
    /// that is faster in all runs, each time measured with the depthwise
    /// convolution chosen for that plan.
    pub(super) fn plan_pair(
        &mut self,
        pend: &Pending,
        dw: &Layer,
        alone: Fuse,
        bufs: ConvBufs,
        block: &str,
    ) -> Result<(ConvImpl, Fuse, Fuse)> {
        let with_prologue = Fuse {
            prologue: Some(Prologue {
                bias: pend.bufs.b,
                act: pend.act,
            }),
            ..alone
        };
        let hand_off = Fuse {
            hand_off: true,
            ..Fuse::default()
        };
        let plan_p = match pend.plain {
            Some((how, ms)) => {
                let (_, dw_ms) = self.choose(dw, with_prologue, Among::All, bufs, block)?;
                Some((how, ms + dw_ms))
            }
            None => None,
        };
        // A depthwise convolution that does not run without the prologue
        // only rules plan F out, where plan P runs.
        let plan_f = match pend.fused {
            Some((how, ms)) => match self.try_choose(dw, alone, Among::All, bufs, block)? {
                Ok((_, dw_ms)) => Some((how, ms + dw_ms)),
                Err(e) if plan_p.is_none() => return Err(e),
                Err(_) => None,
            },
            None => None,
        };
        let fused = match (plan_p, plan_f) {
            (Some((_, p)), Some((_, f))) => takes_fused_plan(self.prefer, f, p),
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => {
                return Err(unsupported(format!(
                    "an expansion with neither a plain nor a fused way to run in {block}"
                )))
            }
        };
        if self.log_choices {
            let show = |plan: Option<(ConvImpl, f64)>| {
                plan.map_or("none".to_string(), |(how, ms)| {
                    format!("{how:?} {ms:.4} ms")
                })
            };
            eprintln!(
                "plan for {block}: {} (plain with the depthwise prologue: {}; fused: {})",
                if fused { "fused" } else { "plain" },
                show(plan_p),
                show(plan_f)
            );
        }
        Ok(match (fused, plan_p, plan_f) {
            (true, _, Some((how, _))) => (how, Fuse::default(), alone),
            (false, Some((how, _)), _) => (how, hand_off, with_prologue),
            _ => unreachable!("the plan taken exists"),
        })
    }

    /// Tests only: prefer `how` wherever it applies (`None`: the fastest),
    /// forgetting every choice made so far.
    pub fn prefer(&mut self, how: Option<ConvImpl>) {
        self.prefer = how;
        self.choices.clear();
        self.unchosen.clear();
    }

    /// Tests only: the ways of running chosen since the last
    /// [`Self::prefer`], so that a test can tell that a preferred way ran
    /// rather than failed over to another.
    pub fn chosen(&self) -> Vec<ConvImpl> {
        let mut out: Vec<ConvImpl> = Vec::new();
        for (how, _) in self.choices.values() {
            if !out.contains(how) {
                out.push(*how);
            }
        }
        out
    }

    /// Every way a convolution can run, for [`Self::prefer`].
    pub fn all_conv_impls() -> Vec<ConvImpl> {
        [
            ConvImpl::Depthwise,
            ConvImpl::DepthwisePlane,
            ConvImpl::Gemm,
            ConvImpl::GemmScaled,
            ConvImpl::Fc,
            ConvImpl::Direct,
        ]
        .into_iter()
        .chain(ALGORITHMS.iter().map(|&a| ConvImpl::Cudnn(a)))
        .chain(ALGORITHMS.iter().map(|&a| ConvImpl::CudnnFused(a)))
        .collect()
    }
}

/// Whether an expansion runs fused with its ReLU (`plan_f`: its time plus
/// the depthwise convolution's) rather than plain, handing its bias and
/// activation to the depthwise convolution (`plan_p`). Like any later
/// candidate, the fused plan must be 1% faster. Tests that prefer a way of
/// running get the plan where it runs: a fused convolution the fused plan,
/// anything else the plain one.
pub(super) fn takes_fused_plan(prefer: Option<ConvImpl>, plan_f: f64, plan_p: f64) -> bool {
    match prefer {
        Some(ConvImpl::CudnnFused(_)) => true,
        Some(_) => false,
        None => plan_f < 0.99 * plan_p,
    }
}

/// The one algorithm with which cuDNN fuses a bias without activation.
pub(super) const PRECOMP: cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t =
    cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;

/// The ways to run a convolution that are timed for it: for a depthwise
/// convolution the NVRTC kernel first (the likely fastest, so that
/// [`CudaEngine::time_candidate`] can cut hopeless ones short), then the
/// GEMM-like cuDNN algorithms, where FFT and Winograd took 37 to 100 times
/// as long on the H100 (docs/gpu-facts.md pitfall 4) and would dominate the time to
/// build a table; for a 1x1 convolution the GEMM-like algorithms (FFT and
/// Winograd cannot win; Winograd does not apply at all), each also fused
/// where cuDNN can fuse what follows (ReLU with any, no activation with
/// `IMPLICIT_PRECOMP_GEMM` only), and cuBLAS where the stride is 1; for a
/// dense k x k convolution (the stem) the NVRTC direct convolution first,
/// then every algorithm, plain and fused where it can. So every
/// convolution of every block kind has a way to run that is not cuDNN's
/// (the test `every_convolution_of_every_block_kind_can_run_without_cudnn`).
pub(super) fn candidates(layer: &Layer) -> Vec<ConvImpl> {
    use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t as A;
    let Layer::Conv {
        kernel,
        stride,
        act,
        ..
    } = *layer
    else {
        return Vec::new();
    };
    let spectral = |a: &A| {
        matches!(
            a,
            A::CUDNN_CONVOLUTION_FWD_ALGO_FFT
                | A::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING
                | A::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD
                | A::CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED
        )
    };
    let depthwise = layer.is_depthwise();
    let prune = depthwise || kernel == 1;
    let algos: Vec<A> = ALGORITHMS
        .iter()
        .copied()
        .filter(|a| !(prune && spectral(a)))
        .collect();
    let mut out = Vec::new();
    if depthwise {
        out.extend([ConvImpl::Depthwise, ConvImpl::DepthwisePlane]);
    }
    if is_fully_connected(layer) {
        out.push(ConvImpl::Fc);
    }
    if !depthwise && kernel > 1 {
        out.push(ConvImpl::Direct);
    }
    out.extend(algos.iter().map(|&a| ConvImpl::Cudnn(a)));
    if !depthwise {
        match act {
            None => out.push(ConvImpl::CudnnFused(PRECOMP)),
            Some(space::Activation::Relu) => {
                out.extend(algos.iter().map(|&a| ConvImpl::CudnnFused(a)))
            }
            Some(_) => {}
        }
        if kernel == 1 && stride == 1 {
            out.push(ConvImpl::Gemm);
            if !is_fully_connected(layer) {
                // Applies after SE only (`Fuse::scale`).
                out.push(ConvImpl::GemmScaled);
            }
        }
    }
    out
}

/// A 1x1 convolution on a 1x1 map without activation or residual: a
/// fully connected layer (the head's classifier, [`Layer::Fc`] run as a
/// convolution).
pub(super) fn is_fully_connected(layer: &Layer) -> bool {
    match *layer {
        Layer::Conv { cin, cout, .. } => *layer == Layer::Fc { cin, cout }.as_convolution(),
        _ => false,
    }
}

pub(super) fn conv_shape(batch: u32, layer: &Layer) -> ConvShape {
    match *layer {
        Layer::Conv {
            cin,
            cout,
            kernel,
            stride,
            groups,
            res_in,
            res_out,
            ..
        } => ConvShape {
            batch: batch as i32,
            cin: cin as i32,
            cout: cout as i32,
            res_in: res_in as i32,
            res_out: res_out as i32,
            kernel: kernel as i32,
            stride: stride as i32,
            groups: groups as i32,
        },
        _ => unreachable!("conv_shape is called for convolutions only"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use space::BlockSpec;

    fn conv_layers(key: &str) -> Vec<Layer> {
        let spec: BlockSpec = key.parse().unwrap();
        block_layers(&spec)
            .into_iter()
            .filter(|l| matches!(l, Layer::Conv { .. }))
            .collect()
    }

    #[test]
    fn candidates_put_the_own_kernel_first_and_prune_hopeless_algorithms() {
        use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t as A;
        let mb = conv_layers("mbconv_r28_i40_o80_s2_k5_m240_se80_swish");
        let (expand, dw, project) = (&mb[0], &mb[1], &mb[2]);
        let c = candidates(dw);
        assert_eq!(c[..2], [ConvImpl::Depthwise, ConvImpl::DepthwisePlane]);
        assert_eq!(c.len(), 6, "{c:?}");
        assert!(!c.contains(&ConvImpl::Cudnn(A::CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING)));
        assert!(c.contains(&ConvImpl::Cudnn(
            A::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
        )));
        assert!(!c.contains(&ConvImpl::Gemm));

        // Swish expansion: cuDNN cannot fuse swish; four algorithms and
        // cuBLAS, plain and (after SE only, which `try_choose` checks) with
        // SE's scale folded in.
        let c = candidates(expand);
        assert_eq!(c.len(), 6, "{c:?}");
        assert_eq!(c[4..], [ConvImpl::Gemm, ConvImpl::GemmScaled]);
        assert!(!c.iter().any(|i| matches!(i, ConvImpl::CudnnFused(_))));
        // Linear projection: fused with the one algorithm that fuses
        // identity.
        let c = candidates(project);
        assert_eq!(c.len(), 7, "{c:?}");
        assert!(c.contains(&ConvImpl::CudnnFused(PRECOMP)));
        assert!(c.contains(&ConvImpl::Gemm) && c.contains(&ConvImpl::GemmScaled));
        assert!(!c.contains(&ConvImpl::Depthwise));
        assert!(!c.contains(&ConvImpl::DepthwisePlane));

        // ReLU expansion: every GEMM-like algorithm plain and fused.
        let relu = conv_layers("mbconv_r56_i24_o24_s1_k3_m72_se0_relu");
        let c = candidates(&relu[0]);
        assert_eq!(c.len(), 10, "{c:?}");
        assert!(c.contains(&ConvImpl::CudnnFused(A::CUDNN_CONVOLUTION_FWD_ALGO_GEMM)));

        // The stem (3x3, stride 2, ReLU): the direct kernel first, then
        // every algorithm plain and fused, no cuBLAS (not a 1x1).
        let stem = conv_layers("stem_r224_i3_o32_s2_k3_m0_se0_relu");
        let c = candidates(&stem[0]);
        assert_eq!(c[0], ConvImpl::Direct);
        assert_eq!(c.len(), 1 + 2 * ALGORITHMS.len(), "{c:?}");
        assert!(!candidates(dw).contains(&ConvImpl::Direct));
        assert!(!candidates(expand).contains(&ConvImpl::Direct));
        // The head's 1x1 (swish): cuBLAS applies.
        let head = block_layers(&"head_r7_i320_o1000_s1_k1_m1280_se0_swish".parse().unwrap());
        assert!(candidates(&head[0]).contains(&ConvImpl::Gemm));
        assert!(!candidates(&head[0]).contains(&ConvImpl::Fc));
        // Its classifier, run as a 1x1 convolution on a 1x1 map: the
        // engine's own kernel first, then cuDNN (plain and fused identity)
        // and cuBLAS.
        let fc = head[2].as_convolution();
        assert!(matches!(
            head[2],
            Layer::Fc {
                cin: 1280,
                cout: 1000
            }
        ));
        assert!(is_fully_connected(&fc) && !is_fully_connected(&head[0]));
        let c = candidates(&fc);
        assert_eq!(c[0], ConvImpl::Fc);
        assert_eq!(c.len(), 7, "{c:?}");
        assert!(c.contains(&ConvImpl::Gemm) && c.contains(&ConvImpl::CudnnFused(PRECOMP)));
        assert!(candidates(&Layer::Pool {
            channels: 8,
            res: 7
        })
        .is_empty());
        // Every candidate is one that `prefer` can ask for (so the GPU
        // numerics check covers it).
        let all = CudaEngine::all_conv_impls();
        for layer in mb.iter().chain(&relu).chain(&stem).chain([&fc]) {
            assert!(candidates(layer).iter().all(|c| all.contains(c)));
        }
    }

    /// Issue 17: where cuDNN fails (its legacy API under capture, say),
    /// "no candidate ran" would stop the table. Every convolution of every
    /// block of the default table at width step 8 (so every block kind, and
    /// the head's classifier as the convolution it runs as) has a candidate
    /// that is the engine's own kernel or cuBLAS (1x1 convolutions: where
    /// cuBLAS loads, which the engine's name says).
    #[test]
    fn every_convolution_of_every_block_kind_can_run_without_cudnn() {
        let plan = space::SearchSpaceConfig::default().table_plan(8).unwrap();
        let mut kinds = std::collections::BTreeMap::new();
        for spec in &plan.blocks {
            for layer in block_layers(spec) {
                let conv = layer.as_convolution();
                if !matches!(conv, Layer::Conv { .. }) {
                    continue;
                }
                let c = candidates(&conv);
                let own: Vec<_> = c
                    .iter()
                    // GemmScaled applies after SE only, where Gemm does too.
                    .filter(|i| {
                        !matches!(
                            i,
                            ConvImpl::Cudnn(_) | ConvImpl::CudnnFused(_) | ConvImpl::GemmScaled
                        )
                    })
                    .collect();
                assert!(
                    !own.is_empty(),
                    "{spec}: {conv:?} has only cuDNN candidates: {c:?}"
                );
                kinds
                    .entry(format!("{:?}", spec.shape.kind))
                    .or_insert_with(Vec::new)
                    .extend(own.into_iter().map(|i| format!("{i:?}")));
            }
        }
        for kinds_own in kinds.values_mut() {
            kinds_own.sort();
            kinds_own.dedup();
        }
        eprintln!("non-cuDNN candidates per block kind: {kinds:?}");
        let all: Vec<String> = space::BlockKind::ALL
            .iter()
            .map(|k| format!("{k:?}"))
            .collect();
        assert_eq!(kinds.keys().cloned().collect::<Vec<_>>().len(), all.len());
        assert!(all.iter().all(|k| kinds.contains_key(k)), "{kinds:?}");
        assert_eq!(kinds["Stem"], ["Direct"]);
    }

    #[test]
    fn the_plain_and_fused_subsets_split_the_candidates() {
        use cudarc::cudnn::sys::cudnnConvolutionFwdAlgo_t as A;
        let relu = conv_layers("mbconv_r56_i24_o24_s1_k3_m72_se0_relu");
        let all = candidates(&relu[0]);
        let plain: Vec<_> = all.iter().filter(|c| Among::Plain.admits(c)).collect();
        let fused: Vec<_> = all.iter().filter(|c| Among::Fused.admits(c)).collect();
        assert_eq!(plain.len() + fused.len(), all.len());
        assert!(plain.contains(&&ConvImpl::Gemm));
        assert!(fused.contains(&&ConvImpl::CudnnFused(
            A::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
        )));
        assert!(all.iter().all(|c| Among::All.admits(c)));
        // A swish expansion has no fused candidate: the plain plan only.
        let swish = conv_layers("mbconv_r28_i40_o80_s2_k5_m240_se80_swish");
        assert!(!candidates(&swish[0]).iter().any(|c| Among::Fused.admits(c)));
    }

    #[test]
    fn a_candidate_ten_times_slower_than_the_best_is_pruned() {
        // The first candidate has nothing to lose against.
        assert!(!hopeless(1e6, None));
        assert!(!hopeless(0.99, Some(0.1)));
        assert!(!hopeless(1.0, Some(0.1)));
        assert!(hopeless(1.01, Some(0.1)));
        assert!(!hopeless(f64::NAN, Some(0.1)));
        assert_eq!(PRUNE_FACTOR, 10.0);
    }

    #[test]
    fn the_fused_plan_wins_by_one_percent_or_by_preference() {
        assert!(takes_fused_plan(None, 0.98, 1.0));
        assert!(!takes_fused_plan(None, 0.995, 1.0));
        assert!(!takes_fused_plan(None, 1.2, 1.0));
        assert!(takes_fused_plan(
            Some(ConvImpl::CudnnFused(PRECOMP)),
            5.0,
            1.0
        ));
        assert!(!takes_fused_plan(Some(ConvImpl::DepthwisePlane), 0.1, 1.0));
        assert!(!takes_fused_plan(Some(ConvImpl::Gemm), 0.1, 1.0));
    }
}
