import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(9)
X = rng.standard_normal((3, 4))
X[0, 0] = 0.1  # exactly at the threshold: not above it


class TestThreshold(LayerTestCase):
    layer_type = "Threshold"
    cases = [
        Case('type: "Threshold"', [X], gradient=False, why="step function"),
        Case('type: "Threshold" threshold_param { threshold: 0.1 }', [X],
             gradient=False, why="step function"),
    ]

    def reference(self, case, bottoms, layer):
        t = layer.layer_param.threshold_param.threshold
        return [(bottoms[0] > np.float32(t)).astype(float)]


def test_threshold_backward_raises_only_when_asked():
    layer = make_layer('type: "Threshold"')
    bottom = make_blobs([X])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    layer.Forward(bottom, top)
    layer.Backward(top, [False], bottom)
    with pytest.raises(LayerSetupError, match=r"Threshold layer 'test'.*no gradient"):
        layer.Backward(top, [True], bottom)
