"""Helpers for the CLI tests: tiny net/solver files, ``python -m recaffe``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOLVER_TESTS = HERE.parent / "solvers"
REPO = HERE.parents[1]
if str(SOLVER_TESTS) not in sys.path:
    sys.path.insert(0, str(SOLVER_TESTS))

from solver_test_util import net_text  # noqa: E402 - needs SOLVER_TESTS on sys.path

SOLVER = """net: "net.prototxt"
base_lr: 0.1
momentum: 0.9
lr_policy: "fixed"
max_iter: {max_iter}
display: {display}
test_iter: 2
test_interval: {test_interval}
snapshot_prefix: "snap"
random_seed: 1
"""

def write_files(d: Path, max_iter=20, display=5, test_interval=10) -> None:
    (d / "net.prototxt").write_text(net_text(batch=4, pool=8, name="clinet",
                                             directory=d))
    (d / "solver.prototxt").write_text(
        SOLVER.format(max_iter=max_iter, display=display, test_interval=test_interval))


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO)] + (
        [e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    return e


def popen(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "recaffe", *args], cwd=cwd,
                            env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
