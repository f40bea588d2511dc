"""Run an exported model with ONNX Runtime and compare it with recaffe.

The comparison is relative to each output's scale:
``max|onnx - recaffe| <= rtol * max|recaffe|`` (``rtol`` 1e-4 by default), so
that float32 summation order does not count, while any semantic difference
(a gate order, a pooling divisor, a missed reset) does.
"""

from __future__ import annotations

import numpy as np

from recaffe.onnx.graph import OnnxExportError


def _session(model):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise OnnxExportError(
            "checking an export needs onnxruntime: pip install 'recaffe[onnx]'"
        ) from exc
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def run(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs of ``model`` (a ModelProto or its bytes) on ``feeds``."""
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    feed = {k: np.ascontiguousarray(v, dtype=np.float32)
            for k, v in feeds.items() if k in wanted}
    return dict(zip(names, sess.run(names, feed), strict=True))


def input_shapes(model) -> dict[str, tuple[int, ...]]:
    """Static input shapes of ``model`` (symbolic axes read as 1)."""
    out = {}
    for vi in model.graph.input:
        out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else 1
                             for d in vi.type.tensor_type.shape.dim)
    return out


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """``max|got - want| / max|want|`` (absolute when ``want`` is all zeros)."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    if want.size == 0:
        return 0.0
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    return err / scale if scale > 0 else err


def check(net, model, feeds: dict[str, np.ndarray] | None = None, *,
          rtol: float = 1e-4, seed: int = 0) -> dict[str, float]:
    """Compare ``model`` run by ONNX Runtime with ``net``'s forward.

    Inputs missing from ``feeds`` get standard-normal values (inputs that are
    not blobs of the net, such as carried recurrent states, get zeros). Every
    output that is a blob of the net is compared.

    Returns:
        The relative error of each compared output.

    Raises:
        OnnxExportError: an output differs by more than ``rtol``.
    """
    rng = np.random.default_rng(seed)
    feeds = dict(feeds or {})
    for name, shape in input_shapes(model).items():
        if name not in feeds:
            if net.has_blob(name):
                feeds[name] = rng.standard_normal(shape).astype(np.float32)
            else:
                feeds[name] = np.zeros(shape, np.float32)
    for name, value in feeds.items():
        if net.has_blob(name):
            blob = net.blob_by_name(name)
            if tuple(blob.shape) != tuple(np.shape(value)):
                blob.reshape(np.shape(value))
            blob.data[...] = value
    net.forward()
    got = run(model, feeds)
    errors = {}
    for name, value in got.items():
        if not net.has_blob(name):
            continue
        want = np.asarray(net.blob_by_name(name).data)
        errors[name] = relative_error(value, want)
        if not errors[name] <= rtol:
            raise OnnxExportError(
                f"ONNX Runtime's '{name}' differs from recaffe's: relative error "
                f"{errors[name]:.3g} > {rtol:g} (shapes {tuple(value.shape)} vs "
                f"{tuple(want.shape)})")
    return errors
