"""``asyncnet.serve_lines``: the section-10 ``AsyncServer`` with a protocol per connection.

How this works.  ``LineServer`` changes one thing in ``AsyncServer``: what
the accept loop does with an accepted socket (``_start``).  Instead of an
``AsyncSocket`` and a task, the socket gets a line protocol of its own
(``twinsock._async.lines``) through ``loop.connect_accepted_socket``: a
``BufferedProtocol`` on the stdlib loop, a plain one on uvloop, a TLS one
with ``ssl_context``.  Limits, counters, logging, back-off and shutdown stay
the server's; a shutdown first closes the connections that are idle.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, cast

from twinsock._async.line_connection import LineConnection
from twinsock._async.lines import (
    LineProtocol,
    OnClose,
    OnConnect,
    OnLine,
    protocol_for,
)
from twinsock._async.server import AsyncServer, open_listeners
from twinsock._core import serving as rules
from twinsock._core.docs import ASYNC, shared_doc
from twinsock._core.docs.serving import FUNCTIONS
from twinsock._core.lines import check_line_callbacks, check_line_max_length
from twinsock._core.targets import format_endpoint
from twinsock._core.types import MAX_LINE_LENGTH
from twinsock.tls import SslContext

__all__ = ["LineServer", "serve_lines"]


class LineServer(AsyncServer):
    """The ``AsyncServer`` that ``serve_lines`` returns: a protocol per connection.

    What it relies on in ``AsyncServer`` (the seam): the accept loop hands
    each accepted socket to ``_start(native, sockaddr)``; ``_conns`` maps a
    connection's key to ``(conn, peer, started)``, where ``conn`` has
    ``close()``, ``bytes_received`` and ``bytes_sent`` and the key has
    ``cancel()`` (the last resort of ``shutdown``); ``_finished(conn, peer,
    started)`` counts an ended connection and resumes accepting;
    ``_handler_failed(exc, peer)`` logs and counts an exception;
    ``_start_shutdown(grace)`` begins a shutdown (here: idle connections are
    closed at once).
    """

    def __init__(
        self,
        on_line: OnLine,
        on_connect: OnConnect | None,
        on_close: OnClose | None,
        max_length: int,
        listeners: list[socket.socket],
        options: rules.ServeOptions,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._on_line = on_line
        self._on_connect = on_connect
        self._on_close = on_close
        self._max_length = max_length
        self._protocol = protocol_for(loop, tls=options.ssl_context is not None)
        self._connecting: set[asyncio.Task[Any]] = set()
        super().__init__(_no_handler, listeners, options, loop)
        # The base class's connection table, keyed by protocol instead of task.
        self._lines = cast(dict[LineProtocol, tuple[LineConnection, str, float]], self._conns)

    def _start(self, native: socket.socket, sockaddr: Any) -> None:
        """The accept loop's hand-off: a protocol for the new connection, no task to serve it."""
        peer = format_endpoint(sockaddr)
        if native.family in (socket.AF_INET, socket.AF_INET6):
            native.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        proto = self._protocol(self)
        self._lines[proto] = (proto.conn, peer, time.monotonic())
        # connect_accepted_socket is a coroutine: this task ends once the transport
        # exists (asyncio's own accept path makes the same one per connection).
        task = self._loop.create_task(
            self._loop.connect_accepted_socket(lambda: proto, sock=native)
        )
        self._connecting.add(task)
        task.add_done_callback(lambda done: self._connected(done, proto, native))

    def _connected(
        self, task: asyncio.Task[Any], proto: LineProtocol, native: socket.socket
    ) -> None:
        self._connecting.discard(task)
        if task.cancelled() or task.exception() is not None:
            native.close()
            if proto.never_connected():
                self._line_ended(proto)

    def _line_ended(self, proto: LineProtocol) -> None:
        record = self._lines.pop(proto, None)
        if record is not None:
            conn, peer, started = record
            self._finished(cast(Any, conn), peer, started)

    def _start_shutdown(self, grace: float) -> asyncio.Task[None]:
        for proto in list(self._lines):
            proto.drain()
        return super()._start_shutdown(grace)


async def _no_handler(conn: Any) -> None:  # pragma: no cover - never called
    raise AssertionError("LineServer serves with protocols, not a handler")


@shared_doc(FUNCTIONS, "serve_lines", ASYNC)
async def serve_lines(
    on_line: OnLine,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    on_connect: OnConnect | None = None,
    on_close: OnClose | None = None,
    max_length: int = MAX_LINE_LENGTH,
    backlog: int = 1024,
    sock: socket.socket | Any | None = None,
    ssl_context: SslContext | None = None,
    handshake_timeout: float = 10.0,
    max_connections: int = 10_000,
    call_timeout: float | None = None,
    reuse_port: bool = False,
) -> AsyncServer:
    check_line_callbacks(on_line, on_connect, on_close)
    max_length = check_line_max_length(max_length)
    listeners, options = await open_listeners(
        host,
        port,
        backlog=backlog,
        sock=sock,
        ssl_context=ssl_context,
        handshake_timeout=handshake_timeout,
        max_connections=max_connections,
        call_timeout=call_timeout,
        reuse_port=reuse_port,
    )
    loop = asyncio.get_running_loop()
    return LineServer(on_line, on_connect, on_close, max_length, listeners, options, loop)
