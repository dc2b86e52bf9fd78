"""The async shell's socket: ``asyncnet.AsyncSocket``.

How this works.  ``AsyncSocket`` is the twin of ``net.Socket``: the same
``SocketBase`` (everything that does not wait) and the same sans-I/O core
(read buffer, deadlines, attempt rules); only the waiting differs.  The
class is assembled from the modules of this folder: ``base`` (the loop, the
transport and its events, the claims, the waits, ``close``), ``connecting``
(``connect``, ``accept``), ``datagram`` (``recv_from``, ``send_to``), and
this module, the reading and sending of a connected stream.

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

The methods' docstrings are the twins' shared texts (``_core.docs.sockets``).
"""
from __future__ import annotations

import asyncio
import socket
from typing import Any, Self

from twinsock._async.connecting import Connecting
from twinsock._async.datagram import Datagrams
from twinsock._async.protocol import WRITE_HIGH_WATER
from twinsock._async.wait import until
from twinsock._core.buffer import BATCHED_LINE_MAX
from twinsock._core.data import (
    as_bytes,
    check_max_length,
    check_separator,
    check_size,
    line_to_send,
    recv_into_target,
)
from twinsock._core.deadline import Deadline, check_timeout, is_valid_timeout
from twinsock._core.docs import ASYNC, shared_docs
from twinsock._core.docs.sockets import SOCKET
from twinsock._core.flags import is_disconnection_error, is_peek, is_safe, send_error
from twinsock._core.types import (
    DEFAULT_FLAGS,
    MAX_LINE_LENGTH,
    LineResult,
    ReadLineResult,
    SocketFlag,
)
from twinsock.errors import NetTimeout, SocketClosedError
from twinsock.nativesockets import Domain, Protocol, SockType

__all__ = ["AsyncSocket"]


@shared_docs(SOCKET, ASYNC)
class AsyncSocket(Connecting, Datagrams):
    __slots__ = ()

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
        native = cls._adopt_native(sock)
        native.setblocking(False)
        self = cls.__new__(cls)
        self._init_async(native, buffered)
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else self._where()
        return f"<twinsock.asyncnet.AsyncSocket {state}>"

    # -- receiving ---------------------------------------------------------------------

    async def recv_line(
        self,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
        max_length: int = MAX_LINE_LENGTH,
    ) -> bytes:
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
            if self._sock is None:  # closed between a wake-up and this resumption
                raise SocketClosedError("skip")
            return skipped

    async def recv_until(
        self,
        separator: Any,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
        max_length: int = MAX_LINE_LENGTH,
    ) -> bytes:
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
        timeout = self._default_timeout if timeout is None else check_timeout(timeout)
        transport = self._transport
        if data.__class__ is not bytes:
            data = as_bytes(data)
        if transport is not None and self._writer is None and len(data) <= WRITE_HIGH_WATER:
            self._write_now(transport, data)
            if self._write_paused or transport.is_closing():
                with self._writing("send"):
                    await self._wait_written(timeout)
            return
        await self._send_slow(data, timeout)

    async def _send_slow(self, data: Any, timeout: float | None) -> None:
        sock = self._open("send")
        check_timeout(timeout)
        if sock.type != socket.SOCK_STREAM:
            await self._send_datagram(data, timeout)
            return
        with self._writing("send"):
            try:
                transport = await self._attached("send")
            except SocketClosedError:
                raise
            except OSError as exc:  # a connection that is gone, found on attaching
                raise send_error(exc) from None
            view = memoryview(data).cast("B")
            for start in range(0, max(len(view), 1), WRITE_HIGH_WATER):
                self._write_now(transport, view[start : start + WRITE_HIGH_WATER])
                if self._write_paused or transport.is_closing():
                    await self._wait_written(timeout)

    async def _wait_written(self, timeout: float | None) -> None:
        """Wait below the high-water mark; raise if the connection broke."""
        transport = self._transport
        if transport is None or transport.is_closing():
            await self._raise_send_error()
        if self._write_paused:
            deadline = Deadline(timeout, "send")
            loop = self._loop_now()
            try:
                while self._write_paused and self._lost is None:
                    waiter = self._write_waiter = loop.create_future()
                    if deadline.timeout is None:
                        await waiter
                    else:
                        await until(waiter, deadline, loop)
            finally:
                self._write_waiter = None
            if self._lost is not None:
                await self._raise_send_error()

    def try_send(self, data: Any) -> bool:
        data = as_bytes(data)  # a wrong type is a TypeError, as on the blocking socket
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
            self._write_now(transport, data)
        except (OSError, RuntimeError):
            return False
        return not transport.is_closing()

    async def send_line(
        self, data: Any, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> None:
        if timeout is not None:
            check_timeout(timeout)
        await self.send(line_to_send(data), flags, timeout)

    # -- plumbing ------------------------------------------------------------------------

    def _write_now(
        self, transport: asyncio.Transport, data: bytes | bytearray | memoryview
    ) -> None:
        """Hand ``data`` to the transport, encrypted first on a TLS socket.

        A transport that already failed raises the send error of every loop
        (uvloop's own is a ``RuntimeError``).
        """
        self._bytes_sent += len(data)
        if self._tls is not None:
            data = self._tls.encrypt(data)
        try:
            transport.write(data)
        except (OSError, RuntimeError) as exc:
            raise send_error(self._lost or exc) from exc

    def _raise_read_error(self, flags: SocketFlag) -> None:
        """At end of stream: raise what ended it, unless ``SAFE_DISCONN`` hides it.

        A socket closed while its reader waited raises ``SocketClosedError``.
        """
        if self._sock is None:
            raise SocketClosedError(self._reader or "read")
        error = self._read_error
        if error is None or (is_safe(flags) and isinstance(error, OSError)
                             and is_disconnection_error(DEFAULT_FLAGS, error)):
            return
        if isinstance(error, OSError) and error.errno is not None:
            raise type(error)(error.errno, error.strerror)
        raise error

    async def _raise_send_error(self) -> None:
        """The connection broke while sending: raise its error, the same on every loop."""
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
        raise send_error(self._lost)


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
