"""Fused numba CPU kernels (recaffe.backend.cpu_kernels) vs the numpy path."""

import numpy as np
import pytest

from recaffe import backend
from recaffe.backend import cpu_kernels, onednn
from recaffe.blob import Blob
from recaffe.testing.layer_test import make_blobs, make_layer

numba = pytest.importorskip("numba")

FILL = ('weight_filler { type: "gaussian" std: 0.3 } '
        'bias_filler { type: "gaussian" std: 0.2 }')
DTYPES = (np.float32, np.float64)
TOL = {np.float32: dict(rtol=1e-6, atol=1e-7), np.float64: dict(rtol=1e-13, atol=1e-15)}
rng = np.random.default_rng(5)


def _run(monkeypatch, kernels, ltype, h, bottoms, dtype, extra="", pd=None, calls=2):
    """Forward + backward ``calls`` times (state carried); all outputs."""
    monkeypatch.setenv(cpu_kernels.ENV, "1" if kernels else "0")
    text = (f'name: "r" type: "{ltype}" recurrent_param {{ num_output: {h} {FILL} '
            f'{extra} }}')
    backend.set_random_seed(3)
    with backend.dtype_scope(dtype):
        layer = make_layer(text)
        layer.impl = "fused"
        bottom = make_blobs(bottoms, dtype)
        ntop = 1 + (len(layer.state_names) if "expose_hidden" in extra else 0)
        top = [Blob((), dtype=dtype) for _ in range(ntop)]
        layer.SetUp(bottom, top)
    pd = pd or [True] + [False] * (len(bottoms) - 1)
    outs = []
    r = np.random.default_rng(9)
    for _ in range(calls):
        layer.Forward(bottom, top)
        top[0].diff[...] = r.uniform(-1, 1, top[0].shape)
        for t in top[1:]:
            t.diff[...] = 0
        for p in layer.blobs:
            p.diff[...] = 0
        layer.Backward(top, pd, bottom)
        outs += [t.data.copy() for t in top] + [p.diff.copy() for p in layer.blobs]
        outs += [b.diff.copy() for b, want in zip(bottom, pd, strict=True) if want]
    return outs


def _cont(t, n, values=(0.0, 1.0)):
    return rng.choice(values, (t, n)).astype(float)


LSTM_CASES = [
    # (H, bottoms, extra, propagate_down)
    (5, [rng.uniform(-2, 2, (4, 3, 2, 3)), _cont(4, 3)], "", None),
    (7, [rng.uniform(-2, 2, (3, 2, 4)), _cont(3, 2, (0.0, 0.5, 1.0)),
         rng.uniform(-1, 1, (2, 3))], "", [True, False, True]),
    (6, [rng.uniform(-1, 1, (3, 4, 2)), _cont(3, 4), rng.uniform(-1, 1, (1, 4, 6)),
         rng.uniform(-1, 1, (1, 4, 6))], "expose_hidden: true",
     [True, False, False, False]),
    # saturated gates: large inputs must not overflow
    (4, [rng.uniform(-60, 60, (3, 2, 3)), np.ones((3, 2))], "", None),
    # one stream: GEMV instead of GEMM, the flat-row forward kernel
    (19, [rng.uniform(-2, 2, (5, 1, 3)), _cont(5, 1)], "", None),
    # more rows than one tile of the (H, N) -> (N, H) transposition
    (70, [rng.uniform(-1, 1, (3, 17, 4)), _cont(3, 17, (0.0, 0.5, 1.0))], "", None),
]


def _lstm_paths(monkeypatch, case, dtype):
    """Outputs of the compiled whole-sequence loops, the per-step kernels and
    the numpy path, in that order; the whole-sequence loops must have run."""
    h, bottoms, extra, pd = LSTM_CASES[case]
    # recaffe's own loops (oneDNN's primitive would take some float32 cases)
    monkeypatch.setitem(onednn._state, "enabled", False)
    calls = []
    for name in ("lstm_seq_forward", "lstm_seq_backward"):
        def counted(*a, _fn=getattr(cpu_kernels, name), _n=name):  # noqa: B008
            calls.append(_n)
            return _fn(*a)

        monkeypatch.setattr(cpu_kernels, name, counted)
    seq = _run(monkeypatch, True, "LSTM", h, bottoms, dtype, extra, pd)
    assert "lstm_seq_backward" in calls
    assert ("lstm_seq_forward" in calls) == (dtype == np.float32)
    monkeypatch.setattr(cpu_kernels, "sequence_blas", lambda *a: None)
    step = _run(monkeypatch, True, "LSTM", h, bottoms, dtype, extra, pd)
    numpy = _run(monkeypatch, False, "LSTM", h, bottoms, dtype, extra, pd)
    return seq, step, numpy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(LSTM_CASES)))
@pytest.mark.parametrize("ride", [True, False])
def test_lstm_kernels_match_numpy_path(monkeypatch, dtype, case, ride):
    """The compiled whole-sequence loops and the per-step kernels give the
    same bits (same operations and order, numpy.matmul's BLAS calls made from
    the compiled loop); the numpy path too in float64, and within the
    float32 tanh's few ulp in float32. Both forms of the step: the input
    riding along in the step's GEMM, and projected for all steps first."""
    from recaffe.layers.lstm import LSTMLayer  # noqa: PLC0415

    monkeypatch.setattr(LSTMLayer, "RIDE_MIN_N", 1 if ride else 1 << 30)
    seq, step, numpy = _lstm_paths(monkeypatch, case, dtype)
    assert len(seq) == len(step) == len(numpy)
    for x, y, z in zip(seq, step, numpy, strict=True):
        assert np.all(np.isfinite(x))
        np.testing.assert_array_equal(x, y)
        if dtype == np.float64:
            np.testing.assert_array_equal(x, z)
        else:
            np.testing.assert_allclose(x, z, rtol=1e-5, atol=5e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_kernels_match_numpy_path(monkeypatch, dtype):
    monkeypatch.setattr(cpu_kernels, "PARALLEL_MIN", 0)
    bottoms = [rng.uniform(-1, 1, (3, 5, 4)), _cont(3, 5)]
    a = _run(monkeypatch, True, "RNN", 9, bottoms, dtype)
    b = _run(monkeypatch, False, "RNN", 9, bottoms, dtype)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, **TOL[dtype])


def test_lstm_reference_values(monkeypatch):
    """float32 (tanh32) against float64 (np.tanh) on the same inputs."""
    h, bottoms, extra, pd = LSTM_CASES[0]
    a = _run(monkeypatch, True, "LSTM", h, bottoms, np.float32, extra, pd)
    b = _run(monkeypatch, True, "LSTM", h, bottoms, np.float64, extra, pd)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


def test_other_blas_runs_the_per_step_loop(monkeypatch):
    """With another BLAS selected the loop stays in Python (its GEMMs go
    through blas.matmul); the compiled whole-sequence loops are not called."""
    from recaffe.backend import blas

    monkeypatch.setitem(blas._state, "lib", object())
    assert cpu_kernels.sequence_blas(np.zeros((2, 2), np.float32)) is None
    monkeypatch.setitem(blas._state, "lib", None)
    assert cpu_kernels.sequence_blas(np.zeros((2, 2), np.float32)) is not None
    assert cpu_kernels.sequence_blas(np.zeros((2, 2), np.float32).T) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("static", [False, True])
def test_rnn_kernels_match_numpy_path(monkeypatch, dtype, static):
    bottoms = [rng.uniform(-2, 2, (4, 3, 5)), _cont(4, 3)]
    pd = [True, False]
    if static:
        bottoms.append(rng.uniform(-1, 1, (3, 2)))
        pd.append(True)
    a = _run(monkeypatch, True, "RNN", 6, bottoms, dtype, pd=pd)
    b = _run(monkeypatch, False, "RNN", 6, bottoms, dtype, pd=pd)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, **TOL[dtype])


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("has_next", [False, True])
@pytest.mark.parametrize("add_shape", ["bias", "per_stream", "per_step"])
def test_lstm_forward_step_formula(n, has_next, add_shape):
    h, d = 70, 5
    r = np.random.default_rng(4)
    f32 = np.float32
    z = r.uniform(-3, 3, (4 * h, n)).astype(f32)
    c_prev = r.uniform(-1, 1, (h, n)).astype(f32)
    cont_t, cont_n = (np.array([1, 0, 0.5][:n], dtype=f32) for _ in range(2))
    at = z.copy()
    c, tc, ht = (np.empty((h, n), f32) for _ in range(3))
    hout, src = np.empty((n, h), f32), np.full((n, h + d), 7, f32)
    # the bias (4H, 1, 1), bias plus a static input's term per stream
    # (4H, 1, N), or the input projection and all that per step (4H, T, N)
    t_, t = (3, 1) if add_shape == "per_step" else (1, 0)
    cols = 1 if add_shape == "bias" else n
    b = r.uniform(-1, 1, (4 * h, t_, cols)).astype(f32)
    cpu_kernels.lstm_forward_step(at, b, t, c_prev, c, tc, ht, hout, src, cont_t,
                                  cont_n, has_next)
    a = (z + b[:, t]).astype(np.float64)
    sig = 1 / (1 + np.exp(-a[: 3 * h]))
    i, f, o = sig[:h], sig[h: 2 * h] * cont_t, sig[2 * h:]
    g = np.tanh(a[3 * h:])
    tol = dict(rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(at, np.concatenate([i, f, o, g]), **tol)
    np.testing.assert_allclose(c, f * c_prev + i * g, **tol)
    np.testing.assert_allclose(tc, np.tanh(c.astype(np.float64)), **tol)
    np.testing.assert_allclose(hout, (o * tc).T, **tol)
    assert np.all(src[:, h:] == 7)  # the input's columns are not the step's
    if has_next:
        np.testing.assert_array_equal(src[:, :h], hout * cont_n[:, None])
    else:
        assert np.all(src == 7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("has_next", [False, True])
def test_lstm_backward_step_formula(dtype, has_next):
    n, h, t_, t = 3, 70, 4, 2
    r = np.random.default_rng(1)
    acts = r.uniform(0.05, 0.95, (4 * h, n)).astype(dtype)
    acts[3 * h:] = r.uniform(-0.9, 0.9, (h, n))
    c_prev, tc, dht = (r.uniform(-1, 1, (h, n)).astype(dtype) for _ in range(3))
    dtop = r.uniform(-1, 1, (n, h)).astype(dtype)
    cont = np.array([1, 0, 0.5], dtype=dtype)
    dc = r.uniform(-1, 1, (h, n)).astype(dtype)
    dc0 = dc.copy()
    dg = np.full((4 * h, t_, n), 9, dtype)
    cpu_kernels.lstm_backward_step_t(acts, c_prev, tc, dtop, dht, cont, has_next, dg, t,
                                     dc, np.empty((h, n), dtype))
    i, f, o, g = (acts[k * h:(k + 1) * h] for k in range(4))
    d_h = dtop.T + dht * cont if has_next else dtop.T
    dcv = dc0 + d_h * o * (1 - tc * tc)
    want = np.concatenate([dcv * g * i * (1 - i), dcv * c_prev * f * (1 - f),
                           d_h * tc * o * (1 - o), dcv * i * (1 - g * g)])
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dg[:, t], want, rtol=rtol)
    np.testing.assert_allclose(dc, dcv * f, rtol=rtol)
    assert np.all(np.delete(dg, t, axis=1) == 9)  # other steps untouched


def test_enabled_switches(monkeypatch):
    monkeypatch.setenv(cpu_kernels.ENV, "1")
    assert cpu_kernels.enabled(np)
    assert cpu_kernels.usable(np, np.zeros(2, np.float32), np.zeros(3, np.float32))
    assert not cpu_kernels.usable(np, np.zeros(2, np.float32), np.zeros(3))
    assert not cpu_kernels.usable(np, np.zeros(2, np.int64))
    assert not cpu_kernels.enabled(object())
    monkeypatch.setenv(cpu_kernels.ENV, "0")
    assert not cpu_kernels.enabled(np)


def test_numba_absent_falls_back(monkeypatch):
    monkeypatch.setenv(cpu_kernels.ENV, "1")
    monkeypatch.setitem(cpu_kernels._state, "checked", True)
    monkeypatch.setitem(cpu_kernels._state, "numba", None)
    assert not cpu_kernels.available()
    assert not cpu_kernels.enabled(np)
    bottoms = [rng.uniform(-1, 1, (2, 2, 3)), _cont(2, 2)]
    out = _run(monkeypatch, True, "LSTM", 3, bottoms, np.float64)
    monkeypatch.setitem(cpu_kernels._state, "checked", False)
    ref = _run(monkeypatch, True, "LSTM", 3, bottoms, np.float64)
    for x, y in zip(out, ref, strict=True):
        np.testing.assert_allclose(x, y, **TOL[np.float64])


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_unit_kernels_formula(dtype):
    n, h = 3, 5
    r = np.random.default_rng(2)
    x = r.uniform(-4, 4, (n, 4 * h)).astype(dtype)
    c_prev, dc_top, dh_top = (r.uniform(-1, 1, (n, h)).astype(dtype) for _ in range(3))
    cont = np.array([1, 0, 0.5], dtype=dtype)
    acts, c, tc, hout = np.empty_like(x), *(np.empty_like(c_prev) for _ in range(3))
    cpu_kernels.lstm_unit_forward(x, c_prev, cont, acts, c, tc, hout)
    sig = 1 / (1 + np.exp(-x[:, :3 * h].astype(np.float64)))
    i, f, o = sig[:, :h], sig[:, h:2 * h] * cont[:, None], sig[:, 2 * h:]
    g = np.tanh(x[:, 3 * h:].astype(np.float64))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(acts, np.concatenate([i, f, o, g], axis=1), **tol)
    np.testing.assert_allclose(c, f * c_prev + i * g, **tol)
    np.testing.assert_allclose(tc, np.tanh(c), **tol)
    np.testing.assert_allclose(hout, o * np.tanh(c), **tol)
    dc_prev, dx = np.full_like(c_prev, 7), np.full_like(x, 7)
    cpu_kernels.lstm_unit_backward(acts, c_prev, tc, dc_top, dh_top, dc_prev, dx,
                                   False, True)
    assert np.all(dc_prev == 7)
    cpu_kernels.lstm_unit_backward(acts, c_prev, tc, dc_top, dh_top, dc_prev, dx,
                                   True, True)
    i, f, o, g = (acts[:, k * h:(k + 1) * h].astype(np.float64) for k in range(4))
    dc = dc_top + dh_top * o * (1 - tc * tc.astype(np.float64))
    want = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                           dh_top * tc * o * (1 - o), dc * i * (1 - g * g)], axis=1)
    np.testing.assert_allclose(dx, want, **tol)
    np.testing.assert_allclose(dc_prev, dc * f, **tol)


@pytest.mark.parametrize(("n", "h"), [(1, 5), (3, 7), (64, 512), (1200, 512)])
def test_lstm_unit_infer_has_the_forward_bits(n, h):
    """The forward-only unit stores only c and h, with the bits of the
    training forward (the last case runs the parallel kernel)."""
    r = np.random.default_rng(n)
    x = r.uniform(-9, 9, (n, 4 * h)).astype(np.float32)
    c_prev = r.uniform(-3, 3, (n, h)).astype(np.float32)
    cont = r.choice(np.array([0.0, 1.0, 0.5], np.float32), n)
    acts, c, tc, hout = np.empty_like(x), *(np.empty_like(c_prev) for _ in range(3))
    cpu_kernels.lstm_unit_forward(x, c_prev, cont, acts, c, tc, hout)
    c2, h2 = np.full_like(c, np.nan), np.full_like(c, np.nan)
    assert cpu_kernels.lstm_unit_infer(x, c_prev, cont, c2, h2)
    np.testing.assert_array_equal(c2, c)
    np.testing.assert_array_equal(h2, hout)
    assert not cpu_kernels.lstm_unit_infer(x.astype(np.float64), c_prev, cont, c2, h2)


def test_lstm_unit_kernels_equal_their_source_run_by_python():
    """The compiled LSTMUnit kernels (gates taken as row slices so that
    they vectorise) give the bits of their own source run by the
    interpreter, operation by operation in float32."""
    n, h = 3, 6
    r = np.random.default_rng(5)
    x = r.uniform(-6, 6, (n, 4 * h)).astype(np.float32)
    c_prev, dc_top, dh_top = (r.uniform(-2, 2, (n, h)).astype(np.float32)
                              for _ in range(3))
    cont = np.array([1, 0, 0.5], np.float32)
    half, one = np.float32(0.5), np.float32(1)
    cpu_kernels._bind_helpers()
    outs = {}
    for how in ("compiled", "python"):
        acts, dx = np.empty_like(x), np.empty_like(x)
        c, tc, hout, dc_prev, c2, h2 = (np.empty_like(c_prev) for _ in range(6))
        if how == "compiled":
            cpu_kernels.lstm_unit_forward(x, c_prev, cont, acts, c, tc, hout)
            cpu_kernels.lstm_unit_infer(x, c_prev, cont, c2, h2)
            cpu_kernels.lstm_unit_backward(acts, c_prev, tc, dc_top, dh_top, dc_prev,
                                           dx, True, True)
        else:
            cpu_kernels._lstm_unit_forward32(x, c_prev, cont, acts, c, tc, hout, half)
            cpu_kernels._lstm_unit_infer32(x, c_prev, cont, c2, h2, half)
            cpu_kernels._lstm_unit_backward(acts, c_prev, tc, dc_top, dh_top, dc_prev,
                                            dx, True, True, h, one)
        outs[how] = (acts, c, tc, hout, c2, h2, dc_prev, dx)
    for a, b in zip(outs["compiled"], outs["python"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_first_use_from_two_threads(monkeypatch):
    """Two threads that use the kernels first at the same moment (numba's
    import, the helpers' binding and the compiles happen once, under a lock)
    both get the compiled results."""
    import builtins
    import threading
    import time

    real_import = builtins.__import__

    def slow_import(name, *a, **k):  # widens the window a fresh process has
        if name == "numba":
            time.sleep(0.2)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", slow_import)
    monkeypatch.setenv(cpu_kernels.ENV, "1")
    monkeypatch.setitem(cpu_kernels._state, "checked", False)
    monkeypatch.setitem(cpu_kernels._state, "numba", None)
    monkeypatch.setitem(cpu_kernels._state, "helpers", False)
    monkeypatch.setattr(cpu_kernels, "_kernels", {})
    n, h = 4, 8
    r = np.random.default_rng(4)
    x = r.uniform(-3, 3, (n, 4 * h)).astype(np.float32)
    c_prev = r.uniform(-1, 1, (n, h)).astype(np.float32)
    cont = np.ones(n, np.float32)
    start = threading.Barrier(2)
    outs, errors = [None, None], []

    def work(k):
        try:
            acts, c, tc, hh = (np.zeros_like(a) for a in (x, c_prev, c_prev, c_prev))
            start.wait()
            cpu_kernels.lstm_unit_forward(x, c_prev, cont, acts, c, tc, hh)
            outs[k] = (acts, c, tc, hh)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert cpu_kernels.available()
    for a, b in zip(outs[0], outs[1], strict=True):
        np.testing.assert_array_equal(a, b)
    # the compiled pass: f * c_prev + i * g with the sigmoid/tanh gates
    i = 0.5 * np.tanh(0.5 * x[:, :h].astype(np.float64)) + 0.5
    g = np.tanh(x[:, 3 * h:].astype(np.float64))
    f = 0.5 * np.tanh(0.5 * x[:, h:2 * h].astype(np.float64)) + 0.5
    np.testing.assert_allclose(outs[0][1], f * c_prev + i * g, rtol=1e-5, atol=1e-6)
