import warnings

import numpy as np

from recaffe.blob import Blob
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(5)
X = rng.standard_normal((2, 3, 4)) * 3
BIG = np.array([-1000.0, -60.0, -1.0, 0.0, 1.0, 60.0, 1000.0])


class TestBNLL(LayerTestCase):
    layer_type = "BNLL"
    cases = [
        Case('type: "BNLL"', [X]),
        Case('type: "BNLL"', [BIG], gradient=False, why="extreme inputs"),
    ]

    def reference(self, case, bottoms, layer):
        return [np.logaddexp(0.0, bottoms[0])]


def test_bnll_stable_for_extreme_inputs():
    layer = make_layer('type: "BNLL"')
    bottom = make_blobs([BIG], np.float32)
    top = [Blob(())]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.SetUp(bottom, top)
        layer.Forward(bottom, top)
        top[0].diff[...] = 1.0
        layer.Backward(top, [True], bottom)
    assert np.all(np.isfinite(top[0].data))
    assert top[0].data[-1] == 1000.0
    with np.errstate(over="ignore"):
        want = 1 / (1 + np.exp(-BIG))
    np.testing.assert_allclose(bottom[0].diff, want, rtol=1e-5, atol=1e-30)
