import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(13)
X = rng.standard_normal((5, 4)) * 2
L = np.array([0, 3, 1, 1, 2], dtype=float)


def hinge_ref(x, labels, l2):
    x = x.reshape(len(labels), -1)
    s = -np.ones_like(x)
    s[np.arange(len(labels)), labels.astype(int)] = 1
    m = np.maximum(0, 1 - s * x)
    return ((m * m).sum() if l2 else m.sum()) / len(labels)


class TestHingeLoss(LayerTestCase):
    layer_type = "HingeLoss"
    cases = [
        # Margins 1 - s*x have kinks at x = +-1; keep inputs away from them.
        Case('type: "HingeLoss"', [X, L], check_bottom=0, kink=1.0, kink_range=0.02,
             stepsize=1e-3),
        Case('type: "HingeLoss" hinge_loss_param { norm: L2 }', [X, L],
             check_bottom=0, kink=1.0, kink_range=0.02, stepsize=1e-3,
             extra={"l2": True}),
    ]

    def reference(self, case, bottoms, layer):
        return [np.array(hinge_ref(bottoms[0], bottoms[1], case.extra.get("l2")))]


def test_label_shape_and_no_label_gradient():
    layer = make_layer('type: "HingeLoss"')
    with pytest.raises(ShapeError, match="bottom\\[1\\]"):
        layer.SetUp(make_blobs([X, np.zeros((5, 2))]), [Blob(())])
    layer = make_layer('type: "HingeLoss"')
    bottom = make_blobs([X, L])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    layer.Forward(bottom, top)
    with pytest.raises(LayerSetupError, match="label"):
        layer.Backward(top, [True, True], bottom)
