//! Writing a [`Folded`] network as an ONNX model (opset 13), from Rust.
//!
//! The few ONNX protobuf messages used are declared here with prost's
//! derive, with the field numbers of `onnx/onnx.proto` (ONNX 1.x), so no
//! protoc runs at build time. The vocabulary: Conv (group, pads, strides),
//! Relu, Sigmoid, HardSigmoid, Mul (swish and hard swish as `x · gate(x)`,
//! SE's channel scale), Add, GlobalAveragePool, Flatten and Gemm;
//! initializers are float tensors in `raw_data` (little-endian). SE's two
//! linear layers are written as 1x1 convolutions on the pooled
//! `N × C × 1 × 1` map (the same weights), so no reshape is needed. The
//! batch dimension is symbolic (`N`); height and width are fixed.

use space::Activation;
use tch::Tensor;

use crate::error::{Result, SearchError};
use crate::folded::{Folded, Op};

pub const OPSET: i64 = 13;
/// The IR version that goes with opset 13 (ONNX 1.8).
const IR_VERSION: i64 = 7;
const FLOAT: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `type` values of [`AttributeProto`].
const ATTR_FLOAT: i32 = 1;
const ATTR_INT: i32 = 2;
const ATTR_INTS: i32 = 7;

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: ATTR_INT,
        ..Default::default()
    }
}

fn ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints,
        r#type: ATTR_INTS,
        ..Default::default()
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: ATTR_FLOAT,
        ..Default::default()
    }
}

/// A float tensor value named `name`; `None` dimensions are symbolic `N`.
fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            dim_value: *d,
            dim_param: if d.is_none() { Some("N".into()) } else { None },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// The graph being written: nodes, initializers, and a counter for fresh
/// value names.
#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next: usize,
}

impl Builder {
    fn fresh(&mut self, what: &str) -> String {
        self.next += 1;
        format!("{what}_{}", self.next)
    }

    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op.to_lowercase());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.into(),
            attribute,
        });
        out
    }

    /// `t` (f32, any shape) as an initializer, viewed as `dims`.
    fn initializer(&mut self, t: &Tensor, dims: Vec<i64>) -> Result<String> {
        let name = self.fresh("w");
        let flat = t.contiguous().view([-1]);
        let floats = Vec::<f32>::try_from(&flat)?;
        if floats.len() as i64 != dims.iter().product::<i64>() {
            return Err(SearchError::Export(format!(
                "ONNX initializer {name}: {} floats for dims {dims:?}",
                floats.len()
            )));
        }
        self.initializers.push(TensorProto {
            dims,
            data_type: FLOAT,
            name: name.clone(),
            raw_data: floats.iter().flat_map(|f| f.to_le_bytes()).collect(),
        });
        Ok(name)
    }

    fn activation(&mut self, x: &str, act: Option<Activation>) -> String {
        match act {
            None => x.to_string(),
            Some(Activation::Relu) => self.node("Relu", &[x], vec![]),
            Some(Activation::Swish) => {
                let gate = self.node("Sigmoid", &[x], vec![]);
                self.node("Mul", &[x, &gate], vec![])
            }
            Some(Activation::Hswish) => {
                // relu6(x + 3) / 6 = clamp(x / 6 + 1/2, 0, 1).
                let gate = self.node(
                    "HardSigmoid",
                    &[x],
                    vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)],
                );
                self.node("Mul", &[x, &gate], vec![])
            }
        }
    }

    fn conv(
        &mut self,
        x: &str,
        w: &Tensor,
        b: &Tensor,
        stride: i64,
        groups: i64,
    ) -> Result<String> {
        let dims = w.size();
        let k = dims[2];
        let wn = self.initializer(w, dims.clone())?;
        let bn = self.initializer(b, vec![dims[0]])?;
        let attrs = vec![
            ints("kernel_shape", vec![k, k]),
            ints("strides", vec![stride, stride]),
            ints("pads", vec![k / 2; 4]),
            ints("dilations", vec![1, 1]),
            int("group", groups),
        ];
        Ok(self.node("Conv", &[x, &wn, &bn], attrs))
    }

    fn op(&mut self, x: &str, input: &str, op: &Op) -> Result<String> {
        Ok(match op {
            Op::Conv {
                w,
                b,
                stride,
                groups,
                act,
                residual,
                ..
            } => {
                let y = self.conv(x, w, b, *stride, *groups)?;
                let y = self.activation(&y, *act);
                if *residual {
                    self.node("Add", &[&y, input], vec![])
                } else {
                    y
                }
            }
            Op::Se {
                w1,
                b1,
                w2,
                b2,
                act,
            } => {
                let pooled = self.node("GlobalAveragePool", &[x], vec![]);
                let (se, c) = (w1.size()[0], w1.size()[1]);
                let h = self.conv(&pooled, &w1.view([se, c, 1, 1]), b1, 1, 1)?;
                let h = self.activation(&h, Some(*act));
                let g = self.conv(&h, &w2.view([c, se, 1, 1]), b2, 1, 1)?;
                let g = self.node("Sigmoid", &[&g], vec![]);
                self.node("Mul", &[x, &g], vec![])
            }
            Op::Pool => {
                let pooled = self.node("GlobalAveragePool", &[x], vec![]);
                self.node("Flatten", &[&pooled], vec![int("axis", 1)])
            }
            Op::Fc { w, b } => {
                let wn = self.initializer(w, w.size())?;
                let bn = self.initializer(b, b.size())?;
                self.node("Gemm", &[x, &wn, &bn], vec![int("transB", 1)])
            }
        })
    }
}

/// The ONNX model of `net` for `channels × resolution²` images at any
/// batch: input `input` (`N × C × R × R`), output `logits` (`N × classes`).
pub fn model(
    net: &Folded,
    channels: i64,
    resolution: u32,
    classes: i64,
    doc: &str,
) -> Result<ModelProto> {
    let mut g = Builder::default();
    let mut x = "input".to_string();
    for ops in &net.blocks {
        let input = x.clone();
        for op in ops {
            x = g.op(&x, &input, op)?;
        }
    }
    // The last node's output is renamed to the graph's output.
    let last = g.nodes.last_mut().expect("a network has layers");
    last.output = vec!["logits".into()];
    let r = Some(i64::from(resolution));
    let graph = GraphProto {
        node: g.nodes,
        name: "tfnas_network".into(),
        initializer: g.initializers,
        input: vec![value("input", &[None, Some(channels), r, r])],
        output: vec![value("logits", &[None, Some(classes)])],
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        producer_name: "tfnas-rs searcher".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: doc.into(),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
    })
}

/// The model's protobuf bytes.
pub fn encode(model: &ModelProto) -> Vec<u8> {
    prost::Message::encode_to_vec(model)
}
