"""Unrolled cells against Caffe's recurrent layers and numpy references.

- unrolled LSTM cell == Caffe's ``LSTM`` layer (same blobs W_xc, b_c, W_hc):
  forward, the gradient to x and every parameter gradient;
- unrolled RNN cell (output_layer) == Caffe's ``RNN`` layer;
- GRU forward == a numpy reference; GRU gradients == central differences on
  the whole unrolled net in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import recaffe
from recaffe import recurrent
from recaffe.backend import dtype_scope
from recaffe.net_spec import NetSpec
from recaffe.net_spec import layers as L

T, N, D, H = 3, 3, 2, 4
CONT = np.array([[0, 0, 0], [1, 0, 1], [1, 1, 0]], dtype=np.float64)
FILLER = dict(type="gaussian", std=0.4)
BIAS = dict(type="gaussian", std=0.2)


def _inputs(ns: NetSpec):
    ns.x, ns.cont = L.Input(shape=[dict(dim=[T, N, D]), dict(dim=[T, N])], ntop=2)


def _net(proto):
    proto.force_backward = True
    with dtype_scope(np.float64):
        return recaffe.Net(proto, recaffe.TEST)


def _caffe_layer_net(kind: str):
    ns = NetSpec()
    _inputs(ns)
    ns.y = getattr(L, kind)(ns.x, ns.cont, name="layer1", recurrent_param=dict(
        num_output=H, weight_filler=FILLER, bias_filler=BIAS))
    return _net(ns.to_proto())


def _unrolled_net(make):
    ns = NetSpec()
    _inputs(ns)
    r = make(ns)
    return _net(ns.to_proto()), r


def _run(net, out_name, x, cont, top_diff):
    net.blobs["x"].data[...] = x
    net.blobs["cont"].data[...] = cont
    net.forward()
    y = net.blobs[out_name].data.copy()
    for name in net.outputs:
        net.blobs[name].diff[...] = 0
    net.blobs[out_name].diff[...] = top_diff
    net.clear_param_diffs()
    net._backward(len(net.layers) - 1, 0)
    return y, net.blobs["x"].diff.copy()


def _compare(kind, make, out_name, cell_attr="cell"):
    rng = np.random.default_rng(5)
    recaffe.set_random_seed(3)
    caffe_net = _caffe_layer_net(kind)
    net, r = _unrolled_net(make)
    cell = getattr(r, cell_attr)
    caffe_blobs = [b.data.copy() for b in caffe_net.params["layer1"]]
    cell.set_caffe_blobs(net, caffe_blobs)
    x = rng.uniform(-1, 1, (T, N, D))
    dy = rng.normal(size=(T, N, H))
    y_ref, dx_ref = _run(caffe_net, "y", x, CONT, dy)
    y, dx = _run(net, out_name, x, CONT, dy)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-9, atol=1e-12)
    for name, ref in zip(cell.blob_names, caffe_net.params["layer1"], strict=True):
        got = recurrent.find_param(net, cell.pname(name))
        np.testing.assert_allclose(got.diff, ref.diff, rtol=1e-9, atol=1e-12,
                                   err_msg=f"gradient of {name}")
    # and back: the unrolled cell's weights load into the Caffe layer
    back = cell.caffe_blobs(net)
    for a, b in zip(back, caffe_blobs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unrolled_lstm_equals_caffe_lstm_layer():
    _compare("LSTM", lambda ns: recurrent.lstm(ns.x, ns.cont, T, H, N=N, name="lstm1",
                                               ns=ns), "lstm1_h")


def test_unrolled_rnn_equals_caffe_rnn_layer():
    _compare("RNN", lambda ns: recurrent.rnn(ns.x, ns.cont, T, H, N=N, name="rnn1",
                                             output_layer=True, ns=ns), "rnn1_o")


def test_set_caffe_blobs_checks_shapes():
    net, r = _unrolled_net(lambda ns: recurrent.lstm(ns.x, ns.cont, T, H, N=N, ns=ns))
    with pytest.raises(recaffe.errors.NetError, match="W_xc"):
        r.cell.set_caffe_blobs(net, [np.zeros((4 * H, D + 1)), np.zeros(4 * H),
                                     np.zeros((4 * H, H))])
    with pytest.raises(recaffe.errors.NetError, match="expected 3 blobs"):
        r.cell.set_caffe_blobs(net, [np.zeros((4 * H, D))])


# -- GRU -------------------------------------------------------------------------
def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _gru_reference(x, cont, W_xg, b_g, W_hrz, W_hn):
    h = np.zeros((N, H))
    out = []
    for t in range(T):
        h = h * cont[t][:, None]
        g = x[t] @ W_xg.T + b_g
        rz = _sigmoid(g[:, :2 * H] + h @ W_hrz.T)
        r, z = rz[:, :H], rz[:, H:]
        n = np.tanh(g[:, 2 * H:] + (r * h) @ W_hn.T)
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out)


def _gru_net():
    recaffe.set_random_seed(7)
    return _unrolled_net(lambda ns: recurrent.gru(ns.x, ns.cont, T, H, N=N, name="gru",
                                                  weight_filler=FILLER,
                                                  bias_filler=BIAS, ns=ns))


def test_gru_forward_matches_numpy():
    net, r = _gru_net()
    x = np.random.default_rng(1).uniform(-1, 1, (T, N, D))
    y, _ = _run(net, "gru_h", x, CONT, np.zeros((T, N, H)))
    ref = _gru_reference(x, CONT, *r.cell.caffe_blobs(net))
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


def test_gru_gradient_central_differences():
    net, r = _gru_net()
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (T, N, D))
    w = rng.normal(size=(T, N, H))

    def objective():
        net.blobs["x"].data[...] = x
        net.forward()
        return float((net.blobs["gru_h"].data * w).sum())

    _, dx = _run(net, "gru_h", x, CONT, w)
    blobs = [recurrent.find_param(net, r.cell.pname(b)) for b in r.cell.blob_names]
    analytic = [dx] + [b.diff.copy() for b in blobs]
    targets = [x] + [b.data for b in blobs]
    h = 1e-6
    for arr, grad in zip(targets, analytic, strict=True):
        flat, gflat = arr.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            fp = objective()
            flat[i] = old - h
            fm = objective()
            flat[i] = old
            est = (fp - fm) / (2 * h)
            assert abs(est - gflat[i]) <= 1e-6 * max(abs(est), abs(gflat[i]), 1.0), (
                f"element {i}: analytic {gflat[i]}, numeric {est}")
