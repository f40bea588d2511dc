import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(0)
X = rng.standard_normal((5, 3, 2))
PERM = np.array([4.0, 0.0, 0.0, 2.0])
TEXT = 'type: "BatchReindex"'


class TestBatchReindex(LayerTestCase):
    layer_type = "BatchReindex"
    cases = [
        Case(TEXT, [X, PERM], check_bottom=[0]),
        Case(TEXT, [X[:, :, 0], np.array([1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 1.0])],
             check_bottom=[0]),
        Case(TEXT, [X[:, 0, 0], np.array([3.0])], check_bottom=[0]),
    ]

    def reference(self, case, bottoms, layer):
        return [bottoms[0][bottoms[1].astype(int)]]


def _setup(arrays, dtype=np.float64):
    layer = make_layer(TEXT)
    bottom = make_blobs(arrays, dtype)
    top = [Blob((), dtype=dtype)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_shape_and_scatter_add_backward():
    layer, bottom, top = _setup([X, PERM])
    assert top[0].shape == (4, 3, 2)
    layer.Forward(bottom, top)
    top[0].diff[...] = 1.0
    bottom[0].diff[...] = 9.0
    layer.Backward(top, [True, False], bottom)
    counts = np.array([2.0, 0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(bottom[0].diff,
                                  np.broadcast_to(counts[:, None, None], X.shape))


@pytest.mark.parametrize("bad", [5.0, -1.0, 1.5, np.nan])
def test_bad_index_is_data_error(bad):
    perm = PERM.copy()
    perm[2] = bad
    layer, bottom, top = _setup([X, perm])
    with pytest.raises(DataError) as exc:
        layer.Forward(bottom, top)
    msg = str(exc.value)
    assert "BatchReindex layer 'test'" in msg
    assert repr(float(bad)) in msg and "position 2" in msg and "[0, 5)" in msg


def test_no_gradient_to_indices():
    layer, bottom, top = _setup([X, PERM])
    layer.Forward(bottom, top)
    with pytest.raises(LayerSetupError, match="indices"):
        layer.Backward(top, [True, True], bottom)
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)


def test_indices_must_be_one_axis():
    with pytest.raises(ShapeError, match=r"bottom\[1\].*\(4, 1\)"):
        _setup([X, PERM.reshape(4, 1)])


def test_needs_two_bottoms():
    with pytest.raises(LayerSetupError, match="exactly 2 bottom"):
        _setup([X])
