"""The capturable GEMM's mapping of row-major arrays onto column-major cuBLAS.

:func:`recaffe.backend.cublas_capture.matmul` issues ``C = A B`` for row-major
CuPy arrays as the column-major ``C^T = B^T A^T`` call, with transpose flags
and leading dimensions taken from the operands' strides. Here ``cupy`` and
``nvmath.bindings.cublas`` are replaced by host stand-ins: arrays whose
``data.ptr`` is their host address, and an ``sgemm``/``dgemm`` that computes
exactly what the cuBLAS reference says (column-major, ``op`` = N or T, leading
dimensions) by reading and writing memory at those addresses. So every
layout the layers use (contiguous, transposed views, row blocks of larger
matrices, vectors, batches, accumulation, non-contiguous outputs) is checked
against numpy's ``@``.
"""

from __future__ import annotations

import ctypes
import sys
import types

import numpy as np
import pytest

from recaffe.backend import cublas_capture


class HostArray(np.ndarray):
    """A host array with CuPy's ``data.ptr``."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])


def _h(a):
    return np.ascontiguousarray(a).view(HostArray)


def _colmajor(ptr, rows, cols, ld, dtype):
    """The column-major matrix at ``ptr``: element (i, j) at ptr + (i + j ld)."""
    item = np.dtype(dtype).itemsize
    size = (ld * (cols - 1) + rows) if rows and cols else 0
    buf = (ctypes.c_char * (size * item)).from_address(ptr)
    flat = np.frombuffer(buf, dtype=dtype, count=size)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (item, ld * item))


def _gemm(dtype, calls):
    def gemm(handle, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        calls.append((ta, tb, m, n, k, lda, ldb, ldc))
        al = np.frombuffer((ctypes.c_char * 8).from_address(alpha), dtype=dtype,
                           count=1)[0]
        be = np.frombuffer((ctypes.c_char * 8).from_address(beta), dtype=dtype,
                           count=1)[0]
        ra, ca = (m, k) if ta == 0 else (k, m)
        rb, cb = (k, n) if tb == 0 else (n, k)
        assert lda >= max(1, ra) and ldb >= max(1, rb) and ldc >= max(1, m)
        A = _colmajor(a, ra, ca, lda, dtype)
        B = _colmajor(b, rb, cb, ldb, dtype)
        C = _colmajor(c, m, n, ldc, dtype)
        opa = A if ta == 0 else A.T
        opb = B if tb == 0 else B.T
        result = al * (opa.astype(np.float64) @ opb) + be * C
        C[...] = result.astype(dtype)
    return gemm


@pytest.fixture
def host_cublas(monkeypatch):
    calls: list = []
    cublas = types.SimpleNamespace(
        create=lambda: 1, set_stream=lambda h, s: None,
        set_workspace=lambda h, p, n: None,
        sgemm=_gemm(np.float32, calls), dgemm=_gemm(np.float64, calls))
    nvmath = types.ModuleType("nvmath")
    bindings = types.ModuleType("nvmath.bindings")
    bindings.cublas = cublas
    nvmath.bindings = bindings
    cp = types.ModuleType("cupy")
    cp.__dict__.update(
        empty=lambda shape, dtype=np.float32: np.empty(shape, dtype).view(HostArray),
        ascontiguousarray=_h, uint8=np.uint8,
        cuda=types.SimpleNamespace(
            Device=lambda: types.SimpleNamespace(id=0),
            get_current_stream=lambda: types.SimpleNamespace(ptr=7)))
    monkeypatch.setitem(sys.modules, "nvmath", nvmath)
    monkeypatch.setitem(sys.modules, "nvmath.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cupy", cp)
    monkeypatch.setattr(cublas_capture, "_handles", {})
    return calls


def _rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed + sum(shape)).normal(size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("ta", "tb"), [(False, False), (True, False), (False, True),
                                        (True, True)])
def test_2d_products_with_transposed_views(host_cublas, dtype, ta, tb):
    m, k, n = 5, 7, 3
    a = _h(_rand(k, m, dtype=dtype) if ta else _rand(m, k, dtype=dtype))
    b = _h(_rand(n, k, dtype=dtype, seed=1) if tb else _rand(k, n, dtype=dtype,
                                                             seed=1))
    opa, opb = (a.T if ta else a), (b.T if tb else b)
    out = _h(np.zeros((m, n), dtype))
    cublas_capture.matmul(opa, opb, out=out)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, np.asarray(opa) @ np.asarray(opb), rtol=tol,
                               atol=tol)
    # transposed views are passed as 'T' without a copy (C^T = B^T A^T: the
    # call's first operand is b)
    assert host_cublas[-1][:2] == (int(tb), int(ta))


def test_accumulate_and_row_blocks_of_larger_arrays(host_cublas):
    big = _h(_rand(6, 10))
    x = big[1:5, 2:9]  # rows of stride 10, unit inner stride: no copy
    w = _h(_rand(7, 4, seed=2))
    out_big = _h(_rand(8, 6, seed=3))
    out = out_big[2:6, 1:5]  # a block of a larger output
    want = np.asarray(out) + np.asarray(x) @ np.asarray(w)
    cublas_capture.matmul(x, w, out=out, accumulate=True)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    # C^T = W^T X^T: w's leading dimension, x's (its row stride), the output's
    assert host_cublas[-1][5:8] == (4, 10, 6)


def test_vectors_batches_and_strided_outputs(host_cublas):
    ones, dy = _h(np.ones(4, np.float32)), _h(_rand(4, 3))
    bias = _h(_rand(3, seed=4))
    want = np.asarray(bias) + np.ones(4) @ np.asarray(dy)
    cublas_capture.matmul(ones, dy, out=bias, accumulate=True)  # IP's bias GEMV
    np.testing.assert_allclose(bias, want, rtol=1e-5, atol=1e-5)
    a, b = _h(_rand(2, 3, 4)), _h(_rand(2, 4, 5, seed=5))
    out = cublas_capture.matmul(a, b)  # a batch, new output
    np.testing.assert_allclose(out, np.asarray(a) @ np.asarray(b), rtol=1e-5,
                               atol=1e-5)
    wide = _h(np.zeros((3, 5, 2), np.float32))
    col = wide[:, :, 0]  # a strided (non unit inner stride) output: via a temporary
    x, w = _h(_rand(3, 4)), _h(_rand(4, 5, seed=6))
    cublas_capture.matmul(x, w, out=col)
    np.testing.assert_allclose(col, np.asarray(x) @ np.asarray(w), rtol=1e-5,
                               atol=1e-5)
    scalar = cublas_capture.matmul(_h(_rand(6)), _h(_rand(6, seed=7)))
    assert scalar.shape == ()


def test_bad_operands_are_refused(host_cublas):
    with pytest.raises(TypeError, match="float32 or float64"):
        cublas_capture.matmul(_h(np.ones((2, 2), np.int32)),
                              _h(np.ones((2, 2), np.int32)))
    with pytest.raises(ValueError, match="inner dimensions"):
        cublas_capture.matmul(_h(np.ones((2, 3), np.float32)),
                              _h(np.ones((2, 3), np.float32)))
