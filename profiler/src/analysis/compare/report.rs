//! What a comparison produces: the report, plain data that `--json`
//! serializes as is, and the points of the scatter plot.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct TableInfo {
    pub path: String,
    pub entries: usize,
    pub batch: u32,
    pub device: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HeaderDifference {
    pub key: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// Keys present on one side only: how many, and the first few in table order.
#[derive(Clone, Debug, Serialize)]
pub struct KeyList {
    pub count: usize,
    pub first: Vec<String>,
}

/// Distribution of the ratio B/A of median latencies. Quantiles interpolate
/// linearly between order statistics (numpy's default).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RatioSummary {
    pub count: usize,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
    pub geometric_mean: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GroupRatio {
    /// `stem`, `fixed`, `stage1`.., `head`, or `other` for searchable keys
    /// that fit no layer of the space.
    pub group: String,
    pub ratio: RatioSummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct RankAgreement {
    pub count: usize,
    pub kendall_tau_b: Option<f64>,
    pub spearman_rho: Option<f64>,
}

/// The candidate ops of one searchable layer, each at its initial width.
#[derive(Clone, Debug, Serialize)]
pub struct LayerRank {
    /// 1-based.
    pub stage: usize,
    /// 1-based position within the stage.
    pub layer: usize,
    pub kendall_tau_b: Option<f64>,
    pub spearman_rho: Option<f64>,
    pub fastest_a: String,
    pub fastest_b: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerAgreement {
    pub layers: usize,
    /// Layers where both tables give every op at its initial width.
    pub compared: usize,
    /// `stageS.layerL` of the layers one table cannot fill.
    pub not_covered: Vec<String>,
    /// Means over the compared layers where the statistic is defined.
    pub mean_kendall_tau_b: Option<f64>,
    pub mean_spearman_rho: Option<f64>,
    pub fastest_op_differs: usize,
    /// `fastest_op_differs / compared`.
    pub fastest_op_differs_share: Option<f64>,
    pub per_layer: Vec<LayerRank>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EntryRatio {
    pub key: String,
    pub group: String,
    pub a_ms: f64,
    pub b_ms: f64,
    pub ratio: f64,
    /// The two medians' 95% intervals do not overlap.
    pub beyond_noise: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReferencePrediction {
    pub name: String,
    pub description: String,
    pub a_ms: Option<f64>,
    pub b_ms: Option<f64>,
    pub ratio: Option<f64>,
    /// Keys each table lacks to predict this network (empty when it can).
    pub missing_in_a: Vec<String>,
    pub missing_in_b: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub a: TableInfo,
    pub b: TableInfo,
    /// The space used to group entries by stage and to build the layers and
    /// reference networks.
    pub space: String,
    pub header_differences: Vec<HeaderDifference>,
    pub warnings: Vec<String>,
    pub common: usize,
    /// Common entries whose medians' 95% intervals do not overlap: those
    /// that differ by more than the two tables' measurement noise.
    pub beyond_noise: usize,
    pub only_in_a: KeyList,
    pub only_in_b: KeyList,
    /// Common entries with a zero median on either side: no ratio.
    pub zero_latency_excluded: usize,
    pub ratio: RatioSummary,
    pub ratio_by_group: Vec<GroupRatio>,
    pub rank_all: RankAgreement,
    pub ops_within_layers: LayerAgreement,
    /// The common entries with the largest |ln(B/A)|, largest first.
    pub most_different: Vec<EntryRatio>,
    pub references: Vec<ReferencePrediction>,
}
