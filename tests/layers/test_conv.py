import itertools

import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.layers import conv as conv_module
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 4, 6, 5))
X3 = rng.standard_normal((1, 2, 4, 5, 3))
XA = rng.standard_normal((2, 2, 2, 5, 4))
X2 = rng.standard_normal((2, 4, 6, 5))

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" }'


def geometry(p, nsp):
    def rep(vals, default):
        vals = list(vals)
        if not vals:
            return (default,) * nsp
        return tuple(vals) * nsp if len(vals) == 1 else tuple(vals)

    if p.HasField("kernel_h"):
        kernel = (p.kernel_h, p.kernel_w)
    else:
        kernel = rep(p.kernel_size, 1)
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else rep(p.stride, 1)
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else rep(p.pad, 0)
    return kernel, pad, stride, rep(p.dilation, 1)


def conv_reference(x, w, b, pad, stride, dil, group):
    """Direct convolution, one output position at a time."""
    n, c = x.shape[:2]
    k = w.shape[2:]
    co = w.shape[0]
    xpad = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    out = tuple((i + 2 * p - (d * (kk - 1) + 1)) // s + 1
                for i, p, d, kk, s in zip(x.shape[2:], pad, dil, k, stride,
                                          strict=True))
    y = np.zeros((n, co) + out)
    cg, og = c // group, co // group
    for pos in itertools.product(*(range(o) for o in out)):
        sl = tuple(slice(q * s, q * s + d * (kk - 1) + 1, d)
                   for q, s, d, kk in zip(pos, stride, dil, k, strict=True))
        for g in range(group):
            patch = xpad[(slice(None), slice(g * cg, (g + 1) * cg)) + sl]
            wg = w[g * og:(g + 1) * og]
            y[(slice(None), slice(g * og, (g + 1) * og)) + pos] = np.tensordot(
                patch, wg, axes=(list(range(1, patch.ndim)), list(range(1, wg.ndim))))
    if b is not None:
        y += b.reshape((1, co) + (1,) * len(out))
    return y


class TestConvolution(LayerTestCase):
    layer_type = "Convolution"
    cases = [
        Case(f'type: "Convolution" convolution_param {{ num_output: 3 kernel_size: 3 '
             f'{FILL} }}', [X]),
        Case(f'type: "Convolution" convolution_param {{ num_output: 2 kernel_h: 3 '
             f'kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 2 {FILL} }}', [X]),
        Case(f'type: "Convolution" convolution_param {{ num_output: 4 kernel_size: 3 '
             f'kernel_size: 2 pad: 2 pad: 1 stride: 1 stride: 2 dilation: 2 group: 2 '
             f'{FILL} }}', [X]),
        Case('type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 '
             'bias_term: false weight_filler { type: "gaussian" } }', [X]),
        Case(f'type: "Convolution" convolution_param {{ num_output: 2 kernel_size: 2 '
             f'stride: 2 pad: 1 {FILL} }}', [X3]),
        Case(f'type: "Convolution" convolution_param {{ num_output: 3 kernel_size: 2 '
             f'axis: 2 {FILL} }}', [XA]),
        Case(f'type: "Convolution" convolution_param {{ num_output: 2 kernel_size: 3 '
             f'stride: 2 pad: 1 {FILL} }}', [X, X2], num_tops=2),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.convolution_param
        ca = p.axis
        w = layer.blobs[0].data.astype(np.float64)
        b = layer.blobs[1].data.astype(np.float64) if p.bias_term else None
        outs = []
        for x in bottoms:
            batch = x.shape[:ca]
            xf = x.reshape((-1,) + x.shape[ca:])
            _, pad, stride, dil = geometry(p, xf.ndim - 2)
            y = conv_reference(xf, w, b, pad, stride, dil, p.group)
            outs.append(y.reshape(batch + y.shape[1:]))
        return outs


def test_chunked_batch_matches(monkeypatch):
    text = (f'type: "Convolution" convolution_param {{ num_output: 3 kernel_size: 3 '
            f'stride: 2 pad: 1 group: 1 {FILL} }}')
    x = rng.standard_normal((5, 4, 7, 6))
    results = []
    for limit in (1 << 25, 200):
        monkeypatch.setattr(conv_module, "COL_BUFFER_LIMIT", limit)
        layer = make_layer(text)
        bottom = make_blobs([x], np.float64)
        top = [Blob((), dtype=np.float64)]
        backend.set_random_seed(1)
        with backend.dtype_scope(np.float64):
            layer.SetUp(bottom, top)
        layer.Forward(bottom, top)
        top[0].diff[...] = np.linspace(-1, 1, top[0].count).reshape(top[0].shape)
        for blob in layer.blobs:
            blob.diff[...] = 0
        layer.Backward(top, [True], bottom)
        results.append((top[0].data.copy(), bottom[0].diff.copy(),
                        layer.blobs[0].diff.copy(), layer.blobs[1].diff.copy()))
    assert layer.chunk == 1
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_reshape_to_new_spatial_size():
    layer = make_layer(f'type: "Convolution" convolution_param {{ num_output: 2 '
                       f'kernel_size: 3 {FILL} }}')
    bottom = make_blobs([X], np.float32)
    top = [Blob(())]
    layer.SetUp(bottom, top)
    layer.Forward(bottom, top)
    assert top[0].shape == (2, 2, 4, 3)
    bottom[0].reshape((1, 4, 8, 9))
    bottom[0].data[...] = 1
    layer.Forward(bottom, top)
    assert top[0].shape == (1, 2, 6, 7)


def build(text, shapes):
    layer = make_layer(f'type: "Convolution" name: "c" convolution_param {{ {text} }}')
    bottom = make_blobs([np.zeros(s) for s in shapes])
    top = [Blob(()) for _ in shapes]
    layer.SetUp(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize("text, shape, cls, match", [
    ("num_output: 0 kernel_size: 3", (1, 2, 5, 5), LayerSetupError, "num_output"),
    ("num_output: 2", (1, 2, 5, 5), LayerSetupError, "kernel size is required"),
    ("num_output: 2 kernel_size: 0", (1, 2, 5, 5), LayerSetupError, "> 0"),
    ("num_output: 2 kernel_size: 3 stride: 0", (1, 2, 5, 5), LayerSetupError, "stride"),
    ("num_output: 2 kernel_size: 3 group: 2", (1, 3, 5, 5), LayerSetupError,
     "multiple of group"),
    ("num_output: 3 kernel_size: 3 group: 2", (1, 2, 5, 5), LayerSetupError,
     "multiple of group"),
    ("num_output: 2 kernel_size: 7", (1, 2, 5, 5), ShapeError,
     "larger than the padded"),
    ("num_output: 2 kernel_size: 3 dilation: 3", (1, 2, 5, 5), ShapeError,
     "larger than the padded"),
    ("num_output: 2 kernel_h: 3 kernel_w: 3", (1, 2, 5, 5, 5), LayerSetupError,
     "2-D"),
    ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 2, 5, 5),
     LayerSetupError, "not both"),
    ("num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3", (1, 2, 5, 5),
     LayerSetupError, "once per spatial axis"),
    ("num_output: 2 kernel_size: 1 axis: 3", (1, 2, 5, 5), ShapeError,
     "spatial axis"),
    ("num_output: 2 kernel_size: 1 axis: 4", (1, 2, 5, 5), ShapeError, "out of range"),
])
def test_setup_errors(text, shape, cls, match):
    with pytest.raises(cls, match=match) as info:
        build(text, [shape])
    assert "Convolution layer 'c'" in str(info.value)


def test_channel_mismatch_at_reshape():
    layer, bottom, top = build("num_output: 2 kernel_size: 3", [(1, 2, 5, 5)])
    bottom[0].reshape((1, 3, 5, 5))
    with pytest.raises(ShapeError, match="2 channels"):
        layer.Forward(bottom, top)


def test_bottoms_must_share_shape():
    with pytest.raises(ShapeError, match="bottom\\[1\\]"):
        build("num_output: 2 kernel_size: 3", [(1, 2, 5, 5), (1, 2, 6, 5)])
