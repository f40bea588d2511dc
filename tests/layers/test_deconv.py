import itertools

import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(1)
X = rng.standard_normal((2, 4, 3, 4))
X3 = rng.standard_normal((1, 2, 2, 3, 2))

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" }'


def rep(vals, default, nsp):
    vals = list(vals)
    if not vals:
        return (default,) * nsp
    return tuple(vals) * nsp if len(vals) == 1 else tuple(vals)


def deconv_reference(x, w, b, kernel, pad, stride, dil, group):
    """Scatter every input pixel's weighted kernel into the output, then crop."""
    n, ci = x.shape[:2]
    co = w.shape[1] * group
    full = tuple(s * (i - 1) + d * (k - 1) + 1
                 for i, s, d, k in zip(x.shape[2:], stride, dil, kernel, strict=True))
    y = np.zeros((n, co) + full)
    cig, cog = ci // group, co // group
    for pos in itertools.product(*(range(i) for i in x.shape[2:])):
        sl = tuple(slice(q * s, q * s + d * (k - 1) + 1, d)
                   for q, s, d, k in zip(pos, stride, dil, kernel, strict=True))
        for g in range(group):
            xv = x[(slice(None), slice(g * cig, (g + 1) * cig)) + pos]  # (n, cig)
            contrib = np.tensordot(xv, w[g * cig:(g + 1) * cig], axes=(1, 0))
            y[(slice(None), slice(g * cog, (g + 1) * cog)) + sl] += contrib
    crop = tuple(slice(p, f - p) for p, f in zip(pad, full, strict=True))
    y = y[(slice(None), slice(None)) + crop]
    if b is not None:
        y = y + b.reshape((1, co) + (1,) * len(kernel))
    return y


class TestDeconvolution(LayerTestCase):
    layer_type = "Deconvolution"
    cases = [
        Case(f'type: "Deconvolution" convolution_param {{ num_output: 3 kernel_size: 3 '
             f'stride: 2 pad: 1 {FILL} }}', [X]),
        Case(f'type: "Deconvolution" convolution_param {{ num_output: 2 kernel_h: 2 '
             f'kernel_w: 3 stride_h: 1 stride_w: 2 {FILL} }}', [X]),
        Case(f'type: "Deconvolution" convolution_param {{ num_output: 4 kernel_size: 3 '
             f'dilation: 2 group: 2 pad: 1 stride: 2 {FILL} }}', [X]),
        Case('type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 2 '
             'bias_term: false weight_filler { type: "gaussian" } }', [X3]),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.convolution_param
        x = bottoms[0]
        nsp = x.ndim - 2
        if p.HasField("kernel_h"):
            kernel, stride = (p.kernel_h, p.kernel_w), (p.stride_h, p.stride_w)
        else:
            kernel, stride = rep(p.kernel_size, 1, nsp), rep(p.stride, 1, nsp)
        pad, dil = rep(p.pad, 0, nsp), rep(p.dilation, 1, nsp)
        w = layer.blobs[0].data.astype(np.float64)
        b = layer.blobs[1].data.astype(np.float64) if p.bias_term else None
        return [deconv_reference(x, w, b, kernel, pad, stride, dil, p.group)]


def test_weight_and_top_shapes():
    layer = make_layer('type: "Deconvolution" convolution_param { num_output: 6 '
                       'kernel_size: 4 stride: 2 pad: 1 group: 2 }')
    bottom = make_blobs([np.zeros((2, 4, 5, 7))])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    assert layer.blobs[0].shape == (4, 3, 4, 4)
    assert layer.blobs[1].shape == (6,)
    assert top[0].shape == (2, 6, 10, 14)


@pytest.mark.parametrize("text, cls, match", [
    ("num_output: 0 kernel_size: 3", LayerSetupError, "num_output"),
    ("num_output: 2", LayerSetupError, "kernel size"),
    ("num_output: 3 kernel_size: 3 group: 2", LayerSetupError, "multiple of group"),
    ("num_output: 2 kernel_size: 1 pad: 2", ShapeError, "empty"),
])
def test_errors(text, cls, match):
    layer = make_layer(
        f'type: "Deconvolution" name: "d" convolution_param {{ {text} }}')
    bottom = make_blobs([np.zeros((1, 2, 3, 3))])
    with pytest.raises(cls, match=match) as info:
        layer.SetUp(bottom, [Blob(())])
    assert "Deconvolution layer 'd'" in str(info.value)
