"""Blob: a named n-d array pair (``data`` and ``diff``) as Caffe defines it.

Memory follows Caffe's rules: a reshape to a count within the current capacity
reuses the buffer (contents kept, new memory zero), a larger count allocates a
new zero buffer. ``share_data``/``share_diff`` make two blobs use one buffer;
layers that alias (Split, Reshape, Flatten) re-share on every reshape, as Caffe's
do. ``diff`` is allocated on first use, so blobs that never receive gradients cost
no memory for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from recaffe import backend
from recaffe.errors import BlobMemoryError, RecaffeError

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


class Blob:
    """A float array ``data`` with its gradient ``diff`` of the same shape."""

    __slots__ = (
        "__weakref__",
        "_count",
        "_data",
        "_dbuf",
        "_diff",
        "_dtype",
        "_gbuf",
        "_shape",
        "_xp",
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
            self._gbuf = None
        self._data = self._dbuf[:count].reshape(shape)
        if self._gbuf is not None and count <= self._gbuf.size:
            self._diff = self._gbuf[:count].reshape(shape)
        else:
            self._gbuf = None
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
        return self._data

    @data.setter
    def data(self, value) -> None:
        backend.copy_into(self._data, value)

    @property
    def diff(self):
        d = self._diff
        if d is None:
            self._gbuf = self._zeros(self._count, self._shape, "diff")
            d = self._diff = self._gbuf[: self._count].reshape(self._shape)
        return d

    @diff.setter
    def diff(self, value) -> None:
        backend.copy_into(self.diff, value)

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
        self._data = other._data.reshape(self._shape)

    def share_diff(self, other: Blob) -> None:
        if other._count != self._count:
            raise RecaffeError(
                f"cannot share diff: count {other._count} != {self._count}"
            )
        other.diff  # noqa: B018 - allocate before sharing
        self._gbuf = other._gbuf
        self._diff = other._diff.reshape(self._shape)

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
        if data is not None:
            self._dbuf = data
            self._data = data[: self._count].reshape(self._shape)
        if diff is not None:
            self._gbuf = diff
            self._diff = diff[: self._count].reshape(self._shape)

    def shares_data_with(self, other: Blob) -> bool:
        return self._dbuf is other._dbuf

    def shares_diff_with(self, other: Blob) -> bool:
        return self._gbuf is not None and self._gbuf is other._gbuf

    def zero_diff(self) -> None:
        if self._diff is not None:
            self._diff.fill(0)

    def to_xp(self, xp) -> None:
        """Move buffers to another array module (host <-> device)."""
        if xp is self._xp:
            return
        data = backend.to_host(self._data) if xp is np else xp.asarray(self._data)
        diff = None
        if self._diff is not None:
            diff = backend.to_host(self._diff) if xp is np else xp.asarray(self._diff)
        self._xp = xp
        self._dbuf = (data.reshape(-1).copy() if self._count
                      else xp.zeros(1, self._dtype))
        self._data = self._dbuf[: self._count].reshape(self._shape)
        if diff is not None:
            self._gbuf = diff.reshape(-1).copy()
            self._diff = self._gbuf[: self._count].reshape(self._shape)

    def __repr__(self) -> str:
        return f"Blob(shape={self._shape}, dtype={self._dtype.name})"

    # Caffe's helpers, used by debug_info and the solvers.
    def asum_data(self) -> float:
        return float(self._xp.abs(self._data).sum())

    def asum_diff(self) -> float:
        return float(self._xp.abs(self.diff).sum()) if self._diff is not None else 0.0

    def sumsq_data(self) -> float:
        return float((self._data.astype(np.float64) ** 2).sum())

    def sumsq_diff(self) -> float:
        if self._diff is None:
            return 0.0
        return float((self._diff.astype(np.float64) ** 2).sum())


class BlobVec(list):
    """pycaffe's BlobVec: a list of Blobs with ``add_blob(*dims)``."""

    def add_blob(self, *dims) -> Blob:
        b = Blob(dims)
        self.append(b)
        return b
