"""The parts of recaffe.plan, each on its own (graph, batching, layout, watch,
kernels); tests/test_plan.py checks the whole plan against the plain loop."""

from __future__ import annotations

import numpy as np
import pytest

import recaffe as caffe
from recaffe import layers as L
from recaffe.plan.batching import find_groups, schedule
from recaffe.plan.graph import BlobGraph, dependencies
from recaffe.plan.kernels import ip_kernels
from recaffe.plan.layout import Layout
from recaffe.plan.watch import ShapeWatch


def _chain_net(T=4, N=3, H=5):
    """T independent input projections sharing W, then a running sum."""
    ns = caffe.NetSpec()
    ns.x = L.Input(shape=dict(dim=[T, N, 2]))
    xs = L.Slice(ns.x, ntop=T, slice_param=dict(axis=0))
    acc = None
    for t in range(T):
        p = L.InnerProduct(xs[t], num_output=H, param=[dict(name="W"), dict(name="b")],
                           axis=2, weight_filler=dict(type="gaussian", std=0.5))
        setattr(ns, f"p{t}", p)
        acc = p if acc is None else L.Eltwise(acc, p)
        if t:
            setattr(ns, f"s{t}", acc)
    ns.loss = L.Reduction(acc, loss_weight=1)
    caffe.set_random_seed(0)
    net = caffe.Net(ns.to_proto(), caffe.TRAIN)
    net.reshape()
    return net


def test_graph_producers_and_dependencies():
    net = _chain_net()
    graph = BlobGraph(net)
    names = net.layer_names
    p1 = names.index("p1")
    top = net.top_ids[p1][0]
    assert graph.producer[top] == p1 and graph.writers[top] == 1
    assert [names[r] for r in graph.readers[top]] == ["s1"]
    deps = dependencies(net)
    assert names.index("p0") in deps[names.index("s1")]
    assert not deps[p1] - {names.index(n) for n in names if n.startswith("x") or
                           n.startswith("Slice")}
    assert not graph.can_point(net.top_ids[0][0])  # an Input's top


def test_groups_and_schedule():
    net = _chain_net(T=4)
    graph = BlobGraph(net)
    deps = dependencies(net)
    groups, chains = find_groups(net, graph, deps)
    assert [[net.layer_names[m] for m in g.members] for g in groups] == [
        ["p0", "p1", "p2", "p3"]]
    assert chains == []
    order = schedule(deps, groups)
    assert -1 in order and len(order) == len(net.layers_list) - 3
    at = order.index(-1)
    assert all(u < 0 or not net.layer_names[u].startswith("s")
               for u in order[:at])


def test_layout_stacks_group_tops():
    net = _chain_net(T=3)
    graph = BlobGraph(net)
    groups, _ = find_groups(net, graph, dependencies(net))
    layout = Layout(net, graph, groups, np)
    g = groups[0]
    assert g.pt[0].shape == (3, 3, 5)  # three (1, 3, 5) tops
    for k, m in enumerate(g.members):
        top = net.blob_list[net.top_ids[m][0]]
        stack, row = layout.data_rows[net.top_ids[m][0]]
        assert row == k and np.shares_memory(stack[row], top.data)


def test_shape_watch():
    net = _chain_net(T=2)
    watch = ShapeWatch()
    watch.add(net.top_vecs[0])
    assert watch.valid()
    net.blob_list[net.top_ids[0][0]].reshape((2, 3, 3))
    assert not watch.valid()


@pytest.mark.parametrize("rows", [6, 1])  # one row: a GEMV into the row
@pytest.mark.parametrize("transpose", [False, True])
def test_ip_kernels_match_layer(transpose, rows):
    _ip_kernels_match_layer(transpose, rows)


def _ip_kernels_match_layer(transpose, rows):
    ns = caffe.NetSpec()
    ns.x = L.Input(shape=dict(dim=[rows, 4]))
    ns.y = L.InnerProduct(ns.x, num_output=3, transpose=transpose,
                          weight_filler=dict(type="gaussian", std=1),
                          bias_filler=dict(type="gaussian", std=1))
    caffe.set_random_seed(0)
    net = caffe.Net(ns.to_proto(), caffe.TRAIN)
    net.blobs["x"].data[...] = np.random.default_rng(0).normal(size=(rows, 4))
    layer = net.layers_list[1]
    b, t = net.bottom_vecs[1], net.top_vecs[1]
    layer.forward(b, t)
    want = t[0].data.copy()
    t[0].data[...] = 0
    fwd, _ = ip_kernels(layer, b, t, [True])
    fwd(b, t)
    np.testing.assert_allclose(t[0].data, want, rtol=1e-6)


def test_ip_kernels_transposed_product_for_large_weights(monkeypatch):
    """The (W x^T)^T forward (taken for large weights, small batches) gives the
    layer's results; the threshold is lowered here to keep the test small."""
    from recaffe.plan import kernels  # noqa: PLC0415

    monkeypatch.setattr(kernels, "TRANSPOSED_MIN_WEIGHT", 1)
    _ip_kernels_match_layer(False, 6)


@pytest.mark.parametrize("typ", ["Sigmoid", "TanH"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("compiled", [True, False])
def test_activation_kernels_match_layer(monkeypatch, typ, dtype, compiled):
    """The plan's Sigmoid / TanH closures against the layers: backward the
    same bits (compiled or numpy); forward the same bits except the compiled
    float32 Sigmoid, whose tanh is fast_math.tanh32 (a few ulp)."""
    from recaffe.backend import cpu_kernels, dtype_scope  # noqa: PLC0415
    from recaffe.plan import kernels  # noqa: PLC0415

    if compiled:
        pytest.importorskip("numba")
    monkeypatch.setenv(cpu_kernels.ENV, "1" if compiled else "0")
    calls = []
    real = kernels._compiled_activation
    monkeypatch.setattr(kernels, "_compiled_activation",
                        lambda *a: calls.append(a[0]) or real(*a))
    ns = caffe.NetSpec()
    ns.x = L.Input(shape=dict(dim=[7, 5, 3]))
    ns.y = getattr(L, typ)(ns.x)
    proto = ns.to_proto()
    proto.force_backward = True  # the Input's diff is wanted
    with dtype_scope(dtype):
        net = caffe.Net(proto, caffe.TRAIN)
    r = np.random.default_rng(1)
    net.blobs["x"].data[...] = r.normal(0, 4, (7, 5, 3))
    layer = net.layers_list[1]
    b, t = net.bottom_vecs[1], net.top_vecs[1]
    layer.forward(b, t)
    want = t[0].data.copy()
    t[0].diff[...] = r.normal(size=(7, 5, 3))
    layer.backward(t, [True], b)
    want_dx = b[0].diff.copy()
    t[0].data[...] = 0
    b[0].diff[...] = 0
    fwd, bwd = kernels.layer_kernels(net, BlobGraph(net), 1, {}, {}, np)
    assert calls == ([typ] if compiled else [])
    fwd(b, t)
    if compiled and typ == "Sigmoid" and dtype == np.float32:
        np.testing.assert_allclose(t[0].data, want, rtol=2e-7, atol=3e-7)
        t[0].data[...] = want  # backward from the layer's own outputs
    else:
        np.testing.assert_array_equal(t[0].data, want)
    bwd(t, [True], b)
    np.testing.assert_array_equal(b[0].diff, want_dx)


def _closure_vs_layer(ns_build, u, shapes, seed=2, force_backward=True):
    """Forward/backward of layer ``u`` by the plan's closures against the
    layer's own methods on the same inputs; returns both results."""
    from recaffe.plan import kernels  # noqa: PLC0415

    proto = ns_build()
    proto.force_backward = force_backward
    net = caffe.Net(proto, caffe.TRAIN)
    r = np.random.default_rng(seed)
    b, t = net.bottom_vecs[u], net.top_vecs[u]
    for blob, shape in zip(b, shapes, strict=True):
        blob.data[...] = r.uniform(-2, 2, shape)
    layer = net.layers_list[u]
    pd = net.bottom_need_backward[u]
    out = []
    for use_plan in (False, True):
        for tb in t:
            tb.data[...] = 0
        for bb in b:
            bb.diff[...] = 0
        if use_plan:
            fwd, bwd = kernels.layer_kernels(net, BlobGraph(net), u, {}, {}, np)
            assert fwd is not None and bwd is not None
            fwd(b, t)
        else:
            layer.forward(b, t)
        rr = np.random.default_rng(seed + 1)
        for tb in t:
            tb.diff[...] = rr.uniform(-1, 1, tb.shape)
        if use_plan:
            bwd(t, pd, b)
        else:
            layer.backward(t, pd, b)
        out.append([tb.data.copy() for tb in t] + [bb.diff.copy() for bb in b])
    return out


def test_lstm_unit_closure_equals_layer():
    pytest.importorskip("numba")

    def build():
        ns = caffe.NetSpec()
        ns.c, ns.x, ns.cont = L.Input(shape=[dict(dim=[1, 3, 5]), dict(dim=[1, 3, 20]),
                                             dict(dim=[1, 3])], ntop=3)
        ns.c1, ns.h1 = L.LSTMUnit(ns.c, ns.x, ns.cont, ntop=2)
        return ns.to_proto()

    layer_out, plan_out = _closure_vs_layer(build, 1, [(1, 3, 5), (1, 3, 20), (1, 3)])
    for a, p in zip(layer_out, plan_out, strict=True):
        np.testing.assert_array_equal(p, a)


def test_scale_closure_equals_layer():
    def build():
        ns = caffe.NetSpec()
        ns.x, ns.cont, ns.t = L.Input(shape=[dict(dim=[1, 4, 6]), dict(dim=[1, 4]),
                                             dict(dim=[1, 4, 6])], ntop=3)
        ns.h = L.InnerProduct(ns.x, num_output=6, axis=2)  # h needs a gradient
        ns.y = L.Scale(ns.h, ns.cont, axis=0)  # cont (an Input) does not
        ns.loss = L.EuclideanLoss(ns.y, ns.t)
        return ns.to_proto()

    layer_out, plan_out = _closure_vs_layer(build, 2, [(1, 4, 6), (1, 4)],
                                            force_backward=False)
    for a, p in zip(layer_out, plan_out, strict=True):
        np.testing.assert_array_equal(p, a)
