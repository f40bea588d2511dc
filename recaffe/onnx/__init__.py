"""ONNX export: ``recaffe.onnx.export(net, "model.onnx")``.

Needs the ``onnx`` package (``pip install 'recaffe[onnx]'``, which also brings
``onnxruntime`` for :func:`check`). See docs/onnx.md for what maps to what.
"""

from recaffe.onnx.check import check, run
from recaffe.onnx.export import DEFAULT_OPSET, build_model, export
from recaffe.onnx.graph import OnnxExportError
from recaffe.onnx.registry import supported_types

__all__ = ["DEFAULT_OPSET", "OnnxExportError", "build_model", "check", "export",
           "run", "supported_types"]
