"""The graph under construction: nodes, initializers, names and static shapes.

Converters (:mod:`recaffe.onnx.converters`) only talk to a :class:`Graph` and a
:class:`LayerView`; neither knows about protobuf details beyond
``onnx.helper``. Tensor names are unique (ONNX graphs are in SSA form, while a
Caffe net may write a blob in place several times).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recaffe import backend
from recaffe.errors import NetError


class OnnxExportError(NetError):
    """A net (or one of its layers) that cannot be exported to ONNX."""


def require_onnx():
    """The ``onnx`` module, or an error saying how to install it."""
    try:
        import onnx
    except ImportError as exc:
        raise OnnxExportError(
            "ONNX export needs the onnx package: pip install 'recaffe[onnx]'"
        ) from exc
    return onnx


@dataclass
class LayerView:
    """What a converter sees of one layer."""

    index: int
    layer: object
    bottoms: list[str]
    tops: list[str]
    bottom_shapes: list[tuple[int, ...]]
    top_shapes: list[tuple[int, ...]]
    #: Extra graph inputs/outputs a converter may declare (recurrent state).
    extra_inputs: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    extra_outputs: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)

    @property
    def param(self):
        return self.layer.layer_param

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def type(self) -> str:
        return self.param.type

    def error(self, message: str) -> OnnxExportError:
        return OnnxExportError(f"{self.type} layer '{self.name}': {message}")


class Graph:
    """Nodes and initializers of the exported graph."""

    def __init__(self, net, batch_axis: int | None, carry_state: bool = False):
        self.onnx = require_onnx()
        self.net = net
        #: The symbolic batch axis of inputs/outputs, None for static shapes.
        self.batch_axis = batch_axis
        self.carry_state = carry_state
        self.nodes: list = []
        self.initializers: list = []
        self.used: set[str] = set()
        self._param_names: dict[int, str] = {}
        self._derived: dict[tuple, str] = {}
        self._counter = 0

    # -- names ---------------------------------------------------------------
    def reserve(self, name: str) -> str:
        """``name`` itself if free, else ``name`` with a numeric suffix."""
        out, k = name, 1
        while out in self.used:
            out = f"{name}_{k}"
            k += 1
        self.used.add(out)
        return out

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return self.reserve(f"{hint}__{self._counter}")

    # -- nodes -----------------------------------------------------------------
    def node(self, op: str, inputs: Sequence[str], outputs=None, *, hint: str = "",
             nout: int = 1, **attrs) -> str | list[str]:
        """Append a node; returns its output name (a list when ``nout > 1`` or
        ``outputs`` is a list)."""
        if outputs is None:
            outs = [self.fresh(hint or op.lower()) for _ in range(nout)]
        elif isinstance(outputs, str):
            outs = [outputs]
        else:
            outs = list(outputs)
        name = self.fresh(f"{hint or op}_node")
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), outs, name=name,
                                                     **attrs))
        if isinstance(outputs, list) or nout > 1:
            return outs
        return outs[0]

    # -- constants -----------------------------------------------------------
    def const(self, value, hint: str = "const", dtype=np.float32) -> str:
        """An initializer holding a derived constant (deduplicated by value)."""
        arr = np.asarray(value, dtype=dtype)
        key = ("const", arr.dtype.str, arr.shape, arr.tobytes())
        name = self._derived.get(key)
        if name is None:
            name = self._derived[key] = self.fresh(hint)
            self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def ints(self, values, hint: str = "shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64).reshape(-1), hint,
                          dtype=np.int64)

    # -- parameters ----------------------------------------------------------
    def param(self, view: LayerView, j: int) -> str:
        """The initializer of ``view``'s j-th parameter blob, stored once per
        owner: every layer sharing it (by ParamSpec name) gets the same tensor."""
        net = self.net
        owner = net.param_owner(view.index, j)
        name = self._param_names.get(owner)
        if name is None:
            li, bj = net.param_layer_indices[owner]
            lp = net.layers_list[li].layer_param
            shared = lp.param[bj].name if bj < len(lp.param) else ""
            name = self.reserve(shared or f"{lp.name}/param{bj}")
            data = np.ascontiguousarray(backend.to_host(net.param_blobs[owner].data))
            self.initializers.append(
                self.onnx.numpy_helper.from_array(data.astype(np.float32), name))
            self._param_names[owner] = name
        return name

    def param_view(self, view: LayerView, j: int, *, shape=None,
                   transpose: bool = False) -> str:
        """A parameter transposed (2-D) and/or reshaped, computed once per graph."""
        base = self.param(view, j)
        key = ("pview", base, tuple(shape) if shape is not None else None, transpose)
        out = self._derived.get(key)
        if out is None:
            out = base
            if transpose:
                out = self.node("Transpose", [out], hint=f"{base}_T", perm=[1, 0])
            if shape is not None:
                out = self.node("Reshape", [out, self.ints(shape)], hint=f"{base}_r")
            self._derived[key] = out
        return out

    # -- shape helpers ---------------------------------------------------------
    def reshape(self, x: str, in_shape, out_shape, output=None, hint="reshape") -> str:
        """Reshape to a static ``out_shape``; the symbolic batch axis (when it
        keeps its size and position) is copied from the input (ONNX's 0)."""
        target = [int(d) for d in out_shape]
        b = self.batch_axis
        if (b is not None and b < len(in_shape) and b < len(target)
                and target[b] == in_shape[b]
                and all(i == o for i, o in zip(in_shape[:b], target[:b],
                                               strict=False))):
            target[b] = 0
        return self.node("Reshape", [x, self.ints(target)], output, hint=hint)

    def identity(self, x: str, output: str) -> str:
        return self.node("Identity", [x], output)

    def unsqueeze(self, x: str, axes, output=None) -> str:
        return self.node("Unsqueeze", [x, self.ints(axes, "axes")], output,
                         hint="unsqueeze")

    def squeeze(self, x: str, axes, output=None) -> str:
        return self.node("Squeeze", [x, self.ints(axes, "axes")], output,
                         hint="squeeze")

    def split(self, x: str, sizes, axis: int, outputs=None) -> list[str]:
        if outputs is None:
            outputs = [self.fresh("split") for _ in sizes]
        return self.node("Split", [x, self.ints(sizes, "split")], list(outputs),
                         axis=int(axis))

    def scalar(self, value: float) -> str:
        return self.const(np.float32(value), "scalar")
