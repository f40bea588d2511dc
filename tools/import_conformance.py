#!/usr/bin/env python
"""Convert BVLC Caffe's conformance pack into the repository's own copy.

The reference pack (one folder per case: ``net.prototxt``,
``weights.caffemodel``, ``expected.npz``; ``solvers/``; ``netspec/``) holds
numbers produced by BVLC Caffe itself (commit 9b89154, CPU, OpenBLAS, float32)
and by its pycaffe. The test suite reads only the repository's copy,
``tests/conformance/data/``, whose format is:

``MANIFEST.json``
    provenance, and every case with its kind, phase and the SHA-256 of each
    file it was made from (so a copy can be traced back to the pack).
``layers/<case>.prototxt`` + ``layers/<case>.npz``
    the net, and one compressed archive holding the expected arrays under the
    pack's own keys (``input/<blob>``, ``blob/<name>/data|diff``,
    ``param/<layer>/<i>/data|diff``) and the weights file BVLC Caffe wrote,
    byte for byte, as a uint8 array under ``weights.caffemodel``.
``solvers/net.prototxt``, ``solvers/<name>.prototxt`` + ``solvers/<name>.npz``
    the shared net, each solver file, and its archive: ``input/x``, ``input/t``,
    ``iterN/loss``, ``iterN/param/<layer>/<i>`` and the common starting weights
    as bytes under ``init.caffemodel``.
``netspec/netspec_cases.py`` + ``netspec/<name>.prototxt``
    the NetSpec scripts and pycaffe's printed text, byte for byte.

Usage::

    python tools/import_conformance.py SRC            # rewrite tests/conformance/data
    python tools/import_conformance.py SRC --out DIR  # write elsewhere
    python tools/import_conformance.py SRC --check    # exit 1 if the copy differs

Converting the same pack twice gives identical files (fixed archive times).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "conformance" / "data"
SOURCE = ("BVLC Caffe at commit 9b89154 (1.0, final master), CPU mode, OpenBLAS, "
          "float32; NetSpec texts printed by its pycaffe")
#: Cases run in the TEST phase; every other one runs in TRAIN.
TEST_PHASE_CASES = {"dropout_test_phase"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A deterministic compressed ``.npz`` (sorted keys, fixed timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key]),
                                      allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _bytes_array(path: Path) -> np.ndarray:
    return np.frombuffer(path.read_bytes(), dtype=np.uint8)


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def convert(src: Path, out: Path) -> dict:
    """Write the repository format of pack ``src`` into ``out``; the manifest."""
    manifest: dict = {"source": SOURCE, "layers": {}, "solvers": {}, "netspec": {}}
    (out / "layers").mkdir(parents=True)
    for case in sorted(p for p in src.iterdir() if (p / "expected.npz").is_file()):
        files = [case / n for n in ("net.prototxt", "weights.caffemodel",
                                    "expected.npz")]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise SystemExit(f"import_conformance: case '{case.name}' lacks "
                             f"{', '.join(missing)}")
        shutil.copyfile(files[0], out / "layers" / f"{case.name}.prototxt")
        arrays = _load(files[2])
        arrays["weights.caffemodel"] = _bytes_array(files[1])
        write_npz(out / "layers" / f"{case.name}.npz", arrays)
        manifest["layers"][case.name] = {
            "phase": "TEST" if case.name in TEST_PHASE_CASES else "TRAIN",
            "sha256": {f.name: _sha256(f) for f in files},
        }
    solvers = src / "solvers"
    (out / "solvers").mkdir()
    shutil.copyfile(solvers / "net.prototxt", out / "solvers" / "net.prototxt")
    init = solvers / "init.caffemodel"
    for exp in sorted(solvers.glob("*.expected.npz")):
        name = exp.name[: -len(".expected.npz")]
        proto = solvers / f"{name}.prototxt"
        shutil.copyfile(proto, out / "solvers" / f"{name}.prototxt")
        arrays = _load(exp)
        arrays["init.caffemodel"] = _bytes_array(init)
        write_npz(out / "solvers" / f"{name}.npz", arrays)
        manifest["solvers"][name] = {"sha256": {
            f.name: _sha256(f) for f in (proto, exp, init, solvers / "net.prototxt")}}
    netspec = src / "netspec"
    (out / "netspec").mkdir()
    shutil.copyfile(netspec / "netspec_cases.py", out / "netspec" / "netspec_cases.py")
    for text in sorted(netspec.glob("*.prototxt")):
        shutil.copyfile(text, out / "netspec" / text.name)
        manifest["netspec"][text.stem] = {"sha256": {text.name: _sha256(text)}}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True)
                                       + "\n")
    return manifest


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "README.md"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="the reference pack (shared/conformance)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="where to write (default: tests/conformance/data)")
    ap.add_argument("--check", action="store_true",
                    help="compare with --out instead of writing; exit 1 if different")
    args = ap.parse_args(argv)
    if not (args.src / "solvers").is_dir():
        print(f"import_conformance: {args.src} is not a conformance pack "
              f"(no solvers/ folder)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "data"
        manifest = convert(args.src, fresh)
        if args.check:
            want, have = _tree(fresh), _tree(args.out) if args.out.is_dir() else {}
            diff = sorted(k for k in want.keys() | have.keys()
                          if want.get(k) != have.get(k))
            if diff:
                print("import_conformance: the copy differs from the pack: "
                      + ", ".join(diff), file=sys.stderr)
                return 1
            print(f"import_conformance: {args.out} matches {args.src}")
            return 0
        for sub in ("layers", "solvers", "netspec", "MANIFEST.json"):
            target = args.out / sub
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        args.out.mkdir(parents=True, exist_ok=True)
        for item in fresh.iterdir():
            if item.name != "README.md":
                shutil.move(str(item), args.out / item.name)
    n = {k: len(manifest[k]) for k in ("layers", "solvers", "netspec")}
    print(f"import_conformance: wrote {args.out}: {n['layers']} layer/net cases, "
          f"{n['solvers']} solver trajectories, {n['netspec']} NetSpec texts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
