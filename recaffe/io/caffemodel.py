"""Binary protobuf weight files (``.caffemodel``) and BlobProto <-> numpy.

A ``.caffemodel`` is a serialized ``NetParameter`` whose layers carry their
parameter blobs.  Files larger than 64 MB are fine: the Python protobuf runtime
parses a whole byte string without Caffe's C++ stream limit.
"""

from __future__ import annotations

import os

import numpy as np
from google.protobuf.message import DecodeError, EncodeError

from recaffe.errors import WeightsError
from recaffe.io.atomic import atomic_write
from recaffe.proto import caffe_pb2

__all__ = [
    "HDF5_SIGNATURE",
    "array_to_blobproto",
    "blobproto_to_array",
    "is_hdf5",
    "read_net_param_binary",
    "write_net_param_binary",
]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# ---------------------------------------------------------------------------
# NetParameter files
# ---------------------------------------------------------------------------


def _looks_like_text(data: bytes) -> bool:
    head = data[:256]
    if not head:
        return False
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in decoded)


def _what_is_it(data: bytes) -> str:
    """A hint about what a file that is not a binary NetParameter might be."""
    if data.startswith(HDF5_SIGNATURE):
        return " (it is an HDF5 file; HDF5 weights are read by the HDF5 loader)"
    if _looks_like_text(data):
        return " (it looks like a text file, e.g. a .prototxt; expected binary)"
    return ""


def read_net_param_binary(path: str | os.PathLike[str]) -> caffe_pb2.NetParameter:
    """Read a binary ``NetParameter`` (``.caffemodel``) from ``path``.

    Raises :class:`~recaffe.errors.WeightsError` naming the file when it cannot
    be opened, is truncated or corrupt, or decodes to a net without any layers
    (which is what an empty file or most non-protobuf files decode to).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise WeightsError(f"{path}: could not open weights file ({reason})") from exc

    net = caffe_pb2.NetParameter()
    try:
        net.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise WeightsError(
            f"{path}: not a valid binary NetParameter "
            f"(truncated or corrupt file: {exc}){_what_is_it(data)}"
        ) from None
    if len(net.layer) == 0 and len(net.layers) == 0:
        if not data:
            what = "the file is empty"
        else:
            what = f"no layers found in {len(data)} bytes"
        raise WeightsError(
            f"{path}: not a valid binary NetParameter ({what}){_what_is_it(data)}"
        )
    return net


def write_net_param_binary(
    net_param: caffe_pb2.NetParameter, path: str | os.PathLike[str]
) -> None:
    """Atomically write ``net_param`` to ``path`` in binary protobuf format.

    Raises :class:`~recaffe.errors.WeightsError` naming ``path`` when the file
    cannot be written; ``path`` then keeps its previous content (or stays absent).
    """
    try:
        data = net_param.SerializeToString()
    except EncodeError as exc:
        raise WeightsError(f"{os.fspath(path)}: cannot serialize net: {exc}") from None
    try:
        atomic_write(path, data)
    except OSError as exc:
        # atomic_write leaves neither a partial file nor its temporary behind.
        reason = exc.strerror or str(exc)
        raise WeightsError(
            f"{os.fspath(path)}: cannot write weights file ({reason})"
        ) from exc


def is_hdf5(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is an HDF5 file (by signature), False otherwise.

    The signature is looked for at offset 0 and, as the HDF5 format allows a
    user block in front of it, at offsets 512, 1024, 2048, ...  Unreadable
    files give False.
    """
    try:
        with open(os.fspath(path), "rb") as fh:
            if fh.read(8) == HDF5_SIGNATURE:
                return True
            size = os.fstat(fh.fileno()).st_size
            offset = 512
            while offset + 8 <= size:
                fh.seek(offset)
                if fh.read(8) == HDF5_SIGNATURE:
                    return True
                offset *= 2
    except OSError:
        return False
    return False


# ---------------------------------------------------------------------------
# BlobProto <-> numpy
# ---------------------------------------------------------------------------

_LEGACY_DIMS = ("num", "channels", "height", "width")


def _blob_shape(blob: caffe_pb2.BlobProto) -> tuple[int, ...]:
    if any(blob.HasField(name) for name in _LEGACY_DIMS):
        return (blob.num, blob.channels, blob.height, blob.width)
    return tuple(int(d) for d in blob.shape.dim)


def blobproto_to_array(
    blob: caffe_pb2.BlobProto, return_diff: bool = False
) -> np.ndarray:
    """Array of a ``BlobProto``'s data (or diff with ``return_diff=True``).

    The shape is the legacy ``(num, channels, height, width)`` when any of
    those fields is present, else ``shape.dim`` (no dims: a 0-d array).
    Values come from ``double_data``/``double_diff`` (float64 result) when
    non-empty, else from ``data``/``diff`` (float32 result).  A value count
    that does not fit the shape raises numpy's ``ValueError``.
    """
    if return_diff:
        doubles, floats = blob.double_diff, blob.diff
    else:
        doubles, floats = blob.double_data, blob.data
    if len(doubles):
        values = np.array(doubles, dtype=np.float64)
    else:
        values = np.array(floats, dtype=np.float32)
    return values.reshape(_blob_shape(blob))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# Wire tags (field_number << 3 | 2) of BlobProto's packed float fields.
_TAG_DATA = bytes([(5 << 3) | 2])
_TAG_DIFF = bytes([(6 << 3) | 2])


def _packed_floats(tag: bytes, arr) -> bytes:
    raw = np.ascontiguousarray(np.asarray(arr), dtype="<f4").tobytes()
    if not raw:
        return b""
    return tag + _varint(len(raw)) + raw


def array_to_blobproto(arr, diff=None) -> caffe_pb2.BlobProto:
    """``BlobProto`` with ``shape.dim`` = ``arr.shape`` and flat float ``data``.

    ``diff`` (same number of elements) fills ``diff`` when given.  A 0-axis
    array gets no ``shape`` field at all (Caffe omits it for 0-axis blobs).
    """
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    if arr.ndim > 0:
        blob.shape.dim.extend(int(d) for d in arr.shape)
    # Appending packed floats through the wire format is ~15x faster than
    # RepeatedScalarContainer.extend for large arrays.
    payload = _packed_floats(_TAG_DATA, arr)
    if diff is not None:
        diff = np.asarray(diff)
        if diff.size != arr.size:
            raise ValueError(
                f"array_to_blobproto: diff has {diff.size} elements, "
                f"data has {arr.size}"
            )
        payload += _packed_floats(_TAG_DIFF, diff)
    if payload:
        blob.MergeFromString(payload)
    return blob
