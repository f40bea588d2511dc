import itertools

import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(2)
X = rng.standard_normal((2, 3, 5, 4))
X3 = rng.standard_normal((1, 2, 3, 4, 3))


def rep(vals, default, nsp):
    vals = list(vals)
    if not vals:
        return (default,) * nsp
    return tuple(vals) * nsp if len(vals) == 1 else tuple(vals)


def im2col_reference(x, kernel, pad, stride, dil):
    """Caffe's column layout: row (c * K + tap), column = output position."""
    n, c = x.shape[:2]
    xpad = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    out = tuple((i + 2 * p - (d * (k - 1) + 1)) // s + 1
                for i, p, d, k, s in zip(x.shape[2:], pad, dil, kernel, stride,
                                         strict=True))
    taps = list(itertools.product(*(range(k) for k in kernel)))
    y = np.zeros((n, c * len(taps)) + out)
    for ch in range(c):
        for t, tap in enumerate(taps):
            for pos in itertools.product(*(range(o) for o in out)):
                src = tuple(q * s + k * d
                            for q, s, k, d in zip(pos, stride, tap, dil, strict=True))
                row = ch * len(taps) + t
                y[(slice(None), row) + pos] = xpad[(slice(None), ch) + src]
    return y


class TestIm2col(LayerTestCase):
    layer_type = "Im2col"
    cases = [
        Case('type: "Im2col" convolution_param { kernel_size: 3 }', [X]),
        Case('type: "Im2col" convolution_param { kernel_h: 2 kernel_w: 3 stride_h: 2 '
             'stride_w: 1 pad_h: 1 pad_w: 2 }', [X]),
        Case('type: "Im2col" convolution_param { kernel_size: 2 dilation: 2 pad: 1 '
             'stride: 2 }', [X]),
        Case('type: "Im2col" convolution_param { kernel_size: 2 pad: 1 stride: 2 }',
             [X3]),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.convolution_param
        x = bottoms[0]
        nsp = x.ndim - 2
        if p.HasField("kernel_h"):
            kernel, stride = (p.kernel_h, p.kernel_w), (p.stride_h, p.stride_w)
            pad = (p.pad_h, p.pad_w)
        else:
            kernel, stride = rep(p.kernel_size, 1, nsp), rep(p.stride, 1, nsp)
            pad = rep(p.pad, 0, nsp)
        return [im2col_reference(x, kernel, pad, stride, rep(p.dilation, 1, nsp))]


@pytest.mark.parametrize("text, cls, match", [
    ("pad: 1", LayerSetupError, "kernel size"),
    ("kernel_size: 6", ShapeError, "larger than the padded"),
])
def test_errors(text, cls, match):
    layer = make_layer(f'type: "Im2col" name: "i" convolution_param {{ {text} }}')
    with pytest.raises(cls, match=match):
        layer.SetUp(make_blobs([np.zeros((1, 2, 4, 4))]), [Blob(())])
