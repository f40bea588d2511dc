"""Reading and writing protobuf text files (``.prototxt``).

Parsing uses the official protobuf text-format parser with the same strictness
as Caffe's ``ReadProtoFromTextFile`` (a non-repeated field given twice is an
error, required fields must be present).  Caffe's text quirks -- ``field: {``
as well as ``field {`` for sub-messages, ``#`` comments, ``[a, b]`` lists for
repeated scalars, single or double quotes -- are all accepted by that parser.

Parse failures raise :class:`~recaffe.errors.PrototxtError` with a message of
the form ``"<file>:<line>:<column>: <what>"``; an unknown field name or enum
value comes with a "did you mean" hint.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import TypeVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import text_format
from google.protobuf.message import Message

from recaffe.errors import PrototxtError
from recaffe.io.atomic import atomic_write
from recaffe.proto.text import message_to_text

__all__ = ["parse_prototxt", "read_prototxt", "to_text", "write_prototxt"]

M = TypeVar("M", bound=Message)

# "3:5 : what" -- the location prefix protobuf's ParseError puts on its text.
_LOCATION_PREFIX = re.compile(r"^\d+(?::\d+)? : ")
_UNKNOWN_FIELD = re.compile(r'Message type "([\w.]+)" has no field named "(\w+)"')
_UNKNOWN_ENUM = re.compile(r'Enum type "([\w.]+)" has no value named (\w+)')


def _find_message(pool, full_name: str):
    try:
        return pool.FindMessageTypeByName(full_name)
    except KeyError:
        return None


def _find_enum(pool, full_name: str):
    try:
        return pool.FindEnumTypeByName(full_name)
    except KeyError:
        return None


def _close_match(word: str, candidates) -> str | None:
    candidates = list(candidates)
    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not matches:
        # Case slips ("Pool" for "pool", "ave" for "AVE").
        lowered = {c.lower(): c for c in candidates}
        if word.lower() in lowered:
            return lowered[word.lower()]
        return None
    return matches[0]


def _owning_params(msg_desc, field_name: str) -> list[str]:
    """Names of ``*_param`` sub-messages of ``msg_desc`` that have ``field_name``."""
    owners = []
    for field in msg_desc.fields:
        if (
            field.name.endswith("_param")
            and field.type == _descriptor.FieldDescriptor.TYPE_MESSAGE
            and field_name in field.message_type.fields_by_name
        ):
            owners.append(field.name)
    return owners


def _hint(what: str, message_cls: type[Message]) -> str:
    """A "did you mean" suffix for unknown field / enum value errors, or ''."""
    pool = message_cls.DESCRIPTOR.file.pool
    m = _UNKNOWN_FIELD.search(what)
    if m:
        msg_desc = _find_message(pool, m.group(1))
        if msg_desc is None:
            return ""
        name = m.group(2)
        guess = _close_match(name, msg_desc.fields_by_name)
        if guess is not None:
            return f" (did you mean '{guess}'?)"
        owners = _owning_params(msg_desc, name)
        if not owners and msg_desc.name.endswith("Parameter"):
            # A field put into the wrong layer's *_param (`pool` inside
            # convolution_param): name the *_param messages that do have it.
            layer_desc = _find_message(pool, "caffe.LayerParameter")
            if layer_desc is not None:
                owners = [o for o in _owning_params(layer_desc, name)
                          if layer_desc.fields_by_name[o].message_type.full_name
                          != msg_desc.full_name]
        if owners:
            listed = ", ".join(f"'{o}'" for o in owners[:4])
            more = ", ..." if len(owners) > 4 else ""
            return f" ('{name}' is a field of {listed}{more})"
        return ""
    m = _UNKNOWN_ENUM.search(what)
    if m:
        enum_desc = _find_enum(pool, m.group(1))
        if enum_desc is None:
            return ""
        guess = _close_match(m.group(2), enum_desc.values_by_name)
        if guess is not None:
            return f" (did you mean '{guess}'?)"
        values = ", ".join(v.name for v in enum_desc.values)
        return f" (valid values: {values})"
    return ""


def _make_error(
    filename: str, what: str, line: int | None = None, column: int | None = None
) -> PrototxtError:
    if line is not None:
        loc = (f"{filename}:{line}:{column}" if column is not None
               else f"{filename}:{line}")
    else:
        loc = filename
    err = PrototxtError(f"{loc}: {what}")
    err.filename = filename
    err.line = line
    err.column = column
    return err


def parse_prototxt(
    text: str | bytes, message_cls: type[M], filename: str = "<string>"
) -> M:
    """Parse protobuf text ``text`` into a new ``message_cls`` instance.

    ``filename`` is only used in error messages.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            head = bytes(text[: exc.start])
            line = head.count(b"\n") + 1
            column = exc.start - (head.rfind(b"\n") + 1) + 1
            raise _make_error(
                filename, f"not valid UTF-8 text (byte 0x{text[exc.start]:02x})",
                line, column,
            ) from None
    message = message_cls()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        what = _LOCATION_PREFIX.sub("", str(exc), count=1)
        what += _hint(what, message_cls)
        raise _make_error(filename, what, exc.GetLine(), exc.GetColumn()) from None
    if not message.IsInitialized():
        missing = ", ".join(message.FindInitializationErrors())
        raise _make_error(filename, f"missing required field(s): {missing}")
    return message


def read_prototxt(path: str | os.PathLike[str], message_cls: type[M]) -> M:
    """Read the text-format file at ``path`` into a new ``message_cls``."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PrototxtError(f"{path}: could not open file ({reason})") from exc
    return parse_prototxt(data, message_cls, filename=path)


def to_text(message: Message) -> str:
    """Protobuf text format of ``message`` (exactly what pycaffe prints)."""
    return message_to_text(message)


def write_prototxt(message: Message, path: str | os.PathLike[str]) -> None:
    """Atomically write ``message`` to ``path`` in protobuf text format."""
    atomic_write(path, to_text(message))
