"""Helpers of the ONNX export tests: build a net, randomise its weights, export
it, run it with ONNX Runtime and compare with recaffe's forward."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import recaffe  # noqa: E402
from recaffe.onnx import check, export  # noqa: E402
from recaffe.proto import caffe_pb2  # noqa: E402

RTOL = 1e-4


def randomize_params(net, seed: int = 0) -> None:
    """Random weights scaled by fan-in (so deep nets neither explode nor
    vanish); positive where Caffe needs it (BatchNorm's statistics)."""
    rng = np.random.default_rng(seed)
    for layer in net.layers_list:
        for j, blob in enumerate(layer.blobs):
            shape = tuple(blob.shape)
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            std = 1.0 / np.sqrt(fan_in) if len(shape) > 1 else 0.5
            values = rng.standard_normal(shape).astype(np.float32) * std
            if layer.type == "BatchNorm":
                values = np.abs(values) + (1.0 if j == 2 else 0.1)
            blob.data[...] = values


def net_from_text(text: str, phase=recaffe.TEST):
    param = caffe_pb2.NetParameter()
    from google.protobuf import text_format

    text_format.Merge(text, param)
    return recaffe.Net(param, phase)


def export_and_check(net, feeds=None, seed=0, **kwargs):
    """Export ``net`` (in memory), check it, and return (model, errors)."""
    model = export(net, **kwargs)
    errors = check(net, model, feeds, rtol=RTOL, seed=seed)
    assert errors, "no output was compared"
    return model, errors


@pytest.fixture
def onnx_tools():
    class Tools:
        randomize = staticmethod(randomize_params)
        net_from_text = staticmethod(net_from_text)
        export_and_check = staticmethod(export_and_check)
        rtol = RTOL

    return Tools
