"""Fixtures shared by the whole test suite.

``xp``: the array module a test runs with, parametrised over numpy (CPU mode)
and cupy (GPU mode). The cupy parameter is skipped unless CuPy imports and sees
a CUDA device. The fixture sets the mode for the test and restores CPU mode.
"""

from __future__ import annotations

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
