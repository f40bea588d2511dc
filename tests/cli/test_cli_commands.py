"""recaffe train/test/time/device_query/parse-log/plot through main(argv)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest
from cli_test_util import REPO, write_files

from recaffe.cli.__main__ import COMMANDS, main
from recaffe.cli.common import normalize_gflags
from recaffe.cli.progress import ProgressLine


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    write_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _lines(path):
    return [ln.split("] ", 1)[1] for ln in path.read_text().splitlines() if "] " in ln]


def test_normalize_gflags():
    assert normalize_gflags(["-solver", "s", "-weights=w", "--gpu=0", "--level", "2",
                             "-o", "x", "-1", "--", "-keep"]) == [
        "--solver", "s", "--weights=w", "--gpu=0", "--level", "2", "-o", "x", "-1",
        "--", "-keep"]


def test_train_then_test_then_time(workdir, capsys):
    assert main(["train", "-solver", "solver.prototxt", "-log_file=train.log"]) == 0
    assert (workdir / "snap_iter_20.caffemodel").exists()
    assert (workdir / "snap_iter_20.solverstate").exists()
    msgs = _lines(workdir / "train.log")
    assert "Solving clinet" in msgs
    assert any(m.startswith("Iteration 5 (") for m in msgs)
    assert "Iteration 10, Testing net (#0)" in msgs
    assert msgs.count("Optimization Done.") == 2
    # Nothing but log lines on stderr when it is not a terminal.
    err = capsys.readouterr().err
    assert "\r" not in err

    assert main(["test", "--model", "net.prototxt", "--weights",
                 "snap_iter_20.caffemodel", "-iterations", "3",
                 "-log_file", "test.log"]) == 0
    msgs = _lines(workdir / "test.log")
    assert [m for m in msgs if m.startswith("Batch ")][:2] == [
        m for m in msgs if m.startswith(("Batch 0, loss = ", "Batch 1, loss = "))]
    assert sum(m.startswith("Batch ") for m in msgs) == 3
    assert any(m.startswith("Loss: ") for m in msgs)
    assert any(m.startswith("loss = ") and m.endswith(" loss)") for m in msgs)

    assert main(["time", "-model=net.prototxt", "-iterations", "2",
                 "-log_file", "time.log"]) == 0
    msgs = _lines(workdir / "time.log")
    assert "*** Benchmark begins ***" in msgs and "*** Benchmark ends ***" in msgs
    assert any(m.startswith("Iteration: 2 forward-backward time: ") for m in msgs)
    assert any(m.startswith("        ip\tforward: ") and m.endswith(" ms.")
               for m in msgs)
    assert any(m.startswith("      loss\tbackward: ") for m in msgs)
    for k in ("Average Forward pass: ", "Average Backward pass: ",
              "Average Forward-Backward: ", "Total Time: "):
        assert any(m.startswith(k) for m in msgs), k


def test_train_resume_and_overrides(workdir):
    assert main(["train", "-solver", "solver.prototxt", "-iterations", "10"]) == 0
    assert (workdir / "snap_iter_10.solverstate").exists()
    assert main(["train", "-solver", "solver.prototxt", "-snapshot",
                 "snap_iter_10.solverstate", "-log_file", "r.log"]) == 0
    assert (workdir / "snap_iter_20.solverstate").exists()
    assert "Resuming from snap_iter_10.solverstate" in _lines(workdir / "r.log")
    assert main(["train", "-solver", "solver.prototxt", "-weights",
                 "snap_iter_20.caffemodel", "-iterations", "1", "-log_file",
                 "w.log"]) == 0
    assert "Finetuning from snap_iter_20.caffemodel" in _lines(workdir / "w.log")


@pytest.mark.parametrize("argv, match", [
    (["train"], "Need a solver definition"),
    (["train", "-solver", "s", "-weights", "w", "-snapshot", "x"], "not both"),
    (["train", "-solver", "missing.prototxt"], "missing.prototxt"),
    (["train", "-solver", "solver.prototxt", "-sigint_effect", "explode"],
     "invalid choice"),
    (["test", "-model", "net.prototxt"], "Need model weights"),
    (["test", "-model", "net.prototxt", "-weights", "nope.caffemodel"],
     "nope.caffemodel"),
    (["time"], "Need a model definition"),
    (["time", "-model", "net.prototxt", "-phase", "VALIDATE"], "TRAIN or TEST"),
    (["parse-log", "nothing.log"], "nothing.log"),
])
def test_errors_are_one_line(workdir, capsys, argv, match):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("recaffe: error: ")
    assert match in err[-1]


def test_usage_and_unknown_command(capsys):
    assert main([]) == 1
    assert "train" in capsys.readouterr().err
    assert main(["frobnicate"]) == 1
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err
    for c in COMMANDS:
        assert c in err
    assert main(["--help"]) == 0


def test_device_query(capsys, tmp_path):
    assert main(["device_query", "-log_file", str(tmp_path / "d.log")]) == 0
    msgs = _lines(tmp_path / "d.log")
    assert any(m.startswith("Backend: cpu") for m in msgs)
    assert any(m.startswith("BLAS: ") for m in msgs)
    assert any(m.startswith("oneDNN: ") for m in msgs)
    assert any(m.startswith("CPU count: ") for m in msgs)


def test_parse_log_columns(workdir, capsys):
    assert main(["train", "-solver", "solver.prototxt", "-log_file", "train.log"]) == 0
    out = workdir / "csv"
    out.mkdir()
    assert main(["parse-log", "train.log", "-o", str(out)]) == 0
    with open(out / "train.log.train.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["NumIters", "Seconds", "LearningRate", "loss"]
    assert [float(r["NumIters"]) for r in rows] == [0, 5, 10, 15]
    assert all(float(r["LearningRate"]) == pytest.approx(0.1) for r in rows)
    assert all(float(r["Seconds"]) >= 0 for r in rows)
    with open(out / "train.log.test.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["NumIters"]) for r in rows] == [0, 10, 20]


CAFFE_LOG = (
    "I0210 13:39:20.000000 25210 caffe.cpp:1] Starting",
    "I0210 13:39:22.000000 25210 solver.cpp:1] Solving LeNet",
    ("I0210 13:39:22.100000 25210 solver.cpp:2] "
    "Iteration 0, Testing net (#0)"),
    ("I0210 13:39:22.200000 25210 solver.cpp:3] "
    "    Test net output #0: accuracy = 0.1"),
    ("I0210 13:39:22.200000 25210 solver.cpp:3] "
    "    Test net output #1: loss = 2.3 (* 1 = 2.3 loss)"),
    ("I0210 13:39:22.300000 25210 solver.cpp:4] "
    "Iteration 0 (0 iter/s, 0.1s/100 iters), loss = 2.3"),
    ("I0210 13:39:22.300000 25210 solver.cpp:5] "
    "    Train net output #0: loss = 2.3 (* 1 = 2.3 loss)"),
    "I0210 13:39:22.300000 25210 sgd_solver.cpp:6] Iteration 0, lr = 0.01",
    "",
    "garbage",
    ("I0210 13:39:24.500000 25210 solver.cpp:4] "
    "Iteration 100 (50 iter/s, 2s/100 iters), loss = 0.5"),
    ("I0210 13:39:24.500000 25210 solver.cpp:5] "
    "    Train net output #0: loss = 0.4 (* 1 = 0.4 loss)"),
    ("I0210 13:39:24.500000 25210 sgd_solver.cpp:6] "
    "Iteration 100, lr = 0.00992565"),
    ("I0210 13:39:26.000000 25210 solver.cpp:4] "
    "Iteration 200 (50 iter/s, 2s/100 iters), loss = 0.3"),
    ("I0210 13:39:26.000000 25210 solver.cpp:5] "
    "    Train net output #0: loss = 0.2 (* 1 = 0.2 loss)"),
)


def test_parse_log_caffe_quirks(tmp_path):
    log = tmp_path / "caffe.log"
    log.write_text("\n".join(CAFFE_LOG) + "\n")
    from recaffe.cli.parse_log import parse_log

    train, test = parse_log(str(log))
    assert [r["NumIters"] for r in train] == [0.0, 100.0, 200.0]
    assert [r["loss"] for r in train] == [2.3, 0.4, 0.2]
    assert train[0]["Seconds"] == pytest.approx(0.3)
    # A row's rate is the last "lr = " seen when the row opened (the lr line
    # follows the outputs, so it lags one display); the first row's NaN is
    # backfilled from the second (Caffe's rules).
    assert [r["LearningRate"] for r in train] == [0.01, 0.01, 0.00992565]
    # A single test row is only pushed when a second one starts (Caffe's rule).
    assert test == []


def test_plot(workdir, capsys):
    assert main(["train", "-solver", "solver.prototxt", "-log_file", "train.log"]) == 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert main(["plot", "train.log", "-o", "c.png"]) == 1
        assert "needs matplotlib" in capsys.readouterr().err
        return
    assert main(["plot", "train.log", "-o", "c.png"]) == 0
    assert (workdir / "c.png").stat().st_size > 0


class _Tty(io.StringIO):
    def isatty(self):
        return True


class _FakeSolver:
    iter = 4
    smoothed_loss = 0.5
    last_lr = 0.01

    class param:
        max_iter = 10

    def add_callback(self, a, b):
        self.cb = b


def test_progress_line_only_on_tty():
    quiet = io.StringIO()
    p = ProgressLine(quiet, min_interval=0)
    s = _FakeSolver()
    p.attach(s)
    assert not hasattr(s, "cb")
    p.show("x")
    assert quiet.getvalue() == ""

    tty = _Tty()
    p = ProgressLine(tty, min_interval=0)
    p.attach(s)
    s.cb()
    text = tty.getvalue()
    assert text.startswith("\r") and "iter 5/10" in text and "loss 0.5" in text
    assert "lr 0.01" in text and "it/s" in text and "ETA" in text
    p.detach()
    assert tty.getvalue().endswith("\r\x1b[K")


def test_python_dash_m_recaffe():
    r = subprocess.run([sys.executable, "-m", "recaffe", "nonsense"], cwd=REPO,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1
    assert "unknown command 'nonsense'" in r.stderr
