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


class _RecordingLib:
    """A stand-in CBLAS that records calls and computes with numpy."""

    path = "<recording>"

    def __init__(self):
        self.calls = 0

    def set_threads(self, n):
        return True

    def _gemm(self, dtype, order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        import ctypes  # noqa: PLC0415

        self.calls += 1

        def view(ptr, rows, cols, ld):
            buf = (ctypes.c_char * (rows * ld * np.dtype(dtype).itemsize)).from_address(
                ptr)
            return np.frombuffer(buf, dtype=dtype).reshape(rows, ld)[:, :cols]

        opa = view(a, k, m, lda).T if ta == 112 else view(a, m, k, lda)
        opb = view(b, n, k, ldb).T if tb == 112 else view(b, k, n, ldb)
        out = view(c, m, n, ldc)
        out[...] = alpha * (opa @ opb) + (beta * out if beta else 0)

    def sgemm(self, *args):
        self._gemm(np.float32, *args)

    def dgemm(self, *args):
        self._gemm(np.float64, *args)


LAYERS = {
    "InnerProduct": ('type: "InnerProduct" inner_product_param { num_output: 5 '
                     'weight_filler { type: "gaussian" } }', [(4, 3, 2)]),
    "Convolution": ('type: "Convolution" convolution_param { num_output: 4 '
                    'kernel_size: 3 group: 2 weight_filler { type: "gaussian" } }',
                    [(2, 4, 6, 6)]),
    "Deconvolution": ('type: "Deconvolution" convolution_param { num_output: 4 '
                      'kernel_size: 2 stride: 2 weight_filler { type: "gaussian" } }',
                      [(2, 4, 3, 3)]),
    "LSTM": ('type: "LSTM" recurrent_param { num_output: 6 weight_filler { '
             'type: "gaussian" std: 0.3 } }', [(4, 3, 5), "cont"]),
    "RNN": ('type: "RNN" recurrent_param { num_output: 6 weight_filler { '
            'type: "gaussian" std: 0.3 } }', [(4, 3, 5), "cont"]),
}


def _run_layer(ltype):
    from recaffe import backend  # noqa: PLC0415
    from recaffe.blob import Blob  # noqa: PLC0415
    from recaffe.testing import make_blobs, make_layer  # noqa: PLC0415

    text, shapes = LAYERS[ltype]
    rng = np.random.default_rng(0)
    arrays = []
    for s in shapes:
        if s == "cont":
            t, n = shapes[0][:2]
            c = np.ones((t, n), np.float32)
            c[0] = 0
            arrays.append(c)
        else:
            arrays.append(rng.standard_normal(s).astype(np.float32))
    backend.set_random_seed(3)
    layer = make_layer(text)
    bottom = make_blobs(arrays)
    top = [Blob(())]
    layer.SetUp(bottom, top)
    layer.Forward(bottom, top)
    top[0].diff[...] = rng.standard_normal(top[0].shape)
    layer.Backward(top, [True] + [False] * (len(bottom) - 1), bottom)
    return ([top[0].data.copy(), bottom[0].diff.copy()]
            + [b.diff.copy() for b in layer.blobs])


@pytest.mark.parametrize("ltype", sorted(LAYERS))
def test_layer_gemms_go_through_the_selected_library(ltype, monkeypatch):
    expected = _run_layer(ltype)
    lib = _RecordingLib()
    monkeypatch.setitem(blas._state, "lib", lib)  # noqa: SLF001
    monkeypatch.setitem(blas._state, "name", "recording")  # noqa: SLF001
    got = _run_layer(ltype)
    assert lib.calls > 0, f"{ltype} did not call the selected BLAS"
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
