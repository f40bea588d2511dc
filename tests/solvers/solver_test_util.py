"""Helpers shared by the solver tests: tiny nets on fixed data, a numpy loss."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
from google.protobuf import text_format

from recaffe.io.prototxt import parse_prototxt
from recaffe.proto import caffe_pb2

DIM, K = 3, 2
_DATA_DIR = Path(tempfile.mkdtemp(prefix="recaffe_solver_tests_"))
atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)


def data_pool(dim=DIM, k=K, pool=4, seed=0):
    """A fixed set of ``pool`` samples: inputs (pool, dim), targets (pool, k)."""
    r = np.random.default_rng(seed)
    x = r.uniform(-1, 1, size=(pool, dim))
    w = r.uniform(-1, 1, size=(dim, k))
    t = np.tanh(x @ w) + 0.1 * r.standard_normal((pool, k))
    return x, t


def data_source(pool=4, seed=0, directory: Path | None = None) -> str:
    """Path of an HDF5Data list file serving ``data_pool(pool=pool, seed=seed)``."""
    d = directory or _DATA_DIR
    h5 = d / f"pool_{pool}_{seed}.h5"
    lst = d / f"pool_{pool}_{seed}.txt"
    if not lst.exists():
        x, t = data_pool(pool=pool, seed=seed)
        with h5py.File(h5, "w") as f:
            f["x"] = x
            f["t"] = t
        lst.write_text(f"{h5}\n")
    return str(lst)


def net_text(batch=4, pool=4, seed=0, name="tiny", lr_mults=(1, 2), decay_mults=(1, 0),
             directory: Path | None = None):
    """HDF5Data (rows in order, cycling) -> InnerProduct -> EuclideanLoss."""
    source = data_source(pool, seed, directory)
    return f"""
name: "{name}"
layer {{ name: "data" type: "HDF5Data" top: "x" top: "t"
  hdf5_data_param {{ source: "{source}" batch_size: {batch} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  param {{ lr_mult: {lr_mults[0]} decay_mult: {decay_mults[0]} }}
  param {{ lr_mult: {lr_mults[1]} decay_mult: {decay_mults[1]} }}
  inner_product_param {{ num_output: {K}
    weight_filler {{ type: "uniform" min: -0.7 max: 0.7 }}
    bias_filler {{ type: "uniform" min: -0.3 max: 0.3 }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }}
"""


def solver_param(
    text: str, net: str | None = None, **net_kw
) -> caffe_pb2.SolverParameter:
    """A SolverParameter from ``text`` (later fields win), inline ``net_param``."""
    p = caffe_pb2.SolverParameter()
    text_format.Merge(text, p)
    if net is None:
        net = net_text(**net_kw)
    p.net_param.CopyFrom(parse_prototxt(net, caffe_pb2.NetParameter))
    return p


def grads(w, b, x, t):
    """Loss and gradients of sum((x W^T + b - t)^2) / (2N)."""
    y = x @ w.T + b
    d = (y - t) / len(x)
    return float(((y - t) ** 2).sum() / len(x) / 2), d.T @ x, d.sum(0)


class LogCapture:
    """Collect the messages of the ``recaffe`` logger inside a ``with`` block."""

    def __enter__(self):
        import logging

        self.messages: list[str] = []
        outer = self

        class _H(logging.Handler):
            def emit(self, record):
                outer.messages.append(record.getMessage())

        self._logger = logging.getLogger("recaffe")
        self._old_level = self._logger.level
        self._logger.setLevel(logging.INFO)
        self._handler = _H()
        self._logger.addHandler(self._handler)
        return self

    def __exit__(self, *exc):
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._old_level)

    @property
    def text(self) -> str:
        return "\n".join(self.messages)
