"""recaffe.tools.script: the helpers the example scripts share."""

from __future__ import annotations

import pytest

from recaffe.errors import DataError
from recaffe.tools.script import last_test_output, plot_curve, run_main

LOG = """I1128 20:10:22.000000 1 solver.py:1] Solving net
I1128 20:10:22.100000 1 solver.py:2] Iteration 0, Testing net (#0)
I1128 20:10:22.200000 1 solver.py:3]     Test net output #0: accuracy = 0.5
I1128 20:10:22.300000 1 solver.py:4]     Test net output #1: loss = 2.1 (* 1 = 2.1 loss)
I1128 20:10:23.100000 1 solver.py:5] Iteration 100, Testing net (#0)
I1128 20:10:23.200000 1 solver.py:6]     Test net output #0: accuracy = 0.875
I1128 20:10:23.300000 1 solver.py:7]     Test net output #1: loss = 0.4 (* 1 = 0.4 loss)
"""


def test_last_test_output(tmp_path):
    log = tmp_path / "x.log"
    log.write_text(LOG)
    assert last_test_output(str(log), "accuracy") == 0.875
    assert last_test_output(str(log), "loss") == 0.4
    assert last_test_output(str(log), "missing") is None


def test_run_main_turns_errors_into_one_line(capsys):
    def bad():
        raise DataError("source list 'x.txt' not found")

    with pytest.raises(SystemExit) as e:
        run_main(bad, "demo")
    assert e.value.code == 1
    assert capsys.readouterr().err == "demo: source list 'x.txt' not found\n"
    with pytest.raises(SystemExit) as e:
        run_main(lambda: 0, "demo")
    assert e.value.code == 0


def test_plot_curve_writes_png_or_says_why(tmp_path, capsys):
    log = tmp_path / "x.log"
    log.write_text(LOG)
    png = tmp_path / "c.png"
    ok = plot_curve(str(log), str(png), "demo")
    out = capsys.readouterr().out
    if ok:
        assert png.read_bytes()[:4] == b"\x89PNG" and "loss curve:" in out
    else:
        assert out.startswith("demo: no loss-curve PNG:")
