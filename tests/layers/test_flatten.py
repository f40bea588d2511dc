import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(8)
X = rng.standard_normal((2, 3, 2, 2))


class TestFlatten(LayerTestCase):
    layer_type = "Flatten"
    cases = [
        Case('type: "Flatten"', [X], extra={"shape": (2, 12)}),
        Case('type: "Flatten" flatten_param { axis: 1 end_axis: -2 }', [X],
             extra={"shape": (2, 6, 2)}),
        Case('type: "Flatten" flatten_param { axis: 0 }', [X], extra={"shape": (24,)}),
        Case('type: "Flatten" flatten_param { axis: 2 end_axis: 2 }', [X],
             extra={"shape": (2, 3, 2, 2)}),
    ]

    def reference(self, case, bottoms, layer):
        return [bottoms[0].reshape(case.extra["shape"])]

    def test_propagate_down_false(self):
        # The top shares the bottom's diff (as in Caffe); check the sharing.
        for case in self.cases:
            layer, bottom, top = self.build(case, np.float64)
            layer.Forward(bottom, top)
            top[0].diff[...] = 5.0
            assert np.all(bottom[0].diff == 5.0)


def _setup(text, arrays):
    layer = make_layer(text)
    bottom = make_blobs(arrays)
    top = [Blob(())]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_shares_data():
    _, bottom, top = _setup('type: "Flatten"', [X])
    assert top[0].shares_data_with(bottom[0])


def test_bad_axes():
    with pytest.raises(ShapeError, match="axis"):
        _setup('type: "Flatten" flatten_param { axis: 4 }', [X])
    with pytest.raises(LayerSetupError, match="end_axis"):
        _setup('type: "Flatten" flatten_param { axis: 2 end_axis: 1 }', [X])
