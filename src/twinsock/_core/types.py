"""Flags, results and limits shared by both socket kinds (SPEC sections 3 and 5)."""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = [
    "BUFFER_SIZE",
    "CRLF",
    "DEFAULT_FLAGS",
    "MAX_LINE_LENGTH",
    "LineResult",
    "ReadLineResult",
    "SocketFlag",
]

#: The seed's buffer granule.  twinsock reads larger chunks (see ``READ_CHUNK``
#: in the buffer module); the constant is kept for compatibility.
BUFFER_SIZE = 4000

#: The default limit on a line's length, terminator not counted.
MAX_LINE_LENGTH = 1_000_000

#: What ``recv_line`` returns for an empty line, so it differs from end of stream.
CRLF = b"\r\n"


class SocketFlag(enum.Flag):
    """Flags for receive-side calls (Nim's ``SocketFlag``)."""

    #: Return data without consuming it.
    PEEK = enum.auto()
    #: Report a disconnection error while receiving as end of stream.
    SAFE_DISCONN = enum.auto()


#: The default for every receive-side call.  The shells compare against it by
#: identity to skip flag arithmetic on the hot path.
DEFAULT_FLAGS = SocketFlag.SAFE_DISCONN


class ReadLineResult(enum.Enum):
    """The outcome of ``read_line`` (the seed's ``ReadLineResult``)."""

    FULL_LINE = "full_line"
    PARTIAL_LINE = "partial_line"
    DISCONNECTED = "disconnected"
    NONE = "none"


class LineResult(NamedTuple):
    """``read_line``'s result: a status and the line (without its terminator)."""

    status: ReadLineResult
    line: bytes
