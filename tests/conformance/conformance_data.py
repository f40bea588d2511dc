"""The repository's copy of BVLC Caffe's conformance data (``data/``, see its
README), or the folder named by ``$RECAFFE_CONFORMANCE`` in the same format.

Cases are listed by ``MANIFEST.json``, never discovered from the files: a case
whose files are missing is a failing test, not an empty parameter list.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def conformance_root() -> Path:
    env = os.environ.get("RECAFFE_CONFORMANCE")
    return Path(env) if env else HERE / "data"


ROOT = conformance_root()
MANIFEST_FILE = ROOT / "MANIFEST.json"


def manifest() -> dict:
    """The manifest; an empty one if missing (the presence tests then fail)."""
    if not MANIFEST_FILE.is_file():
        return {"layers": {}, "solvers": {}, "netspec": {}}
    return json.loads(MANIFEST_FILE.read_text())


MANIFEST = manifest()


def load_case(kind: str, name: str) -> dict[str, np.ndarray]:
    """The arrays of one case (``layers`` or ``solvers``)."""
    path = ROOT / kind / f"{name}.npz"
    assert path.is_file(), f"conformance case file missing: {path}"
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def write_bytes(arrays: dict[str, np.ndarray], key: str, folder: Path) -> Path:
    """Write the file stored as bytes under ``key`` into ``folder``."""
    path = Path(folder) / key
    path.write_bytes(arrays[key].tobytes())
    return path
