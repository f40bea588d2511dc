import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_layer

NO_GRAD = "Input has no bottoms, so there is nothing to differentiate"


class TestInput(LayerTestCase):
    layer_type = "Input"
    cases = [
        Case('type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } }', [],
             gradient=False, why=NO_GRAD),
        Case('type: "Input" top: "a" top: "b" input_param { shape { dim: 4 dim: 1 '
             'dim: 2 } }', [], num_tops=2, gradient=False, why=NO_GRAD),
        Case('type: "Input" top: "a" top: "b" input_param { shape { dim: 5 } '
             'shape { dim: 2 dim: 2 dim: 1 dim: 3 } }', [], num_tops=2,
             gradient=False, why=NO_GRAD),
    ]

    def reference(self, case, bottoms, layer):
        shapes = layer.layer_param.input_param.shape
        n = len(layer.layer_param.top)
        return [np.zeros(tuple(shapes[0 if len(shapes) == 1 else i].dim))
                for i in range(n)]


def test_no_shape_leaves_tops_to_the_caller():
    layer = make_layer('type: "Input" top: "x"')
    top = [Blob((3, 2))]
    layer.SetUp([], top)
    top[0].data[...] = 7.0
    layer.Forward([], top)
    assert top[0].shape == (3, 2)
    assert np.all(top[0].data == 7.0)


def test_forward_keeps_caller_reshape_and_data():
    layer = make_layer('type: "Input" top: "x" input_param { shape { dim: 2 } }')
    top = [Blob(())]
    layer.SetUp([], top)
    top[0].reshape((4, 4))
    top[0].data[...] = 1.5
    layer.Forward([], top)
    assert top[0].shape == (4, 4) and np.all(top[0].data == 1.5)


def test_wrong_number_of_shapes():
    layer = make_layer('type: "Input" top: "a" top: "b" top: "c" input_param { '
                       'shape { dim: 1 } shape { dim: 2 } }')
    with pytest.raises(LayerSetupError, match="once per top"):
        layer.SetUp([], [Blob(()), Blob(()), Blob(())])


def test_bottoms_rejected():
    layer = make_layer('type: "Input" top: "a" input_param { shape { dim: 1 } }')
    with pytest.raises(LayerSetupError, match="bottom"):
        layer.SetUp([Blob((1,))], [Blob(())])
