"""Python: a layer written by the user in Python (pycaffe's ``type: "Python"``).

Math: whatever the user's class computes. The layer is declared as::

    layer { type: "Python" bottom: "x" top: "y"
            python_param { module: "my_layers" layer: "Doubler" param_str: "2" } }

Creation imports ``python_param.module`` (from ``sys.path``; the current
working directory is tried as well), fetches the class named
``python_param.layer`` and instantiates it with the ``LayerParameter``. Before
``setup`` runs, the instance has ``self.param_str`` (str, default ``''``) and
``self.phase`` (the layer's phase, ``TRAIN`` 0 / ``TEST`` 1).

The class subclasses :class:`recaffe.Layer` and implements pycaffe's hooks:
``setup(bottom, top)``, ``reshape(bottom, top)`` (called before every
forward), ``forward(bottom, top)``, ``backward(top, propagate_down, bottom)``.

Bottoms:/Tops: any number, any shapes (the user's class decides).
Learnable params: blobs the class adds with ``self.blobs.add_blob(*dims)``; they
are ordinary params (listed in ``net.params``, saved, shared, updated).
Proto fields read: ``python_param.module``, ``python_param.layer``,
``python_param.param_str``. Default loss weight 0 (``loss_weight: 1`` makes
it a loss). Gradients: as the class's ``backward`` writes them.
Exceptions raised by the user's code propagate with their own type.
"""

from __future__ import annotations

import importlib
import os
import sys

from recaffe.backend.synced import host_call
from recaffe.errors import LayerSetupError
from recaffe.layer import Layer, register_layer


def _where(layer_param) -> str:
    return f"Python layer '{layer_param.name or '(unnamed)'}'"


def _import_user_module(layer_param):
    module_name = layer_param.python_param.module
    if not module_name:
        raise LayerSetupError(f"{_where(layer_param)}: python_param.module is not set")
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "the module itself is missing" gets a second try; a missing
        # import inside the user's module is the user's error.
        if exc.name is None or module_name.split(".")[0] != exc.name.split(".")[0]:
            raise
        first = exc
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or module_name.split(".")[0] != exc.name.split(".")[0]:
            raise
        raise LayerSetupError(
            f"{_where(layer_param)}: cannot import python_param.module "
            f"'{module_name}' ({first}); it must be importable from sys.path or the "
            f"current directory {cwd}"
        ) from exc
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


@register_layer
class PythonLayer(Layer):
    """Factory of the user's layer class; never instantiated itself."""

    type = "Python"

    @classmethod
    def create(cls, layer_param, phase=None) -> Layer:
        pp = layer_param.python_param
        module = _import_user_module(layer_param)
        if not pp.layer:
            raise LayerSetupError(
                f"{_where(layer_param)}: python_param.layer is not set")
        user_cls = getattr(module, pp.layer, None)
        if user_cls is None:
            raise LayerSetupError(
                f"{_where(layer_param)}: module '{pp.module}' ({module.__file__}) has "
                f"no attribute '{pp.layer}'"
            )
        if not (isinstance(user_cls, type) and issubclass(user_cls, Layer)):
            raise LayerSetupError(
                f"{_where(layer_param)}: '{pp.module}.{pp.layer}' must be a class "
                "derived from recaffe.Layer (caffe.Layer), got "
                f"{type(user_cls).__name__}"
            )
        layer = user_cls(layer_param)
        # Caffe's wrapper sets these before setup, whatever __init__ did.
        if "layer_param" not in vars(layer):  # __init__ did not call Layer's
            Layer.__init__(layer, layer_param, phase)
        layer.param_str = pp.param_str
        layer.phase = int(layer_param.phase if phase is None else phase)
        layer.type = "Python"
        # Caffe's Python layers are CPU layers: in GPU mode their hooks see
        # host arrays, and what they write is copied back to the device.
        for hook in ("setup", "reshape", "forward", "backward"):
            setattr(layer, hook, host_call(getattr(layer, hook)))
        return layer
