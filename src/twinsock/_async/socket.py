"""The async shell's socket: ``asyncnet.AsyncSocket``.

How this works.  ``AsyncSocket`` is the twin of ``net.Socket``: the same
``SocketBase`` (everything that does not wait) and the same sans-I/O core
(read buffer, deadlines, Happy Eyeballs plan); only the waiting differs.

* A connected stream socket is driven by an asyncio transport (the default
  loop's or uvloop's) and a small ``Protocol`` that pushes every received
  chunk into the read buffer.  The socket stays registered with the loop, so
  no wait ever re-registers it, and a read the buffer can already answer
  completes without suspending.
* A waiting read parks one future (``_read_waiter``) that the protocol
  resolves when data, end of stream or an error arrives.  Nothing is consumed
  until a read completes, so cancelling a waiting coroutine loses nothing.
* ``send`` hands data to the transport, which writes to the OS at once when
  it can; it waits only while the transport holds more than
  ``WRITE_HIGH_WATER`` bytes, and feeds large payloads in slices so memory
  stays bounded when the peer does not read.
* Listening and datagram sockets have no transport: they try the system call
  first and wait for readiness with ``add_reader`` / ``add_writer`` only on
  ``BlockingIOError`` (uvloop has no ``sock_recvfrom``, so none is used).
"""
from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from twinsock._async import tls as _tls_async
from twinsock._async.protocol import WRITE_HIGH_WATER, protocol_for
from twinsock._async.wait import deadline_scope, resolve, until, wait_fd
from twinsock._base import SocketBase
from twinsock._core.buffer import BATCHED_LINE_MAX, READ_CHUNK
from twinsock._core.data import (
    as_bytes,
    check_max_length,
    check_separator,
    check_size,
    line_to_send,
    recv_into_target,
)
from twinsock._core.deadline import Deadline, check_timeout, is_valid_timeout
from twinsock._core.eyeballs import Attempts
from twinsock._core.flags import is_disconnection_error, is_peek, is_safe
from twinsock._core.targets import check_family, format_endpoint, sockaddr_text, unix_path
from twinsock._core.types import (
    DEFAULT_FLAGS,
    MAX_LINE_LENGTH,
    LineResult,
    ReadLineResult,
    SocketFlag,
)
from twinsock.addresses import check_port
from twinsock.errors import NetTimeout, SocketClosedError
from twinsock.nativesockets import Domain, Protocol, SockType

__all__ = ["AsyncSocket"]

_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


class AsyncSocket(SocketBase):
    """An asyncio socket with a read buffer, line reading and deadlines."""

    __slots__ = (
        "_attaching",
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

    def __init__(
        self,
        domain: Domain | int = Domain.AF_INET,
        sock_type: SockType | int = SockType.SOCK_STREAM,
        protocol: Protocol | int = Protocol.IPPROTO_TCP,
        *,
        buffered: bool = True,
        inheritable: bool = False,
    ) -> None:
        sock = self._new_native(domain, sock_type, protocol, inheritable)
        sock.setblocking(False)
        self._init_async(sock, buffered)

    @classmethod
    def from_native(cls, sock: socket.socket | int, *, buffered: bool = True) -> AsyncSocket:
        """Adopt an existing ``socket.socket`` (or file descriptor); it becomes non-blocking."""
        native = cls._adopt_native(sock)
        native.setblocking(False)
        self = cls.__new__(cls)
        self._init_async(native, buffered)
        return self

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
        self._wake_at = 0
        self._read_error: BaseException | None = None
        self._lost: BaseException | None = None
        self._write_paused = False
        self._reading_paused = False
        self._pause_above = READ_CHUNK  # read-ahead before anyone reads

    async def __aenter__(self) -> AsyncSocket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else self._where()
        return f"<twinsock.asyncnet.AsyncSocket {state}>"

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Close now (idempotent).  TLS: close_notify is queued, not awaited (see ``aclose``)."""
        if self._sock is None:
            return
        transport, self._transport = self._transport, None
        if self._tls is not None and transport is not None:
            self._tls_queue_close_notify(transport)
        if transport is not None:
            transport.close()  # closes the socket once queued data is written
            self._sock = None
            self._buf.clear()
        else:
            self._close_native()
        self._buf.feed_eof()
        self._wake_reader()
        self._wake_writer()

    async def aclose(self) -> None:
        """Close, waiting (bounded) for queued data and the TLS close_notify to go out."""
        transport = self._transport
        lost = None
        if transport is not None and self._lost is None:
            lost = self._loop_now().create_future()
            self._lost_waiter = lost
        self.close()
        if lost is not None:
            try:
                async with asyncio.timeout(1.0):
                    await lost
            except TimeoutError:
                if transport is not None:
                    transport.abort()

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

    # -- connecting ----------------------------------------------------------------------

    async def connect(self, address: str, port: int, timeout: float | None = None) -> None:
        """Connect to ``address:port``, trying each resolved address of the socket's family.

        One deadline covers resolution, every attempt and the TLS handshake.
        """
        timeout = self._timeout(timeout)
        sock = self._open("connect")
        loop = self._loop_now()
        port = check_port(port)
        deadline = Deadline(timeout, "connect")
        check_family(address, sock.family)
        with deadline_scope(deadline, loop):
            targets = await resolve(address, port, sock.family, sock.type, deadline, None)
            attempts: Attempts[str] = Attempts([format_endpoint(t[1]) for t in targets])
            for _family, sockaddr in targets:
                attempts.next_target(time.monotonic())
                try:
                    await loop.sock_connect(sock, sockaddr)
                    break
                except OSError as exc:
                    attempts.failed(format_endpoint(sockaddr), exc, time.monotonic())
            else:
                raise attempts.final_error(f"connect {address}")
            if sock.type == socket.SOCK_STREAM:
                await self._attached("connect")
            if self._tls_context is not None:
                await self._tls_handshake(deadline, server_side=False, hostname=address)

    async def connect_unix(self, path: str, timeout: float | None = None) -> None:
        """Connect an AF_UNIX socket to ``path`` (``"\\0name"``: abstract)."""
        timeout = self._timeout(timeout)
        sock = self._open("connect_unix")
        loop = self._loop_now()
        target = unix_path(sock, path)
        deadline = Deadline(timeout, "connect_unix")
        with deadline_scope(deadline, loop):
            await loop.sock_connect(sock, target)
            if sock.type == socket.SOCK_STREAM:
                await self._attached("connect_unix")

    async def accept(
        self,
        flags: SocketFlag = DEFAULT_FLAGS,
        timeout: float | None = None,
        inheritable: bool = False,
    ) -> AsyncSocket:
        """Wait for a client; it inherits ``buffered`` (and TLS, handshake done)."""
        return (await self.accept_addr(flags, timeout, inheritable))[0]

    async def accept_addr(
        self,
        flags: SocketFlag = DEFAULT_FLAGS,
        timeout: float | None = None,
        inheritable: bool = False,
    ) -> tuple[AsyncSocket, str]:
        """Wait for a client; return it and its address text (IPv6 text for IPv6)."""
        timeout = self._timeout(timeout)
        sock = self._open("accept")
        loop = self._loop_now()
        safe = is_safe(flags)
        deadline = Deadline(timeout, "accept")
        while True:
            try:
                conn, sockaddr = sock.accept()
            except BlockingIOError:
                await wait_fd(loop, sock, False, deadline, self)
                continue
            except OSError as exc:
                if safe and is_disconnection_error(flags, exc):
                    continue
                raise
            code = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if safe and code and is_disconnection_error(DEFAULT_FLAGS, code):
                conn.close()
                continue
            if inheritable:
                conn.set_inheritable(True)
            client = AsyncSocket.from_native(conn, buffered=self._buffered)
            client._loop = loop
            await client._attached("accept")
            if self._tls_context is not None and not await client._tls_accept(self, deadline):
                continue
            return client, sockaddr_text(sockaddr)[0]

    # -- receiving ---------------------------------------------------------------------

    async def recv_line(
        self,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
        max_length: int = MAX_LINE_LENGTH,
    ) -> bytes:
        """Read a line (SPEC section 5): without its terminator, ``b"\\r\\n"`` for an
        empty line, ``b""`` at end of stream.  Raises ``NetTimeout``, ``LineTooLong``."""
        ready = self._buf.ready  # lines as recv_line returns them, none too long
        if (
            ready
            and flags is DEFAULT_FLAGS
            and self._reader is None
            and (timeout is None or is_valid_timeout(timeout))
            and max_length >= BATCHED_LINE_MAX
        ):
            return ready.pop()
        # The slow path is inline (not a helper coroutine): every wait resumes
        # through one frame fewer, which the echo benchmark measures.
        timeout = self._timeout(timeout)
        self._begin_read("recv_line")
        try:
            if max_length.__class__ is not int or max_length < 0:
                max_length = check_max_length(max_length)
            peek = False if flags is DEFAULT_FLAGS else is_peek(flags)
            buf = self._buf
            deadline = None
            # An empty buffer cannot hold a line: wait first (the echo case).
            # After a wake-up, search at once: something arrived.
            search = bool(buf) or buf.eof
            while True:
                got = buf.recv_line(max_length, peek=peek) if search else None
                if got is not None:
                    if not got:
                        self._raise_read_error(flags)
                    return got
                search = True
                waiter = self._arm_read("recv_line", 0, max_length + 1)
                if waiter is None:
                    await self._attach_for_read("recv_line")
                elif timeout is None:
                    await waiter
                else:
                    if deadline is None:
                        deadline = Deadline(timeout, "recv_line")
                    await until(waiter, deadline, self._loop)
        finally:
            self._reader = None
            self._read_waiter = None

    async def recv_line_into(
        self,
        buffer: bytearray,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
        max_length: int = MAX_LINE_LENGTH,
    ) -> None:
        """``recv_line`` into ``buffer`` (a bytearray, cleared first)."""
        if timeout is not None:
            check_timeout(timeout)
        if not isinstance(buffer, bytearray):
            raise TypeError(f"buffer must be a bytearray, not {type(buffer).__name__}")
        line = await self.recv_line(timeout, flags, max_length)
        buffer.clear()
        buffer += line

    async def read_line(
        self,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
        max_length: int = MAX_LINE_LENGTH,
    ) -> LineResult:
        """Read a line without sentinels; a timeout gives ``ReadLineResult.NONE``."""
        timeout = self._timeout(timeout)
        self._open("read_line")
        max_length = check_max_length(max_length)
        peek = is_peek(flags)
        buf = self._buf
        with self._reading("read_line"):
            deadline = None
            while True:
                result = buf.read_line(max_length, peek=peek)
                if result is not None:
                    if result.status is ReadLineResult.DISCONNECTED:
                        self._raise_read_error(flags)
                    return result
                if deadline is None:
                    deadline = Deadline(timeout, "read_line")
                try:
                    await self._wait_data(deadline, 0, max_length + 1)
                except NetTimeout:
                    return LineResult(ReadLineResult.NONE, b"")

    async def recv(
        self, size: int, timeout: float | None = None, flags: SocketFlag = DEFAULT_FLAGS
    ) -> bytes:
        """Buffered: wait for ``size`` bytes (short only at end of stream).
        Unbuffered: what arrived, at least one byte; ``b""`` at end of stream."""
        buf = self._buf
        if (
            flags is DEFAULT_FLAGS
            and size.__class__ is int
            and self._reader is None
            and self._sock is not None
            and (timeout is None or is_valid_timeout(timeout))
            and 0 < size <= len(buf)
        ):
            return buf.take(size)
        timeout = self._timeout(timeout)
        self._open("recv")
        size = check_size(size)
        peek = is_peek(flags)  # bad flags fail before any wait
        if size == 0:
            return b""
        with self._reading("recv"):
            await self._fill_to(size, timeout, flags, "recv")
            data = buf.peek(size) if peek else buf.take(size)
            if not data:
                self._raise_read_error(flags)
            return data

    async def recv_into(
        self,
        buffer: Any,
        size: int | None = None,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
    ) -> int:
        """Like ``recv``, into a writable buffer."""
        timeout = self._timeout(timeout)
        self._open("recv_into")
        view = recv_into_target(buffer, size)
        size = len(view)
        if size == 0:
            return 0
        buf = self._buf
        peek = is_peek(flags)  # bad flags fail before any wait
        with self._reading("recv_into"):
            await self._fill_to(size, timeout, flags, "recv_into")
            if peek:
                data = buf.peek(size)
                view[: len(data)] = data
                n = len(data)
            else:
                n = buf.take_into(view[:size])
            if not n:
                self._raise_read_error(flags)
            return n

    async def skip(self, size: int, timeout: float | None = None) -> int:
        """Discard up to ``size`` bytes (fewer only at end of stream); return how many."""
        timeout = self._timeout(timeout)
        self._open("skip")
        size = check_size(size)
        buf = self._buf
        with self._reading("skip"):
            skipped = buf.skip(size)
            deadline = None
            while skipped < size and not buf.eof:
                if deadline is None:
                    deadline = Deadline(timeout, "skip")
                await self._wait_data(deadline, 1)
                skipped += buf.skip(size - skipped)
            return skipped

    async def recv_from(
        self, size: int, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> tuple[bytes, str, int]:
        """Receive one datagram: data (truncated to ``size``), sender address, port."""
        timeout = self._timeout(timeout)
        sock = self._open("recv_from")
        loop = self._loop_now()
        size = check_size(size)
        os_flags = socket.MSG_PEEK if is_peek(flags) else 0
        deadline = Deadline(timeout, "recv_from")
        with self._reading("recv_from"):
            while True:
                try:
                    data, sockaddr = sock.recvfrom(size, os_flags)
                except BlockingIOError:
                    await wait_fd(loop, sock, False, deadline, self)
                    continue
                self._buf.received += len(data)
                host, port = sockaddr_text(sockaddr) if sockaddr is not None else ("", 0)
                return data, host, port

    async def recv_until(
        self,
        separator: Any,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
        max_length: int = MAX_LINE_LENGTH,
    ) -> bytes:
        """Read up to and including ``separator``; ``b""`` at end of stream with
        nothing buffered.  Raises ``LineTooLong``, ``IncompleteRead`` (the bytes
        stay buffered), ``NetTimeout`` (see ``Socket.recv_until``)."""
        timeout = self._timeout(timeout)
        self._open("recv_until")
        separator = check_separator(separator)
        max_length = check_max_length(max_length)
        peek = is_peek(flags)
        buf = self._buf
        with self._reading("recv_until"):
            deadline = None
            while True:
                got = buf.until(separator, max_length, peek=peek)
                if got is not None:
                    if not got:
                        self._raise_read_error(flags)
                    return got
                if deadline is None:
                    deadline = Deadline(timeout, "recv_until")
                await self._wait_data(deadline, 0, max_length + len(separator))

    # -- sending -------------------------------------------------------------------------

    async def send(
        self, data: Any, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> None:
        """Send all of ``data``; returns once it is handed to the OS or queued below
        ``WRITE_HIGH_WATER``.  A broken connection raises."""
        timeout = self._default_timeout if timeout is None else check_timeout(timeout)
        transport = self._transport
        if data.__class__ is not bytes:
            data = as_bytes(data)
        if transport is not None and self._writer is None and len(data) <= WRITE_HIGH_WATER:
            self._write_now(transport, data)
            if self._write_paused or transport.is_closing():
                await self._after_write(timeout)
            return
        await self._send_slow(data, timeout)

    async def _send_slow(self, data: Any, timeout: float | None) -> None:
        self._open("send")
        check_timeout(timeout)
        if self._writer is not None:
            raise RuntimeError(f"send: another task is already sending ({self._writer})")
        if self._sock is not None and self._sock.type != socket.SOCK_STREAM:
            await self._send_datagram(data, timeout)
            return
        transport = await self._attached("send")
        view = memoryview(data).cast("B")
        for start in range(0, max(len(view), 1), WRITE_HIGH_WATER):
            self._write_now(transport, view[start : start + WRITE_HIGH_WATER])
            if self._write_paused or transport.is_closing():
                await self._after_write(timeout)

    async def _after_write(self, timeout: float | None) -> None:
        """Wait below the high-water mark; raise if the connection broke."""
        transport = self._transport
        self._writer = "send"
        try:
            if transport is None or transport.is_closing():
                await self._raise_send_error()
            if self._write_paused:
                deadline = Deadline(timeout, "send")
                loop = self._loop_now()
                while self._write_paused and self._lost is None:
                    waiter = loop.create_future()
                    self._write_waiter = waiter
                    with deadline_scope(deadline, loop):
                        await waiter
                if self._lost is not None:
                    await self._raise_send_error()
        finally:
            self._writer = None
            self._write_waiter = None

    async def _raise_send_error(self) -> None:
        if self._sock is None:
            raise SocketClosedError("send")
        if self._lost is None:
            # The transport failed during write(); connection_lost arrives next.
            waiter = self._loop_now().create_future()
            self._lost_waiter = waiter
            try:
                async with asyncio.timeout(1.0):
                    await waiter
            except TimeoutError:
                pass
        error = self._lost
        if isinstance(error, OSError) and error.errno not in (None, 0):
            raise type(error)(error.errno, error.strerror)
        raise BrokenPipeError(errno.EPIPE, "send on a broken connection")

    def try_send(self, data: Any) -> bool:
        """Queue ``data`` without waiting; ``False`` if the socket is closed, broken,
        or its write queue is above the high-water mark."""
        transport = self._transport
        if (
            transport is None
            or transport.is_closing()
            or self._write_paused
            or self._writer is not None
            or self._lost is not None
        ):
            return False
        try:
            self._write_now(transport, as_bytes(data))
        except (OSError, TypeError, RuntimeError):
            return False
        return not transport.is_closing()

    async def send_to(
        self, address: str, port: int, data: Any, flags: SocketFlag = DEFAULT_FLAGS
    ) -> None:
        """Send one datagram; a host name tries each resolved address in turn."""
        sock = self._open("send_to")
        self._check_send_to(sock)
        loop = self._loop_now()
        port = check_port(port)
        payload = as_bytes(data)
        check_family(address, sock.family)
        deadline = Deadline(None, "send_to")
        targets = await resolve(address, port, sock.family, sock.type, deadline, None)
        attempts: Attempts[str] = Attempts([format_endpoint(t[1]) for t in targets])
        for _family, sockaddr in targets:
            attempts.next_target(time.monotonic())
            try:
                while True:
                    try:
                        sock.sendto(payload, _NOSIGNAL, sockaddr)
                        self._bytes_sent += len(payload)
                        return
                    except BlockingIOError:
                        await wait_fd(loop, sock, True, deadline, self)
            except OSError as exc:
                attempts.failed(format_endpoint(sockaddr), exc, time.monotonic())
        raise attempts.final_error(f"send_to {address}")

    async def send_line(
        self, data: Any, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> None:
        """Send ``data`` and ``b"\\r\\n"``; the empty-line sentinel ``b"\\r\\n"`` that
        ``recv_line`` returns goes out as one ``b"\\r\\n"``."""
        if timeout is not None:
            check_timeout(timeout)
        await self.send(line_to_send(data), flags, timeout)

    async def _send_datagram(self, data: Any, timeout: float | None) -> None:
        sock = self._open("send")
        loop = self._loop_now()
        deadline = Deadline(timeout, "send")
        while True:
            try:
                sock.send(data, _NOSIGNAL)
                self._bytes_sent += len(data)
                return
            except BlockingIOError:
                await wait_fd(loop, sock, True, deadline, self)

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _reading(self, operation: str) -> Generator[None, None, None]:
        self._begin_read(operation)
        try:
            yield
        finally:
            self._reader = None

    def _raise_read_error(self, flags: SocketFlag) -> None:
        """At end of stream: raise the error that ended it unless SAFE_DISCONN hides it."""
        error = self._read_error
        if error is None or (is_safe(flags) and isinstance(error, OSError)
                             and is_disconnection_error(DEFAULT_FLAGS, error)):
            return
        if isinstance(error, OSError) and error.errno is not None:
            raise type(error)(error.errno, error.strerror)
        raise error

    async def _fill_to(self, size: int, timeout: float | None, flags: SocketFlag, op: str) -> None:
        buf = self._buf
        if not self._buffered and buf:
            return
        want = size if self._buffered else 1
        deadline = None
        while len(buf) < want and not buf.eof:
            if deadline is None:
                deadline = Deadline(timeout, op)
            await self._wait_data(deadline, want)

    def _begin_read(self, operation: str) -> None:
        """Claim the read side, or raise: one reader at a time, none on a closed socket."""
        if self._reader is not None:
            raise RuntimeError(f"{operation}: another task is already reading ({self._reader})")
        if self._sock is None:
            raise SocketClosedError(operation)
        self._reader = operation

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

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- TLS hooks (see twinsock._async.tls) --------------------------------------------

    def _write_now(
        self, transport: asyncio.Transport, data: bytes | bytearray | memoryview
    ) -> None:
        """Hand ``data`` to the transport, encrypted first on a TLS socket."""
        transport.write(data if self._tls is None else self._tls.encrypt(data))
        self._bytes_sent += len(data)

    def _tls_queue_close_notify(self, transport: asyncio.Transport) -> None:
        _tls_async.queue_close_notify(self, transport)

    async def _tls_handshake(
        self, deadline: Deadline, *, server_side: bool, hostname: str | None
    ) -> None:
        await _tls_async.handshake(self, deadline, server_side=server_side, hostname=hostname)

    async def _tls_accept(self, listener: AsyncSocket, deadline: Deadline) -> bool:
        return await _tls_async.accept_handshake(self, listener, deadline)


_running_loop = asyncio.get_running_loop
