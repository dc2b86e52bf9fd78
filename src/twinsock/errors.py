"""The whole twinsock exception hierarchy (SPEC section 0).

Every error twinsock raises on its own account derives from :class:`NetError`.
Each one also derives from the builtin exception a caller would naturally
catch (``ValueError``, ``TimeoutError``, ``OSError``, ``ssl.SSLError``), so
code written against the standard library keeps working.  Operating-system
failures (``ConnectionRefusedError``, ``BrokenPipeError``, ...) are never
wrapped: they surface as the builtin ``OSError`` subclasses.
"""

from __future__ import annotations

import errno
import ssl

__all__ = [
    "AddressError",
    "IncompleteRead",
    "LineTooLong",
    "NetError",
    "NetTimeout",
    "PskError",
    "SocketClosedError",
    "SslError",
]


class NetError(Exception):
    """Root of twinsock's own errors."""


class AddressError(NetError, ValueError):
    """A malformed IP address, a port out of range, or a family mismatch."""


class NetTimeout(NetError, TimeoutError):
    """A call's deadline expired; the message names the operation."""


class LineTooLong(NetError, ValueError):
    """A line exceeded ``max_length``; nothing was consumed from the buffer."""

    def __init__(self, max_length: int, message: str | None = None) -> None:
        self.max_length = max_length
        super().__init__(message or f"line longer than max_length={max_length} bytes")


class IncompleteRead(NetError, EOFError):
    """The stream ended before the separator ``recv_until`` waits for.

    ``partial`` holds the bytes that did arrive; they also stay in the socket's
    buffer, so the next read returns them.
    """

    def __init__(self, partial: bytes, separator: bytes | None = None) -> None:
        self.partial = partial
        self.separator = separator
        ending = "" if separator is None else f" before the separator {separator!r}"
        super().__init__(f"the stream ended{ending} after {len(partial)} bytes")


class SocketClosedError(NetError, OSError):
    """I/O was attempted on a closed socket (errno EBADF)."""

    def __init__(self, operation: str = "I/O") -> None:
        super().__init__(errno.EBADF, f"{operation} on a closed socket")


class SslError(NetError, ssl.SSLError):
    """A TLS failure: handshake, verification, truncation or misuse.

    ``SslError("why")`` reads as ``why`` (``ssl.SSLError`` alone would show the
    argument tuple); ``SslError(code, "why")`` keeps the ``OSError`` form.
    """

    def __str__(self) -> str:
        if self.strerror is None and len(self.args) == 1:
            return str(self.args[0])
        return super().__str__()


class PskError(SslError):
    """A pre-shared-key handshake failed (wrong key, unknown identity, callback error)."""
