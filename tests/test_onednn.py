"""oneDNN's LSTM primitive behind forward-only LSTM layers (recaffe.backend.onednn)."""

import contextlib
import os
import platform
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from recaffe import backend
from recaffe.backend import onednn
from recaffe.blob import Blob
from recaffe.errors import BackendError
from recaffe.testing.layer_test import make_blobs, make_layer
from tests.layers.test_lstm import lstm_reference

H = 9
N = max(onednn.MIN_N, 5)
FILL = ('weight_filler { type: "uniform" min: -0.3 max: 0.3 } '
        'bias_filler { type: "uniform" min: -0.2 max: 0.2 }')


def _installed() -> bool:
    try:
        metadata.version("onednn-cpu-gomp")
    except metadata.PackageNotFoundError:
        return False
    return True


def test_installed_package_loads():
    """Where the dev extra installs the package (Linux x86-64), it must load:
    the tests below would otherwise skip and hide it."""
    if not (_installed() and sys.platform == "linux"
            and platform.machine() == "x86_64"):
        pytest.skip("onednn-cpu-gomp is not installed on this platform")
    info = onednn.info()
    assert info["available"], info
    assert info["version"].startswith("3.")


needs_onednn = pytest.mark.skipif(not onednn.available(),
                                  reason=f"oneDNN: {onednn.info().get('why')}")


@pytest.fixture
def calls(monkeypatch):
    """The layers' calls that reached a primitive: ("infer" | "train", shape)."""
    seen = []
    for cls, method, kind in ((onednn.LSTMInference, "run", "infer"),
                              (onednn.LSTMTraining, "forward", "train"),
                              (onednn.LSTMTraining, "backward", "back")):
        real = getattr(cls, method)

        def counted(self, *a, _real=real, _kind=kind):
            seen.append((_kind, self.shape))
            return _real(self, *a)

        monkeypatch.setattr(cls, method, counted)
    return seen


@pytest.fixture
def own_loop():
    """A context: inside it, layers run recaffe's own loop."""
    class Off:
        def __enter__(self):
            onednn.set_enabled(False)

        def __exit__(self, *exc):
            onednn.set_enabled(True)

    yield Off
    onednn.set_enabled(True)


def _layer(bottoms, dtype=np.float32, extra="", forward_only=True, num_tops=1):
    backend.set_random_seed(5)
    text = (f'name: "l" type: "LSTM" recurrent_param {{ num_output: {H} {FILL} '
            f'{extra} }}')
    with backend.dtype_scope(dtype):
        layer = make_layer(text)
        layer.impl = "fused"
        bottom = make_blobs(bottoms, dtype)
        top = [Blob((), dtype=dtype) for _ in range(num_tops)]
        layer.SetUp(bottom, top)
    layer.forward_only = forward_only
    return layer, bottom, top


def _data(t, n, d=5, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (t, n, d))
    cont = np.ones((t, n))
    cont[0, ::3] = 0.0  # some streams start a sequence, the others carry on
    return x, cont


@needs_onednn
def test_primitive_matches_reference_with_states():
    t, n, d, h = 7, N, 5, 11
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (t, n, d)).astype(np.float32)
    w_xc, w_hc = (rng.uniform(-0.4, 0.4, (4 * h, k)).astype(np.float32) for k in (d, h))
    b_c = rng.uniform(-0.3, 0.3, 4 * h).astype(np.float32)
    h0, c0 = (rng.uniform(-1, 1, (n, h)).astype(np.float32) for _ in range(2))
    y = np.empty((t, n, h), np.float32)
    h_t, c_t = np.empty((n, h), np.float32), np.empty((n, h), np.float32)
    prim = onednn.lstm_inference(t, n, d, h)
    prim.run(x, w_xc, b_c, w_hc, h0, c0, y, h_t, c_t)
    ref, ref_h, ref_c = lstm_reference(x, np.ones((t, n)), [w_xc, b_c, w_hc],
                                       h0=h0, c0=c0)
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-6)
    np.testing.assert_allclose(h_t, ref_h.reshape(n, h), rtol=0, atol=2e-6)
    np.testing.assert_allclose(c_t, ref_c.reshape(n, h), rtol=0, atol=5e-6)
    assert onednn.lstm_inference(t, n, d, h) is prim  # cached per shape


@needs_onednn
def test_inference_repacks_only_changed_weights(calls, monkeypatch):
    """The inference primitive packs the weights again exactly when a bit of
    them changed: one element, a bias, the sign of a zero; the same
    weights in fresh arrays are not packed again."""
    t, n, d, h = 4, N, 5, 6
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (t, n, d)).astype(np.float32)
    w = [rng.uniform(-0.4, 0.4, (4 * h, d)).astype(np.float32),
         rng.uniform(-0.3, 0.3, 4 * h).astype(np.float32),
         rng.uniform(-0.4, 0.4, (4 * h, h)).astype(np.float32)]
    w[2][0, 0] = 0.0
    h0, c0 = np.zeros((n, h), np.float32), np.zeros((n, h), np.float32)
    packs = []
    real_pack = onednn.LSTMInference._pack
    monkeypatch.setattr(onednn.LSTMInference, "_pack",
                        lambda self, *a: (packs.append(1), real_pack(self, *a)))
    prim = onednn.LSTMInference(t, n, d, h, 1)

    def run(weights):
        y = np.empty((t, n, h), np.float32)
        prim.run(x, weights[0], weights[1], weights[2], h0, c0, y,
                 np.empty((n, h), np.float32), np.empty((n, h), np.float32))
        ref = lstm_reference(x, np.ones((t, n)), weights, h0=h0, c0=c0)[0]
        np.testing.assert_allclose(y, ref, rtol=0, atol=2e-6)
        return len(packs)

    assert run(w) == 1
    assert run([a.copy() for a in w]) == 1
    w[0][3, 2] += 0.25
    assert run(w) == 2
    w[1][5] -= 0.5
    assert run(w) == 3
    w[2][0, 0] = -0.0
    assert run(w) == 4
    assert run(w) == 4
    prim.close()


def _run(bottoms, forward_only, calls=2, extra="", tops=1, backward=False,
         pd=(True, False), ppd=None):
    """Forward ``calls`` times (the state carried); with ``backward`` one
    backward after each with a fixed top diff, on parameter diffs that start
    non-zero (they must be added to). Returns every top, bottom and param
    array after each call."""
    layer, bottom, top = _layer(bottoms, extra=extra, forward_only=forward_only,
                                num_tops=tops)
    if ppd is not None:
        layer.param_propagate_down[:] = ppd
    rng = np.random.default_rng(4)
    got = []
    for _ in range(calls):
        layer.forward(bottom, top)
        out = [b.data.copy() for b in top]
        if backward:
            top[0].diff[...] = rng.uniform(-1, 1, top[0].shape)
            for b in layer.blobs:
                b.diff[...] = 0.25
            bottom[0].diff[...] = 7.0
            layer.backward(top, list(pd) + [False] * (len(bottom) - 2), bottom)
            out += [bottom[0].diff.copy()] + [b.diff.copy() for b in layer.blobs]
        got.append(out)
    return got


def _close(a_calls, b_calls, atol):
    for a_call, b_call in zip(a_calls, b_calls, strict=True):
        for a, b in zip(a_call, b_call, strict=True):
            assert b.dtype == np.float32
            np.testing.assert_allclose(b, a, rtol=0, atol=atol)
            assert not np.array_equal(a, 0)


def _bottoms(t, expose, n=N):
    x, cont = _data(t, n)
    bottoms = [x, cont]
    if expose:
        rng = np.random.default_rng(9)
        bottoms += [rng.uniform(-1, 1, (1, n, H)), rng.uniform(-1, 1, (1, n, H))]
    return bottoms


@needs_onednn
@pytest.mark.parametrize("expose", [False, True])
@pytest.mark.parametrize("forward_only", [True, False])
def test_layer_forward_matches_own_loop(calls, own_loop, expose, forward_only):
    """A layer with >= MIN_N streams runs the primitive, forward-only or
    training; it agrees with recaffe's own loop to float32 rounding, including
    the state carried to the next call and the first step's cont folded into
    the states."""
    t = 6
    kw = {"extra": "expose_hidden: true" if expose else "", "tops": 3 if expose else 1}
    with own_loop():
        ref = _run(_bottoms(t, expose), forward_only, **kw)
    assert calls == []
    got = _run(_bottoms(t, expose), forward_only, **kw)
    assert calls == [("infer" if forward_only else "train", (t, N, 5, H))] * 2
    _close(ref, got, 3e-6)


@needs_onednn
@pytest.mark.parametrize("pd", [(True, False), (False, False)])
@pytest.mark.parametrize("ppd", [None, [True, False, True]])
def test_layer_training_backward_matches_own_loop(calls, own_loop, pd, ppd):
    """The primitive's backward gives the own loop's gradients (which are
    gradient-checked in float64): parameter gradients added to what the
    diffs held, the input's set, none where propagation is off."""
    with own_loop():
        ref = _run(_bottoms(5, False), False, backward=True, pd=pd, ppd=ppd)
    got = _run(_bottoms(5, False), False, backward=True, pd=pd, ppd=ppd)
    assert [k for k, _ in calls] == ["train", "back"] * 2
    for a_call, b_call in zip(ref, got, strict=True):
        for a, b in zip(a_call, b_call, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=2e-6)
    if not pd[0]:
        assert (got[0][1] == 7.0).all()  # the input's diff untouched
    if ppd is not None:
        assert (got[0][3] == 0.25).all()  # b_c's diff untouched


@needs_onednn
def test_two_layers_of_one_shape_keep_their_own_workspace(own_loop):
    """Forward A, forward B, backward A: A's gradients are A's."""
    bottoms = _bottoms(4, False)
    grads = []
    for off in (True, False):
        if off:
            onednn.set_enabled(False)
        a, ba, ta = _layer(bottoms, forward_only=False)
        b, bb, tb = _layer([bottoms[0] * 0.5, bottoms[1]], forward_only=False)
        a.forward(ba, ta)
        b.forward(bb, tb)
        ta[0].diff[...] = 1.0
        for blob in a.blobs:
            blob.diff[...] = 0.0
        a.backward(ta, [True, False], ba)
        grads.append([ba[0].diff.copy()] + [blob.diff.copy() for blob in a.blobs])
        onednn.set_enabled(True)
    for x, y in zip(*grads, strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=2e-6)


@needs_onednn
def test_backward_after_forward_only_primitive_recomputes(calls, own_loop):
    """A backward nobody planned, after an inference-primitive forward, still
    gives the training gradients (it recomputes with the kept states)."""
    with own_loop():
        ref = _run(_bottoms(5, False), False, calls=1, backward=True)
    got = _run(_bottoms(5, False), True, calls=1, backward=True)
    assert [k for k, _ in calls] == ["infer"]
    for a, b in zip(ref[0], got[0], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=3e-6)


@needs_onednn
@pytest.mark.parametrize("why", ["cont_mid", "float64", "static", "few_streams"])
def test_falls_back_to_own_loop(calls, why):
    """Where the primitive cannot give Caffe's result (a sequence restarting
    inside the batch, a static input) or is not the faster path (float64, few
    streams), the layer's own loop runs: same bits as the training forward."""
    n = onednn.MIN_N - 1 if why == "few_streams" else 4
    x, cont = _data(5, n)
    if why == "cont_mid":
        cont[3, 2] = 0.0
    dtype = np.float64 if why == "float64" else np.float32
    bottoms = [x, cont]
    if why == "static":
        bottoms.append(np.random.default_rng(1).uniform(-1, 1, (n, 4)))
    outs = []
    for fo in (False, True):
        layer, bottom, top = _layer(bottoms, dtype=dtype, forward_only=fo)
        layer.forward(bottom, top)
        outs.append(top[0].data.copy())
    assert calls == []
    np.testing.assert_array_equal(outs[0], outs[1])


@needs_onednn
def test_set_enabled_switches_to_own_loop(calls):
    bottoms = _bottoms(4, False)
    try:
        onednn.set_enabled(False)
        assert onednn.info()["enabled"] is False
        off = _run(bottoms, True, calls=1) + _run(bottoms, False, calls=1)
        assert calls == []
        onednn.set_enabled(True)
        assert onednn.info()["enabled"] is True
        on = _run(bottoms, True, calls=1)
        assert [k for k, _ in calls] == ["infer"]
    finally:
        onednn.set_enabled(True)
    np.testing.assert_array_equal(off[0][0], off[1][0])  # own loop: same bits
    np.testing.assert_allclose(on[0][0], off[0][0], rtol=0, atol=3e-6)


@needs_onednn
def test_numpy_blas_after_primitive(calls):
    """numpy's OpenBLAS keeps giving right products after a primitive stopped
    its worker threads."""
    x, cont = _data(4, N)
    _run([x, cont], True, calls=1)
    assert len(calls) == 1
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 100))
    np.testing.assert_allclose(a @ b, np.einsum("ik,kj->ij", a, b), rtol=1e-10,
                               atol=1e-10)


@contextlib.contextmanager
def _another_thread():
    """Another Python thread, alive (waiting, calling nothing) inside."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        yield
    finally:
        stop.set()
        other.join()


@needs_onednn
@pytest.mark.parametrize("blas_threads", [2, 1])
def test_beside_another_python_thread(calls, own_loop, blas_threads):
    """With another Python thread alive, OpenBLAS's workers cannot be stopped
    safely: on more than one BLAS thread the layer runs its own loop (same
    bits), on one (no workers) the primitives."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    bottoms = _bottoms(4, False)
    with own_loop():
        ref = _run(bottoms, False, calls=1, backward=True)
    with _another_thread(), threadpoolctl.threadpool_limits(limits=blas_threads,
                                                           user_api="blas"):
        got = _run(bottoms, False, calls=1, backward=True)
    if blas_threads > 1:
        assert calls == []
        for a, b in zip(ref[0], got[0], strict=True):
            np.testing.assert_array_equal(b, a)
    else:
        assert [k for k, _ in calls] == ["train", "back"]
        for a, b in zip(ref[0], got[0], strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=3e-6)


@needs_onednn
def test_blas_stop_always_runs_primitives_beside_threads(calls, own_loop, monkeypatch,
                                                        caplog):
    """After set_blas_stop("always") the primitives run beside another Python
    thread (which calls no BLAS here); without it, the own loop runs and says
    so once."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setitem(onednn._state, "told", False)
    bottoms = _bottoms(4, False)
    with own_loop():
        ref = _run(bottoms, False, calls=1, backward=True)
    try:
        with _another_thread(), threadpoolctl.threadpool_limits(limits=2,
                                                               user_api="blas"):
            with caplog.at_level("INFO"):
                _run(bottoms, False, calls=2)
            told = [r for r in caplog.records if "set_blas_stop" in r.getMessage()]
            assert calls == [] and len(told) == 1
            onednn.set_blas_stop("always")
            got = _run(bottoms, False, calls=1, backward=True)
            rng = np.random.default_rng(2)
            a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 100))
            np.testing.assert_allclose(a @ b, np.einsum("ik,kj->ij", a, b),
                                       rtol=1e-10, atol=1e-10)
    finally:
        onednn.set_blas_stop("single-thread")
    assert [k for k, _ in calls] == ["train", "back"]
    for a, b in zip(ref[0], got[0], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=3e-6)
    with pytest.raises(BackendError, match="'single-thread' or 'always'"):
        onednn.set_blas_stop("sometimes")


@needs_onednn
def test_fractional_first_cont(calls, own_loop):
    """A first-step cont that is neither 0 nor 1: the forward folds it into the
    states exactly (the inference primitive runs); Caffe's backward treats it
    as part of the forget gate, which oneDNN's cannot, so training runs the
    own loop."""
    x, cont = _data(4, N)
    cont[0, 1] = 0.5
    with own_loop():
        ref_fwd = _run([x, cont], True, calls=1)
        ref_train = _run([x, cont], False, calls=1, backward=True)
    fwd = _run([x, cont], True, calls=1)
    assert [k for k, _ in calls] == ["infer"]
    np.testing.assert_allclose(fwd[0][0], ref_fwd[0][0], rtol=0, atol=3e-6)
    train = _run([x, cont], False, calls=1, backward=True)
    assert [k for k, _ in calls] == ["infer"]
    for a, b in zip(ref_train[0], train[0], strict=True):
        np.testing.assert_array_equal(b, a)


def _info_in_subprocess(value, **more):
    env = dict(os.environ, RECAFFE_ONEDNN=value, **more)
    code = ("from recaffe.backend import onednn\n"
            "try:\n    print(onednn.info())\n"
            "except Exception as e:\n    print(type(e).__name__, e)")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_env_switch_off_and_bad_path():
    assert "disabled by RECAFFE_ONEDNN" in _info_in_subprocess("0")
    out = _info_in_subprocess("/nonexistent/libdnnl.so.3")
    assert out.startswith("BackendError") and "/nonexistent/libdnnl.so.3" in out
    out = _info_in_subprocess("", RECAFFE_ONEDNN_STOP_BLAS="sometimes")
    assert out.startswith("BackendError")
    assert "RECAFFE_ONEDNN_STOP_BLAS=sometimes" in out


def test_unavailable_raises_typed_error(monkeypatch):
    monkeypatch.setitem(onednn._state, "checked", True)
    monkeypatch.setitem(onednn._state, "lib", None)
    monkeypatch.setitem(onednn._state, "why", "not here")
    assert onednn.lstm_inference(3, N, 2, 4) is None
    assert onednn.info() == {"available": False, "why": "not here"}
    with pytest.raises(BackendError, match="not here"):
        onednn.LSTMInference(3, N, 2, 4, 1)


def _lm_solver(tmp_path, t, n, v, h):
    """A 2-layer char-LSTM LM (one-hot input, SoftmaxWithLoss) under SGD with
    momentum, written as prototxt files."""
    import recaffe as caffe  # noqa: PLC0415
    from recaffe import layers as L  # noqa: PLC0415

    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.label = L.Input(shape=[dict(dim=[t, n, v]), dict(dim=[t, n]),
                                             dict(dim=[t, n])], ntop=3)
    fill = dict(type="uniform", min=-0.3, max=0.3)
    ns.h1 = L.LSTM(ns.x, ns.cont, recurrent_param=dict(
        num_output=h, weight_filler=fill, bias_filler=fill))
    ns.h2 = L.LSTM(ns.h1, ns.cont, recurrent_param=dict(
        num_output=h, weight_filler=fill, bias_filler=fill))
    ns.logits = L.InnerProduct(ns.h2, axis=2, num_output=v, weight_filler=fill)
    ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    (tmp_path / "net.prototxt").write_text(str(ns.to_proto()))
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{tmp_path / "net.prototxt"}"\nbase_lr: 0.5\nmomentum: 0.9\n'
        'lr_policy: "fixed"\ndisplay: 0\nmax_iter: 100\nsnapshot_after_train: false\n')
    caffe.set_random_seed(3)
    return caffe.get_solver(str(tmp_path / "solver.prototxt"))


@needs_onednn
def test_two_layer_lm_training_matches_own_loop(tmp_path, calls, own_loop):
    """Stacked layers (the second's input gradient is the first's top diff)
    under a solver: oneDNN's and the own loop's trajectories agree."""
    t, n, v, h = 6, 4, 7, 8
    rng = np.random.default_rng(0)
    x = np.eye(v)[rng.integers(0, v, (t, n))]
    label = rng.integers(0, v, (t, n)).astype(float)
    cont = np.ones((t, n))
    cont[0] = 0
    runs = []
    for off in (True, False):
        if off:
            onednn.set_enabled(False)
        solver = _lm_solver(tmp_path, t, n, v, h)
        net = solver.net
        for name, arr in (("x", x), ("cont", cont), ("label", label)):
            net.blobs[name].data[...] = arr
        losses = []
        for _ in range(8):
            solver.step(1)
            losses.append(float(net.blobs["loss"].data))
        runs.append((losses, [p.data.copy() for ps in net.params.values() for p in ps]))
        onednn.set_enabled(True)
    assert [k for k, _ in calls].count("train") == 16  # 2 layers x 8 steps
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-4)
    assert runs[0][0][-1] < runs[0][0][0]  # it learns
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


@needs_onednn
def test_primitive_that_cannot_be_made_falls_back_with_a_warning(calls, own_loop,
                                                                 monkeypatch, caplog):
    def refuse(self, *a):
        raise BackendError("oneDNN dnnl_lstm_forward_primitive_desc_create failed: "
                           "out of memory (1)")

    monkeypatch.setattr(onednn.LSTMTraining, "__init__", refuse)
    bottoms = _bottoms(4, False)
    with own_loop():
        ref = _run(bottoms, False, calls=2, backward=True)
    with caplog.at_level("WARNING"):
        got = _run(bottoms, False, calls=2, backward=True)
    warned = [r.getMessage() for r in caplog.records if "oneDNN" in r.getMessage()]
    assert len(warned) == 1  # once per layer and shape, not per call
    assert "LSTM layer 'l'" in warned[0] and "out of memory" in warned[0]
    assert calls == []
    for a_call, b_call in zip(ref, got, strict=True):
        for a, b in zip(a_call, b_call, strict=True):
            np.testing.assert_array_equal(b, a)


FORK_SCRIPT = r"""
import os, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from recaffe.backend import onednn
from tests.test_onednn import _bottoms, _layer

bottoms = _bottoms(4, False)
layer, bottom, top = _layer(bottoms, forward_only=False)
layer.forward(bottom, top)  # oneDNN's training forward, in the parent
assert layer._by_onednn
pid = os.fork()
if pid == 0:
    # the child: OpenMP's threads are gone; the backward of the parent's
    # forward and new forwards run the own loop
    top[0].diff[...] = 1.0
    for b in layer.blobs:
        b.diff[...] = 0.0
    layer.backward(top, [True, False], bottom)
    got = [bottom[0].diff.copy()] + [b.diff.copy() for b in layer.blobs]
    ref_layer, rb, rt = _layer(bottoms, forward_only=False)
    ref_layer.forward(rb, rt)
    rt[0].diff[...] = 1.0
    for b in ref_layer.blobs:
        b.diff[...] = 0.0
    ref_layer.backward(rt, [True, False], rb)
    ref = [rb[0].diff.copy()] + [b.diff.copy() for b in ref_layer.blobs]
    same = all(np.allclose(a, b, rtol=1e-5, atol=3e-6) for a, b in zip(got, ref))
    print("child", onednn.available(), ref_layer._by_onednn, same, flush=True)
    os._exit(0)
deadline = time.time() + 60
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("exit", status)
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    print("child hung")
"""


@needs_onednn
def test_forked_child_runs_own_loop():
    """After fork() (multiprocessing's default on Linux), libgomp would hang
    the child's first parallel region: the child runs recaffe's own loops,
    the backward of a forward the parent ran through oneDNN included."""
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", FORK_SCRIPT.format(root=root)],
                         capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["child False False True", "exit 0"], \
        out.stdout + out.stderr
