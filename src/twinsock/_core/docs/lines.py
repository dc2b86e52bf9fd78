r"""The texts of the two ``LineConnection`` classes (``serve_lines``' connections).

(``twinsock._core.docs`` says how ``$word`` works.)
"""

from __future__ import annotations

from twinsock._core.docs import Table

__all__ = ["LINE_CONNECTION"]

_TEXTS = {
    "send_line": r"""$send_verb ``data`` and ``b"\r\n"`` (the sentinel ``b"\r\n"`` goes out once).

        $send_how

        Args:
            data: the line without its terminator: bytes-like, or ``str``
                (sent as UTF-8).

        Raises:
            SocketClosedError: the connection is closed.
            TypeError: ``data`` is neither bytes-like nor ``str``.
            $send_errors
        """,
    "send": r"""$send_verb ``data`` as it is, with no line end added.

        $send_how

        Args:
            data: bytes-like, or ``str`` (sent as UTF-8).

        Raises:
            SocketClosedError: the connection is closed.
            TypeError: ``data`` is neither bytes-like nor ``str``.
            $send_errors
        """,
    "close": r"""Close after the queued output; closing a closed connection does nothing.

        No ``on_line`` call follows.  Called inside ``on_line``, that call's
        return value still goes out.
        """,
    "is_closed": r"""Tell whether the connection is closed.

        Returns:
            ``True`` once ``close()`` was called or the connection ended.
        """,
    "state": "The callbacks' own data for this connection (a dict, empty at first).",
    "peer": "The peer's address (the path for a Unix socket).",
    "local": "This end's address (the path for a Unix socket).",
    "bytes_received": "Application bytes received so far (plaintext on TLS).",
    "bytes_sent": "Application bytes $sent so far (plaintext on TLS).",
}

#: The ``LineConnection`` texts for both twins.
LINE_CONNECTION = Table(
    _TEXTS,
    {
        "send_verb": ("Send", "Queue"),
        "send_how": (
            "Inside this connection's own callbacks the bytes are queued with the\n"
            "burst's other replies (they go out in order, in one ``send``); from\n"
            "another thread they are sent at once, waiting at most ``call_timeout``.",
            "It never waits: the bytes are queued for the transport (inside\n"
            "``on_line`` they go out with the chunk's other replies, in order).\n"
            "While the unsent output is above the high-water mark the connection\n"
            "stops reading.",
        ),
        "send_errors": (
            "NetTimeout: (from another thread) the peer did not take the bytes\n"
            "    within ``call_timeout``.\n"
            "OSError: (from another thread) the connection failed\n"
            "    (``BrokenPipeError``, ``ConnectionResetError``, ...).",
            "",
        ),
        "sent": ("sent", "queued for sending"),
    },
)
