"""Where BVLC Caffe's conformance data lives: ``$RECAFFE_CONFORMANCE``, or a
``shared/conformance`` folder beside any parent of this checkout."""

from __future__ import annotations

import os
from pathlib import Path


def find_conformance_root() -> Path | None:
    env = os.environ.get("RECAFFE_CONFORMANCE")
    candidates = [Path(env)] if env else []
    for parent in Path(__file__).resolve().parents:
        candidates.append(parent / "shared" / "conformance")
    for c in candidates:
        if c.is_dir():
            return c
    return None
