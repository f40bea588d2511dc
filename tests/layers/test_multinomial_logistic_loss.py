import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(12)
P = rng.uniform(0.1, 1.0, (4, 5))
P /= P.sum(axis=1, keepdims=True)
L = np.array([0, 4, 2, 2], dtype=float)


class TestMultinomialLogisticLoss(LayerTestCase):
    layer_type = "MultinomialLogisticLoss"
    cases = [
        Case('type: "MultinomialLogisticLoss"', [P, L], check_bottom=0,
             stepsize=1e-4),
        Case('type: "MultinomialLogisticLoss" loss_weight: 2', [P.reshape(4, 5, 1),
             L.reshape(4, 1)], check_bottom=0, stepsize=1e-4),
    ]

    def reference(self, case, bottoms, layer):
        p = bottoms[0].reshape(4, -1)
        lab = bottoms[1].reshape(-1).astype(int)
        return [np.array(-np.log(p[np.arange(4), lab]).sum() / 4)]


def _setup(arrays):
    layer = make_layer('type: "MultinomialLogisticLoss"')
    bottom = make_blobs(arrays, np.float64)
    top = [Blob((), dtype=np.float64)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_threshold_on_zero_probability():
    layer, bottom, top = _setup([[[0.0, 1.0]], [0.0]])
    layer.Forward(bottom, top)
    assert float(top[0].data) == pytest.approx(-np.log(1e-20))


def test_bad_label_and_no_label_gradient():
    layer, bottom, top = _setup([P, [0, 5, 1, 1]])
    with pytest.raises(DataError, match="label 5"):
        layer.Forward(bottom, top)
    layer, bottom, top = _setup([P, L])
    layer.Forward(bottom, top)
    with pytest.raises(LayerSetupError, match="label"):
        layer.Backward(top, [True, True], bottom)
