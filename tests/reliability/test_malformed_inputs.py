"""A corpus of malformed inputs: every one is answered by a typed recaffe error
whose message names the place (file:line:col, layer type and name, blob and
index, expected vs got).

Each table row is one case; the test asserts the exception type *and* a regex
on the message. ``{file}`` in a pattern stands for the (escaped) path of the
file the case wrote.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import recaffe
from recaffe import backend
from recaffe.errors import (
    DataError,
    LayerSetupError,
    NetError,
    PrototxtError,
    RecaffeError,
    ShapeError,
    SolverError,
    UnknownLayerTypeError,
    WeightsError,
)
from recaffe.io.prototxt import parse_prototxt
from recaffe.net import TRAIN, Net
from recaffe.proto import caffe_pb2

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _seed():
    backend.set_random_seed(7)


def inp(name: str, *shape: int) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return (
        f'layer {{ name: "{name}" type: "Input" top: "{name}" '
        f"input_param {{ shape {{ {dims} }} }} }}\n"
    )


def lay(name: str, ltype: str, bottoms=(), tops=None, extra: str = "") -> str:
    tops = [name] if tops is None else tops
    b = " ".join(f'bottom: "{x}"' for x in bottoms)
    t = " ".join(f'top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{ltype}" {b} {t} {extra} }}\n'


def _fill(blob_name: str, value):
    def poke(net):
        net.blobs[blob_name].data[...] = value

    return poke


def _reshape(blob_name: str, *shape):
    def poke(net):
        net.blobs[blob_name].reshape(*shape)

    return poke


def case(cid, text, exc, pattern, poke=None):
    return pytest.param(text, exc, pattern, poke, id=cid)


LOOP = (
    'layer {\n  name: "a"\n  type: "Input"\n  top: "a"\n'
    "  input_param { shape { dim: 2 } }\n"
)

# -- prototxt text errors: file:line:col -----------------------------------------------
SYNTAX_CASES = [
    case("syntax-unclosed-brace", LOOP, PrototxtError, r'^{file}:5:\d+: Expected "}"'),
    case(
        "syntax-missing-colon",
        'name "x"\n',
        PrototxtError,
        r'^{file}:1:6: .*Expected ":"',
    ),
    case(
        "syntax-bare-word-for-string",
        'layer {\n  name: "a"\n  type: Input\n}\n',
        PrototxtError,
        r"^{file}:3:9: .*Expected string but found: 'Input'",
    ),
    case(
        "syntax-unterminated-string",
        'name: "abc\n',
        PrototxtError,
        r"^{file}:1:7: .*String missing ending quote",
    ),
    case(
        "syntax-not-utf8",
        b'name: "a"\nlayer { name: "\xff" }\n',
        PrototxtError,
        r"^{file}:2:16: not valid UTF-8 text \(byte 0xff\)",
    ),
    case(
        "syntax-duplicate-field",
        'name: "a"\nname: "b"\n',
        PrototxtError,
        r'^{file}:2:\d+: .*multiple "name" fields',
    ),
    case(
        "syntax-negative-unsigned",
        'layer {\n  name: "p"\n  type: "Pooling"\n'
        "  pooling_param { kernel_size: -3 }\n}\n",
        PrototxtError,
        r"^{file}:4:\d+: .*Value out of range: -3",
    ),
    case(
        "syntax-float-for-int",
        'layer {\n  name: "p"\n  type: "Pooling"\n'
        "  pooling_param { kernel_size: 3.5 }\n}\n",
        PrototxtError,
        r"^{file}:4:\d+: .*Couldn't parse integer: 3.5",
    ),
    case(
        "syntax-string-for-int",
        'layer {\n  name: "p"\n  pooling_param { pad: "1" }\n}\n',
        PrototxtError,
        r'^{file}:3:\d+: .*Couldn\'t parse integer: "1"',
    ),
    # unknown fields and enum values, with the closest-match hint
    case(
        "unknown-field-typo",
        'layer {\n  name: "a"\n  typ: "Input"\n}\n',
        PrototxtError,
        r"^{file}:3:3: .*no field named \"typ\".*\(did you mean 'type'\?\)",
    ),
    case(
        "unknown-field-wrong-param",
        'layer {\n  name: "p"\n  type: "Pooling"\n'
        "  convolution_param { pool: MAX }\n}\n",
        PrototxtError,
        r"^{file}:4:\d+: .*ConvolutionParameter.* no field named \"pool\".*"
        r"'pool' is a field of 'pooling_param'",
    ),
    case(
        "unknown-field-param-at-layer-level",
        'layer {\n  name: "p"\n  type: "Pooling"\n  kernel_size: 3\n}\n',
        PrototxtError,
        r"^{file}:4:3: .*'kernel_size' is a field of 'convolution_param', "
        r"'pooling_param'",
    ),
    case(
        "unknown-field-num-output-typo",
        'layer {\n  name: "ip"\n  inner_product_param { num_ouput: 3 }\n}\n',
        PrototxtError,
        r"^{file}:3:\d+: .*did you mean 'num_output'",
    ),
    case(
        "unknown-enum-value",
        'layer {\n  name: "p"\n  type: "Pooling"\n  pooling_param { pool: MAXX }\n}\n',
        PrototxtError,
        r"^{file}:4:\d+: .*has no value named MAXX.*\(did you mean 'MAX'\?\)",
    ),
    case(
        "unknown-enum-phase",
        'layer {\n  name: "p"\n  include { phase: TRAINING }\n}\n',
        PrototxtError,
        r"^{file}:3:\d+: .*TRAINING.*\(did you mean 'TRAIN'\?\)",
    ),
    case(
        "unknown-enum-no-close-match",
        'layer {\n  name: "p"\n  pooling_param { pool: QQQQ }\n}\n',
        PrototxtError,
        r"^{file}:3:\d+: .*valid values: MAX, AVE, STOCHASTIC",
    ),
]

# -- net graph errors ------------------------------------------------------------------
GRAPH_CASES = [
    case(
        "unknown-layer-type",
        inp("a", 2, 3) + lay("r", "Relu", ["a"]),
        UnknownLayerTypeError,
        r"^layer 'r': unknown layer type 'Relu'\. Did you mean 'ReLU'\?",
    ),
    case(
        "unknown-layer-type-conv",
        inp("a", 1, 1, 3, 3) + lay("c", "Convolutoin", ["a"]),
        UnknownLayerTypeError,
        r"layer 'c': unknown layer type 'Convolutoin'\. "
        r"Did you mean 'Convolution'",
    ),
    case(
        "empty-layer-type",
        inp("a", 2) + 'layer { name: "x" bottom: "a" top: "x" }',
        UnknownLayerTypeError,
        r"^layer 'x': unknown layer type ''",
    ),
    case(
        "missing-bottom",
        inp("a", 2, 3) + lay("r", "ReLU", ["zz"]),
        NetError,
        r"^layer 'r' \(ReLU\): unknown bottom blob 'zz' \(bottom index 0\)",
    ),
    case(
        "missing-second-bottom",
        inp("a", 2, 3) + lay("e", "Eltwise", ["a", "b"]),
        NetError,
        r"^layer 'e' \(Eltwise\): unknown bottom blob 'b' \(bottom index 1\)",
    ),
    case(
        "bottom-used-before-produced",
        lay("r", "ReLU", ["a"]) + inp("a", 2, 3),
        NetError,
        r"layer 'r' \(ReLU\): unknown bottom blob 'a' \(bottom index 0\)",
    ),
    case(
        "duplicate-top",
        inp("a", 2, 3)
        + lay("r", "ReLU", ["a"], ["b"])
        + lay("r2", "ReLU", ["a"], ["b"]),
        NetError,
        r"^layer 'r2' \(ReLU\): top blob 'b' \(top index 0\) is produced by multiple "
        r"sources",
    ),
    case(
        "duplicate-top-wrong-index",
        inp("a", 2, 6) + inp("c", 2, 6) + lay("e", "Eltwise", ["a", "c"], ["c"]),
        NetError,
        r"layer 'e' \(Eltwise\): top blob 'c' \(top index 0\) is produced by multiple",
    ),
    case(
        "too-many-bottoms",
        inp("a", 2, 3) + lay("r", "ReLU", ["a", "a"], ["b"]),
        LayerSetupError,
        r"^ReLU layer 'r': takes exactly 1 bottom blob\(s\), got 2",
    ),
    case(
        "too-few-bottoms-loss",
        inp("a", 2, 3) + lay("l", "SoftmaxWithLoss", ["a"], ["loss"]),
        LayerSetupError,
        r"^SoftmaxWithLoss layer 'l': takes exactly 2 bottom blob\(s\), got 1",
    ),
    case(
        "no-top",
        inp("a", 2, 3) + lay("r", "ReLU", ["a"], []),
        LayerSetupError,
        r"^ReLU layer 'r': takes exactly 1 top blob\(s\), got 0",
    ),
    case(
        "silence-with-top",
        inp("a", 2, 3) + lay("s", "Silence", ["a"], ["b"]),
        LayerSetupError,
        r"^Silence layer 's': takes exactly 0 top blob\(s\), got 1",
    ),
    case(
        "input-with-bottom",
        inp("a", 2, 3)
        + lay("i", "Input", ["a"], ["b"], "input_param { shape { dim: 1 } }"),
        LayerSetupError,
        r"^Input layer 'i': takes exactly 0 bottom blob\(s\), got 1",
    ),
    case(
        "too-many-param-specs",
        inp("a", 2, 3) + lay("r", "ReLU", ["a"], ["b"], "param { lr_mult: 1 }"),
        NetError,
        r"^layer 'r' \(ReLU\): too many params specified: 1 param \{\} blocks for 0",
    ),
    case(
        "propagate-down-count",
        inp("a", 2, 3)
        + lay("r", "ReLU", ["a"], ["b"], "propagate_down: true propagate_down: false"),
        NetError,
        r"^layer 'r' \(ReLU\): propagate_down must be given once per bottom "
        r"\(1\), got 2",
    ),
    case(
        "loss-weight-count",
        inp("a", 2, 3)
        + lay("r", "ReLU", ["a"], ["b"], "loss_weight: 1 loss_weight: 2"),
        LayerSetupError,
        r"^ReLU layer 'r': loss_weight must be given once per top "
        r"\(1\), got 2",
    ),
    case(
        "shared-param-shape",
        inp("a", 2, 3)
        + lay(
            "ip1",
            "InnerProduct",
            ["a"],
            None,
            'param { name: "w" } inner_product_param { num_output: 4 }',
        )
        + lay(
            "ip2",
            "InnerProduct",
            ["a"],
            None,
            'param { name: "w" } inner_product_param { num_output: 5 }',
        ),
        NetError,
        r"^layer 'ip2' \(InnerProduct\) param 0 shares 'w' with layer 'ip1' "
        r"param 0: shape mismatch, owner has \(4, 3\), sharer \(5, 3\)",
    ),
    case(
        "shared-param-lr-mult",
        inp("a", 2, 3)
        + lay(
            "ip1",
            "InnerProduct",
            ["a"],
            None,
            'param { name: "w" lr_mult: 1 } inner_product_param { num_output: 4 }',
        )
        + lay(
            "ip2",
            "InnerProduct",
            ["a"],
            None,
            'param { name: "w" lr_mult: 2 } inner_product_param { num_output: 4 }',
        ),
        NetError,
        r"Shared param 'w' has mismatched lr_mult: 1\.0 vs 2\.0 .*layer 'ip2'",
    ),
]

# -- shapes checked in reshape ---------------------------------------------------------
REC = "recurrent_param { num_output: 5 }"
SHAPE_CASES = [
    case(
        "eltwise-shapes",
        inp("a", 2, 3) + inp("b", 2, 4) + lay("e", "Eltwise", ["a", "b"]),
        ShapeError,
        r"^Eltwise layer 'e': bottom\[1\] 'b' must have the shape of bottom\[0\] 'a': "
        r"\(2, 3\), got \(2, 4\)",
    ),
    case(
        "eltwise-shapes-after-reshape",
        inp("a", 2, 3) + inp("b", 2, 3) + lay("e", "Eltwise", ["a", "b"]),
        ShapeError,
        r"^Eltwise layer 'e': bottom\[1\] 'b' .*\(2, 3\), got \(2, 4\)",
        _reshape("b", 2, 4),
    ),
    case(
        "eltwise-coeff-count",
        inp("a", 2, 3)
        + inp("b", 2, 3)
        + lay("e", "Eltwise", ["a", "b"], None, "eltwise_param { coeff: 1 }"),
        LayerSetupError,
        r"^Eltwise layer 'e': .*coeff.*2",
    ),
    case(
        "concat-dims",
        inp("a", 2, 3, 4) + inp("b", 2, 3, 5) + lay("c", "Concat", ["a", "b"]),
        ShapeError,
        r"^Concat layer 'c': bottom\[1\] must have the shape of bottom\[0\] "
        r"\(2, 3, 4\) "
        r"on every axis except the concat axis 1, got \(2, 3, 5\)",
    ),
    case(
        "concat-num-axes",
        inp("a", 2, 3) + inp("b", 2, 3, 1) + lay("c", "Concat", ["a", "b"]),
        ShapeError,
        r"^Concat layer 'c': bottom\[1\]",
    ),
    case(
        "concat-axis-range",
        inp("a", 2, 3)
        + inp("b", 2, 3)
        + lay("c", "Concat", ["a", "b"], None, "concat_param { axis: 5 }"),
        ShapeError,
        r"^Concat layer 'c': concat_param\.axis 5 is out of range for a bottom with 2",
    ),
    case(
        "slice-point-range",
        inp("a", 2, 6)
        + lay("s", "Slice", ["a"], ["b", "c"], "slice_param { slice_point: 9 }"),
        ShapeError,
        r"^Slice layer 's': slice_point values must be strictly increasing "
        r"and within \(0, 6\) .* got \[9\]",
    ),
    case(
        "slice-point-order",
        inp("a", 2, 6)
        + lay(
            "s",
            "Slice",
            ["a"],
            ["b", "c", "d"],
            "slice_param { slice_point: 4 slice_point: 2 }",
        ),
        ShapeError,
        r"^Slice layer 's': slice_point values must be strictly increasing",
    ),
    case(
        "slice-point-count",
        inp("a", 2, 6)
        + lay("s", "Slice", ["a"], ["b", "c", "d"], "slice_param { slice_point: 2 }"),
        LayerSetupError,
        r"^Slice layer 's': needs one slice_point fewer than tops: 3 "
        r"top\(s\) need 2 slice_point\(s\), got 1",
    ),
    case(
        "slice-uneven",
        inp("a", 2, 5) + lay("s", "Slice", ["a"], ["b", "c"]),
        ShapeError,
        r"^Slice layer 's': number of tops \(2\) must evenly divide the "
        r"slice axis 1 \(size 5\)",
    ),
    case(
        "reshape-two-minus-one",
        inp("a", 2, 6)
        + lay(
            "r", "Reshape", ["a"], None, "reshape_param { shape { dim: -1 dim: -1 } }"
        ),
        LayerSetupError,
        r"^Reshape layer 'r': new shape \[-1, -1\] contains 2 -1 dims",
    ),
    case(
        "reshape-count",
        inp("a", 2, 6)
        + lay("r", "Reshape", ["a"], None, "reshape_param { shape { dim: 5 dim: 5 } }"),
        ShapeError,
        r"^Reshape layer 'r': output shape \(5, 5\) has 25 elements, but "
        r"bottom\[0\] \(2, 6\) has 12",
    ),
    case(
        "inner-product-k-change",
        inp("a", 2, 6)
        + lay(
            "ip", "InnerProduct", ["a"], None, "inner_product_param { num_output: 3 }"
        ),
        ShapeError,
        r"^InnerProduct layer 'ip': bottom\[0\] has 7 input features .* "
        r"expected 6",
        _reshape("a", 2, 7),
    ),
    case(
        "conv-channels-change",
        inp("a", 1, 2, 4, 4)
        + lay(
            "cv",
            "Convolution",
            ["a"],
            None,
            "convolution_param { num_output: 3 kernel_size: 1 }",
        ),
        ShapeError,
        r"^Convolution layer 'cv': bottom\[0\] must have 2 channels on axis "
        r"1 \(as at setup\), got shape \(1, 3, 4, 4\)",
        _reshape("a", 1, 3, 4, 4),
    ),
    case(
        "conv-group-channels",
        inp("a", 1, 3, 3, 3)
        + lay(
            "cv",
            "Convolution",
            ["a"],
            None,
            "convolution_param { num_output: 2 kernel_size: 1 group: 2 }",
        ),
        LayerSetupError,
        r"^Convolution layer 'cv': the number of input channels \(3\) "
        r"must be a multiple of group \(2\)",
    ),
    case(
        "conv-kernel-larger-than-input",
        inp("a", 1, 1, 3, 3)
        + lay(
            "cv",
            "Convolution",
            ["a"],
            None,
            "convolution_param { num_output: 2 kernel_size: 5 pad: 0 }",
        ),
        ShapeError,
        r"^Convolution layer 'cv': kernel \(5, 5\) .* larger than the padded "
        r"input \(3, 3\)",
    ),
    case(
        "conv-too-few-axes",
        inp("a", 1, 3)
        + lay(
            "cv",
            "Convolution",
            ["a"],
            None,
            "convolution_param { num_output: 2 kernel_size: 1 }",
        ),
        ShapeError,
        r"^Convolution layer 'cv': the bottom needs at least one spatial",
    ),
    case(
        "pool-kernel-larger-than-input",
        inp("a", 1, 1, 3, 3)
        + lay("p", "Pooling", ["a"], None, "pooling_param { kernel_size: 5 }"),
        ShapeError,
        r"^Pooling layer 'p': kernel \(5, 5\) is larger than the padded "
        r"input \(3, 3\)",
    ),
    case(
        "pool-axes",
        inp("a", 2, 3)
        + lay("p", "Pooling", ["a"], None, "pooling_param { kernel_size: 1 }"),
        ShapeError,
        r"^Pooling layer 'p': bottom\[0\] must have 4 axes .*got shape "
        r"\(2, 3\)",
    ),
    case(
        "lstm-cont-shape",
        inp("x", 3, 2, 4)
        + inp("c", 3, 3)
        + lay("lstm", "LSTM", ["x", "c"], ["h"], REC),
        ShapeError,
        r"^LSTM layer 'lstm': bottom\[1\] 'cont' must have shape \(T, N\) = \(3, 2\) .*"
        r"got \(3, 3\)",
    ),
    case(
        "lstm-cont-shape-after-reshape",
        inp("x", 3, 2, 4)
        + inp("c", 3, 2)
        + lay("lstm", "LSTM", ["x", "c"], ["h"], REC),
        ShapeError,
        r"^LSTM layer 'lstm': bottom\[1\] 'cont' .*got \(3, 3\)",
        _reshape("c", 3, 3),
    ),
    case(
        "rnn-cont-axes",
        inp("x", 3, 2, 4) + inp("c", 3) + lay("rnn", "RNN", ["x", "c"], ["h"], REC),
        ShapeError,
        r"^RNN layer 'rnn': bottom\[1\] 'cont' must have 2 axes \(T x N\), got shape "
        r"\(3,\)",
    ),
    case(
        "lstm-unit-gates",
        inp("c", 1, 2, 3)
        + inp("x", 1, 2, 11)
        + inp("k", 1, 2)
        + lay("lu", "LSTMUnit", ["c", "x", "k"], ["c2", "h"]),
        ShapeError,
        r"^LSTMUnit layer 'lu': bottom\[1\] 'X' must have shape \(1, 2, 12\) .*got "
        r"\(1, 2, 11\)",
    ),
    case(
        "euclidean-counts",
        inp("a", 2, 3)
        + inp("b", 2, 4)
        + lay("l", "EuclideanLoss", ["a", "b"], ["loss"]),
        ShapeError,
        r"^EuclideanLoss layer 'l': bottom\[0\] and bottom\[1\] must have the same "
        r"count, got shapes \(2, 3\) and \(2, 4\)",
    ),
    case(
        "sigmoid-ce-counts",
        inp("a", 2, 3)
        + inp("b", 2, 4)
        + lay("l", "SigmoidCrossEntropyLoss", ["a", "b"], ["loss"]),
        ShapeError,
        r"^SigmoidCrossEntropyLoss layer 'l': .*same count",
    ),
    case(
        "softmax-loss-label-batch",
        inp("a", 2, 3)
        + inp("b", 3)
        + lay("l", "SoftmaxWithLoss", ["a", "b"], ["loss"]),
        ShapeError,
        r"^SoftmaxWithLoss layer 'l': bottom\[0\] and bottom\[1\] must have the same "
        r"first dimension, got \(2, 3\) and \(3,\)",
    ),
    case(
        "softmax-loss-label-count",
        inp("a", 2, 4, 3)
        + inp("b", 2)
        + lay("l", "SoftmaxWithLoss", ["a", "b"], ["loss"]),
        ShapeError,
        r"^SoftmaxWithLoss layer 'l': bottom\[1\] \(labels\) must have "
        r"outer \* inner = "
        r"2 \* 3 = 6 elements .*got shape \(2,\)",
    ),
    case(
        "accuracy-label-count",
        inp("a", 2, 3) + inp("b", 3) + lay("acc", "Accuracy", ["a", "b"]),
        ShapeError,
        r"^Accuracy layer 'acc': bottom\[1\] \(labels\) must have .*2 elements .*got "
        r"shape \(3,\)",
    ),
    case(
        "multinomial-label-batch",
        inp("a", 2, 3)
        + inp("b", 3)
        + lay("l", "MultinomialLogisticLoss", ["a", "b"], ["loss"]),
        ShapeError,
        r"^MultinomialLogisticLoss layer 'l': .*same first dimension",
    ),
    case(
        "scale-shape",
        inp("a", 2, 3) + inp("b", 4) + lay("sc", "Scale", ["a", "b"]),
        ShapeError,
        r"^Scale layer 'sc': bottom\[1\] of shape \(4,\) does not match bottom\[0\] "
        r"shape \(2, 3\)",
    ),
    case(
        "bias-shape",
        inp("a", 2, 3) + inp("b", 4) + lay("bi", "Bias", ["a", "b"]),
        ShapeError,
        r"^Bias layer 'bi': bottom\[1\] of shape \(4,\) does not match",
    ),
    case(
        "crop-too-large",
        inp("a", 1, 1, 3, 3) + inp("b", 1, 1, 5, 5) + lay("c", "Crop", ["a", "b"]),
        ShapeError,
        r"^Crop layer 'c': invalid crop in axis 2: offset 0 \+ bottom\[1\] size 5 "
        r"exceeds bottom\[0\] size 3",
    ),
    case(
        "prelu-axes",
        inp("a", 2) + lay("pr", "PReLU", ["a"]),
        ShapeError,
        r"^PReLU layer 'pr': bottom\[0\] must have at least 2 axes .*got shape \(2,\)",
    ),
]

# -- bad parameter values --------------------------------------------------------------
PARAM_CASES = [
    case(
        "ip-num-output-0",
        inp("a", 2, 6)
        + lay(
            "ip", "InnerProduct", ["a"], None, "inner_product_param { num_output: 0 }"
        ),
        LayerSetupError,
        r"^InnerProduct layer 'ip': num_output must be > 0, got 0",
    ),
    case(
        "ip-axis-range",
        inp("a", 2, 6)
        + lay(
            "ip",
            "InnerProduct",
            ["a"],
            None,
            "inner_product_param { num_output: 3 axis: 4 }",
        ),
        ShapeError,
        r"^InnerProduct layer 'ip': axis 4 is out of range for a bottom "
        r"with 2 axes",
    ),
    case(
        "conv-num-output-0",
        inp("a", 1, 1, 3, 3)
        + lay(
            "cv",
            "Convolution",
            ["a"],
            None,
            "convolution_param { num_output: 0 kernel_size: 1 }",
        ),
        LayerSetupError,
        r"^Convolution layer 'cv': num_output must be > 0, got 0",
    ),
    case(
        "deconv-num-output-0",
        inp("a", 1, 1, 3, 3)
        + lay(
            "dc",
            "Deconvolution",
            ["a"],
            None,
            "convolution_param { num_output: 0 kernel_size: 1 }",
        ),
        LayerSetupError,
        r"^Deconvolution layer 'dc': num_output must be > 0, got 0",
    ),
    case(
        "conv-kernel-0",
        inp("a", 1, 1, 3, 3)
        + lay(
            "cv",
            "Convolution",
            ["a"],
            None,
            "convolution_param { num_output: 2 kernel_size: 0 }",
        ),
        LayerSetupError,
        r"^Convolution layer 'cv': kernel dimensions must be > 0, got "
        r"\(0, 0\)",
    ),
    case(
        "conv-kernel-missing",
        inp("a", 1, 1, 3, 3)
        + lay("cv", "Convolution", ["a"], None, "convolution_param { num_output: 2 }"),
        LayerSetupError,
        r"^Convolution layer 'cv': kernel size is required",
    ),
    case(
        "conv-stride-0",
        inp("a", 1, 1, 3, 3)
        + lay(
            "cv",
            "Convolution",
            ["a"],
            None,
            "convolution_param { num_output: 2 kernel_size: 1 stride: 0 }",
        ),
        LayerSetupError,
        r"^Convolution layer 'cv': stride must be > 0, got \(0, 0\)",
    ),
    case(
        "pool-stride-0",
        inp("a", 1, 1, 3, 3)
        + lay(
            "p", "Pooling", ["a"], None, "pooling_param { kernel_size: 2 stride: 0 }"
        ),
        LayerSetupError,
        r"^Pooling layer 'p': stride must be > 0, got \(0, 0\)",
    ),
    case(
        "pool-pad-ge-kernel",
        inp("a", 1, 1, 3, 3)
        + lay("p", "Pooling", ["a"], None, "pooling_param { kernel_size: 2 pad: 2 }"),
        LayerSetupError,
        r"^Pooling layer 'p': pad \(2, 2\) must be smaller than the "
        r"kernel \(2, 2\)",
    ),
    case(
        "embed-num-output-0",
        inp("a", 2, 3)
        + lay("em", "Embed", ["a"], None, "embed_param { num_output: 0 input_dim: 4 }"),
        LayerSetupError,
        r"^Embed layer 'em': embed_param\.num_output must be > 0, got 0",
    ),
    case(
        "embed-input-dim-0",
        inp("a", 2, 3)
        + lay("em", "Embed", ["a"], None, "embed_param { num_output: 3 input_dim: 0 }"),
        LayerSetupError,
        r"^Embed layer 'em': embed_param\.input_dim must be > 0, got 0",
    ),
    case(
        "lrn-even-size",
        inp("a", 1, 3, 3, 3)
        + lay("n", "LRN", ["a"], None, "lrn_param { local_size: 2 }"),
        LayerSetupError,
        r"^LRN layer 'n': local_size must be a positive odd number, "
        r"got 2",
    ),
    case(
        "tile-0",
        inp("a", 2, 3) + lay("t", "Tile", ["a"], None, "tile_param { tiles: 0 }"),
        LayerSetupError,
        r"^Tile layer 't': tile_param\.tiles must be a positive number",
    ),
    case(
        "dropout-ratio",
        inp("a", 2, 3)
        + lay("d", "Dropout", ["a"], None, "dropout_param { dropout_ratio: 1.5 }"),
        LayerSetupError,
        r"^Dropout layer 'd': dropout_param\.dropout_ratio must be in "
        r"\(0, 1\), got 1\.5",
    ),
    case(
        "clip-min-gt-max",
        inp("a", 2, 3) + lay("c", "Clip", ["a"], None, "clip_param { min: 2 max: 1 }"),
        LayerSetupError,
        r"^Clip layer 'c': clip_param\.min \(2\.0\) must not exceed "
        r"clip_param\.max \(1\.0\)",
    ),
    case(
        "exp-negative-base",
        inp("a", 2, 3) + lay("e", "Exp", ["a"], None, "exp_param { base: -2 }"),
        LayerSetupError,
        r"^Exp layer 'e': exp_param\.base must be -1 .* got -2\.0",
    ),
    case(
        "log-negative-base",
        inp("a", 2, 3) + lay("lg", "Log", ["a"], None, "log_param { base: -2 }"),
        LayerSetupError,
        r"^Log layer 'lg': log_param\.base must be -1 .* got -2\.0",
    ),
    case(
        "softmax-axis-range",
        inp("a", 2, 3) + lay("s", "Softmax", ["a"], None, "softmax_param { axis: 3 }"),
        ShapeError,
        r"^Softmax layer 's': axis 3 is out of range for a bottom with 2 axes",
    ),
    case(
        "flatten-axis-range",
        inp("a", 2, 3) + lay("f", "Flatten", ["a"], None, "flatten_param { axis: 4 }"),
        ShapeError,
        r"^Flatten layer 'f': flatten_param\.axis 4 is out of range",
    ),
    case(
        "reduction-axis-range",
        inp("a", 2, 3)
        + lay("r", "Reduction", ["a"], None, "reduction_param { axis: -4 }"),
        ShapeError,
        r"^Reduction layer 'r': axis -4 is out of range",
    ),
    case(
        "argmax-top-k",
        inp("a", 2, 3) + lay("am", "ArgMax", ["a"], None, "argmax_param { top_k: 5 }"),
        ShapeError,
        r"^ArgMax layer 'am': top_k 5 exceeds the 3 entries",
    ),
    case(
        "accuracy-top-k",
        inp("a", 2, 3)
        + inp("b", 2)
        + lay("acc", "Accuracy", ["a", "b"], None, "accuracy_param { top_k: 5 }"),
        ShapeError,
        r"^Accuracy layer 'acc': top_k \(5\) must be less than or equal to "
        r"the number of classes \(3",
    ),
    case(
        "input-negative-dim",
        'layer { name: "i" type: "Input" top: "a" input_param { shape { dim: -2 } } }',
        LayerSetupError,
        r"^Input layer 'i': shape \(-2,\) for top\[0\] has a negative dim",
    ),
    case(
        "input-shape-count",
        'layer { name: "i" type: "Input" top: "a" top: "b" '
        "input_param { shape { dim: 2 } shape { dim: 2 } shape { dim: 2 } } }",
        LayerSetupError,
        r"^Input layer 'i': input_param must give 'shape' once, once "
        r"per top \(2\) or not at all, got 3",
    ),
    case(
        "dummy-shape-count",
        'layer { name: "d" type: "DummyData" top: "a" top: "b" '
        "dummy_data_param { shape { dim: 2 } shape { dim: 2 } shape { dim: 3 } } }",
        LayerSetupError,
        r"^DummyData layer 'd': 'shape' must be given once or once "
        r"per top \(2\), got 3",
    ),
    case(
        "hdf5-batch-size-0",
        'layer { name: "h" type: "HDF5Data" top: "a" '
        'hdf5_data_param { source: "list.txt" batch_size: 0 } }',
        LayerSetupError,
        r"^HDF5Data layer 'h': hdf5_data_param\.batch_size must be > 0, got 0",
    ),
    case(
        "hdf5-no-source",
        'layer { name: "h" type: "HDF5Data" top: "a" '
        "hdf5_data_param { batch_size: 2 } }",
        LayerSetupError,
        r"^HDF5Data layer 'h': hdf5_data_param\.source .* is required",
    ),
]

# -- out-of-range data (checked in forward) --------------------------------------------
EMBED = inp("a", 2, 3) + lay(
    "em", "Embed", ["a"], None, "embed_param { num_output: 3 input_dim: 4 }"
)
DATA_CASES = [
    case(
        "embed-index-too-large",
        EMBED,
        DataError,
        r"^Embed layer 'em': bottom\[0\] value 7\.0 at position \(0, 0\) is not an "
        r"integer id in \[0, 4\)",
        _fill("a", 7),
    ),
    case(
        "embed-index-negative",
        EMBED,
        DataError,
        r"^Embed layer 'em': bottom\[0\] value -1\.0 at position",
        _fill("a", -1),
    ),
    case(
        "embed-index-fractional",
        EMBED,
        DataError,
        r"^Embed layer 'em': bottom\[0\] value 1\.5 at position",
        _fill("a", 1.5),
    ),
    case(
        "embed-index-nan",
        EMBED,
        DataError,
        r"^Embed layer 'em': bottom\[0\] value nan at position",
        _fill("a", np.nan),
    ),
]
for _lt in ("SoftmaxWithLoss", "Accuracy", "MultinomialLogisticLoss", "HingeLoss"):
    _text = inp("a", 2, 3) + inp("b", 2) + lay("l", _lt, ["a", "b"], ["out"])
    DATA_CASES += [
        case(
            f"label-too-large-{_lt}",
            _text,
            DataError,
            rf"^{_lt} layer 'l': label 5 at bottom\[1\] position \(0,\) is outside "
            r"\[0, 3\)",
            _fill("b", 5),
        ),
        case(
            f"label-negative-{_lt}",
            _text,
            DataError,
            rf"^{_lt} layer 'l': label -3 at bottom\[1\] position \(0,\)",
            _fill("b", -3),
        ),
    ]


@pytest.mark.parametrize(
    "text, exc, pattern, poke",
    SYNTAX_CASES + GRAPH_CASES + SHAPE_CASES + PARAM_CASES + DATA_CASES,
)
def test_malformed_net(tmp_path, monkeypatch, text, exc, pattern, poke):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "net.prototxt"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(exc) as info:
        net = Net(str(path), TRAIN)
        if poke is not None:
            poke(net)
        net.forward()
        net.backward()
    msg = str(info.value)
    assert re.search(pattern.replace("{file}", re.escape(str(path))), msg), msg
    assert "\n" not in msg


def test_net_file_missing(tmp_path):
    path = tmp_path / "absent.prototxt"
    with pytest.raises(PrototxtError, match=re.escape(str(path))):
        Net(str(path), TRAIN)


def test_unknown_layer_type_lists_known_types():
    text = inp("a", 2) + lay("x", "NoSuchLayer", ["a"])
    with pytest.raises(UnknownLayerTypeError) as info:
        Net(parse_prototxt(text, caffe_pb2.NetParameter), TRAIN)
    assert "Known types: " in str(info.value) and "InnerProduct" in str(info.value)


# -- weights files ---------------------------------------------------------------------
WNET = (
    inp("a", 2, 6)
    + lay(
        "ip",
        "InnerProduct",
        ["a"],
        None,
        'inner_product_param { num_output: 3 weight_filler { type: "gaussian" } }',
    )
    + lay(
        "ip2",
        "InnerProduct",
        ["ip"],
        None,
        'inner_product_param { num_output: 2 weight_filler { type: "gaussian" } }',
    )
)


def _wnet(text=WNET) -> Net:
    return Net(parse_prototxt(text, caffe_pb2.NetParameter), TRAIN)


def _w_truncated(d, good):
    (d / "w.caffemodel").write_bytes(good[: len(good) // 2])


def _w_garbage(d, good):
    (d / "w.caffemodel").write_bytes(np.random.default_rng(0).bytes(300))


def _w_empty(d, good):
    (d / "w.caffemodel").write_bytes(b"")


def _w_text(d, good):
    (d / "w.caffemodel").write_text(WNET)


def _w_missing(d, good):
    pass


def _w_other_net_shapes(d, good):
    _wnet(WNET.replace("num_output: 3", "num_output: 4")).save(str(d / "w.caffemodel"))


def _w_blob_count(d, good):
    _wnet(
        WNET.replace(
            "inner_product_param { num_output: 3",
            "inner_product_param { bias_term: false num_output: 3",
        )
    ).save(str(d / "w.caffemodel"))


def _w_short_data(d, good):
    p = caffe_pb2.NetParameter()
    p.ParseFromString(good)
    del p.layer[1].blobs[0].data[-1]
    (d / "w.caffemodel").write_bytes(p.SerializeToString())


def _w_h5_truncated(d, good):
    _wnet().save_hdf5(str(d / "full.h5"))
    data = (d / "full.h5").read_bytes()
    (d / "w.caffemodel").write_bytes(data[: len(data) // 2])


def _w_h5_shapes(d, good):
    _wnet(WNET.replace("num_output: 3", "num_output: 4")).save_hdf5(
        str(d / "w.caffemodel")
    )


def _w_h5_no_data(d, good):
    with h5py.File(d / "w.caffemodel", "w") as f:
        f["x"] = np.zeros(3)


def _w_h5_missing_param(d, good):
    with h5py.File(d / "w.caffemodel", "w") as f:
        f["data/ip/0"] = np.zeros((3, 6), np.float32)


WEIGHTS_CASES = [
    pytest.param(
        _w_truncated,
        r"^{file}: not a valid binary NetParameter \(truncated "
        r"or corrupt file",
        id="truncated",
    ),
    pytest.param(_w_garbage, r"^{file}: not a valid binary NetParameter", id="garbage"),
    pytest.param(
        _w_empty,
        r"^{file}: not a valid binary NetParameter \(the file is "
        r"empty\)",
        id="empty",
    ),
    pytest.param(
        _w_text,
        r"^{file}: not a valid binary NetParameter .*looks like a "
        r"text file",
        id="prototxt-text",
    ),
    pytest.param(
        _w_missing, r"^{file}: could not open weights file \(No such file", id="missing"
    ),
    pytest.param(
        _w_other_net_shapes,
        r"^{file}: cannot copy param 0 weights from layer "
        r"'ip'; shape mismatch\. Source param shape is \(4, 6\); target param "
        r"shape is \(3, 6\)",
        id="other-net-wrong-shapes",
    ),
    pytest.param(
        _w_blob_count,
        r"^{file}: incompatible number of blobs for layer 'ip': "
        r"file has 1, net expects 2",
        id="wrong-blob-count",
    ),
    pytest.param(
        _w_short_data, r"^{file}: layer 'ip' param 0: .*size 17", id="short-data"
    ),
    pytest.param(
        _w_h5_truncated, r"^{file}: cannot open HDF5 weights", id="h5-truncated"
    ),
    pytest.param(
        _w_h5_shapes,
        r"^{file}: cannot copy param 0 weights from layer 'ip'; "
        r"shape mismatch",
        id="h5-wrong-shapes",
    ),
    pytest.param(
        _w_h5_no_data, r"^{file}: HDF5 weights file has no /data group", id="h5-no-data"
    ),
    pytest.param(
        _w_h5_missing_param,
        r"^{file}: layer 'ip' param 1 missing in the file",
        id="h5-missing-param",
    ),
]


@pytest.mark.parametrize("make, pattern", WEIGHTS_CASES)
def test_malformed_weights(tmp_path, make, pattern):
    good_path = tmp_path / "good.caffemodel"
    _wnet().save(str(good_path))
    make(tmp_path, good_path.read_bytes())
    path = tmp_path / "w.caffemodel"
    net = _wnet()
    before = [b.data.copy() for layer in net.layers_list for b in layer.blobs]
    with pytest.raises(WeightsError) as info:
        net.copy_from(str(path))
    msg = str(info.value)
    assert re.search(pattern.replace("{file}", re.escape(str(path))), msg), msg
    # Also through the constructor (Net(..., weights=...)).
    with pytest.raises(WeightsError):
        Net(parse_prototxt(WNET, caffe_pb2.NetParameter), TRAIN, weights=str(path))
    # A rejected file leaves the shapes alone (a layer copied before the bad one
    # may have been loaded, as in Caffe, but nothing is reshaped).
    after = [b.data for layer in net.layers_list for b in layer.blobs]
    assert [a.shape for a in after] == [b.shape for b in before]


def test_weights_of_unrelated_net_are_ignored(tmp_path):
    """Caffe copies by layer name; a file without common names changes nothing."""
    other = WNET.replace('"ip"', '"fc"').replace('"ip2"', '"fc2"')
    _wnet(other).save(str(tmp_path / "other.caffemodel"))
    net = _wnet()
    before = [b.data.copy() for layer in net.layers_list for b in layer.blobs]
    net.copy_from(str(tmp_path / "other.caffemodel"))
    for a, b in zip(
        before, [b.data for la in net.layers_list for b in la.blobs], strict=True
    ):
        np.testing.assert_array_equal(a, b)


# -- no partial files ------------------------------------------------------------------
def _eio(*args, **kwargs):
    raise OSError(errno.EIO, "Input/output error")


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    net = _wnet()
    target = tmp_path / "model.caffemodel"
    monkeypatch.setattr("recaffe.io.atomic.os.fsync", _eio)
    with pytest.raises(
        WeightsError,
        match=rf"^{re.escape(str(target))}: cannot write "
        r"weights file \(Input/output error\)",
    ):
        net.save(str(target))
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    net = _wnet()
    target = tmp_path / "model.caffemodel"
    net.save(str(target))
    old = target.read_bytes()
    for layer in net.layers_list:
        for b in layer.blobs:
            b.data[...] = 5
    monkeypatch.setattr("recaffe.io.atomic.os.replace", _eio)
    with pytest.raises(WeightsError):
        net.save(str(target))
    assert target.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.caffemodel"]


def test_save_into_missing_directory(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "m.caffemodel"
    with pytest.raises(WeightsError, match=r"cannot write weights file \(No such file"):
        _wnet().save(str(target))
    assert not target.exists()


def test_interrupted_hdf5_save_leaves_no_file(tmp_path, monkeypatch):
    net = _wnet()
    target = tmp_path / "model.caffemodel.h5"
    calls = {"n": 0}
    real = backend.to_host

    def flaky(arr):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the write
        return real(arr)

    monkeypatch.setattr("recaffe.net_weights.backend.to_host", flaky)
    with pytest.raises(KeyboardInterrupt):
        net.save_hdf5(str(target))
    assert calls["n"] == 3
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_snapshot_leaves_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_tiny_solver_files(tmp_path, 'snapshot: 2\nsnapshot_prefix: "snap"\n')
    solver = recaffe.get_solver("solver.prototxt")
    solver.step(1)
    monkeypatch.setattr("recaffe.io.atomic.os.fsync", _eio)
    with pytest.raises(RecaffeError, match=r"snap_iter_1\.caffemodel|snapshot"):
        solver.snapshot()
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "net.prototxt",
        "solver.prototxt",
    ]


# -- HDF5Data sources ------------------------------------------------------------------
def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            if isinstance(v, str) and v == "group":
                f.create_group(k)
            else:
                f[k] = v


def _src_missing_list(d):
    return "absent_list.txt"


def _src_missing_h5(d):
    (d / "list.txt").write_text("absent.h5\n")
    return "list.txt"


def _src_empty_list(d):
    (d / "list.txt").write_text("\n# only a comment\n")
    return "list.txt"


def _src_corrupt_h5(d):
    (d / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 10)
    (d / "list.txt").write_text("bad.h5\n")
    return "list.txt"


def _src_not_h5(d):
    (d / "bad.h5").write_text("hello")
    (d / "list.txt").write_text("bad.h5\n")
    return "list.txt"


def _src_no_label(d):
    _h5(d / "a.h5", data=np.zeros((4, 3), np.float32))
    (d / "list.txt").write_text("a.h5\n")
    return "list.txt"


def _src_rows(d):
    _h5(d / "a.h5", data=np.zeros((4, 3), np.float32), label=np.zeros(3, np.float32))
    (d / "list.txt").write_text("a.h5\n")
    return "list.txt"


def _src_strings(d):
    _h5(d / "a.h5", data=np.array([b"ab", b"cd"]), label=np.zeros(2, np.float32))
    (d / "list.txt").write_text("a.h5\n")
    return "list.txt"


def _src_group(d):
    _h5(d / "a.h5", data="group", label=np.zeros(2, np.float32))
    (d / "list.txt").write_text("a.h5\n")
    return "list.txt"


def _src_scalar(d):
    _h5(d / "a.h5", data=np.float32(3), label=np.zeros(2, np.float32))
    (d / "list.txt").write_text("a.h5\n")
    return "list.txt"


def _src_shape_change(d):
    _h5(d / "a.h5", data=np.zeros((2, 3), np.float32), label=np.zeros(2, np.float32))
    _h5(d / "b.h5", data=np.zeros((2, 5), np.float32), label=np.zeros(2, np.float32))
    (d / "list.txt").write_text("a.h5\nb.h5\n")
    return "list.txt"


HDF5_CASES = [
    pytest.param(
        _src_missing_list,
        r"^HDF5Data layer 'h': cannot open source list file "
        r"'absent_list\.txt' \(No such file",
        id="missing-list",
    ),
    pytest.param(
        _src_missing_h5,
        r"^HDF5Data layer 'h': HDF5 file '.*absent\.h5' listed "
        r"in 'list\.txt' does not exist",
        id="missing-h5",
    ),
    pytest.param(
        _src_empty_list,
        r"^HDF5Data layer 'h': source list file 'list\.txt' "
        r"lists no files",
        id="empty-list",
    ),
    pytest.param(
        _src_corrupt_h5,
        r"^HDF5Data layer 'h': cannot read HDF5 file "
        r"'.*bad\.h5'",
        id="corrupt-h5",
    ),
    pytest.param(
        _src_not_h5,
        r"^HDF5Data layer 'h': cannot read HDF5 file '.*bad\.h5' "
        r".*signature",
        id="not-h5",
    ),
    pytest.param(
        _src_no_label,
        r"^HDF5Data layer 'h': HDF5 file '.*a\.h5' has no "
        r"dataset 'label' \(it has: data\)",
        id="no-label-dataset",
    ),
    pytest.param(
        _src_rows,
        r"^HDF5Data layer 'h': datasets in HDF5 file '.*a\.h5' must "
        r"have the same number of rows: 'data' has 4, 'label' has 3",
        id="rows",
    ),
    pytest.param(
        _src_strings,
        r"^HDF5Data layer 'h': dataset 'data' in '.*a\.h5' has "
        r"non-numeric type",
        id="string-dataset",
    ),
    pytest.param(
        _src_group,
        r"^HDF5Data layer 'h': 'data' in HDF5 file '.*a\.h5' is a "
        r"group, not a dataset",
        id="group-not-dataset",
    ),
    pytest.param(
        _src_scalar,
        r"^HDF5Data layer 'h': dataset 'data' in '.*a\.h5' is a "
        r"scalar",
        id="scalar-dataset",
    ),
    pytest.param(
        _src_shape_change,
        r"^HDF5Data layer 'h': dataset 'data' in '.*b\.h5' "
        r"has rows of shape \(5,\), earlier files had \(3,\)",
        id="shape-change",
    ),
]


@pytest.mark.parametrize("make, pattern", HDF5_CASES)
def test_malformed_hdf5_source(tmp_path, monkeypatch, make, pattern):
    monkeypatch.chdir(tmp_path)
    source = make(tmp_path)
    text = (
        f'layer {{ name: "h" type: "HDF5Data" top: "data" top: "label" '
        f'hdf5_data_param {{ source: "{source}" batch_size: 2 }} }}'
    )
    with pytest.raises(DataError) as info:
        net = Net(parse_prototxt(text, caffe_pb2.NetParameter), TRAIN)
        for _ in range(4):
            net.forward()
    assert re.search(pattern, str(info.value)), str(info.value)


# -- solver files ----------------------------------------------------------------------
TINY_NET = """name: "tiny"
layer { name: "d" type: "DummyData" top: "x" top: "t"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 }
    data_filler { type: "constant" value: 1 }
    data_filler { type: "constant" value: 0.5 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param { num_output: 2 weight_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""
SOLVER_BASE = 'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 4\n'


def _write_tiny_solver_files(d: Path, extra: str = "", net: str = TINY_NET) -> None:
    (d / "net.prototxt").write_text(net)
    (d / "solver.prototxt").write_text(SOLVER_BASE + extra)


SOLVER_CASES = [
    pytest.param(
        SOLVER_BASE + 'type: "SGDD"\n',
        SolverError,
        r"^solver\.prototxt: unknown solver type 'SGDD'; known types: SGD",
        id="unknown-type",
    ),
    pytest.param(
        SOLVER_BASE.replace('"fixed"', '"fixd"'),
        SolverError,
        r"^solver file 'solver\.prototxt': field 'lr_policy': 'fixd'; allowed: "
        r"fixed, step, exp, inv, multistep, poly, sigmoid$",
        id="unknown-lr-policy",
    ),
    pytest.param(
        SOLVER_BASE.replace('"fixed"', '"step"') + "gamma: 0.1\n",
        SolverError,
        r"^solver file 'solver\.prototxt': field 'stepsize': lr_policy 'step' needs "
        r"stepsize \(it needs gamma, stepsize\)",
        id="step-without-stepsize",
    ),
    pytest.param(
        'base_lr: 0.1\nlr_policy: "fixed"\n',
        SolverError,
        r"SolverParameter must specify a train net using one of these fields: "
        r"net, net_param, train_net, train_net_param",
        id="missing-net",
    ),
    pytest.param(
        SOLVER_BASE + 'train_net: "net.prototxt"\n',
        SolverError,
        r"must not contain more than one of these fields",
        id="two-train-nets",
    ),
    pytest.param(
        SOLVER_BASE.replace('"net.prototxt"', '"absent.prototxt"'),
        PrototxtError,
        r"^absent\.prototxt: could not open file \(No such file",
        id="net-missing",
    ),
    pytest.param(
        SOLVER_BASE + "momentun: 0.9\n",
        PrototxtError,
        r"^solver\.prototxt:5:1: .*no field named \"momentun\".*did you mean "
        r"'momentum'",
        id="unknown-field",
    ),
    pytest.param(
        SOLVER_BASE + "momentum 0.9 {\n",
        PrototxtError,
        r"^solver\.prototxt:5:\d+: .*Expected \":\"",
        id="syntax",
    ),
    pytest.param(
        SOLVER_BASE + "solver_mode: GPUU\n",
        PrototxtError,
        r"^solver\.prototxt:5:\d+: .*GPUU.*did you mean 'GPU'",
        id="unknown-enum",
    ),
    pytest.param(
        SOLVER_BASE + 'snapshot: 2\nsnapshot_prefix: "/nonexistent/dir/x"\n',
        SolverError,
        r"field 'snapshot_prefix': '/nonexistent/dir/x': folder '/nonexistent/dir' "
        r"does not exist",
        id="snapshot-dir-missing",
    ),
    pytest.param(
        SOLVER_BASE + 'weight_decay: 0.1\nregularization_type: "L3"\n',
        SolverError,
        r"field 'regularization_type': 'L3'; allowed: L1, L2",
        id="regularization",
    ),
    pytest.param(
        SOLVER_BASE + 'type: "RMSProp"\nrms_decay: 1.5\n',
        SolverError,
        r"rms_decay should lie between 0 and 1",
        id="rms-decay",
    ),
    pytest.param(
        SOLVER_BASE + "average_loss: 0\n",
        SolverError,
        r"field 'average_loss': must be >= 1, got 0",
        id="average-loss",
    ),
    pytest.param(
        SOLVER_BASE + "test_iter: 2\ntest_interval: 0\n",
        SolverError,
        r"test net\(s\) need test_interval > 0, got 0",
        id="test-interval",
    ),
    pytest.param(
        SOLVER_BASE + 'test_net: "net.prototxt"\n',
        SolverError,
        r"field 'test_iter': one value per test net needed: 0 value\(s\) for 1 "
        r"test_net",
        id="test-iter-count",
    ),
    pytest.param(
        SOLVER_BASE + 'weights: "absent.caffemodel"\n',
        WeightsError,
        r"^absent\.caffemodel: could not open weights file",
        id="weights-missing",
    ),
]


@pytest.mark.parametrize("text, exc, pattern", SOLVER_CASES)
def test_malformed_solver(tmp_path, monkeypatch, text, exc, pattern):
    monkeypatch.chdir(tmp_path)
    _write_tiny_solver_files(tmp_path)
    (tmp_path / "solver.prototxt").write_text(text)
    with pytest.raises(exc) as info:
        solver = recaffe.get_solver("solver.prototxt")
        solver.step(2)
    assert re.search(pattern, str(info.value)), str(info.value)


def test_solver_file_missing(tmp_path):
    path = tmp_path / "absent.prototxt"
    with pytest.raises(
        PrototxtError, match=rf"^{re.escape(str(path))}: could not open"
    ):
        recaffe.get_solver(str(path))


def test_solver_net_with_bad_layer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_tiny_solver_files(
        tmp_path, net=TINY_NET.replace("num_output: 2", "num_output: 0")
    )
    with pytest.raises(LayerSetupError, match=r"^InnerProduct layer 'ip': num_output"):
        recaffe.get_solver("solver.prototxt")


@pytest.mark.parametrize(
    "content, pattern",
    [
        pytest.param(
            b"\x08\x96\x01\xff\xff", r"not a valid binary SolverState", id="garbage"
        ),
        pytest.param(None, r"solver state file not found", id="missing"),
    ],
)
def test_malformed_solverstate(tmp_path, monkeypatch, content, pattern):
    monkeypatch.chdir(tmp_path)
    _write_tiny_solver_files(tmp_path)
    if content is not None:
        (tmp_path / "s.solverstate").write_bytes(content)
    solver = recaffe.get_solver("solver.prototxt")
    with pytest.raises(SolverError, match=rf"^s\.solverstate: .*{pattern}"):
        solver.restore("s.solverstate")


def test_solverstate_of_other_solver_type(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_tiny_solver_files(tmp_path, "momentum: 0.9\n")
    sgd = recaffe.get_solver("solver.prototxt")
    sgd.step(1)
    state = sgd.snapshot()
    (tmp_path / "solver.prototxt").write_text(SOLVER_BASE + 'type: "Adam"\n')
    adam = recaffe.get_solver("solver.prototxt")
    with pytest.raises(
        SolverError,
        match=r"the state holds 2 history blobs, but a Adam "
        r"solver for this net keeps 4",
    ):
        adam.restore(state)


# -- command line ----------------------------------------------------------------------
def _cli(args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return subprocess.run(
        [sys.executable, "-m", "recaffe", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


CLI_CASES = [
    pytest.param(
        ["train", "-solver", "missing.prototxt"],
        r"missing\.prototxt: could not open file \(No such file",
        id="train-missing",
    ),
    pytest.param(
        ["train", "-solver", "bad_solver.prototxt"],
        r"bad_solver\.prototxt:5:1: .*did you mean 'momentum'",
        id="train-bad-solver",
    ),
    pytest.param(
        ["train", "-solver", "solver_badnet.prototxt"],
        r"bad_net\.prototxt:1:\d+: .*did you mean 'type'",
        id="train-bad-net",
    ),
    pytest.param(
        ["train", "-solver", "solver.prototxt", "-snapshot", "x.solverstate"],
        r"x\.solverstate: solver state file not found",
        id="train-bad-snapshot",
    ),
    pytest.param(
        ["train", "-solver", "solver.prototxt", "-weights", "x.caffemodel"],
        r"x\.caffemodel: could not open weights file",
        id="train-bad-weights",
    ),
    pytest.param(
        ["train"],
        r"Need a solver definition to train \(-solver\)",
        id="train-no-solver",
    ),
    pytest.param(
        ["train", "-solver", "solver.prototxt", "-bogus", "1"],
        r"unrecognized arguments: --bogus 1",
        id="train-bad-flag",
    ),
    pytest.param(
        ["test", "-model", "bad_net.prototxt", "-weights", "w.caffemodel"],
        r"bad_net\.prototxt:1:\d+: .*did you mean 'type'",
        id="test-bad-model",
    ),
    pytest.param(
        ["test", "-model", "missing.prototxt", "-weights", "w.caffemodel"],
        r"missing\.prototxt",
        id="test-missing-model",
    ),
    pytest.param(
        ["test", "-model", "net.prototxt", "-weights", "garbage.caffemodel"],
        r"garbage\.caffemodel: not a valid binary NetParameter",
        id="test-garbage-weights",
    ),
    pytest.param(
        ["time", "-model", "bad_net.prototxt"],
        r"bad_net\.prototxt:1:\d+: .*did you mean 'type'",
        id="time-bad-model",
    ),
    pytest.param(
        ["time", "-model", "shape_net.prototxt"],
        r"Eltwise layer 'e': bottom\[1\] 'b' must have the shape of bottom\[0\]",
        id="time-shape-error",
    ),
]


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    _write_tiny_solver_files(d)
    (d / "bad_solver.prototxt").write_text(SOLVER_BASE + "momentun: 0.9\n")
    (d / "bad_net.prototxt").write_text('layer { name: "a" typ: "Input" }\n')
    (d / "solver_badnet.prototxt").write_text(
        SOLVER_BASE.replace("net.prototxt", "bad_net.prototxt")
    )
    (d / "shape_net.prototxt").write_text(
        inp("a", 2, 3) + inp("b", 2, 4) + lay("e", "Eltwise", ["a", "b"])
    )
    (d / "garbage.caffemodel").write_bytes(b"\xff" * 64)
    return d


@pytest.mark.parametrize("args, pattern", CLI_CASES)
def test_cli_prints_one_error_line(cli_dir, args, pattern):
    res = _cli(args, cli_dir)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("recaffe: error:")]
    assert len(errors) == 1, res.stderr
    # The error is the last thing printed, and nothing else is unprefixed noise.
    assert res.stderr.rstrip("\n").splitlines()[-1] == errors[0]
    assert re.search(pattern, errors[0]), errors[0]
    assert not list(cli_dir.glob("*.tmp")) and not list(cli_dir.glob(".*.tmp"))


def test_cli_missing_solver_exact_output(tmp_path):
    res = _cli(["train", "-solver", "missing.prototxt"], tmp_path)
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr == (
        "recaffe: error: missing.prototxt: could not open file "
        "(No such file or directory)\n"
    )


@pytest.mark.parametrize("filler", ["xavier", "msra", "gaussian", "constant"])
def test_empty_param_blob_builds(filler):
    """A bottom with 0 channels gives 0-element weights: Caffe fills nothing and
    builds the net; recaffe must build it too (or say why), never divide by 0."""
    text = inp("a", 2, 0, 5, 5) + lay(
        "conv",
        "Convolution",
        ["a"],
        None,
        f"convolution_param {{ num_output: 4 kernel_size: 3 pad: 1 "
        f'weight_filler {{ type: "{filler}" }} }}',
    )
    net = Net(parse_prototxt(text, caffe_pb2.NetParameter), TRAIN)
    assert net.params["conv"][0].data.shape == (4, 0, 3, 3)
