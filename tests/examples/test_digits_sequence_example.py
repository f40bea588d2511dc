"""examples/digits_sequence: LSTM and GRU row-by-row classifiers learn at tiny
settings (needs scikit-learn, whose bundled digits the example reads)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "digits_sequence" / "train.py"

needs_sklearn = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None,
    reason="scikit-learn is not installed (the example reads its bundled digits; "
           "pip install 'recaffe[examples]')")

TRAIN_LOSS = re.compile(r"Iteration \d+ \([^)]*\), loss = (\S+)")
TEST_ACCURACY = re.compile(r"Test net output #\d+: accuracy = (\S+)")


@needs_sklearn
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_digits_sequence_learns(tmp_path, cell):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--quiet", "--cell", cell,
         "--iters", "200", "--test-interval", "100", "--display", "10",
         "--hidden", "32", "--batch", "32"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (out / "digits_sequence.log").read_text()
    losses = [float(v) for v in TRAIN_LOSS.findall(log)]
    assert len(losses) >= 10 and losses[-1] < 0.5 * losses[0], losses
    accs = [float(v) for v in TEST_ACCURACY.findall(log)]
    assert accs[0] < 0.3 and accs[-1] > 0.7, accs  # chance is 0.1
    assert "held-out accuracy" in proc.stdout
    assert (out / "digits_sequence_iter_200.caffemodel").is_file()


def test_digits_sequence_without_sklearn_says_why(tmp_path):
    """With scikit-learn hidden, the script exits with a message naming it."""
    blocker = tmp_path / "sklearn"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "o")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode != 0
    assert "scikit-learn" in proc.stderr

