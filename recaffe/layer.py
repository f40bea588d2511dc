"""The Layer base class, blob-count checks and the layer registry.

A layer overrides pycaffe's four hooks:

- ``setup(bottom, top)``: read ``self.layer_param``, create ``self.blobs``;
- ``reshape(bottom, top)``: set top shapes from bottom shapes (no math);
- ``forward(bottom, top)``: compute ``top[i].data``;
- ``backward(top, propagate_down, bottom)``: *overwrite* ``bottom[i].diff`` where
  ``propagate_down[i]``, *accumulate* (``+=``) into ``self.blobs[j].diff`` where
  ``self.param_propagate_down[j]``.

Blob-count rules are class attributes checked once by :meth:`Layer.SetUp`.
The net calls the capitalised wrappers (``SetUp``, ``Forward``, ``Backward``),
which add Caffe's bookkeeping: count checks, loss weights, reshape before forward.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Sequence

import numpy as np

from recaffe import backend
from recaffe.backend.synced import STATE, device_side
from recaffe.blob import Blob, BlobVec
from recaffe.errors import LayerSetupError, ShapeError, UnknownLayerTypeError
from recaffe.proto import caffe_pb2

LAYER_REGISTRY: dict[str, type[Layer]] = {}
_loaded = False


class Layer:
    """Base class of every layer, built-in or user-written (``type: "Python"``)."""

    type: str | None = None
    exact_num_bottom = -1
    min_bottom = -1
    max_bottom = -1
    exact_num_top = -1
    min_top = -1
    max_top = -1
    equal_num_bottom_top = False
    auto_top_blobs = False
    #: Loss layers get loss_weight 1 on top 0 unless the prototxt says otherwise.
    is_loss = False

    def __init__(self, layer_param=None, phase: int | None = None):
        if layer_param is None:
            layer_param = caffe_pb2.LayerParameter()
        self.layer_param = layer_param
        self.phase = int(layer_param.phase if phase is None else phase)
        self.blobs = BlobVec()
        self.param_propagate_down: list[bool] = []
        self.loss_weights: list[float] = []
        # Python layers read these (pycaffe).
        if layer_param.HasField("python_param"):
            self.param_str = layer_param.python_param.param_str
        elif not hasattr(self, "param_str"):
            self.param_str = ""

    # -- identity -------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.layer_param.name

    @property
    def xp(self):
        return backend.xp()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.type} '{self.name}'>"

    def error(self, message: str, cls=LayerSetupError):
        """An error naming this layer's type and name."""
        return cls(f"{self.type} layer '{self.name or '(unnamed)'}': {message}")

    # -- hooks (overridden) -----------------------------------------------------
    def setup(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        pass

    def reshape(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        pass

    def forward(self, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
        raise NotImplementedError

    def backward(self, top, propagate_down, bottom) -> None:
        pass

    def allow_force_backward(self, bottom_index: int) -> bool:
        return not (self.is_loss and bottom_index == 1)

    # -- wrappers called by the Net -------------------------------------------
    def check_blob_counts(self, bottom, top) -> None:
        nb, nt = len(bottom), len(top)

        def bad(what, rule, got):
            return self.error(f"takes {rule} {what} blob(s), got {got}",
                              LayerSetupError)

        if self.exact_num_bottom >= 0 and nb != self.exact_num_bottom:
            raise bad("bottom", f"exactly {self.exact_num_bottom}", nb)
        if self.min_bottom >= 0 and nb < self.min_bottom:
            raise bad("bottom", f"at least {self.min_bottom}", nb)
        if self.max_bottom >= 0 and nb > self.max_bottom:
            raise bad("bottom", f"at most {self.max_bottom}", nb)
        if self.exact_num_top >= 0 and nt != self.exact_num_top:
            raise bad("top", f"exactly {self.exact_num_top}", nt)
        if self.min_top >= 0 and nt < self.min_top:
            raise bad("top", f"at least {self.min_top}", nt)
        if self.max_top >= 0 and nt > self.max_top:
            raise bad("top", f"at most {self.max_top}", nt)
        if self.equal_num_bottom_top and nb != nt:
            raise self.error(
                f"needs as many tops as bottoms, got {nb} bottom(s) and {nt} top(s)"
            )

    def SetUp(self, bottom, top) -> None:  # noqa: N802 - Caffe's name
        if STATE.host_side:  # called from user code: layers run on the device side
            with device_side():
                return self.SetUp(bottom, top)
        self.check_blob_counts(bottom, top)
        self.setup(bottom, top)
        if len(self.param_propagate_down) != len(self.blobs):
            self.param_propagate_down = [True] * len(self.blobs)
        self.reshape(bottom, top)
        self.set_loss_weights(top)

    def set_loss_weights(self, top) -> None:
        lw = list(self.layer_param.loss_weight)
        if lw and len(lw) != len(top):
            raise self.error(
                f"loss_weight must be given once per top ({len(top)}), got {len(lw)}"
            )
        self.loss_weights = [float(w) for w in lw] + [0.0] * (len(top) - len(lw))
        for w, t in zip(self.loss_weights, top, strict=True):
            if w != 0:
                t.diff[...] = w

    def Forward(self, bottom, top) -> float:  # noqa: N802
        if STATE.host_side:
            with device_side():
                return self.Forward(bottom, top)
        self.reshape(bottom, top)
        self.forward(bottom, top)
        loss = 0.0
        for w, t in zip(self.loss_weights, top, strict=False):
            if w != 0:
                loss += float((t.data * t.diff).sum())
        return loss

    def Backward(self, top, propagate_down, bottom) -> None:  # noqa: N802
        if STATE.host_side:
            with device_side():
                return self.Backward(top, propagate_down, bottom)
        self.backward(top, propagate_down, bottom)

    # -- helpers for subclasses ------------------------------------------------
    def canonical_axis(self, axis: int, num_axes: int, what: str = "axis") -> int:
        if not -num_axes <= axis < num_axes:
            raise self.error(
                f"{what} {axis} is out of range for a bottom with {num_axes} axes",
                ShapeError,
            )
        return axis + num_axes if axis < 0 else axis

    def check_same_shape(self, bottom, i: int, j: int) -> None:
        if bottom[i].shape != bottom[j].shape:
            raise self.error(
                f"bottom[{i}] and bottom[{j}] must have the same shape, got "
                f"{bottom[i].shape} and {bottom[j].shape}",
                ShapeError,
            )

    def make_param_blob(self, shape, filler=None) -> Blob:
        """Append a learnable blob of ``shape`` filled by ``filler``."""
        from recaffe.filler import fill  # noqa: PLC0415

        b = Blob(shape)
        fill(b, filler)
        self.blobs.append(b)
        return b

    @staticmethod
    def dtype_of(blob: Blob):
        return blob.data.dtype if blob.data is not None else np.float32


class LossLayer(Layer):
    """Base of loss layers: loss_weight 1 on top 0 by default; top is a scalar."""

    is_loss = True
    exact_num_bottom = 2
    exact_num_top = 1
    min_top = -1
    auto_top_blobs = True

    def set_loss_weights(self, top) -> None:
        if not self.layer_param.loss_weight and top:
            self.layer_param.loss_weight.append(1.0)
        super().set_loss_weights(top)

    def check_batch(self, bottom) -> None:
        if bottom[0].shape[:1] != bottom[1].shape[:1]:
            raise self.error(
                f"bottom[0] and bottom[1] must have the same first dimension, got "
                f"{bottom[0].shape} and {bottom[1].shape}",
                ShapeError,
            )


def register_layer(cls: type[Layer]) -> type[Layer]:
    """Class decorator: make ``cls`` creatable by its ``type`` string."""
    if not cls.type:
        raise TypeError(f"{cls.__name__} has no 'type'")
    LAYER_REGISTRY[cls.type] = cls
    return cls


def load_builtin_layers() -> None:
    """Import every module of ``recaffe.layers`` (each registers its types)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import recaffe.layers as pkg  # noqa: PLC0415

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"recaffe.layers.{info.name}")


def layer_type_list() -> list[str]:
    load_builtin_layers()
    return sorted(LAYER_REGISTRY)


def create_layer(layer_param, phase: int | None = None) -> Layer:
    load_builtin_layers()
    ltype = layer_param.type
    cls = LAYER_REGISTRY.get(ltype)
    if cls is None:
        close = difflib.get_close_matches(ltype, LAYER_REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownLayerTypeError(
            f"layer '{layer_param.name}': unknown layer type '{ltype}'.{hint} "
            f"Known types: {', '.join(sorted(LAYER_REGISTRY))}"
        )
    return cls.create(layer_param, phase) if hasattr(cls, "create") else cls(
        layer_param, phase
    )
