"""The solver loop: iter_size, clipping, regularisation, callbacks, testing,
smoothed loss, actions, divergence, construction rules and errors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from solver_test_util import LogCapture, data_source, net_text, solver_param

from recaffe.backend import dtype_scope
from recaffe.errors import DivergenceError, SolverError
from recaffe.io.prototxt import parse_prototxt
from recaffe.net import Net
from recaffe.proto import caffe_pb2
from recaffe.solvers import (
    AdaDeltaSolver,
    AdaGradSolver,
    AdamSolver,
    NesterovSolver,
    RMSPropSolver,
    SGDSolver,
    get_solver,
)

BASE = 'base_lr: 0.1 momentum: 0.9 lr_policy: "fixed" max_iter: 10 random_seed: 5 '


def test_iter_size_equals_bigger_batch():
    with dtype_scope(np.float64):
        a = SGDSolver(solver_param(BASE + "iter_size: 3", batch=2, pool=6))
        b = SGDSolver(solver_param(BASE, batch=6, pool=6))
        for _ in range(4):
            a.step(1)
            b.step(1)
            np.testing.assert_allclose(a.smoothed_loss, b.smoothed_loss, rtol=1e-12)
        for j in range(2):
            np.testing.assert_allclose(a.net.params["ip"][j].data,
                                       b.net.params["ip"][j].data, rtol=1e-10,
                                       atol=1e-14)


def test_clip_gradients_scales_and_logs():
    s = SGDSolver(solver_param(BASE + "clip_gradients: 0.01"))
    s.net.forward_prefilled()
    s.net.clear_param_diffs()
    s.net.backward_all()
    norm = np.sqrt(sum((b.diff.astype(np.float64) ** 2).sum()
                       for b in s.net.learnable_params))
    assert norm > 0.01
    diffs = [b.diff.copy() for b in s.net.learnable_params]
    with LogCapture() as log:
        s.clip_gradients()
    assert "Gradient clipping: scaling down gradients (L2 norm" in log.text
    assert "> 0.01) by scale factor" in log.text
    for d, b in zip(diffs, s.net.learnable_params, strict=True):
        np.testing.assert_allclose(b.diff, d * (0.01 / norm), rtol=1e-5)


@pytest.mark.parametrize("reg", ["L1", "L2"])
def test_regularization_through_apply_update(reg):
    s = SGDSolver(solver_param(
        f'base_lr: 0.5 lr_policy: "fixed" weight_decay: 0.1 '
        f'regularization_type: "{reg}"'
        ' max_iter: 5'))
    w = s.net.params["ip"][0].data.copy()
    b = s.net.params["ip"][1].data.copy()
    s.net.params["ip"][0].data[0, 0] = 0.0
    w[0, 0] = 0.0
    s.net.clear_param_diffs()
    s.apply_update()
    assert s.iter == 1
    reg_term = np.sign(w) if reg == "L1" else w
    np.testing.assert_allclose(s.net.params["ip"][0].data,
                               w - 0.5 * 0.1 * reg_term, rtol=1e-6)
    assert s.net.params["ip"][0].data[0, 0] == 0.0
    # decay_mult 0 on the bias: untouched.
    np.testing.assert_array_equal(s.net.params["ip"][1].data, b)


def test_unknown_regularization_type():
    # Found when the solver is built, before any iteration.
    with pytest.raises(SolverError,
                       match="'regularization_type': 'L3'; allowed: L1, L2"):
        SGDSolver(solver_param(BASE + 'weight_decay: 0.1 regularization_type: "L3"'))


def test_callbacks_and_lr_property():
    s = SGDSolver(solver_param(BASE))
    seen = []
    s.add_callback(lambda: seen.append(("start", s.iter)),
                   lambda: seen.append(("ready", s.iter)))
    s.step(2)
    assert seen == [("start", 0), ("ready", 0), ("start", 1), ("ready", 1)]
    assert s.lr == pytest.approx(0.1)
    s.param.base_lr = 0.5
    assert s.lr == 0.5


def test_smoothed_loss_window():
    s = SGDSolver(solver_param(BASE + "average_loss: 3", batch=2, pool=8))
    losses = []
    s.add_callback(None, lambda: losses.append(float(s.net.blobs["loss"].data)))
    s.step(5)
    assert s.smoothed_loss == pytest.approx(np.mean(losses[-3:]), rel=1e-5)


def test_display_log_lines_and_solve():
    s = SGDSolver(solver_param(BASE + "display: 2 max_iter: 4 snapshot_after_train: "
                               "false", name="shown"))
    with LogCapture() as log:
        s.solve()
    text = log.text
    assert "Solving shown" in log.messages
    assert "Learning Rate Policy: fixed" in log.messages
    assert any(m.startswith("Iteration 0 (") and "iter/s, " in m
               and "s/2 iters), loss = " in m for m in log.messages)
    assert any(m.startswith("    Train net output #0: loss = ") and
               m.endswith(" loss)") and "(* 1 = " in m for m in log.messages)
    assert "Iteration 2, lr = 0.1" in log.messages
    assert any(m.startswith("Iteration 4, loss = ") for m in log.messages)
    assert log.messages[-1] == "Optimization Done."
    assert "Snapshotting" not in text
    assert s.iter == 4


def test_test_nets_states_and_outputs():
    net = f"""
name: "staged"
state {{ stage: "from_file" }}
layer {{ name: "data" type: "HDF5Data" top: "x" top: "t"
  hdf5_data_param {{ source: "{data_source()}" batch_size: 4 }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param {{ num_output: 2
    weight_filler {{ type: "gaussian" std: 0.3 }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }}
layer {{ name: "loss_b" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss_b"
  loss_weight: 2 include {{ phase: TEST stage: "extra" }} }}
layer {{ name: "loss_c" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss_c"
  include {{ phase: TRAIN stage: "from_file" stage: "trainstage" }} }}
"""
    p = solver_param(BASE + """test_iter: 2 test_iter: 3 test_interval: 100
        test_compute_loss: true train_state { stage: "trainstage" }
        test_state { stage: "extra" } test_state { level: 1 }""", net=net)
    s = get_solver(p)
    assert len(s.test_nets) == 2
    assert s.net.phase == caffe_pb2.TRAIN
    assert "loss_c" in s.net.outputs
    assert s.test_nets[0].outputs == ["loss", "loss_b"]
    assert s.test_nets[1].outputs == ["loss"]
    assert list(s.test_nets[0].param.state.stage) == ["from_file", "extra"]
    assert s.test_nets[1].param.state.level == 1
    with LogCapture() as log:
        s.test(0)
    assert log.messages[0] == "Iteration 0, Testing net (#0)"
    assert log.messages[1].startswith("Test loss: ")
    assert log.messages[2].startswith("    Test net output #0: loss = ")
    assert log.messages[3].startswith("    Test net output #1: loss_b = ")
    assert "(* 2 = " in log.messages[3]
    # Test nets see the train net's weights.
    s.net.params["ip"][0].data[...] = 0.25
    s.test(1)
    np.testing.assert_array_equal(s.test_nets[1].params["ip"][0].data, 0.25)


def test_test_callbacks_get_the_logged_means():
    p = solver_param(BASE + "test_iter: 2 test_interval: 100")
    s = get_solver(p)
    seen = []
    s.add_test_callback(lambda k, outputs: seen.append((k, s.iter, outputs)))
    with LogCapture() as log:
        s.test(0)
    assert len(seen) == 1
    k, it, outputs = seen[0]
    assert (k, it) == (0, 0)
    assert [name for name, _ in outputs] == ["loss"]
    logged = float(log.messages[-1].split(" = ")[1].split()[0])
    assert outputs[0][1] == pytest.approx(logged, rel=1e-5)


def test_test_interval_runs_tests_and_initialization_flag():
    p = solver_param(BASE + "test_iter: 1 test_interval: 2 test_initialization: false")
    s = get_solver(p)
    with LogCapture() as log:
        s.step(5)
    tests = [m for m in log.messages if "Testing net" in m]
    assert tests == ["Iteration 2, Testing net (#0)", "Iteration 4, Testing net (#0)"]


def test_action_request_stop_and_snapshot(tmp_path):
    prefix = tmp_path / "snap"
    s = get_solver(solver_param(BASE + f'snapshot_prefix: "{prefix}"'))
    calls = iter(["none", "snapshot", "stop"])
    s.action_request = lambda: next(calls)
    with LogCapture() as log:
        s.solve()
    assert s.iter == 3
    assert "Optimization stopped early." in log.messages
    assert (tmp_path / "snap_iter_2.solverstate").exists()
    assert (tmp_path / "snap_iter_3.caffemodel").exists()  # snapshot_after_train
    s.action_request = lambda: "explode"
    with pytest.raises(SolverError, match="explode"):
        s.step(1)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_names_iteration_and_layer(tmp_path):
    prefix = tmp_path / "div"
    s = get_solver(solver_param('base_lr: 1e30 lr_policy: "fixed" max_iter: 50 '
                                f'snapshot_prefix: "{prefix}"'))
    with pytest.raises(DivergenceError, match=r"iteration 1\b.*layer 'loss'"):
        s.solve()
    assert not list(tmp_path.iterdir())
    s.net.params["ip"][0].data[0, 0] = np.nan
    with pytest.raises(DivergenceError, match="refusing to snapshot"):
        s.snapshot()
    assert not list(tmp_path.iterdir())
    s.check_finite = False
    s.step(1)  # no check


def test_weights_field_loads_into_all_nets(tmp_path):
    src = SGDSolver(solver_param(BASE + "random_seed: 11"))
    model = str(tmp_path / "w.caffemodel")
    src.net.save(model)
    p = solver_param(BASE + f'random_seed: 12 weights: "{model}" test_iter: 1 '
                     'test_interval: 10')
    s = SGDSolver(p)
    for net in (s.net, s.test_nets[0]):
        np.testing.assert_array_equal(net.params["ip"][0].data,
                                      src.net.params["ip"][0].data)


def test_random_seed_reproducible():
    a = SGDSolver(solver_param(BASE + "random_seed: 7"))
    b = SGDSolver(solver_param(BASE + "random_seed: 7"))
    np.testing.assert_array_equal(a.net.params["ip"][0].data,
                                  b.net.params["ip"][0].data)


def test_share_weights():
    s = SGDSolver(solver_param(BASE))
    other = Net(parse_prototxt(net_text(), caffe_pb2.NetParameter), caffe_pb2.TEST)
    s.share_weights(other)
    s.step(1)
    np.testing.assert_array_equal(other.params["ip"][0].data,
                                  s.net.params["ip"][0].data)


def test_solver_from_path_resolves_net_against_cwd(tmp_path, monkeypatch):
    (tmp_path / "n.prototxt").write_text(net_text())
    (tmp_path / "s.prototxt").write_text(BASE + 'net: "n.prototxt" type: "Adam"')
    monkeypatch.chdir(tmp_path)
    s = get_solver("s.prototxt")
    assert isinstance(s, AdamSolver)
    assert s.param.snapshot_prefix == "s"
    assert len(s.history) == 4
    s.solve()
    assert (tmp_path / "s_iter_10.solverstate").exists()
    # A class fixes the rule whatever the file says.
    assert type(NesterovSolver("s.prototxt")) is NesterovSolver


@pytest.mark.parametrize("cls, text, match", [
    (AdaGradSolver, "momentum: 0.9", "Momentum cannot be used with AdaGrad"),
    (RMSPropSolver, "momentum: 0.9", "Momentum cannot be used with RMSProp"),
    (RMSPropSolver, "rms_decay: 1.0", "rms_decay should lie between 0 and 1"),
    (RMSPropSolver, "rms_decay: -0.1", "rms_decay should lie between 0 and 1"),
    (SGDSolver, "average_loss: 0", "'average_loss': must be >= 1"),
    (SGDSolver, "test_iter: 1", "test_interval > 0"),
    (SGDSolver, ("test_iter: 1 test_interval: 5 test_state { stage: 'a' } "
                "test_state { stage: 'b' }"), "'test_state': give none or one per"),
    (SGDSolver, 'snapshot: 5 snapshot_prefix: "/nonexistent/dir/x"',
     "'/nonexistent/dir/x': folder '/nonexistent/dir' does not exist"),
    (AdaDeltaSolver, 'train_net: "a.prototxt"', "must not contain more than one"),
])
def test_construction_errors(cls, text, match):
    with pytest.raises(SolverError, match=match):
        cls(solver_param(BASE.replace("momentum: 0.9 ", "") + text))


def test_no_train_net_and_test_iter_mismatch():
    p = parse_prototxt(BASE, caffe_pb2.SolverParameter)
    with pytest.raises(SolverError, match="must specify a train net"):
        SGDSolver(p)
    p = solver_param(BASE)
    p.ClearField("net_param")
    p.train_net_param.CopyFrom(parse_prototxt(net_text(), caffe_pb2.NetParameter))
    p.test_iter.append(3)
    p.test_interval = 5
    with pytest.raises(SolverError, match=r"'test_iter': 1 value\(s\) given but there "
                       r"is no test net"):
        SGDSolver(p)


def test_get_solver_unknown_type(tmp_path):
    path = tmp_path / "s.prototxt"
    path.write_text('type: "Momentumless" base_lr: 0.1')
    with pytest.raises(SolverError, match=r"unknown solver type 'Momentumless'; known "
                       r"types: SGD, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam"):
        get_solver(str(path))


def test_legacy_solver_type_enum(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "n.prototxt").write_text(net_text())
    (tmp_path / "s.prototxt").write_text(BASE.replace("momentum: 0.9 ", "") +
                                         'net: "n.prototxt" solver_type: ADAGRAD')
    assert isinstance(get_solver("s.prototxt"), AdaGradSolver)
    assert os.path.exists("n.prototxt")
