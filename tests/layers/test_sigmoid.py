import warnings

import numpy as np

from recaffe.blob import Blob
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4)) * 2
BIG = np.array([[-800.0, -40.0, 0.0, 40.0, 800.0]])


class TestSigmoid(LayerTestCase):
    layer_type = "Sigmoid"
    cases = [
        Case('type: "Sigmoid"', [X]),
        Case('type: "Sigmoid"', [BIG], gradient=False, why="saturated inputs"),
    ]

    def reference(self, case, bottoms, layer):
        x = bottoms[0]
        with np.errstate(over="ignore"):
            return [1.0 / (1.0 + np.exp(-x))]


def test_sigmoid_no_overflow_warning():
    layer = make_layer('type: "Sigmoid"')
    bottom = make_blobs([BIG])
    top = [Blob(())]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.SetUp(bottom, top)
        layer.Forward(bottom, top)
    assert np.all(np.isfinite(top[0].data))
