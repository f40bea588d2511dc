"""A wheel built from the checkout, installed in a fresh virtual environment
outside the checkout, runs the main job: `recaffe train` on the binary-addition
solver shipped inside the package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kw)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to copy the tree")
def test_wheel_trains_binary_addition_outside_checkout(tmp_path):
    # Build from a copy of the tracked files, so the checkout is not touched.
    src = tmp_path / "src"
    files = _run(["git", "ls-files", "-z", "--cached", "--others",
                  "--exclude-standard"], cwd=REPO).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
          str(src)], timeout=600)
    (wheel,) = wheels.glob("recaffe-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], timeout=600)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    solver = _run([str(py), "-m", "recaffe.examples", "binary_addition"], cwd=work,
                  env=env, timeout=300).stdout.strip()
    assert solver == str(work / "binary_addition_work" / "solver.prototxt")
    train = _run([str(env_dir / "bin" / "recaffe"), "train", "-solver", solver],
                 cwd=work, env=env, timeout=600)
    losses = [float(x) for x in re.findall(r"Test net output #0: loss = ([\d.e+-]+)",
                                           train.stderr)]
    assert len(losses) >= 5, train.stderr[-2000:]
    assert losses[-1] < 0.05, losses  # the example learns to add
    assert (work / "binary_addition_work" / "binary_addition_iter_1000.caffemodel"
            ).is_file()
    # The installed package is the one that ran, not the checkout.
    where = _run([str(py), "-c", "import recaffe, recaffe.examples.binary_addition "
                  "as b; print(recaffe.__file__); print(b.__file__)"],
                 cwd=work, env=env).stdout.split()
    assert all(str(env_dir) in w for w in where), where
