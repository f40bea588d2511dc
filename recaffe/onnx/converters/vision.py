"""Convolution, Deconvolution, Pooling, LRN and BatchNorm.

Pooling reproduces Caffe's output size (rounded up, clipped so that the last
window starts inside the padded image) and its AVE divisor (the window area
clipped to the padded image, padding included) explicitly: the input is padded
to cover every window, pooled without ONNX padding, and AVE is rescaled by a
constant per-output map. No runtime convention (``ceil_mode``,
``count_include_pad``) is relied on.
"""

from __future__ import annotations

import numpy as np

from recaffe.onnx.registry import converter
from recaffe.proto import caffe_pb2

PP = caffe_pb2.PoolingParameter
LRNP = caffe_pb2.LRNParameter
FLT_LOWEST = float(np.finfo(np.float32).min)


def _conv_attrs(layer) -> dict:
    return {
        "kernel_shape": [int(k) for k in layer.kernel],
        "strides": [int(s) for s in layer.stride],
        "dilations": [int(d) for d in layer.dilation],
        "pads": [int(p) for p in layer.pad] * 2,
        "group": int(layer.group),
    }


@converter("Convolution", "Deconvolution")
def convolution(g, v):
    layer = v.layer
    if layer.channel_axis != 1:
        raise v.error(f"convolution_param.axis must be 1 for ONNX, got "
                      f"{layer.channel_axis}")
    op = "ConvTranspose" if v.type == "Deconvolution" else "Conv"
    # Caffe's weight layouts are ONNX's: Conv (M, C/group, k...), ConvTranspose
    # (C, M/group, k...); Caffe's deconvolution output size
    # s (i - 1) + d (k - 1) + 1 - 2 p is ConvTranspose's with symmetric pads.
    inputs = [g.param(v, 0)]
    if layer.bias_term:
        inputs.append(g.param(v, 1))
    for x, y in zip(v.bottoms, v.tops, strict=True):
        g.node(op, [x, *inputs], y, **_conv_attrs(layer))


def _pool_divisor(in_hw, pooled, kernel, stride, pad) -> np.ndarray:
    """Caffe's AVE divisor per output cell (the window clipped to H + pad)."""
    areas = []
    for size, n_out, k, s, p in zip(in_hw, pooled, kernel, stride, pad, strict=True):
        start = np.arange(n_out) * s - p
        end = np.minimum(start + k, size + p)
        areas.append((end - start).astype(np.float64))
    return np.outer(areas[0], areas[1])


@converter("Pooling")
def pooling(g, v):
    layer = v.layer
    if len(v.tops) > 1:
        raise v.error("the MAX pooling mask top has no ONNX equivalent")
    x, y = v.bottoms[0], v.tops[0]
    if layer.method == PP.STOCHASTIC:
        raise v.error("STOCHASTIC pooling is not exported")
    if layer.global_pooling:
        op = "GlobalMaxPool" if layer.method == PP.MAX else "GlobalAveragePool"
        g.node(op, [x], y)
        return
    n_in = v.bottom_shapes[0]
    if len(n_in) != 4:
        raise v.error(f"expected a 4-D bottom, got shape {n_in}")
    hw = n_in[2:]
    pooled = v.top_shapes[0][2:]
    kernel, stride, pad = layer.kernel, layer.stride, layer.pad
    ends = [max((o - 1) * s + k - i - p, 0)
            for i, o, k, s, p in zip(hw, pooled, kernel, stride, pad, strict=True)]
    is_max = layer.method == PP.MAX
    padded = x
    if any(pad) or any(ends):
        fill = g.scalar(FLT_LOWEST if is_max else 0.0)
        pads = g.ints([0, 0, pad[0], pad[1], 0, 0, ends[0], ends[1]], "pads")
        padded = g.node("Pad", [x, pads, fill], hint="padded", mode="constant")
    attrs = {"kernel_shape": list(kernel), "strides": list(stride)}
    got = [(i + p + e - k) // s + 1
           for i, p, e, k, s in zip(hw, pad, ends, kernel, stride, strict=True)]
    # Padding to cover the last window can leave room for one more; keep
    # Caffe's count.
    crop = tuple(got) != tuple(pooled)
    target = None if crop else y
    if is_max:
        out = g.node("MaxPool", [padded], target, **attrs)
    else:
        mean = g.node("AveragePool", [padded], **attrs)
        scale = kernel[0] * kernel[1] / _pool_divisor(hw, got, kernel, stride, pad)
        if np.all(scale == 1.0):
            out = mean if crop else g.identity(mean, y)
        else:
            out = g.node("Mul", [mean, g.const(scale, "pool_rescale")], target)
    if crop:
        g.node("Slice", [out, g.ints([0, 0]), g.ints(pooled), g.ints([2, 3])], y)


@converter("LRN")
def lrn(g, v):
    layer, x, y = v.layer, v.bottoms[0], v.tops[0]
    if layer.region == LRNP.ACROSS_CHANNELS:
        # ONNX's LRN is Caffe's: x / (k + alpha/n sum_window x^2)^beta with the
        # window centred on the channel.
        g.node("LRN", [x], y, size=int(layer.size), alpha=float(layer.alpha),
               beta=float(layer.beta), bias=float(layer.k))
        return
    # WITHIN_CHANNEL: 1 + alpha * (AVE pooling of x^2, pad (n-1)/2, stride 1).
    # With these settings every Caffe window has area n*n (padding counted).
    n = int(layer.size)
    p = (n - 1) // 2
    sq = g.node("Mul", [x, x], hint="sq")
    avg = g.node("AveragePool", [sq], kernel_shape=[n, n], strides=[1, 1],
                 pads=[p, p, p, p], count_include_pad=1)
    base = g.node("Add", [g.node("Mul", [avg, g.scalar(layer.alpha)]),
                          g.scalar(1.0)])
    scale = g.node("Pow", [base, g.scalar(-layer.beta)])
    g.node("Mul", [x, scale], y)


@converter("BatchNorm")
def batch_norm(g, v):
    layer, x, y = v.layer, v.bottoms[0], v.tops[0]
    shape = v.bottom_shapes[0]
    nax = len(shape)
    bshape = [shape[1]] + [1] * (nax - 2) if nax > 1 else [1]
    if layer.use_global_stats:
        s = float(np.asarray(layer.blobs[2].data).reshape(-1)[0])
        factor = 0.0 if s == 0 else 1.0 / s
        mean = g.node("Mul", [g.param_view(v, 0, shape=bshape), g.scalar(factor)],
                      hint="bn_mean")
        var = g.node("Mul", [g.param_view(v, 1, shape=bshape), g.scalar(factor)],
                     hint="bn_var")
        centred = g.node("Sub", [x, mean])
    else:
        axes = g.ints([a for a in range(nax) if a != 1], "axes")
        mean = g.node("ReduceMean", [x, axes], keepdims=1)
        centred = g.node("Sub", [x, mean])
        var = g.node("ReduceMean", [g.node("Mul", [centred, centred]), axes],
                     keepdims=1)
    std = g.node("Sqrt", [g.node("Add", [var, g.scalar(layer.eps)])])
    g.node("Div", [centred, std], y)
