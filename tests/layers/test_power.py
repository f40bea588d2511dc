import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(6)
X = rng.uniform(0.6, 2.0, (2, 3, 4))
XS = rng.standard_normal((2, 3, 4))


class TestPower(LayerTestCase):
    layer_type = "Power"
    cases = [
        Case('type: "Power" power_param { power: 3 scale: 0.5 shift: 0.2 }', [XS]),
        Case('type: "Power" power_param { power: 0.37 scale: 0.83 shift: -0.1 }', [X]),
        Case('type: "Power" power_param { power: -1.5 scale: 1.2 }', [X]),
        Case('type: "Power" power_param { power: 2 scale: -0.7 shift: 0.3 }', [XS]),
        Case('type: "Power" power_param { power: 1 scale: 2 shift: 1 }', [XS]),
        Case('type: "Power" power_param { power: 0 scale: 2 shift: 1 }', [XS]),
        Case('type: "Power" power_param { power: 2.5 scale: 0 shift: 1.5 }', [XS]),
        Case('type: "Power"', [XS]),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.power_param
        return [(p.shift + p.scale * bottoms[0]) ** p.power]


def test_power_constant_gradient_is_zero():
    layer = make_layer('type: "Power" power_param { power: 0 scale: 3 }')
    bottom = make_blobs([XS])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    layer.Forward(bottom, top)
    assert np.all(top[0].data == 1)
    top[0].diff[...] = 5
    layer.Backward(top, [True], bottom)
    assert np.all(bottom[0].diff == 0)


@pytest.mark.parametrize("p,s,t", [(3.0, 0.5, 0.2), (0.5, 1.0, 0.0)])
def test_power_shape_kept(p, s, t):
    text = f'type: "Power" power_param {{ power: {p} scale: {s} shift: {t} }}'
    layer = make_layer(text)
    bottom = make_blobs([X])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    assert top[0].shape == X.shape
