"""``net.serve_lines``: the line-server callbacks on the blocking twin.

How this works.  ``serve_lines`` is ``net.serve`` with a handler made here:
each connection's thread calls ``on_connect``, then reads with ``recv_line``
(under ``call_timeout`` and ``max_length``) and calls ``on_line`` for every
line.  Lines that are already buffered are taken with ``read_line(timeout=0)``
before the replies of the burst (at most 256 lines) go out in one ``send``, as the async twin
writes once per received chunk.  ``on_close`` ends it.  Whatever escapes (a
line too long, a timeout, a callback's exception) is left to ``net.serve``,
which logs and counts it and closes the connection; a disconnection only
ends the connection.  Sends from another thread (another connection's
callback) take the connection's lock and go out at once, waiting at most
``call_timeout`` like any ``Socket.send``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from twinsock._blocking.server import Handler, Server, serve
from twinsock._blocking.socket import Socket
from twinsock._core.docs import BLOCKING, shared_doc, shared_docs
from twinsock._core.docs.lines import LINE_CONNECTION
from twinsock._core.docs.serving import FUNCTIONS
from twinsock._core.flags import is_disconnection_error
from twinsock._core.lines import (
    check_line_callbacks,
    check_line_max_length,
    endpoint,
    line_payload,
    raw_payload,
)
from twinsock._core.types import CRLF, DEFAULT_FLAGS, MAX_LINE_LENGTH, ReadLineResult
from twinsock.addresses import SocketAddress
from twinsock.errors import SocketClosedError
from twinsock.nativesockets import Domain
from twinsock.tls import SslContext

__all__ = ["LineConnection", "handler_for_lines", "serve_lines"]

#: At most this many lines are answered before their replies go out: each
#: ``read_line(timeout=0)`` may read one more chunk, so without a cap a peer
#: that floods and never reads would grow the burst's replies without end.
_BURST_LINES = 256

OnLine = Callable[["LineConnection", bytes], object]
OnConnect = Callable[["LineConnection"], object]
OnClose = Callable[["LineConnection", "BaseException | None"], object]


@shared_docs(LINE_CONNECTION, BLOCKING)
class LineConnection:
    """One connection of a blocking line server, as its callbacks see it.

    Inside this connection's own callbacks ``send_line`` and ``send`` queue
    their bytes with the burst's other replies (they go out in order, in one
    ``send``); from another thread they send at once.
    """

    __slots__ = ("_lock", "_open", "_out", "_sock", "_state", "_timeout")

    def __init__(self, sock: Socket, timeout: float | None) -> None:
        self._sock = sock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._open = True
        self._out: list[bytes] | None = None
        self._state: dict[Any, Any] | None = None

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<twinsock.net.LineConnection {state} {self._sock!r}>"

    def send_line(self, data: Any) -> None:
        if not self._open:
            raise SocketClosedError("send_line")
        self._queue(line_payload(data))

    def send(self, data: Any) -> None:
        if not self._open:
            raise SocketClosedError("send")
        self._queue(raw_payload(data))

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._out is None:  # called from another thread: wake the reader
            self._sock.close()

    def is_closed(self) -> bool:
        return not self._open

    @property
    def state(self) -> dict[Any, Any]:
        state = self._state
        if state is None:
            state = self._state = {}
        return state

    @property
    def peer(self) -> SocketAddress | str:
        return self._endpoint(self._sock.get_peer_addr())

    @property
    def local(self) -> SocketAddress | str:
        return self._endpoint(self._sock.get_local_addr())

    @property
    def bytes_received(self) -> int:
        return _counter(self._sock, "bytes_received")

    @property
    def bytes_sent(self) -> int:
        return _counter(self._sock, "bytes_sent")

    def _endpoint(self, address: tuple[str, int]) -> SocketAddress | str:
        if self._sock.domain == Domain.AF_UNIX:
            return address[0]
        return endpoint(address)

    def _queue(self, payload: bytes) -> None:
        out = self._out
        if out is not None:
            out.append(payload)
        elif payload:
            with self._lock:
                self._sock.send(payload, timeout=self._timeout)

    def _flush(self, out: list[bytes]) -> None:
        self._out = None
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            with self._lock:
                self._sock.send(data, timeout=self._timeout)


def _counter(sock: Socket, name: str) -> int:
    # The socket's application byte counters (SPEC section 3).
    return int(getattr(sock, name, 0))


def line_handler(
    on_line: OnLine,
    on_connect: OnConnect | None,
    on_close: OnClose | None,
    max_length: int,
    call_timeout: float | None,
) -> Callable[[Socket], None]:
    """The ``net.serve`` handler that runs the line callbacks in the connection's thread."""

    def handle(sock: Socket) -> None:
        conn = LineConnection(sock, call_timeout)
        out: list[bytes] = []
        reason: BaseException | None = None
        try:
            if on_connect is not None:
                conn._out = out
                try:
                    on_connect(conn)
                except BaseException:
                    with contextlib.suppress(OSError):
                        conn._flush(out)
                    raise
                conn._flush(out)
            while conn._open:
                line = sock.recv_line(call_timeout, DEFAULT_FLAGS, max_length)
                if not line:
                    break
                conn._out = out
                burst = _BURST_LINES
                try:
                    while True:
                        reply = on_line(conn, line)
                        if reply is not None:
                            out.append(line_payload(reply))
                        burst -= 1
                        if not conn._open or not burst:
                            break
                        # Lines already here are answered before the burst's replies go out.
                        status, line = sock.read_line(0, DEFAULT_FLAGS, max_length)
                        if status is not ReadLineResult.FULL_LINE:
                            break
                        line = line or CRLF
                except BaseException:
                    with contextlib.suppress(OSError):
                        conn._flush(out)  # the replies to the lines before
                    raise
                conn._flush(out)
        except SocketClosedError as exc:
            if not sock.is_closed():  # not this socket's: a callback's own error
                reason = exc
                raise
            # Closed by conn.close() from another thread or by the server's
            # shutdown: an orderly end.
        except OSError as exc:
            reason = exc
            if not is_disconnection_error(DEFAULT_FLAGS, exc):
                raise
            # The peer went away: the end of this connection, not an error.
        except BaseException as exc:
            reason = exc
            raise
        finally:
            conn._open = False
            if on_close is not None:
                on_close(conn, reason)

    return handle


def handler_for_lines(on_line: Any, options: dict[str, Any]) -> tuple[Handler, dict[str, Any]]:
    """``run_server(..., lines=True)``: the ``net.serve`` handler for ``on_line`` and
    the options left for ``serve`` once ``on_connect``, ``on_close`` and
    ``max_length`` are taken out.

    Raises:
        TypeError, ValueError: as ``serve_lines``.
    """
    rest = dict(options)
    on_connect = rest.pop("on_connect", None)
    on_close = rest.pop("on_close", None)
    check_line_callbacks(on_line, on_connect, on_close)
    max_length = check_line_max_length(rest.pop("max_length", MAX_LINE_LENGTH))
    handler = line_handler(on_line, on_connect, on_close, max_length, rest.get("call_timeout"))
    return handler, rest


@shared_doc(FUNCTIONS, "serve_lines", BLOCKING)
def serve_lines(
    on_line: OnLine,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    on_connect: OnConnect | None = None,
    on_close: OnClose | None = None,
    max_length: int = MAX_LINE_LENGTH,
    backlog: int = 1024,
    sock: socket.socket | Socket | int | None = None,
    ssl_context: SslContext | None = None,
    handshake_timeout: float = 10.0,
    max_connections: int = 10_000,
    call_timeout: float | None = None,
    reuse_port: bool = False,
) -> Server:
    check_line_callbacks(on_line, on_connect, on_close)
    max_length = check_line_max_length(max_length)
    handler = line_handler(on_line, on_connect, on_close, max_length, call_timeout)
    return serve(
        handler,
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
