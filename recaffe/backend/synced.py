"""Host and device memory of a blob, as Caffe's SyncedMemory.

In GPU mode every blob buffer (data or diff) has a device side, which layers,
the execution plan and the solvers compute on, and a host side, which
pycaffe's surface (``net.blobs``, ``net.params``, the returned dicts, Python
layers) reads and writes. A :class:`SyncedMemory` holds both and a *head*:

- ``UNINITIALIZED``: nothing written yet (both sides are zeros);
- ``HEAD_AT_HOST``: the host side changed; the device side is stale;
- ``HEAD_AT_DEVICE``: the device side changed; the host side is stale;
- ``SYNCED``: both sides hold the same values.

Asking for one side after the other changed copies once; asking again copies
nothing. Every copy is counted (:func:`copy_counts`). In CPU mode blobs have no
SyncedMemory: their one numpy array is the host side, and nothing is copied.

Who asks for which side is decided by where the code runs, as in Caffe where
C++ layers call ``gpu_data()`` and pycaffe calls ``mutable_cpu_data()``:

- inside :func:`device_side` (a net's forward/backward, a solver's step and
  update, a layer's ``SetUp``/``Forward``/``Backward``) ``blob.data`` and
  ``blob.diff`` are the device arrays (``self.xp`` arrays);
- everywhere else (the *host side*: user scripts, Python layers, callbacks)
  they are host numpy arrays. As pycaffe's ``.data`` is ``mutable_cpu_data()``,
  a host access marks the memory as changed on the host; the next device pass
  copies it to the device (once).

A device pass may write any blob it reaches, so when it ends every memory that
was synced before counts as changed on the device (a global *epoch* is bumped
rather than every memory visited, so a pass costs O(1) here). Host-side
changes are collected in a list and copied to the device when the next pass
starts.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable

import numpy as np

UNINITIALIZED = "UNINITIALIZED"
HEAD_AT_HOST = "HEAD_AT_HOST"
HEAD_AT_DEVICE = "HEAD_AT_DEVICE"
SYNCED = "SYNCED"


class _State:
    """Process-wide state: which side code runs on, the epoch, pending copies."""

    __slots__ = ("check_stale", "d2h", "d2h_bytes", "depth", "dirty", "epoch", "h2d",
                 "h2d_bytes", "host_side")

    def __init__(self) -> None:
        #: True outside device passes: blob.data/diff give host arrays.
        self.host_side = True
        #: nesting of device_side() (host sections inside reset it to 0)
        self.depth = 0
        #: bumped whenever device work may have written any memory
        self.epoch = 0
        #: memories changed on the host since they were last copied
        self.dirty: list[SyncedMemory] = []
        self.h2d = 0
        self.d2h = 0
        self.h2d_bytes = 0
        self.d2h_bytes = 0
        #: detect writes through host arrays kept across a device pass
        self.check_stale = os.environ.get("RECAFFE_SYNC_CHECK", "").strip().lower() \
            in ("1", "true", "yes", "on")


STATE = _State()


def _set_host_side(host: bool) -> None:
    STATE.host_side = host


# -- copy counters -------------------------------------------------------------------
def copy_counts() -> dict[str, int]:
    """Host<->device copies made so far: ``{'host_to_device', 'device_to_host',
    'host_to_device_bytes', 'device_to_host_bytes'}``."""
    s = STATE
    return {"host_to_device": s.h2d, "device_to_host": s.d2h,
            "host_to_device_bytes": s.h2d_bytes, "device_to_host_bytes": s.d2h_bytes}


def reset_copy_counts() -> None:
    s = STATE
    s.h2d = s.d2h = s.h2d_bytes = s.d2h_bytes = 0


def set_stale_check(on: bool) -> None:
    """Turn the stale-write check on or off (``RECAFFE_SYNC_CHECK=1`` at start).

    When on, each host side remembers a checksum of its contents whenever both
    sides are equal; when a device pass made the host side stale and it is
    asked for again, a host side whose contents changed in between was written
    through an array kept from before the pass: that write would be lost (as
    in Caffe), so :class:`~recaffe.errors.StaleHostWriteError` is raised
    instead. Costs one checksum of the buffer per sync; for debugging.
    """
    STATE.check_stale = bool(on)


def count_copy(to_device: bool, nbytes: int) -> None:
    """Record one copy (also used when a mode change moves arrays)."""
    s = STATE
    if to_device:
        s.h2d += 1
        s.h2d_bytes += int(nbytes)
    else:
        s.d2h += 1
        s.d2h_bytes += int(nbytes)


def _copy_to_device(dev, host) -> None:
    setter = getattr(dev, "set", None)
    if setter is not None and dev.flags.c_contiguous:
        setter(host)  # CuPy: straight into the existing device buffer
    else:
        from recaffe import backend  # noqa: PLC0415 - backend imports this module

        dev[...] = backend.get_array_module(dev).asarray(host)
    count_copy(True, host.nbytes)


def _copy_to_host(host, dev) -> None:
    try:
        dev.get(out=host)
    except TypeError:  # an array type whose get() takes no out=
        host[...] = dev.get()
    count_copy(False, host.nbytes)


class SyncedMemory:
    """One buffer with a host and a device side (Caffe's SyncedMemory).

    ``device`` is the device array (1-D, allocated by the caller: layers need
    it at once); the host array is allocated on first host access, or given
    (a buffer that moved from the host keeps its host array).
    """

    __slots__ = ("_digest", "_dirty", "_epoch", "_head", "device", "host")

    def __init__(self, device, host=None, head: str = UNINITIALIZED):
        self.device = device
        self.host = host
        self._head = head
        self._epoch = STATE.epoch
        self._dirty = False
        self._digest = None
        if head == HEAD_AT_HOST:
            self._mark_dirty()

    @property
    def head(self) -> str:
        """The current head; a device pass since the last sync means
        ``HEAD_AT_DEVICE`` (the pass may have written the device side)."""
        h = self._head
        if h in (SYNCED, UNINITIALIZED) and self._epoch != STATE.epoch:
            return HEAD_AT_DEVICE
        return h

    def _mark_dirty(self) -> None:
        if not self._dirty:
            self._dirty = True
            STATE.dirty.append(self)

    def host_array(self, mutable: bool = True,
                   what: str | Callable[[], str] = "blob") -> np.ndarray:
        """The host side, current (Caffe's ``cpu_data``; ``mutable_cpu_data``
        when ``mutable``: the device side then counts as stale). ``what`` names
        the buffer in the stale-write check's error (or is a function that
        returns the name, called only for that error)."""
        head = self.head
        if self.host is None:
            self.host = np.zeros(self.device.shape, dtype=self.device.dtype)
        if head == HEAD_AT_DEVICE:
            if self._digest is not None and STATE.check_stale:
                self._check_unchanged(what)
            _copy_to_host(self.host, self.device)
            head = SYNCED
        elif head == UNINITIALIZED:
            head = SYNCED  # both sides are zeros
        if mutable:
            self._head = HEAD_AT_HOST
            self._digest = None
            self._mark_dirty()
        elif head == SYNCED:
            self._head = SYNCED
            self._epoch = STATE.epoch
            self._remember()
        return self.host

    def _remember(self) -> None:
        if STATE.check_stale and self.host is not None:
            self._digest = zlib.crc32(self.host.view(np.uint8).data)

    def _check_unchanged(self, what: str | Callable[[], str]) -> None:
        if zlib.crc32(self.host.view(np.uint8).data) != self._digest:
            from recaffe.errors import StaleHostWriteError  # noqa: PLC0415

            self._digest = None
            if callable(what):
                what = what()
            raise StaleHostWriteError(
                f"{what}: its host array was written after a device pass without "
                "asking for .data/.diff again, so the device never saw the write "
                "(as in Caffe); assign through net.blobs[...].data (or "
                ".diff) after each pass instead of through an array kept from "
                "before it")

    def device_array(self):
        """The device side, current (copies host changes once)."""
        if self._head == HEAD_AT_HOST:
            _copy_to_device(self.device, self.host)
            self._head = SYNCED
            self._epoch = STATE.epoch
            self._remember()
        self._dirty = False
        return self.device

    def __repr__(self) -> str:
        return (f"SyncedMemory({self.device.size} x {self.device.dtype}, "
                f"head={self.head})")


def flush() -> None:
    """Copy every host-side change to the device (start of a device pass)."""
    dirty = STATE.dirty
    if dirty:
        STATE.dirty = []
        for m in dirty:
            if m._dirty:
                m.device_array()


# -- which side code runs on ---------------------------------------------------------
class _DeviceSide:
    """Context: code inside computes on device arrays (reentrant)."""

    __slots__ = ()

    def __enter__(self):
        s = STATE
        if s.depth == 0:
            flush()
            _set_host_side(False)
        s.depth += 1
        return self

    def __exit__(self, *exc) -> None:
        s = STATE
        s.depth -= 1
        if s.depth == 0:
            _set_host_side(True)
            s.epoch += 1


class _HostSide:
    """Context inside a device pass: code inside (a Python layer, a callback)
    sees host arrays; its changes are copied back when it returns."""

    __slots__ = ("_depth",)

    def __enter__(self):
        s = STATE
        self._depth = s.depth
        s.epoch += 1  # device work so far may have changed anything
        s.depth = 0
        _set_host_side(True)
        return self

    def __exit__(self, *exc) -> None:
        s = STATE
        flush()
        s.depth = self._depth
        _set_host_side(s.depth == 0)


def device_side() -> _DeviceSide:
    """``with device_side():`` run code on the device side of every blob."""
    return _DeviceSide()


def host_side() -> _HostSide:
    """``with host_side():`` inside a device pass, run code on the host side."""
    return _HostSide()


def on_host_side() -> bool:
    return STATE.host_side


def host_call(fn):
    """``fn`` wrapped to run on the host side when called inside a device pass
    (Python layers' hooks, user callbacks): Caffe's Python layers are CPU
    layers."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if STATE.host_side:
            return fn(*args, **kwargs)
        with _HostSide():
            return fn(*args, **kwargs)

    return call


def runs_on_device(fn):
    """Decorator: the method runs on the device side (entered if needed)."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if not STATE.host_side:
            return fn(*args, **kwargs)
        with _DeviceSide():
            return fn(*args, **kwargs)

    return call
