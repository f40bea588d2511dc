import numpy as np

from recaffe.testing.layer_test import Case, LayerTestCase

rng = np.random.default_rng(10)
X = rng.standard_normal((2, 3, 4)) * 2


class TestSwish(LayerTestCase):
    layer_type = "Swish"
    cases = [
        Case('type: "Swish"', [X]),
        Case('type: "Swish" swish_param { beta: 1.7 }', [X]),
        Case('type: "Swish" swish_param { beta: -0.5 }', [X]),
    ]

    def reference(self, case, bottoms, layer):
        b = layer.layer_param.swish_param.beta
        x = bottoms[0]
        return [x / (1 + np.exp(-b * x))]
