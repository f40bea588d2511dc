"""Nets several test modules build: the talk's hand-unrolled RNN, a small
char-LSTM LM, and a one-InnerProduct deploy net with its numpy reference."""

from __future__ import annotations

import recaffe as caffe
from recaffe import layers as L
from recaffe import params as P

DEPLOY = """name: 'deploy' force_backward: true
layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 4 dim: 3 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y'
  inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 1 }
  bias_filler { type: 'gaussian' std: 1 } } }
"""


def deploy_net(tmp_path):
    """The DEPLOY net, from a file in ``tmp_path``, TEST phase, seed 5."""
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY)
    caffe.set_random_seed(5)
    return caffe.Net(str(path), caffe.TEST)


def deploy_ref(net, x):
    """The DEPLOY net's output for ``x`` with numpy."""
    return x @ net.params["ip"][0].data.T + net.params["ip"][1].data


def talk_manual_net(T, N, H, in_place_relu=False):
    """The talk's hand-unrolled net with Input layers (NetParameter)."""
    ns = caffe.NetSpec()
    ns.data, ns.label = L.Input(shape=[dict(dim=[N, 1, 1, 2 * T]),
                                       dict(dim=[N, T])], ntop=2)
    X = L.Slice(ns.data, name="X", ntop=T,
                slice_param=dict(axis=3, slice_point=list(range(2, 2 * T, 2))))
    ns.H = L.DummyData(dummy_data_param=dict(shape=dict(dim=[N, 1, H]),
                                             data_filler=dict(type="constant")))
    outs = []
    for t in range(T):
        s = str(t + 1)
        zx = L.InnerProduct(X[t], param=[dict(name="WX"), dict(name="bX")],
                            num_output=H, weight_filler=dict(type="xavier"),
                            bias_filler=dict(type="gaussian", std=0.1))
        setattr(ns, "zX" + s, zx)
        zh = L.InnerProduct(ns.H, param=dict(name="WH"), bias_term=False,
                            num_output=H, weight_filler=dict(type="xavier"))
        setattr(ns, "zH" + s, zh)
        z = L.Eltwise(zx, zh, eltwise_param=dict(operation=P.Eltwise.SUM))
        setattr(ns, "z" + s, z)
        a = L.Sigmoid(z)
        setattr(ns, "a" + s, a)
        o = L.InnerProduct(a, param=[dict(name="WO"), dict(name="bO")], num_output=1,
                           weight_filler=dict(type="xavier"))
        if in_place_relu:
            o = L.ReLU(o, in_place=True)
        setattr(ns, "out" + s, o)
        outs.append(o)
        ns.H = a
    ns.output = L.Concat(*outs, concat_param=dict(axis=1))
    ns.loss = L.EuclideanLoss(ns.output, ns.label)
    return ns.to_proto()


def char_lstm_text(vocab=7, t=6, n=3, hidden=8, embed=5, shared_out=False) -> str:
    """Embed -> LSTM -> InnerProduct -> SoftmaxWithLoss over (t, n) ids;
    ``shared_out`` names the output weight ``shared_w``."""
    shared = 'param { name: "shared_w" }' if shared_out else ""
    return f"""
name: "charlstm"
layer {{ name: "in" type: "Input" top: "ids" top: "cont" top: "target"
  input_param {{ shape {{ dim: {t} dim: {n} }} shape {{ dim: {t} dim: {n} }}
                 shape {{ dim: {t} dim: {n} }} }} }}
layer {{ name: "emb" type: "Embed" bottom: "ids" top: "e"
  embed_param {{ num_output: {embed} input_dim: {vocab}
    weight_filler {{ type: "uniform" min: -0.5 max: 0.5 }} }} }}
layer {{ name: "lstm" type: "LSTM" bottom: "e" bottom: "cont" top: "h"
  recurrent_param {{ num_output: {hidden}
    weight_filler {{ type: "uniform" min: -0.3 max: 0.3 }} }} }}
layer {{ name: "out" type: "InnerProduct" bottom: "h" top: "logits"
  {shared}
  inner_product_param {{ num_output: {vocab} axis: 2
    weight_filler {{ type: "uniform" min: -0.3 max: 0.3 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "target"
  top: "loss" softmax_param {{ axis: 2 }} }}
"""


FILLER = dict(type="uniform", min=-0.3, max=0.3)


def unrolled_lm(T=6, N=3, V=5, H=7, layers=1, cell="lstm", train=True):
    """An unroll-built language model (``recaffe.recurrent`` cells named
    ``<cell>1``, ``<cell>2``…, outputs ``h1``, ``h2``…) -> InnerProduct ->
    SoftmaxWithLoss (``train``) or Softmax."""
    from recaffe.recurrent.cells.gru import gru  # noqa: PLC0415
    from recaffe.recurrent.cells.lstm import lstm  # noqa: PLC0415
    from recaffe.recurrent.cells.rnn import rnn  # noqa: PLC0415

    ns = caffe.NetSpec()
    if train:
        ns.x, ns.cont, ns.label = L.Input(
            shape=[dict(dim=[T, N, V]), dict(dim=[T, N]), dict(dim=[T, N])], ntop=3)
    else:
        ns.x, ns.cont = L.Input(shape=[dict(dim=[T, N, V]), dict(dim=[T, N])], ntop=2)
    make = {"lstm": lstm, "gru": gru, "rnn": rnn}[cell]
    h = ns.x
    for k in range(layers):
        h = make(h, ns.cont, T, H, N=N, name=f"{cell}{k + 1}", weight_filler=FILLER,
                 ns=ns).output
        setattr(ns, f"h{k + 1}", h)
    ns.logits = L.InnerProduct(h, axis=2, num_output=V, weight_filler=FILLER)
    if train:
        ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    else:
        ns.prob = L.Softmax(ns.logits, axis=2)
    return ns.to_proto()


def feed_lm(net, seed=0, boundary=True):
    """Random inputs for an :func:`unrolled_lm` (or any net with ``x`` (T, N,
    V), ``cont`` (T, N) and maybe ``label``): every sequence starts at step
    0, and with ``boundary`` stream 0 starts another one halfway."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    T, N = net.blobs["cont"].shape
    V = net.blobs["x"].shape[2]
    net.blobs["x"].data[...] = rng.normal(size=net.blobs["x"].shape)
    cont = np.ones((T, N), np.float32)
    cont[0] = 0
    if boundary:
        cont[T // 2, 0] = 0  # a sequence boundary inside the batch
    net.blobs["cont"].data[...] = cont
    if "label" in net.blobs:
        net.blobs["label"].data[...] = rng.integers(0, V, net.blobs["label"].shape)


def sgd_steps(net, steps=3, lr=0.5, feed=feed_lm):
    """``steps`` plain SGD steps on ``net`` (``feed(net, step)`` first each
    time); returns the losses."""
    losses = []
    for it in range(steps):
        feed(net, it)
        net.clear_param_diffs()
        losses.append(net.forward_prefilled())
        net.backward_all()
        for p in net.learnable_params:
            p.data -= lr * p.diff
    return losses
