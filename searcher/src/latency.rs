//! Latency from the table: the differentiable expected latency of the
//! supernet (docs/method.md §4) and the discrete latency of a derived
//! network.
//!
//! Widths move during the search (elasticity scaling), so every op's whole
//! width range is looked up once, up front: a table that cannot price a
//! width the search may reach fails here, before any training, naming every
//! key it lacks.

use space::{LatencyTable, SearchSpaceConfig, WidthRange};
use tch::{Kind, Tensor};

use crate::error::{Result, SearchError};

/// A derived network's choices: per stage, `(op index, mid width)` of each
/// kept block. The same shape `space::Architecture::from_choices` takes.
pub type Choices = Vec<Vec<(usize, u32)>>;

/// Current mid width of every op of every layer: `[stage][block][op]`.
pub type Widths = Vec<Vec<Vec<u32>>>;

/// The method's initial widths: every op of every layer at `expansion × in`.
pub fn initial_widths(space: &SearchSpaceConfig) -> Widths {
    space
        .layers()
        .iter()
        .map(|stage| {
            stage
                .iter()
                .map(|layer| {
                    space
                        .ops
                        .iter()
                        .map(|op| space.width_range(op, layer.in_channels).initial)
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// One op's latency curve in one layer, at every width of its range.
#[derive(Clone, Debug)]
pub struct OpCurve {
    pub range: WidthRange,
    /// `ms[w - range.min]` is the latency at mid width `w`.
    ms: Vec<f64>,
}

impl OpCurve {
    pub fn ms(&self, mid: u32) -> f64 {
        assert!(
            self.range.contains(mid),
            "width {mid} outside [{}, {}]",
            self.range.min,
            self.range.max
        );
        self.ms[(mid - self.range.min) as usize]
    }

    /// Latencies at every width from `range.min` to `range.max`.
    pub fn all(&self) -> &[f64] {
        &self.ms
    }
}

/// Every latency the search needs, read out of one table.
#[derive(Clone, Debug)]
pub struct LatencyModel {
    /// Stem + second stem + head and the table's boundary, which every
    /// network pays once (TF-NAS's `base`; see `LatencyTable::boundary_ms`).
    pub base_ms: f64,
    /// `[stage][block][op]`.
    pub curves: Vec<Vec<Vec<OpCurve>>>,
    /// Where the table came from, for messages.
    pub table: String,
    pub batch: u32,
}

impl LatencyModel {
    /// Reads every latency the search of `space` may need from `table`; a
    /// missing one is an error that names every missing key.
    pub fn new(space: &SearchSpaceConfig, table: &LatencyTable) -> Result<Self> {
        let mut missing: Vec<String> = Vec::new();
        let mut note = |key: String| {
            if !missing.contains(&key) {
                missing.push(key);
            }
        };
        let mut base_ms = table.boundary_ms();
        for spec in space.fixed_parts().all() {
            match table.estimate(&spec) {
                Some(e) => base_ms += e.ms,
                None => note(spec.key()),
            }
        }
        let mut curves = Vec::new();
        for stage in space.layers() {
            let mut stage_curves = Vec::new();
            for layer in &stage {
                let mut layer_curves = Vec::new();
                for op in &space.ops {
                    let range = space.width_range(op, layer.in_channels);
                    let shape = space.op_shape(layer, op);
                    let mut ms = Vec::with_capacity((range.max - range.min + 1) as usize);
                    // Lookups interpolate inside a curve's measured widths and
                    // refuse outside, so what is missing is a prefix or a
                    // suffix of the range: its end keys name it.
                    let mut gaps = [false, false];
                    for mid in range.min..=range.max {
                        match table.estimate(&shape.at(mid)) {
                            Some(e) => ms.push(e.ms),
                            None => {
                                ms.push(f64::NAN);
                                gaps[usize::from(mid > range.min)] = true;
                            }
                        }
                    }
                    if gaps[0] {
                        note(shape.at(range.min).key());
                    }
                    if gaps[1] && table.estimate(&shape.at(range.max)).is_none() {
                        note(shape.at(range.max).key());
                    }
                    layer_curves.push(OpCurve { range, ms });
                }
                stage_curves.push(layer_curves);
            }
            curves.push(stage_curves);
        }
        if !missing.is_empty() {
            return Err(SearchError::MissingEntries {
                table: table.origin().to_string(),
                keys: missing,
            });
        }
        Ok(LatencyModel {
            base_ms,
            curves,
            table: table.origin().to_string(),
            batch: table.batch(),
        })
    }

    pub fn curve(&self, stage: usize, block: usize, op: usize) -> &OpCurve {
        &self.curves[stage][block][op]
    }

    /// The table latency of a derived network: base plus its kept blocks.
    pub fn discrete_ms(&self, choices: &Choices) -> f64 {
        self.base_ms
            + choices
                .iter()
                .enumerate()
                .flat_map(|(s, blocks)| {
                    blocks
                        .iter()
                        .enumerate()
                        .map(move |(b, &(op, mid))| self.curves[s][b][op].ms(mid))
                })
                .sum::<f64>()
    }

    /// The cheapest and the dearest network the table allows: depth 1 with
    /// the cheapest op and width per stage, and full depth with the dearest.
    pub fn bounds(&self) -> (f64, f64) {
        let extreme = |curves: &[OpCurve], max: bool| {
            curves.iter().flat_map(|c| c.ms.iter().copied()).fold(
                if max { f64::MIN } else { f64::MAX },
                |a, b| {
                    if max {
                        a.max(b)
                    } else {
                        a.min(b)
                    }
                },
            )
        };
        let min = self.base_ms
            + self
                .curves
                .iter()
                .map(|stage| extreme(&stage[0], false))
                .sum::<f64>();
        let max = self.base_ms
            + self
                .curves
                .iter()
                .flatten()
                .map(|layer| extreme(layer, true))
                .sum::<f64>();
        (min, max)
    }

    /// Per layer, the latency of every op at its current width, as a
    /// `[ops]` tensor on `device`.
    pub fn layer_tensor(
        &self,
        stage: usize,
        block: usize,
        widths: &Widths,
        device: tch::Device,
    ) -> Tensor {
        let ms: Vec<f32> = self.curves[stage][block]
            .iter()
            .zip(&widths[stage][block])
            .map(|(c, &w)| c.ms(w) as f32)
            .collect();
        Tensor::from_slice(&ms).to_device(device)
    }

    /// The expected latency LAT of docs/method.md §4, differentiable in the
    /// op weights and the depth parameters:
    /// `base + Σ_s Σ_j softmax(β_s)_j · Σ_{i≤j} Σ_k w_{s,i,k} · lat(s,i,k)`.
    ///
    /// `op_weights[s][i]` is layer `(s, i)`'s `[ops]` weight vector (a soft
    /// Gumbel sample during the arch step), `betas[s]` stage `s`'s depth
    /// parameters, `widths` the current widths.
    pub fn expected(
        &self,
        op_weights: &[Vec<Tensor>],
        betas: &[Tensor],
        widths: &Widths,
    ) -> Tensor {
        let device = betas[0].device();
        let mut total = Tensor::from(self.base_ms as f32).to_device(device);
        for (s, (weights, beta)) in op_weights.iter().zip(betas).enumerate() {
            let per_block: Vec<Tensor> = weights
                .iter()
                .enumerate()
                .map(|(b, w)| (w * self.layer_tensor(s, b, widths, device)).sum(Kind::Float))
                .collect();
            let cumulative = Tensor::stack(&per_block, 0).cumsum(0, Kind::Float);
            let depth = beta.softmax(0, Kind::Float);
            total += (depth * cumulative).sum(Kind::Float);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn expected_latency_matches_a_hand_computation() {
        let space = fixture::tiny_space();
        let table = fixture::tiny_table();
        let model = LatencyModel::new(&space, &table).unwrap();
        // The fixture's latencies (tests/fixtures/searcher_tiny_synthetic.csv):
        // stem 0.1 + second stem 0.2 + head 0.3 = base 0.6.
        assert!((model.base_ms - 0.6).abs() < 1e-12);
        let widths = fixture::initial_widths(&space);
        // Stage 1 has two layers, stage 2 one; two ops ("a": k3, "b": k5).
        // Initial widths: op a 3·in, op b 6·in with in = 8 then 16.
        let l = |s, b, k| model.curve(s, b, k).ms(widths[s][b][k]);
        let w = [[0.25, 0.75], [0.6, 0.4], [0.1, 0.9]];
        let betas = [[0.0f64, 1.0], [0.0, 0.0]];
        let p1 = [1.0 / (1.0 + 1f64.exp()), 1f64.exp() / (1.0 + 1f64.exp())];
        let lat1 = w[0][0] * l(0, 0, 0) + w[0][1] * l(0, 0, 1);
        let lat2 = w[1][0] * l(0, 1, 0) + w[1][1] * l(0, 1, 1);
        let lat3 = w[2][0] * l(1, 0, 0) + w[2][1] * l(1, 0, 1);
        let hand = 0.6 + p1[0] * lat1 + p1[1] * (lat1 + lat2) + lat3;
        // The same by the numbers of the fixture file, to catch a lookup
        // that reads the wrong entry.
        assert_eq!(l(0, 0, 0), 1.0); // mbconv_r8_i8_o16_s2_k3_m24_se0_relu
        assert_eq!(l(0, 0, 1), 2.5); // k5 at m48 between m40 = 2.0 and m56 = 3.0
        assert_eq!(l(0, 1, 0), 1.5);
        let t = |v: &[f64]| Tensor::from_slice(&v.iter().map(|&x| x as f32).collect::<Vec<_>>());
        let weights = vec![vec![t(&w[0]), t(&w[1])], vec![t(&w[2])]];
        let betas = vec![t(&betas[0]), t(&betas[1][..1])];
        let got = model.expected(&weights, &betas, &widths).double_value(&[]);
        assert!((got - hand).abs() < 1e-5, "{got} vs {hand}");
        // Discrete: stage 1 at depth 1 with op b, stage 2 with op a.
        let choices = vec![vec![(1, 48)], vec![(0, 48)]];
        let discrete = model.discrete_ms(&choices);
        assert!((discrete - (0.6 + 2.5 + l(1, 0, 0))).abs() < 1e-12);
    }

    #[test]
    fn expected_latency_has_gradients_for_ops_and_depth() {
        let space = fixture::tiny_space();
        let model = fixture::tiny_model(&space);
        let widths = fixture::initial_widths(&space);
        let alpha = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let beta = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let w = alpha.softmax(0, Kind::Float);
        let weights = vec![vec![w.shallow_clone(), w.shallow_clone()], vec![w]];
        let lat = model.expected(
            &weights,
            &[
                beta.shallow_clone(),
                Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)),
            ],
            &widths,
        );
        let grads = Tensor::run_backward(&[lat], &[&alpha, &beta], false, false);
        // The dearer op and the deeper stage raise latency.
        assert!(grads[0].double_value(&[1]) > 0.0);
        assert!(grads[1].double_value(&[1]) > 0.0);
    }

    #[test]
    fn missing_entries_are_all_named() {
        let space = fixture::tiny_space();
        let text = fixture::TINY_TABLE
            .lines()
            .filter(|l| !l.contains("_k5_") && !l.starts_with("head"))
            .collect::<Vec<_>>()
            .join("\n");
        let table = LatencyTable::parse(&text, "cut.csv").unwrap();
        let err = LatencyModel::new(&space, &table).unwrap_err().to_string();
        assert!(err.contains("cut.csv"), "{err}");
        assert!(err.contains("head_r2_i32_o10_s1_k1_m64_se0_relu"), "{err}");
        // Both ends of every k5 curve (3 layers) and the head: 7 keys.
        assert!(err.contains("lacks 7 entries"), "{err}");
        assert!(err.contains("mbconv_r8_i8_o16_s2_k5_m32_se0_relu"), "{err}");
        assert!(err.contains("mbconv_r8_i8_o16_s2_k5_m64_se0_relu"), "{err}");
    }

    #[test]
    fn a_table_boundary_is_paid_once_as_the_table_predicts() {
        let space = fixture::tiny_space();
        let text = fixture::tiny_table_text_with("# boundary_ms: 0.05");
        let table = LatencyTable::parse(&text, "boundary.csv").unwrap();
        let model = LatencyModel::new(&space, &table).unwrap();
        // Three fixed parts at their medians less the boundary, plus it once.
        assert!((model.base_ms - (0.6 - 3.0 * 0.05 + 0.05)).abs() < 1e-12);
        for choices in [
            vec![vec![(1, 48)], vec![(0, 48)]],
            vec![vec![(0, 24), (1, 96)], vec![(1, 96)]],
        ] {
            let arch = space::Architecture::from_choices(&space, &choices).unwrap();
            let predicted = table.predict(&arch).unwrap().total_ms;
            assert!(
                (model.discrete_ms(&choices) - predicted).abs() < 1e-12,
                "{choices:?}"
            );
        }
    }

    #[test]
    fn bounds_span_the_cheapest_and_dearest_networks() {
        let space = fixture::tiny_space();
        let model = fixture::tiny_model(&space);
        let (min, max) = model.bounds();
        // Cheapest: base + the cheapest entry of each stage's first layer.
        assert!((min - (0.6 + 0.8 + 0.9)).abs() < 1e-9, "{min}");
        assert!(max > min);
    }
}
