"""One exported net per layer type and setting: ONNX Runtime's outputs equal
recaffe's within 1e-4 (relative to each output's scale) on random inputs."""

from __future__ import annotations

import numpy as np
import pytest


def _net_text(inputs: dict[str, tuple], body: str) -> str:
    tops = "".join(f'  top: "{n}"\n' for n in inputs)
    shapes = "".join(
        "    shape { " + " ".join(f"dim: {d}" for d in s) + " }\n"
        for s in inputs.values())
    return (f'name: "case"\nlayer {{\n  name: "input"\n  type: "Input"\n{tops}'
            f"  input_param {{\n{shapes}  }}\n}}\n{body}")


def _layer(type_: str, bottoms, tops, params: str = "", name: str = "") -> str:
    bottoms = [bottoms] if isinstance(bottoms, str) else bottoms
    tops = [tops] if isinstance(tops, str) else tops
    lines = [f'layer {{ name: "{name or tops[0]}" type: "{type_}"']
    lines += [f'bottom: "{b}"' for b in bottoms] + [f'top: "{t}"' for t in tops]
    lines.append(params + " }\n")
    return " ".join(lines)


X4 = {"x": (2, 4, 9, 9)}
X3 = {"x": (2, 5, 3)}


def one(type_, params="", inputs=None, bottoms=("x",), ntop=1):
    """A case of one layer reading ``bottoms`` and writing y (or y0, y1, ...)."""
    tops = ["y"] if ntop == 1 else [f"y{i}" for i in range(ntop)]
    return inputs or X4, _layer(type_, list(bottoms), tops, params)


CASES = {
    # Convolution / Deconvolution: groups, dilation, pads, strides, no bias.
    "conv": one("Convolution", "convolution_param { num_output: 6 kernel_size: 3 "
                "pad: 1 stride: 2 group: 2 dilation: 2 }"),
    "conv_rect_nobias": one("Convolution", "convolution_param { num_output: 3 "
                            "kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 stride_h: 1 "
                            "stride_w: 2 bias_term: false }"),
    "deconv": one("Deconvolution", "convolution_param { num_output: 4 kernel_size: "
                  "4 stride: 2 pad: 1 group: 2 }", {"x": (2, 4, 5, 5)}),
    "deconv_dilated": one("Deconvolution", "convolution_param { num_output: 3 "
                          "kernel_size: 3 stride: 3 dilation: 2 }",
                          {"x": (1, 2, 4, 3)}),
    # Pooling: Caffe's rounded-up output size, clipping, AVE border divisor.
    "pool_max_ceil": one("Pooling", "pooling_param { pool: MAX kernel_size: 3 "
                         "stride: 2 }", {"x": (2, 3, 8, 8)}),
    "pool_max_pad": one("Pooling", "pooling_param { pool: MAX kernel_size: 3 "
                        "stride: 2 pad: 1 }", {"x": (1, 2, 7, 6)}),
    "pool_max_clip": one("Pooling", "pooling_param { pool: MAX kernel_size: 2 "
                         "stride: 2 pad: 1 }", {"x": (1, 2, 5, 5)}),
    "pool_ave_pad": one("Pooling", "pooling_param { pool: AVE kernel_size: 3 "
                        "stride: 2 pad: 1 }", {"x": (2, 3, 7, 8)}),
    "pool_ave_ceil": one("Pooling", "pooling_param { pool: AVE kernel_size: 3 "
                         "stride: 2 }", {"x": (2, 3, 8, 8)}),
    "pool_ave_clip": one("Pooling", "pooling_param { pool: AVE kernel_size: 2 "
                         "stride: 2 pad: 1 }", {"x": (1, 2, 5, 5)}),
    "pool_ave_rect": one("Pooling", "pooling_param { pool: AVE kernel_h: 3 "
                         "kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 }"),
    "pool_global_max": one("Pooling", "pooling_param { pool: MAX global_pooling: "
                           "true }"),
    "pool_global_ave": one("Pooling", "pooling_param { pool: AVE global_pooling: "
                           "true }"),
    # InnerProduct: axis, transpose, bias.
    "ip": one("InnerProduct", "inner_product_param { num_output: 5 }",
              {"x": (3, 2, 3, 4)}),
    "ip_transpose": one("InnerProduct", "inner_product_param { num_output: 5 "
                        "transpose: true }", {"x": (3, 2, 3, 4)}),
    "ip_axis2_nobias": one("InnerProduct", "inner_product_param { num_output: 5 "
                           "axis: 2 bias_term: false }", {"x": (4, 3, 6)}),
    "ip_axis2_transpose": one("InnerProduct", "inner_product_param { num_output: 5 "
                              "axis: 2 transpose: true }", {"x": (4, 3, 2, 3)}),
    # Neurons.
    "relu": one("ReLU"),
    "relu_leaky": one("ReLU", "relu_param { negative_slope: 0.1 }"),
    "prelu": one("PReLU"),
    "prelu_shared": one("PReLU", "prelu_param { channel_shared: true }"),
    "prelu_2d": one("PReLU", "", {"x": (3, 4)}),
    "elu": one("ELU", "elu_param { alpha: 0.5 }"),
    "sigmoid": one("Sigmoid"),
    "tanh": one("TanH"),
    "absval": one("AbsVal"),
    "bnll": one("BNLL"),
    "power": one("Power", "power_param { power: 2 scale: 0.5 shift: 3 }"),
    "power_sqrt": one("Power", "power_param { power: 0.5 shift: 6 }"),
    "power_zero": one("Power", "power_param { power: 0 }"),
    "power_linear": one("Power", "power_param { scale: -2 shift: 1 }"),
    "exp": one("Exp"),
    "exp_base2": one("Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }"),
    "log": one("Log", "log_param { shift: 6 }"),
    "log_base10": one("Log", "log_param { base: 10 scale: 0.5 shift: 7 }"),
    "threshold": one("Threshold", "threshold_param { threshold: 0.2 }"),
    "clip": one("Clip", "clip_param { min: -0.5 max: 0.7 }"),
    "swish": one("Swish", "swish_param { beta: 1.5 }"),
    "dropout": one("Dropout", "dropout_param { dropout_ratio: 0.3 }"),
    # Normalisation.
    "batchnorm_scale": (X4, _layer("BatchNorm", "x", "bn") +
                        _layer("Scale", "bn", "y", "scale_param { bias_term: true }")),
    "batchnorm_batch_stats": one("BatchNorm", "batch_norm_param { use_global_stats: "
                                 "false eps: 0.001 }"),
    "lrn_across": one("LRN", "lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 "
                      "k: 2 }", {"x": (2, 7, 5, 5)}),
    "lrn_within": one("LRN", "lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 "
                      "norm_region: WITHIN_CHANNEL }", {"x": (2, 3, 6, 5)}),
    "softmax": one("Softmax", "", X3),
    "softmax_axis2": one("Softmax", "softmax_param { axis: 2 }", X3),
    "softmax_axis_neg": one("Softmax", "softmax_param { axis: -3 }"),
    # Shapes.
    "concat": one("Concat", "", {"x": (2, 3, 4), "z": (2, 2, 4)}, ("x", "z")),
    "concat_axis0": one("Concat", "concat_param { axis: 0 }",
                        {"x": (2, 3, 4), "z": (1, 3, 4)}, ("x", "z")),
    "slice": one("Slice", "slice_param { axis: 1 slice_point: 1 slice_point: 3 }",
                 X3, ntop=3),
    "slice_even": one("Slice", "slice_param { axis: -1 }", {"x": (2, 3, 4)}, ntop=2),
    "split": (X3, _layer("TanH", "x", "t") + _layer("Sigmoid", "t", "a") +
              _layer("Eltwise", ["t", "a", "t"], "y", "eltwise_param { operation: "
                     "PROD }")),
    "eltwise_sum_coeff": one("Eltwise", "eltwise_param { operation: SUM coeff: 2 "
                             "coeff: -0.5 }", {"x": (2, 3), "z": (2, 3)}, ("x", "z")),
    "eltwise_prod": one("Eltwise", "eltwise_param { operation: PROD }",
                        {"x": (2, 3), "z": (2, 3), "w": (2, 3)}, ("x", "z", "w")),
    "eltwise_max": one("Eltwise", "eltwise_param { operation: MAX }",
                       {"x": (2, 3, 2), "z": (2, 3, 2)}, ("x", "z")),
    "flatten": one("Flatten"),
    "flatten_range": one("Flatten", "flatten_param { axis: 1 end_axis: 2 }"),
    "reshape": one("Reshape", "reshape_param { shape { dim: 0 dim: -1 } }"),
    "reshape_axis": one("Reshape", "reshape_param { shape { dim: 2 dim: -1 } axis: 1 "
                        "num_axes: 1 }", {"x": (2, 6, 5)}),
    "reshape_tail": one("Reshape", "reshape_param { shape { dim: 3 dim: 3 } axis: 2 "
                        "}", {"x": (2, 4, 9)}),
    "crop": one("Crop", "crop_param { axis: 2 offset: 1 }",
                {"x": (2, 3, 7, 7), "z": (2, 3, 4, 5)}, ("x", "z")),
    "crop_offsets": one("Crop", "crop_param { axis: 1 offset: 0 offset: 1 offset: 2 "
                        "}", {"x": (2, 3, 7, 7), "z": (1, 2, 4, 5)}, ("x", "z")),
    "tile": one("Tile", "tile_param { axis: 1 tiles: 3 }", X3),
    "tile_inner": one("Tile", "tile_param { axis: 2 tiles: 2 }"),
    # Broadcasting parameters.
    "scale_learned": one("Scale", "scale_param { axis: 1 num_axes: 2 }",
                         {"x": (2, 3, 4, 2)}),
    "scale_bottom_axis0": one("Scale", "scale_param { axis: 0 }",
                              {"x": (2, 3, 4), "z": (2, 3)}, ("x", "z")),
    "scale_bottom_bias": one("Scale", "scale_param { axis: 1 bias_term: true }",
                             {"x": (2, 3, 4), "z": (3, 4)}, ("x", "z")),
    "scale_scalar": one("Scale", "scale_param { num_axes: 0 bias_term: true }"),
    "bias_learned": one("Bias", "bias_param { axis: 1 num_axes: 1 }"),
    "bias_bottom": one("Bias", "bias_param { axis: 2 }",
                       {"x": (2, 3, 4), "z": (4,)}, ("x", "z")),
    # Reductions.
    "reduction_sum": one("Reduction", "reduction_param { axis: 1 }"),
    "reduction_asum": one("Reduction", "reduction_param { operation: ASUM axis: 2 "
                          "coeff: 0.5 }"),
    "reduction_sumsq": one("Reduction", "reduction_param { operation: SUMSQ axis: "
                           "-1 }"),
    "reduction_mean_all": one("Reduction", "reduction_param { operation: MEAN "
                              "coeff: 2 }"),
    "argmax": one("ArgMax", "argmax_param { top_k: 2 }", {"x": (3, 4, 5)}),
    "argmax_val": one("ArgMax", "argmax_param { top_k: 3 out_max_val: true }",
                      {"x": (3, 7)}),
    "argmax_axis": one("ArgMax", "argmax_param { axis: 1 }", {"x": (3, 4, 5)}),
    "argmax_axis_val": one("ArgMax", "argmax_param { axis: -1 top_k: 2 "
                           "out_max_val: true }", {"x": (3, 4, 5)}),
    "dummy_constant": ({"x": (2, 3)}, _layer(
        "DummyData", [], "d", 'dummy_data_param { shape { dim: 2 dim: 3 } '
        'data_filler { type: "constant" value: 1.5 } }') +
        _layer("Eltwise", ["x", "d"], "y")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_case(case, onnx_tools):
    inputs, body = CASES[case]
    net = onnx_tools.net_from_text(_net_text(inputs, body))
    onnx_tools.randomize(net)
    _, errors = onnx_tools.export_and_check(net)
    assert max(errors.values()) <= onnx_tools.rtol


def test_embed(onnx_tools):
    text = _net_text({"ids": (4, 3)}, _layer(
        "Embed", "ids", "y", "embed_param { input_dim: 10 num_output: 5 }"))
    net = onnx_tools.net_from_text(text)
    onnx_tools.randomize(net)
    ids = np.random.default_rng(1).integers(0, 10, (4, 3)).astype(np.float32)
    _, errors = onnx_tools.export_and_check(net, {"ids": ids})
    assert set(errors) == {"y"}


def test_every_converter_type_has_a_case():
    from recaffe.onnx import supported_types

    covered = {"Embed", "Split", "Input", "RNN", "LSTM", "LSTMUnit"}
    for _inputs, body in CASES.values():
        covered |= {part.split('"')[1] for part in body.split('type: ')[1:]}
    missing = set(supported_types()) - covered
    assert not missing, f"converters without a test case: {sorted(missing)}"
