"""RNN and LSTM exported with Caffe's semantics: gate order, ``cont`` resets
at any step, static input, exposed states, carried states, unrolled nets."""

from __future__ import annotations

import numpy as np
import pytest

import recaffe
from recaffe import layers as L
from recaffe.onnx import export, run
from recaffe.onnx.check import relative_error

T, N, D, H = 6, 3, 4, 5
# Resets mid-sequence in every stream (not only at t = 0).
CONT = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 1], [1, 1, 0]],
                np.float32)


def _net(kind: str, static: bool = False, expose: bool = False):
    ns = recaffe.NetSpec()
    shapes = [dict(dim=[T, N, D]), dict(dim=[T, N])]
    if static:
        shapes.append(dict(dim=[N, 2, 3]))
    states = ("h", "c") if kind == "LSTM" else ("h",)
    if expose:
        shapes += [dict(dim=[1, N, H])] * len(states)
    tops = L.Input(shape=shapes, ntop=len(shapes))
    ns.x, ns.cont = tops[0], tops[1]
    bottoms = [ns.x, ns.cont]
    if static:
        ns.x_static = tops[2]
        bottoms.append(ns.x_static)
    if expose:
        for s, top in zip(states, tops[-len(states):], strict=True):
            ns[f"{s}_0"] = top
            bottoms.append(top)
    out = getattr(L, kind)(*bottoms, ntop=1 + (len(states) if expose else 0),
                           recurrent_param=dict(num_output=H, expose_hidden=expose))
    if expose:
        ns.y = out[0]
        for s, top in zip(states, out[1:], strict=True):
            ns[f"{s}_T"] = top
    else:
        ns.y = out
    return recaffe.Net(ns.to_proto(), recaffe.TEST)


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
@pytest.mark.parametrize("static,expose", [(False, False), (True, False),
                                           (False, True), (True, True)])
def test_recurrent_layer(kind, static, expose, onnx_tools):
    net = _net(kind, static, expose)
    onnx_tools.randomize(net, seed=3)
    rng = np.random.default_rng(4)
    feeds = {"cont": CONT}
    if expose:
        for name in ("h_0", "c_0"):
            if net.has_blob(name):
                feeds[name] = rng.standard_normal((1, N, H)).astype(np.float32)
    _, errors = onnx_tools.export_and_check(net, feeds)
    assert "y" in errors
    if expose:
        assert {"h_T"} <= set(errors)


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_a_reset_forgets_the_past(kind, onnx_tools):
    """The same input after a reset gives the same output whatever came before:
    the export honours cont = 0 at t > 0 (checked without recaffe)."""
    net = _net(kind)
    onnx_tools.randomize(net, seed=5)
    model = export(net)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((T, N, D)).astype(np.float32)
    cont = np.ones((T, N), np.float32)
    cont[0] = 0
    cont[3] = 0  # every stream restarts at t = 3
    x2 = x.copy()
    x2[:3] = rng.standard_normal((3, N, D))  # a different past
    y1 = run(model, {"x": x, "cont": cont})["y"]
    y2 = run(model, {"x": x2, "cont": cont})["y"]
    assert not np.allclose(y1[:3], y2[:3])
    np.testing.assert_allclose(y1[3:], y2[3:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_carried_state_matches_the_stateful_layer(kind, onnx_tools):
    """recaffe's layer carries its state across forwards; the export with
    carry_state takes and returns it, so three windows agree."""
    net = _net(kind)
    onnx_tools.randomize(net, seed=7)
    model = export(net, carry_state=True)
    layer = _layer(net)
    states = ["h", "c"] if kind == "LSTM" else ["h"]
    assert {i.name for i in model.graph.input} == {"x", "cont"} | {
        f"{layer}_{s}_0" for s in states}
    carried = {f"{layer}_{s}_0": np.zeros((1, N, H), np.float32) for s in states}
    rng = np.random.default_rng(8)
    for window in range(3):
        x = rng.standard_normal((T, N, D)).astype(np.float32)
        cont = np.ones((T, N), np.float32)
        if window == 0:
            cont[0] = 0
        cont[4, 1] = 0
        net.blobs["x"].data[...] = x
        net.blobs["cont"].data[...] = cont
        net.forward()
        out = run(model, {"x": x, "cont": cont, **carried})
        assert relative_error(out["y"], net.blobs["y"].data) <= onnx_tools.rtol
        carried = {f"{layer}_{s}_0": out[f"{layer}_{s}_T"] for s in states}


def _layer(net) -> str:
    return next(n for n, lay in zip(net.layer_names, net.layers_list, strict=True)
                if lay.type in ("RNN", "LSTM"))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_unrolled_net(cell, onnx_tools):
    """A cell unrolled by recaffe.unroll: per-step layers share one set of
    initializers, and the outputs match."""
    from recaffe.recurrent import gru, lstm, rnn, state_input

    ns = recaffe.NetSpec()
    ns.x, ns.cont = L.Input(shape=[dict(dim=[T, N, D]), dict(dim=[T, N])], ntop=2)
    n_states = 2 if cell == "lstm" else 1
    states = [state_input((1, N, H), name=f"s{k}_0") for k in range(n_states)]
    build = {"rnn": rnn, "lstm": lstm, "gru": gru}[cell]
    r = build(ns.x, ns.cont, T, H, name=cell, states=states, ns=ns)
    ns.y = L.TanH(r.output)
    net = recaffe.Net(ns.to_proto(), recaffe.TEST)
    onnx_tools.randomize(net, seed=9)
    model, errors = onnx_tools.export_and_check(net, {"cont": CONT})
    assert "y" in errors
    shared = {net.param_display_names[i] for i, o in enumerate(net.param_owners)
              if o >= 0}
    inits = {t.name for t in model.graph.initializer}
    assert shared and shared <= inits
    # Each learnable parameter is stored once.
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer
                   if t.name in {net.param_display_names[i]
                                 for i in net.learnable_param_ids})
    assert n_params == sum(b.count for b in net.learnable_params)
