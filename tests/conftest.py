"""Fixtures shared by the whole test suite.

``xp``: the array module a test runs with, parametrised over numpy (CPU mode)
and cupy (GPU mode). The cupy parameter is skipped unless CuPy imports and sees
a CUDA device. The fixture sets the mode for the test and restores CPU mode.

``mode``: pycaffe's mode for a test: ``cpu``, ``gpu-fake`` (GPU mode on the CPU
stand-in device of tests/gpu/fake_device.py, which refuses host arrays where
CuPy does) and ``gpu-cupy`` (a real device; skipped without one). ``gpu_mode``
is the same without ``cpu``.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from recaffe import backend

NO_GPU_REASON = "no CUDA device / CuPy not installed"


def gpu_ready() -> bool:
    """CuPy imports and a CUDA device answers."""
    return backend.gpu_available()


@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    if request.param == "cupy":
        if not gpu_ready():
            pytest.skip(NO_GPU_REASON)
        backend.set_mode_gpu()
        try:
            yield backend.xp()
        finally:
            backend.set_mode_cpu()
        return
    backend.set_mode_cpu()
    yield np


def fake_device():
    """The CPU stand-in device module (tests/gpu/fake_device.py), imported once
    under the name the GPU tests import it by."""
    mod = sys.modules.get("fake_device")
    if mod is None:
        path = Path(__file__).resolve().parent / "gpu" / "fake_device.py"
        spec = importlib.util.spec_from_file_location("fake_device", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["fake_device"] = mod
        spec.loader.exec_module(mod)
    return mod


def _run_in_mode(kind: str):
    backend.set_mode_cpu()
    if kind == "cpu":
        yield kind
        return
    if kind == "gpu-cupy":
        if not gpu_ready():
            pytest.skip(NO_GPU_REASON)
        backend.set_mode_gpu()
        try:
            yield kind
        finally:
            backend.set_mode_cpu()
        return
    with backend.device_module_scope(fake_device().FAKE):
        backend.set_mode_gpu()
        try:
            yield kind
        finally:
            backend.set_mode_cpu()


@pytest.fixture(params=["cpu", "gpu-fake", "gpu-cupy"])
def mode(request):
    yield from _run_in_mode(request.param)


@pytest.fixture(params=["gpu-fake", "gpu-cupy"])
def gpu_mode(request):
    yield from _run_in_mode(request.param)


@pytest.fixture(autouse=True)
def _restore_logger():
    # The CLI's main() sets up glog handlers on the shared "recaffe" logger
    # (bound to the test's captured stderr); put the logger back after every
    # test, so later tests neither write to a closed stream nor lose caplog.
    import importlib

    # (`recaffe.log` the attribute is pycaffe's log function, not the module.)
    log = importlib.import_module("recaffe.log")
    lg = logging.getLogger("recaffe")
    saved = (list(lg.handlers), lg.level, lg.propagate, dict(log._handlers))
    yield
    lg.handlers[:] = saved[0]
    lg.setLevel(saved[1])
    lg.propagate = saved[2]
    log._handlers.clear()
    log._handlers.update(saved[3])
