import numpy as np

from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(10)
X = rng.standard_normal((2, 3))
Y = rng.standard_normal((4,))


class TestSilence(LayerTestCase):
    layer_type = "Silence"
    cases = [
        Case('type: "Silence"', [X], num_tops=0),
        Case('type: "Silence"', [X, Y], num_tops=0),
    ]

    def reference(self, case, bottoms, layer):
        return []


def test_backward_writes_zeros_where_asked():
    layer = make_layer('type: "Silence"')
    bottom = make_blobs([X, Y])
    layer.SetUp(bottom, [])
    assert layer.Forward(bottom, []) == 0.0
    for b in bottom:
        b.diff[...] = 7.0
    layer.Backward([], [True, False], bottom)
    assert np.all(bottom[0].diff == 0)
    assert np.all(bottom[1].diff == 7.0)
