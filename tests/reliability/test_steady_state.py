"""Long training reaches a steady state: memory stays flat and no file handle
leaks, across many HDF5Data epochs, snapshots and log file rotations.

The net is a small recurrent one (HDF5Data -> LSTM -> EuclideanLoss) whose
data come from two small HDF5 files, so 2,000 iterations pass over them
hundreds of times.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

import recaffe
from recaffe import backend
from recaffe.log import close_log_file, init_log, logger

T, N, D, H = 3, 2, 4, 5
ROWS = 6  # per file: 2 batches of T rows
ITERS = 2000
WARMUP = 200

NET = f"""name: "steady"
layer {{ name: "data" type: "HDF5Data" top: "x" top: "cont" top: "target"
  hdf5_data_param {{ source: "list.txt" batch_size: {T} }} }}
layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
  recurrent_param {{ num_output: {H}
    weight_filler {{ type: "uniform" min: -0.3 max: 0.3 }}
    bias_filler {{ type: "constant" value: 0 }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "target" top: "loss" }}
"""

SOLVER = f"""net: "net.prototxt"
base_lr: 0.05
momentum: 0.9
lr_policy: "fixed"
max_iter: {ITERS}
display: 100
snapshot: 500
snapshot_prefix: "snaps/s"
random_seed: 5
"""


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _write_data(d: Path) -> None:
    rng = np.random.default_rng(0)
    names = []
    for k in range(2):
        name = f"part{k}.h5"
        with h5py.File(d / name, "w") as f:
            f["x"] = rng.uniform(-1, 1, (ROWS, N, D)).astype(np.float32)
            cont = np.ones((ROWS, N), np.float32)
            cont[::T] = 0  # a new sequence every T rows
            f["cont"] = cont
            f["target"] = rng.uniform(-0.5, 0.5, (ROWS, N, H)).astype(np.float32)
        names.append(name)
    (d / "list.txt").write_text("\n".join(names) + "\n")


@pytest.fixture
def quiet_logger():
    level, handlers = logger.level, list(logger.handlers)
    yield
    close_log_file()
    for h in list(logger.handlers):
        if h not in handlers:
            logger.removeHandler(h)
    logger.setLevel(level)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd")
def test_steady_state_memory_and_file_handles(tmp_path, monkeypatch, quiet_logger):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "snaps").mkdir()
    _write_data(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    backend.set_random_seed(5)
    solver = recaffe.get_solver("solver.prototxt")
    logger.setLevel(logging.INFO)

    solver.step(1)  # first-touch allocations (diffs, history) are not a leak
    gc.collect()
    fds_before = _open_fds()
    tracemalloc.start()
    try:
        solver.step(WARMUP - 1)
        gc.collect()
        at_warmup, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rotation = 0
        while solver.iter < ITERS:
            # A new log file every 100 iterations (as a log rotator would do).
            rotation += 1
            init_log(
                0, to_stderr=False, log_file=str(tmp_path / f"train.{rotation}.log")
            )
            solver.step(min(100, ITERS - solver.iter))
        close_log_file()
        gc.collect()
        at_end, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    fds_after = _open_fds()

    assert solver.iter == ITERS
    loss = float(solver.net.blobs["loss"].data)
    assert np.isfinite(loss)
    # Many epochs really happened, and the log files were really written.
    epochs = ITERS * T // (2 * ROWS)
    assert epochs >= 500
    assert rotation == (ITERS - WARMUP) // 100
    assert "Iteration" in (tmp_path / f"train.{rotation}.log").read_text()
    assert len(list((tmp_path / "snaps").glob("*.caffemodel"))) == ITERS // 500

    kib = 1024
    assert at_end - at_warmup < 64 * kib, (
        f"memory grew by {(at_end - at_warmup) / kib:.1f} KiB between iteration "
        f"{WARMUP} and {ITERS}"
    )
    assert peak - at_warmup < 1024 * kib, (
        f"peak memory {(peak - at_warmup) / kib:.1f} KiB above the level at "
        f"iteration {WARMUP}"
    )
    assert fds_after == fds_before, f"leaked fds: {sorted(fds_after - fds_before)}"
