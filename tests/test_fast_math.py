"""fast_math.tanh32: accuracy, special values, compiled = numpy bits."""

import numpy as np
import pytest

from recaffe.backend import fast_math

F32 = np.float32


def _args():
    grid = np.linspace(-12, 12, 1_200_001, dtype=np.float64).astype(F32)
    small = np.geomspace(1e-30, 1e-2, 20_001).astype(F32)
    rand = (np.random.default_rng(0).standard_normal(300_000) * 3).astype(F32)
    return np.concatenate([grid, small, -small, rand])


def _ulp_error(got, x):
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(F32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / ulp


def test_accuracy_within_7_ulp():
    x = _args()
    err = _ulp_error(fast_math.tanh32_into(x), x)
    assert err.max() <= 7.0, (err.max(), x[np.argmax(err)])
    # and a fair share exactly rounded
    assert np.mean(err <= 1.0) > 0.5


def test_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, 30.0, -30.0, 1e-38, np.nan], F32)
    y = fast_math.tanh32_into(x)
    assert y[0] == 0 and not np.signbit(y[0])
    assert y[1] == 0 and np.signbit(y[1])
    np.testing.assert_array_equal(y[2:6], [1, -1, 1, -1])
    assert y[6] == pytest.approx(1e-38, rel=1e-6)
    assert np.isnan(y[7])


def test_odd_bounded_nearly_monotone():
    x = np.linspace(0, 10, 400_001, dtype=np.float64).astype(F32)
    y = fast_math.tanh32_into(x)
    np.testing.assert_array_equal(fast_math.tanh32_into(-x), -y)
    assert np.all(np.abs(y) <= 1)
    drop = -np.diff(y) / np.spacing(y[1:])
    assert drop.max() <= 8  # documented: monotone to within 8 ulp
    assert np.all(np.diff(y[x < 1.5]) >= 0)


def test_in_place_and_dtype_check():
    x = np.linspace(-3, 3, 11, dtype=F32)
    want = fast_math.tanh32_into(x)
    fast_math.tanh32_into(x, out=x)
    np.testing.assert_array_equal(x, want)
    with pytest.raises(TypeError, match="float32"):
        fast_math.tanh32_into(np.zeros(3))


def test_compiled_equals_numpy_bits():
    numba = pytest.importorskip("numba")
    scalar = numba.njit(inline="always", error_model="numpy")(fast_math.tanh32)

    def body(a, out):
        for i in range(a.size):
            out[i] = scalar(a[i])

    fn = numba.njit(error_model="numpy")(body)
    x = _args()
    out = np.empty_like(x)
    fn(x, out)
    np.testing.assert_array_equal(out, fast_math.tanh32_into(x))
