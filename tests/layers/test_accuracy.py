import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(3)
X = rng.standard_normal((6, 5))
L = np.array([0, 1, 4, 3, 1, 2], dtype=float)
X3 = rng.standard_normal((3, 2, 4))  # (T, N, C) with axis 2
L3 = np.array([[0, 3], [-1, 2], [1, -1]], dtype=float)
XT = np.array([[1.0, 1.0, 0.0], [2.0, 1.0, 1.0], [0.0, 0.5, 0.5]])  # ties
LTIE = np.array([1.0, 2.0, 2.0])

NO_GRAD = "Accuracy has no gradient"


def accuracy_ref(x, labels, axis=1, top_k=1, ignore=None):
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    c = x.shape[-1]
    x = x.reshape(-1, c)
    lab = np.asarray(labels).reshape(-1).astype(int)
    hits, seen = np.zeros(c), np.zeros(c)
    correct = count = 0
    for row, y in zip(x, lab, strict=True):
        if ignore is not None and y == ignore:
            continue
        ok = np.sum(row >= row[y]) - 1 < top_k
        correct += ok
        count += 1
        seen[y] += 1
        hits[y] += ok
    per = np.where(seen > 0, hits / np.maximum(seen, 1), 0)
    return correct / count if count else 0.0, per


class TestAccuracy(LayerTestCase):
    layer_type = "Accuracy"
    cases = [
        Case('type: "Accuracy"', [X, L], gradient=False, why=NO_GRAD),
        Case('type: "Accuracy" accuracy_param { top_k: 2 }', [X, L], gradient=False,
             why=NO_GRAD, extra={"top_k": 2}),
        Case('type: "Accuracy" accuracy_param { top_k: 3 }', [X, L], num_tops=2,
             gradient=False, why=NO_GRAD, extra={"top_k": 3}),
        Case('type: "Accuracy" accuracy_param { axis: 2 ignore_label: -1 }', [X3, L3],
             num_tops=2, gradient=False, why=NO_GRAD, extra={"axis": 2, "ignore": -1}),
        Case('type: "Accuracy" accuracy_param { axis: -1 top_k: 2 ignore_label: -1 }',
             [X3, L3], gradient=False, why=NO_GRAD,
             extra={"axis": 2, "ignore": -1, "top_k": 2}),
        Case('type: "Accuracy"', [XT, LTIE], num_tops=2, gradient=False, why=NO_GRAD),
        Case('type: "Accuracy" accuracy_param { top_k: 2 }', [XT, LTIE],
             gradient=False, why=NO_GRAD, extra={"top_k": 2}),
    ]

    def reference(self, case, bottoms, layer):
        e = case.extra
        acc, per = accuracy_ref(bottoms[0], bottoms[1], e.get("axis", 1),
                                e.get("top_k", 1), e.get("ignore"))
        return [np.array(acc), per][: case.num_tops]


def _run(text, arrays, ntop=1):
    layer = make_layer(text)
    bottom = make_blobs(arrays)
    top = [Blob(()) for _ in range(ntop)]
    layer.SetUp(bottom, top)
    loss = layer.Forward(bottom, top)
    return layer, bottom, top, loss


def test_ties_count_against_the_label():
    # Caffe 1.0: correct iff fewer than top_k other classes score >= the label's.
    _, _, top, _ = _run('type: "Accuracy"', [[[1.0, 1.0, 0.0]], [0.0]])
    assert float(top[0].data) == 0.0
    _, _, top, _ = _run('type: "Accuracy" accuracy_param { top_k: 2 }',
                        [[[1.0, 1.0, 0.0]], [0.0]])
    assert float(top[0].data) == 1.0


def test_conformance_example_values():
    x = [[0.862, 0.626, 0.785, 0.280], [0.173, 0.992, -0.926, 0.092],
         [-0.213, 0.850, -0.457, -0.001], [-0.941, -0.295, 0.449, -0.508],
         [-0.492, 0.976, 0.021, 0.997]]
    _, _, top, _ = _run('type: "Accuracy" accuracy_param { top_k: 2 }',
                        [x, [0, 1, 2, 3, 1]])
    assert float(top[0].data) == pytest.approx(0.6)


def test_not_a_loss_and_scalar_top():
    layer, _, top, loss = _run('type: "Accuracy"', [X, L], ntop=2)
    assert loss == 0.0 and layer.loss_weights == [0.0, 0.0]
    assert top[0].shape == () and top[1].shape == (5,)


def test_all_ignored_gives_zero():
    _, _, top, _ = _run('type: "Accuracy" accuracy_param { ignore_label: 7 }',
                        [X, np.full(6, 7.0)])
    assert float(top[0].data) == 0.0


def test_top_k_larger_than_classes():
    with pytest.raises(ShapeError, match="top_k"):
        _run('type: "Accuracy" accuracy_param { top_k: 6 }', [X, L])


def test_label_count_mismatch():
    with pytest.raises(ShapeError, match="bottom\\[1\\]"):
        _run('type: "Accuracy"', [X, L[:5]])


def test_label_out_of_range():
    with pytest.raises(DataError, match="label 5"):
        _run('type: "Accuracy"', [X, [0, 1, 2, 3, 5, 0]])


def test_backward_raises():
    layer, bottom, top, _ = _run('type: "Accuracy"', [X, L])
    with pytest.raises(LayerSetupError, match="no gradient"):
        layer.Backward(top, [True, False], bottom)
    layer.Backward(top, [False, False], bottom)
