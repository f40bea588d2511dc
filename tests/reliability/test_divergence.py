"""Divergence is caught: a non-finite loss, output or gradient stops training
with a DivergenceError naming the iteration and the first layer where the
non-finite value appears, and no snapshot is ever written from such a state.

"First layer" means: the first layer in forward order whose top holds a
non-finite value; when every top is finite, the first layer reached by the
backward pass (last to first) whose computed gradient -- a bottom diff or a
parameter diff -- is non-finite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import recaffe
from recaffe import backend
from recaffe.errors import DivergenceError, RecaffeError
from recaffe.proto import caffe_pb2

REPO = Path(__file__).resolve().parents[2]

NET = """name: "div"
layer { name: "d" type: "DummyData" top: "x" top: "t"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 }
    data_filler { type: "constant" value: X_VALUE }
    data_filler { type: "constant" value: 0.5 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
  inner_product_param { num_output: 4 weight_filler { type: "constant" value: 0.1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
  inner_product_param { num_output: 2 weight_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""

# Forward is finite everywhere (sqrt(0) = 0) but d sqrt(y)/dy at y = 0 is
# infinite: the gradient, not an output, becomes non-finite, first in 'sqrt'.
GRAD_NET = """name: "grad"
layer { name: "d" type: "DummyData" top: "x" top: "t"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 }
    data_filler { type: "constant" value: 1 }
    data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param { num_output: 2 } }
layer { name: "sqrt" type: "Power" bottom: "y" top: "z" power_param { power: 0.5 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "z" bottom: "t" top: "loss" }
"""

DIVERGED = re.compile(
    r"^training diverged at iteration (\d+): loss = (\S+); first non-finite value in "
    r"layer '(\w+)' \((\w+)\), (.*)$"
)


def _files(d: Path, base_lr: str, extra: str = "", net: str = NET, x: str = "1"):
    (d / "net.prototxt").write_text(net.replace("X_VALUE", x))
    (d / "solver.prototxt").write_text(
        f'net: "net.prototxt"\nbase_lr: {base_lr}\nlr_policy: "fixed"\n'
        f"max_iter: 50\nrandom_seed: 3\n{extra}"
    )


@pytest.fixture(autouse=True)
def _quiet():
    backend.set_random_seed(3)
    with warnings.catch_warnings():
        # Overflow on the way to inf is the point of these tests.
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _solve(d: Path) -> tuple[DivergenceError, recaffe.SGDSolver]:
    solver = recaffe.get_solver(str(d / "solver.prototxt"))
    with pytest.raises(DivergenceError) as info:
        solver.solve()
    return info.value, solver


def test_huge_lr_names_iteration_and_first_layer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path, "1e30")
    err, solver = _solve(tmp_path)
    m = DIVERGED.match(str(err))
    assert m, str(err)
    # Iteration 0 is finite and its update makes every weight ~1e30; at
    # iteration 1, ip1's output (~1e30) is still finite and ip2's overflows.
    assert int(m.group(1)) == 1 == solver.iter
    assert m.group(2) in ("inf", "nan")
    assert (m.group(3), m.group(4)) == ("ip2", "InnerProduct"), str(err)
    assert m.group(5).startswith("top 'y'"), str(err)
    assert "Lower base_lr or set clip_gradients" in str(err)


def test_non_finite_input_names_data_layer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path, "0.01", x="nan")
    err, _ = _solve(tmp_path)
    m = DIVERGED.match(str(err))
    assert m, str(err)
    assert int(m.group(1)) == 0
    assert (m.group(3), m.group(4)) == ("d", "DummyData")
    assert m.group(5).startswith("top 'x'")


def test_non_finite_weight_names_its_layer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path, "0.01")
    solver = recaffe.get_solver("solver.prototxt")
    solver.step(3)
    solver.net.params["ip2"][0].data[0, 0] = np.inf
    with pytest.raises(DivergenceError) as info:
        solver.step(1)
    m = DIVERGED.match(str(info.value))
    assert m, str(info.value)
    assert int(m.group(1)) == 3
    assert (m.group(3), m.group(4)) == ("ip2", "InnerProduct")
    assert m.group(5).startswith("top 'y'")


def test_non_finite_gradient_names_first_layer_of_backward(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path, "0.1", net=GRAD_NET)
    solver = recaffe.get_solver("solver.prototxt")
    with pytest.raises(DivergenceError) as info:
        solver.step(1)
    m = DIVERGED.match(str(info.value))
    assert m, str(info.value)
    assert int(m.group(1)) == 0
    # The loss is finite: only the gradient is not.
    assert np.isfinite(float(m.group(2)))
    assert (m.group(3), m.group(4)) == ("sqrt", "Power"), str(info.value)
    assert "diff" in m.group(5)


def _assert_all_finite_snapshots(d: Path) -> list[int]:
    iters = []
    for path in sorted(d.glob("*.caffemodel")):
        p = caffe_pb2.NetParameter()
        p.ParseFromString(path.read_bytes())
        for lp in p.layer:
            for b in lp.blobs:
                assert np.isfinite(np.asarray(b.data)).all(), path
        iters.append(int(re.search(r"_iter_(\d+)\.caffemodel$", path.name).group(1)))
    for path in sorted(d.glob("*.solverstate")):
        s = caffe_pb2.SolverState()
        s.ParseFromString(path.read_bytes())
        for b in s.history:
            assert np.isfinite(np.asarray(b.data)).all(), path
    assert not list(d.glob(".*.tmp"))
    return sorted(iters)


@pytest.mark.parametrize("lr", ["1e30", "1e18", "1e10"])
def test_no_snapshot_from_non_finite_state(tmp_path, monkeypatch, lr):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path, lr, 'snapshot: 1\nsnapshot_prefix: "snap"\nmomentum: 0.9\n')
    err, _ = _solve(tmp_path)
    assert isinstance(err, DivergenceError)
    iters = _assert_all_finite_snapshots(tmp_path)
    assert iters, "the finite iterations before divergence are snapshotted"
    # Nothing is written at or after the iteration that diverged (a refused
    # snapshot of non-finite weights counts as divergence too).
    m = re.search(r"iteration (\d+)", str(err))
    assert max(iters) <= int(m.group(1))


def test_snapshot_refuses_non_finite_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path, "0.01", 'snapshot_prefix: "snap"\n')
    solver = recaffe.get_solver("solver.prototxt")
    solver.step(2)
    solver.net.params["ip1"][1].data[2] = np.nan
    with pytest.raises(DivergenceError, match=r"refusing to snapshot at iteration 2"):
        solver.snapshot()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "net.prototxt",
        "solver.prototxt",
    ]


def test_snapshot_after_train_not_written_on_divergence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _files(tmp_path, "1e30", 'snapshot_prefix: "snap"\n')  # snapshot_after_train on
    _solve(tmp_path)
    assert _assert_all_finite_snapshots(tmp_path) == []


def test_check_finite_can_be_turned_off(tmp_path, monkeypatch):
    """Caffe itself trains on through NaN; check_finite = False restores that."""
    monkeypatch.chdir(tmp_path)
    _files(tmp_path, "1e30")
    solver = recaffe.get_solver("solver.prototxt")
    solver.check_finite = False
    solver.step(4)
    assert solver.iter == 4
    assert not np.isfinite(solver.net.blobs["loss"].data).all()


def test_cli_reports_divergence_on_one_line(tmp_path):
    _files(tmp_path, "1e30", 'snapshot: 1\nsnapshot_prefix: "snap"\n')
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    res = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "-m",
            "recaffe",
            "train",
            "-solver",
            "solver.prototxt",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    last = res.stderr.rstrip("\n").splitlines()[-1]
    assert re.match(r"^recaffe: error: training diverged at iteration 1: ", last), last
    _assert_all_finite_snapshots(tmp_path)


def test_divergence_error_is_a_recaffe_error():
    assert issubclass(DivergenceError, RecaffeError)
