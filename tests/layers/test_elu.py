import numpy as np

from recaffe.testing.layer_test import Case, LayerTestCase

rng = np.random.default_rng(3)
X = rng.uniform(0.05, 2.0, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))


class TestELU(LayerTestCase):
    layer_type = "ELU"
    cases = [
        Case('type: "ELU"', [X]),
        Case('type: "ELU" elu_param { alpha: 0.5 }', [X]),
        Case('type: "ELU" elu_param { alpha: -0.4 }', [X]),
    ]

    def reference(self, case, bottoms, layer):
        x = bottoms[0]
        a = layer.layer_param.elu_param.alpha
        return [np.where(x > 0, x, a * (np.exp(np.minimum(x, 0)) - 1))]
