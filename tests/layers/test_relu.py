import numpy as np

from recaffe.blob import Blob
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(2)
# Keep inputs away from the kink at 0 (stepsize 1e-2).
X = rng.uniform(0.05, 2.0, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))


class TestReLU(LayerTestCase):
    layer_type = "ReLU"
    cases = [
        Case('type: "ReLU"', [X], kink=0.0, kink_range=0.02),
        Case('type: "ReLU" relu_param { negative_slope: 0.2 }', [X]),
        Case('type: "ReLU" relu_param { negative_slope: -0.5 }', [X]),
    ]

    def reference(self, case, bottoms, layer):
        x = bottoms[0]
        ns = layer.layer_param.relu_param.negative_slope
        return [np.maximum(x, 0) + ns * np.minimum(x, 0)]


def test_relu_gradient_at_zero_uses_slope():
    layer = make_layer('type: "ReLU" relu_param { negative_slope: 0.3 }')
    bottom = make_blobs([np.array([0.0, 1.0, -1.0])], np.float64)
    top = [Blob((), dtype=np.float64)]
    layer.SetUp(bottom, top)
    layer.Forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.Backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, [0.3, 1.0, 0.3])
