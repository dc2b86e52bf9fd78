"""Argument checks and data rules shared by both shells, so both behave alike."""

from __future__ import annotations

import operator
from typing import Any

from twinsock._core.types import CRLF

__all__ = [
    "as_bytes",
    "check_max_length",
    "check_separator",
    "check_size",
    "line_to_send",
    "recv_into_target",
]


def as_bytes(data: Any) -> bytes | bytearray | memoryview:
    """Accept a bytes-like object or a ``str`` (encoded as UTF-8) for sending."""
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, memoryview):
        return data.cast("B") if data.format != "B" or data.ndim != 1 else data
    try:
        return memoryview(data).cast("B")
    except TypeError:
        raise TypeError(
            f"data to send must be bytes-like or str, not {type(data).__name__}"
        ) from None


def line_to_send(data: Any) -> bytes:
    """What ``send_line(data)`` sends: ``data`` and ``b"\\r\\n"``.

    The empty-line sentinel ``b"\\r\\n"`` that ``recv_line`` returns goes out
    as one ``b"\\r\\n"``, so relaying ``recv_line`` results keeps every line as
    it was.  ``str`` is encoded as UTF-8.
    """
    if data.__class__ is not bytes:
        data = as_bytes(data)
    if data == CRLF:
        return CRLF
    return b"".join((data, CRLF))


def check_separator(separator: Any) -> bytes:
    """A ``recv_until`` separator: non-empty bytes-like (``str`` is refused: the
    bytes on the wire are what is searched)."""
    if separator.__class__ is not bytes:
        try:
            if isinstance(separator, str):
                raise TypeError
            separator = memoryview(separator).tobytes()
        except TypeError:
            kind = type(separator).__name__
            raise TypeError(f"separator must be bytes-like, not {kind}") from None
    if not separator:
        raise ValueError("separator must not be empty")
    return bytes(separator)


def check_size(size: Any, name: str = "size") -> int:
    """A byte count: a non-negative integer."""
    try:
        value = operator.index(size)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(size).__name__}") from None
    if isinstance(size, bool):
        raise TypeError(f"{name} must be an int, not bool")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {value}")
    return value


def check_max_length(max_length: Any) -> int:
    """A line-length limit: a non-negative integer."""
    return check_size(max_length, "max_length")


def recv_into_target(buffer: Any, size: Any) -> memoryview:
    """The writable byte view ``recv_into`` fills: ``size`` bytes of ``buffer``."""
    try:
        view = memoryview(buffer)
    except TypeError:
        kind = type(buffer).__name__
        raise TypeError(f"buffer must be a writable bytes-like object, not {kind}") from None
    if view.readonly:
        raise TypeError("buffer must be writable (bytearray, memoryview, array, ...)")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if size is None:
        return view
    size = check_size(size)
    if size > len(view):
        raise ValueError(f"size {size} is larger than the buffer ({len(view)} bytes)")
    return view[:size]
