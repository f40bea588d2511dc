import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(12)
X = rng.standard_normal((2, 3, 4))


def _expected_train(x, ratio, seed=7):
    # The layer draws its mask from the backend generator, which the forward
    # test reseeds with 7 just before the forward.
    g = np.random.default_rng(seed)
    keep = g.random(size=x.shape) < 1.0 - ratio
    return x * keep / (1.0 - ratio)


class TestDropout(LayerTestCase):
    layer_type = "Dropout"
    cases = [
        Case('type: "Dropout"', [X]),
        Case('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', [X]),
        Case('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', [X],
             phase=caffe_pb2.TEST),
    ]

    def reference(self, case, bottoms, layer):
        if case.phase == caffe_pb2.TEST:
            return [bottoms[0]]
        ratio = layer.layer_param.dropout_param.dropout_ratio
        return [_expected_train(bottoms[0], ratio)]


def _run(text, x, phase=caffe_pb2.TRAIN, seed=0):
    layer = make_layer(text, phase)
    bottom = make_blobs([x])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    backend.set_random_seed(seed)
    layer.Forward(bottom, top)
    return layer, bottom, top


def test_dropout_statistics():
    x = np.ones((200, 100))
    _, _, top = _run('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', x)
    y = top[0].data
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)


def test_dropout_backward_uses_mask():
    layer, bottom, top = _run('type: "Dropout"', X)
    top[0].diff[...] = 1.0
    layer.Backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff != 0, top[0].data != 0)
    np.testing.assert_allclose(bottom[0].diff[top[0].data != 0], 2.0)


def test_dropout_test_phase_is_identity_backward():
    layer, bottom, top = _run('type: "Dropout"', X, caffe_pb2.TEST)
    top[0].diff[...] = 3.0
    layer.Backward(top, [True], bottom)
    assert np.all(bottom[0].diff == 3.0)


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.1])
def test_dropout_bad_ratio(ratio):
    layer = make_layer(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}')
    with pytest.raises(LayerSetupError, match="dropout_ratio"):
        layer.SetUp(make_blobs([X]), [Blob(())])
