"""Property-based fuzzing of recaffe's input boundaries.

Every reader and builder must answer arbitrary input either with a result or
with a typed recaffe error -- never with a bare Python/numpy exception:

- the prototxt reader, on random text mutations of a valid net;
- the weights reader, on random bytes and truncations of a valid .caffemodel
  (and a successful load never changes a parameter's shape or dtype);
- the Net builder, on mutated but parseable NetParameters;
- NetSpec, on random layer graphs (to_proto -> text -> parse gives the same
  message back).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import descriptor
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from recaffe import backend
from recaffe.errors import PrototxtError, RecaffeError, WeightsError
from recaffe.io.prototxt import parse_prototxt
from recaffe.net import TRAIN, Net
from recaffe.net_spec import NetSpec
from recaffe.net_spec import layers as L
from recaffe.proto import caffe_pb2

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

VALID_NET = """name: "fuzz"
layer {
  name: "data"
  type: "Input"
  top: "data"
  top: "label"
  input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } shape { dim: 2 } }
}
layer {
  name: "conv"
  type: "Convolution"
  bottom: "data"
  top: "conv"
  param { lr_mult: 1 }
  param { lr_mult: 2 }
  convolution_param {
    num_output: 4
    kernel_size: 3
    pad: 1
    stride: 1
    weight_filler { type: "xavier" }
    bias_filler { type: "constant" value: 0.1 }
  }
}
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer {
  name: "pool"
  type: "Pooling"
  bottom: "conv"
  top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 }
}
layer {
  name: "ip"
  type: "InnerProduct"
  bottom: "pool"
  top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } }
}
layer {
  name: "slice"
  type: "Slice"
  bottom: "ip"
  top: "s1"
  top: "s2"
  slice_param { axis: 1 slice_point: 1 }
}
layer { name: "cat" type: "Concat" bottom: "s2" bottom: "s1" top: "cat" }
layer {
  name: "scale"
  type: "Scale"
  bottom: "cat"
  top: "scaled"
  scale_param { bias_term: true }
}
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "scaled" bottom: "label"
  top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "scaled" bottom: "label" top: "acc" }
"""


@pytest.fixture(autouse=True)
def _seed():
    backend.set_random_seed(1701)


def _net_param() -> caffe_pb2.NetParameter:
    return parse_prototxt(VALID_NET, caffe_pb2.NetParameter, filename="fuzz.prototxt")


# -- 1. prototxt reader ----------------------------------------------------------

_ALPHABET = st.sampled_from(
    list("{}:\"'#[],.-_\n\t 0123456789eE")
    + [
        "layer",
        "name",
        "type",
        "top",
        "bottom",
        "dim",
        "shape",
        "param",
        "{ }",
        "\\",
        "inf",
        "nan",
        "true",
        "MAX",
        "\x00",
        "\xff",
        "é",
        "0x1F",
        "1e400",
        "-",
    ]
)


@st.composite
def _mutated_text(draw):
    text = VALID_NET
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 12)))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(_ALPHABET) + text[i:]
        elif op == "replace":
            text = text[:i] + draw(_ALPHABET) + text[j:]
        else:
            text = text[:i] + text[i:j] + text[i:]
    return text


@FUZZ
@given(text=_mutated_text(), as_bytes=st.booleans())
def test_prototxt_reader_only_raises_prototxt_error(text, as_bytes):
    data = text.encode("utf-8", "surrogatepass") if as_bytes else text
    try:
        msg = parse_prototxt(data, caffe_pb2.NetParameter, filename="m.prototxt")
    except PrototxtError as exc:
        # The message always starts with the file name, and a parse error
        # that protobuf located carries line:col.
        assert str(exc).startswith("m.prototxt")
        if getattr(exc, "line", None) is not None:
            assert str(exc).startswith(f"m.prototxt:{exc.line}")
        return
    assert isinstance(msg, caffe_pb2.NetParameter)


@FUZZ
@given(data=st.binary(max_size=300))
def test_prototxt_reader_random_bytes(data):
    try:
        parse_prototxt(data, caffe_pb2.SolverParameter, filename="s.prototxt")
    except PrototxtError as exc:
        assert str(exc).startswith("s.prototxt")


# -- 2. weights reader -------------------------------------------------------------


@pytest.fixture(scope="module")
def weights_dir():
    with tempfile.TemporaryDirectory(prefix="recaffe_fuzz_") as d:
        backend.set_random_seed(3)
        net = Net(_net_param(), TRAIN)
        net.save(os.path.join(d, "good.caffemodel"))
        yield Path(d)


def _param_shapes(net):
    return [(b.shape, b.data.dtype) for layer in net.layers_list for b in layer.blobs]


@st.composite
def _mutated_weights(draw, good: bytes):
    kind = draw(st.sampled_from(["truncate", "flip", "random", "splice"]))
    if kind == "truncate":
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=600))
    data = bytearray(good)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    i = draw(st.integers(0, len(data)))
    return bytes(data[:i]) + draw(st.binary(min_size=1, max_size=40)) + bytes(data[i:])


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_weights_reader_only_raises_weights_error(weights_dir, data):
    good = (weights_dir / "good.caffemodel").read_bytes()
    blob = data.draw(_mutated_weights(good))
    path = weights_dir / "mutated.caffemodel"
    path.write_bytes(blob)
    net = Net(_net_param(), TRAIN)
    before = _param_shapes(net)
    try:
        net.copy_from(str(path))
    except WeightsError as exc:
        assert str(path) in str(exc)
        return
    # A load that succeeded must leave every parameter with its shape and dtype.
    assert _param_shapes(net) == before


def test_weights_reader_roundtrip_sanity(weights_dir):
    net = Net(_net_param(), TRAIN)
    net.copy_from(str(weights_dir / "good.caffemodel"))
    ref = caffe_pb2.NetParameter()
    ref.ParseFromString((weights_dir / "good.caffemodel").read_bytes())
    got = {lp.name: [np.asarray(b.data) for b in lp.blobs] for lp in ref.layer}
    for i, layer in enumerate(net.layers_list):
        for j, b in enumerate(layer.blobs):
            np.testing.assert_array_equal(
                b.data.reshape(-1), got[net.layer_names[i]][j]
            )


# -- 3. Net construction from mutated NetParameters ----------------------------------

_FD = descriptor.FieldDescriptor
_INT_TYPES = {
    _FD.TYPE_INT32,
    _FD.TYPE_INT64,
    _FD.TYPE_UINT32,
    _FD.TYPE_UINT64,
    _FD.TYPE_SINT32,
    _FD.TYPE_SINT64,
}
_UNSIGNED = {_FD.TYPE_UINT32, _FD.TYPE_UINT64}
_FLOAT_TYPES = {_FD.TYPE_FLOAT, _FD.TYPE_DOUBLE}
_TYPES = [
    "Input",
    "Convolution",
    "ReLU",
    "Pooling",
    "InnerProduct",
    "Slice",
    "Concat",
    "Scale",
    "SoftmaxWithLoss",
    "Accuracy",
    "Eltwise",
    "Reshape",
    "Flatten",
    "Deconvolution",
    "Crop",
    "Tile",
    "Bias",
    "Softmax",
    "Split",
    "Silence",
    "Embed",
    "EuclideanLoss",
    "Reduction",
    "ArgMax",
    "LRN",
    "PReLU",
    "Power",
    "BatchNorm",
    "MVN",
    "Dropout",
    "Threshold",
    "Sigmoid",
    "TanH",
    "Im2col",
    "Clip",
    "Log",
    "Exp",
    "ELU",
    "Swish",
    "DummyData",
    "Parameter",
]


def _scalar_fields(msg_desc):
    return [
        f
        for f in msg_desc.fields
        if f.type != _FD.TYPE_MESSAGE
        and f.type not in (_FD.TYPE_STRING, _FD.TYPE_BYTES)
    ]


def _value_for(draw, field):
    if field.type in _INT_TYPES:
        lo = 0 if field.type in _UNSIGNED else -3
        return draw(st.integers(lo, 9))
    if field.type in _FLOAT_TYPES:
        return draw(st.sampled_from([0.0, -1.0, 0.5, 1.0, 2.0, 1e-3, 7.0]))
    if field.type == _FD.TYPE_BOOL:
        return draw(st.booleans())
    if field.type == _FD.TYPE_ENUM:
        return draw(st.sampled_from([v.number for v in field.enum_type.values]))
    return None


def _set_field(msg, field, value):
    container = getattr(msg, field.name)
    if hasattr(container, "append"):
        container.append(value)
    else:
        setattr(msg, field.name, value)


@st.composite
def _mutated_net(draw):
    param = _net_param()
    layers = param.layer
    for _ in range(draw(st.integers(1, 3))):
        lp = layers[draw(st.integers(0, len(layers) - 1))]
        op = draw(
            st.sampled_from(
                [
                    "param_field",
                    "param_field",
                    "shape",
                    "bottom",
                    "top",
                    "type",
                    "delete",
                    "swap",
                    "loss_weight",
                    "propagate_down",
                    "param_spec",
                ]
            )
        )
        if op == "param_field":
            subs = [
                f
                for f in lp.DESCRIPTOR.fields
                if f.name.endswith("_param") and f.type == _FD.TYPE_MESSAGE
            ]
            sub_fd = draw(st.sampled_from(subs))
            sub = getattr(lp, sub_fd.name)
            fields = _scalar_fields(sub_fd.message_type)
            if not fields:
                continue
            field = draw(st.sampled_from(fields))
            _set_field(sub, field, _value_for(draw, field))
        elif op == "shape" and lp.type == "Input" and lp.input_param.shape:
            shape = lp.input_param.shape[0]
            i = draw(st.integers(0, len(shape.dim)))
            if i == len(shape.dim):
                shape.dim.append(draw(st.integers(0, 6)))
            else:
                shape.dim[i] = draw(st.integers(-2, 6))
        elif op == "bottom":
            names = [t for other in layers for t in other.top] + ["nowhere"]
            if lp.bottom and draw(st.booleans()):
                lp.bottom[draw(st.integers(0, len(lp.bottom) - 1))] = draw(
                    st.sampled_from(names)
                )
            elif draw(st.booleans()) and lp.bottom:
                del lp.bottom[-1]
            else:
                lp.bottom.append(draw(st.sampled_from(names)))
        elif op == "top":
            names = [t for other in layers for t in other.top]
            if lp.top and draw(st.booleans()):
                lp.top[draw(st.integers(0, len(lp.top) - 1))] = draw(
                    st.sampled_from(names)
                )
            elif lp.top and draw(st.booleans()):
                del lp.top[-1]
            else:
                lp.top.append(draw(st.sampled_from(names + ["fresh"])))
        elif op == "type":
            lp.type = draw(st.sampled_from(_TYPES + ["NoSuchType"]))
        elif op == "delete":
            del layers[draw(st.integers(0, len(layers) - 1))]
            if not layers:
                break
        elif op == "swap":
            i = draw(st.integers(0, len(layers) - 1))
            j = draw(st.integers(0, len(layers) - 1))
            a, b = caffe_pb2.LayerParameter(), caffe_pb2.LayerParameter()
            a.CopyFrom(layers[i])
            b.CopyFrom(layers[j])
            layers[i].CopyFrom(b)
            layers[j].CopyFrom(a)
        elif op == "loss_weight":
            lp.loss_weight.append(draw(st.sampled_from([0.0, 1.0, 2.0])))
        elif op == "propagate_down":
            lp.propagate_down.append(draw(st.booleans()))
        elif op == "param_spec":
            spec = lp.param.add()
            if draw(st.booleans()):
                spec.name = draw(st.sampled_from(["shared_a", "shared_b"]))
            if draw(st.booleans()):
                spec.lr_mult = draw(st.sampled_from([0.0, 1.0, 2.0]))
    # Shapes are bounded by the mutation values above; keep the net small.
    for lp in layers:
        if lp.type == "Input":
            for shape in lp.input_param.shape:
                assume(int(np.prod([max(d, 1) for d in shape.dim])) <= 4096)
    return param


@FUZZ
@given(param=_mutated_net())
def test_net_construction_only_raises_recaffe_errors(param):
    try:
        net = Net(param, TRAIN)
    except RecaffeError as exc:
        assert str(exc)
        return
    # A net that builds also runs forward, or says why it cannot.
    with contextlib.suppress(RecaffeError):
        net.forward()


# -- 4. NetSpec round trip ------------------------------------------------------------

_F32 = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)
_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


def _unary(draw, x):
    kind = draw(
        st.sampled_from(
            ["ip", "relu", "power", "sigmoid", "dropout", "scale", "inplace_relu"]
        )
    )
    if kind == "ip":
        kw = {"num_output": draw(st.integers(1, 64))}
        if draw(st.booleans()):
            kw["weight_filler"] = {"type": "gaussian", "std": draw(_F32)}
        if draw(st.booleans()):
            kw["param"] = [{"lr_mult": draw(_F32)}, {"lr_mult": 2, "decay_mult": 0}]
        return L.InnerProduct(x, **kw)
    if kind == "relu":
        return L.ReLU(x, negative_slope=draw(_F32))
    if kind == "inplace_relu":
        return L.ReLU(x, in_place=True)
    if kind == "power":
        return L.Power(x, power=draw(_F32), scale=draw(_F32), shift=draw(_F32))
    if kind == "sigmoid":
        return L.Sigmoid(x)
    if kind == "dropout":
        return L.Dropout(x, dropout_ratio=0.5, include={"phase": caffe_pb2.TRAIN})
    return L.Scale(x, scale_param={"bias_term": draw(st.booleans()), "axis": 1})


@st.composite
def _netspec(draw):
    n = NetSpec()
    dims = draw(st.lists(st.integers(1, 8), min_size=2, max_size=4))
    n.data, n.label = L.Input(ntop=2, shape=[{"dim": dims}, {"dim": dims[:1]}])
    tops = [n.data]
    for k in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["unary", "unary", "eltwise", "concat", "slice"]))
        x = draw(st.sampled_from(tops))
        if op == "unary":
            y = _unary(draw, x)
        elif op == "eltwise":
            y = L.Eltwise(
                x,
                draw(st.sampled_from(tops)),
                operation=draw(st.sampled_from([0, 1, 2])),
            )
        elif op == "concat":
            y = L.Concat(x, draw(st.sampled_from(tops)), axis=draw(st.integers(0, 1)))
        else:
            a, b = L.Slice(x, ntop=2, slice_param={"axis": 1, "slice_point": [1]})
            tops.append(a)
            y = b
        tops.append(y)
        if draw(st.booleans()):
            n[draw(_NAME) + f"_{k}"] = y
    n.loss = L.SoftmaxWithLoss(tops[-1], n.label, loss_weight=draw(_F32))
    if draw(st.booleans()):
        n.silence = L.Silence(tops[len(tops) // 2], ntop=0)
    return n


@FUZZ
@given(n=_netspec())
def test_netspec_to_proto_parses_back_equal(n):
    proto = n.to_proto()
    text = str(proto)
    back = parse_prototxt(text, caffe_pb2.NetParameter, filename="netspec.prototxt")
    assert back == proto
    assert str(back) == text
