//! ONNX export of prism-unet with every adapter tensor as a graph **input**, for the vendor
//! delegates (ONNX Runtime with DirectML, CoreML or the CPU). The int8 graph carries the shared
//! profile as QDQ pairs: int8 weights as initializers dequantized per output channel, int16 (or
//! int8) QuantizeLinear/DequantizeLinear at every QuantSim point, and int8 `<conv>.lora_A` /
//! `<conv>.lora_B` inputs dequantized on the profile's shared grids. One session serves every
//! adapter: a tool switch feeds other tensors, nothing is rebuilt.
//!
//! Layout is NCHW (ONNX's): inputs `image` float32 `[1, 4, H, W]` (RGB in [-1, 1] with hidden
//! pixels 0, then the mask), `alpha` float32 `[1]` (the rank scale: adapter alpha x weight x
//! strength), the LoRA tensors (`[R, cin, k, k]` and `[cout, R, 1, 1]`, R = the export's rank;
//! smaller adapters are padded with zero-valued rows); output `residual` float32 `[1, 3, H, W]`.
//! H and W are dynamic. QuantizeLinear rounds half to even where QuantSim rounds half away from
//! zero: they differ only on exact ties.

// The ONNX message types come from onnx-protobuf (rust-protobuf code generated once by its
// author), not candle-onnx: candle-onnx generates them at build time and so needs `protoc` on
// the machine, which would break `cargo run` on a fresh one.
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
};
use protobuf::{EnumOrUnknown, MessageField};

use crate::backends::Precision;
use crate::conv::kernel_to_oihw;
use crate::error::{EngineError, Result};
use crate::graph::{ConvSpec, LEAKY_SLOPE, Node, ValueId, missing_value};
use crate::model::Model;
use crate::quant::{kernel_to_oihw_i8, quantize_weight_per_channel};

/// ONNX opset of the export: 21 is the first with int16 QuantizeLinear.
pub const OPSET: i64 = 21;

fn export_error(message: impl Into<String>) -> EngineError {
    EngineError::Model(message.into())
}

fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.into(), type_: EnumOrUnknown::new(AttributeType::INT), i: value, ..Default::default() }
}

fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: EnumOrUnknown::new(AttributeType::INTS),
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto { name: name.into(), type_: EnumOrUnknown::new(AttributeType::FLOAT), f: value, ..Default::default() }
}

fn attr_string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: EnumOrUnknown::new(AttributeType::STRING),
        s: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A dimension: a number, or a name for a dynamic one.
enum Dim {
    Fixed(i64),
    Named(&'static str),
}

fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Dim::Fixed(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                Dim::Named(n) => tensor_shape_proto::dimension::Value::DimParam((*n).into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        type_: MessageField::some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: MessageField::some(TensorShapeProto { dim, ..Default::default() }),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    inputs: Vec<ValueInfoProto>,
    count: usize,
    /// int16 or int8 activations; None: the float graph.
    activation_bits: Option<u32>,
}

impl Graph {
    fn fresh(&mut self, base: &str) -> String {
        self.count += 1;
        format!("{base}__{}", self.count)
    }

    fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<AttributeProto>, label: &str) -> String {
        let output = self.fresh(label);
        self.nodes.push(NodeProto {
            op_type: op.into(),
            name: output.clone(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute: attributes,
            ..Default::default()
        });
        output
    }

    fn tensor(&mut self, name: &str, elem: DataType, dims: &[i64], raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            name: name.into(),
            data_type: elem as i32,
            dims: dims.to_vec(),
            raw_data: raw,
            ..Default::default()
        });
        name.into()
    }

    fn f32s(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        self.tensor(name, DataType::FLOAT, dims, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn i8s(&mut self, name: &str, dims: &[i64], values: &[i8]) -> String {
        self.tensor(name, DataType::INT8, dims, values.iter().map(|v| *v as u8).collect())
    }

    /// QuantizeLinear + DequantizeLinear onto a static symmetric activation scale.
    fn qdq(&mut self, x: &str, scale: f32, label: &str) -> String {
        let Some(bits) = self.activation_bits else { return x.to_string() };
        let scale_name = self.f32s(&format!("{label}.scale"), &[], &[scale]);
        let zero = if bits == 16 {
            self.tensor(&format!("{label}.zero"), DataType::INT16, &[], vec![0, 0])
        } else {
            self.i8s(&format!("{label}.zero"), &[], &[0])
        };
        let q = self.node("QuantizeLinear", &[x, &scale_name, &zero], Vec::new(), &format!("{label}.q"));
        self.node("DequantizeLinear", &[&q, &scale_name, &zero], Vec::new(), label)
    }
}

/// Writes the model as ONNX bytes. `max_rank` is the rank of the LoRA inputs.
pub fn export(model: &Model, precision: Precision, max_rank: usize) -> Result<Vec<u8>> {
    if max_rank == 0 || max_rank > 256 {
        return Err(export_error(format!("--max-rank {max_rank} is outside 1..256")));
    }
    let profile = &model.profile;
    let quantized = precision == Precision::Int8;
    let mut graph = Graph {
        nodes: Vec::new(),
        initializers: Vec::new(),
        inputs: Vec::new(),
        count: 0,
        activation_bits: quantized.then_some(profile.activation_bits),
    };
    let scale_of = |point: &str| -> Result<f32> {
        profile.activations.get(point).copied().ok_or_else(|| export_error(format!("the profile has no scale for '{point}'")))
    };
    let lora_type = if quantized { DataType::INT8 } else { DataType::FLOAT };
    graph.inputs.push(value_info("image", DataType::FLOAT, &[Dim::Fixed(1), Dim::Fixed(4), Dim::Named("H"), Dim::Named("W")]));
    graph.inputs.push(value_info("alpha", DataType::FLOAT, &[Dim::Fixed(1)]));

    let layers: Vec<(ConvSpec, Vec<f32>, Vec<f32>)> = model
        .float()?
        .layers()
        .map(|(spec, kernel, bias)| Ok((spec.clone(), kernel.flatten_all()?.to_vec1::<f32>()?, bias.to_vec1::<f32>()?)))
        .collect::<Result<_>>()?;
    let conv = |graph: &mut Graph, index: usize, x: &str| -> Result<String> {
        let (spec, kernel, bias) =
            layers.get(index).ok_or_else(|| export_error(format!("the model has no conv number {index}")))?;
        let name = &spec.name;
        let (k, cin, cout) = (spec.k, spec.cin, spec.cout);
        let dims = [cout as i64, cin as i64, k as i64, k as i64];
        // Kernel layout [(ky, kx, ci), co] to ONNX's [co, ci, ky, kx].
        let tensor = candle_core::Tensor::from_slice(kernel, (k * k * cin, cout), &candle_core::Device::Cpu)?;
        let weight = if quantized {
            let (q, scales) = quantize_weight_per_channel(&tensor)?;
            let w = graph.i8s(&format!("{name}.weight"), &dims, &kernel_to_oihw_i8(&q, spec));
            let s = graph.f32s(&format!("{name}.weight_scale"), &[cout as i64], &scales);
            let z = graph.i8s(&format!("{name}.weight_zero"), &[cout as i64], &vec![0; cout]);
            graph.node("DequantizeLinear", &[&w, &s, &z], vec![attr_int("axis", 0)], &format!("{name}.weight_dq"))
        } else {
            graph.f32s(&format!("{name}.weight"), &dims, &kernel_to_oihw(&tensor, k)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let bias_name = graph.f32s(&format!("{name}.bias"), &[cout as i64], bias);
        let pad = (k / 2) as i64;
        let conv_attrs = || {
            vec![
                attr_ints("kernel_shape", &[k as i64, k as i64]),
                attr_ints("pads", &[pad, pad, pad, pad]),
                attr_ints("strides", &[spec.stride as i64, spec.stride as i64]),
            ]
        };
        let mut y = graph.node("Conv", &[x, &weight, &bias_name], conv_attrs(), &format!("{name}.conv"));

        // The LoRA side path, fed per run: y += B (alpha * q(A x)).
        let a_name = format!("{name}.lora_A");
        let b_name = format!("{name}.lora_B");
        graph.inputs.push(value_info(
            &a_name,
            lora_type,
            &[Dim::Fixed(max_rank as i64), Dim::Fixed(cin as i64), Dim::Fixed(k as i64), Dim::Fixed(k as i64)],
        ));
        graph.inputs.push(value_info(
            &b_name,
            lora_type,
            &[Dim::Fixed(cout as i64), Dim::Fixed(max_rank as i64), Dim::Fixed(1), Dim::Fixed(1)],
        ));
        let (a, b) = if quantized {
            let grid =
                profile.lora.get(name).ok_or_else(|| export_error(format!("the profile has no LoRA grid for '{name}'")))?;
            let sa = graph.f32s(&format!("{name}.lora_A.scale"), &[], &[grid.a.scale]);
            let za = graph.i8s(&format!("{name}.lora_A.zero"), &[], &[grid.a.zero_point as i8]);
            let sb = graph.f32s(&format!("{name}.lora_B.scale"), &[], &[grid.b.scale]);
            let zb = graph.i8s(&format!("{name}.lora_B.zero"), &[], &[grid.b.zero_point as i8]);
            (
                graph.node("DequantizeLinear", &[&a_name, &sa, &za], Vec::new(), &format!("{name}.lora_A_dq")),
                graph.node("DequantizeLinear", &[&b_name, &sb, &zb], Vec::new(), &format!("{name}.lora_B_dq")),
            )
        } else {
            (a_name.clone(), b_name.clone())
        };
        let mid = graph.node("Conv", &[x, &a], conv_attrs(), &format!("{name}.lora_a"));
        let mid =
            if quantized { graph.qdq(&mid, scale_of(&format!("{name}.lora_mid"))?, &format!("{name}.lora_mid")) } else { mid };
        let mid = graph.node("Mul", &[&mid, "alpha"], Vec::new(), &format!("{name}.lora_scaled"));
        let delta = graph.node("Conv", &[&mid, &b], vec![attr_ints("kernel_shape", &[1, 1])], &format!("{name}.lora_b"));
        y = graph.node("Add", &[&y, &delta], Vec::new(), &format!("{name}.with_lora"));
        if spec.leaky_relu {
            y = graph.node("LeakyRelu", &[&y], vec![attr_float("alpha", LEAKY_SLOPE)], &format!("{name}.act"));
        }
        Ok(if quantized { graph.qdq(&y, scale_of(&format!("{name}.out"))?, &format!("{name}.out")) } else { y })
    };
    let add = |graph: &mut Graph, a: &str, b: &str, point: &str| -> Result<String> {
        let sum = graph.node("Add", &[a, b], Vec::new(), point);
        Ok(if quantized { graph.qdq(&sum, scale_of(point)?, point) } else { sum })
    };

    // The model graph lowered node by node; each value is the name of an ONNX tensor.
    let structure = model.config().graph();
    let nodes = &structure.nodes;
    let mut values: Vec<Option<String>> = vec![None; nodes.len()];
    let value = |values: &[Option<String>], id: ValueId| values[id].clone().ok_or_else(|| missing_value(id));
    let scales = graph.f32s("upsample.scales", &[4], &[1.0, 1.0, 2.0, 2.0]);
    for (index, node) in nodes.iter().enumerate() {
        values[index] = Some(match node {
            Node::Input => {
                if quantized {
                    graph.qdq("image", scale_of("input")?, "input")
                } else {
                    "image".to_string()
                }
            }
            Node::Unshuffle { x } => {
                graph.node("SpaceToDepth", &[&value(&values, *x)?], vec![attr_int("blocksize", 2)], "unshuffle")
            }
            Node::Conv { conv: number, x, join } => {
                let mut x = value(&values, *x)?;
                if let Some(join) = join {
                    let name = layers.get(*number).map_or("join", |layer| layer.0.name.as_str());
                    if join.upsamples_x() {
                        x = graph.node(
                            "Resize",
                            &[&x, "", &scales],
                            vec![
                                attr_string("mode", "nearest"),
                                attr_string("coordinate_transformation_mode", "asymmetric"),
                                attr_string("nearest_mode", "floor"),
                            ],
                            &format!("{name}.up"),
                        );
                    }
                    x = graph.node(
                        "Concat",
                        &[&x, &value(&values, join.value())?],
                        vec![attr_int("axis", 1)],
                        &format!("{name}.concat"),
                    );
                }
                conv(&mut graph, *number, &x)?
            }
            Node::Add { x, y, point } => add(&mut graph, &value(&values, *x)?, &value(&values, *y)?, point)?,
            Node::Shuffle { x } => {
                if index + 1 != nodes.len() {
                    return Err(export_error("the export pixel-shuffles only into the model output"));
                }
                graph.nodes.push(NodeProto {
                    op_type: "DepthToSpace".into(),
                    name: "shuffle".into(),
                    input: vec![value(&values, *x)?],
                    output: vec!["residual".into()],
                    attribute: vec![attr_int("blocksize", 2), attr_string("mode", "DCR")],
                    ..Default::default()
                });
                "residual".to_string()
            }
        });
    }
    let model_proto = ModelProto {
        // IR 10 is the first that allows opset 21.
        ir_version: 10,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET, ..Default::default() }],
        producer_name: "prism".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "prism-unet {} ({}), profile {} ({}); LoRA tensors are inputs, rank {max_rank}",
            model.hash,
            precision.name(),
            profile.id,
            profile.method
        ),
        graph: MessageField::some(GraphProto {
            name: "prism-unet".into(),
            node: graph.nodes,
            initializer: graph.initializers,
            input: graph.inputs,
            output: vec![value_info(
                "residual",
                DataType::FLOAT,
                &[Dim::Fixed(1), Dim::Fixed(3), Dim::Named("H"), Dim::Named("W")],
            )],
            ..Default::default()
        }),
        ..Default::default()
    };
    model_proto.write_to_bytes().map_err(|e| export_error(format!("cannot encode the ONNX graph: {e}")))
}
