import math

import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

FLT_MAX = float(np.finfo(np.float32).max)


def distinct(shape, seed):
    """Values at least 0.1 apart, so a +-1e-2 probe never changes an argmax."""
    r = np.random.default_rng(seed)
    return (r.permutation(math.prod(shape)).reshape(shape) - math.prod(shape) / 2) * 0.1


XM = distinct((2, 2, 7, 6), 0)
X5 = distinct((1, 2, 5, 5), 1)
XS = np.random.default_rng(3).uniform(0.0, 1.0, (2, 2, 5, 4))
XA = np.random.default_rng(4).standard_normal((2, 2, 6, 5))
P = 'type: "Pooling" pooling_param '


def params(p, h, w):
    if p.global_pooling:
        return (h, w), (0, 0), (1, 1)
    if p.HasField("kernel_h"):
        kernel = (p.kernel_h, p.kernel_w)
    else:
        kernel = (p.kernel_size,) * 2
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad,) * 2
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride,) * 2
    return kernel, pad, stride


def out_size(i, k, p, s, ceil_mode):
    f = math.ceil if ceil_mode else math.floor
    o = int(f((i + 2 * p - k) / s)) + 1
    if p and (o - 1) * s >= i + p:
        o -= 1
    return o


def pool_reference(x, p, phase=caffe_pb2.TRAIN):
    """Caffe's pooling loops, literally."""
    n, c, h, w = x.shape
    (kh, kw), (ph_, pw_), (sh, sw) = params(p, h, w)
    ceil_mode = p.round_mode == caffe_pb2.PoolingParameter.CEIL
    oh, ow = out_size(h, kh, ph_, sh, ceil_mode), out_size(w, kw, pw_, sw, ceil_mode)
    y = np.zeros((n, c, oh, ow))
    mask = np.full((n, c, oh, ow), -1.0)
    for a in range(n):
        for b in range(c):
            for i in range(oh):
                for j in range(ow):
                    hs, ws = i * sh - ph_, j * sw - pw_
                    if p.pool == caffe_pb2.PoolingParameter.MAX:
                        he, we = min(hs + kh, h), min(ws + kw, w)
                        hs, ws = max(hs, 0), max(ws, 0)
                        best = -FLT_MAX
                        for u in range(hs, he):
                            for v in range(ws, we):
                                if x[a, b, u, v] > best:
                                    best = x[a, b, u, v]
                                    mask[a, b, i, j] = u * w + v
                        y[a, b, i, j] = best
                    elif p.pool == caffe_pb2.PoolingParameter.AVE:
                        he, we = min(hs + kh, h + ph_), min(ws + kw, w + pw_)
                        size = (he - hs) * (we - ws)
                        hs, ws = max(hs, 0), max(ws, 0)
                        he, we = min(he, h), min(we, w)
                        y[a, b, i, j] = x[a, b, hs:he, ws:we].sum() / size
                    else:
                        win = x[a, b, max(hs, 0):min(hs + kh, h),
                                max(ws, 0):min(ws + kw, w)]
                        s = win.sum()
                        y[a, b, i, j] = (win * win).sum() / s if s > 0 else 0.0
    return y, mask


class TestPooling(LayerTestCase):
    layer_type = "Pooling"
    cases = [
        Case(P + '{ pool: MAX kernel_size: 3 stride: 2 pad: 1 }',
             [XM], num_tops=2, top_mask=[True, False]),
        Case(P + '{ pool: MAX kernel_size: 2 stride: 2 }', [XM]),
        Case(P + '{ pool: MAX kernel_size: 2 stride: 2 }', [X5],
             num_tops=2, top_mask=[True, False]),
        Case(P + '{ pool: MAX kernel_h: 3 kernel_w: 2 '
             'stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 round_mode: FLOOR }', [XM]),
        Case(P + '{ pool: MAX global_pooling: true }', [X5]),
        Case(P + '{ pool: AVE kernel_size: 3 stride: 2 pad: 1 }',
             [XA]),
        Case(P + '{ pool: AVE kernel_h: 3 kernel_w: 2 '
             'stride_h: 2 stride_w: 2 pad_h: 1 pad_w: 0 }', [XA]),
        Case(P + '{ pool: AVE kernel_size: 3 stride: 2 '
             'pad: 2 round_mode: FLOOR }', [XA]),
        Case(P + '{ pool: AVE kernel_size: 3 stride: 2 }', [XA]),
        Case(P + '{ pool: AVE global_pooling: true }', [XA]),
        Case(P + '{ pool: STOCHASTIC kernel_size: 3 stride: 2 }',
             [XS], phase=caffe_pb2.TEST, gradient=False,
             why="STOCHASTIC pooling has no gradient in TEST (nothing is sampled)"),
    ]

    def reference(self, case, bottoms, layer):
        y, mask = pool_reference(bottoms[0], layer.layer_param.pooling_param)
        return [y, mask] if case.num_tops == 2 else [y]


def run(text, x, num_tops=1, phase=caffe_pb2.TRAIN, dtype=np.float64):
    layer = make_layer(text, phase)
    bottom = make_blobs([x], dtype)
    top = [Blob((), dtype=dtype) for _ in range(num_tops)]
    layer.SetUp(bottom, top)
    layer.Forward(bottom, top)
    return layer, bottom, top


def test_max_ties_go_to_first_in_window():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = x[0, 0, 1, 1] = 5.0
    layer, bottom, top = run('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 '
                             'stride: 1 }', x, num_tops=2)
    np.testing.assert_array_equal(top[1].data[0, 0], [[1, 1], [3, 4]])
    top[0].diff[...] = 1
    layer.Backward(top, [True], bottom)
    expect = np.zeros((3, 3))
    expect[0, 1], expect[1, 0], expect[1, 1] = 2, 1, 1
    np.testing.assert_array_equal(bottom[0].diff[0, 0], expect)
    # All-equal window: the first in-image element wins, padding never does.
    layer, bottom, top = run('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 '
                             'stride: 2 pad: 1 }', np.full((1, 1, 3, 3), -7.0),
                             num_tops=2)
    np.testing.assert_array_equal(top[0].data[0, 0], np.full((2, 2), -7.0))
    np.testing.assert_array_equal(top[1].data[0, 0], [[0, 1], [3, 4]])


def test_window_past_the_image():
    # kernel 1 < stride 3: the third window starts at 6 > 5 and holds nothing.
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    layer, bottom, top = run('type: "Pooling" pooling_param { pool: MAX kernel_size: 1 '
                             'stride: 3 }', x, num_tops=2)
    assert top[0].shape == (1, 1, 3, 3)
    assert top[0].data[0, 0, 2, 0] == -FLT_MAX
    assert top[1].data[0, 0, 2, 0] == -1
    assert top[0].data[0, 0, 1, 1] == 18
    top[0].diff[...] = 1
    layer.Backward(top, [True], bottom)
    assert bottom[0].diff.sum() == 4


def test_ave_window_past_the_image_is_zero():
    # Caffe divides 0 by a window area of 0 here (NaN); recaffe outputs 0.
    x = np.ones((1, 1, 6, 6))
    _, _, top = run('type: "Pooling" pooling_param { pool: AVE kernel_size: 2 '
                    'stride: 3 }', x)
    assert top[0].shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(top[0].data[0, 0, :2, :2], np.ones((2, 2)))
    np.testing.assert_array_equal(top[0].data[0, 0, 2], np.zeros(3))


def test_stochastic_train_samples_by_value():
    x = np.array([[[[1.0, 3.0]]]])
    text = 'type: "Pooling" pooling_param { pool: STOCHASTIC kernel_h: 1 kernel_w: 2 }'
    layer = make_layer(text)
    bottom = make_blobs([x], np.float64)
    top = [Blob((), dtype=np.float64)]
    layer.SetUp(bottom, top)
    backend.set_random_seed(0)
    picks = []
    for _ in range(2000):
        layer.Forward(bottom, top)
        picks.append(float(top[0].data[0, 0, 0, 0]))
    frac = np.mean(np.array(picks) == 3.0)
    assert set(picks) == {1.0, 3.0}
    assert 0.72 < frac < 0.78


def test_stochastic_train_gradient_goes_to_sample():
    x = np.random.default_rng(5).uniform(0.1, 1.0, (2, 3, 6, 6))
    layer, bottom, top = run('type: "Pooling" pooling_param { pool: STOCHASTIC '
                             'kernel_size: 2 stride: 2 }', x)
    y = top[0].data
    for a in range(2):
        for b in range(3):
            for i in range(3):
                for j in range(3):
                    assert y[a, b, i, j] in x[a, b, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
    top[0].diff[...] = np.arange(y.size).reshape(y.shape) + 1.0
    layer.Backward(top, [True], bottom)
    dx = bottom[0].diff
    # Each window passes its gradient to exactly the element it sampled.
    for a in range(2):
        for b in range(3):
            for i in range(3):
                for j in range(3):
                    win_x = x[a, b, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                    win_d = dx[a, b, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                    assert np.count_nonzero(win_d) == 1
                    assert win_x[win_d != 0][0] == y[a, b, i, j]
                    assert win_d.sum() == top[0].diff[a, b, i, j]


def test_lenet_shape_and_conformance_geometry():
    _, _, top = run('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 '
                        'stride: 2 }', np.zeros((3, 20, 24, 24)), dtype=np.float32)
    assert top[0].shape == (3, 20, 12, 12)
    _, _, top = run('type: "Pooling" pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 '
                    'stride_h: 2 stride_w: 2 pad_h: 1 pad_w: 0 }',
                    np.zeros((1, 2, 6, 5)))
    assert top[0].shape == (1, 2, 4, 3)
    _, _, top = run('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 '
                    'stride: 2 pad: 1 }', np.zeros((2, 3, 7, 6)))
    assert top[0].shape == (2, 3, 4, 4)


@pytest.mark.parametrize("text, shape, cls, match", [
    ("pool: MAX", (1, 1, 4, 4), LayerSetupError, "kernel size is required"),
    ("pool: MAX kernel_h: 2", (1, 1, 4, 4), LayerSetupError, "kernel size is required"),
    ("pool: MAX kernel_size: 2 kernel_h: 2 kernel_w: 2", (1, 1, 4, 4), LayerSetupError,
     "not both"),
    ("pool: MAX global_pooling: true kernel_size: 2", (1, 1, 4, 4), LayerSetupError,
     "global_pooling"),
    ("pool: AVE global_pooling: true stride: 2", (1, 1, 4, 4), LayerSetupError,
     "global_pooling"),
    ("pool: MAX kernel_size: 0", (1, 1, 4, 4), LayerSetupError, "> 0"),
    ("pool: MAX kernel_size: 2 stride: 0", (1, 1, 4, 4), LayerSetupError, "stride"),
    ("pool: MAX kernel_size: 2 pad: 2", (1, 1, 4, 4), LayerSetupError, "smaller"),
    ("pool: MAX kernel_size: 3 pad_h: 1 pad_w: 3", (1, 1, 4, 4), LayerSetupError,
     "smaller"),
    ("pool: MAX kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", (1, 1, 4, 4),
     LayerSetupError, "not both"),
    ("pool: STOCHASTIC kernel_size: 3 pad: 1", (1, 1, 4, 4), LayerSetupError,
     "padding"),
    ("pool: MAX kernel_size: 2", (1, 4, 4), ShapeError, "4 axes"),
    ("pool: MAX kernel_size: 5 stride: 1 round_mode: FLOOR", (1, 1, 4, 4), ShapeError,
     "larger than the padded"),
])
def test_errors(text, shape, cls, match):
    layer = make_layer(f'type: "Pooling" name: "p" pooling_param {{ {text} }}')
    with pytest.raises(cls, match=match) as info:
        layer.SetUp(make_blobs([np.zeros(shape)]), [Blob(())])
    assert "Pooling layer 'p'" in str(info.value)


def test_mask_top_only_for_max():
    layer = make_layer('type: "Pooling" pooling_param { pool: AVE kernel_size: 2 }')
    with pytest.raises(LayerSetupError, match="second"):
        layer.SetUp(make_blobs([np.zeros((1, 1, 4, 4))]), [Blob(()), Blob(())])


def test_reshape_rebuilds_tables():
    text = P + '{ pool: MAX kernel_size: 3 stride: 2 pad: 1 }'
    layer, bottom, top = run(text, XM, num_tops=2)
    x = distinct((1, 3, 5, 8), 9)
    bottom[0].reshape(x.shape)
    bottom[0].data[...] = x
    layer.Forward(bottom, top)
    y, mask = pool_reference(x, layer.layer_param.pooling_param)
    np.testing.assert_array_equal(top[0].data, y)
    np.testing.assert_array_equal(top[1].data, mask)
