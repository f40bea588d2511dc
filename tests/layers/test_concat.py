import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(5)
A = rng.standard_normal((2, 3, 4))
B = rng.standard_normal((2, 1, 4))
C = rng.standard_normal((1, 3, 4))


class TestConcat(LayerTestCase):
    layer_type = "Concat"
    cases = [
        Case('type: "Concat"', [A, B, A], extra={"axis": 1}),
        Case('type: "Concat" concat_param { axis: 0 }', [C, A], extra={"axis": 0}),
        Case('type: "Concat" concat_param { axis: -1 }', [A, A], extra={"axis": 2}),
        Case('type: "Concat" concat_param { concat_dim: 0 axis: 1 }', [A, C],
             extra={"axis": 0}),
    ]

    def reference(self, case, bottoms, layer):
        return [np.concatenate(bottoms, axis=case.extra["axis"])]


def _setup(text, arrays):
    layer = make_layer(text)
    bottom = make_blobs(arrays)
    top = [Blob(())]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_one_bottom_shares_data_and_diff():
    layer, bottom, top = _setup('type: "Concat"', [A])
    layer.Forward(bottom, top)
    assert top[0].shares_data_with(bottom[0])
    np.testing.assert_array_equal(top[0].data, A.astype(np.float32))
    top[0].diff[...] = 2.0
    layer.Backward(top, [True], bottom)
    assert np.all(bottom[0].diff == 2.0)


def test_mismatched_shape_names_bottom():
    with pytest.raises(ShapeError, match=r"bottom\[2\]"):
        _setup('type: "Concat"', [A, B, C])


def test_mismatched_num_axes():
    with pytest.raises(ShapeError, match=r"bottom\[1\]"):
        _setup('type: "Concat"', [A, A.reshape(2, 12)])


def test_axis_out_of_range():
    with pytest.raises(ShapeError, match="axis"):
        _setup('type: "Concat" concat_param { axis: 3 }', [A, A])
    with pytest.raises(ShapeError, match="concat_dim"):
        _setup('type: "Concat" concat_param { concat_dim: 3 }', [A, A])
