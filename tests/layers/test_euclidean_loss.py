import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(2)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((3, 4))
A4 = rng.standard_normal((2, 3, 2))
B4 = rng.standard_normal((2, 6))


class TestEuclideanLoss(LayerTestCase):
    layer_type = "EuclideanLoss"
    cases = [
        Case('type: "EuclideanLoss"', [A, B]),
        Case('type: "EuclideanLoss" loss_weight: 2', [A4, B4]),
    ]

    def reference(self, case, bottoms, layer):
        a, b = bottoms
        return [np.array(((a - b.reshape(a.shape)) ** 2).sum() / (2 * a.shape[0]))]


def _setup(text, arrays, dtype=np.float64):
    layer = make_layer(text)
    bottom = make_blobs(arrays, dtype)
    top = [Blob((), dtype=dtype)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_gradient_to_both_bottoms_scaled_by_loss_weight():
    layer, bottom, top = _setup('type: "EuclideanLoss" loss_weight: 3', [A, B])
    loss = layer.Forward(bottom, top)
    assert loss == pytest.approx(3 * ((A - B) ** 2).sum() / 6)
    layer.Backward(top, [True, True], bottom)
    np.testing.assert_allclose(bottom[0].diff, 3 * (A - B) / 3)
    np.testing.assert_allclose(bottom[1].diff, -3 * (A - B) / 3)
    assert layer.allow_force_backward(1)


def test_count_mismatch_is_shape_error():
    with pytest.raises(ShapeError, match="count"):
        _setup('type: "EuclideanLoss"', [A, B[:, :3]])


def test_batch_mismatch_is_shape_error():
    with pytest.raises(ShapeError, match="first dimension"):
        _setup('type: "EuclideanLoss"', [A, B.reshape(4, 3)])
