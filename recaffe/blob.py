"""Blob: a named n-d array pair (``data`` and ``diff``) as Caffe defines it.

Memory follows Caffe's rules: a reshape to a count within the current capacity
reuses the buffer (contents kept, new memory zero), a larger count allocates a
new zero buffer. ``share_data``/``share_diff`` make two blobs use one buffer;
layers that alias (Split, Reshape, Flatten) re-share on every reshape, as Caffe's
do. ``diff`` is allocated on first use, so blobs that never receive gradients cost
no memory for them.

Host and device (Caffe's SyncedMemory, :mod:`recaffe.backend.synced`): in GPU
mode each buffer has a device side (what layers compute on) and a host side
(what pycaffe's surface reads and writes), synced lazily. ``blob.data`` is the
device array inside a device pass and a host numpy array elsewhere, in every
mode, as pycaffe's ``.data`` is. Host arrays are :class:`HostArray` views that
turn a wrong-shaped assignment into a :class:`~recaffe.errors.ShapeError`
naming the blob. In CPU mode both are views of one numpy buffer: nothing is
copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from recaffe import backend
from recaffe.backend import synced
from recaffe.backend.synced import HEAD_AT_DEVICE, STATE, UNINITIALIZED, SyncedMemory
from recaffe.errors import BlobMemoryError, RecaffeError, ShapeError

MAX_BLOB_AXES = 32


def _as_shape(dims: Iterable) -> tuple[int, ...]:
    shape = tuple(int(d) for d in dims)
    if len(shape) > MAX_BLOB_AXES:
        raise RecaffeError(f"blob shape {shape} has more than {MAX_BLOB_AXES} axes")
    for d in shape:
        if d < 0:
            raise RecaffeError(f"blob shape {shape} has a negative dimension")
    return shape


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} TiB"


class HostArray(np.ndarray):
    """A host view of blob memory, as pycaffe returns for ``.data``/``.diff``.

    Behaves as a numpy array (results of arithmetic are plain ndarrays); an
    assignment ``a[...] = value`` accepts device arrays (copied to the host) and
    reports a shape mismatch as a :class:`~recaffe.errors.ShapeError` naming
    the blob.
    """

    def __array_finalize__(self, obj) -> None:
        self._what = getattr(obj, "_what", None)

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        if return_scalar:
            return arr[()]
        return arr  # an ``out=`` HostArray stays one; new results stay plain

    def __setitem__(self, key, value) -> None:
        if backend.is_device_array(value):
            value = backend.to_host(value)
        try:
            super().__setitem__(key, value)
        except ValueError as exc:
            if "broadcast" not in str(exc) and "shape" not in str(exc):
                raise
            shape = tuple(self.shape)
            try:
                target = tuple(np.shape(self.view(np.ndarray)[key]))
            except Exception:  # noqa: BLE001 - the key itself is the problem
                target = shape
            into = (f"shape {shape}" if target == shape
                    else f"a slice of shape {target} (of {shape})")
            raise ShapeError(
                f"{self._what or 'blob'}: cannot assign an array of shape "
                f"{tuple(np.shape(value))} to {into}") from None


def _host_view(arr, blob: Blob, what: str) -> HostArray:
    v = arr.view(HostArray)
    v._what = blob._label(what)
    return v


class Blob:
    """A float array ``data`` with its gradient ``diff`` of the same shape."""

    __slots__ = (
        "__weakref__",
        "_count",
        "_data",
        "_dbuf",
        "_diff",
        "_dsync",
        "_dtype",
        "_gbuf",
        "_gsync",
        "_hdata",
        "_hdiff",
        "_shape",
        "_xp",
        "name",
    )

    def __init__(self, shape: Sequence[int] = (), dtype=None, xp=None):
        self._dtype = np.dtype(dtype or backend.default_dtype())
        self._xp = xp or backend.xp()
        self._shape: tuple[int, ...] = ()
        self._count = 1
        self._dbuf = None
        self._gbuf = None
        self._data = None
        self._diff = None
        self._dsync = None
        self._gsync = None
        self._hdata = None
        self._hdiff = None
        #: the name the Net gave it (blob name, or ``layer[i]`` for a param);
        #: used in error messages
        self.name = ""
        self.reshape(shape)

    # -- shape ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def count(self) -> int:
        return self._count

    @property
    def num_axes(self) -> int:
        return len(self._shape)

    @property
    def dtype(self):
        return self._dtype

    def count_range(self, start: int, end: int | None = None) -> int:
        """Product of dims in [start, end)."""
        n = 1
        for d in self._shape[start:end]:
            n *= d
        return n

    def canonical_axis(self, axis: int) -> int:
        n = len(self._shape)
        if not -n <= axis < max(n, 1):
            raise RecaffeError(
                f"axis {axis} out of range for a {n}-axis blob {self._shape}")
        return axis + n if axis < 0 else axis

    def _legacy(self, i: int) -> int:
        if len(self._shape) > 4:
            raise RecaffeError(
                f"legacy accessor used on a blob with {len(self._shape)} > 4 axes"
            )
        return self._shape[i] if i < len(self._shape) else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    def _label(self, what: str) -> str:
        """How errors name this blob's data or diff."""
        return f"blob '{self.name}' {what}" if self.name else f"blob {what}"

    def _sync_for(self, buf, head: str = UNINITIALIZED):
        """A SyncedMemory for a new device buffer (None on the host)."""
        return None if self._xp is np else SyncedMemory(buf, head=head)

    def reshape(self, *dims, **kwargs) -> None:
        """Reshape; pycaffe style ``reshape(2, 3)`` or ``reshape((2, 3))``."""
        if kwargs:
            raise RuntimeError("Blob.reshape takes no kwargs")
        if len(dims) == 1 and not isinstance(dims[0], (int, np.integer)):
            dims = tuple(dims[0])
        shape = _as_shape(dims)
        count = 1
        for d in shape:
            count *= d
        if shape == self._shape and self._data is not None:
            return
        self._shape = shape
        self._count = count
        if self._dbuf is None or count > self._dbuf.size:
            self._dbuf = self._zeros(count, shape, "data")
            self._dsync = self._sync_for(self._dbuf)
            self._gbuf = None
        self._data = self._dbuf[:count].reshape(shape)
        self._hdata = None
        self._hdiff = None
        if self._gbuf is not None and count <= self._gbuf.size:
            self._diff = self._gbuf[:count].reshape(shape)
        else:
            self._gbuf = None
            self._gsync = None
            self._diff = None

    def _zeros(self, count: int, shape: tuple[int, ...], what: str):
        """A zero buffer of ``count`` elements; a BlobMemoryError if too large."""
        try:
            return self._xp.zeros(max(count, 1), dtype=self._dtype)
        except MemoryError as exc:  # numpy's and CuPy's out-of-memory errors
            nbytes = count * self._dtype.itemsize
            raise BlobMemoryError(
                f"cannot allocate the {what} of a blob of shape {shape}: "
                f"{nbytes} bytes ({_human_bytes(nbytes)}, {self._dtype.name}) "
                f"asked for ({type(exc).__name__})",
                blob=self,
            ) from None

    def reshape_like(self, other: Blob) -> None:
        self.reshape(other._shape)

    # -- arrays --------------------------------------------------------------
    @property
    def data(self):
        """Device array inside a device pass; host numpy array elsewhere."""
        if STATE.host_side:
            return self._host_data(True)
        return self._data

    @data.setter
    def data(self, value) -> None:
        if STATE.host_side:
            self._host_data(True)[...] = value
        else:
            backend.copy_into(self._data, value)

    @property
    def diff(self):
        """Device array inside a device pass; host numpy array elsewhere."""
        if STATE.host_side:
            return self._host_diff(True)
        d = self._diff
        if d is None:
            d = self._alloc_diff()
        return d

    @diff.setter
    def diff(self, value) -> None:
        if STATE.host_side:
            self._host_diff(True)[...] = value
        else:
            d = self._diff
            backend.copy_into(self._alloc_diff() if d is None else d, value)

    def _alloc_diff(self):
        self._gbuf = self._zeros(self._count, self._shape, "diff")
        self._gsync = self._sync_for(self._gbuf)
        self._hdiff = None
        d = self._diff = self._gbuf[: self._count].reshape(self._shape)
        return d

    def _host_side(self, sync, view, arr, what: str, mutable: bool) -> HostArray:
        """The host side of data or diff (``what``): its SyncedMemory ``sync``
        synced (marked changed when ``mutable``), shown through ``view``, the
        cached host view, or a new one when None (``arr`` itself on the host)."""
        if sync is None:
            return view if view is not None else _host_view(arr, self, what)
        buf = sync.host_array(mutable, lambda: self._label(what))
        if view is None:
            view = _host_view(buf[: self._count].reshape(self._shape), self, what)
        return view

    def _host_data(self, mutable: bool) -> HostArray:
        """The host side of data (synced; marked changed when ``mutable``)."""
        h = self._hdata = self._host_side(self._dsync, self._hdata, self._data,
                                          "data", mutable)
        return h

    def _host_diff(self, mutable: bool) -> HostArray:
        if self._diff is None:
            self._alloc_diff()
        h = self._hdiff = self._host_side(self._gsync, self._hdiff, self._diff,
                                          "diff", mutable)
        return h

    def host_data(self):
        """The data as a host numpy array, for reading (copies from the device
        only if it changed there; does not mark the host side as changed)."""
        return self._host_data(False)

    def host_diff(self):
        """The diff as a host numpy array, for reading (see :meth:`host_data`)."""
        return self._host_diff(False)

    def _read_data(self):
        return self._host_data(False) if STATE.host_side else self._data

    def _read_diff(self):
        return self._host_diff(False) if STATE.host_side else self._diff

    @property
    def heads(self) -> tuple[str | None, str | None]:
        """(data head, diff head) of the SyncedMemory of each; None for a host
        buffer (CPU mode) or a diff not allocated yet."""
        return (self._dsync.head if self._dsync is not None else None,
                self._gsync.head if self._gsync is not None else None)

    @property
    def has_diff(self) -> bool:
        return self._diff is not None

    def share_data(self, other: Blob) -> None:
        """Use ``other``'s data buffer (counts must be equal)."""
        if other._count != self._count:
            raise RecaffeError(
                f"cannot share data: count {other._count} != {self._count}"
            )
        self._dbuf = other._dbuf
        self._dsync = other._dsync
        self._data = other._data.reshape(self._shape)
        self._hdata = None

    def share_diff(self, other: Blob) -> None:
        if other._count != self._count:
            raise RecaffeError(
                f"cannot share diff: count {other._count} != {self._count}"
            )
        if other._diff is None:
            other._alloc_diff()  # allocate before sharing
        self._gbuf = other._gbuf
        self._gsync = other._gsync
        self._diff = other._diff.reshape(self._shape)
        self._hdiff = None

    def set_buffers(self, data=None, diff=None) -> None:
        """Make ``data`` and/or ``diff`` views of the given 1-D arrays (their
        first ``count`` elements); nothing is copied. For code that lays out
        several blobs in one allocation. The arrays must have this blob's
        dtype and array module and at least ``count`` elements."""
        for what, arr in (("data", data), ("diff", diff)):
            if arr is None:
                continue
            if arr.ndim != 1 or arr.size < self._count or arr.dtype != self._dtype:
                raise RecaffeError(
                    f"set_buffers: {what} must be a 1-D {self._dtype.name} array of "
                    f"at least {self._count} elements, got shape {arr.shape} "
                    f"{arr.dtype.name}")
            if backend.get_array_module(arr) is not self._xp:
                raise RecaffeError(f"set_buffers: {what} is on another device")
        # A device buffer given here holds the current values (the caller
        # filled it on the device).
        if data is not None:
            self._dbuf = data
            self._dsync = self._sync_for(data, HEAD_AT_DEVICE)
            self._data = data[: self._count].reshape(self._shape)
            self._hdata = None
        if diff is not None:
            self._gbuf = diff
            self._gsync = self._sync_for(diff, HEAD_AT_DEVICE)
            self._diff = diff[: self._count].reshape(self._shape)
            self._hdiff = None

    def shares_data_with(self, other: Blob) -> bool:
        return self._dbuf is other._dbuf

    def shares_diff_with(self, other: Blob) -> bool:
        return self._gbuf is not None and self._gbuf is other._gbuf

    @property
    def array_module(self):
        """The array module of this blob's own buffers (numpy, or a device's)."""
        return self._xp

    def uses_buffers(self, data, diff) -> bool:
        """Whether data and diff are still the arrays :meth:`set_buffers` gave."""
        return self._dbuf is data and self._gbuf is diff

    def zero_diff(self) -> None:
        if self._diff is None:
            return
        if STATE.host_side and self._gsync is not None:
            self._host_diff(True).fill(0)
        else:
            self._diff.fill(0)

    def to_xp(self, xp) -> None:
        """Move buffers to another array module (host <-> device)."""
        from recaffe.device import to_current_device  # noqa: PLC0415

        if xp is self._xp:
            return
        if xp is not backend.xp():
            raise RecaffeError("Blob.to_xp: only the current mode's array module "
                               "is supported; use set_mode_cpu/set_mode_gpu")
        to_current_device(self)

    def __repr__(self) -> str:
        return f"Blob(shape={self._shape}, dtype={self._dtype.name})"

    # Caffe's helpers, used by debug_info and the solvers.
    def asum_data(self) -> float:
        a = self._read_data()
        return float(backend.get_array_module(a).abs(a).sum())

    def asum_diff(self) -> float:
        if self._diff is None:
            return 0.0
        a = self._read_diff()
        return float(backend.get_array_module(a).abs(a).sum())

    def sumsq_data(self) -> float:
        return float((self._read_data().astype(np.float64) ** 2).sum())

    def sumsq_diff(self) -> float:
        if self._diff is None:
            return 0.0
        return float((self._read_diff().astype(np.float64) ** 2).sum())


class BlobVec(list):
    """pycaffe's BlobVec: a list of Blobs with ``add_blob(*dims)``."""

    def add_blob(self, *dims) -> Blob:
        b = Blob(dims)
        self.append(b)
        return b


__all__ = ["Blob", "BlobVec", "HostArray", "synced"]
