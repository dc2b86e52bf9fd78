"""The rules of ``serve_lines`` (SPEC section 11) that both line-server shells share.

How this works.  A line server calls plain functions: ``on_line(conn, line)``
for every received line and, optionally, ``on_connect(conn)`` and
``on_close(conn, exc)``.  Both shells (``_async.lines``: an asyncio protocol
per connection; ``_blocking.lines``: a handler for ``net.serve``) check those
callbacks and the line limit here, before any socket exists, and turn what
``on_line`` returns into the bytes that go out with ``line_payload``, exactly
as ``send_line`` would send them: ``data + b"\\r\\n"``, where the empty-line
sentinel ``b"\\r\\n"`` that ``recv_line`` returns goes out as one ``b"\\r\\n"``
and a ``str`` as UTF-8.  Lines themselves are found by ``ReadBuffer``
(``take_lines`` for the async protocol, ``recv_line`` for the blocking twin).
"""

from __future__ import annotations

import inspect
from typing import Any

from twinsock._core.data import as_bytes
from twinsock._core.targets import sockaddr_text
from twinsock._core.types import CRLF
from twinsock.addresses import SocketAddress

__all__ = [
    "check_line_callbacks",
    "check_line_max_length",
    "endpoint",
    "line_payload",
    "raw_payload",
]


def _is_coroutine_function(func: Any) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def check_line_callbacks(on_line: Any, on_connect: Any, on_close: Any) -> None:
    """``on_line`` is a plain callable; ``on_connect`` / ``on_close`` are too, or ``None``.

    Raises:
        TypeError: a callback is not callable, or is a coroutine function
            (``serve_lines`` calls them straight from the receive path; use
            ``serve`` for a coroutine per connection).
    """
    for name, func, optional in (
        ("on_line", on_line, False),
        ("on_connect", on_connect, True),
        ("on_close", on_close, True),
    ):
        if func is None and optional:
            continue
        if not callable(func):
            raise TypeError(f"{name} must be callable, not {func!r}")
        if _is_coroutine_function(func):
            raise TypeError(
                f"{name} must be a plain function, not a coroutine function ({func!r}):"
                " serve_lines calls it for every line without a task; use serve for async def"
            )


def check_line_max_length(max_length: Any) -> int:
    """``serve_lines``' ``max_length``: an int >= 1.

    Raises:
        TypeError: not an int (``bool`` included).
        ValueError: below 1.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise TypeError(f"max_length must be an int, not {max_length!r}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, not {max_length}")
    return int(max_length)


def line_payload(data: Any) -> bytes:
    """The bytes ``send_line(data)`` puts on the wire: ``data + b"\\r\\n"``.

    The empty-line sentinel ``b"\\r\\n"`` goes out as one ``b"\\r\\n"``; a ``str``
    is encoded as UTF-8; any other bytes-like object is copied.

    Raises:
        TypeError: ``data`` is neither bytes-like nor ``str``.
    """
    if data.__class__ is not bytes:
        data = bytes(as_bytes(data))
    return CRLF if data == CRLF else data + CRLF


def raw_payload(data: Any) -> bytes:
    """The bytes ``send(data)`` puts on the wire (a copy of a mutable buffer).

    Raises:
        TypeError: ``data`` is neither bytes-like nor ``str``.
    """
    return data if data.__class__ is bytes else bytes(as_bytes(data))


def endpoint(sockaddr: Any) -> SocketAddress | str:
    """``LineConnection.peer`` / ``local``: a ``SocketAddress``, or the path of a Unix socket
    (``""`` for an unnamed one)."""
    if isinstance(sockaddr, tuple):
        return SocketAddress.from_sockaddr(sockaddr)
    return sockaddr_text(sockaddr)[0]
