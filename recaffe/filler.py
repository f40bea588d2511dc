"""Fillers: initial values of blobs, as Caffe's FillerParameter describes them.

fan_in = count / shape[0]; fan_out = count / shape[1] (count for a 1-axis blob);
``variance_norm`` picks n = fan_in, fan_out or their mean.

- constant: value (an absent filler message means constant 0)
- uniform: U[min, max)
- gaussian: N(mean, std); with ``sparse >= 0`` each element kept with
  probability sparse / shape[0]
- positive_unitball: U[0, 1) with each item (axes >= 1) scaled to sum 1
- xavier: U[-sqrt(3/n), sqrt(3/n)]
- msra: N(0, sqrt(2/n))
- bilinear: upsampling kernel for Deconvolution (4-D, square)
"""

from __future__ import annotations

import math

import numpy as np

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError
from recaffe.proto import caffe_pb2

FILLER_TYPES = ("constant", "uniform", "gaussian", "positive_unitball", "xavier",
                "msra", "bilinear")


def _fans(shape) -> tuple[float, float]:
    count = 1
    for d in shape:
        count *= d
    fan_in = count / shape[0] if shape and shape[0] else count
    fan_out = count / shape[1] if len(shape) >= 2 and shape[1] else count
    return fan_in, fan_out


def _norm(param, shape) -> float:
    fan_in, fan_out = _fans(shape)
    vn = param.variance_norm
    if vn == caffe_pb2.FillerParameter.FAN_OUT:
        return fan_out
    if vn == caffe_pb2.FillerParameter.AVERAGE:
        return (fan_in + fan_out) / 2.0
    return fan_in


def fill_array(param, shape, dtype=np.float32) -> np.ndarray:
    """A host array of ``shape`` filled as ``param`` says."""
    shape = tuple(shape)
    ftype = param.type
    if param.sparse >= 0 and ftype != "gaussian":
        raise LayerSetupError(
            f"filler '{ftype}': sparse is only supported by the gaussian filler"
        )
    if math.prod(shape) == 0:  # nothing to fill (Caffe fills nothing)
        return np.zeros(shape, dtype=dtype)
    rng = backend.rng()
    if ftype == "constant":
        return np.full(shape, param.value, dtype=dtype)
    if ftype == "uniform":
        return rng.uniform(param.min, param.max, size=shape).astype(dtype)
    if ftype == "gaussian":
        a = rng.normal(param.mean, param.std, size=shape).astype(dtype)
        if param.sparse >= 0:
            if len(shape) < 1 or shape[0] == 0:
                raise LayerSetupError("gaussian filler: sparse needs a non-empty blob")
            p = param.sparse / float(shape[0])
            a *= (rng.random(size=shape) < p).astype(dtype)
        return a
    if ftype == "positive_unitball":
        a = rng.random(size=shape).astype(np.float64)
        if len(shape) >= 1 and shape[0]:
            flat = a.reshape(shape[0], -1)
            flat /= flat.sum(axis=1, keepdims=True)
        return a.astype(dtype)
    if ftype == "xavier":
        s = math.sqrt(3.0 / _norm(param, shape))
        return rng.uniform(-s, s, size=shape).astype(dtype)
    if ftype == "msra":
        std = math.sqrt(2.0 / _norm(param, shape))
        return rng.normal(0.0, std, size=shape).astype(dtype)
    if ftype == "bilinear":
        if len(shape) != 4 or shape[2] != shape[3]:
            raise LayerSetupError(
                f"bilinear filler needs a 4-D blob with square kernels, got {shape}"
            )
        k = shape[3]
        f = math.ceil(k / 2.0)
        c = (k - 1) / (2.0 * f)
        x = np.arange(k)
        w1 = 1 - np.abs(x / f - c)
        kern = np.outer(w1, w1)
        return np.broadcast_to(kern, shape).astype(dtype)
    raise LayerSetupError(
        f"unknown filler type '{ftype}' (known: {', '.join(FILLER_TYPES)})"
    )


def fill(blob: Blob, param=None) -> None:
    """Fill ``blob.data``; ``param=None`` means constant 0."""
    if param is None:
        param = caffe_pb2.FillerParameter()
    a = fill_array(param, blob.shape, blob.dtype)
    blob.data[...] = backend.to_device(a, blob._xp)


def filler_or(param_msg, field: str, default_type: str = "constant",
              default_value: float = 0.0):
    """The filler in ``param_msg.field`` if set, else a constant one."""
    if param_msg.HasField(field):
        return getattr(param_msg, field)
    f = caffe_pb2.FillerParameter(type=default_type)
    f.value = default_value
    return f
