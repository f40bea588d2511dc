"""LSTMUnit: one LSTM step, Caffe's forward/backward; no gradient to cont."""

import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(21)
N, HD = 3, 2


def unit_bottoms(cont, n=N, hd=HD):
    return [rng.uniform(-1, 1, (1, n, hd)), rng.uniform(-1, 1, (1, n, 4 * hd)),
            np.asarray(cont, dtype=float).reshape(1, n)]


def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def unit_reference(c_prev, x, cont):
    hd = c_prev.shape[2]
    c = np.zeros_like(c_prev, dtype=np.float64)
    h = np.zeros_like(c)
    for s in range(c_prev.shape[1]):
        a = x[0, s].astype(np.float64)
        i, o = sig(a[:hd]), sig(a[2 * hd:3 * hd])
        f = 0.0 if cont[0, s] == 0 else cont[0, s] * sig(a[hd:2 * hd])
        g = np.tanh(a[3 * hd:])
        c[0, s] = f * c_prev[0, s] + i * g
        h[0, s] = o * np.tanh(c[0, s])
    return c, h


class TestLSTMUnit(LayerTestCase):
    layer_type = "LSTMUnit"
    cases = [
        # Caffe's tests end up with the unit's cont all zero; cover 1s too.
        Case('type: "LSTMUnit"', unit_bottoms([0, 0, 0]), num_tops=2,
             check_bottom=[0, 1]),
        Case('type: "LSTMUnit"', unit_bottoms([1, 0, 1]), num_tops=2,
             check_bottom=[0, 1]),
        Case('type: "LSTMUnit"', unit_bottoms([1, 1, 1]), num_tops=2,
             check_bottom=[0, 1]),
        Case('type: "LSTMUnit"', unit_bottoms([1, 0, 1, 1, 0], n=5, hd=4), num_tops=2,
             check_bottom=[0, 1]),
    ]

    def reference(self, case, bottoms, layer):
        return list(unit_reference(*bottoms))


def _unit(bottoms, dtype=np.float64):
    with backend.dtype_scope(dtype):
        layer = make_layer('name: "u" type: "LSTMUnit"')
        b = make_blobs(bottoms, dtype)
        top = [Blob((), dtype=dtype), Blob((), dtype=dtype)]
        layer.SetUp(b, top)
    return layer, b, top


def test_setup_shapes():
    layer, _, top = _unit(unit_bottoms([1, 1, 1]))
    assert top[0].shape == (1, N, HD) and top[1].shape == (1, N, HD)
    assert len(layer.blobs) == 0


def test_cont_never_gets_gradient():
    layer, b, top = _unit(unit_bottoms([1, 0, 1]))
    assert [layer.allow_force_backward(i) for i in range(3)] == [True, True, False]
    layer.Forward(b, top)
    for t in top:
        t.diff[...] = 1
    b[2].diff[...] = 7
    layer.Backward(top, [True, True, False], b)
    assert np.all(b[2].diff == 7)
    layer.Backward(top, [True, True, True], b)
    assert np.all(b[2].diff == 0)


def test_backward_writes_only_requested_bottoms():
    layer, b, top = _unit(unit_bottoms([1, 1, 0]))
    layer.Forward(b, top)
    for t in top:
        t.diff[...] = rng.standard_normal(t.shape)
    b[0].diff[...] = 9
    b[1].diff[...] = 9
    layer.Backward(top, [False, True, False], b)
    assert np.all(b[0].diff == 9) and not np.all(b[1].diff == 9)
    b[1].diff[...] = 9
    layer.Backward(top, [True, False, False], b)
    assert not np.all(b[0].diff == 9) and np.all(b[1].diff == 9)


def test_saturated_gates_are_finite():
    bottoms = unit_bottoms([1, 1, 1])
    bottoms[1] = bottoms[1] * 1e4
    layer, b, top = _unit(bottoms, np.float32)
    layer.Forward(b, top)
    assert np.all(np.isfinite(top[0].data)) and np.all(np.isfinite(top[1].data))


def test_shape_errors():
    with pytest.raises(ShapeError, match=r"bottom\[2\] 'cont' must have 2 axes"):
        _unit([np.zeros((1, 3, 2)), np.zeros((1, 3, 8)), np.zeros((1, 3, 1))])
    with pytest.raises(ShapeError,
                       match=r"bottom\[1\] 'X' must have shape \(1, 3, 8\)"):
        _unit([np.zeros((1, 3, 2)), np.zeros((1, 3, 6)), np.zeros((1, 3))])
    with pytest.raises(ShapeError, match="first axis of 1"):
        _unit([np.zeros((2, 3, 2)), np.zeros((2, 3, 8)), np.zeros((2, 3))])
    with pytest.raises(ShapeError, match="number of streams"):
        _unit([np.zeros((1, 3, 2)), np.zeros((1, 2, 8)), np.zeros((1, 3))])
    with pytest.raises(LayerSetupError, match="exactly 3 bottom"):
        _unit([np.zeros((1, 3, 2)), np.zeros((1, 3, 8))])


def _kernel_vs_numpy(monkeypatch, kernels, dtype, pd, forward_first=True):
    from recaffe.backend import cpu_kernels
    monkeypatch.setenv(cpu_kernels.ENV, "1" if kernels else "0")
    r = np.random.default_rng(4)
    bottoms = [r.uniform(-2, 2, (1, 6, 9)), r.uniform(-8, 8, (1, 6, 36)),
               np.array([[1, 0, 0.5, 1, 1, 0]])]
    layer, b, top = _unit(bottoms, dtype)
    layer.Forward(b, top)
    for t in top:
        t.diff[...] = r.uniform(-1, 1, t.shape)
    if not forward_first:
        layer.Forward(b, top)
        layer._saved = None  # as if backward came without a forward
    for k in (0, 1):
        b[k].diff[...] = 9
    layer.Backward(top, pd, b)
    return [t.data.copy() for t in top] + [b[k].diff.copy() for k in (0, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pd", [[True, True, False], [True, False, False],
                                [False, True, True]])
@pytest.mark.parametrize("forward_first", [True, False])
def test_cpu_kernels_equal_numpy_path(monkeypatch, dtype, pd, forward_first):
    pytest.importorskip("numba")
    """float64: the same bits; float32: within the compiled tanh32's few ulp
    of np.tanh (recaffe.backend.fast_math)."""
    a = _kernel_vs_numpy(monkeypatch, True, dtype, pd, forward_first)
    ref = _kernel_vs_numpy(monkeypatch, False, dtype, pd, forward_first)
    for x, y in zip(a, ref, strict=True):
        assert x.dtype == dtype
        if dtype == np.float64:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=5e-6)


class TestLSTMUnitForwardOnly(TestLSTMUnit):
    """Forward-only units share one scratch; a backward still called recomputes."""

    def build(self, case, dtype, seed=1701):
        layer, bottom, top = super().build(case, dtype, seed)
        layer.forward_only = True
        return layer, bottom, top
