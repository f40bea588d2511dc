"""The code base is clean under ruff (configuration in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATHS = ["recaffe", "tests", "examples", "tools", "benchmarks"]


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None,
                    reason="ruff is not installed (pip install -e '.[dev]')")
def test_ruff_check_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *PATHS],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    rc = proc.returncode
    assert rc == 0, (
        f"ruff check {' '.join(PATHS)} exited {rc}:\n{proc.stdout}{proc.stderr}"
    )
