"""recaffe: Caffe's way of deep learning in Python, with recurrent nets first-class.

The package exposes pycaffe's names, so scripts run with ``import recaffe as
caffe`` (or unmodified through ``recaffe pycaffe script.py``)::

    import recaffe as caffe
    from recaffe import layers as L, params as P

    net = caffe.Net("deploy.prototxt", caffe.TEST, weights="model.caffemodel")
    solver = caffe.get_solver("solver.prototxt")

``recaffe.layers`` is both the package of built-in layer implementations and
pycaffe's NetSpec layer factory: ``L.InnerProduct(x, num_output=10)`` works on
it (any attribute that starts with a capital letter is a layer type).
"""

from __future__ import annotations

import importlib as _importlib
import time as _time

from recaffe import backend as _backend
from recaffe import io, net_spec, proto
from recaffe.blob import Blob, BlobVec
from recaffe.layer import Layer, layer_type_list
from recaffe.log import init_log, log
from recaffe.net import TEST, TRAIN, Net
from recaffe.net_spec import NetSpec, params, to_proto

__version__ = "1.0.0"

# ``recaffe.layers`` is the package of layer implementations and, through its
# module __getattr__, pycaffe's ``caffe.layers`` (``L.<Type>(...)``).
layers = _importlib.import_module("recaffe.layers")

set_mode_cpu = _backend.set_mode_cpu
set_mode_gpu = _backend.set_mode_gpu
set_device = _backend.set_device
set_random_seed = _backend.set_random_seed


# -- pycaffe's multi-process names ---------------------------------------------
# Data-parallel training is recaffe.parallel (MPI, NCCL); under it the rank and
# count are the parallel context's. pycaffe's NCCL class is not provided.
_parallel = {"solver_count": 1, "solver_rank": 0, "multiprocess": False}


def has_nccl() -> bool:
    """False: pycaffe's NCCL class is not provided (multi-GPU training is
    ``recaffe train -gpu 0,1`` or :class:`recaffe.parallel.DataParallel`)."""
    return False


def solver_count() -> int:
    from recaffe.parallel.context import size  # noqa: PLC0415

    n = size()
    return n if n > 1 else _parallel["solver_count"]


def set_solver_count(count: int) -> None:
    _parallel["solver_count"] = int(count)


def solver_rank() -> int:
    from recaffe.parallel.context import get_context  # noqa: PLC0415

    ctx = get_context()
    return ctx.rank if ctx.size > 1 else _parallel["solver_rank"]


def set_solver_rank(rank: int) -> None:
    _parallel["solver_rank"] = int(rank)


def set_multiprocess(multiprocess: bool) -> None:
    _parallel["multiprocess"] = bool(multiprocess)


class NCCL:
    """Placeholder of pycaffe's NCCL class: not available (``has_nccl()`` is False)."""

    def __init__(self, *args, **kwargs):
        from recaffe.errors import BackendError  # noqa: PLC0415

        raise BackendError("pycaffe's NCCL class is not available in recaffe "
                           "(has_nccl() is False); use recaffe.parallel.DataParallel "
                           "or recaffe train -gpu 0,1 (docs/distributed.md)")

    @staticmethod
    def new_uid() -> bytes:
        NCCL()
        return b""


class Timer:
    """pycaffe's Timer: ``start()``, ``stop()``, ``ms`` (elapsed milliseconds)."""

    def __init__(self):
        self._start: float | None = None
        self._elapsed = 0.0
        self.running = False

    def start(self) -> None:
        self._start = _time.perf_counter()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._elapsed = _time.perf_counter() - self._start
            self.running = False

    @property
    def ms(self) -> float:
        if self.running:
            return (_time.perf_counter() - self._start) * 1e3
        return self._elapsed * 1e3

    @property
    def seconds(self) -> float:
        return self.ms / 1e3


# -- names resolved on first use ------------------------------------------------
# Solvers, unrolling, drawing and the image helpers load their modules lazily.
_LAZY = {
    "get_solver": ("recaffe.solvers", "get_solver"),
    "SGDSolver": ("recaffe.solvers", "SGDSolver"),
    "NesterovSolver": ("recaffe.solvers", "NesterovSolver"),
    "AdaGradSolver": ("recaffe.solvers", "AdaGradSolver"),
    "RMSPropSolver": ("recaffe.solvers", "RMSPropSolver"),
    "AdaDeltaSolver": ("recaffe.solvers", "AdaDeltaSolver"),
    "AdamSolver": ("recaffe.solvers", "AdamSolver"),
    "unroll": ("recaffe.recurrent", "unroll"),
    "set_blas": ("recaffe.backend.blas", "set_blas"),
    "set_blas_threads": ("recaffe.backend.blas", "set_num_threads"),
    "Classifier": ("recaffe.classifier", "Classifier"),
    "Detector": ("recaffe.detector", "Detector"),
}
_LAZY_MODULES = {"draw", "coord_map", "classifier", "detector", "solvers", "recurrent",
                 "pycaffe_net", "parallel"}


def __getattr__(name: str):
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        value = getattr(_importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    if name in _LAZY_MODULES:
        return _importlib.import_module(f"recaffe.{name}")
    raise AttributeError(f"module 'recaffe' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | _LAZY_MODULES)


__all__ = [
    "NCCL",
    "TEST",
    "TRAIN",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "Blob",
    "BlobVec",
    "Classifier",
    "Detector",
    "Layer",
    "NesterovSolver",
    "Net",
    "NetSpec",
    "RMSPropSolver",
    "SGDSolver",
    "Timer",
    "get_solver",
    "has_nccl",
    "init_log",
    "io",
    "layer_type_list",
    "layers",
    "log",
    "net_spec",
    "params",
    "proto",
    "set_device",
    "set_mode_cpu",
    "set_mode_gpu",
    "set_multiprocess",
    "set_random_seed",
    "set_solver_count",
    "set_solver_rank",
    "solver_count",
    "solver_rank",
    "to_proto",
    "unroll",
]
