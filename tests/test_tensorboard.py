"""TensorBoard curves: the event files read back equal the training log, a
resumed run continues the curves without duplicates, histograms are written
every K iterations, and the pycaffe-level logger works on any solver."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("tensorboardX")

import recaffe  # noqa: E402
from recaffe.cli.__main__ import main as cli_main  # noqa: E402
from recaffe.tensorboard import (  # noqa: E402
    TensorBoardLogger,
    read_histogram_tags,
    read_scalars,
)

NET = """
name: "tiny"
layer { name: "data" type: "DummyData" top: "x" top: "t"
  dummy_data_param { shape { dim: 8 dim: 5 } shape { dim: 8 dim: 2 }
                     data_filler { type: "gaussian" std: 1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""

SOLVER = """
net: "{net}"
base_lr: 0.05
lr_policy: "step"
gamma: 0.5
stepsize: 7
momentum: 0.9
display: 3
average_loss: 4
max_iter: {max_iter}
test_interval: 10
test_iter: 2
snapshot: 12
snapshot_prefix: "{prefix}"
random_seed: 3
"""

_DISPLAY = re.compile(r"Iteration (\d+) \([^)]*\), loss = (\S+)")
_TRAIN_OUT = re.compile(r"Train net output #0: loss = (\S+)")
_LR = re.compile(r"Iteration (\d+), lr = (\S+)")
_TEST_AT = re.compile(r"Iteration (\d+), Testing net")
_TEST_OUT = re.compile(r"Test net output #0: loss = (\S+)")


def _log_values(text: str):
    """(smoothed loss, train output, lr, test output) by iteration, from a log."""
    smoothed, train, lr, test = {}, {}, {}, {}
    it = None
    test_it = None
    for line in text.splitlines():
        if m := _DISPLAY.search(line):
            it = int(m.group(1))
            smoothed[it] = float(m.group(2))
        elif m := _TRAIN_OUT.search(line):
            train[it] = float(m.group(1))
        elif m := _LR.search(line):
            lr[int(m.group(1))] = float(m.group(2))
        elif m := _TEST_AT.search(line):
            test_it = int(m.group(1))
        elif m := _TEST_OUT.search(line):
            test[test_it] = float(m.group(1))
    return smoothed, train, lr, test


def _setup(tmp_path, max_iter):
    net = tmp_path / "net.prototxt"
    net.write_text(NET)
    solver = tmp_path / f"solver_{max_iter}.prototxt"
    solver.write_text(SOLVER.format(net=net, max_iter=max_iter,
                                    prefix=tmp_path / "snap"))
    return solver


def _train(tmp_path, solver, board, log, *extra):
    rc = cli_main(["train", "-solver", str(solver), "-tensorboard", str(board),
                   "-log_file", str(log), *extra])
    assert rc == 0


def _check_against_log(curves, log_text, since=0):
    smoothed, train, lr, test = _log_values(log_text)
    assert smoothed and train and lr and test
    for tag, want in (("train/smoothed_loss", smoothed), ("train/loss", train),
                      ("test0/loss", test)):
        got = dict(curves[tag])
        for step, value in want.items():
            if step >= since:
                assert got[step] == pytest.approx(value, rel=2e-5, abs=1e-7), (tag,
                                                                              step)
    got_lr = dict(curves["train/lr"])
    for step, value in lr.items():
        if step in got_lr:
            assert got_lr[step] == pytest.approx(value, rel=1e-5)
    return smoothed, test


def test_train_curves_match_the_log_and_resume_continues(tmp_path):
    board = tmp_path / "board"
    solver = _setup(tmp_path, 16)
    log1 = tmp_path / "run1.log"
    _train(tmp_path, solver, board, log1)
    curves = read_scalars(board)
    smoothed, _ = _check_against_log(curves, log1.read_text())
    assert [s for s, _ in curves["train/smoothed_loss"]] == sorted(smoothed)
    assert [s for s, _ in curves["test0/loss"]] == [0, 10]
    assert {s for s, _ in curves["train/lr"]} == {0, 3, 6, 9, 12, 15}
    assert dict(curves["train/lr"])[9] == pytest.approx(0.025)
    assert all(v > 0 for _, v in curves["train/iters_per_sec"])

    # Resume from the iteration-12 snapshot and train to 24: the points the
    # first run wrote from step 12 on are replaced, none duplicated.
    solver2 = _setup(tmp_path, 24)
    log2 = tmp_path / "run2.log"
    _train(tmp_path, solver2, board, log2, "-snapshot",
           str(tmp_path / "snap_iter_12.solverstate"))
    curves = read_scalars(board)
    for tag, points in curves.items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), (tag, steps)
    steps = [s for s, _ in curves["train/smoothed_loss"]]
    assert steps == [0, 3, 6, 9, 12, 15, 18, 21]
    assert [s for s, _ in curves["test0/loss"]] == [0, 10, 20]
    # Steps before 12 come from the first run, the rest from the second.
    first = dict(curves["train/smoothed_loss"])
    s1, _, _, _ = _log_values(log1.read_text())
    for step in (0, 3, 6, 9):
        assert first[step] == pytest.approx(s1[step], rel=2e-5)
    _check_against_log(curves, log2.read_text(), since=12)


def test_histograms_every_k_iterations(tmp_path):
    board = tmp_path / "board"
    solver = _setup(tmp_path, 9)
    _train(tmp_path, solver, board, tmp_path / "run.log",
           "-tensorboard_histograms", "4")
    tags = read_histogram_tags(board)
    assert set(tags) == {"params/fc/0", "params/fc/1", "grads/fc/0", "grads/fc/1"}
    assert all(steps == [0, 4, 8] for steps in tags.values())


def test_pycaffe_level_logger(tmp_path):
    solver = recaffe.get_solver(str(_setup(tmp_path, 6)))
    with TensorBoardLogger(tmp_path / "board").attach(solver) as board:
        solver.step(6)
        assert board.writer is not None
    curves = read_scalars(tmp_path / "board")
    assert [s for s, _ in curves["train/loss"]] == [0, 3]
    assert np.isfinite(dict(curves["train/loss"])[3])
    assert [s for s, _ in curves["test0/loss"]] == [0]


def test_bad_histogram_interval(tmp_path):
    with pytest.raises(recaffe.errors.RecaffeError, match="must be >= 0"):
        TensorBoardLogger(tmp_path, histogram_interval=-1)
