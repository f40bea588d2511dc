import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(11)
X = rng.standard_normal((2, 3, 5, 4))
REF = rng.standard_normal((1, 2, 3, 2))


class TestCrop(LayerTestCase):
    layer_type = "Crop"
    cases = [
        Case('type: "Crop"', [X, REF], extra={"win": np.s_[:, :, 0:3, 0:2]}),
        Case('type: "Crop" crop_param { offset: 1 }', [X, REF],
             extra={"win": np.s_[:, :, 1:4, 1:3]}),
        Case('type: "Crop" crop_param { axis: 1 offset: 1 offset: 2 offset: 2 }',
             [X, REF], extra={"win": np.s_[:, 1:3, 2:5, 2:4]}),
        Case('type: "Crop" crop_param { axis: -2 offset: 2 offset: 0 }', [X, REF],
             extra={"win": np.s_[:, :, 2:5, 0:2]}),
        Case('type: "Crop" crop_param { axis: 0 offset: 1 offset: 0 offset: 0 '
             'offset: 1 }', [X, REF], extra={"win": np.s_[1:2, 0:2, 0:3, 1:3]}),
    ]

    def reference(self, case, bottoms, layer):
        return [bottoms[0][case.extra["win"]]]


def _setup(text, arrays):
    layer = make_layer(text)
    bottom = make_blobs(arrays, np.float64)
    top = [Blob((), dtype=np.float64)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_backward_zero_outside_window():
    layer, bottom, top = _setup('type: "Crop" crop_param { offset: 1 }', [X, REF])
    layer.Forward(bottom, top)
    top[0].diff[...] = 1.0
    bottom[0].diff[...] = 9.0
    layer.Backward(top, [True, False], bottom)
    d = bottom[0].diff
    assert d.sum() == top[0].count
    assert np.all(d[:, :, 1:4, 1:3] == 1.0)


def test_crop_too_large():
    with pytest.raises(ShapeError, match="axis 2"):
        _setup('type: "Crop" crop_param { offset: 3 }', [X, REF])


def test_wrong_number_of_offsets():
    with pytest.raises(LayerSetupError, match="offset"):
        _setup('type: "Crop" crop_param { offset: 1 offset: 1 offset: 1 }', [X, REF])


def test_axis_count_mismatch():
    with pytest.raises(ShapeError, match=r"bottom\[1\]"):
        _setup('type: "Crop"', [X, REF.reshape(2, 3, 2)])
