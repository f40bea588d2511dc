import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.layers.spp import level_geometry
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer


def distinct(shape, seed):
    """Values at least 0.05 apart: no ties, and no argmax switch in a +-1e-2 step."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 - n * 0.025).reshape(shape)


X1 = distinct((2, 2, 7, 6), 0)
X2 = distinct((1, 3, 4, 5), 1)
X3 = distinct((2, 2, 3, 3), 2)


def spp_text(height, pool="MAX"):
    return f'type: "SPP" spp_param {{ pyramid_height: {height} pool: {pool} }}'


def ref_pool(x, kernel, pad, pool):
    """Caffe's Pooling (MAX or AVE, stride = kernel, ceil rounding), by loops."""
    n, c, h, w = x.shape
    out = []
    for size, k, p in zip((h, w), kernel, pad, strict=True):
        o = -(-(size + 2 * p - k) // k) + 1
        if p and (o - 1) * k >= size + p:
            o -= 1
        out.append(o)
    y = np.zeros((n, c, out[0], out[1]))
    for i in range(out[0]):
        for j in range(out[1]):
            h0, w0 = i * kernel[0] - pad[0], j * kernel[1] - pad[1]
            h1 = min(h0 + kernel[0], h + pad[0])
            w1 = min(w0 + kernel[1], w + pad[1])
            area = (h1 - h0) * (w1 - w0)
            win = x[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)]
            if pool == "MAX":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                y[:, :, i, j] = win.sum(axis=(2, 3)) / area
    return y


def ref_spp(x, height, pool):
    n, _, h, w = x.shape
    levels = []
    for level in range(height):
        (kh, ph), (kw, pw) = level_geometry(h, level), level_geometry(w, level)
        levels.append(ref_pool(x, (kh, kw), (ph, pw), pool))
    if height == 1:
        return levels[0]
    return np.concatenate([y.reshape(n, -1) for y in levels], axis=1)


class TestSPP(LayerTestCase):
    layer_type = "SPP"
    cases = [
        Case(spp_text(3), [X1]),
        Case(spp_text(3, "AVE"), [X1]),
        Case(spp_text(2), [X2]),
        Case(spp_text(2, "AVE"), [X2]),
        Case(spp_text(1), [X3]),
        Case(spp_text(1, "AVE"), [X3]),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.spp_param
        pool = "MAX" if p.pool == 0 else "AVE"
        return [ref_spp(bottoms[0], p.pyramid_height, pool)]


def _setup(text, x, dtype=np.float64):
    layer = make_layer(text)
    bottom = make_blobs([x], dtype)
    top = [Blob((), dtype=dtype)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize("size, level, want", [
    (7, 0, (7, 0)), (7, 1, (4, 1)), (7, 2, (2, 1)), (6, 2, (2, 1)),
    (13, 2, (4, 2)), (8, 3, (1, 0)),
])
def test_level_geometry(size, level, want):
    assert level_geometry(size, level) == want


def test_top_shapes():
    _, _, top = _setup(spp_text(3), X1)
    assert top[0].shape == (2, 2 * (1 + 4 + 16))
    _, _, top = _setup(spp_text(1, "AVE"), X3)
    assert top[0].shape == (2, 2, 1, 1)


def test_new_spatial_size_rebuilds_levels():
    layer, bottom, top = _setup(spp_text(2, "AVE"), X2)
    x = distinct((3, 3, 9, 8), 4)
    bottom[0].reshape(x.shape)
    bottom[0].data[...] = x
    layer.Forward(bottom, top)
    assert top[0].shape == (3, 3 * 5)
    np.testing.assert_allclose(top[0].data, ref_spp(x, 2, "AVE"), rtol=1e-12)


def test_backward_sums_levels():
    # Level 0 (global AVE, 1/16) plus level 1 (2x2 bins of 2x2, 1/4) per input.
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    layer, bottom, top = _setup(spp_text(2, "AVE"), x)
    layer.Forward(bottom, top)
    top[0].diff[...] = 1.0
    bottom[0].diff[...] = 5.0
    layer.Backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, np.full(x.shape, 1 / 16 + 1 / 4))


def test_stochastic_is_rejected():
    with pytest.raises(LayerSetupError, match="STOCHASTIC is not supported"):
        _setup(spp_text(2, "STOCHASTIC"), X2)


def test_pyramid_height_required():
    with pytest.raises(LayerSetupError, match="pyramid_height must be >= 1"):
        _setup('type: "SPP"', X2)


def test_bottom_must_be_4d():
    with pytest.raises(ShapeError, match="4 axes"):
        _setup(spp_text(2), X2[0])


def test_map_too_small_for_level():
    # Width 5 at level 2 (4 bins): kernel 2, pad 2 -- Caffe's Pooling rejects it.
    with pytest.raises(ShapeError, match=r"SPP layer 'test'.*level 2"):
        _setup(spp_text(3), distinct((1, 1, 6, 5), 3))
