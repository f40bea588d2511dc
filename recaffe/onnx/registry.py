"""The converter registry: Caffe layer type -> function(graph, view).

A converter appends nodes to the :class:`~recaffe.onnx.graph.Graph` that compute
the view's tops (``view.tops``, names already chosen) from its bottoms
(``view.bottoms``) with the layer's exact semantics. Registered like layers::

    @converter("ReLU")
    def relu(g, v): ...
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

CONVERTERS: dict[str, Callable] = {}
_loaded = False


def converter(*types: str):
    """Register the decorated function for the given Caffe layer types."""

    def register(func):
        for t in types:
            CONVERTERS[t] = func
        return func

    return register


def load_converters() -> dict[str, Callable]:
    """Import every module of :mod:`recaffe.onnx.converters` (once)."""
    global _loaded
    if not _loaded:
        pkg = importlib.import_module("recaffe.onnx.converters")
        for info in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{pkg.__name__}.{info.name}")
        _loaded = True
    return CONVERTERS


def supported_types() -> list[str]:
    """The Caffe layer types the exporter converts, sorted."""
    return sorted(load_converters())
