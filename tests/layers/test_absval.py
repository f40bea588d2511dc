import numpy as np

from recaffe.testing.layer_test import Case, LayerTestCase

rng = np.random.default_rng(4)
X = rng.uniform(0.05, 2.0, (2, 3, 4)) * rng.choice([-1.0, 1.0], (2, 3, 4))


class TestAbsVal(LayerTestCase):
    layer_type = "AbsVal"
    cases = [Case('type: "AbsVal"', [X], kink=0.0, kink_range=0.02)]

    def reference(self, case, bottoms, layer):
        return [np.abs(bottoms[0])]
