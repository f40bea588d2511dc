"""Protobuf text format printed as Caffe and pycaffe print it.

The protobuf runtime's own printer writes ``lr_mult: 1.0`` and
``scale: 0.003921569``; Caffe (C++) and pycaffe print floats with the shortest
of ``%.6g`` / ``%.9g`` that reads back to the same float32 (``lr_mult: 1``,
``scale: 0.00392156886``) and doubles with ``%.15g`` / ``%.17g``. Everything else
(2-space indent, escaping, enum names) follows the text
format. ``str()`` of every ``caffe_pb2`` message uses this printer.
"""

from __future__ import annotations

import math
import struct

from google.protobuf import descriptor, text_encoding

_FD = descriptor.FieldDescriptor


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def format_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    s = f"{x:.6g}"
    if _f32(float(s)) == _f32(x):
        return s
    return f"{x:.9g}"


def format_double(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    s = f"{x:.15g}"
    if float(s) == x:
        return s
    return f"{x:.17g}"


def _scalar(field, value) -> str:
    t = field.type
    if t == _FD.TYPE_STRING:
        return '"' + text_encoding.CEscape(value, as_utf8=False) + '"'
    if t == _FD.TYPE_BYTES:
        return '"' + text_encoding.CEscape(value, as_utf8=False) + '"'
    if t == _FD.TYPE_ENUM:
        ev = field.enum_type.values_by_number.get(value)
        return ev.name if ev is not None else str(value)
    if t == _FD.TYPE_BOOL:
        return "true" if value else "false"
    if t == _FD.TYPE_FLOAT:
        return format_float(value)
    if t == _FD.TYPE_DOUBLE:
        return format_double(value)
    return str(value)


def _print(msg, indent: int, out: list[str]) -> None:
    pad = " " * indent
    # Declaration order, as Caffe's pycaffe printed (e.g. SliceParameter's
    # axis = 3 before slice_point = 2); the schema declares fields in BVLC's order.
    for field, value in sorted(msg.ListFields(), key=lambda fv: fv[0].index):
        repeated = field.is_repeated
        values = value if repeated else [value]
        for v in values:
            if field.type in (_FD.TYPE_MESSAGE, _FD.TYPE_GROUP):
                out.append(f"{pad}{field.name} {{\n")
                _print(v, indent + 2, out)
                out.append(f"{pad}}}\n")
            else:
                out.append(f"{pad}{field.name}: {_scalar(field, v)}\n")


def message_to_text(msg) -> str:
    """The text format of ``msg`` exactly as Caffe/pycaffe print it."""
    out: list[str] = []
    _print(msg, 0, out)
    return "".join(out)


def install(module) -> None:
    """Make ``str()`` of every message class in ``module`` use Caffe's printer."""
    for name in dir(module):
        cls = getattr(module, name)
        if isinstance(cls, type) and hasattr(cls, "DESCRIPTOR") and hasattr(
            cls, "ListFields"
        ):
            cls.__str__ = message_to_text
