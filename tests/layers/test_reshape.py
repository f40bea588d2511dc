import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(7)
X = rng.standard_normal((2, 3, 4))


def shape_text(*dims, extra=""):
    d = " ".join(f"dim: {v}" for v in dims)
    return f'type: "Reshape" reshape_param {{ shape {{ {d} }} {extra} }}'


class TestReshape(LayerTestCase):
    layer_type = "Reshape"
    cases = [
        Case(shape_text(0, -1, 2, extra="axis: 1 num_axes: 2"), [X],
             extra={"shape": (2, 3, 2, 2)}),
        Case(shape_text(6, 4), [X], extra={"shape": (6, 4)}),
        Case(shape_text(0, -1), [X], extra={"shape": (2, 12)}),
        Case(shape_text(-1), [X], extra={"shape": (24,)}),
        Case(shape_text(1, extra="axis: -1 num_axes: 0"), [X],
             extra={"shape": (2, 3, 4, 1)}),
        Case(shape_text(2, 2, extra="axis: 2"), [X], extra={"shape": (2, 3, 2, 2)}),
        Case(shape_text(-1, 1, extra="axis: 0 num_axes: 1"), [X],
             extra={"shape": (2, 1, 3, 4)}),
        Case(shape_text(0, 0, 0), [X], extra={"shape": (2, 3, 4)}),
    ]

    def reference(self, case, bottoms, layer):
        return [bottoms[0].reshape(case.extra["shape"])]

    def test_propagate_down_false(self):
        # The top shares the bottom's diff (as in Caffe), so there is no separate
        # bottom diff to leave untouched; check the sharing instead.
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
    layer, bottom, top = _setup(shape_text(4, 6), [X])
    layer.Forward(bottom, top)
    assert top[0].shares_data_with(bottom[0])
    bottom[0].data[0, 0, 0] = 42
    assert top[0].data[0, 0] == 42


def test_follows_bottom_reshape():
    layer, bottom, top = _setup(shape_text(0, -1), [X])
    bottom[0].reshape((5, 2, 2))
    layer.Forward(bottom, top)
    assert top[0].shape == (5, 4)


def test_two_inferred_dims():
    with pytest.raises(LayerSetupError, match="-1"):
        _setup(shape_text(-1, -1), [X])


def test_count_mismatch():
    with pytest.raises(ShapeError, match="24"):
        _setup(shape_text(5, 5), [X])
    with pytest.raises(ShapeError, match="divisible"):
        _setup(shape_text(5, -1), [X])


def test_copy_without_bottom_axis():
    with pytest.raises(ShapeError, match="copy"):
        _setup(shape_text(0, 0, 0, 0), [X])


def test_axis_out_of_range():
    with pytest.raises(ShapeError, match="axis"):
        _setup(shape_text(1, extra="axis: 4"), [X])
    with pytest.raises(ShapeError, match="num_axes"):
        _setup(shape_text(12, extra="axis: 1 num_axes: 3"), [X])


def test_not_in_place():
    layer = make_layer(shape_text(24))
    bottom = make_blobs([X])
    with pytest.raises(LayerSetupError, match="in place"):
        layer.SetUp(bottom, bottom)
