"""tools/import_conformance.py: the converter of BVLC Caffe's reference pack."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "import_conformance.py"
DATA = REPO / "tests" / "conformance" / "data"


def _tool():
    spec = importlib.util.spec_from_file_location("import_conformance", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pack_beside_checkout() -> Path | None:
    for parent in REPO.parents:
        if (parent / "shared" / "conformance" / "solvers").is_dir():
            return parent / "shared" / "conformance"
    return None


def _tiny_pack(root: Path) -> Path:
    """A pack with one layer case, one solver case and one NetSpec text."""
    case = root / "relu_case"
    case.mkdir(parents=True)
    (case / "net.prototxt").write_text('layer { name: "r" type: "ReLU" }\n')
    (case / "weights.caffemodel").write_bytes(b"\x0a\x03abc")
    np.savez(case / "expected.npz", **{"input/x": np.arange(3, dtype=np.float32),
                                       "blob/x/data": np.ones(2, np.float32)})
    solvers = root / "solvers"
    solvers.mkdir()
    (solvers / "net.prototxt").write_text("name: 'n'\n")
    (solvers / "init.caffemodel").write_bytes(b"\x01\x02")
    (solvers / "sgd.prototxt").write_text('net: "net.prototxt"\n')
    np.savez(solvers / "sgd.expected.npz", **{"iter1/loss": np.float32(0.5)})
    netspec = root / "netspec"
    netspec.mkdir()
    (netspec / "netspec_cases.py").write_text("CASES = {}\n")
    (netspec / "one.prototxt").write_text('name: "one"\n')
    return root


def test_convert_round_trip_and_determinism(tmp_path):
    tool = _tool()
    pack = _tiny_pack(tmp_path / "pack")
    out = tmp_path / "out"
    assert tool.main([str(pack), "--out", str(out)]) == 0
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["layers"]["relu_case"]["phase"] == "TRAIN"
    assert set(manifest["solvers"]) == {"sgd"} and set(manifest["netspec"]) == {"one"}
    with np.load(out / "layers" / "relu_case.npz") as d:
        assert d["weights.caffemodel"].tobytes() == b"\x0a\x03abc"
        np.testing.assert_array_equal(d["input/x"], [0, 1, 2])
    with np.load(out / "solvers" / "sgd.npz") as d:
        assert d["init.caffemodel"].tobytes() == b"\x01\x02"
        assert float(d["iter1/loss"]) == 0.5
    first = (out / "layers" / "relu_case.npz").read_bytes()
    assert tool.main([str(pack), "--out", str(out)]) == 0
    assert (out / "layers" / "relu_case.npz").read_bytes() == first
    assert tool.main([str(pack), "--out", str(out), "--check"]) == 0
    # A changed number in the pack is a difference --check reports.
    np.savez(pack / "relu_case" / "expected.npz",
             **{"input/x": np.arange(3, dtype=np.float32),
                "blob/x/data": np.full(2, 2, np.float32)})
    assert tool.main([str(pack), "--out", str(out), "--check"]) == 1


def test_incomplete_case_is_an_error(tmp_path):
    pack = _tiny_pack(tmp_path / "pack")
    (pack / "relu_case" / "weights.caffemodel").unlink()
    with pytest.raises(SystemExit, match="relu_case"):
        _tool().main([str(pack), "--out", str(tmp_path / "out")])


def test_repository_copy_is_complete():
    manifest = json.loads((DATA / "MANIFEST.json").read_text())
    assert "9b89154" in manifest["source"]
    for case in manifest["layers"]:
        assert (DATA / "layers" / f"{case}.npz").is_file(), case
        assert (DATA / "layers" / f"{case}.prototxt").is_file(), case
    for case in manifest["solvers"]:
        assert (DATA / "solvers" / f"{case}.npz").is_file(), case
    assert (DATA / "netspec" / "netspec_cases.py").is_file()


@pytest.mark.skipif(_pack_beside_checkout() is None,
                    reason="the reference pack is not beside this checkout")
def test_repository_copy_equals_reference_pack():
    # Only where the reference pack exists (the suite itself never needs it).
    pack = _pack_beside_checkout()
    assert _tool().main([str(pack), "--out", str(DATA), "--check"]) == 0
