"""Fixtures shared by the whole test suite.

``xp``: the array module a test runs with, parametrised over numpy (CPU mode)
and cupy (GPU mode). The cupy parameter is skipped unless CuPy imports and sees
a CUDA device. The fixture sets the mode for the test and restores CPU mode.
"""

from __future__ import annotations

import logging

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
