"""Atomic file writes.

A file written through :func:`atomic_write` or :func:`atomic_open` either keeps
its old content or has the complete new content; a crash or an exception in
the middle never leaves a truncated file behind.  The data goes to a temporary
file in the destination's directory (same filesystem, so the final rename is
atomic), which is flushed and fsync'ed and then moved over the destination with
:func:`os.replace`.  On error the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = ["atomic_open", "atomic_write"]


def _target_mode(path: str) -> int:
    """Permission bits the final file should get.

    An existing destination keeps its mode; a new file gets the usual
    ``0o666 & ~umask`` (``mkstemp`` would otherwise leave it at 0o600).
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(directory: str) -> None:
    """Best-effort fsync of a directory so the rename itself is durable."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str],
    mode: str = "wb",
    encoding: str | None = None,
) -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block exits cleanly.

    ``mode`` must be a write mode: ``"wb"`` (default), ``"w"`` or ``"wt"``.
    Text mode uses ``encoding`` (default UTF-8).  If the ``with`` block raises,
    the temporary file is deleted and ``path`` is left untouched.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_open: unsupported mode {mode!r} (use 'w' or 'wb')")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    final_mode = _target_mode(path)
    fd, tmp_path = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        if "b" in mode:
            fh = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_path, final_mode)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    _fsync_dir(directory)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Atomically replace ``path`` with ``data`` (``str`` is written as UTF-8)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"atomic_write: data must be bytes or str, not {type(data).__name__}")
    with atomic_open(path, "wb") as fh:
        fh.write(data)
