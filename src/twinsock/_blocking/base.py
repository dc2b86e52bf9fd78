"""What every ``net.Socket`` has: its claims, ``close``, and the TLS hooks.

How this works.  Blocking calls run in whatever threads the application
has.  A call that is about to wait claims its side of the socket first: a
second reader or writer gets ``BusyError`` at once, and ``close()`` knows
who is waiting.  Calls that do not wait (a line already buffered) claim
nothing.  A claim is a one-item list, ``_read_claim`` or ``_write_claim``:
``pop()`` takes it, atomically (a list operation is one step for the
interpreter, with or without a GIL), ``append()`` gives it back, and an
empty list means "claimed".  It costs a third of a lock's ``acquire(False)``,
which matters on the echo path (one claim per ``recv_line`` that waits and
per ``send``).  Threads
may share a listener, so ``accept`` only counts its waiters (``_acceptors``).

``close()`` marks the socket closed at once.  If nobody waits, it closes the
file descriptor.  Otherwise it shuts the socket down, which wakes every
thread blocked on it (a reader gets end of stream, a writer ``EPIPE``, an
``accept`` or ``poll`` returns); each of them finds the socket closed and
raises ``SocketClosedError``.  The descriptor itself is closed by whoever
leaves last (``_finish_close``), so no waiter ever passes to the OS a
number that was closed and maybe handed out again.  On a TLS socket with no
writer busy, close_notify goes out between the two shutdowns (the read side
first, so a waiting reader cannot swallow it); a busy writer may hold the
pump's send lock for long, so then close_notify is skipped.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING

from twinsock._base import SocketBase
from twinsock._core.buffer import ReadBuffer
from twinsock._core.deadline import Deadline
from twinsock.errors import BusyError, SocketClosedError

if TYPE_CHECKING:
    from twinsock._core.tls_engine import TlsEngine

__all__ = ["BlockingBase"]

# Serialises the hand-over of a closed socket's descriptor (close and the last
# waiter leaving); never held while anything waits.
_CLOSE_LOCK = threading.Lock()


class _Closing:
    """A socket closed while calls waited on it: open until the last of them left."""

    __slots__ = ("closer_done", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closer_done = False


class BlockingBase(SocketBase):
    """The claims and the closing of ``net.Socket`` (see the module's docstring)."""

    __slots__ = ("_acceptors", "_closing", "_read_claim", "_write_claim")

    def _init_blocking(self, sock: socket.socket, buffered: bool) -> None:
        self._init_base(sock, buffered)
        self._read_claim = [True]
        self._write_claim = [True]
        self._acceptors = 0
        self._closing: _Closing | None = None

    # -- claims ----------------------------------------------------------------------------

    def _begin_read(self, operation: str) -> socket.socket:
        """Claim the read side for a call that is about to wait; the socket to wait on."""
        try:
            self._read_claim.pop()
        except IndexError:
            raise BusyError(f"{operation}: another thread is already reading") from None
        sock = self._sock
        if sock is None:
            self._end_read()
            raise SocketClosedError(operation)
        return sock

    def _end_read(self) -> None:
        self._read_claim.append(True)
        if self._sock is None:
            self._finish_close()

    def _begin_write(self, operation: str) -> socket.socket:
        """Claim the write side for a call that may wait; the socket to send on."""
        try:
            self._write_claim.pop()
        except IndexError:
            raise BusyError(f"{operation}: another thread is already sending") from None
        sock = self._sock
        if sock is None:
            self._end_write()
            raise SocketClosedError(operation)
        return sock

    def _end_write(self) -> None:
        self._write_claim.append(True)
        if self._sock is None:
            self._finish_close()

    def _begin_both(self, operation: str) -> socket.socket:
        """Claim both sides (connecting, handshaking: nobody else may use the socket)."""
        sock = self._begin_write(operation)
        try:
            self._begin_read(operation)
        except BaseException:
            self._end_write()
            raise
        return sock

    def _end_both(self) -> None:
        self._read_claim.append(True)
        self._end_write()

    def _begin_accept(self) -> socket.socket:
        """Count this thread among the listener's waiters; the socket to wait on."""
        with _CLOSE_LOCK:
            sock = self._sock
            if sock is None:
                raise SocketClosedError("accept")
            self._acceptors += 1
        return sock

    def _end_accept(self) -> None:
        with _CLOSE_LOCK:
            self._acceptors -= 1
        if self._sock is None:
            self._finish_close()

    def _closed_meanwhile(self) -> bool:
        """True once ``close()`` was called on a socket this thread still holds a claim
        on (the pump's own cleanup after a failed handshake does not count)."""
        return self._closing is not None

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        with _CLOSE_LOCK:
            sock = self._sock
            if sock is None:
                return
            closing = self._closing = _Closing(sock)
            self._sock = None
            accepting = self._acceptors > 0
        reading, writing = not self._read_claim, not self._write_claim
        try:
            if reading or writing or accepting:
                self._buf = ReadBuffer()  # a waiter may still hold the old one
                _shutdown(sock, socket.SHUT_RD)  # readers, accept and polls wake up
            if self._tls is not None and not writing:
                self._tls_close_notify(sock)
            if reading or writing or accepting:
                _shutdown(sock, socket.SHUT_RDWR)  # writers wake up
            else:
                self._buf.clear()
        finally:
            closing.closer_done = True
            self._finish_close()

    def _finish_close(self) -> None:
        """Close the descriptor once ``close()`` is done and no claim is held."""
        with _CLOSE_LOCK:
            closing = self._closing
            if (
                closing is None
                or not closing.closer_done
                or self._acceptors
                or not self._read_claim
                or not self._write_claim
            ):
                return
            self._closing = None
        closing.sock.close()

    # -- TLS hooks (twinsock._blocking.tls) ------------------------------------------------

    def _install_engine(self, engine: TlsEngine) -> None:
        """The handshake is done: reads and sends go through ``engine`` from now on."""
        self._tls = engine

    def _store(self, data: bytes) -> None:
        """Append decrypted bytes to the read buffer."""
        self._buf.feed(data)

    def _end_stream(self) -> None:
        """The (decrypted) stream ended."""
        self._buf.feed_eof()

    def _tls_handshake(
        self, deadline: Deadline, *, server_side: bool, hostname: str | None
    ) -> None:
        """The handshake of ``wrap_connected_socket``: both sides claimed."""
        self._begin_both(deadline.operation)
        try:
            self._tls_handshake_claimed(deadline, server_side=server_side, hostname=hostname)
        finally:
            self._end_both()

    def _tls_handshake_claimed(
        self, deadline: Deadline, *, server_side: bool, hostname: str | None
    ) -> None:
        from twinsock._blocking.tls import blocking_handshake

        try:
            blocking_handshake(self, deadline, server_side=server_side, hostname=hostname)
        except OSError:
            if self._closed_meanwhile():
                raise SocketClosedError(deadline.operation) from None
            raise

    def _tls_accept(self, listener: SocketBase, deadline: Deadline) -> bool:
        """Handshake with a client ``listener`` accepted (nobody else knows it yet)."""
        from twinsock._blocking.tls import blocking_accept_handshake

        self._tls_context = listener._tls_context
        return blocking_accept_handshake(self, deadline)

    def _tls_close_notify(self, sock: socket.socket) -> None:
        from twinsock._blocking.tls import blocking_close_notify

        blocking_close_notify(self, sock)


def _shutdown(sock: socket.socket, how: int) -> None:
    # Not connected: nothing to wake (an unconnected UDP socket is woken anyway).
    with contextlib.suppress(OSError):
        sock.shutdown(how)
