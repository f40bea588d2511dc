import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(32)
X = rng.permutation(60).reshape(3, 5, 4).astype(float) - 30
X2 = rng.standard_normal((3, 5))
X4 = rng.permutation(48).reshape(2, 3, 4, 2).astype(float)


def _topk(a, k):
    """Indices of the k largest along the last axis, ties larger index first."""
    order = np.argsort(a, axis=-1, kind="stable")[..., ::-1][..., :k]
    return order, np.take_along_axis(a, order, axis=-1)


class TestArgMax(LayerTestCase):
    layer_type = "ArgMax"
    why = "indices have no gradient"
    cases = [
        Case('type: "ArgMax"', [X], gradient=False, why=why),
        Case('type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }', [X2],
             gradient=False, why=why),
        Case('type: "ArgMax" argmax_param { top_k: 3 }', [X4], gradient=False, why=why),
        Case('type: "ArgMax" argmax_param { axis: 1 top_k: 2 }', [X], gradient=False,
             why=why),
        Case('type: "ArgMax" argmax_param { axis: -1 top_k: 3 out_max_val: true }', [X],
             gradient=False, why=why),
        Case('type: "ArgMax" argmax_param { axis: 0 }', [X], gradient=False, why=why),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.argmax_param
        x = bottoms[0]
        k = p.top_k
        if p.HasField("axis"):
            axis = p.axis % x.ndim
            idx, val = _topk(np.moveaxis(x, axis, -1), k)
            res = val if p.out_max_val else idx
            return [np.moveaxis(res, -1, axis)]
        idx, val = _topk(x.reshape(x.shape[0], -1), k)
        out = np.concatenate([idx, val], axis=1) if p.out_max_val else idx
        n_axes = max(3, x.ndim)
        shape = (x.shape[0], 2 if p.out_max_val else 1, k) + (1,) * (n_axes - 3)
        return [out.reshape(shape)]


def _setup(text, x):
    layer = make_layer(text)
    bottom = make_blobs([x])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_argmax_ties_prefer_larger_index():
    layer, bottom, top = _setup('type: "ArgMax" argmax_param { top_k: 3 }',
                                np.array([[1.0, 3.0, 3.0, 0.0, 3.0]]))
    layer.Forward(bottom, top)
    np.testing.assert_array_equal(top[0].data.reshape(-1), [4, 2, 1])


def test_argmax_shapes():
    _, _, top = _setup('type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }', X2)
    assert top[0].shape == (3, 2, 2)
    _, _, top = _setup('type: "ArgMax"', X4)
    assert top[0].shape == (2, 1, 1, 1)
    _, _, top = _setup('type: "ArgMax" argmax_param { axis: 2 top_k: 2 }', X4)
    assert top[0].shape == (2, 3, 2, 2)


def test_argmax_top_k_too_large():
    with pytest.raises(ShapeError, match="top_k 6"):
        _setup('type: "ArgMax" argmax_param { axis: 1 top_k: 6 }', X)
    with pytest.raises(ShapeError, match="top_k 21"):
        _setup('type: "ArgMax" argmax_param { top_k: 21 }', X)


def test_argmax_top_k_zero():
    with pytest.raises(LayerSetupError, match="top_k"):
        _setup('type: "ArgMax" argmax_param { top_k: 0 }', X)


def test_argmax_backward_raises():
    layer, bottom, top = _setup('type: "ArgMax"', X)
    layer.Forward(bottom, top)
    layer.Backward(top, [False], bottom)
    with pytest.raises(LayerSetupError, match="no gradient"):
        layer.Backward(top, [True], bottom)
