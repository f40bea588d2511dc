import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.proto import caffe_pb2
from recaffe.testing.gradient_check import check_gradient
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(40)
X = rng.standard_normal((4, 3, 2, 2)) * 2 + 0.5
X2 = rng.standard_normal((5, 3)) + 1
X1 = rng.standard_normal(6)

TRAIN_TEXT = ('type: "BatchNorm" batch_norm_param { use_global_stats: false '
              'moving_average_fraction: 0.9 eps: 1e-4 }')


def _stats(x):
    """Per-channel mean and biased variance, (N, C, S) view."""
    v = x.reshape(x.shape[0], 1, -1) if x.ndim == 1 else x.reshape(
        x.shape[0], x.shape[1], -1)
    return v, v.mean(axis=(0, 2)), v.var(axis=(0, 2))


class TestBatchNorm(LayerTestCase):
    layer_type = "BatchNorm"
    cases = [
        Case(TRAIN_TEXT, [X]),
        Case('type: "BatchNorm"', [X2]),
        Case('type: "BatchNorm"', [X1]),
        # Global statistics: the forward uses the (zero) stored statistics; the
        # gradient is checked in test_batch_norm_global_stats_gradient.
        Case('type: "BatchNorm"', [X], phase=caffe_pb2.TEST, gradient=False,
             why="stored statistics are not learnable; bottom gradient checked below"),
    ]

    def reference(self, case, bottoms, layer):
        x = bottoms[0]
        eps = layer.layer_param.batch_norm_param.eps
        v, mean, var = _stats(x)
        if layer.use_global_stats:
            mean, var = np.zeros_like(mean), np.zeros_like(var)
        y = (v - mean[None, :, None]) / np.sqrt(var[None, :, None] + eps)
        return [y.reshape(x.shape)]


def _setup(text, x, phase=caffe_pb2.TRAIN, dtype=np.float64):
    with backend.dtype_scope(dtype):
        layer = make_layer(text, phase)
        bottom = make_blobs([x], dtype)
        top = [Blob((), dtype=dtype)]
        layer.SetUp(bottom, top)
    return layer, bottom, top


def test_batch_norm_blobs_and_lr_mult():
    layer, _, _ = _setup('type: "BatchNorm"', X)
    assert [b.shape for b in layer.blobs] == [(3,), (3,), (1,)]
    assert all(np.all(b.data == 0) for b in layer.blobs)
    assert layer.param_propagate_down == [False, False, False]
    assert [p.lr_mult for p in layer.layer_param.param] == [0, 0, 0]


def test_batch_norm_learnable_stats_rejected():
    with pytest.raises(LayerSetupError, match="lr_mult"):
        _setup('type: "BatchNorm" param { lr_mult: 1 }', X)


def test_batch_norm_default_use_global_stats():
    assert not _setup('type: "BatchNorm"', X, caffe_pb2.TRAIN)[0].use_global_stats
    assert _setup('type: "BatchNorm"', X, caffe_pb2.TEST)[0].use_global_stats
    assert not _setup('type: "BatchNorm" batch_norm_param { use_global_stats: false }',
                      X, caffe_pb2.TEST)[0].use_global_stats


def test_batch_norm_moving_average():
    layer, bottom, top = _setup(TRAIN_TEXT, X)
    maf = np.float32(0.9).item()
    _, mean, var = _stats(X)
    m = X.shape[0] * X.shape[2] * X.shape[3]
    layer.Forward(bottom, top)
    np.testing.assert_allclose(layer.blobs[2].data, [1.0])
    np.testing.assert_allclose(layer.blobs[0].data, mean)
    np.testing.assert_allclose(layer.blobs[1].data, var * m / (m - 1))
    x2 = X * 0.5 - 1
    bottom[0].data[...] = x2
    layer.Forward(bottom, top)
    _, mean2, var2 = _stats(x2)
    np.testing.assert_allclose(layer.blobs[2].data, [maf + 1])
    np.testing.assert_allclose(layer.blobs[0].data, mean2 + maf * mean)
    np.testing.assert_allclose(layer.blobs[1].data,
                               (var2 + maf * var) * m / (m - 1))


def test_batch_norm_global_stats_forward_and_gradient():
    layer, bottom, top = _setup('type: "BatchNorm"', X, caffe_pb2.TEST)
    mean = np.array([0.2, -0.4, 1.0])
    var = np.array([1.5, 0.3, 2.0])
    s = 2.5
    layer.blobs[0].data[...] = mean * s
    layer.blobs[1].data[...] = var * s
    layer.blobs[2].data[...] = s
    layer.Forward(bottom, top)
    eps = layer.layer_param.batch_norm_param.eps
    want = (X - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
    np.testing.assert_allclose(top[0].data, want, rtol=1e-12)
    check_gradient(layer, bottom, top, check_params=False, setup=False)
    top[0].diff[...] = 1.0
    layer.Backward(top, [True], bottom)
    np.testing.assert_allclose(
        bottom[0].diff, np.broadcast_to(1 / np.sqrt(var[None, :, None, None] + eps),
                                        X.shape))
    # The statistics do not change in this mode.
    np.testing.assert_allclose(layer.blobs[2].data, [s])


def test_batch_norm_train_gradient_formula():
    layer, bottom, top = _setup(TRAIN_TEXT, X)
    layer.Forward(bottom, top)
    dy = rng.standard_normal(X.shape)
    top[0].diff[...] = dy
    layer.Backward(top, [True], bottom)
    y = top[0].data
    _, _, var = _stats(X)
    eps = layer.layer_param.batch_norm_param.eps
    ax = (0, 2, 3)
    want = (dy - dy.mean(axis=ax, keepdims=True)
            - y * (dy * y).mean(axis=ax, keepdims=True)) / np.sqrt(
                var[None, :, None, None] + eps)
    np.testing.assert_allclose(bottom[0].diff, want, rtol=1e-10, atol=1e-12)


def test_batch_norm_channel_change_rejected():
    layer, bottom, top = _setup('type: "BatchNorm"', X)
    bottom[0].reshape(4, 2, 2, 2)
    with pytest.raises(ShapeError, match="3 channels"):
        layer.Forward(bottom, top)


def test_batch_norm_in_place_matches():
    results = []
    dy = rng.standard_normal(X.shape)
    for in_place in (False, True):
        with backend.dtype_scope(np.float64):
            layer = make_layer(TRAIN_TEXT)
            bottom = make_blobs([X], np.float64)
            top = bottom if in_place else [Blob((), dtype=np.float64)]
            layer.SetUp(bottom, top)
        layer.Forward(bottom, top)
        y = top[0].data.copy()
        top[0].diff[...] = dy
        layer.Backward(top, [True], bottom)
        results.append((y, bottom[0].diff.copy()))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-12)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-12, atol=1e-14)
