import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(1)
X = rng.standard_normal((3, 4)) * 2
T = rng.random((3, 4))
X4 = rng.standard_normal((2, 3, 2))
T4 = (rng.random((2, 3, 2)) > 0.5).astype(float)
T4[0, 1, 0] = T4[1, 2, 1] = -1  # ignored


def sce_ref(x, t, ignore=None, mode="BATCH_SIZE"):
    x = np.asarray(x, np.float64)
    t = np.asarray(t, np.float64).reshape(x.shape)
    p = 1 / (1 + np.exp(-x))
    per = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    keep = np.ones(x.shape, bool) if ignore is None else t.astype(int) != ignore
    n = {"FULL": x.size, "VALID": int(keep.sum()), "BATCH_SIZE": x.shape[0],
         "NONE": 1}[mode]
    return per[keep].sum() / max(n, 1)


class TestSigmoidCrossEntropyLoss(LayerTestCase):
    layer_type = "SigmoidCrossEntropyLoss"
    cases = [
        Case('type: "SigmoidCrossEntropyLoss"', [X, T], check_bottom=0,
             extra={"mode": "BATCH_SIZE"}),
        Case('type: "SigmoidCrossEntropyLoss" loss_weight: 0.5 '
             'loss_param { normalization: FULL }', [X, T], check_bottom=0,
             extra={"mode": "FULL"}),
        Case('type: "SigmoidCrossEntropyLoss" loss_param { normalize: true }',
             [X, T], check_bottom=0, extra={"mode": "VALID"}),
        Case('type: "SigmoidCrossEntropyLoss" loss_param { ignore_label: -1 '
             'normalization: VALID }', [X4, T4], check_bottom=0,
             extra={"mode": "VALID", "ignore": -1}),
        Case('type: "SigmoidCrossEntropyLoss" loss_param { ignore_label: -1 '
             'normalization: NONE }', [X4, T4.reshape(2, 6)], check_bottom=0,
             extra={"mode": "NONE", "ignore": -1}),
    ]

    def reference(self, case, bottoms, layer):
        e = case.extra
        return [np.array(sce_ref(bottoms[0], bottoms[1], e.get("ignore"), e["mode"]))]


def _setup(text, arrays, dtype=np.float64):
    layer = make_layer(text)
    bottom = make_blobs(arrays, dtype)
    top = [Blob((), dtype=dtype)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_stable_for_large_logits():
    x = np.array([[1000.0, -1000.0, 80.0, -80.0]])
    t = np.array([[1.0, 0.0, 0.0, 1.0]])
    layer, bottom, top = _setup('type: "SigmoidCrossEntropyLoss"', [x, t], np.float32)
    layer.Forward(bottom, top)
    assert float(top[0].data) == pytest.approx(160.0, rel=1e-6)
    layer.Backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, [[0, 0, 1, -1]], atol=1e-6)
    assert np.all(np.isfinite(bottom[0].diff))


def test_ignored_elements_get_zero_gradient():
    layer, bottom, top = _setup(
        'type: "SigmoidCrossEntropyLoss" loss_param { ignore_label: -1 }', [X4, T4])
    layer.Forward(bottom, top)
    layer.Backward(top, [True, False], bottom)
    assert np.all(bottom[0].diff[T4 == -1] == 0)


def test_count_mismatch_is_shape_error():
    with pytest.raises(ShapeError, match="count"):
        _setup('type: "SigmoidCrossEntropyLoss"', [X, T[:, :3]])


def test_no_gradient_to_targets():
    layer, bottom, top = _setup('type: "SigmoidCrossEntropyLoss"', [X, T])
    layer.Forward(bottom, top)
    with pytest.raises(LayerSetupError, match="label"):
        layer.Backward(top, [False, True], bottom)
    assert not layer.allow_force_backward(1)
