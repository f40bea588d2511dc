import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(20)
A, B, C = (rng.uniform(0.3, 1.5, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))
           for _ in range(3))
# Well separated values for MAX so that the gradient check does not cross a tie.
M = rng.permutation(72).reshape(3, 2, 3, 4) * 0.1 - 3.6


class TestEltwise(LayerTestCase):
    layer_type = "Eltwise"
    cases = [
        Case('type: "Eltwise" eltwise_param { operation: PROD }', [A, B]),
        Case('type: "Eltwise" eltwise_param { operation: PROD }', [A, B, C]),
        Case('type: "Eltwise" eltwise_param { operation: PROD '
             'stable_prod_grad: false }', [A, B, C]),
        Case('type: "Eltwise"', [A, B]),
        Case('type: "Eltwise" eltwise_param { operation: SUM coeff: 1.5 coeff: -1 '
             'coeff: 0.25 }', [A, B, C]),
        Case('type: "Eltwise" eltwise_param { operation: MAX }', [M[0], M[1]]),
        Case('type: "Eltwise" eltwise_param { operation: MAX }', [M[0], M[1], M[2]]),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.eltwise_param
        if p.operation == p.PROD:
            return [np.prod(bottoms, axis=0)]
        if p.operation == p.SUM:
            c = list(p.coeff) or [1.0] * len(bottoms)
            return [sum(ci * b for ci, b in zip(c, bottoms, strict=True))]
        return [np.max(bottoms, axis=0)]


def _setup(text, arrays):
    layer = make_layer(text)
    bottom = make_blobs(arrays, np.float64)
    top = [Blob((), dtype=np.float64)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_eltwise_max_ties_follow_caffe():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 1.0, 3.0])
    c = np.array([1.0, 2.0, 2.0])
    layer, bottom, top = _setup('type: "Eltwise" eltwise_param { operation: MAX }',
                                [a, b, c])
    layer.Forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.Backward(top, [True, True, True], bottom)
    # a vs b tie -> b; a later bottom must be strictly greater to win.
    np.testing.assert_array_equal(bottom[0].diff, [0, 1, 0])
    np.testing.assert_array_equal(bottom[1].diff, [1, 0, 1])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0, 0])


def test_eltwise_shape_mismatch_names_bottoms():
    layer = make_layer('type: "Eltwise" bottom: "a" bottom: "b" top: "y"')
    bottom = make_blobs([A, A[:, :2]])
    with pytest.raises(ShapeError, match=r"bottom\[1\] 'b'.*bottom\[0\] 'a'.*"
                                         r"\(2, 3, 4\).*\(2, 2, 4\)"):
        layer.SetUp(bottom, [Blob(())])


def test_eltwise_coeff_count():
    layer = make_layer('type: "Eltwise" eltwise_param { coeff: 1 coeff: 2 coeff: 3 }')
    with pytest.raises(LayerSetupError, match="once per bottom"):
        layer.SetUp(make_blobs([A, B]), [Blob(())])


def test_eltwise_coeff_only_for_sum():
    layer = make_layer('type: "Eltwise" eltwise_param { operation: PROD coeff: 1 '
                       'coeff: 2 }')
    with pytest.raises(LayerSetupError, match="SUM"):
        layer.SetUp(make_blobs([A, B]), [Blob(())])


def test_eltwise_needs_two_bottoms():
    layer = make_layer('type: "Eltwise"')
    with pytest.raises(LayerSetupError, match="at least 2"):
        layer.SetUp(make_blobs([A]), [Blob(())])
