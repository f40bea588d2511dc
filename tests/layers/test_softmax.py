import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(30)
X = rng.standard_normal((2, 3, 2, 2)) * 2


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


class TestSoftmax(LayerTestCase):
    layer_type = "Softmax"
    cases = [
        Case('type: "Softmax"', [X]),
        Case('type: "Softmax" softmax_param { axis: -1 }', [X]),
        Case('type: "Softmax" softmax_param { axis: 0 }', [X]),
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
