import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(8)
X = rng.uniform(0.5, 2.0, (2, 3, 4))


class TestLog(LayerTestCase):
    layer_type = "Log"
    cases = [
        Case('type: "Log"', [X]),
        Case('type: "Log" log_param { base: 2 scale: 0.5 shift: 0.3 }', [X]),
        Case('type: "Log" log_param { base: 10 scale: -0.5 shift: 2 }', [X]),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.log_param
        base = np.e if p.base == -1 else p.base
        return [np.log(p.shift + p.scale * bottoms[0]) / np.log(base)]


def test_log_bad_base():
    layer = make_layer('type: "Log" log_param { base: -3 }')
    with pytest.raises(LayerSetupError, match="base"):
        layer.SetUp(make_blobs([X]), [Blob(())])
