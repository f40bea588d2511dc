import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(31)
X = rng.uniform(0.05, 2.0, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))


class TestReduction(LayerTestCase):
    layer_type = "Reduction"
    cases = [
        Case('type: "Reduction"', [X]),
        Case('type: "Reduction" reduction_param { operation: SUM axis: 1 coeff: 2 }',
             [X]),
        Case('type: "Reduction" reduction_param { operation: ASUM axis: 1 coeff: 0.5 }',
             [X], kink=0.0, kink_range=0.02),
        Case('type: "Reduction" reduction_param { operation: SUMSQ axis: -1 }', [X]),
        Case('type: "Reduction" reduction_param { operation: MEAN axis: 2 }', [X]),
        Case('type: "Reduction" reduction_param { operation: MEAN coeff: -3 }', [X]),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.reduction_param
        x = bottoms[0]
        axis = p.axis % x.ndim
        flat = x.reshape(x.shape[:axis] + (-1,))
        op = {p.SUM: flat, p.ASUM: np.abs(flat), p.SUMSQ: flat**2, p.MEAN: flat}
        y = op[p.operation].sum(axis=-1)
        if p.operation == p.MEAN:
            y = y / flat.shape[-1]
        return [p.coeff * y]


def test_reduction_top_shapes():
    for axis, shape in [(0, ()), (1, (2,)), (2, (2, 3)), (-1, (2, 3))]:
        layer = make_layer(f'type: "Reduction" reduction_param {{ axis: {axis} }}')
        top = [Blob(())]
        layer.SetUp(make_blobs([X]), top)
        assert top[0].shape == shape


def test_reduction_bad_axis():
    layer = make_layer('type: "Reduction" reduction_param { axis: 3 }')
    with pytest.raises(ShapeError, match="axis 3"):
        layer.SetUp(make_blobs([X]), [Blob(())])
