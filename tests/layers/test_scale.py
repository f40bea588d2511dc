import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(22)
X = rng.standard_normal((2, 3, 4))
FILL = 'filler { type: "uniform" min: -1 max: 1 }'
BFILL = 'bias_filler { type: "uniform" min: -1 max: 1 }'


class TestScale(LayerTestCase):
    layer_type = "Scale"
    cases = [
        Case(f'type: "Scale" scale_param {{ {FILL} }}', [X]),
        Case(f'type: "Scale" scale_param {{ axis: 1 num_axes: 2 bias_term: true {FILL} '
             f'{BFILL} }}', [X]),
        Case(f'type: "Scale" scale_param {{ axis: 0 num_axes: -1 {FILL} }}', [X]),
        Case(f'type: "Scale" scale_param {{ axis: -1 bias_term: true {FILL} {BFILL} }}',
             [X]),
        Case(f'type: "Scale" scale_param {{ num_axes: 0 bias_term: true {FILL} '
             f'{BFILL} }}', [X]),
        Case('type: "Scale" scale_param { axis: 1 }', [X, rng.standard_normal(3)]),
        Case(f'type: "Scale" scale_param {{ axis: 0 bias_term: true {BFILL} }}',
             [X, rng.standard_normal((2, 3))]),
        Case(f'type: "Scale" scale_param {{ bias_term: true {BFILL} }}',
             [X, np.array(1.3)]),
    ]

    def reference(self, case, bottoms, layer):
        x = bottoms[0]
        p = layer.layer_param.scale_param
        blobs = [np.asarray(b.data, dtype=np.float64) for b in layer.blobs]
        s = bottoms[1] if len(bottoms) > 1 else blobs.pop(0)
        axis = 0 if s.ndim == 0 else p.axis % x.ndim
        shape = (1,) * axis + s.shape + (1,) * (x.ndim - axis - s.ndim)
        y = x * s.reshape(shape)
        if p.bias_term:
            y = y + blobs[0].reshape(shape)
        return [y]


def _setup(text, arrays):
    layer = make_layer(text)
    bottom = make_blobs(arrays)
    top = [Blob(())]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_scale_default_fillers_and_shapes():
    layer, _, _ = _setup('type: "Scale" scale_param { bias_term: true }', [X])
    assert [b.shape for b in layer.blobs] == [(3,), (3,)]
    assert np.all(layer.blobs[0].data == 1) and np.all(layer.blobs[1].data == 0)
    layer, _, _ = _setup('type: "Scale" scale_param { num_axes: -1 }', [X])
    assert layer.blobs[0].shape == (3, 4)
    layer, _, _ = _setup('type: "Scale" scale_param { num_axes: 0 axis: 2 }', [X])
    assert layer.blobs[0].shape == ()
    layer, _, _ = _setup('type: "Scale" scale_param { bias_term: true }',
                         [X, np.ones((3, 4))])
    assert [b.shape for b in layer.blobs] == [(3, 4)]


def test_scale_bottom1_shape_mismatch():
    with pytest.raises(ShapeError, match=r"bottom\[1\].*\(2, 3\)"):
        _setup('type: "Scale" scale_param { axis: 1 }', [X, np.ones((2, 3))])


def test_scale_num_axes_past_end():
    with pytest.raises(ShapeError, match="extends past"):
        _setup('type: "Scale" scale_param { axis: 2 num_axes: 3 }', [X])


def test_scale_bad_num_axes():
    with pytest.raises(LayerSetupError, match="num_axes"):
        _setup('type: "Scale" scale_param { num_axes: -3 }', [X])


def test_scale_in_place_gradients_match():
    text = f'type: "Scale" scale_param {{ bias_term: true {FILL} {BFILL} }}'
    results = []
    for in_place in (False, True):
        layer = make_layer(text)
        bottom = make_blobs([X], np.float64)
        top = bottom if in_place else [Blob((), dtype=np.float64)]
        backend.set_random_seed(5)
        with backend.dtype_scope(np.float64):
            layer.SetUp(bottom, top)
        layer.Forward(bottom, top)
        y = top[0].data.copy()
        top[0].diff[...] = np.arange(24).reshape(X.shape) * 0.1
        for b in layer.blobs:
            b.diff[...] = 0
        layer.Backward(top, [True], bottom)
        results.append((y, bottom[0].diff.copy(),
                        [b.diff.copy() for b in layer.blobs]))
    (y0, d0, p0), (y1, d1, p1) = results
    np.testing.assert_allclose(y1, y0)
    np.testing.assert_allclose(d1, d0)
    for a, b in zip(p0, p1, strict=True):
        np.testing.assert_allclose(b, a)
