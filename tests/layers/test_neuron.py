"""Every neuron layer computed in place inside a Net equals the out-of-place result.

In place, the bottom blob holds the output after forward and one diff serves as
both top and bottom diff, so a backward that reads the bottom data or writes the
bottom diff too early goes wrong; these tests catch that for each type.
"""

import numpy as np
import pytest

from recaffe import backend
from recaffe.io.prototxt import parse_prototxt
from recaffe.net import Net
from recaffe.proto import caffe_pb2

SHAPE = (2, 3, 4)
rng = np.random.default_rng(50)
X = rng.uniform(0.1, 2.0, SHAPE) * rng.choice([-1.0, 1.0], SHAPE)
XPOS = rng.uniform(0.5, 2.0, SHAPE)
DY = rng.standard_normal(SHAPE)

# (layer text without bottom/top, input, has_gradient)
NEURONS = [
    ('type: "Sigmoid"', X, True),
    ('type: "TanH"', X, True),
    ('type: "ReLU"', X, True),
    ('type: "ReLU" relu_param { negative_slope: 0.1 }', X, True),
    ('type: "ReLU" relu_param { negative_slope: -0.3 }', X, True),
    ('type: "PReLU" prelu_param { filler { type: "uniform" min: 0.1 max: 0.4 } }', X,
     True),
    ('type: "PReLU" prelu_param { channel_shared: true }', X, True),
    ('type: "ELU" elu_param { alpha: 0.7 }', X, True),
    ('type: "ELU" elu_param { alpha: -0.7 }', X, True),
    ('type: "Power" power_param { power: 3 scale: 0.5 shift: 0.2 }', X, True),
    ('type: "Power" power_param { power: 2 scale: -1 shift: 0.5 }', X, True),
    ('type: "Power" power_param { power: 0.5 scale: 2 }', XPOS, True),
    ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.1 }', X, True),
    ('type: "Log" log_param { scale: 0.5 shift: 1.5 }', X, True),
    ('type: "AbsVal"', X, True),
    ('type: "BNLL"', X, True),
    ('type: "Threshold" threshold_param { threshold: 0.3 }', X, False),
    ('type: "Clip" clip_param { min: -0.5 max: 0.6 }', X, True),
    ('type: "Swish" swish_param { beta: 1.5 }', X, True),
    ('type: "Dropout" dropout_param { dropout_ratio: 0.4 }', X, True),
]


def _net(layer_text, in_place, phase=caffe_pb2.TRAIN):
    top = "x" if in_place else "y"
    text = f"""
    force_backward: true
    layer {{ name: "x" type: "Input" top: "x"
             input_param {{ shape {{ dim: 2 dim: 3 dim: 4 }} }} }}
    layer {{ name: "n" bottom: "x" top: "{top}" {layer_text} }}
    """
    param = parse_prototxt(text, caffe_pb2.NetParameter)
    backend.set_random_seed(11)
    with backend.dtype_scope(np.float64):
        return Net(param, phase), top


def _run(layer_text, x, in_place, gradient, phase=caffe_pb2.TRAIN):
    net, top = _net(layer_text, in_place, phase)
    net.blobs["x"].data[...] = x
    backend.set_random_seed(3)  # same Dropout mask in both nets
    net.forward()
    y = net.blobs[top].data.copy()
    if not gradient:
        return y, None, []
    for p in net.params.get("n", []):
        p.diff[...] = 0
    net.blobs[top].diff[...] = DY
    net.backward()
    params = [p.diff.copy() for p in net.params.get("n", [])]
    return y, net.blobs["x"].diff.copy(), params


IDS = [n[0].split('"')[1] + str(i) for i, n in enumerate(NEURONS)]


@pytest.mark.parametrize("text,x,gradient", NEURONS, ids=IDS)
def test_in_place_matches_out_of_place(text, x, gradient):
    y0, dx0, p0 = _run(text, x, False, gradient)
    y1, dx1, p1 = _run(text, x, True, gradient)
    np.testing.assert_allclose(y1, y0, rtol=1e-12, atol=1e-15)
    if gradient:
        assert np.any(dx0 != 0)
        np.testing.assert_allclose(dx1, dx0, rtol=1e-12, atol=1e-15)
        assert len(p0) == len(p1)
        for a, b in zip(p0, p1, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)


def test_dropout_in_place_test_phase():
    text = 'type: "Dropout" dropout_param { dropout_ratio: 0.4 }'
    y1, dx1, _ = _run(text, X, True, True, caffe_pb2.TEST)
    np.testing.assert_allclose(y1, X)
    np.testing.assert_allclose(dx1, DY)
