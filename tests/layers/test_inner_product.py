import numpy as np

from recaffe.testing.layer_test import Case, LayerTestCase

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4))

FILL = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" }'


class TestInnerProduct(LayerTestCase):
    layer_type = "InnerProduct"
    cases = [
        Case(f'type: "InnerProduct" inner_product_param {{ num_output: 5 {FILL} }}',
             [X]),
        Case('type: "InnerProduct" '
             f'inner_product_param {{ num_output: 2 axis: 2 {FILL} }}', [X]),
        Case('type: "InnerProduct" '
             'inner_product_param { num_output: 3 transpose: true '
             f'bias_term: false {FILL} }}', [X]),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.inner_product_param
        x = bottoms[0]
        axis = p.axis
        m = int(np.prod(x.shape[:axis]))
        w = layer.blobs[0].data
        y = x.reshape(m, -1) @ (w if p.transpose else w.T)
        if p.bias_term:
            y = y + layer.blobs[1].data
        return [y.reshape(x.shape[:axis] + (p.num_output,))]
