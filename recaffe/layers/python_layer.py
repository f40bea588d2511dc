"""Python: a layer written by the user in Python (pycaffe's ``type: "Python"``).

Math: whatever the user's class computes. The layer is declared as::

    layer { type: "Python" bottom: "x" top: "y"
            python_param { module: "my_layers" layer: "Doubler" param_str: "2" } }

Creation imports ``python_param.module`` (from ``sys.path``; the current
working directory is tried as well) with ``import caffe`` resolving to recaffe
unless a real ``caffe`` is importable, so layer files written for BVLC Caffe
load unchanged; it fetches the class named
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
A module that cannot be imported, or a missing class, is one LayerSetupError
naming the layer, module, class and the underlying error (with its file:line).
Exceptions raised by the user's code at run time propagate with their own type.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from recaffe.backend.synced import host_call
from recaffe.caffe_alias import caffe_for_user_code
from recaffe.errors import LayerSetupError
from recaffe.layer import Layer, register_layer


def _where(layer_param) -> str:
    return f"Python layer '{layer_param.name or '(unnamed)'}'"


def _is_missing(exc: ModuleNotFoundError, module_name: str) -> bool:
    """The error says the module itself (not one it imports) is missing."""
    return exc.name is not None and \
        module_name.split(".")[0] == exc.name.split(".")[0]


def _load_error(layer_param, exc: BaseException) -> LayerSetupError:
    """One line: the layer, the module, the class and what went wrong where."""
    pp = layer_param.python_param
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if "importlib" not in f.filename]
    at = f" at {user[-1].filename}:{user[-1].lineno}" if user else ""
    if isinstance(exc, SyntaxError) and exc.filename:
        at = f" at {exc.filename}:{exc.lineno}"
    return LayerSetupError(
        f"{_where(layer_param)}: cannot load class '{pp.layer}' from module "
        f"'{pp.module}': {type(exc).__name__}: {exc}{at}"
    )


def _try_import(layer_param, module_name: str):
    """``(module, None)``, or ``(None, error)`` when the module itself is missing;
    any other failure is the layer's :func:`_load_error`."""
    try:
        return importlib.import_module(module_name), None
    except ModuleNotFoundError as exc:
        # Only "the module itself is missing" gets a second try; a missing
        # import inside the user's module is reported as such.
        if not _is_missing(exc, module_name):
            raise _load_error(layer_param, exc) from exc
        return None, exc
    except Exception as exc:
        raise _load_error(layer_param, exc) from exc


def _import_user_module(layer_param):
    module_name = layer_param.python_param.module
    if not module_name:
        raise LayerSetupError(f"{_where(layer_param)}: python_param.module is not set")
    # Layer files written for Caffe start with `import caffe`: give them recaffe.
    with caffe_for_user_code():
        module, first = _try_import(layer_param, module_name)
        if module is not None:
            return module
        cwd = os.getcwd()
        added = cwd not in sys.path
        if added:
            sys.path.insert(0, cwd)
        importlib.invalidate_caches()
        try:
            module, missing = _try_import(layer_param, module_name)
        finally:
            if added and cwd in sys.path:
                sys.path.remove(cwd)
        if module is None:
            raise LayerSetupError(
                f"{_where(layer_param)}: cannot load class "
                f"'{layer_param.python_param.layer}': no module "
                f"'{module_name}' ({first}); it must be importable from sys.path or "
                f"the current directory {cwd}"
            ) from missing
        return module


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
                f"{_where(layer_param)}: cannot load class '{pp.layer}' from module "
                f"'{pp.module}' ({module.__file__}): the module has no attribute "
                f"'{pp.layer}'"
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
