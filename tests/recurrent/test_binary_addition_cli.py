"""The talk's example through the command line: `recaffe train` on the shipped
solver, then parse-log, plot and time on what it wrote."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples",
                       "binary_addition")


def _recaffe(*args, cwd):
    return subprocess.run([sys.executable, "-m", "recaffe", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_shipped_prototxt_is_what_train_py_exports(tmp_path):
    work = tmp_path / "examples" / "binary_addition"
    shutil.copytree(EXAMPLE, work)
    for name in ("train.prototxt", "test.prototxt"):
        (work / name).unlink()
    subprocess.run([sys.executable, str(work / "train.py"), "--export"], check=True,
                   cwd=tmp_path, timeout=120)
    for name in ("train.prototxt", "test.prototxt"):
        with open(os.path.join(EXAMPLE, name)) as f:
            assert (work / name).read_text() == f.read(), name


def test_recaffe_train_parse_log_plot_time(tmp_path):
    shutil.copytree(EXAMPLE, tmp_path / "examples" / "binary_addition")
    subprocess.run([sys.executable, "examples/binary_addition/data.py", "--train",
                    "2000", "--test", "1000"], check=True, cwd=tmp_path, timeout=120,
                   capture_output=True)
    run = _recaffe("train", "-solver", "examples/binary_addition/solver.prototxt",
                   "-iterations", "600", "-log_file", "train.log", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    log = (tmp_path / "train.log").read_text()
    assert "Optimization Done." in log
    assert (tmp_path / "binary_addition_work" / "binary_addition_iter_500.caffemodel"
            ).is_file()
    parsed = _recaffe("parse-log", "train.log", cwd=tmp_path)
    assert parsed.returncode == 0, parsed.stderr
    rows = (tmp_path / "train.log.test.csv").read_text().splitlines()
    assert rows[0] == "NumIters,Seconds,LearningRate,loss"
    losses = [float(r.split(",")[-1]) for r in rows[1:]]
    assert losses[-1] < 0.25 * losses[0], losses
    pytest.importorskip("matplotlib", reason="plotting needs the plot extra")
    plotted = _recaffe("plot", "train.log", "-o", "curves.png", cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    timed = _recaffe("time", "-model", "examples/binary_addition/train.prototxt",
                     "-iterations", "3", cwd=tmp_path)
    assert timed.returncode == 0, timed.stderr
    assert "Average Forward-Backward:" in timed.stderr
    assert "zX_t1\tforward:" in timed.stderr
    # ... and per step of the execution plan that training uses.
    assert "batched InnerProduct x9: zX_t1 .. zX_t9\tforward:" in timed.stderr
    assert "Plan Forward-Backward:" in timed.stderr
