"""examples/sine_wave: trains at tiny settings, learns, runs free, plots."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "sine_wave" / "train.py"

TRAIN_LOSS = re.compile(r"Iteration \d+ \([^)]*\), loss = (\S+)")


def test_sine_wave_learns(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--quiet", "--iters", "300",
         "--test-interval", "100", "--display", "10", "--hidden", "16", "--steps", "20",
         "--batch", "8", "--episode", "100", "--prime", "40", "--generate", "30"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (out / "sine_wave.log").read_text()
    losses = [float(v) for v in TRAIN_LOSS.findall(log)]
    assert len(losses) >= 20 and losses[-1] < 0.3 * losses[0], losses
    tests = [float(v) for v in re.findall(r"Test net output #0: loss = (\S+)", log)]
    assert len(tests) == 4 and tests[-1] < tests[0], tests
    m = re.search(r"one-step RMSE (\S+); free-running RMSE over 30 steps (\S+) "
                  r"\(signal RMS (\S+),", proc.stdout)
    assert m, proc.stdout
    one_step, _free, rms = (float(g) for g in m.groups())
    assert one_step < 0.4 * rms, proc.stdout  # far better than predicting zero
    for name in ("train", "test", "deploy", "solver"):
        assert (out / f"sine_wave_{name}.prototxt").is_file()
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "sine_wave_prediction.png").stat().st_size > 0
        assert (out / "sine_wave_loss.png").stat().st_size > 0
    else:
        assert "no PNG" in proc.stdout
