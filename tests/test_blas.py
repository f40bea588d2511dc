"""recaffe.backend.blas: info, library selection, gemm through numpy or CBLAS."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recaffe.backend import blas
from recaffe.errors import BackendError


@pytest.fixture(autouse=True)
def _restore():
    yield
    blas.set_blas("numpy")


def _check_gemm(dtype, rtol):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 5)).astype(dtype)
    b = rng.normal(size=(5, 4)).astype(dtype)
    for ta, tb in itertools.product((False, True), repeat=2):
        aa = np.ascontiguousarray(a.T) if ta else a
        bb = np.ascontiguousarray(b.T) if tb else b
        out = np.ones((7, 4), dtype)
        got = blas.gemm(aa, bb, out, trans_a=ta, trans_b=tb, alpha=2.0, beta=0.5)
        assert got is out
        np.testing.assert_allclose(out, 2.0 * (a @ b) + 0.5, rtol=rtol, atol=rtol)
        # operands given as transposed views (F-contiguous) and strided views
        out2 = blas.gemm(aa.T.copy().T, bb[:, :], None, trans_a=ta, trans_b=tb)
        np.testing.assert_allclose(out2, a @ b, rtol=rtol, atol=rtol)
    wide = rng.normal(size=(7, 10)).astype(dtype)[:, ::2]  # non-contiguous
    np.testing.assert_allclose(blas.gemm(wide, b), wide @ b, rtol=rtol, atol=rtol)


def test_info_reports_numpy_blas():
    info = blas.info()
    assert info["selected"] == "numpy"
    assert info["library"] and info["numpy_blas"]
    assert info["detected_by"] in ("threadpoolctl", "numpy.show_config", "none")


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_gemm_numpy(dtype, rtol):
    _check_gemm(dtype, rtol)


def test_gemm_shape_mismatch():
    with pytest.raises(BackendError, match="inner dimensions"):
        blas.gemm(np.zeros((2, 3), np.float32), np.zeros((4, 2), np.float32))


def test_unknown_and_missing_libraries(monkeypatch, tmp_path):
    with pytest.raises(BackendError, match="unknown BLAS"):
        blas.set_blas("fastblas")
    with pytest.raises(BackendError, match="does not exist"):
        blas.set_blas(str(tmp_path / "libnothing.so"))
    monkeypatch.setattr(blas, "_find", lambda name: None)
    with pytest.raises(BackendError, match="pip install mkl"):
        blas.set_blas("mkl")
    with pytest.raises(BackendError, match="libatlas3-base"):
        blas.set_blas("atlas")
    not_blas = tmp_path / "libfake.so"
    not_blas.write_bytes(b"not a library")
    with pytest.raises(BackendError, match="cannot load"):
        blas.set_blas(str(not_blas))


def test_set_num_threads():
    with pytest.raises(BackendError):
        blas.set_num_threads(0)
    before = blas.info()["numpy_threads"]
    blas.set_num_threads(1)
    if before is not None:
        assert blas.info()["numpy_threads"] == 1
        blas.set_num_threads(before)


def _available():
    found = []
    for name in ("mkl", "atlas", "blis", "openblas"):
        if name == "openblas" and blas._numpy_blas()[0] == "openblas":  # noqa: SLF001
            path = blas._find("openblas")  # noqa: SLF001 - the system copy
            if path:
                found.append(path)
            continue
        if blas._find(name):  # noqa: SLF001
            found.append(name)
    return found


@pytest.mark.parametrize("lib", _available() or [pytest.param(
    "none", marks=pytest.mark.skip(reason="no external CBLAS installed"))])
def test_gemm_external_library(lib):
    info = blas.set_blas(lib)
    assert info["path"]
    _check_gemm(np.float32, 1e-4)
    _check_gemm(np.float64, 1e-10)
    blas.set_num_threads(1)
