import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(6)
X = rng.standard_normal((2, 3, 4))


class TestSplit(LayerTestCase):
    layer_type = "Split"
    cases = [
        Case('type: "Split"', [X], num_tops=1),
        Case('type: "Split"', [X], num_tops=2),
        Case('type: "Split"', [X], num_tops=3),
    ]

    def reference(self, case, bottoms, layer):
        return [bottoms[0]] * case.num_tops


def test_tops_share_data_and_backward_sums():
    layer = make_layer('type: "Split"')
    bottom = make_blobs([X], np.float64)
    top = [Blob((), dtype=np.float64) for _ in range(3)]
    layer.SetUp(bottom, top)
    layer.Forward(bottom, top)
    assert all(t.shares_data_with(bottom[0]) for t in top)
    for k, t in enumerate(top):
        t.diff[...] = k + 1.0
    bottom[0].diff[...] = 100.0
    layer.Backward(top, [True], bottom)
    assert np.all(bottom[0].diff == 6.0)


def test_not_in_place():
    layer = make_layer('type: "Split"')
    bottom = make_blobs([X])
    with pytest.raises(LayerSetupError, match="in place"):
        layer.SetUp(bottom, [bottom[0]])
