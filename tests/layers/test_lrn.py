import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 7, 3, 3))
XW = rng.standard_normal((2, 2, 5, 4))


def lrn_reference(x, p):
    _, c, h, w = x.shape
    size, r = p.local_size, (p.local_size - 1) // 2
    y = np.zeros_like(x)
    if p.norm_region == 0:  # ACROSS_CHANNELS
        for ch in range(c):
            lo, hi = max(0, ch - r), min(c, ch + r + 1)
            scale = p.k + p.alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)
            y[:, ch] = x[:, ch] * scale ** -p.beta
    else:
        for i in range(h):
            for j in range(w):
                win = x[:, :, max(0, i - r):i + r + 1, max(0, j - r):j + r + 1]
                avg = (win ** 2).sum(axis=(2, 3)) / (size * size)
                y[:, :, i, j] = x[:, :, i, j] * (1 + p.alpha * avg) ** -p.beta
    return y


class TestLRN(LayerTestCase):
    layer_type = "LRN"
    cases = [
        Case('type: "LRN"', [X]),
        Case('type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }', [X]),
        Case('type: "LRN" lrn_param { local_size: 9 alpha: 2 beta: 0.6 k: 1.5 }', [X]),
        Case('type: "LRN" lrn_param { local_size: 3 alpha: 0.3 beta: 0.6 '
             'norm_region: WITHIN_CHANNEL }', [XW]),
        Case('type: "LRN" lrn_param { local_size: 5 alpha: 1.5 beta: 0.9 '
             'norm_region: WITHIN_CHANNEL }', [XW]),
    ]

    def reference(self, case, bottoms, layer):
        return [lrn_reference(bottoms[0], layer.layer_param.lrn_param)]


@pytest.mark.parametrize("text, shape, cls, match", [
    ("lrn_param { local_size: 4 }", (1, 3, 2, 2), LayerSetupError, "odd"),
    ("lrn_param { local_size: 0 }", (1, 3, 2, 2), LayerSetupError, "odd"),
    ("", (1, 3, 2), ShapeError, "4 axes"),
])
def test_errors(text, shape, cls, match):
    layer = make_layer(f'type: "LRN" name: "n" {text}')
    with pytest.raises(cls, match=match) as info:
        layer.SetUp(make_blobs([np.zeros(shape)]), [Blob(())])
    assert "LRN layer 'n'" in str(info.value)
