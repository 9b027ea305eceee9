//! Lowering a workload to steps: the layers of each block
//! ([`space::layers::block_layers`]) with their seeded weights, each to
//! the launches of the way chosen for it, with what one layer hands the
//! next inside a block.

use super::*;

/// A workload's steps as `build_steps` lays them out, block after block:
/// the allocations they point to and the output so far.
struct Built {
    rng: Rng,
    /// The last layer's output, the next one's input.
    current: CUdeviceptr,
    current_len: usize,
    buffers: Vec<CudaSlice<f32>>,
    workspaces: Vec<CudaSlice<u8>>,
    steps: Vec<Step>,
}

/// Handed from one layer to the next inside a block (never across blocks:
/// each block's steps stay its own, so that a network costs what its table
/// entries sum to).
#[derive(Default)]
struct Handed {
    /// The expansion waiting for the depthwise convolution's choice.
    pending: Option<Pending>,
    /// The pool the depthwise convolution computed for SE.
    pooled_by_conv: Option<CUdeviceptr>,
    /// SE's gate, left for the convolution after it to apply (see
    /// `Fuse::scale`).
    scaled_by: Option<CUdeviceptr>,
}

/// One layer's place in its block: its parameters, its output, the block's
/// input (for a residual) and the layer after it.
#[derive(Clone, Copy)]
struct LayerIo<'a> {
    p: &'a Params,
    y: CUdeviceptr,
    block_input: CUdeviceptr,
    next: Option<&'a Layer>,
    block: &'a str,
}

impl CudaEngine {
    pub(super) fn build_steps(&mut self, workload: &Workload) -> Result<Prepared> {
        let name = workload.to_string();
        let block = name.as_str();
        if let Workload::Empty { kernels } = *workload {
            if kernels == 0 {
                return Err(unsupported("a run of no kernels".into()));
            }
            return Ok(Prepared {
                graph: None,
                steps: (0..kernels).map(|_| Step::Empty).collect(),
                _buffers: Vec::new(),
                _workspaces: Vec::new(),
                output: (0, 0),
                name,
            });
        }
        if let Workload::Model { .. } = workload {
            // A TorchScript model needs libtorch, which this binary never links.
            return Err(unsupported(
                "timing an exported TorchScript model (use --device cpu)".into(),
            ));
        }
        let specs = workload.blocks();
        let batch = self.config.batch as usize;
        let mut rng = Rng::new(self.config.seed);
        let first = specs
            .first()
            .ok_or_else(|| unsupported("an empty network".into()))?;
        let input = self.upload(block, &rng.fill(batch * block_input_len(first), -1.0, 1.0))?;
        let mut built = Built {
            rng,
            current: self.ptr(&input),
            current_len: batch * block_input_len(first),
            buffers: vec![input],
            workspaces: Vec::new(),
            steps: Vec::new(),
        };
        for spec in specs {
            self.block_steps(spec, &mut built, block)?;
        }
        Ok(Prepared {
            graph: None,
            steps: built.steps,
            _buffers: built.buffers,
            _workspaces: built.workspaces,
            output: (built.current, built.current_len),
            name,
        })
    }

    /// Appends the steps of one block of the workload to `built`.
    fn block_steps(
        &mut self,
        spec: &space::BlockSpec,
        built: &mut Built,
        block: &str,
    ) -> Result<()> {
        let batch = self.config.batch as usize;
        if batch * block_input_len(spec) != built.current_len {
            return Err(unsupported(format!(
                "{spec} after a block with {} outputs",
                built.current_len
            )));
        }
        let block_input = built.current;
        let layers = block_layers(spec);
        let mut handed = Handed::default();
        for (i, &layer) in layers.iter().enumerate() {
            let next = layers.get(i + 1);
            let p = random_params(&layer, &mut built.rng);
            // Every layer but SE (in place) writes a buffer of its own.
            let y = match layer {
                Layer::Se { .. } => built.current,
                _ => {
                    let out = self.zeros(block, batch * layer.output_len())?;
                    let y = self.ptr(&out);
                    built.buffers.push(out);
                    y
                }
            };
            let io = LayerIo {
                p: &p,
                y,
                block_input,
                next,
                block,
            };
            match layer {
                Layer::Conv { .. } => self.conv_layer(&layer, io, built, &mut handed)?,
                Layer::Se { .. } => self.se_layer(&layer, io, built, &mut handed)?,
                Layer::Pool { channels, res } => {
                    built.steps.push(Step::Pool {
                        x: built.current,
                        out: y,
                        nc: (batch as u32 * channels) as i32,
                        hw: (res * res) as i32,
                    });
                    built.current = y;
                }
                Layer::Fc { .. } => self.fc_layer(&layer, io, built)?,
            }
            built.current_len = match layer {
                Layer::Se { .. } => built.current_len,
                _ => batch * layer.output_len(),
            };
        }
        if handed.pending.is_some() || handed.scaled_by.is_some() {
            return Err(unsupported(format!(
                "{spec}: an expansion with no depthwise convolution after it, or SE with no convolution"
            )));
        }
        Ok(())
    }

    /// The FC layer's steps, run as the 1x1 convolution on a 1x1 map it is,
    /// so that cuDNN and cuBLAS compete with the engine's own kernel
    /// (`ConvImpl::Fc`).
    fn fc_layer(&mut self, layer: &Layer, io: LayerIo, built: &mut Built) -> Result<()> {
        let LayerIo {
            p,
            y,
            block_input,
            block,
            ..
        } = io;
        let conv = layer.as_convolution();
        let bufs = self.conv_bufs(block, p, built.current, y, block_input, &mut built.buffers)?;
        let fuse = Fuse::default();
        let (how, _) = self.choose(&conv, fuse, Among::All, bufs, block)?;
        built.steps.extend(self.conv_steps(
            how,
            &conv,
            fuse,
            bufs,
            &mut built.workspaces,
            block,
        )?);
        built.current = y;
        Ok(())
    }

    /// A convolution's steps, or, for an expansion before a depthwise
    /// convolution, its plans left pending for that one's choice.
    fn conv_layer(
        &mut self,
        layer: &Layer,
        io: LayerIo,
        built: &mut Built,
        handed: &mut Handed,
    ) -> Result<()> {
        let LayerIo {
            p,
            y,
            block_input,
            next,
            block,
        } = io;
        let Layer::Conv {
            cout,
            act,
            residual: has_res,
            ..
        } = *layer
        else {
            unreachable!("conv_layer is called for convolutions only")
        };
        let batch = self.config.batch as usize;
        let bufs = self.conv_bufs(block, p, built.current, y, block_input, &mut built.buffers)?;
        // An expansion before a depthwise convolution: its steps wait for
        // that one's choice (see `Pending`).
        if next.is_some_and(Layer::is_depthwise)
            && !layer.is_depthwise()
            && act.is_some()
            && !has_res
        {
            handed.pending = Some(self.pending_expansion(layer, bufs, block)?);
            built.current = y;
            return Ok(());
        }
        let pool_into = if layer.is_depthwise() && matches!(next, Some(Layer::Se { .. })) {
            let pooled = self.zeros(block, batch * cout as usize)?;
            let pp = self.ptr(&pooled);
            built.buffers.push(pooled);
            handed.pooled_by_conv = Some(pp);
            Some(pp)
        } else {
            None
        };
        let alone = Fuse {
            pool_into,
            scale: handed.scaled_by.take(),
            ..Fuse::default()
        };
        let (expansion, fuse) = match handed.pending.take() {
            None => (None, alone),
            Some(pend) => {
                let (how, efuse, fuse) = self.plan_pair(&pend, layer, alone, bufs, block)?;
                (Some((pend, how, efuse)), fuse)
            }
        };
        if let Some((pend, how, efuse)) = expansion {
            built.steps.extend(self.conv_steps(
                how,
                &pend.layer,
                efuse,
                pend.bufs,
                &mut built.workspaces,
                block,
            )?);
        }
        let (how, _) = self.choose(layer, fuse, Among::All, bufs, block)?;
        built.steps.extend(self.conv_steps(
            how,
            layer,
            fuse,
            bufs,
            &mut built.workspaces,
            block,
        )?);
        built.current = y;
        Ok(())
    }

    /// An expansion's two plans, for the depthwise convolution after it to
    /// choose between: plain with its bias and activation handed on, or
    /// fused with its ReLU.
    fn pending_expansion(&mut self, layer: &Layer, bufs: ConvBufs, block: &str) -> Result<Pending> {
        let Layer::Conv { act, .. } = *layer else {
            unreachable!("pending_expansion is called for convolutions only")
        };
        let hand_off = Fuse {
            hand_off: true,
            ..Fuse::default()
        };
        let plain = self.try_choose(layer, hand_off, Among::Plain, bufs, block)?;
        let fused = if candidates(layer).iter().any(|c| Among::Fused.admits(c)) {
            self.choose_if_any(layer, Fuse::default(), Among::Fused, bufs, block)?
        } else {
            None
        };
        // Either plan may be missing, not both.
        let plain = match (plain, fused) {
            (Ok(p), _) => Some(p),
            (Err(_), Some(_)) => None,
            (Err(e), None) => return Err(e),
        };
        Ok(Pending {
            layer: *layer,
            bufs,
            act: act_code(act),
            plain,
            fused,
        })
    }

    /// SE's gate, `gates` floats starting at 1, and its four parameter
    /// arrays, uploaded and kept in `built`; their pointers.
    fn se_buffers(
        &self,
        p: &Params,
        gates: usize,
        built: &mut Built,
        block: &str,
    ) -> Result<(CUdeviceptr, Vec<CUdeviceptr>)> {
        // SE_FC writes the gate in every run; until the first, the choice
        // after SE times candidates on it. It starts at 1, so that their
        // in-place scale of the input, repeated over every timed run of
        // every candidate with nothing rewriting the input in between,
        // leaves it as it is: 0 would zero it at once, 0.5 halve it into
        // denormals within a few candidates, and those that do not scale in
        // place (GemmScaled) would be timed on other data.
        let gate = self.upload(block, &vec![1.0; gates])?;
        let params = [&p.w, &p.b, &p.w2, &p.b2]
            .into_iter()
            .map(|v| self.upload(block, v))
            .collect::<Result<Vec<_>>>()?;
        let ptrs: Vec<CUdeviceptr> = params.iter().map(|s| self.ptr(s)).collect();
        let gate_p = self.ptr(&gate);
        built.buffers.push(gate);
        built.buffers.extend(params);
        Ok((gate_p, ptrs))
    }

    /// SE's steps: the pool (unless the convolution before computed it),
    /// the two layers to the gate, and the scale (unless the projection
    /// after takes the gate over).
    fn se_layer(
        &mut self,
        layer: &Layer,
        io: LayerIo,
        built: &mut Built,
        handed: &mut Handed,
    ) -> Result<()> {
        let LayerIo {
            p, y, next, block, ..
        } = io;
        let Layer::Se {
            channels,
            se,
            res,
            act,
        } = *layer
        else {
            unreachable!("se_layer is called for SE only")
        };
        let batch = self.config.batch as usize;
        let (gate_p, ptrs) = self.se_buffers(p, batch * channels as usize, built, block)?;
        let hw = (res * res) as i32;
        let nc = (batch as u32 * channels) as i32;
        let pooled_p = match handed.pooled_by_conv.take() {
            Some(pp) => pp,
            None => {
                let pooled = self.zeros(block, batch * channels as usize)?;
                let pp = self.ptr(&pooled);
                built.buffers.push(pooled);
                built.steps.push(Step::Pool {
                    x: built.current,
                    out: pp,
                    nc,
                    hw,
                });
                pp
            }
        };
        built.steps.push(Step::SeFc {
            pooled: pooled_p,
            w1: ptrs[0],
            b1: ptrs[1],
            w2: ptrs[2],
            b2: ptrs[3],
            gate: gate_p,
            batch: batch as u32,
            channels: channels as i32,
            se: se as i32,
            act: act_code(Some(act)),
        });
        // The projection after SE takes the gate over: a linear 1x1
        // convolution, never an expansion (with an activation), which may
        // wait in `pending` and would not apply it.
        let projection = matches!(
            next,
            Some(Layer::Conv {
                kernel: 1,
                act: None,
                ..
            })
        );
        if projection {
            handed.scaled_by = Some(gate_p);
        } else {
            built.steps.push(Step::Scale {
                y,
                gate: gate_p,
                hw,
                total: i64::from(nc) * i64::from(hw),
            });
        }
        Ok(())
    }
}
