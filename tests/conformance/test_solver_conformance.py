"""Solver trajectories against BVLC Caffe's own numbers.

For each configuration in ``shared/conformance/solvers/``: build the solver
with ``get_solver`` from that folder, load ``init.caffemodel``, write the
inputs once, then compare the loss and every learnable blob after each of six
``step(1)`` calls (rtol 1e-4, atol 1e-5).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conformance_data import find_conformance_root

from recaffe.layer import layer_type_list

_ROOT = find_conformance_root()
CASES_DIR = (_ROOT or Path("missing-conformance-data")) / "solvers"
CASES = sorted(
    p.name[: -len(".expected.npz")] for p in CASES_DIR.glob("*.expected.npz")
)
NEEDED_TYPES = {"Input", "InnerProduct", "TanH", "EuclideanLoss"}



def test_solver_conformance_data_present():
    assert len(CASES) == 7, f"expected 7 solver cases in {CASES_DIR}, found {CASES}"


@pytest.fixture
def in_cases_dir():
    # The solver files name "net.prototxt" relative to the working directory
    # (Caffe's rule); no snapshot is due within six steps.
    old = os.getcwd()
    os.chdir(CASES_DIR)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.mark.parametrize("case", CASES)
def test_solver_trajectory(case, in_cases_dir):
    assert set(layer_type_list()) >= NEEDED_TYPES
    from recaffe.solvers import get_solver

    expected = np.load(f"{case}.expected.npz")
    solver = get_solver(f"{case}.prototxt")
    solver.net.copy_from("init.caffemodel")
    for name in ("x", "t"):
        solver.net.blobs[name].data[...] = expected[f"input/{name}"]
    steps = sorted({int(k.split("/")[0][4:]) for k in expected.files
                    if k.startswith("iter")})
    assert steps == list(range(1, len(steps) + 1))
    for n in steps:
        solver.step(1)
        assert solver.iter == n
        np.testing.assert_allclose(
            float(solver.net.blobs["loss"].data), float(expected[f"iter{n}/loss"]),
            rtol=1e-4, atol=1e-5, err_msg=f"{case}: loss after step {n}",
        )
        prefix = f"iter{n}/param/"
        keys = [k for k in expected.files if k.startswith(prefix)]
        assert keys, f"{case}: no params stored for step {n}"
        for key in keys:
            layer, idx = key[len(prefix):].split("/")
            got = solver.net.params[layer][int(idx)].data
            np.testing.assert_allclose(
                got, expected[key], rtol=1e-4, atol=1e-5,
                err_msg=f"{case}: {layer} param {idx} after step {n}",
            )
