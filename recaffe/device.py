"""Memory follows the mode: move a net's or solver's arrays to the current device.

Caffe lets the mode change at any time and its SyncedMemory copies lazily. Here
the arrays are plain numpy/CuPy arrays, so a net created in CPU mode holds numpy
arrays; after ``set_mode_gpu()`` they must become CuPy arrays before the net
runs (and back after ``set_mode_cpu()``, or to another GPU after
``set_device``). :func:`ensure_device` does this once per mode change: the
backend bumps a generation counter on every change; an object remembers the
generation it was last moved for, and the check is one attribute compare.

What moves, from a :class:`~recaffe.net.Net` (or a solver, which reaches its
nets):

- every :class:`~recaffe.blob.Blob` (net blobs, parameters, layers' private
  blobs, the private nets of recurrent layers), data and diff;
- every array held by a layer other than a data layer (work buffers, masks,
  recurrent state, cached index tables), and a solver's history;
- data layers (no bottoms) and Python layers keep their host-side arrays
  (datasets, means, user state): only their Blobs move, since they copy each
  batch to the device themselves.

Aliasing is kept: arrays that are views of one buffer (shared parameters,
in-place tops, the execution plan's stacked time steps) are views of one moved
buffer afterwards. The execution plan is dropped and rebuilt on the next
forward. Changing the mode between a forward and its backward is not
supported (the backward would see the plain loop's state).
"""

from __future__ import annotations

import contextlib

import numpy as np

from recaffe import backend
from recaffe.backend import synced
from recaffe.backend.synced import HEAD_AT_DEVICE, SYNCED, SyncedMemory
from recaffe.blob import Blob

_ATTR = "_recaffe_device_generation"


def ensure_device(obj) -> bool:
    """Move ``obj``'s arrays to the current device if the mode changed since
    they were last placed; returns whether anything was walked.

    The hook for :class:`~recaffe.net.Net`'s execution entry points and the
    solvers' ``step``; cheap when nothing changed.
    """
    gen = backend.generation()
    if getattr(obj, _ATTR, None) == gen:
        return False
    to_current_device(obj)
    return True


def to_current_device(obj) -> None:
    """Move every array reachable from ``obj`` (a Net, solver, layer, Blob, or a
    list/tuple/dict of them) to the current array module."""
    if not backend.is_gpu():
        # The device side must hold every host-side change before it moves.
        synced.flush()
    mover = _Mover(backend.xp(), backend.device_id() if backend.is_gpu() else None)
    mover.value(obj)
    gen = backend.generation()
    for o in mover.stamped:
        # __slots__ objects (Blob) are not stamped
        with contextlib.suppress(AttributeError):
            setattr(o, _ATTR, gen)


def _is_protobuf(obj) -> bool:
    try:
        from google.protobuf.message import Message
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Message)


def _ptr(a) -> int:
    if type(a) is np.ndarray or isinstance(a, np.ndarray):
        return a.__array_interface__["data"][0]
    return a.data.ptr


def _root(a):
    r = a
    while True:
        b = getattr(r, "base", None)
        if b is None or not hasattr(b, "shape") or not hasattr(b, "dtype"):
            return r
        r = b


class _Mover:
    def __init__(self, target, device):
        self.target = target
        self.device = device
        self.seen: set[int] = set()
        self.roots: dict[int, tuple[object, object]] = {}  # id(old root) -> (old, new)
        self.stamped: list[object] = []
        self.syncs: dict[int, tuple[object, SyncedMemory]] = {}

    # -- arrays ------------------------------------------------------------------
    def _foreign(self, a) -> bool:
        mod = backend.get_array_module(a)
        if mod is not self.target:
            return True
        if self.device is not None and mod is not np:
            dev = getattr(a, "device", None)
            dev_id = getattr(dev, "id", None)
            return dev_id is not None and dev_id != self.device
        return False

    def _copy(self, a):
        host = backend.to_host(a)
        synced.count_copy(self.target is not np, a.nbytes)
        if self.target is np:
            return np.array(host, copy=True)
        return self.target.asarray(host)

    def array(self, a):
        if not self._foreign(a):
            return a
        if a.size == 0:
            return self._copy(a)
        root = _root(a)
        contiguous = root.flags.c_contiguous and root.dtype == a.dtype
        if not contiguous:
            return self._copy(a)
        entry = self.roots.get(id(root))
        if entry is None:
            entry = self.roots[id(root)] = (root, self._copy(root))
        new_root = entry[1]
        offset = _ptr(a) - _ptr(root)
        if offset < 0 or offset % a.itemsize:
            return self._copy(a)
        return _view(self.target, new_root, offset, a.shape, a.strides, type(new_root))

    def value(self, v):
        """``v`` with its arrays moved (containers rebuilt or edited in place)."""
        if hasattr(v, "__array_interface__") or hasattr(v, "__cuda_array_interface__"):
            if isinstance(v, np.generic):
                return v
            return self.array(v)
        if isinstance(v, list):
            self._container(v, range(len(v)))
            return v
        if isinstance(v, dict):
            self._container(v, list(v.keys()))
            return v
        if isinstance(v, tuple) and not hasattr(v, "_fields"):
            new = tuple(self.value(x) for x in v)
            return new if any(a is not b for a, b in zip(new, v, strict=True)) else v
        self.visit(v)
        return v

    def _container(self, c, keys) -> None:
        if id(c) in self.seen:
            return
        self.seen.add(id(c))
        # (dict's own lookup: ``net.blobs`` records what a script looks up)
        get = dict.__getitem__ if isinstance(c, dict) else type(c).__getitem__
        for k in keys:
            old = get(c, k)
            new = self.value(old)
            if new is not old:
                c[k] = new

    # -- objects -------------------------------------------------------------------
    def visit(self, obj) -> None:
        if obj is None or isinstance(obj, (str, bytes, int, float, bool, type)):
            return
        if id(obj) in self.seen:
            return
        if isinstance(obj, Blob):
            self.seen.add(id(obj))
            self._blob(obj)
            return
        if not self._walkable(obj):
            return
        self.seen.add(id(obj))
        self.stamped.append(obj)
        from recaffe.layer import Layer

        if hasattr(obj, "plan") and hasattr(obj, "layers_list"):  # a Net
            if hasattr(obj, "_unshare_buffers"):
                obj._unshare_buffers()  # shared blobs get their own arrays
            obj.plan = None
            obj._plan_synced = True
            obj._plan_forwarded = False
        blobs_only = isinstance(obj, Layer) and (
            obj.exact_num_bottom == 0 or obj.type == "Python")
        # pycaffe-level state (Classifier's crop sizes, …) stays on the host.
        host_attrs = getattr(type(obj), "host_attributes", ())
        for name, val in list(_attributes(obj)):
            if name in host_attrs:
                continue
            if name in ("xp", "_xp") and _is_module(val):
                _set(obj, name, self.target)
                continue
            if blobs_only:
                self._blobs_in(val)
                continue
            new = self.value(val)
            if new is not val:
                _set(obj, name, new)

    def _blobs_in(self, v) -> None:
        if isinstance(v, Blob):
            self.visit(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                self._blobs_in(x)
        elif isinstance(v, dict):
            for x in v.values():
                self._blobs_in(x)
        elif hasattr(v, "layers_list"):  # a private Net
            self.visit(v)

    def _walkable(self, obj) -> bool:
        if _is_module(obj) or (callable(obj) and not hasattr(obj, "__dict__")):
            return False
        if _is_protobuf(obj):
            return False
        mod = type(obj).__module__ or ""
        from recaffe.layer import Layer

        if isinstance(obj, Layer):
            return True
        if mod.startswith(("recaffe.data_transformer", "recaffe.io")):
            return False  # host-side by design (data and pycaffe io helpers)
        return mod == "recaffe" or mod.startswith("recaffe.")

    def _blob(self, b: Blob) -> None:
        if b._xp is self.target and not (
                b._dbuf is not None and self._foreign(b._dbuf)):
            return
        to_host = self.target is np
        # Host buffers a blob had in CPU mode stay its host side on the device
        # (same arrays, so host views taken before the move stay live).
        old = {"_dbuf": b._dbuf, "_gbuf": b._gbuf}
        for slot in ("_dbuf", "_gbuf", "_data", "_diff"):
            a = getattr(b, slot)
            if a is not None:
                setattr(b, slot, self.array(a))
        b._xp = self.target
        if to_host:
            b._dsync = b._gsync = None
            b._hdata = b._hdiff = None
            return
        b._dsync = self._sync(b._dbuf, old["_dbuf"])
        b._gsync = None if b._gbuf is None else self._sync(b._gbuf, old["_gbuf"])
        if type(old["_dbuf"]) is not np.ndarray:
            b._hdata = None
        if type(old["_gbuf"]) is not np.ndarray:
            b._hdiff = None

    def _sync(self, device_buf, old_buf) -> SyncedMemory:
        """The SyncedMemory of a moved buffer (one per buffer: shared buffers
        share it); a buffer that came from the host keeps it as host side."""
        if type(old_buf) is not np.ndarray:
            return SyncedMemory(device_buf, head=HEAD_AT_DEVICE)
        entry = self.syncs.get(id(old_buf))
        if entry is None:
            entry = self.syncs[id(old_buf)] = (
                old_buf, SyncedMemory(device_buf, host=old_buf, head=SYNCED))
        return entry[1]


def _view(target, root, offset: int, shape, strides, cls):
    if target is np or isinstance(root, np.ndarray):
        v = np.ndarray(shape, dtype=root.dtype, buffer=root, offset=offset,
                       strides=strides)
        return v if cls is np.ndarray else v.view(cls)
    return target.ndarray(shape, dtype=root.dtype, memptr=root.data + offset,
                          strides=strides)


def _is_module(v) -> bool:
    return type(v).__name__ == "module" or (
        hasattr(v, "ndarray") and hasattr(v, "asarray") and hasattr(v, "zeros")
        and not hasattr(v, "shape"))


def _attributes(obj):
    d = getattr(obj, "__dict__", None)
    if d is not None:
        yield from d.items()
    for cls in type(obj).__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s in ("__dict__", "__weakref__"):
                continue
            try:
                yield s, getattr(obj, s)
            except AttributeError:
                continue


def _set(obj, name, value) -> None:
    with contextlib.suppress(AttributeError):  # a read-only property (Layer.xp)
        setattr(obj, name, value)
