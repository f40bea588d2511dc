"""Solver files are checked when they are loaded, before any net is built or any
iteration runs: each mistake is a SolverError naming the file, the field and
what is allowed (get_solver, SGDSolver(path), `recaffe train`)."""

from __future__ import annotations

import re

import pytest

import recaffe
from recaffe.cli.__main__ import main as cli_main
from recaffe.errors import SolverError
from recaffe.solvers import SGDSolver

NET = """name: "tiny"
layer { name: "d" type: "DummyData" top: "x" top: "t"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param { num_output: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""
BASE = 'net: "net.prototxt"\nbase_lr: 0.01\nmax_iter: 4\n'
FIXED = BASE + 'lr_policy: "fixed"\n'
ORIGIN = r"^solver file 'solver\.prototxt': "

# (solver text, field, the rest of the message)
CASES = [
    pytest.param(BASE + 'lr_policy: "stepz"\n', "lr_policy",
                 r"'stepz'; allowed: fixed, step, exp, inv, multistep, poly, sigmoid",
                 id="unknown-policy"),
    pytest.param(BASE, "lr_policy", r"missing; allowed: fixed, step", id="no-policy"),
    pytest.param(BASE + 'lr_policy: "step"\ngamma: 0.1\n', "stepsize",
                 r"lr_policy 'step' needs stepsize \(it needs gamma, stepsize\)",
                 id="step-no-stepsize"),
    pytest.param(BASE + 'lr_policy: "step"\nstepsize: 10\n', "gamma",
                 r"lr_policy 'step' needs gamma", id="step-no-gamma"),
    pytest.param(BASE + 'lr_policy: "step"\ngamma: 0.1\nstepsize: 0\n', "stepsize",
                 r"lr_policy 'step' needs stepsize > 0, got 0", id="step-zero"),
    pytest.param(BASE + 'lr_policy: "multistep"\ngamma: 0.1\n', "stepvalue",
                 r"lr_policy 'multistep' needs stepvalue \(it needs gamma, stepvalue\)",
                 id="multistep-no-stepvalue"),
    pytest.param(BASE + 'lr_policy: "multistep"\ngamma: 0.1\nstepvalue: 20\n'
                 'stepvalue: 10\n', "stepvalue",
                 r"values must not decrease, got 20 then 10 \(entries 0 and 1\)",
                 id="multistep-decreasing"),
    pytest.param(BASE + 'lr_policy: "inv"\ngamma: 0.1\n', "power",
                 r"lr_policy 'inv' needs power \(it needs gamma, power\)",
                 id="inv-no-power"),
    pytest.param(BASE + 'lr_policy: "inv"\npower: 0.75\n', "gamma",
                 r"lr_policy 'inv' needs gamma", id="inv-no-gamma"),
    pytest.param(BASE + 'lr_policy: "sigmoid"\nstepsize: 5\n', "gamma",
                 r"lr_policy 'sigmoid' needs gamma", id="sigmoid-no-gamma"),
    pytest.param(BASE + 'lr_policy: "exp"\n', "gamma",
                 r"lr_policy 'exp' needs gamma", id="exp-no-gamma"),
    pytest.param(BASE + 'lr_policy: "poly"\n', "power",
                 r"lr_policy 'poly' needs power", id="poly-no-power"),
    pytest.param('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "poly"\npower: 1\n',
                 "max_iter", r"lr_policy 'poly' needs max_iter", id="poly-no-max-iter"),
    pytest.param(FIXED.replace("0.01", "-0.01"), "base_lr", r"must be >= 0, got -0.01",
                 id="negative-base-lr"),
    pytest.param(FIXED + "momentum: -0.9\n", "momentum", r"must be >= 0, got -0.9",
                 id="negative-momentum"),
    pytest.param(FIXED + "weight_decay: -1e-4\n", "weight_decay",
                 r"must be >= 0, got -0.0001", id="negative-weight-decay"),
    pytest.param(FIXED.replace("max_iter: 4", "max_iter: -1"), "max_iter",
                 r"must be >= 0, got -1", id="negative-max-iter"),
    pytest.param(FIXED + "iter_size: 0\n", "iter_size", r"must be >= 1, got 0",
                 id="iter-size"),
    pytest.param(FIXED + 'regularization_type: "L3"\n', "regularization_type",
                 r"'L3'; allowed: L1, L2", id="regularization"),
    pytest.param(FIXED.replace("net:", "train_net:") + "test_iter: 5\n"
                 "test_interval: 2\n", "test_iter",
                 r"1 value\(s\) given but there is no test net", id="test-iter-no-net"),
    pytest.param(FIXED + 'test_net: "net.prototxt"\ntest_interval: 2\n', "test_iter",
                 r"one value per test net needed: 0 value\(s\) for 1",
                 id="test-net-no-iter"),
    pytest.param(FIXED + "test_iter: 0\ntest_interval: 2\n", "test_iter",
                 r"entry 0 must be > 0, got 0", id="test-iter-zero"),
    pytest.param(FIXED + 'snapshot: 2\nsnapshot_prefix: "nowhere/x"\n',
                 "snapshot_prefix", r"'nowhere/x': folder 'nowhere' does not exist",
                 id="snapshot-folder"),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    return tmp_path


@pytest.mark.parametrize("text, field, rest", CASES)
def test_checked_when_loaded(workdir, monkeypatch, text, field, rest):
    (workdir / "solver.prototxt").write_text(text)
    pattern = ORIGIN + f"field '{field}': " + rest
    built = []
    monkeypatch.setattr(recaffe.net.Net, "__init__",
                        lambda *a, **k: built.append(1) or None)
    for load in (recaffe.get_solver, SGDSolver):
        with pytest.raises(SolverError) as info:
            load("solver.prototxt")
        assert re.search(pattern, str(info.value)), str(info.value)
    assert not built, "a net was built before the solver file was checked"


def test_valid_policies_load(workdir):
    for text in (FIXED, BASE + 'lr_policy: "step"\ngamma: 0.5\nstepsize: 2\n',
                 BASE + 'lr_policy: "multistep"\ngamma: 0.5\nstepvalue: 1\n'
                 "stepvalue: 1\nstepvalue: 3\n",
                 BASE + 'lr_policy: "inv"\ngamma: 0.1\npower: 0.75\n',
                 BASE + 'lr_policy: "poly"\npower: 0.5\n',
                 BASE + 'lr_policy: "sigmoid"\ngamma: 0.1\nstepsize: 2\n',
                 FIXED + "test_iter: 1\ntest_interval: 2\n"):
        (workdir / "solver.prototxt").write_text(text)
        recaffe.get_solver("solver.prototxt").step(1)


def test_solver_parameter_object_is_checked():
    from recaffe.proto import caffe_pb2

    p = caffe_pb2.SolverParameter(base_lr=0.1, lr_policy="stepz")
    with pytest.raises(SolverError, match=r"^SolverParameter: field 'lr_policy': "
                                          r"'stepz'; allowed: fixed"):
        SGDSolver(p)


def test_train_cli_one_line(workdir, capsys):
    (workdir / "solver.prototxt").write_text(BASE + 'lr_policy: "stepz"\n')
    assert cli_main(["train", "-solver", "solver.prototxt"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("recaffe: error: solver file 'solver.prototxt': field "
                       "'lr_policy': 'stepz'; allowed: fixed, step, exp, inv, "
                       "multistep, poly, sigmoid")
