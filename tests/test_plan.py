"""The execution plan (recaffe.plan) gives the plain per-layer loop's results.

Each net is built twice from the same seed; one runs with ``RECAFFE_PLAN=0``,
the other with the plan (time batching on). Loss, every blob's data and diff
and every parameter diff must agree to float32 tolerance.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from shared_nets import talk_manual_net, unrolled_lm

import recaffe as caffe
from recaffe import layers as L
from recaffe import params as P
from recaffe.io.prototxt import parse_prototxt
from recaffe.proto import caffe_pb2

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples",
                        "binary_addition")


def _plan_env(monkeypatch, share: bool):
    monkeypatch.setenv("RECAFFE_SHARE_BUFFERS", "1" if share else "0")

    def set_plan(on: bool) -> None:
        monkeypatch.setenv("RECAFFE_PLAN", "1" if on else "0")
    return set_plan


@pytest.fixture(params=[False, True], ids=["own-arrays", "share-buffers"])
def plan_env(monkeypatch, request):
    """Switches the plan on and off; every test runs with and without
    ``share_buffers`` (blobs it shares are left out of the comparisons)."""
    return _plan_env(monkeypatch, request.param)


#: For tests that read intermediate blobs after a pass: no sharing.
OWN_ARRAYS = pytest.mark.parametrize("plan_env", [False], ids=["own-arrays"],
                                     indirect=True)


def _build(param, seed=0):
    caffe.set_random_seed(seed)
    return caffe.Net(param, caffe.TRAIN)


def _fill_inputs(net, seed=1):
    rng = np.random.default_rng(seed)
    for name in net.inputs:
        b = net.blobs[name]
        b.data[...] = rng.integers(0, 2, b.shape)


def _run(net, set_plan, on, iters=2, feed=_fill_inputs):
    set_plan(on)
    losses = []
    for it in range(iters):
        feed(net, seed=it + 1)
        net.clear_param_diffs()
        losses.append(net.forward_prefilled())
        net.backward_all()
        for b in net.learnable_params:  # a plain SGD step between iterations
            b.data -= 0.1 * b.diff
    return losses


def _assert_same(a, b, la, lb):
    np.testing.assert_allclose(la, lb, rtol=1e-5, atol=1e-6)
    shared = set(b.shared_blob_names)  # hold other steps' values (share_buffers)
    for name in a.blobs:
        if name in shared:
            continue
        np.testing.assert_allclose(a.blobs[name].data, b.blobs[name].data,
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    for pa, pb in zip(a.learnable_params, b.learnable_params, strict=True):
        np.testing.assert_allclose(pa.diff, pb.diff, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(pa.data, pb.data, rtol=1e-4, atol=1e-5)


def _compare(param, set_plan, iters=2, feed=_fill_inputs, min_batched=1):
    plain, planned = _build(param), _build(param)
    la = _run(plain, set_plan, False, iters, feed)
    assert plain.plan is None
    lb = _run(planned, set_plan, True, iters, feed)
    assert planned.plan is not None
    assert planned.plan.describe().count("batched") >= min_batched
    _assert_same(plain, planned, la, lb)
    return plain, planned


def test_manual_unrolled_net_matches_plain(plan_env):
    _, planned = _compare(talk_manual_net(6, 5, 4), plan_env, min_batched=2)
    text = planned.plan.describe()
    assert "batched InnerProduct x6" in text
    # The recurrent path stays a loop: one zH step per time step.
    assert text.count("InnerProduct zH") == 6 or text.count("\nInnerProduct ") >= 6


def test_in_place_consumer_of_batched_tops(plan_env):
    _compare(talk_manual_net(4, 3, 5, in_place_relu=True), plan_env, iters=3)


def test_talk_example_net_with_hdf5_data(plan_env, tmp_path):
    sys.path.insert(0, os.path.abspath(EXAMPLES))
    try:
        manual = pytest.importorskip("manual_unroll")
    finally:
        sys.path.pop(0)
    source = manual.write_data(str(tmp_path), 40, 5, seed=3)
    param = manual.binary_addition_train(5, 8, source)
    _compare(param, plan_env, iters=3, feed=lambda net, seed: None, min_batched=2)


def test_unroll_built_net(plan_env):
    sys.path.insert(0, os.path.abspath(EXAMPLES))
    try:
        nu = pytest.importorskip("net_unroll")
    finally:
        sys.path.pop(0)
    for neuron in ("Sigmoid", "TanH"):
        param = nu.binary_addition_net(5, 7, None, num_hu=6, neuron=neuron)
        _compare(param, plan_env, min_batched=2)


def _unrolled_lstm_like(T, N, D, H):
    """An ad-hoc unrolled net: per-step input projection + TanH + output
    projection + softmax, gated by the recurrent state (prototxt via NetSpec)."""
    ns = caffe.NetSpec()
    ns.x = L.Input(shape=dict(dim=[T, N, D]))
    xs = L.Slice(ns.x, ntop=T, slice_param=dict(axis=0))
    ns.h0 = L.Input(shape=dict(dim=[1, N, H]))
    h = ns.h0
    outs = []
    for t in range(T):
        px = L.InnerProduct(xs[t], axis=2, num_output=H,
                            param=[dict(name="Wx"), dict(name="bx")],
                            weight_filler=dict(type="gaussian", std=0.3),
                            bias_filler=dict(type="gaussian", std=0.3))
        gx = L.TanH(px)
        ph = L.InnerProduct(h, axis=2, num_output=H, bias_term=False,
                            param=[dict(name="Wh")],
                            weight_filler=dict(type="gaussian", std=0.3))
        h = L.Eltwise(gx, L.TanH(ph), eltwise_param=dict(operation=P.Eltwise.PROD))
        setattr(ns, f"h{t + 1}", h)
        y = L.InnerProduct(h, axis=2, num_output=3,
                           param=[dict(name="Wy"), dict(name="by")],
                           weight_filler=dict(type="gaussian", std=0.3))
        outs.append(L.Softmax(y, axis=2))
    ns.y = L.Concat(*outs, axis=0)
    ns.loss = L.Reduction(ns.y, operation=P.Reduction.SUMSQ, loss_weight=1)
    return ns.to_proto()


def _gauss(net, seed):
    rng = np.random.default_rng(seed)
    for name in net.inputs:
        net.blobs[name].data[...] = rng.normal(size=net.blobs[name].shape)


def test_adhoc_netspec_unrolled_net(plan_env):
    _, planned = _compare(_unrolled_lstm_like(5, 3, 4, 6), plan_env, feed=_gauss,
                          min_batched=3)
    text = planned.plan.describe()
    assert "batched TanH" in text and "batched Softmax" in text


def test_prototxt_text_roundtrip_and_reshape_invalidates(plan_env):
    param = parse_prototxt(str(_unrolled_lstm_like(4, 2, 3, 5)),
                           caffe_pb2.NetParameter)
    plain, planned = _build(param), _build(param)
    la = _run(plain, plan_env, False, 1, _gauss)
    lb = _run(planned, plan_env, True, 1, _gauss)
    _assert_same(plain, planned, la, lb)
    first = planned.plan
    for net in (plain, planned):  # a new batch size
        net.blobs["x"].reshape(4, 5, 3)
        net.blobs["h0"].reshape(1, 5, 5)
        net.reshape()
    la = _run(plain, plan_env, False, 2, _gauss)
    lb = _run(planned, plan_env, True, 2, _gauss)
    assert planned.plan is not first
    _assert_same(plain, planned, la, lb)
    # Reshape without net.reshape(): noticed at the next forward.
    for net in (plain, planned):
        net.blobs["x"].reshape(4, 2, 3)
        net.blobs["h0"].reshape(1, 2, 5)
    la = _run(plain, plan_env, False, 1, _gauss)
    lb = _run(planned, plan_env, True, 1, _gauss)
    _assert_same(plain, planned, la, lb)


def test_disabled_callbacks_and_partial_ranges(plan_env):
    param = talk_manual_net(4, 3, 2)
    plan_env(True)
    net = _build(param)
    _fill_inputs(net)
    seen = []
    net.before_forward(seen.append)
    net.forward()
    assert net.plan is None and len(seen) == len(net.layers)
    net._callbacks["before_forward"].clear()  # noqa: SLF001
    plan_env(False)
    net.forward()
    assert net.plan is None
    # Planned forward, then a partial plain backward: layers get their
    # per-step state back.
    ref = _build(param)
    _fill_inputs(ref)
    ref.clear_param_diffs()
    ref.forward()
    ref.backward()
    plan_env(True)
    net.clear_param_diffs()
    net.forward()
    assert net.plan is not None
    net.backward(start=net.layer_names[-1])
    for pa, pb in zip(ref.learnable_params, net.learnable_params, strict=True):
        np.testing.assert_allclose(pa.diff, pb.diff, rtol=1e-4, atol=1e-6)
    # A partial forward after a planned one, then a full planned pass again.
    net.forward(end="zX1")
    net.clear_param_diffs()
    net.forward()
    net.backward()
    for pa, pb in zip(ref.learnable_params, net.learnable_params, strict=True):
        np.testing.assert_allclose(pa.diff, pb.diff, rtol=1e-4, atol=1e-6)


def test_debug_info_uses_plain_loop(plan_env):
    plan_env(True)
    net = _build(talk_manual_net(3, 2, 2))
    _fill_inputs(net)
    net.debug_info = True
    net.forward()
    assert net.plan is None


def test_solver_training_matches(plan_env, tmp_path):
    param = talk_manual_net(4, 6, 5)
    net_file = tmp_path / "net.prototxt"
    net_file.write_text(str(param))
    solver_file = tmp_path / "solver.prototxt"
    solver_file.write_text(f'net: "{net_file}"\nbase_lr: 0.5\nmomentum: 0.9\n'
                           'lr_policy: "fixed"\nmax_iter: 5\ndisplay: 0\n'
                           'snapshot_after_train: false\n')
    results = []
    for on in (False, True):
        plan_env(on)
        caffe.set_random_seed(5)
        solver = caffe.get_solver(str(solver_file))
        _fill_inputs(solver.net)
        solver.step(5)
        results.append([b.data.copy() for b in solver.net.learnable_params])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_deferred_recurrent_weight_gradients(plan_env, monkeypatch):
    from recaffe.plan import ExecutionPlan  # noqa: PLC0415

    monkeypatch.setattr(ExecutionPlan, "defer_weight_grads", True)
    _, planned = _compare(talk_manual_net(5, 4, 3), plan_env, iters=3)
    # zH1 reads the (N, 1, H) initial state, zH2..zH5 the (N, H) hidden ones.
    assert [len(c) for c in planned.plan.chains] == [4]


def _assert_same_diffs(a, b, names=None):
    shared = set(b.shared_blob_names)
    for name in names or a.blobs:
        if a.blobs[name].has_diff and name not in shared:
            np.testing.assert_allclose(a.blobs[name].diff, b.blobs[name].diff,
                                       rtol=1e-4, atol=1e-5, err_msg=name)


@OWN_ARRAYS
def test_recurrent_path_kernels(plan_env):
    """Eltwise SUM diffs shared, recurrent weight gradients over stacked rows,
    members stacked in time order; every blob diff as in the plain loop."""
    plain, planned = _compare(talk_manual_net(5, 4, 3), plan_env, iters=3)
    plan = planned.plan
    net = planned
    assert [net.layer_names[u] for u in sorted(plan.aliased_sums)] == [
        f"z{t}" for t in range(1, 6)]
    for t in range(1, 6):
        z, zx, zh = (net.blobs[f"{p}{t}"] for p in ("z", "zX", "zH"))
        assert np.shares_memory(z.diff, zx.diff) and np.shares_memory(z.diff, zh.diff)
    assert [[net.layer_names[m] for m in c] for c in plan.row_chains] == [
        [f"zH{t}" for t in range(2, 6)]]
    assert "batched InnerProduct x5: zX1 .. zX5" in plan.describe()
    _assert_same_diffs(plain, planned)


def test_unroll_built_net_diffs(plan_env):
    sys.path.insert(0, os.path.abspath(EXAMPLES))
    try:
        nu = pytest.importorskip("net_unroll")
    finally:
        sys.path.pop(0)
    plain, planned = _compare(nu.binary_addition_net(6, 5, None, num_hu=7), plan_env)
    assert planned.plan.aliased_sums and planned.plan.row_chains
    _assert_same_diffs(plain, planned)


def test_old_deferred_weight_gradients_path(plan_env, monkeypatch):
    from recaffe.plan import ExecutionPlan  # noqa: PLC0415

    monkeypatch.setattr(ExecutionPlan, "defer_weight_grads", True)
    monkeypatch.setattr(ExecutionPlan, "_chain_rows_backward",
                        lambda self, members: None)
    plain, planned = _compare(talk_manual_net(5, 4, 3), plan_env, iters=3)
    assert planned.plan.row_chains == []
    _assert_same_diffs(plain, planned)


def _slice_concat_net(N, widths, shared):
    """x -> InnerProduct -> Slice (axis 1) -> per part InnerProduct -> TanH ->
    Concat -> loss; the Slice's bottom gets a diff. With ``shared`` the parts
    share params (time-batched, stacked), else each part has its own width."""
    ns = caffe.NetSpec()
    outw = [2] * len(widths) if shared else list(widths)
    ns.x, ns.t = L.Input(shape=[dict(dim=[N, 3]), dict(dim=[N, sum(outw)])], ntop=2)
    ns.p = L.InnerProduct(ns.x, num_output=sum(widths),
                          weight_filler=dict(type="gaussian", std=0.5))
    points = list(np.cumsum(widths)[:-1])
    parts = L.Slice(ns.p, ntop=len(widths), slice_param=dict(axis=1,
                                                            slice_point=points))
    outs = []
    for k, part in enumerate(parts):
        spec = {"param": [dict(name="Wq"), dict(name="bq")]} if shared else {}
        q = L.InnerProduct(part, num_output=outw[k],
                           weight_filler=dict(type="gaussian", std=0.5),
                           bias_filler=dict(type="gaussian", std=0.5), **spec)
        setattr(ns, f"q{k}", q)
        outs.append(L.TanH(q))
    ns.y = L.Concat(*outs, concat_param=dict(axis=1))
    ns.loss = L.EuclideanLoss(ns.y, ns.t)
    return ns.to_proto()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("widths,shared", [((2, 2, 2, 2), True),
                                           ((1, 2, 3), False),
                                           ((3, 3, 3), True)])
def test_slice_and_concat_kernels(plan_env, dtype, widths, shared):
    from recaffe.backend import dtype_scope  # noqa: PLC0415

    with dtype_scope(dtype):
        plain, planned = _compare(_slice_concat_net(5, widths, shared), plan_env,
                                  feed=_gauss, min_batched=1 if shared else 0)
    _assert_same_diffs(plain, planned)


def test_bias_adder_tiles_narrow_rows():
    from recaffe.plan import bias_adder  # noqa: PLC0415

    rng = np.random.default_rng(0)
    for M, N in [(800, 16), (800, 1), (100, 16), (7, 3), (4096, 1), (97, 64)]:
        y = rng.normal(size=(M, N)).astype(np.float32)
        b = rng.normal(size=N).astype(np.float32)
        want = y + b
        bias_adder(y, M, N)(b)
        np.testing.assert_array_equal(y, want)


def test_blob_set_buffers():
    from recaffe.blob import Blob  # noqa: PLC0415
    from recaffe.errors import RecaffeError  # noqa: PLC0415

    b = Blob((2, 3), dtype=np.float32)
    flat = np.arange(8, dtype=np.float32)
    b.set_buffers(data=flat, diff=flat)
    assert b.data.shape == b.diff.shape == (2, 3)
    assert np.shares_memory(b.data, flat) and np.shares_memory(b.diff, flat)
    b.data[0, 0] = 42
    assert flat[0] == 42 and b.diff[0, 0] == 42
    with pytest.raises(RecaffeError, match="at least 6 elements"):
        b.set_buffers(data=np.zeros(5, np.float32))
    with pytest.raises(RecaffeError, match="float32"):
        b.set_buffers(diff=np.zeros(6, np.float64))
    with pytest.raises(RecaffeError, match="1-D"):
        b.set_buffers(diff=np.zeros((2, 3), np.float32))


@OWN_ARRAYS
def test_per_step_slices_are_views_of_their_bottom(plan_env):
    """Caffe's unrolled LSTM slices W_xc x (and cont) per step along T: the plan
    makes those tops rows of the bottom's data and diff instead of copies."""
    from recaffe import layers as L  # noqa: PLC0415
    from recaffe.recurrent.cells import lstm  # noqa: PLC0415

    T, N, D, H = 4, 3, 5, 6
    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.y = L.Input(shape=[dict(dim=[T, N, D]), dict(dim=[T, N]),
                                         dict(dim=[T, N, H])], ntop=3)
    r = lstm(ns.x, ns.cont, T, H, N=N, name="l",
             weight_filler=dict(type="gaussian", std=0.3), ns=ns)
    ns.loss = L.EuclideanLoss(r.output, ns.y)

    def feed(net, seed):
        rng = np.random.default_rng(seed)
        net.blobs["x"].data[...] = rng.normal(size=(T, N, D))
        net.blobs["y"].data[...] = rng.normal(size=(T, N, H))
        net.blobs["cont"].data[...] = (rng.random((T, N)) > 0.3)

    plain, planned = _compare(ns.to_proto(), plan_env, iters=3, feed=feed,
                              min_batched=0)
    _assert_same_diffs(plain, planned)
    viewed = {planned.layer_names[u] for u in planned.plan.layout.viewed_slices}
    assert {"l_W_xc_x_slice", "l_cont_slice"} <= viewed
    whole = planned.blobs["l_W_xc_x"]
    for t in range(1, T + 1):
        part = planned.blobs[f"l_W_xc_x_t{t}"]
        assert np.shares_memory(part.data, whole.data)
        assert np.shares_memory(part.diff, whole.diff)
    # The recurrent products' inputs (cont * h per step) are rows of one stack,
    # so W_hc's gradient is one GEMM (a row chain over all steps).
    net = planned
    # (Step 1 reads the initial state, of another shape: not in the chain.)
    assert [[net.layer_names[m] for m in c] for c in planned.plan.row_chains] == [
        [f"l_transform_t{t}" for t in range(2, T + 1)]]
    stack, row = planned.plan.data_rows[net.blob_names.index("l_h_conted_t2")]
    for t in range(2, T + 1):
        blob = planned.blobs[f"l_h_conted_t{t}"]
        assert np.shares_memory(blob.data, stack[row + t - 2])


def test_transposed_recurrent_products_match_plain(plan_env, monkeypatch):
    from recaffe.plan import kernels  # noqa: PLC0415

    monkeypatch.setattr(kernels, "TRANSPOSED_MIN_WEIGHT", 1)
    plain, planned = _compare(talk_manual_net(5, 4, 3), plan_env, iters=3)
    _assert_same_diffs(plain, planned)
    # every step's transposed product goes through one shared work array, of
    # the steps' (H, N) = (3, 4) shape (the time-batched products have their
    # own shapes)
    shared = [k[1] for k in planned.plan.scratch
              if isinstance(k, tuple) and k[0] == "ip_transposed"]
    steps = [f for f, _b, _t in planned.plan.fwd
             if f.__qualname__ == "ip_kernels.<locals>.fwd"]
    assert shared.count((3, 4)) == 1 and len(steps) >= 4


@OWN_ARRAYS
def test_forward_only_net_allocates_no_diffs(plan_env):
    """A TEST net without a loss: the plan runs no backward and creates no diff
    arrays (they are lazy), neither stacked nor per blob; results as plain."""
    param = talk_manual_net(5, 4, 3)
    del param.layer[-1]  # the loss
    plan_env(True)
    caffe.set_random_seed(0)
    planned = caffe.Net(param, caffe.TEST)
    plan_env(False)
    caffe.set_random_seed(0)
    plain = caffe.Net(param, caffe.TEST)
    for net, on in ((plain, False), (planned, True)):
        plan_env(on)
        _fill_inputs(net)
        net.forward_prefilled()
    assert planned.plan is not None and planned.plan.bwd == []
    assert "batched InnerProduct" in planned.plan.describe()
    assert not [n for n, b in planned.blobs.items() if b.has_diff]
    shared = set(planned.shared_blob_names)  # (with share_buffers on)
    for name in set(plain.blobs) - shared:
        np.testing.assert_allclose(planned.blobs[name].data, plain.blobs[name].data,
                                   rtol=1e-5, atol=1e-6, err_msg=name)


@OWN_ARRAYS
def test_fused_sum_sigmoid_steps_equal_single_steps(plan_env, monkeypatch):
    """The talk's net: each step's Eltwise SUM + Sigmoid forward and Split +
    Sigmoid backward run as one compiled call each (numba installed), with
    the same bits as the single small-layer kernels; per-layer timing still
    runs the steps one by one."""
    pytest.importorskip("numba")
    from recaffe.plan import steps  # noqa: PLC0415

    param = talk_manual_net(5, 4, 3)
    fused, single = _build(param), _build(param)
    lf = _run(fused, plan_env, True, iters=3)
    names = {f.__qualname__ for f, _b, _t in fused.plan.fwd}
    assert "_bound.<locals>.run" in names
    assert any(f.__qualname__ == "_bound_back.<locals>.run"
               for f, *_ in fused.plan.bwd)
    n_fused = sum(f.__qualname__ == "_bound.<locals>.run"
                  for f, _b, _t in fused.plan.fwd)
    assert n_fused == 5  # one per time step
    monkeypatch.setattr(steps, "fuse_sum_sigmoid", lambda *a: None)
    monkeypatch.setattr(steps, "fuse_split_sigmoid_backward", lambda *a: None)
    ls = _run(single, plan_env, True, iters=3)
    assert not any(f.__qualname__ == "_bound.<locals>.run"
                   for f, _b, _t in single.plan.fwd)
    assert lf == ls
    for name in fused.blobs:
        np.testing.assert_array_equal(fused.blobs[name].data, single.blobs[name].data,
                                      err_msg=name)
        np.testing.assert_array_equal(fused.blobs[name].diff, single.blobs[name].diff,
                                      err_msg=name)
    fwd_t, bwd_t = fused.plan.timed_pass()
    assert len(fwd_t) == len(bwd_t) == len(fused.plan.fwd_single) == len(fused.plan.fwd)


@OWN_ARRAYS
@pytest.mark.parametrize("train", [True, False])
def test_concat_of_per_step_rows_is_a_view(plan_env, monkeypatch, train):
    """Every step's h_t is written into its row of the Concat's top (and its
    diff read from there): the Concat copies nothing, results are the same
    bits as with the copy."""
    from recaffe.plan.layout import Layout  # noqa: PLC0415

    T, N, V, H = 5, 3, 4, 6
    param = unrolled_lm(T, N, V, H, train=train)
    plan_env(True)

    def run(view):
        if not view:
            monkeypatch.setattr(Layout, "_view_concat", lambda self, u: None)
        caffe.set_random_seed(0)
        net = caffe.Net(param, caffe.TRAIN if train else caffe.TEST)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(2):
            net.blobs["x"].data[...] = rng.normal(size=(T, N, V))
            net.blobs["cont"].data[...] = 1
            net.blobs["cont"].data[0] = 0
            if train:
                net.blobs["label"].data[...] = rng.integers(0, V, (T, N))
            net.clear_param_diffs()
            net.forward_prefilled()
            if train:
                net.backward_all()
                for p in net.learnable_params:
                    p.data -= 0.5 * p.diff
            out.append(net.blobs["logits"].data.copy())
        monkeypatch.undo()
        return net, out, [p.data.copy() for p in net.learnable_params]

    viewed, out_v, params_v = run(True)
    copied, out_c, params_c = run(False)
    h = viewed.blobs["h1"]
    concat = viewed.layer_names.index("lstm1_h")
    assert concat in viewed.plan.layout.viewed_slices
    assert concat not in copied.plan.layout.viewed_slices
    for t in range(T):
        step = viewed.blobs[f"lstm1_h_t{t + 1}"]
        assert np.shares_memory(step.data, h.data)
        np.testing.assert_array_equal(step.data[0], h.data[t])
    if train:  # what the Concat reads (a Split's top): its diff is h's row
        for t, b in enumerate(viewed.bottom_ids[concat]):
            np.testing.assert_array_equal(viewed.blob_list[b].diff[0], h.diff[t])
            assert np.shares_memory(viewed.blob_list[b].diff, h.diff)
    for a, b in zip(out_v + params_v, out_c + params_c, strict=True):
        np.testing.assert_array_equal(a, b)
