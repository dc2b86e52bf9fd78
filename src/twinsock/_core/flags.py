"""Receive-side flags and what counts as a disconnection: decisions both shells share.

How this works.  ``SAFE_DISCONN`` turns the errors of a peer that went away
into an end of stream; these helpers answer "does this error count?" and
"do these flags peek?" once, for every shell and the TLS pumps.
"""

from __future__ import annotations

import errno

from twinsock._core.types import DEFAULT_FLAGS, SocketFlag

__all__ = ["DISCONNECTION_ERRNOS", "is_disconnection_error", "is_peek", "is_safe"]

#: The errors ``SAFE_DISCONN`` turns into an end of stream.
DISCONNECTION_ERRNOS = frozenset(
    {errno.ECONNRESET, errno.EPIPE, errno.ENETRESET, errno.ECONNABORTED}
)

_DISCONNECTION_TYPES = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def is_disconnection_error(flags: SocketFlag, error: OSError | int) -> bool:
    """True if ``flags`` has ``SAFE_DISCONN`` and ``error`` is a disconnection.

    ``error`` is an ``OSError`` or an errno number.  An error without an
    errno counts by its type: ``ConnectionResetError``, ``BrokenPipeError``
    and ``ConnectionAbortedError`` are disconnections.
    """
    if not isinstance(flags, SocketFlag):
        raise TypeError(f"flags must be a SocketFlag, not {flags!r}")
    if SocketFlag.SAFE_DISCONN not in flags:
        return False
    if isinstance(error, OSError):
        if error.errno is None:
            return isinstance(error, _DISCONNECTION_TYPES)
        return error.errno in DISCONNECTION_ERRNOS
    return error in DISCONNECTION_ERRNOS


def is_safe(flags: SocketFlag) -> bool:
    """Whether receive-side ``flags`` ask to absorb disconnections."""
    return flags is DEFAULT_FLAGS or SocketFlag.SAFE_DISCONN in flags


def is_peek(flags: SocketFlag) -> bool:
    """Whether receive-side ``flags`` ask not to consume."""
    if flags is DEFAULT_FLAGS:
        return False
    if not isinstance(flags, SocketFlag):
        raise TypeError(f"flags must be a SocketFlag, not {flags!r}")
    return SocketFlag.PEEK in flags
