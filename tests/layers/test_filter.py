import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(0)
A = rng.standard_normal((5, 3))
B = rng.standard_normal((5, 2, 2))
SEL = np.array([1.0, 0.0, 0.0, 2.5, -1.0])
SEL4 = np.array([0.0, 1.0, 0.0, 0.0, 0.0]).reshape(5, 1, 1)
TEXT = 'type: "Filter"'


class TestFilter(LayerTestCase):
    layer_type = "Filter"
    cases = [
        Case(TEXT, [A, B, SEL], num_tops=2, check_bottom=[0, 1]),
        Case(TEXT, [B, SEL4], check_bottom=[0]),
        Case(TEXT, [A, np.ones(5)], check_bottom=[0]),
    ]

    def reference(self, case, bottoms, layer):
        keep = bottoms[-1].reshape(-1) != 0
        return [b[keep] for b in bottoms[:-1]]


def _setup(arrays, num_tops=None, dtype=np.float64):
    layer = make_layer(TEXT)
    bottom = make_blobs(arrays, dtype)
    top = [Blob((), dtype=dtype)
           for _ in range(len(arrays) - 1 if num_tops is None else num_tops)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_setup_uses_all_items_then_filters():
    layer, bottom, top = _setup([A, B, SEL])
    assert top[0].shape == (5, 3) and top[1].shape == (5, 2, 2)
    layer.Forward(bottom, top)
    assert top[0].shape == (3, 3) and top[1].shape == (3, 2, 2)
    np.testing.assert_array_equal(top[0].data, A[[0, 3, 4]])


def test_backward_scatters_and_zeros_the_rest():
    layer, bottom, top = _setup([A, B, SEL])
    layer.Forward(bottom, top)
    for t in top:
        t.diff[...] = 1.0 + np.arange(t.count).reshape(t.shape)
    bottom[0].diff[...] = 7.0
    layer.Backward(top, [True, False, False], bottom)
    want = np.zeros_like(A)
    want[[0, 3, 4]] = top[0].diff
    np.testing.assert_array_equal(bottom[0].diff, want)


def test_no_item_selected_is_data_error():
    layer, bottom, top = _setup([A, np.zeros(5)])
    with pytest.raises(DataError, match=r"Filter layer 'test'.*selects no item"):
        layer.Forward(bottom, top)


def test_no_gradient_to_selector():
    layer, bottom, top = _setup([A, B, SEL])
    layer.Forward(bottom, top)
    with pytest.raises(LayerSetupError, match="selector"):
        layer.Backward(top, [True, True, True], bottom)
    assert layer.allow_force_backward(0) and layer.allow_force_backward(1)
    assert not layer.allow_force_backward(2)


def test_top_count_must_be_bottom_count_minus_one():
    with pytest.raises(LayerSetupError, match="one top per data bottom"):
        _setup([A, B, SEL], num_tops=1)


@pytest.mark.parametrize("arrays", [
    [A, np.ones((5, 2))],          # selector with a non-singleton axis
    [A, np.ones(4)],               # selector with the wrong N
    [A, B[:4], SEL],               # data bottoms with different N
])
def test_bad_shapes(arrays):
    with pytest.raises(ShapeError, match="bottom\\["):
        _setup(arrays)


def test_needs_two_bottoms():
    with pytest.raises(LayerSetupError, match="at least 2 bottom"):
        _setup([A], num_tops=1)


def test_empty_selection_reshapes_but_forward_fails():
    layer, bottom, top = _setup([A, B, SEL])
    bottom[2].data[...] = 0
    layer.reshape(bottom, top)
    assert top[0].shape == (0, 3) and top[1].shape == (0, 2, 2)
    with pytest.raises(DataError, match="selects no item"):
        layer.Forward(bottom, top)
