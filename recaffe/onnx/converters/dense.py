"""InnerProduct, Embed, Scale, Bias, Eltwise, Softmax, Reduction and ArgMax."""

from __future__ import annotations

import math

from recaffe.onnx.registry import converter
from recaffe.proto import caffe_pb2

EP = caffe_pb2.EltwiseParameter
RP = caffe_pb2.ReductionParameter


@converter("InnerProduct")
def inner_product(g, v):
    layer, x, y = v.layer, v.bottoms[0], v.tops[0]
    shape = v.bottom_shapes[0]
    axis = layer.axis
    k = math.prod(shape[axis:])
    if axis == 1:
        # (N, K) @ W^T + b as one Gemm; W (num_output, K), or (K, num_output)
        # with transpose: true.
        flat = g.node("Flatten", [x], axis=1, hint="flat")
        inputs = [flat, g.param(v, 0)]
        if layer.bias_term:
            inputs.append(g.param(v, 1))
        g.node("Gemm", inputs, y, transB=0 if layer.transpose else 1)
        return
    # Any other axis: the leading axes stay, the rest is one K-vector.
    if axis == 0:
        flat = g.node("Reshape", [x, g.ints([1, k])])
    else:
        flat = g.node("Reshape", [x, g.ints([0] * axis + [k])])
    w = g.param(v, 0) if layer.transpose else g.param_view(v, 0, transpose=True)
    out = g.node("MatMul", [flat, w])
    if layer.bias_term:
        out = g.node("Add", [out, g.param(v, 1)])
    if axis == 0:
        g.node("Reshape", [out, g.ints(v.top_shapes[0])], y)
    else:
        g.identity(out, y)


@converter("Embed")
def embed(g, v):
    # Caffe reads the ids as floats and truncates them to integers.
    ids = g.node("Cast", [v.bottoms[0]], to=g.onnx.TensorProto.INT64, hint="ids")
    rows = g.node("Gather", [g.param(v, 0), ids], None if v.layer.bias_term
                  else v.tops[0], axis=0)
    if v.layer.bias_term:
        g.node("Add", [rows, g.param(v, 1)], v.tops[0])


def _broadcast_shape(pshape, nax_x: int, axis: int) -> list[int]:
    """A parameter of shape ``pshape`` placed at ``axis`` of an ``nax_x``-axis
    blob, padded with trailing 1s so that ONNX broadcasting aligns it."""
    return list(pshape) + [1] * (nax_x - axis - len(pshape))


def _axis(v, field: int, pshape) -> int:
    if len(pshape) == 0:
        return 0
    return v.layer.canonical_axis(field, len(v.bottom_shapes[0]))


def _operand(g, v, pshape, axis: int, param_index: int | None, bottom_index=None):
    """The scale/bias operand reshaped for broadcasting against bottom[0]."""
    nax = len(v.bottom_shapes[0])
    target = _broadcast_shape(pshape, nax, axis)
    if param_index is not None:
        return g.param_view(v, param_index,
                            shape=target if target != list(pshape) else None)
    src = v.bottoms[bottom_index]
    if target == list(pshape):
        return src
    return g.reshape(src, pshape, target, hint="bcast")


@converter("Scale")
def scale(g, v):
    layer = v.layer
    p = v.param.scale_param
    learned = layer.learned_scale
    pshape = tuple(layer.blobs[0].shape) if learned else v.bottom_shapes[1]
    axis = _axis(v, p.axis, pshape)
    s = _operand(g, v, pshape, axis, 0 if learned else None, 1)
    out = v.tops[0]
    if layer.bias_term:
        b = _operand(g, v, pshape, axis, len(layer.blobs) - 1)
        g.node("Add", [g.node("Mul", [v.bottoms[0], s]), b], out)
    else:
        g.node("Mul", [v.bottoms[0], s], out)


@converter("Bias")
def bias(g, v):
    layer = v.layer
    p = v.param.bias_param
    learned = len(v.bottoms) == 1
    pshape = tuple(layer.blobs[0].shape) if learned else v.bottom_shapes[1]
    axis = _axis(v, p.axis, pshape)
    b = _operand(g, v, pshape, axis, 0 if learned else None, 1)
    g.node("Add", [v.bottoms[0], b], v.tops[0])


@converter("Eltwise")
def eltwise(g, v):
    layer, xs, y = v.layer, v.bottoms, v.tops[0]
    if layer.op == EP.PROD:
        acc = xs[0]
        for i, x in enumerate(xs[1:], start=1):
            acc = g.node("Mul", [acc, x], y if i == len(xs) - 1 else None)
    elif layer.op == EP.MAX:
        g.node("Max", list(xs), y)
    else:
        terms = [x if c == 1 else g.node("Mul", [x, g.scalar(c)], hint="coeff")
                 for x, c in zip(xs, layer.coeffs, strict=True)]
        g.node("Sum", terms, y)


@converter("Softmax")
def softmax(g, v):
    g.node("Softmax", [v.bottoms[0]], v.tops[0], axis=int(v.layer.axis))


_REDUCE = {RP.SUM: "ReduceSum", RP.ASUM: "ReduceL1", RP.SUMSQ: "ReduceSumSquare",
           RP.MEAN: "ReduceSum"}


@converter("Reduction")
def reduction(g, v):
    layer = v.layer
    axis = layer.axis
    flat = g.node("Reshape", [v.bottoms[0], g.ints([0] * axis + [-1])])
    # The layer's coeff already includes MEAN's 1 / count.
    red = g.node(_REDUCE[layer.op], [flat, g.ints([axis], "axes")], keepdims=0)
    if layer.coeff == 1:
        g.identity(red, v.tops[0])
    else:
        g.node("Mul", [red, g.scalar(layer.coeff)], v.tops[0])


@converter("ArgMax")
def argmax(g, v):
    layer, x, y = v.layer, v.bottoms[0], v.tops[0]
    k = g.ints([layer.top_k], "k")
    as_float = g.onnx.TensorProto.FLOAT
    if layer.has_axis:
        vals, idx = g.node("TopK", [x, k], nout=2, axis=int(layer.axis), largest=1,
                           sorted=1)
        if layer.out_max_val:
            g.identity(vals, y)
        else:
            g.node("Cast", [idx], y, to=as_float)
        return
    flat = g.node("Reshape", [x, g.ints([0, -1])])
    vals, idx = g.node("TopK", [flat, k], nout=2, axis=1, largest=1, sorted=1)
    idx = g.node("Cast", [idx], to=as_float)
    if layer.out_max_val:
        both = g.node("Concat", [g.unsqueeze(idx, [1]), g.unsqueeze(vals, [1])],
                      axis=1)
    else:
        both = g.unsqueeze(idx, [1])
    top = v.top_shapes[0]
    if len(top) == 3:
        g.identity(both, y)
    else:
        g.reshape(both, (top[0], top[1], top[2]), top, output=y)
