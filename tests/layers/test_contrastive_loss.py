import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(21)
N, C = 6, 3


def _pairs(margin, legacy=False):
    """Pairs whose distances stay well away from the margin's kink."""
    a = rng.standard_normal((N, C))
    u = rng.standard_normal((N, C))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    # Distances: half on the active side of the margin, half beyond it.
    if legacy:
        dist = np.sqrt(margin) * np.array([0.4, 0.6, 1.5, 0.5, 1.8, 0.7])
    else:
        dist = margin * np.array([0.4, 0.6, 1.5, 0.5, 1.8, 0.7])
    return a, a - dist[:, None] * u


A, B = _pairs(1.0)
A2, B2 = _pairs(2.0)
AL, BL = _pairs(1.0, legacy=True)
Y = np.array([1, 0, 0, 1, 0, 0], dtype=float)


def contrastive_ref(a, b, y, margin=1.0, legacy=False):
    a = np.asarray(a, dtype=np.float64).reshape(len(y), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(y), -1)
    d2 = ((a - b) ** 2).sum(axis=1)
    similar = np.asarray(y).reshape(-1).astype(int) != 0
    if legacy:
        far = np.maximum(margin - d2, 0)
    else:
        far = np.maximum(margin - np.sqrt(d2), 0) ** 2
    return np.where(similar, d2, far).sum() / (2 * len(y))


class TestContrastiveLoss(LayerTestCase):
    layer_type = "ContrastiveLoss"
    cases = [
        Case('type: "ContrastiveLoss"', [A, B, Y], check_bottom=[0, 1],
             stepsize=1e-3),
        Case('type: "ContrastiveLoss" contrastive_loss_param { margin: 2 }',
             [A2, B2, Y], check_bottom=[0, 1], stepsize=1e-3,
             extra={"margin": 2.0}),
        Case('type: "ContrastiveLoss" loss_weight: 0.5 '
             'contrastive_loss_param { legacy_version: true }',
             [AL, BL, Y], check_bottom=[0, 1], stepsize=1e-3,
             extra={"legacy": True}),
        Case('type: "ContrastiveLoss"',
             [A.reshape(N, C, 1, 1), B.reshape(N, C, 1, 1), Y.reshape(N, 1, 1, 1)],
             check_bottom=[0, 1], stepsize=1e-3),
    ]

    def reference(self, case, bottoms, layer):
        e = case.extra
        return [np.array(contrastive_ref(bottoms[0], bottoms[1], bottoms[2],
                                         e.get("margin", 1.0), e.get("legacy", False)))]


def _setup(text, arrays, dtype=np.float64):
    layer = make_layer(text)
    bottom = make_blobs(arrays, dtype)
    top = [Blob((), dtype=dtype)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_backward_matches_caffe_formula_including_eps():
    margin = 1.0
    layer, bottom, top = _setup('type: "ContrastiveLoss" loss_weight: 3', [A, B, Y])
    layer.Forward(bottom, top)
    layer.Backward(top, [True, True, False], bottom)
    diff = A - B
    dist = np.sqrt((diff ** 2).sum(axis=1))
    alpha = 3.0 / N
    mdist = margin - dist
    beta = -alpha * mdist / (dist + 1e-4)
    want = np.where(Y[:, None] != 0, alpha * diff,
                    np.where(mdist[:, None] > 0, beta[:, None] * diff, 0.0))
    np.testing.assert_allclose(bottom[0].diff, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(bottom[1].diff, -want, rtol=1e-12, atol=1e-15)


def test_identical_dissimilar_pair_has_finite_zero_gradient():
    a = rng.standard_normal((2, C))
    layer, bottom, top = _setup('type: "ContrastiveLoss"', [a, a.copy(), [0.0, 0.0]])
    layer.Forward(bottom, top)
    # Each pair contributes margin^2 = 1, divided by 2N.
    assert float(top[0].data) == pytest.approx(0.5)
    layer.Backward(top, [True, True, False], bottom)
    assert np.all(np.isfinite(bottom[0].diff)) and np.all(bottom[0].diff == 0)


def test_labels_are_truncated_to_int():
    # 0.7 truncates to 0 (dissimilar), 2 to similar.
    y = np.array([0.7, 2.0, 0, 1, 0, 0])
    layer, bottom, top = _setup('type: "ContrastiveLoss"', [A, B, y])
    layer.Forward(bottom, top)
    want = contrastive_ref(A, B, [0, 1, 0, 1, 0, 0])
    assert float(top[0].data) == pytest.approx(want, rel=1e-12)


def test_force_backward_reaches_a_and_b_only():
    layer = make_layer('type: "ContrastiveLoss"')
    assert layer.allow_force_backward(0)
    assert layer.allow_force_backward(1)
    assert not layer.allow_force_backward(2)


def test_label_gradient_request_writes_zeros():
    layer, bottom, top = _setup('type: "ContrastiveLoss"', [A, B, Y])
    layer.Forward(bottom, top)
    bottom[2].diff[...] = 5.0
    layer.Backward(top, [False, False, True], bottom)
    assert np.all(bottom[2].diff == 0)


def test_shape_errors():
    with pytest.raises(ShapeError, match="bottom\\[0\\] and bottom\\[1\\]"):
        _setup('type: "ContrastiveLoss"', [A, B[:, :2], Y])
    with pytest.raises(ShapeError, match="bottom\\[2\\]"):
        _setup('type: "ContrastiveLoss"', [A, B, np.zeros((N, 2))])
    with pytest.raises(ShapeError, match="\\(N, C\\)"):
        _setup('type: "ContrastiveLoss"',
               [np.zeros((N, C, 2)), np.zeros((N, C, 2)), Y])
    with pytest.raises(ShapeError, match="first dimension"):
        _setup('type: "ContrastiveLoss"', [A, B[:4], Y])


def test_needs_three_bottoms():
    with pytest.raises(LayerSetupError, match="exactly 3 bottom"):
        _setup('type: "ContrastiveLoss"', [A, B])
