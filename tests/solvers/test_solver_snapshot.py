"""Snapshots: file names and contents, and snapshot -> restore -> continue being
bitwise equal to an uninterrupted run, for every solver type and both formats."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from solver_test_util import solver_param

from recaffe.errors import SolverError
from recaffe.io.caffemodel import read_net_param_binary
from recaffe.io.solverstate import read_solverstate
from recaffe.proto import caffe_pb2
from recaffe.solvers import SOLVER_TYPES, get_solver

RULES = {
    "SGD": "momentum: 0.9 weight_decay: 0.01",
    "Nesterov": "momentum: 0.9",
    "AdaGrad": "",
    "RMSProp": "rms_decay: 0.9",
    "AdaDelta": "momentum: 0.95 base_lr: 1.0",
    "Adam": "momentum: 0.9 momentum2: 0.999",
}


def _param(kind, fmt, prefix, extra=""):
    return solver_param(
        f'type: "{kind}" base_lr: 0.05 lr_policy: "multistep" gamma: 0.5 '
        f"stepvalue: 2 stepvalue: 4 max_iter: 8 random_seed: 21 "
        f'snapshot_prefix: "{prefix}" snapshot_format: {fmt} {RULES[kind]} {extra}')


def _weights(solver):
    return [b.data.copy() for b in solver.net.learnable_params]


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
@pytest.mark.parametrize("kind", sorted(SOLVER_TYPES))
def test_restore_continues_bitwise(kind, fmt, tmp_path):
    prefix = tmp_path / "run"
    full = get_solver(_param(kind, fmt, tmp_path / "full"))
    full.step(6)

    first = get_solver(_param(kind, fmt, prefix))
    first.step(3)
    state_path = first.snapshot()
    ext = ".solverstate.h5" if fmt == "HDF5" else ".solverstate"
    assert state_path == f"{prefix}_iter_3{ext}"

    second = get_solver(_param(kind, fmt, prefix, extra="random_seed: 99"))
    second.restore(state_path)
    assert second.iter == 3
    assert second.current_step == first.current_step == 1
    second.step(3)
    assert second.iter == 6
    for a, b in zip(_weights(full), _weights(second), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(full.history, second.history, strict=True):
        np.testing.assert_array_equal(a, b)


def test_binary_files_content(tmp_path):
    s = get_solver(_param("Adam", "BINARYPROTO", tmp_path / "a",
                          extra="snapshot: 2 snapshot_diff: true"))
    s.step(2)
    model = read_net_param_binary(str(tmp_path / "a_iter_2.caffemodel"))
    ip = next(lp for lp in model.layer if lp.name == "ip")
    assert len(ip.blobs) == 2 and len(ip.blobs[0].diff) == 6
    msg = caffe_pb2.SolverState()
    msg.ParseFromString((tmp_path / "a_iter_2.solverstate").read_bytes())
    assert msg.iter == 2
    assert msg.learned_net == f"{tmp_path / 'a'}_iter_2.caffemodel"
    assert len(msg.history) == 4
    assert list(msg.history[0].shape.dim) == [2, 3]


def test_hdf5_files_content(tmp_path):
    s = get_solver(_param("SGD", "HDF5", tmp_path / "h", extra="snapshot: 2"))
    s.step(2)
    with h5py.File(tmp_path / "h_iter_2.solverstate.h5", "r") as f:
        assert list(f["iter"]) == [2]
        assert f["learned_net"][()].decode() == f"{tmp_path / 'h'}_iter_2.caffemodel.h5"
        assert sorted(f["history"]) == ["0", "1"]
        assert list(f["current_step"]) == [0]  # stepvalue 2 is reached at iter 2
    with h5py.File(tmp_path / "h_iter_2.caffemodel.h5", "r") as f:
        assert sorted(f["data/ip"]) == ["0", "1"]


def test_restore_wrong_solver_type_names_file_and_type(tmp_path):
    s = get_solver(_param("SGD", "BINARYPROTO", tmp_path / "s"))
    s.step(1)
    path = s.snapshot()
    adam = get_solver(_param("Adam", "BINARYPROTO", tmp_path / "s"))
    with pytest.raises(SolverError, match=rf"{path}: .*2 history blobs.*Adam solver"):
        adam.restore(path)
    with pytest.raises(SolverError, match="not found"):
        adam.restore(str(tmp_path / "missing.solverstate"))


def test_restore_finds_model_next_to_state(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    s = get_solver(_param("SGD", "BINARYPROTO", "rel"))
    s.step(2)
    s.snapshot()
    weights = _weights(s)
    monkeypatch.chdir(tmp_path)
    t = get_solver(_param("SGD", "BINARYPROTO", "other"))
    t.restore(str(run / "rel_iter_2.solverstate"))
    for a, b in zip(weights, _weights(t), strict=True):
        np.testing.assert_array_equal(a, b)
    assert read_solverstate(run / "rel_iter_2.solverstate").learned_net == \
        "rel_iter_2.caffemodel"
