import numpy as np

from recaffe.testing.layer_test import Case, LayerTestCase

rng = np.random.default_rng(1)
X = rng.standard_normal((2, 3, 4)) * 1.5


class TestTanH(LayerTestCase):
    layer_type = "TanH"
    cases = [
        Case('type: "TanH"', [X]),
        Case('type: "TanH"', [np.array([-500.0, 0.0, 500.0])], gradient=False,
             why="saturated inputs"),
    ]

    def reference(self, case, bottoms, layer):
        return [np.tanh(bottoms[0])]
