"""Receive-side flags and what counts as a disconnection: decisions both shells share.

How this works.  ``SAFE_DISCONN`` turns the errors of a peer that went away
into an end of stream; these helpers answer "does this error count?" and
"do these flags peek?" once, for every shell and the TLS pumps.  Sending
never hides a disconnection, and ``send_error`` gives it one class whatever
reported it: the kernel, an event loop's transport, or nothing at all.
"""

from __future__ import annotations

import errno
import os

from twinsock._core.types import DEFAULT_FLAGS, SocketFlag

__all__ = ["DISCONNECTION_ERRNOS", "is_disconnection_error", "is_peek", "is_safe", "send_error"]

#: The errors ``SAFE_DISCONN`` turns into an end of stream.
DISCONNECTION_ERRNOS = frozenset(
    {errno.ECONNRESET, errno.EPIPE, errno.ENETRESET, errno.ECONNABORTED}
)

_DISCONNECTION_TYPES = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def is_disconnection_error(flags: SocketFlag, error: OSError | int) -> bool:
    """Tell whether ``SAFE_DISCONN`` would report ``error`` as the end of the stream.

    The disconnections are ``ECONNRESET``, ``EPIPE``, ``ENETRESET`` and
    ``ECONNABORTED``; an error without an errno counts by its type
    (``ConnectionResetError``, ``BrokenPipeError``, ``ConnectionAbortedError``).

    Args:
        flags: the call's flags; without ``SAFE_DISCONN`` the answer is ``False``.
        error: an ``OSError``, or an errno number.

    Returns:
        ``True`` if ``flags`` has ``SAFE_DISCONN`` and ``error`` is a disconnection.

    Raises:
        TypeError: ``flags`` is not a ``SocketFlag``.
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


#: What a connection that is gone answers a send with, besides EPIPE itself:
#: Linux says EPIPE, but an event loop that already saw the reset may say
#: ENOTCONN (from getpeername) or ESHUTDOWN.
_BROKEN_PIPE_ERRNOS = frozenset({errno.EPIPE, errno.ENOTCONN, errno.ESHUTDOWN})


def send_error(error: BaseException | None) -> OSError:
    """The error a send into a failed connection raises, the same on every shell and loop.

    Args:
        error: what reported the failure: an ``OSError``, an event loop's own
            exception about its closed transport (uvloop raises
            ``RuntimeError``), or ``None`` when nothing said why.

    Returns:
        ``ConnectionResetError`` for a reset; ``BrokenPipeError`` for EPIPE,
        ENOTCONN, ESHUTDOWN, a closed transport or an unknown cause; any other
        ``OSError`` keeps its class and errno (``ETIMEDOUT``, ``EHOSTUNREACH``).
    """
    code = error.errno if isinstance(error, OSError) else None
    if code == errno.ECONNRESET:
        return ConnectionResetError(code, os.strerror(code))
    if code and code not in _BROKEN_PIPE_ERRNOS:
        assert isinstance(error, OSError)
        return type(error)(code, error.strerror or os.strerror(code))
    return BrokenPipeError(errno.EPIPE, "send on a broken connection")
