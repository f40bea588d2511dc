"""``import caffe`` resolving to recaffe, for code written for BVLC's pycaffe.

:func:`caffe_alias` binds ``caffe`` (and its submodules that pycaffe scripts
import: ``caffe.proto.caffe_pb2``, ``caffe.io``, ``caffe.draw``…) to recaffe's
modules in ``sys.modules`` for the duration of a with-block, then restores
whatever was there. ``recaffe pycaffe`` runs whole scripts under it; Python
layers' modules are imported under it (:func:`caffe_for_user_code`), so a layer
file that starts with ``import caffe`` and subclasses ``caffe.Layer`` loads
unchanged.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys

#: alias name -> recaffe module it stands for
ALIASES = {
    "caffe": "recaffe",
    "caffe.proto": "recaffe.proto",
    "caffe.proto.caffe_pb2": "recaffe.proto.caffe_pb2",
    "caffe.io": "recaffe.io",
    "caffe.draw": "recaffe.draw",
    "caffe.net_spec": "recaffe.net_spec",
    "caffe.coord_map": "recaffe.coord_map",
    "caffe.classifier": "recaffe.classifier",
    "caffe.detector": "recaffe.detector",
    "caffe.pycaffe": "recaffe",
}

_MISSING = object()


@contextlib.contextmanager
def caffe_alias():
    """``import caffe`` means ``import recaffe`` inside the with-block."""
    saved = {name: sys.modules.get(name, _MISSING) for name in ALIASES}
    try:
        for alias, target in ALIASES.items():
            try:
                sys.modules[alias] = importlib.import_module(target)
            except ImportError:
                # An optional module that cannot load stays unaliased.
                sys.modules.pop(alias, None)
        yield
    finally:
        for name, module in saved.items():
            if module is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def real_caffe_importable() -> bool:
    """Whether ``import caffe`` would load a package other than recaffe."""
    if "caffe" in sys.modules:
        return True  # already bound (to BVLC's pycaffe or to an alias): keep it
    try:
        return importlib.util.find_spec("caffe") is not None
    except (ImportError, ValueError):
        return False


def caffe_for_user_code():
    """The alias, unless a ``caffe`` module is already importable."""
    return contextlib.nullcontext() if real_caffe_importable() else caffe_alias()
