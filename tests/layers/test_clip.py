import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

# Values away from the kinks at -0.5 and 0.8.
X = np.array([[-2.0, -0.9, -0.4, 0.0, 0.3], [0.7, 0.9, 1.5, -0.1, -0.6]])


class TestClip(LayerTestCase):
    layer_type = "Clip"
    cases = [Case('type: "Clip" clip_param { min: -0.5 max: 0.8 }', [X])]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.clip_param
        return [np.clip(bottoms[0], p.min, p.max)]


def test_clip_min_above_max():
    layer = make_layer('type: "Clip" clip_param { min: 1 max: 0 }')
    with pytest.raises(LayerSetupError, match="min"):
        layer.SetUp(make_blobs([X]), [Blob(())])


def test_clip_gradient_inclusive_bounds():
    layer = make_layer('type: "Clip" clip_param { min: -0.5 max: 0.8 }')
    bottom = make_blobs([np.array([-0.5, 0.8, 0.81, -0.51])])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    layer.Forward(bottom, top)
    top[0].diff[...] = 2.0
    layer.Backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [2.0, 2.0, 0.0, 0.0])
