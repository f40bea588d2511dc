"""Equivalence tests of automatic unrolling (DESIGN §8).

- the talk's step unrolled == the talk's manual loop (same net up to names,
  same numbers from the same weights);
- T steps at once == T calls of a 1-step net with carried state;
- cont = 0 resets the state;
- the gradient of a shared weight == the sum of its per-step gradients;
- reverse unrolling == forward unrolling of the time-reversed input.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

import recaffe
from recaffe import recurrent
from recaffe.backend import dtype_scope
from recaffe.net_spec import NetSpec
from recaffe.net_spec import layers as L
from recaffe.proto import caffe_pb2

EXAMPLE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                       "examples", "binary_addition"))
_spec = importlib.util.spec_from_file_location("binary_addition_train",
                                               os.path.join(EXAMPLE, "train.py"))
_train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_train)
ba_data = _train.ba_data
binary_addition_train = _train.sibling("manual_unroll").binary_addition_train
binary_addition_net = _train.sibling("net_unroll").binary_addition_net
binary_addition_step = _train.sibling("net_unroll").binary_addition_step


def _net(proto, phase=recaffe.TEST):
    proto.force_backward = True
    with dtype_scope(np.float64):
        return recaffe.Net(proto, phase)


# -- the talk --------------------------------------------------------------------
def _canonical(net_param: caffe_pb2.NetParameter, top: str) -> str:
    """A name-free description of the computation that produces ``top``."""
    producer = {}
    for layer in net_param.layer:
        for i, t in enumerate(layer.top):
            producer[t] = (layer, i)
    memo: dict[str, str] = {}

    def canon(blob: str) -> str:
        if blob in memo:
            return memo[blob]
        layer, i = producer[blob]
        bare = caffe_pb2.LayerParameter()
        bare.CopyFrom(layer)
        bare.ClearField("name")
        del bare.bottom[:]
        del bare.top[:]
        text = str(bare).replace("\n", " ")
        memo[blob] = f"[{text} #{i} ({', '.join(canon(b) for b in layer.bottom)})]"
        return memo[blob]

    return canon(top)


def test_unrolled_talk_net_equals_manual_loop(tmp_path):
    T, batch = 5, 4
    paths = ba_data.write_data(str(tmp_path), 40, 10, bits=T - 1, seed=3)
    manual = binary_addition_train(T, batch, paths["train_source"])
    auto = binary_addition_net(T, batch, paths["train_source"], num_hu=3,
                               phase=recaffe.TRAIN)
    assert len(manual.layer) == len(auto.layer)
    assert _canonical(manual, "loss") == _canonical(auto, "loss")
    assert sorted(layer.type for layer in manual.layer) == sorted(
        layer.type for layer in auto.layer)

    recaffe.set_random_seed(11)
    net_m = _net(manual, recaffe.TRAIN)
    net_a = _net(auto, recaffe.TRAIN)
    rng = np.random.default_rng(0)
    for name in ("WX", "bX", "WH", "WO", "bO"):
        value = rng.normal(size=recurrent.find_param(net_m, name).shape)
        recurrent.find_param(net_m, name).data[...] = value
        recurrent.find_param(net_a, name).data[...] = value
    for net in (net_m, net_a):
        net.clear_param_diffs()
        net.forward()
        net.backward()
    np.testing.assert_allclose(net_a.blobs["output"].data, net_m.blobs["output"].data,
                               rtol=1e-12)
    np.testing.assert_allclose(net_a.blobs["loss"].data, net_m.blobs["loss"].data,
                               rtol=1e-12)
    for name in ("WX", "bX", "WH", "WO", "bO"):
        np.testing.assert_allclose(recurrent.find_param(net_a, name).diff,
                                   recurrent.find_param(net_m, name).diff, rtol=1e-10,
                                   err_msg=name)


# -- state carried over calls ------------------------------------------------------
N, D, H = 2, 3, 4


def _lstm_net(T, name="lstm1", reverse=False):
    ns = NetSpec()
    ns.x, ns.cont = L.Input(shape=[dict(dim=[T, N, D]), dict(dim=[T, N])], ntop=2)
    h0 = recurrent.state_input((1, N, H), "h_0")
    c0 = recurrent.state_input((1, N, H), "c_0")
    r = recurrent.lstm(ns.x, ns.cont, T, H, name=name, states=[h0, c0],
                       reverse=reverse, weight_filler=dict(type="gaussian", std=0.5),
                       bias_filler=dict(type="gaussian", std=0.3), ns=ns)
    return _net(ns.to_proto()), r


def _forward(net, r, x, cont, h0=None, c0=None):
    net.blobs["x"].data[...] = x
    net.blobs["cont"].data[...] = cont
    net.blobs["h_0"].data[...] = 0 if h0 is None else h0
    net.blobs["c_0"].data[...] = 0 if c0 is None else c0
    net.forward()
    hT, cT = (net.blobs[n].data.copy() for n in r.final_state_names)
    return net.blobs[r.output_blob_names[0]].data.copy(), hT, cT


def _copy_weights(src, r_src, dst, r_dst):
    r_dst.cell.set_caffe_blobs(dst, r_src.cell.caffe_blobs(src))


def test_T_steps_at_once_equal_T_single_steps_with_carried_state():
    T = 4
    rng = np.random.default_rng(1)
    recaffe.set_random_seed(5)
    full, r_full = _lstm_net(T)
    one, r_one = _lstm_net(1)
    _copy_weights(full, r_full, one, r_one)
    x = rng.uniform(-1, 1, (T, N, D))
    cont = np.array([[0, 0], [1, 1], [1, 0], [1, 1]], dtype=float)
    y_full, hT_full, cT_full = _forward(full, r_full, x, cont)
    h = c = None
    ys = []
    for t in range(T):
        y, h, c = _forward(one, r_one, x[t:t + 1], cont[t:t + 1], h, c)
        ys.append(y)
    np.testing.assert_allclose(np.concatenate(ys), y_full, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h, hT_full, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c, cT_full, rtol=1e-12, atol=1e-14)


def test_cont_zero_resets_the_state():
    T = 4
    rng = np.random.default_rng(2)
    recaffe.set_random_seed(6)
    net, r = _lstm_net(T)
    short, r_short = _lstm_net(2)
    _copy_weights(net, r, short, r_short)
    x = rng.uniform(-1, 1, (T, N, D))
    state = rng.normal(size=(1, N, H))
    # stream 0 starts a new sequence at t=2 (0-based); stream 1 continues
    cont = np.array([[1, 1], [1, 1], [0, 1], [1, 1]], dtype=float)
    y, _, _ = _forward(net, r, x, cont, state, state)
    y_fresh, _, _ = _forward(short, r_short, x[2:], np.array([[0, 0], [1, 1.0]]),
                             state, state)
    np.testing.assert_allclose(y[2:, 0], y_fresh[:, 0], rtol=1e-12, atol=1e-14)
    assert not np.allclose(y[2:, 1], y_fresh[:, 1])
    # with cont = 1 everywhere the initial state matters
    y_cont, _, _ = _forward(net, r, x, np.ones((T, N)), state, state)
    y_zero, _, _ = _forward(net, r, x, np.ones((T, N)), None, None)
    assert not np.allclose(y_cont[0], y_zero[0])


def test_reverse_equals_forward_over_reversed_input():
    T = 4
    rng = np.random.default_rng(3)
    recaffe.set_random_seed(8)
    fwd, r_f = _lstm_net(T)
    bwd, r_b = _lstm_net(T, reverse=True)
    _copy_weights(fwd, r_f, bwd, r_b)
    x = rng.uniform(-1, 1, (T, N, D))
    # sequences [0, 1] and [2, 3] in stream 0; one sequence in stream 1
    cont = np.array([[0, 0], [1, 1], [0, 1], [1, 1]], dtype=float)
    y_b, _, _ = _forward(bwd, r_b, x, cont)
    # forward over the reversed windows: reversed sequences start at 3 and 1
    rev_cont = np.array([[0, 0], [1, 1], [0, 1], [1, 1]], dtype=float)
    y_f, _, _ = _forward(fwd, r_f, x[::-1], rev_cont)
    np.testing.assert_allclose(y_b, y_f[::-1], rtol=1e-12, atol=1e-14)


# -- shared weights --------------------------------------------------------------------
def test_shared_weight_gradient_is_the_sum_of_per_step_gradients(tmp_path):
    T, batch = 4, 3
    ns = NetSpec()
    ns.data, ns.label = L.Input(shape=[dict(dim=[batch, 1, 1, 2 * T]),
                                       dict(dim=[batch, T])], ntop=2)
    recaffe.unroll(binary_addition_step(5, "TanH"), ns.data, T,
                   states=[(batch, 1, 5)], state_names=["H"], output_names=["output"],
                   axis=3, width=2, concat_axis=1, ns=ns)
    ns.loss = L.EuclideanLoss(ns.output, ns.label)
    shared = ns.to_proto()
    unshared = caffe_pb2.NetParameter()
    unshared.CopyFrom(shared)
    for layer in unshared.layer:  # a private copy of each weight per step
        for spec in layer.param:
            spec.name = f"{spec.name}@{layer.name}"
    recaffe.set_random_seed(1)
    net_s, net_u = _net(shared), _net(unshared)
    rng = np.random.default_rng(4)
    values = {}
    for layer in net_s.layers:
        for spec, blob in zip(layer.layer_param.param, layer.blobs, strict=True):
            blob.data[...] = values.setdefault(spec.name, rng.normal(size=blob.shape))
    for layer in net_u.layers:
        for spec, blob in zip(layer.layer_param.param, layer.blobs, strict=True):
            blob.data[...] = values[spec.name.split("@")[0]]
    x = rng.integers(0, 2, (batch, 1, 1, 2 * T)).astype(float)
    y = rng.integers(0, 2, (batch, T)).astype(float)
    for net in (net_s, net_u):
        net.blobs["data"].data[...] = x
        net.blobs["label"].data[...] = y
        net.clear_param_diffs()
        net.forward()
        net.backward()
    np.testing.assert_allclose(net_s.blobs["loss"].data, net_u.blobs["loss"].data,
                               rtol=1e-12)
    for pname in ("WX", "bX", "WH", "WO", "bO"):
        per_step = [blob.diff for layer in net_u.layers
                    for spec, blob in zip(layer.layer_param.param, layer.blobs,
                                          strict=True)
                    if spec.name.startswith(pname + "@")]
        assert len(per_step) == T
        np.testing.assert_allclose(recurrent.find_param(net_s, pname).diff,
                                   np.sum(per_step, axis=0), rtol=1e-12, atol=1e-14)
