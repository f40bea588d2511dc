import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(11)
X = rng.uniform(0.05, 2.0, (2, 3, 2, 2)) * rng.choice([-1.0, 1.0], (2, 3, 2, 2))
X3 = rng.uniform(0.05, 2.0, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))
FILL = 'filler { type: "uniform" min: 0.1 max: 0.4 }'


class TestPReLU(LayerTestCase):
    layer_type = "PReLU"
    cases = [
        Case('type: "PReLU"', [X]),
        Case(f'type: "PReLU" prelu_param {{ {FILL} }}', [X3]),
        Case(f'type: "PReLU" prelu_param {{ channel_shared: true {FILL} }}', [X]),
        Case('type: "PReLU"', [X3[:, :, 0]]),
    ]

    def reference(self, case, bottoms, layer):
        x = bottoms[0]
        a = np.asarray(layer.blobs[0].data, dtype=np.float64)
        if a.ndim == 1:
            a = a.reshape((1, -1) + (1,) * (x.ndim - 2))
        return [np.maximum(x, 0) + a * np.minimum(x, 0)]


def _setup(text, x):
    layer = make_layer(text)
    bottom = make_blobs([x])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_prelu_default_slope_and_shapes():
    layer, _, _ = _setup('type: "PReLU"', X)
    assert layer.blobs[0].shape == (3,)
    np.testing.assert_allclose(layer.blobs[0].data, 0.25)
    layer, _, _ = _setup('type: "PReLU" prelu_param { channel_shared: true }', X)
    assert layer.blobs[0].shape == ()
    assert layer.blobs[0].count == 1


def test_prelu_needs_two_axes():
    with pytest.raises(ShapeError, match="at least 2 axes"):
        _setup('type: "PReLU"', np.ones(4))


def test_prelu_channel_change_rejected():
    layer, bottom, top = _setup('type: "PReLU"', X)
    bottom[0].reshape(2, 4, 2, 2)
    with pytest.raises(ShapeError, match="3"):
        layer.Forward(bottom, top)
