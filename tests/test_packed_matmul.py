"""oneDNN's packed matmul for the products of a shared weight (the steps of
an unrolled recurrent net): recaffe.backend.onednn.PackedMatmul and the
plan's PackedProduct (recaffe.plan.kernels)."""

from __future__ import annotations

import numpy as np
import pytest

import recaffe as caffe
from recaffe import layers as L
from recaffe.backend import onednn
from recaffe.plan import ExecutionPlan, kernels
from recaffe.recurrent.cells.lstm import lstm

needs_onednn = pytest.mark.skipif(not onednn.available(),
                                  reason=f"oneDNN: {onednn.info().get('why')}")


@pytest.fixture(autouse=True)
def _per_step_products(monkeypatch):
    """These nets' per-step products are the subject: an unrolled LSTM is
    not run as one step here (``RECAFFE_SHARE_BUFFERS=1`` would allow it)."""
    monkeypatch.setattr(ExecutionPlan, "fuse_sequences", False)


@pytest.fixture
def runs(monkeypatch):
    """Shapes of the packed products that ran, in order."""
    seen = []
    real = onednn.PackedMatmul.run

    def counted(self, x, y, bias=None):
        seen.append(self.shape)
        return real(self, x, y, bias)

    monkeypatch.setattr(onednn.PackedMatmul, "run", counted)
    yield seen
    onednn.set_enabled(True)


@needs_onednn
@pytest.mark.parametrize("m,k,n", [(2, 7, 5), (3, 64, 33), (16, 130, 70)])
@pytest.mark.parametrize("layout", ["transposed", "plain"])
def test_packed_matmul_matches_numpy(m, k, n, layout):
    """``x @ w`` for a weight given as Caffe's (N, K) used transposed, or a
    plain (K, N) one; a new pack replaces the old weight."""
    rng = np.random.default_rng(m + k)
    strides = (1, k) if layout == "transposed" else (n, 1)
    pm = onednn.packed_matmul(m, k, n, strides)
    assert pm is not None
    for _ in range(2):
        w = rng.standard_normal((n, k) if layout == "transposed" else (k, n)
                                ).astype(np.float32)
        wk = w.T if layout == "transposed" else w
        pm.pack(w)
        for _ in range(2):
            x = rng.standard_normal((m, k)).astype(np.float32)
            y = np.full((m, n), np.nan, np.float32)
            pm.run(x, y)
            ref = x.astype(np.float64) @ wk
            np.testing.assert_allclose(y, ref, rtol=0, atol=2e-5 * np.abs(ref).max())
    assert onednn.packed_matmul(m, k, n, strides, pm) is pm  # reused
    other = onednn.packed_matmul(m + 1, k, n, strides, pm)
    assert other is not pm and other.shape == (m + 1, k, n)


@needs_onednn
def test_packed_matmul_off_when_disabled():
    onednn.set_enabled(False)
    try:
        assert onednn.packed_matmul(4, 8, 8, (1, 8)) is None
    finally:
        onednn.set_enabled(True)


@pytest.mark.parametrize("m,k,n,pays", [
    (1, 512, 2048, False),   # one row: a GEMV, numpy is as fast
    (2, 512, 2048, True),    # weights of 4 MB: always
    (64, 512, 2048, True),
    (4, 256, 1024, True),    # 1 MB weights with few rows
    (16, 256, 1024, False),
    (32, 256, 1024, True),   # ... or many multiply-adds
    (64, 128, 512, False),   # small weights: waking oneDNN costs the gain
    (4, 128, 512, False),
])
def test_packed_pays(m, k, n, pays):
    assert kernels.packed_pays(m, k, n) is pays


def _lstm_net(T, N, H, V, phase):
    ns = caffe.NetSpec()
    ns.x = L.Input(shape=dict(dim=[T, N, V]))
    ns.cont = L.Input(shape=dict(dim=[T, N]))
    filler = dict(type="uniform", min=-0.1, max=0.1)
    r = lstm(ns.x, ns.cont, T, H, N=N, name="lstm1", weight_filler=filler, ns=ns)
    ns.h = r.output
    ns.logits = L.InnerProduct(ns.h, axis=2, num_output=V, weight_filler=filler)
    if phase == caffe.TRAIN:
        ns.label = L.Input(shape=dict(dim=[T, N]))
        ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    else:
        ns.prob = L.Softmax(ns.logits, axis=2)
    return ns.to_proto()


def _data(T, N, V, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (T, N, V)).astype(np.float32)
    cont = np.ones((T, N), np.float32)
    cont[0] = 0
    label = rng.integers(0, V, (T, N)).astype(np.float32)
    return x, cont, label


def _train(T, N, H, V, steps, tmp_path, tag, switch_off_after=None):
    """SGD steps on an unrolled LSTM LM; (losses, final weights)."""
    net_file = tmp_path / f"{tag}.prototxt"
    net_file.write_text(str(_lstm_net(T, N, H, V, caffe.TRAIN)))
    solver_file = tmp_path / f"{tag}_solver.prototxt"
    solver_file.write_text(f'net: "{net_file}"\nbase_lr: 0.5\nmomentum: 0.9\n'
                           'lr_policy: "fixed"\ndisplay: 0\nmax_iter: 100\n'
                           'snapshot_after_train: false\n')
    caffe.set_random_seed(1)
    solver = caffe.get_solver(str(solver_file))
    x, cont, label = _data(T, N, V)
    for name, arr in (("x", x), ("cont", cont), ("label", label)):
        solver.net.blobs[name].data[...] = arr
    losses = []
    for k in range(steps):
        if switch_off_after is not None and k == switch_off_after:
            onednn.set_enabled(False)
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    return losses, {name: [b.data.copy() for b in blobs]
                    for name, blobs in solver.net.params.items()}


@needs_onednn
def test_unrolled_lstm_training_matches_numpy(tmp_path, runs):
    """An unrolled LSTM whose recurrent weight pays for packing: every
    step's product and input gradient run through oneDNN, the weight packed
    again after each update (a stale pack would move the trajectory far off
    at lr 0.5), and five SGD steps agree with numpy's to float32 rounding."""
    T, N, H, V = 3, 2, 256, 7
    assert kernels.packed_pays(N, H, 4 * H)
    onednn.set_enabled(False)
    ref_losses, ref_w = _train(T, N, H, V, 5, tmp_path, "numpy")
    assert runs == []
    onednn.set_enabled(True)
    losses, w = _train(T, N, H, V, 5, tmp_path, "packed")
    # per step: T - 1 forward products (h_0 is 0: the first step's product
    # is one too) and as many input gradients
    assert (N, H, 4 * H) in runs and (N, 4 * H, H) in runs
    assert len(runs) >= 5 * 2 * (T - 1)
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5)
    assert ref_losses[-1] < ref_losses[0] - 0.1  # it learns: weights change
    for name in ref_w:
        for a, b in zip(w[name], ref_w[name], strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)


@needs_onednn
def test_switching_off_between_steps_falls_back(tmp_path, runs):
    T, N, H, V = 3, 2, 256, 7
    onednn.set_enabled(False)
    ref_losses, _ = _train(T, N, H, V, 4, tmp_path, "numpy")
    onednn.set_enabled(True)
    losses, _ = _train(T, N, H, V, 4, tmp_path, "mixed", switch_off_after=2)
    used = len(runs)
    assert used > 0
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5)
    onednn.set_enabled(True)  # (the fixture also restores it)


@needs_onednn
def test_unrolled_lstm_forward_only_sees_weight_edits(runs):
    """TEST phase: the products run packed, and a weight edited in place
    between forwards (as a script may) is packed again."""
    T, N, H, V = 3, 2, 256, 7
    caffe.set_random_seed(2)
    net = caffe.Net(_lstm_net(T, N, H, V, caffe.TEST), caffe.TEST)
    x, cont, _ = _data(T, N, V)
    net.blobs["x"].data[...] = x
    net.blobs["cont"].data[...] = cont

    def probs(enabled):
        onednn.set_enabled(enabled)
        try:
            net.forward()
            return net.blobs["h"].data.copy()
        finally:
            onednn.set_enabled(True)

    a, ref = probs(True), probs(False)
    assert runs and all(s == (N, H, 4 * H) for s in runs)
    np.testing.assert_allclose(a, ref, rtol=0, atol=1e-6)
    w_hc = next(blobs[0] for name, blobs in net.params.items()
                if blobs[0].data.shape == (4 * H, H))
    w_hc.data[...] *= -3.0
    b, ref_b = probs(True), probs(False)
    assert not np.allclose(b, a, atol=1e-3)
    np.testing.assert_allclose(b, ref_b, rtol=0, atol=1e-6)


@needs_onednn
def test_transposed_shared_weight_chain(runs):
    """InnerProducts with ``transpose: true`` sharing one (K, N) weight, each
    reading the previous one's output: forward and input gradients through
    the packed products agree with numpy's."""
    M, K = 2, 512

    def net_and_grads(enabled):
        onednn.set_enabled(enabled)
        try:
            ns = caffe.NetSpec()
            ns.x = L.Input(shape=dict(dim=[M, K]))
            h = ns.x
            for t in range(3):
                h = L.InnerProduct(h, num_output=K, transpose=True, bias_term=False,
                                   param=[dict(name="W")],
                                   weight_filler=dict(type="gaussian", std=0.04))
                setattr(ns, f"p{t}", h)
                h = L.TanH(h)
                setattr(ns, f"a{t}", h)
            ns.loss = L.Reduction(h, operation=3, loss_weight=1)  # SUMSQ
            caffe.set_random_seed(3)
            net = caffe.Net(ns.to_proto(), caffe.TRAIN)
            net.blobs["x"].data[...] = np.random.default_rng(4).uniform(-1, 1, (M, K))
            net.forward()
            net.backward()
            return (net.blobs["a2"].data.copy(), net.params["p0"][0].diff.copy(),
                    net.blobs["p1"].diff.copy())
        finally:
            onednn.set_enabled(True)

    assert kernels.packed_pays(M, K, K)
    got = net_and_grads(True)
    assert (M, K, K) in runs
    ref = net_and_grads(False)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("m,k,n,pays", [
    (3200, 65, 2048, True),   # an unrolled LSTM's input projection over all steps
    (1600, 65, 512, True),
    (3200, 512, 65, False),   # a narrow output (a decoder): OpenBLAS is as fast
    (3200, 300, 2048, False),  # a long input
    (100, 64, 512, False),    # too small to pay for switching thread pools
])
def test_wide_pays(m, k, n, pays):
    assert kernels.wide_pays(m, k, n) is pays


def _wide_net(batched: bool):
    """An InnerProduct with a short input and a wide output, with a bias:
    one layer over (T, N, K), or T time-batched layers sharing W and b."""
    T, N, K, H = 4, 128, 64, 512
    ns = caffe.NetSpec()
    ns.x = L.Input(shape=dict(dim=[T, N, K]))
    filler = dict(type="gaussian", std=0.1)
    bias = dict(type="uniform", min=-0.5, max=0.5)
    if batched:
        xs = L.Slice(ns.x, ntop=T, slice_param=dict(axis=0))
        outs = []
        for t in range(T):
            p = L.InnerProduct(xs[t], num_output=H, axis=2, weight_filler=filler,
                               bias_filler=bias,
                               param=[dict(name="W"), dict(name="b")])
            setattr(ns, f"p{t}", p)
            outs.append(L.TanH(p))
            setattr(ns, f"a{t}", outs[-1])
        ns.y = L.Concat(*outs, axis=0)
    else:
        ns.p = L.InnerProduct(ns.x, num_output=H, axis=2, weight_filler=filler,
                              bias_filler=bias)
        ns.y = L.TanH(ns.p)
    ns.loss = L.Reduction(ns.y, operation=3, loss_weight=1)  # SUMSQ
    param = ns.to_proto()
    param.force_backward = True  # the input's gradient too
    return param, (T, N, K), (T * N, K, H)


@needs_onednn
@pytest.mark.parametrize("batched", [False, True])
def test_wide_input_projection(runs, batched):
    """A wide InnerProduct (one layer over all steps, or a time-batched
    group) computes through oneDNN's matmul with its bias added inside (its
    input gradient, with a short output, stays on numpy); the outputs and
    every gradient agree with numpy's, also after its weight and bias are
    edited between passes."""
    param, xshape, mkn = _wide_net(batched)
    assert kernels.wide_pays(*mkn)

    def run(enabled, edit=False):
        onednn.set_enabled(enabled)
        try:
            caffe.set_random_seed(7)
            net = caffe.Net(param, caffe.TRAIN)
            net.blobs["x"].data[...] = np.random.default_rng(8).uniform(-1, 1, xshape)
            net.forward()
            if edit:
                for blob in net.params[next(iter(net.params))]:
                    blob.data[...] *= -2.0
                net.forward()
            net.backward()
            out = [net.blobs["y"].data.copy(), net.blobs["x"].diff.copy()]
            return out + [b.diff.copy() for blobs in net.params.values()
                          for b in blobs]
        finally:
            onednn.set_enabled(True)

    for edit in (False, True):
        runs.clear()
        got = run(True, edit)
        assert mkn in runs and (mkn[0], mkn[2], mkn[1]) not in runs
        assert np.abs(got[1]).max() > 0  # the input's gradient was computed
        ref = run(False, edit)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=0,
                                       atol=3e-5 * max(1.0, np.abs(b).max()))
