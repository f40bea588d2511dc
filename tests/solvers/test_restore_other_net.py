"""Restoring a .solverstate written for another net is a clear error, both from
Python and from `recaffe train -snapshot`."""

from __future__ import annotations

import subprocess
import sys

import pytest

import recaffe
from recaffe.errors import RecaffeError

NET = """name: "tiny"
layer {{ name: "d" type: "DummyData" top: "x" top: "t"
  dummy_data_param {{ shape {{ dim: 4 dim: 3 }} shape {{ dim: 4 dim: {n} }}
    data_filler {{ type: "constant" value: 1 }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param {{ num_output: {n} weight_filler {{ type: "gaussian" }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }}
"""
SOLVER = ('net: "{net}"\nbase_lr: 0.01\nmomentum: 0.9\nlr_policy: "fixed"\n'
          'max_iter: 4\nsnapshot_prefix: "{prefix}"\n')


def _setup(tmp_path):
    for name, n in (("a", 2), ("b", 5)):
        (tmp_path / f"{name}.prototxt").write_text(NET.format(n=n))
        (tmp_path / f"solver_{name}.prototxt").write_text(
            SOLVER.format(net=f"{name}.prototxt", prefix=name))
    solver = recaffe.get_solver(str(tmp_path / "solver_a.prototxt"))
    solver.step(2)
    return solver.snapshot()


def test_restore_state_of_another_net(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = _setup(tmp_path)
    other = recaffe.get_solver("solver_b.prototxt")
    with pytest.raises(RecaffeError, match=r"a_iter_2\.(solverstate|caffemodel)"):
        other.restore(state)
    assert other.iter == 0  # nothing changed


def test_cli_snapshot_of_another_net(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = _setup(tmp_path)
    run = subprocess.run([sys.executable, "-m", "recaffe", "train", "-solver",
                          "solver_b.prototxt", "-snapshot", state],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("recaffe: error: ") and "a_iter_2" in last, run.stderr
