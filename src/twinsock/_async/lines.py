"""The line protocol behind ``asyncnet.serve_lines``: callbacks straight from the receive path.

How this works.  Each connection of a ``LineServer`` (``line_server.py``) is
one ``LineProtocol`` on the event loop's transport (a ``BufferedProtocol``
on the stdlib loop, whose plain protocol would allocate 256 KiB per read,
the plain one on uvloop; see ``protocol_for``).  Every received chunk goes
through ``ReadBuffer.take_lines``, which splits all its complete lines in
one call and keeps a partial one; ``on_line(conn, line)`` is called for
each, and what it returns (and what it passes to ``conn.send_line`` /
``conn.send`` meanwhile) is collected and written with one
``transport.write`` per chunk.  No task runs per line or per connection.

The limits of section 10 are transport events here: a line over
``max_length`` closes its connection; one timer per connection, re-armed
from a timestamp that each chunk with a line refreshes, closes a connection
that completes no line within ``call_timeout`` (or no TLS handshake within
``handshake_timeout``); reading pauses while the transport's unsent output is
above ``WRITE_HIGH_WATER`` and resumes below it.  TLS runs through twinsock's
own ``TlsEngine``, as ``AsyncSocket`` does: the handshake is driven by the
connection's own data events, so it never touches the accept path.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twinsock._async.line_connection import LineConnection
from twinsock._async.protocol import WRITE_HIGH_WATER
from twinsock._core import serving as rules
from twinsock._core.buffer import READ_CHUNK, LinesThenTooLong, ReadBuffer
from twinsock._core.lines import endpoint, line_payload
from twinsock._core.tls_engine import DEFAULT_READ_SIZE, TlsEngine
from twinsock._core.types import CRLF
from twinsock.errors import LineTooLong, NetTimeout, SocketClosedError, SslError

if TYPE_CHECKING:
    from twinsock._async.line_server import LineServer

__all__ = ["CLOSE_LINGER", "LineProtocol", "protocol_for"]

log = logging.getLogger("twinsock.server")

#: A connection closed with output still queued gets this long to deliver it
#: to a peer that reads; then it is aborted (a peer that never reads cannot
#: hold a closed connection open).  During a shutdown, ``_DRAIN_LINGER``.
CLOSE_LINGER = 10.0
_DRAIN_LINGER = 0.5

OnLine = Callable[["LineConnection", bytes], object]
OnConnect = Callable[["LineConnection"], object]
OnClose = Callable[["LineConnection", "BaseException | None"], object]

# Protocol phases.
_HANDSHAKE, _OPEN, _CLOSING, _CLOSED = range(4)

_monotonic = time.monotonic


class LineProtocol(asyncio.Protocol):
    """One connection: transport events in, callbacks out (uvloop's plain protocol)."""

    __slots__ = (
        "_after",
        "_app",
        "_buf",
        "_conn",
        "_draining",
        "_engine",
        "_max_length",
        "_on_line",
        "_out",
        "_phase",
        "_reason",
        "_server",
        "_stamp",
        "_stop",
        "_take_lines",
        "_timed",
        "_timer",
        "_transport",
        "_view",
        "_write",
    )

    def __init__(self, server: LineServer) -> None:
        self._server = server
        self._on_line = server._on_line
        self._max_length = server._max_length
        self._buf = ReadBuffer()
        self._take_lines = self._buf.take_lines
        self._conn = LineConnection(self)
        self._out: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._write: Callable[[bytes], object] = _discard
        self._engine: TlsEngine | None = None
        self._phase = _HANDSHAKE
        self._stop = False  # close after the lines being delivered
        self._draining = False  # shutting down: close once no line is half received
        self._after = False  # _stop or _draining: look again after the chunk
        self._timed = server._options.call_timeout is not None
        self._stamp = 0.0  # when the latest line completed
        self._timer: asyncio.TimerHandle | None = None
        self._reason: BaseException | None = None  # why we closed, for on_close
        self._app = False  # on_connect was called: on_close will be
        self._view = _read_into.view

    # -- transport events ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._transport = stream
        if self._phase >= _CLOSING:  # shutdown came first
            stream.close()
            return
        stream.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        context = self._server._options.ssl_context
        if context is None:
            self._write = stream.write
            self._opened()
            return
        try:
            self._engine = TlsEngine(context, server_side=True, server_hostname=None)
        except (OSError, ValueError) as exc:
            self._handshake_failed(exc)
            return
        self._write = self._write_tls
        self._arm(self._server._options.handshake_timeout)

    def data_received(self, data: bytes) -> None:
        """Plaintext arrived: deliver every complete line, write the replies once."""
        conn = self._conn
        conn._received += len(data)
        too_long = None
        try:
            lines = self._take_lines(data, self._max_length)
        except LineTooLong as exc:
            too_long = exc
            lines = exc.lines if isinstance(exc, LinesThenTooLong) else []
        if lines:  # (no data arrives once closing: the transport stops reading)
            if self._timed:
                self._stamp = _monotonic()
            on_line = self._on_line
            out = self._out
            conn._out = out
            try:
                for line in lines:
                    reply = on_line(conn, line or CRLF)
                    if reply is not None:
                        if reply.__class__ is bytes and reply != CRLF:
                            out.append(reply)
                            out.append(CRLF)
                        else:
                            out.append(line_payload(reply))
                    if self._stop:
                        break
            except Exception as exc:  # the callback's failure ends this connection only
                conn._out = None
                self._flush(out)
                self._callback_failed(exc, "on_line")
                return
            conn._out = None
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                conn._sent += len(data)
                self._write(data)
        if too_long is not None or self._after:
            self._after_batch(too_long)

    def eof_received(self) -> bool:
        if self._engine is not None:
            self._engine.receive_eof()
            self._tls_progress()
        else:
            self._close(None)  # the peer is done: send what is queued, then close
        return True  # we close ourselves, after the queued output

    def connection_lost(self, exc: Exception | None) -> None:
        if self._phase == _CLOSED:
            return
        self._phase = _CLOSED
        self._conn._open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        on_close = self._server._on_close
        if self._app and on_close is not None:
            reason = self._reason if self._reason is not None else exc
            try:
                on_close(self._conn, reason)
            except Exception as error:
                self._report(error, "on_close")
        self._server._line_ended(self)

    def pause_writing(self) -> None:
        # The peer does not read what we send: stop reading what it sends.
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()

    def resume_writing(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    # -- the connection's life ---------------------------------------------------------

    def _opened(self) -> None:
        """Plaintext may flow: call ``on_connect`` and start the ``call_timeout`` clock."""
        self._phase = _OPEN
        self._app = True
        self._stamp = _monotonic()
        call_timeout = self._server._options.call_timeout
        if call_timeout is not None:
            self._arm(call_timeout)
        on_connect = self._server._on_connect
        if on_connect is not None:
            conn = self._conn
            out = conn._out = self._out
            try:
                on_connect(conn)
            except Exception as exc:
                conn._out = None
                self._flush(out)
                self._callback_failed(exc, "on_connect")
                return
            conn._out = None
            if out:
                self._flush(out)
            if self._stop:
                self._after_batch(None)

    def _arm(self, delay: float) -> None:
        loop = self._server._loop
        self._timer = loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        """The connection's one timer: handshake limit, call_timeout, close linger."""
        self._timer = None
        phase = self._phase
        if phase == _OPEN:
            call_timeout = self._server._options.call_timeout
            assert call_timeout is not None
            left = self._stamp + call_timeout - _monotonic()
            if left > 0:
                self._arm(left)
                return
            peer = self._peer_text()
            self._fail(NetTimeout(f"serve_lines: no line from {peer} within {call_timeout:g} s"))
        elif phase == _HANDSHAKE:
            timeout = self._server._options.handshake_timeout
            self._handshake_failed(NetTimeout(f"TLS handshake timed out after {timeout:g} s"))
        elif phase == _CLOSING and self._transport is not None:
            self._transport.abort()  # the peer did not take the queued output in time

    def _close_soon(self) -> None:
        """``LineConnection.close``: now, or after the chunk being delivered."""
        if self._conn._out is not None:
            self._stop = self._after = True
        else:
            self._close(None)

    def _after_batch(self, too_long: LineTooLong | None) -> None:
        """A line was too long, a close was asked for during the callbacks, or a
        shutdown waits for the connection to be idle."""
        if too_long is not None:
            self._fail(LineTooLong(too_long.max_length))
        elif self._stop or not self._buf:
            self._close(None)

    def drain(self) -> None:
        """The server is shutting down: close now if no line is half received."""
        self._draining = self._after = True
        idle = self._phase == _OPEN and self._conn._out is None and not self._buf
        if idle or self._phase == _HANDSHAKE:
            self._close(None)

    @property
    def conn(self) -> LineConnection:
        """The connection as the callbacks see it."""
        return self._conn

    def never_connected(self) -> bool:
        """``connect_accepted_socket`` failed: mark the connection ended; True if it
        was not ended already (the server must then count it)."""
        if self._phase == _CLOSED:
            return False
        self._phase = _CLOSED
        self._conn._open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return True

    def cancel(self) -> None:
        """Abort now (the server's last resort at the end of a shutdown)."""
        self._close(None, abort=True)

    def _close(self, reason: BaseException | None, *, abort: bool = False) -> None:
        """Close: queued output first (bounded by the linger), close_notify on TLS."""
        if self._phase >= _CLOSING:
            return
        self._phase = _CLOSING
        self._conn._open = False
        self._reason = reason
        transport = self._transport
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if transport is None:
            return
        if abort:
            transport.abort()
            return
        engine = self._engine
        if engine is not None and engine.handshake_done:
            try:
                engine.start_close()
                self._send_tls_output()
            except (OSError, ValueError):
                pass
        transport.close()
        if transport.get_write_buffer_size():
            self._arm(_DRAIN_LINGER if self._draining else CLOSE_LINGER)

    def _fail(self, exc: BaseException) -> None:
        """A limit ended the connection: count it like an exception out of a handler."""
        self._server._handler_failed(exc, self._peer_text())
        self._close(exc, abort=isinstance(exc, NetTimeout))

    def _callback_failed(self, exc: Exception, name: str) -> None:
        self._report(exc, name)
        self._close(exc)

    def _report(self, exc: Exception, name: str) -> None:
        self._server._handler_failed(exc, f"{self._peer_text()} ({name})")

    def _handshake_failed(self, exc: BaseException) -> None:
        self._server._tally.handshake_failures += 1
        log.debug(rules.LOG_HANDSHAKE_FAILED, self._peer_text(), exc)
        if self._engine is not None:
            self._send_tls_output()  # the alert that says why
        self._close(exc, abort=isinstance(exc, NetTimeout))

    # -- writing -----------------------------------------------------------------------------

    def _flush(self, out: list[bytes]) -> None:
        """Write the chunk's replies in one go."""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if self._phase <= _OPEN:
            self._conn._sent += len(data)
            self._write(data)

    def _write_now(self, payload: bytes, operation: str) -> None:
        """A send outside this connection's callbacks (a timer, another connection's).

        The transport may have closed before ``connection_lost`` arrived (the
        peer went away): that is a closed connection, not a transport error
        in the sender's callback.
        """
        if self.transport_closing():
            raise SocketClosedError(operation)
        self._conn._sent += len(payload)
        self._write(payload)

    def transport_closing(self) -> bool:
        """True once the transport is closing or gone (the connection is closed)."""
        transport = self._transport
        return transport is None or transport.is_closing()

    def _write_tls(self, data: bytes) -> None:
        transport = self._transport
        engine = self._engine
        assert transport is not None and engine is not None
        transport.write(engine.encrypt(data))

    # -- TLS ------------------------------------------------------------------------------------

    def _send_tls_output(self) -> None:
        engine = self._engine
        transport = self._transport
        if engine is not None and transport is not None and engine.outgoing.pending:
            transport.write(engine.data_to_send())

    def _tls_progress(self) -> None:
        """Ciphertext (or the end of it) arrived: handshake, then decrypt and deliver."""
        engine = self._engine
        assert engine is not None
        if self._phase == _HANDSHAKE:
            try:
                done = engine.do_handshake()
            except (OSError, ValueError) as exc:  # SslError is an OSError
                self._handshake_failed(exc)
                return
            self._send_tls_output()
            if not done:
                return
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._opened()
        pieces: list[bytes] = []
        ended = False
        try:
            while True:
                plain = engine.read(DEFAULT_READ_SIZE)
                if plain is None:
                    break
                if not plain:
                    ended = True
                    break
                pieces.append(plain)
        except SslError as exc:
            if pieces:
                LineProtocol.data_received(self, b"".join(pieces))
            self._send_tls_output()
            self._close(exc, abort=True)
            return
        self._send_tls_output()  # a key update answer, an alert
        if pieces and self._phase == _OPEN:
            LineProtocol.data_received(self, pieces[0] if len(pieces) == 1 else b"".join(pieces))
        if ended:
            self._close(None)

    # -- information ----------------------------------------------------------------------------

    def _sockaddr(self, which: str) -> Any:
        transport = self._transport
        if transport is None:
            raise SocketClosedError(which)
        return transport.get_extra_info(which)

    def _peer_text(self) -> str:
        transport = self._transport
        if transport is None:
            return "(not connected)"
        try:
            value = endpoint(transport.get_extra_info("peername"))
        except (OSError, ValueError, TypeError):
            return "(unknown peer)"
        return str(value) or "(unnamed)"


def _discard(data: bytes) -> None:
    return None


class _TlsLineProtocol(LineProtocol):
    """TLS on uvloop: ciphertext into the engine, plaintext into the line path."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        engine = self._engine
        if engine is None or self._phase >= _CLOSING:
            return
        engine.receive(data)
        self._tls_progress()


class _ReadInto(threading.local):
    """One receive buffer per event loop thread: the transport reads into it and
    the bytes are copied out at once, so idle connections cost no buffer."""

    def __init__(self) -> None:
        self.view = memoryview(bytearray(READ_CHUNK))


_read_into = _ReadInto()


class _BufferedLineProtocol(LineProtocol, asyncio.BufferedProtocol):
    """The stdlib loop's fast path: it reads into a shared buffer, not a fresh 256 KiB one."""

    __slots__ = ()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._view[:nbytes]))


class _BufferedTlsLineProtocol(_TlsLineProtocol, asyncio.BufferedProtocol):
    """TLS on the stdlib loop: the ciphertext goes from the shared buffer into the engine."""

    __slots__ = ()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        engine = self._engine
        if engine is None or self._phase >= _CLOSING:
            return
        engine.receive(self._view[:nbytes])
        self._tls_progress()


def protocol_for(loop: asyncio.AbstractEventLoop, *, tls: bool) -> type[LineProtocol]:
    """The protocol class for ``loop``: buffered on the stdlib selector loop (whose
    plain protocol allocates 256 KiB per read), plain on uvloop; TLS or not."""
    buffered = isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop)
    if tls:
        return _BufferedTlsLineProtocol if buffered else _TlsLineProtocol
    return _BufferedLineProtocol if buffered else LineProtocol
