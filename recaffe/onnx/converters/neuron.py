"""Element-wise layers: the neurons, Dropout (identity at inference) and Split."""

from __future__ import annotations

from recaffe.onnx.registry import converter

_UNARY = {"Sigmoid": "Sigmoid", "TanH": "Tanh", "AbsVal": "Abs",
          # Caffe's BNLL, log(1 + e^x), computed stably; ONNX Softplus is the
          # same function.
          "BNLL": "Softplus"}


@converter(*_UNARY)
def unary(g, v):
    g.node(_UNARY[v.type], [v.bottoms[0]], v.tops[0])


@converter("ReLU")
def relu(g, v):
    slope = v.layer.negative_slope
    if slope == 0:
        g.node("Relu", [v.bottoms[0]], v.tops[0])
    else:
        g.node("LeakyRelu", [v.bottoms[0]], v.tops[0], alpha=float(slope))


@converter("PReLU")
def prelu(g, v):
    # Slopes (C,) along axis 1 (or one shared slope): broadcast as (C, 1, ..., 1).
    nax = len(v.bottom_shapes[0])
    shape = None
    if not v.layer.channel_shared and nax > 2:
        shape = [v.layer.channels] + [1] * (nax - 2)
    g.node("PRelu", [v.bottoms[0], g.param_view(v, 0, shape=shape)], v.tops[0])


@converter("ELU")
def elu(g, v):
    g.node("Elu", [v.bottoms[0]], v.tops[0], alpha=float(v.layer.alpha))


@converter("Swish")
def swish(g, v):
    x = v.bottoms[0]
    bx = x if v.layer.beta == 1 else g.node("Mul", [x, g.scalar(v.layer.beta)])
    g.node("Mul", [x, g.node("Sigmoid", [bx])], v.tops[0])


def _affine(g, x, scale: float, shift: float) -> str:
    if scale != 1:
        x = g.node("Mul", [x, g.scalar(scale)], hint="scaled")
    if shift != 0:
        x = g.node("Add", [x, g.scalar(shift)], hint="shifted")
    return x


@converter("Power")
def power(g, v):
    layer, x, out = v.layer, v.bottoms[0], v.tops[0]
    if layer.power == 0:
        # Caffe writes 1 everywhere (0^0 included).
        zero = g.node("Mul", [x, g.scalar(0.0)])
        g.node("Add", [zero, g.scalar(1.0)], out)
        return
    z = _affine(g, x, layer.scale, layer.shift)
    if layer.power == 1:
        g.identity(z, out)
    else:
        g.node("Pow", [z, g.scalar(layer.power)], out)


@converter("Exp")
def exp(g, v):
    # y = base^(shift + scale x) = outer * e^(inner x), as the layer computes it.
    layer = v.layer
    z = _affine(g, v.bottoms[0], layer.inner_scale, 0.0)
    if layer.outer_scale == 1:
        g.node("Exp", [z], v.tops[0])
    else:
        g.node("Mul", [g.node("Exp", [z]), g.scalar(layer.outer_scale)], v.tops[0])


@converter("Log")
def log(g, v):
    layer = v.layer
    z = _affine(g, v.bottoms[0], layer.scale, layer.shift)
    if layer.base_scale == 1:
        g.node("Log", [z], v.tops[0])
    else:
        g.node("Mul", [g.node("Log", [z]), g.scalar(layer.base_scale)], v.tops[0])


@converter("Threshold")
def threshold(g, v):
    above = g.node("Greater", [v.bottoms[0], g.scalar(v.layer.threshold)])
    g.node("Cast", [above], v.tops[0], to=g.onnx.TensorProto.FLOAT)


@converter("Clip")
def clip(g, v):
    g.node("Clip", [v.bottoms[0], g.scalar(v.layer.min), g.scalar(v.layer.max)],
           v.tops[0])


@converter("Dropout")
def dropout(g, v):
    # Inference: Caffe's dropout scales at training time, so TEST is the identity.
    g.identity(v.bottoms[0], v.tops[0])


@converter("Split")
def split(g, v):
    for t in v.tops:
        g.identity(v.bottoms[0], t)
