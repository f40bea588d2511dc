"""Solver trajectories against BVLC Caffe's own numbers.

For each configuration of the repository's copy (``data/solvers``): build the
solver with ``get_solver`` in a folder holding the net, load Caffe's
``init.caffemodel``, write the
inputs once, then compare the loss and every learnable blob after each of six
``step(1)`` calls (rtol 1e-4, atol 1e-5).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from conformance_data import MANIFEST, ROOT, load_case, write_bytes

from recaffe.layer import layer_type_list

CASES_DIR = ROOT / "solvers"
CASES = sorted(MANIFEST["solvers"])
NEEDED_TYPES = {"Input", "InnerProduct", "TanH", "EuclideanLoss"}



def test_solver_conformance_data_present():
    assert len(CASES) == 7, f"expected 7 solver cases in {CASES_DIR}, found {CASES}"


@pytest.fixture
def in_cases_dir(tmp_path):
    # The solver files name "net.prototxt" relative to the working directory
    # (Caffe's rule); no snapshot is due within six steps.
    for path in CASES_DIR.glob("*.prototxt"):
        shutil.copyfile(path, tmp_path / path.name)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.mark.parametrize("case", CASES)
def test_solver_trajectory(case, in_cases_dir):
    assert set(layer_type_list()) >= NEEDED_TYPES
    from recaffe.solvers import get_solver

    expected = load_case("solvers", case)
    solver = get_solver(f"{case}.prototxt")
    solver.net.copy_from(str(write_bytes(expected, "init.caffemodel", ".")))
    for name in ("x", "t"):
        solver.net.blobs[name].data[...] = expected[f"input/{name}"]
    steps = sorted({int(k.split("/")[0][4:]) for k in expected
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
        keys = [k for k in expected if k.startswith(prefix)]
        assert keys, f"{case}: no params stored for step {n}"
        for key in keys:
            layer, idx = key[len(prefix):].split("/")
            got = solver.net.params[layer][int(idx)].data
            np.testing.assert_allclose(
                got, expected[key], rtol=1e-4, atol=1e-5,
                err_msg=f"{case}: {layer} param {idx} after step {n}",
            )
