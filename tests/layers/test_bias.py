import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(21)
X = rng.standard_normal((2, 3, 4))
FILL = 'filler { type: "uniform" min: -1 max: 1 }'


class TestBias(LayerTestCase):
    layer_type = "Bias"
    cases = [
        Case(f'type: "Bias" bias_param {{ {FILL} }}', [X]),
        Case(f'type: "Bias" bias_param {{ axis: 2 {FILL} }}', [X]),
        Case(f'type: "Bias" bias_param {{ axis: 0 num_axes: -1 {FILL} }}', [X]),
        Case(f'type: "Bias" bias_param {{ axis: -2 num_axes: 2 {FILL} }}', [X]),
        Case(f'type: "Bias" bias_param {{ num_axes: 0 {FILL} }}', [X]),
        Case('type: "Bias"', [X, rng.standard_normal(3)]),
        Case('type: "Bias" bias_param { axis: 0 }', [X, rng.standard_normal((2, 3))]),
        Case('type: "Bias" bias_param { axis: 5 }', [X, np.array(0.7)]),
    ]

    def reference(self, case, bottoms, layer):
        x = bottoms[0]
        p = layer.layer_param.bias_param
        b = bottoms[1] if len(bottoms) > 1 else np.asarray(layer.blobs[0].data,
                                                           dtype=np.float64)
        axis = 0 if b.ndim == 0 else p.axis % x.ndim
        shape = (1,) * axis + b.shape + (1,) * (x.ndim - axis - b.ndim)
        return [x + b.reshape(shape)]


def _setup(text, arrays):
    layer = make_layer(text)
    bottom = make_blobs(arrays)
    top = [Blob(())]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_bias_param_shapes_and_default_filler():
    layer, _, _ = _setup('type: "Bias"', [X])
    assert layer.blobs[0].shape == (3,)
    assert np.all(layer.blobs[0].data == 0)
    layer, _, _ = _setup('type: "Bias" bias_param { axis: 1 num_axes: -1 }', [X])
    assert layer.blobs[0].shape == (3, 4)
    layer, _, _ = _setup('type: "Bias" bias_param { num_axes: 0 }', [X])
    assert layer.blobs[0].shape == ()


def test_bias_bottom1_shape_mismatch():
    with pytest.raises(ShapeError, match=r"bottom\[1\].*\(4,\)"):
        _setup('type: "Bias"', [X, np.ones(4)])


def test_bias_num_axes_past_end():
    with pytest.raises(ShapeError, match="extends past"):
        _setup('type: "Bias" bias_param { axis: 2 num_axes: 2 }', [X])


def test_bias_bad_num_axes():
    with pytest.raises(LayerSetupError, match="num_axes"):
        _setup('type: "Bias" bias_param { num_axes: -2 }', [X])


def test_bias_bad_axis():
    with pytest.raises(ShapeError, match="axis 3"):
        _setup('type: "Bias" bias_param { axis: 3 }', [X])
