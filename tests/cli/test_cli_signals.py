"""Signals during `recaffe train`: SIGHUP snapshots and continues, SIGINT stops
after snapshotting, exit status 0."""

from __future__ import annotations

import signal
import sys

import pytest
from cli_test_util import popen, write_files

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _wait_for(proc, needle, seen):
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            return True
    return False


def test_sighup_snapshots_and_sigint_stops(tmp_path):
    write_files(tmp_path, max_iter=10_000_000, display=1, test_interval=1_000_000)
    proc = popen(["train", "-solver", "solver.prototxt"], tmp_path)
    seen: list[str] = []
    try:
        assert _wait_for(proc, "Iteration 3 (", seen), "".join(seen)
        proc.send_signal(signal.SIGHUP)
        assert _wait_for(proc, "Snapshotting solver state", seen), "".join(seen)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = "".join(seen) + rest
    assert "Optimization stopped early." in err
    assert proc.returncode == 0, err
    states = sorted(p.name for p in tmp_path.glob("snap_iter_*.solverstate"))
    assert len(states) == 2, states  # one for SIGHUP, one when stopping
    assert sorted(p.name for p in tmp_path.glob("snap_iter_*.caffemodel")) == [
        s.replace(".solverstate", ".caffemodel") for s in states]
