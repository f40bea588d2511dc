"""Every registered layer type has a LayerTestCase-based test (DESIGN §8)."""

from __future__ import annotations

import ast
from pathlib import Path

from recaffe.layer import LAYER_REGISTRY, layer_type_list

TESTS = Path(__file__).resolve().parent


def _tested_types() -> set[str]:
    """``layer_type = "X"`` in classes deriving from LayerTestCase, read statically."""
    found: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
            if "LayerTestCase" not in bases:
                continue
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign)
                        and any(getattr(t, "id", "") == "layer_type"
                                for t in stmt.targets)
                        and isinstance(stmt.value, ast.Constant)):
                    found.add(stmt.value.value)
    return found


def test_every_layer_type_has_a_layer_test():
    builtin = {t for t in layer_type_list()
               if LAYER_REGISTRY[t].__module__.startswith("recaffe.layers.")}
    missing = sorted(builtin - _tested_types())
    assert not missing, f"layer types without a LayerTestCase: {missing}"


def test_core_types_registered():
    types = layer_type_list()
    assert types == sorted(types)
    for t in ("Data", "Convolution", "InnerProduct", "LSTM", "RNN", "LSTMUnit",
              "Python"):
        assert t in types
