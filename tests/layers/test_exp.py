import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(7)
X = rng.standard_normal((2, 3, 4))


class TestExp(LayerTestCase):
    layer_type = "Exp"
    cases = [
        Case('type: "Exp"', [X]),
        Case('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.3 }', [X]),
        Case('type: "Exp" exp_param { scale: -1.2 shift: 1 }', [X]),
        Case('type: "Exp" exp_param { base: 0.5 }', [X]),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.exp_param
        base = np.e if p.base == -1 else p.base
        return [base ** (p.shift + p.scale * bottoms[0])]


@pytest.mark.parametrize("base", [0, -2])
def test_exp_bad_base(base):
    layer = make_layer(f'type: "Exp" exp_param {{ base: {base} }}')
    with pytest.raises(LayerSetupError, match="base"):
        layer.SetUp(make_blobs([X]), [Blob(())])
