import numpy as np

from recaffe.blob import Blob
from recaffe.testing.layer_test import Case, LayerTestCase, make_layer


class TestParameter(LayerTestCase):
    layer_type = "Parameter"
    cases = [
        Case('type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }', []),
        Case('type: "Parameter" parameter_param { shape { dim: 4 } }', []),
    ]

    def reference(self, case, bottoms, layer):
        return [layer.blobs[0].data]


def test_top_is_the_learned_blob():
    layer = make_layer('type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }')
    top = [Blob(())]
    layer.SetUp([], top)
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == (2, 3)
    assert np.all(layer.blobs[0].data == 0)
    layer.blobs[0].data[...] = np.arange(6).reshape(2, 3)
    layer.Forward([], top)
    np.testing.assert_array_equal(top[0].data, np.arange(6).reshape(2, 3))
    top[0].diff[...] = 1.0
    layer.Backward(top, [], [])
    layer.Backward(top, [], [])
    assert np.all(layer.blobs[0].diff == 2.0)
