use super::*;

fn spec(key: &str) -> BlockSpec {
    key.parse().unwrap()
}

#[test]
fn blocks_lower_to_the_tfnas_layers() {
    let stem = block_layers(&spec("stem_r224_i3_o32_s2_k3_m0_se0_relu"));
    assert_eq!(stem.len(), 1);
    assert_eq!(stem[0].output_len(), 32 * 112 * 112);

    // Second stem: no expansion (mid 32 = in 32), dw on 32, SE, project.
    let fixed = block_layers(&spec("fixed_r112_i32_o16_s1_k3_m32_se8_relu"));
    assert_eq!(fixed.len(), 3);
    assert!(fixed[0].is_depthwise());
    assert!(matches!(
        fixed[1],
        Layer::Se {
            channels: 32,
            se: 8,
            res: 112,
            ..
        }
    ));
    assert!(matches!(
        fixed[2],
        Layer::Conv {
            cin: 32,
            cout: 16,
            residual: false,
            act: None,
            ..
        }
    ));

    let mb = block_layers(&spec("mbconv_r28_i40_o80_s2_k5_m240_se80_swish"));
    assert_eq!(mb.len(), 4);
    assert!(matches!(
        mb[0],
        Layer::Conv {
            cin: 40,
            cout: 240,
            kernel: 1,
            ..
        }
    ));
    assert!(matches!(
        mb[1],
        Layer::Conv {
            groups: 240,
            kernel: 5,
            stride: 2,
            res_in: 28,
            res_out: 14,
            ..
        }
    ));
    assert_eq!(mb[3].output_len(), 80 * 14 * 14);

    let inner = block_layers(&spec("mbconv_r14_i80_o80_s1_k3_m480_se0_swish"));
    assert_eq!(inner.len(), 3);
    assert!(matches!(inner[2], Layer::Conv { residual: true, .. }));

    let head = block_layers(&spec("head_r7_i320_o1000_s1_k1_m1280_se0_swish"));
    assert_eq!(
        head.iter().map(Layer::output_len).collect::<Vec<_>>(),
        [1280 * 49, 1280, 1000]
    );
}

#[test]
fn same_padding_output_sizes() {
    assert_eq!(conv_out(224, 3, 2), 112);
    assert_eq!(conv_out(28, 5, 2), 14);
    assert_eq!(conv_out(7, 3, 1), 7);
    assert_eq!(conv_out(7, 1, 1), 7);
}

/// Every block of the default plan at width step 8, the widest set of
/// shapes the default table holds.
fn default_plan() -> Vec<BlockSpec> {
    crate::SearchSpaceConfig::default()
        .table_plan(8)
        .unwrap()
        .blocks
}

#[test]
fn both_output_size_formulas_agree_on_every_shape_of_the_default_plan() {
    use crate::config::conv_output_resolution;
    let plan = default_plan();
    assert!(plan.len() > 100, "{}", plan.len());
    for spec in &plan {
        let s = spec.shape;
        for layer in block_layers(spec) {
            if let Layer::Conv {
                kernel,
                stride,
                res_in,
                res_out,
                ..
            } = layer
            {
                assert_eq!(res_out, conv_out(res_in, kernel, stride), "{spec}");
                assert_eq!(res_out, conv_output_resolution(res_in, stride), "{spec}");
                // ceil(res / stride), as the config's formula documents.
                assert_eq!(res_out, res_in.div_ceil(stride), "{spec}");
            }
        }
        assert_eq!(
            s.output_resolution(),
            conv_output_resolution(s.resolution, s.stride),
            "{spec}"
        );
        if s.kind != BlockKind::Head {
            let last = *block_layers(spec).last().unwrap();
            assert_eq!(
                last.output_len(),
                (s.out_channels * s.output_resolution().pow(2)) as usize,
                "{spec}"
            );
        }
    }
}

/// The closed forms `BlockSpec::macs` and `params` had before they were
/// summed over the layers, kept here to hold the sums to them.
fn closed_form_macs_and_params(spec: &BlockSpec) -> (u64, u64) {
    let s = &spec.shape;
    let (i, o, m) = (
        u64::from(s.in_channels),
        u64::from(s.out_channels),
        u64::from(spec.mid_channels),
    );
    let k2 = u64::from(s.kernel * s.kernel);
    let area_in = u64::from(s.resolution).pow(2);
    let area_out = u64::from(s.output_resolution()).pow(2);
    let se = u64::from(s.se_channels);
    match s.kind {
        BlockKind::Stem => (area_out * i * o * k2, i * o * k2 + 2 * o),
        BlockKind::Head => (area_in * i * m + m * o, i * m + 2 * m + m * o + o),
        BlockKind::Mbconv | BlockKind::Fixed => {
            let (expand_macs, expand_params) = if spec.has_expansion() {
                (area_in * i * m, i * m + 2 * m)
            } else {
                (0, 0)
            };
            let se_params = if se > 0 { 2 * m * se + se + m } else { 0 };
            (
                expand_macs + area_out * m * k2 + 2 * m * se + area_out * m * o,
                expand_params + m * k2 + 2 * m + se_params + m * o + 2 * o,
            )
        }
    }
}

#[test]
fn macs_and_params_summed_over_the_layers_equal_the_closed_forms_on_the_default_plan() {
    for spec in default_plan() {
        assert_eq!(
            (spec.macs(), spec.params()),
            closed_form_macs_and_params(&spec),
            "{spec}"
        );
    }
}
