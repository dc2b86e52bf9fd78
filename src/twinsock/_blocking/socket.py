"""The blocking shell's socket: ``net.Socket``.

How this works.  ``Socket`` is a thin shell over the sans-I/O core in
``twinsock._core``: the read buffer decides where lines end, what is too long
and what end of stream means; ``Deadline`` turns a call's ``timeout`` into
one time limit.  This module only moves bytes between the operating system
and the buffer, and waits.  The OS socket stays in blocking mode, so a call
without a timeout is one plain system call; a call with a timeout tries
first with ``MSG_DONTWAIT`` and polls only when nothing is there.  Reading a
line that the buffer already holds costs no system call at all, and claims
nothing; a call that has to wait claims its side of the socket first
(``_blocking.base``: one reader and one writer at a time, and ``close()``
wakes them).  The class is assembled from this folder's modules: ``base``
(claims, ``close``), ``connecting`` (``connect``, ``accept``), ``datagram``
(``recv_from``, ``send_to``) and this one, the stream's reads and sends.
The methods' docstrings are the twins' shared texts (``_core.docs.sockets``).
"""

from __future__ import annotations

import socket
from typing import Any, Self

from twinsock._blocking.connecting import Connecting
from twinsock._blocking.datagram import Datagrams
from twinsock._blocking.wait import wait_readable, wait_writable
from twinsock._core.buffer import BATCHED_LINE_MAX, MAX_READ, READ_CHUNK
from twinsock._core.data import (
    as_bytes,
    check_max_length,
    check_separator,
    check_size,
    line_to_send,
    recv_into_target,
)
from twinsock._core.deadline import Deadline, check_timeout, is_valid_timeout
from twinsock._core.docs import BLOCKING, shared_docs
from twinsock._core.docs.sockets import SOCKET
from twinsock._core.flags import is_disconnection_error, is_peek, is_safe
from twinsock._core.types import (
    DEFAULT_FLAGS,
    MAX_LINE_LENGTH,
    LineResult,
    ReadLineResult,
    SocketFlag,
)
from twinsock.errors import BusyError, NetTimeout, SocketClosedError
from twinsock.nativesockets import Domain, Protocol, SockType

__all__ = ["Socket"]

_DONTWAIT = socket.MSG_DONTWAIT
_RECV_LINE_FOREVER = Deadline.forever("recv_line")
#: What one plain read into the buffer asks for.  Twice the async shell's
#: chunk: a blocking reader of long line runs pays its per-read costs (the
#: join of a partial line, the batch set-up) half as often, and measured
#: 5-8% more lines per second than with 64 KiB.
_FILL_SIZE = 2 * READ_CHUNK
#: ``recv_into`` requests at least this large are read straight into the caller's
#: memory, never through the read buffer.
_DIRECT_READ_MIN = 65536
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


@shared_docs(SOCKET, BLOCKING)
class Socket(Connecting, Datagrams):
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
        self._init_blocking(self._new_native(domain, sock_type, protocol, inheritable), buffered)

    @classmethod
    def from_native(cls, sock: socket.socket | int, *, buffered: bool = True) -> Socket:
        native = cls._adopt_native(sock)
        if native.gettimeout() is not None:
            native.settimeout(None)
        self = cls.__new__(cls)
        self._init_blocking(native, buffered)
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else self._where()
        return f"<twinsock.net.Socket {state}>"

    # -- receiving ---------------------------------------------------------------------

    def recv_line(
        self,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
        max_length: int = MAX_LINE_LENGTH,
    ) -> bytes:
        ready = self._buf.ready  # lines as recv_line returns them, none too long
        if (
            ready
            and flags is DEFAULT_FLAGS
            and (timeout is None or is_valid_timeout(timeout))
            and max_length >= BATCHED_LINE_MAX
        ):
            return ready.pop()
        return self._recv_line(timeout, flags, max_length)

    def _recv_line(self, timeout: float | None, flags: SocketFlag, max_length: int) -> bytes:
        timeout = self._timeout(timeout)
        if self._sock is None:
            raise SocketClosedError("recv_line")
        if max_length.__class__ is not int or max_length < 0:
            max_length = check_max_length(max_length)
        if flags is DEFAULT_FLAGS:
            peek, safe = False, True
        else:
            peek, safe = is_peek(flags), is_safe(flags)
        buf = self._buf
        # An empty buffer cannot hold a line: receive first (the echo case).
        # After a receive, search at once: something arrived.
        if buf or buf.eof:
            line = buf.recv_line(max_length, peek=peek)
            if line is not None:
                return line
        deadline = _RECV_LINE_FOREVER if timeout is None else Deadline(timeout, "recv_line")
        claim = self._read_claim  # the claim, inline (base.py): once per line that waits
        try:
            claim.pop()
        except IndexError:
            raise BusyError("recv_line: another thread is already reading") from None
        try:
            while True:
                self._fill(deadline, safe, max_length)  # raises if closed meanwhile
                line = buf.recv_line(max_length, peek=peek)
                if line is not None:
                    return line
        finally:
            claim.append(True)
            if self._sock is None:
                self._finish_close()

    def recv_line_into(
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
        line = self.recv_line(timeout, flags, max_length)
        buffer.clear()
        buffer += line

    def read_line(
        self,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
        max_length: int = MAX_LINE_LENGTH,
    ) -> LineResult:
        timeout = self._timeout(timeout)
        self._open("read_line")
        max_length = check_max_length(max_length)
        peek = is_peek(flags)
        safe = is_safe(flags)
        buf = self._buf
        result = buf.read_line(max_length, peek=peek)
        if result is not None:
            return result
        deadline = Deadline(timeout, "read_line")
        self._begin_read("read_line")
        try:
            while True:
                try:
                    self._fill(deadline, safe, max_length)
                except NetTimeout:
                    return LineResult(ReadLineResult.NONE, b"")
                result = buf.read_line(max_length, peek=peek)
                if result is not None:
                    return result
        finally:
            self._end_read()

    def recv(
        self, size: int, timeout: float | None = None, flags: SocketFlag = DEFAULT_FLAGS
    ) -> bytes:
        buf = self._buf
        if (
            flags is DEFAULT_FLAGS
            and size.__class__ is int
            and self._buffered
            and self._sock is not None
            and (timeout is None or is_valid_timeout(timeout))
            and 0 < size <= len(buf)
        ):
            return buf.take(size)
        timeout = self._timeout(timeout)
        self._open("recv")
        size = check_size(size)
        if size == 0:
            return b""
        if not self._buffered and not buf and not is_peek(flags) and self._tls is None:
            return self._recv_direct(size, Deadline(timeout, "recv"), is_safe(flags))
        return self._fill_and_take(size, Deadline(timeout, "recv"), flags)

    def recv_into(
        self,
        buffer: Any,
        size: int | None = None,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
    ) -> int:
        timeout = self._timeout(timeout)
        sock = self._open("recv_into")
        view = recv_into_target(buffer, size)
        size = len(view)
        if size == 0:
            return 0
        safe = is_safe(flags)
        buf = self._buf
        if is_peek(flags):
            data = self._fill_and_take(size, Deadline(timeout, "recv_into"), flags)
            view[: len(data)] = data
            return len(data)
        if len(buf) >= size or buf.eof or (buf and not self._buffered):
            return buf.take_into(view)  # no wait, no claim
        deadline = Deadline(timeout, "recv_into")
        # A large request is read straight into the caller's memory to its end:
        # filling the buffer for a short tail would drag a whole chunk of
        # read-ahead through it, which the next large request copies out again.
        direct = self._tls is None and (size >= _DIRECT_READ_MIN or not self._buffered)
        sock = self._begin_read("recv_into")
        n = buf.take_into(view)
        try:
            while n < size:
                room = size - n
                if direct or (self._tls is None and room >= _DIRECT_READ_MIN):
                    got = self._recv_into_direct(sock, view[n:], deadline, safe)
                    if not got:
                        buf.feed_eof()
                        break
                    buf.received += got
                    n += got
                    if not self._buffered:
                        break
                else:
                    self._fill(deadline, safe)
                    got = buf.take_into(view[n:])
                    if not got and buf.eof:
                        break
                    n += got
        except BaseException:
            buf.unread(bytes(view[:n]))  # nothing received is lost
            raise
        finally:
            self._end_read()
        return n

    def skip(self, size: int, timeout: float | None = None) -> int:
        timeout = self._timeout(timeout)
        self._open("skip")
        size = check_size(size)
        buf = self._buf
        if len(buf) >= size or buf.eof:
            return buf.skip(size)  # no wait, no claim
        deadline = Deadline(timeout, "skip")
        self._begin_read("skip")
        try:
            skipped = buf.skip(size)
            while skipped < size and not buf.eof:
                self._fill(deadline, True)
                skipped += buf.skip(size - skipped)
        finally:
            self._end_read()
        return skipped

    def recv_until(
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
        peek, safe = is_peek(flags), is_safe(flags)
        buf = self._buf
        got = buf.until(separator, max_length, peek=peek)
        if got is not None:
            return got
        deadline = Deadline(timeout, "recv_until")
        self._begin_read("recv_until")
        try:
            while True:
                self._fill(deadline, safe)
                got = buf.until(separator, max_length, peek=peek)
                if got is not None:
                    return got
        finally:
            self._end_read()

    # -- sending -------------------------------------------------------------------------

    def send(
        self, data: Any, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> None:
        timeout = self._default_timeout if timeout is None else check_timeout(timeout)
        if self._sock is None:
            raise SocketClosedError("send")
        if data.__class__ is not bytes:
            data = as_bytes(data)
        claim = self._write_claim  # the claim, inline (base.py): one per send
        try:
            claim.pop()
        except IndexError:
            raise BusyError("send: another thread is already sending") from None
        try:
            sock = self._sock
            if sock is None:
                raise SocketClosedError("send")
            if self._tls is not None:
                self._tls_send(data, Deadline(timeout, "send"))
            elif timeout is None:
                sock.sendall(data, _NOSIGNAL)
            else:
                self._send_before(sock, data, Deadline(timeout, "send"))
                return  # counted as it goes
            self._bytes_sent += len(data)
        except OSError:
            if self._sock is None:  # shut down by close() while waiting
                raise SocketClosedError("send") from None
            raise
        finally:
            claim.append(True)
            if self._sock is None:
                self._finish_close()

    def try_send(self, data: Any) -> bool:
        try:
            self.send(data)
        except (OSError, BusyError):
            return False
        return True

    def send_line(
        self, data: Any, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> None:
        if timeout is not None:
            check_timeout(timeout)
        self.send(line_to_send(data), flags, timeout)

    # -- plumbing --------------------------------------------------------------------------

    def _fill(self, deadline: Deadline, safe: bool, max_length: int | None = None) -> None:
        """Receive once into the buffer, or record the end of the stream.

        The caller holds the read claim; a ``close()`` from another thread
        wakes the receive and makes it raise ``SocketClosedError``.
        """
        sock = self._sock
        if sock is None:
            raise SocketClosedError(deadline.operation)
        try:
            if self._tls is not None:
                self._tls_fill(deadline, safe)
                data = None
            elif not self._buffered and max_length is not None:
                data = self._recv_line_unbuffered(sock, deadline)
            elif deadline.timeout is None:
                data = sock.recv(_FILL_SIZE)
            else:
                data = self._recv_before(sock, _FILL_SIZE, deadline)
        except OSError as exc:
            if self._sock is None:
                raise SocketClosedError(deadline.operation) from None
            if not (safe and is_disconnection_error(DEFAULT_FLAGS, exc)):
                raise
            data = b""
        if self._sock is None:  # woken by close(): what came is not the stream's end
            raise SocketClosedError(deadline.operation)
        if data is None:
            return
        if data:
            self._buf.feed(data)
        else:
            self._buf.feed_eof()

    def _fill_and_take(self, size: int, deadline: Deadline, flags: SocketFlag) -> bytes:
        """Fill the buffer until it holds ``size`` bytes (unbuffered: any) or the
        stream ended, then take (or peek) them, under the read claim if it waited."""
        buf = self._buf
        peek = is_peek(flags)
        if len(buf) >= size or buf.eof or (buf and not self._buffered):
            return buf.peek(size) if peek else buf.take(size)
        safe = is_safe(flags)
        self._begin_read(deadline.operation)
        try:
            while len(buf) < size and not buf.eof:
                self._fill(deadline, safe)
                if not self._buffered and buf:
                    break
            return buf.peek(size) if peek else buf.take(size)
        finally:
            self._end_read()

    def _recv_before(self, sock: socket.socket, size: int, deadline: Deadline,
                     os_flags: int = 0) -> bytes:
        while True:
            try:
                return sock.recv(size, os_flags | _DONTWAIT)
            except BlockingIOError:
                wait_readable(sock, deadline, self._where())

    def _recv_direct(self, size: int, deadline: Deadline, safe: bool) -> bytes:
        sock = self._begin_read("recv")
        size = min(size, MAX_READ)  # the OS call allocates what it is asked for
        try:
            if deadline.timeout is None:
                data = sock.recv(size)
            else:
                data = self._recv_before(sock, size, deadline)
        except OSError as exc:
            if self._sock is None:
                raise SocketClosedError("recv") from None
            if safe and is_disconnection_error(DEFAULT_FLAGS, exc):
                self._buf.feed_eof()
                return b""
            raise
        finally:
            self._end_read()
        if self._sock is None:
            raise SocketClosedError("recv")
        self._buf.received += len(data)
        return data

    def _recv_into_direct(self, sock: socket.socket, view: memoryview, deadline: Deadline,
                          safe: bool) -> int:
        try:
            if deadline.timeout is None:
                got = sock.recv_into(view)
            else:
                while True:
                    try:
                        got = sock.recv_into(view, 0, _DONTWAIT)
                        break
                    except BlockingIOError:
                        wait_readable(sock, deadline, self._where())
        except OSError as exc:
            if self._sock is None:
                raise SocketClosedError("recv_into") from None
            if safe and is_disconnection_error(DEFAULT_FLAGS, exc):
                return 0
            raise
        if self._sock is None:
            raise SocketClosedError("recv_into")
        return got

    def _recv_line_unbuffered(self, sock: socket.socket, deadline: Deadline) -> bytes:
        """Read no further than the end of the current line (peek, then consume)."""
        if deadline.timeout is None:
            peeked = sock.recv(READ_CHUNK, socket.MSG_PEEK)
        else:
            peeked = self._recv_before(sock, READ_CHUNK, deadline, socket.MSG_PEEK)
        if not peeked:
            return b""
        end = peeked.find(b"\n")
        return sock.recv(len(peeked) if end < 0 else end + 1)

    def _send_before(self, sock: socket.socket, data: Any, deadline: Deadline) -> None:
        view = memoryview(data).cast("B")
        sent = 0
        try:
            while sent < len(view):
                try:
                    sent += sock.send(view[sent:], _DONTWAIT | _NOSIGNAL)
                except BlockingIOError:
                    try:
                        wait_writable(sock, deadline, self._where())
                    except NetTimeout as exc:
                        exc.add_note(f"{sent} of {len(view)} bytes were handed to the OS")
                        raise
        finally:
            self._bytes_sent += sent

    # -- TLS pump (twinsock._blocking.tls) -------------------------------------------------

    def _tls_fill(self, deadline: Deadline, safe: bool) -> None:
        from twinsock._blocking.tls import blocking_fill

        blocking_fill(self, deadline, safe)

    def _tls_send(self, data: Any, deadline: Deadline) -> None:
        from twinsock._blocking.tls import blocking_send

        blocking_send(self, data, deadline)
