import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(30)
X = rng.standard_normal((2, 3, 2, 2)) * 2
XT = rng.standard_normal((3, 2, 5)) * 2  # (T, N, V): taken as rows


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class TestSoftmax(LayerTestCase):
    layer_type = "Softmax"
    cases = [
        Case('type: "Softmax"', [X]),
        Case('type: "Softmax" softmax_param { axis: -1 }', [X]),
        Case('type: "Softmax" softmax_param { axis: 0 }', [X]),
        Case('type: "Softmax" softmax_param { axis: 2 }', [XT]),
        Case('type: "Softmax"', [X.reshape(2, 12, 1, 1)]),
        Case('type: "Softmax"', [np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]])],
             gradient=False, why="saturated; checks stability"),
    ]

    def reference(self, case, bottoms, layer):
        axis = layer.layer_param.softmax_param.axis
        return [_softmax(bottoms[0], axis)]


def test_softmax_bad_axis():
    layer = make_layer('type: "Softmax" softmax_param { axis: 4 }')
    with pytest.raises(ShapeError, match="axis 4"):
        layer.SetUp(make_blobs([X]), [Blob(())])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_form_matches_the_axis_reductions(dtype):
    """Along an axis with only one-element axes after it the softmax reduces
    rows (reduceat max, GEMV sum); it agrees with numpy's reductions along
    the axis, in place too, and its backward's dot product as well."""
    from recaffe.layers.softmax import softmax, softmax_dot

    r = np.random.default_rng(3)
    x = (r.standard_normal((7, 4, 65)) * 4).astype(dtype)
    ref = _softmax(x.astype(np.float64), 2)
    y = np.empty_like(x)
    softmax(x, y, 2, np)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y, ref, rtol=tol * 4, atol=tol)
    z = x.copy()
    softmax(z, z, 2, np)
    np.testing.assert_array_equal(z, y)
    dy = r.standard_normal(x.shape).astype(dtype)
    dot = softmax_dot(dy, y, 2, np)
    assert dot.shape == (7, 4, 1)
    ref_dot = (dy.astype(np.float64) * y).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(dot, ref_dot, rtol=tol * 10, atol=tol * 10)
