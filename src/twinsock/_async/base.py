"""What every ``AsyncSocket`` has: its loop, its transport, its claims, its waits, ``close``.

How this works.  An ``AsyncSocket`` belongs to the first running loop that
uses it.  A call that may wait first claims its side of the socket (one
reader and one writer at a time; a second one gets ``BusyError`` at once),
then parks at most one future per side, ``_read_waiter`` and
``_write_waiter``:

* a connected stream socket is driven by an asyncio transport whose protocol
  (``_async.protocol``) reports every event to the ``_on_*`` methods here;
  they fill the read buffer and resolve the parked futures;
* a listener or a datagram socket has no transport: it waits for readiness
  with an ``add_reader`` / ``add_writer`` callback that lives only as long
  as the wait (``_wait_fd``).

``close()`` takes every registration of the socket off the loop *before* the
file descriptor is closed, so nothing can fire on a number the OS hands out
again, then fails both parked futures with ``SocketClosedError``: every
waiter ends at once.  The TLS pump (``_async.tls``) works through the
methods of the "TLS pump" section, never on the fields themselves.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Coroutine, Generator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from twinsock._async import tls as _tls_async
from twinsock._async.protocol import WRITE_HIGH_WATER, protocol_for
from twinsock._async.wait import resolve as _resolve_in_executor
from twinsock._async.wait import until
from twinsock._base import SocketBase
from twinsock._core.buffer import READ_CHUNK
from twinsock._core.deadline import CLOSE_FLUSH_LIMIT, Deadline
from twinsock._core.targets import literal_targets
from twinsock.errors import BusyError, SocketClosedError

if TYPE_CHECKING:
    from twinsock._core.tls_engine import TlsEngine

__all__ = ["AsyncBase"]

T = TypeVar("T")

# Which add_reader / add_writer registrations a wait left on the loop.
_FD_READ = 1
_FD_WRITE = 2


class AsyncBase(SocketBase):
    """The loop-facing half of ``AsyncSocket`` (see the module's docstring)."""

    __slots__ = (
        "_attaching",
        "_fd_waits",
        "_loop",
        "_lost",
        "_lost_waiter",
        "_pause_above",
        "_read_error",
        "_read_waiter",
        "_reader",
        "_reading_paused",
        "_transport",
        "_wake_at",
        "_write_paused",
        "_write_waiter",
        "_writer",
    )

    def _init_async(self, sock: socket.socket, buffered: bool) -> None:
        self._init_base(sock, buffered)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._attaching: asyncio.Task[asyncio.Transport] | None = None
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        self._reader: str | None = None
        self._writer: str | None = None
        self._fd_waits = 0
        self._wake_at = 0
        self._read_error: BaseException | None = None
        self._lost: BaseException | None = None
        self._write_paused = False
        self._reading_paused = False
        self._pause_above = READ_CHUNK  # read-ahead before anyone reads

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        sock = self._sock
        if sock is None:
            return
        transport, self._transport = self._transport, None
        loop = self._loop
        if transport is not None and loop is not None and loop.is_closed():
            transport = None  # it cannot run any more: the socket is closed here
        if transport is not None:
            if self._tls is not None:
                self._tls_queue_close_notify(transport)
            transport.close()  # closes the socket once queued data is written
            if loop is not None and transport.get_write_buffer_size():  # ... unless never read
                loop.call_later(CLOSE_FLUSH_LIMIT, transport.abort)
            self._sock = None
            self._buf.clear()
        else:
            self._forget_fd_waits(sock)  # while the fd number is still ours
            self._close_native()
        self._buf.feed_eof()
        self._fail_waiters()

    async def aclose(self) -> None:
        """Close, and wait (about a second at most) for queued data to go out.

        As ``close``, but it also waits until the transport has written what
        was queued and, on TLS, the close_notify; a peer that does not take
        them in time gets the connection aborted.  ``async with`` calls it.

        Raises:
            RuntimeError: awaited outside a running event loop, or on another
                loop than the one the socket first ran on.
        """
        transport = self._transport
        lost = None
        if transport is not None and self._lost is None:
            lost = self._loop_now().create_future()
            self._lost_waiter = lost
        self.close()
        if lost is not None:
            try:
                async with asyncio.timeout(CLOSE_FLUSH_LIMIT):
                    await lost
            except TimeoutError:
                if transport is not None:
                    transport.abort()

    def _forget_fd_waits(self, sock: socket.socket) -> None:
        loop, waits = self._loop, self._fd_waits
        self._fd_waits = 0
        if loop is not None and waits and not loop.is_closed():
            if waits & _FD_READ:
                loop.remove_reader(sock.fileno())
            if waits & _FD_WRITE:
                loop.remove_writer(sock.fileno())

    def _fail_waiters(self) -> None:
        if self._loop is not None and self._loop.is_closed():
            return  # nothing runs there any more (and a future could not call back)
        for waiter, operation in (
            (self._read_waiter, self._reader),
            (self._write_waiter, self._writer),
        ):
            if waiter is not None and not waiter.done():
                waiter.set_exception(SocketClosedError(operation or "I/O"))
                waiter.exception()  # retrieved: a waiter cancelled meanwhile logs nothing

    # -- loop binding ------------------------------------------------------------------

    def _loop_now(self) -> asyncio.AbstractEventLoop:
        """The running loop, which must be the socket's own once it has one."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "AsyncSocket methods must be awaited inside a running event loop"
            ) from None
        loop = self._loop
        if loop is None:
            self._loop = running
            return running
        if loop is not running:
            if loop.is_closed():
                raise RuntimeError("the event loop this AsyncSocket was used on is closed")
            raise RuntimeError("this AsyncSocket belongs to another event loop")
        return loop

    async def _attached(self, operation: str) -> asyncio.Transport:
        """The transport of a connected stream socket, created on first use.

        Creating it is shielded from cancellation: a cancelled reader must not
        leave the socket half-owned by a transport nobody recorded.
        """
        transport = self._transport
        if transport is not None:
            return transport
        attaching = self._attaching
        if attaching is None:
            sock = self._open(operation)
            loop = self._loop_now()
            if sock.type != socket.SOCK_STREAM:
                raise OSError(errno.EOPNOTSUPP, f"{operation} needs a stream socket")
            self._check_connected(sock, operation)
            attaching = self._attaching = loop.create_task(self._attach(sock, operation))
        return await asyncio.shield(attaching)

    def _check_connected(self, sock: socket.socket, operation: str) -> None:
        try:
            sock.getpeername()
        except OSError:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not code:
                raise OSError(errno.ENOTCONN, f"{operation}: the socket is not connected") from None
            # The peer reset before we attached: a dead connection, like connection_lost.
            error = OSError(code, os.strerror(code))
            self._read_error = self._lost = error
            self._buf.feed_eof()
            raise error from None

    async def _attach(self, sock: socket.socket, operation: str) -> asyncio.Transport:
        loop = self._loop_now()
        protocol = protocol_for(loop)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol(self), sock=sock)
        finally:
            self._attaching = None  # a finished task would stay alive with the socket
        if self._sock is None:  # closed while attaching
            transport.close()
            raise SocketClosedError(operation)
        self._transport = transport
        return transport

    # -- claims: one reader and one writer at a time --------------------------------------

    def _begin_read(self, operation: str) -> None:
        """Claim the read side, or raise: one reader at a time, none on a closed socket."""
        if self._sock is None:
            raise SocketClosedError(operation)
        if self._reader is not None:
            raise BusyError(f"{operation}: another task is already reading ({self._reader})")
        self._reader = operation

    def _begin_write(self, operation: str) -> None:
        """Claim the write side, or raise: one writer at a time, none on a closed socket."""
        if self._sock is None:
            raise SocketClosedError(operation)
        if self._writer is not None:
            raise BusyError(f"{operation}: another task is already sending ({self._writer})")
        self._writer = operation

    @contextmanager
    def _reading(self, operation: str) -> Generator[None, None, None]:
        self._begin_read(operation)
        try:
            yield
        finally:
            self._reader = None

    @contextmanager
    def _writing(self, operation: str) -> Generator[None, None, None]:
        self._begin_write(operation)
        try:
            yield
        finally:
            self._writer = None

    # -- waiting -------------------------------------------------------------------------

    def _arm_read(
        self, operation: str, wake_at: int, pause_above: int | None = None
    ) -> asyncio.Future[None] | None:
        """A future the protocol resolves when data (``wake_at`` bytes; 0: any), the
        end of the stream or an error arrives; ``None`` if the transport must be made.

        The transport stops reading while more than ``pause_above`` bytes wait
        (default: what the read wants plus one chunk), so read-ahead is bounded.
        """
        if self._sock is None:
            raise SocketClosedError(operation)
        transport = self._transport
        if transport is None:
            return None
        loop = self._loop
        if loop is not _running_loop():
            loop = self._loop_now()  # raises the clear error
        assert loop is not None
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._wake_at = wake_at
        self._pause_above = wake_at + READ_CHUNK if pause_above is None else pause_above
        waiter = self._read_waiter = loop.create_future()
        if self._buf.eof:
            waiter.set_result(None)
        return waiter

    async def _attach_for_read(self, operation: str) -> None:
        """Make the transport; data may arrive meanwhile, so the caller looks again."""
        try:
            await self._attached(operation)
        except OSError:
            if not self._buf.eof:
                raise  # otherwise the dead connection reads as its end

    async def _wait_data(
        self, deadline: Deadline, wake_at: int, pause_above: int | None = None
    ) -> None:
        """Wait until the buffer holds ``wake_at`` bytes (0: any new data), the stream
        ends, or the deadline passes."""
        waiter = self._arm_read(deadline.operation, wake_at, pause_above)
        try:
            if waiter is None:
                await self._attach_for_read(deadline.operation)
            elif deadline.timeout is None:
                await waiter
            else:
                await until(waiter, deadline, self._loop)
        finally:
            self._read_waiter = None

    async def _wait_fd(self, sock: socket.socket, write: bool, deadline: Deadline) -> None:
        """Wait until ``sock`` (no transport) is writable, or readable, within ``deadline``.

        The loop watches the fd only during the wait; ``close()`` ends it.
        """
        loop = self._loop_now()
        fd = sock.fileno()
        waiter: asyncio.Future[None] = loop.create_future()
        if write:
            loop.add_writer(fd, _set_ready, waiter)
            self._write_waiter = waiter
            self._fd_waits |= _FD_WRITE
        else:
            loop.add_reader(fd, _set_ready, waiter)
            self._read_waiter = waiter
            self._fd_waits |= _FD_READ
        try:
            if deadline.timeout is None:
                await waiter
            else:
                await until(waiter, deadline, loop)
        finally:
            if write:
                self._write_waiter = None
                if self._fd_waits & _FD_WRITE:  # else close() took it off the loop
                    self._fd_waits &= ~_FD_WRITE
                    loop.remove_writer(fd)
            else:
                self._read_waiter = None
                if self._fd_waits & _FD_READ:
                    self._fd_waits &= ~_FD_READ
                    loop.remove_reader(fd)

    async def _pause(self, delay: float, deadline: Deadline) -> None:
        """Sleep ``delay`` seconds (at most until the deadline) as a write-side wait."""
        loop = self._loop_now()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(delay, _set_ready, waiter)
        self._write_waiter = waiter
        try:
            if deadline.timeout is None:
                await waiter
            else:
                await until(waiter, deadline, loop)
        finally:
            self._write_waiter = None
            timer.cancel()

    async def _while_open(self, job: Coroutine[Any, Any, T], *, write: bool = False) -> T:
        """Run ``job`` (a resolver call, a client's TLS handshake) as this socket's
        read-side (or write-side) wait: ``close()`` cancels it and raises
        ``SocketClosedError``.  The caller holds that side's claim."""
        loop = self._loop_now()
        task = loop.create_task(job)
        waiter: asyncio.Future[None] = loop.create_future()
        task.add_done_callback(partial(_job_done, waiter))
        if write:
            self._write_waiter = waiter
        else:
            self._read_waiter = waiter
        try:
            await waiter
        except BaseException:
            task.cancel()
            raise
        finally:
            if write:
                self._write_waiter = None
            else:
                self._read_waiter = None
        return task.result()

    async def _resolve(
        self, host: str, port: int, sock: socket.socket, deadline: Deadline, *, write: bool
    ) -> list[tuple[int, Any]]:
        """``(family, sockaddr)`` targets for ``host``; only a name waits (in the
        executor), as a wait of the claimed side ``write`` names."""
        targets = literal_targets(host, port, sock.family, sock.type)
        if targets is not None:
            return targets
        return await self._while_open(
            _resolve_in_executor(host, port, sock.family, sock.type, deadline, None), write=write
        )

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- transport events (called by _async.protocol) ------------------------------------

    def _on_connection_made(self, transport: asyncio.Transport) -> None:
        # Known before the first data arrives, so read-ahead can be paused at once.
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._transport = transport

    def _on_data(self, data: bytes) -> None:
        """Received bytes (ciphertext on a TLS socket): into the buffer, wake the reader.

        The protocol makes this the transport's ``data_received`` itself.
        """
        if self._tls is not None:
            _tls_async.received(self, data)
            return
        buf = self._buf
        size = buf.feed(data)
        waiter = self._read_waiter
        if waiter is not None and not waiter.done() and (
            self._wake_at == 0 or len(buf) >= self._wake_at
        ):
            waiter.set_result(None)
        if size > self._pause_above and self._transport is not None:
            # Nobody reads, or a line reader will find its line too long: stop
            # reading until the next read asks for more (bounded memory).
            self._transport.pause_reading()
            self._reading_paused = True

    def _on_eof(self) -> bool:
        if self._tls is not None:
            _tls_async.eof_received(self)
        else:
            self._buf.feed_eof()
            self._wake_reader()
        return True  # keep the write side open (half-close)

    def _on_lost(self, exc: BaseException | None) -> None:
        self._lost = exc if exc is not None else ConnectionResetError(
            errno.ECONNRESET, "connection lost"
        )
        if not self._buf.eof and exc is not None:
            self._read_error = exc
        self._buf.feed_eof()
        self._wake_reader()
        self._wake_writer()
        if self._lost_waiter is not None and not self._lost_waiter.done():
            self._lost_waiter.set_result(None)

    def _on_write_paused(self, paused: bool) -> None:
        self._write_paused = paused
        if not paused:
            self._wake_writer()

    # -- the TLS pump's access (called by _async.tls) ------------------------------------

    def _write_raw(self, data: bytes) -> None:
        """Send bytes as they are (TLS records), if the transport still takes them."""
        transport = self._transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def _store(self, data: bytes) -> None:
        """Append decrypted bytes to the read buffer (``_wake_ready`` wakes the reader)."""
        self._buf.feed(data)

    def _end_stream(self, error: BaseException | None = None) -> None:
        """The stream ended; ``error`` (if any) is what the next read raises."""
        if error is not None and not self._buf.eof:
            self._read_error = error
        self._buf.feed_eof()

    def _wake_ready(self) -> None:
        """Wake the reader if what it waits for has arrived (or the stream ended)."""
        waiter = self._read_waiter
        buf = self._buf
        if waiter is not None and not waiter.done() and (
            self._wake_at == 0 or buf.eof or buf.size_hint() >= self._wake_at
        ):
            waiter.set_result(None)

    def _install_engine(self, engine: TlsEngine) -> None:
        """Make ``engine`` this socket's TLS engine; ciphertext that arrived before it
        existed (and the end of the stream, if it came) goes into it first."""
        buf = self._buf
        early = buf.withdraw()  # not application data: out of bytes_received
        self._tls = engine
        if early:
            engine.receive(early)
        if buf.eof:
            engine.receive_eof()
            buf.eof = False  # the buffer now holds plaintext, which has not ended

    def _on_ciphertext(self, data: bytes | memoryview) -> None:
        """Received TLS records (the buffered protocol passes its view, uncopied)."""
        _tls_async.received(self, data)

    def _connection_lost(self) -> bool:
        return self._lost is not None

    def _tls_queue_close_notify(self, transport: asyncio.Transport) -> None:
        _tls_async.queue_close_notify(self, transport)

    async def _tls_handshake(
        self, deadline: Deadline, *, server_side: bool, hostname: str | None
    ) -> None:
        await _tls_async.handshake(self, deadline, server_side=server_side, hostname=hostname)

    async def _tls_accept(self, listener: SocketBase, deadline: Deadline) -> bool:
        self._tls_context = listener._tls_context
        return await _tls_async.accept_handshake(self, deadline)


def _set_ready(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _job_done(waiter: asyncio.Future[None], task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved here; the waiting call re-raises it
    _set_ready(waiter)


_running_loop = asyncio.get_running_loop
