"""The blocking shell's socket: ``net.Socket``.

How this works.  ``Socket`` is a thin shell over the sans-I/O core in
``twinsock._core``: the read buffer decides where lines end, what is too long
and what end of stream means; ``Deadline`` turns a call's ``timeout`` into
one time limit.  This module only moves bytes between the operating system
and the buffer, and waits.  The OS socket stays in blocking mode, so a call
without a timeout is one plain system call; a call with a timeout tries
first with ``MSG_DONTWAIT`` and polls only when nothing is there.  Reading a
line that the buffer already holds costs no system call at all.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Any

from twinsock._base import SocketBase
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
from twinsock._resolver import getaddrinfo, resolve
from twinsock.addresses import check_port
from twinsock.errors import NetTimeout, SocketClosedError
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
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY)
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


class Socket(SocketBase):
    """A blocking socket with a read buffer, line reading and deadlines."""

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
        self._init_base(self._new_native(domain, sock_type, protocol, inheritable), buffered)

    @classmethod
    def from_native(cls, sock: socket.socket | int, *, buffered: bool = True) -> Socket:
        """Adopt an existing ``socket.socket`` (or file descriptor); it becomes blocking."""
        native = cls._adopt_native(sock)
        if native.gettimeout() is not None:
            native.settimeout(None)
        self = cls.__new__(cls)
        self._init_base(native, buffered)
        return self

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else self._where()
        return f"<twinsock.net.Socket {state}>"

    def close(self) -> None:
        """Close the socket (idempotent); TLS sends close_notify first, best effort."""
        if self._sock is not None and self._tls is not None:
            self._tls_close_notify()
        self._close_native()

    # -- connecting ------------------------------------------------------------------

    def connect(self, address: str, port: int, timeout: float | None = None) -> None:
        """Connect to ``address:port``, trying each resolved address of the socket's family.

        One deadline covers resolution, every attempt and the TLS handshake.
        """
        timeout = self._timeout(timeout)
        sock = self._open("connect")
        port = check_port(port)
        deadline = Deadline(timeout, "connect")
        check_family(address, sock.family)
        targets = resolve(address, port, sock.family, sock.type, deadline, getaddrinfo)
        attempts: Attempts[str] = Attempts([format_endpoint(t[1]) for t in targets])
        for _family, sockaddr in targets:
            attempts.next_target(time.monotonic())
            try:
                _connect_native(sock, sockaddr, deadline)
                break
            except NetTimeout as exc:
                attempts.failed(format_endpoint(sockaddr), exc, time.monotonic())
                raise attempts.final_error(f"connect {address}") from None
            except OSError as exc:
                attempts.failed(format_endpoint(sockaddr), exc, time.monotonic())
        else:
            raise attempts.final_error(f"connect {address}")
        if self._tls_context is not None:
            self._tls_handshake(deadline, server_side=False, hostname=address)

    def connect_unix(self, path: str, timeout: float | None = None) -> None:
        """Connect an AF_UNIX socket to ``path`` (``"\\0name"``: abstract)."""
        timeout = self._timeout(timeout)
        sock = self._open("connect_unix")
        target = unix_path(sock, path)
        _connect_native(sock, target, Deadline(timeout, "connect_unix"))

    def accept(
        self,
        flags: SocketFlag = DEFAULT_FLAGS,
        timeout: float | None = None,
        inheritable: bool = False,
    ) -> Socket:
        """Wait for a client; it inherits ``buffered`` (and TLS, handshake done)."""
        return self.accept_addr(flags, timeout, inheritable)[0]

    def accept_addr(
        self,
        flags: SocketFlag = DEFAULT_FLAGS,
        timeout: float | None = None,
        inheritable: bool = False,
    ) -> tuple[Socket, str]:
        """Wait for a client; return it and its address text (IPv6 text for IPv6)."""
        timeout = self._timeout(timeout)
        sock = self._open("accept")
        safe = is_safe(flags)
        deadline = Deadline(timeout, "accept")
        if sock.gettimeout() != 0.0:
            sock.setblocking(False)
        while True:
            try:
                conn, sockaddr = sock.accept()
            except BlockingIOError:
                wait_readable(sock, deadline, self._where())
                continue
            except OSError as exc:
                if safe and is_disconnection_error(flags, exc):
                    continue
                raise
            if safe and _was_reset(conn):
                conn.close()
                continue
            if inheritable:
                conn.set_inheritable(True)
            client = Socket.from_native(conn, buffered=self._buffered)
            if self._tls_context is not None and not client._tls_accept(self, deadline):
                continue
            return client, sockaddr_text(sockaddr)[0]

    # -- receiving ---------------------------------------------------------------------

    def recv_line(
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
        deadline = None
        # An empty buffer cannot hold a line: receive first (the echo case).
        # After a receive, search at once: something arrived.
        search = bool(buf) or buf.eof
        while True:
            if search:
                line = buf.recv_line(max_length, peek=peek)
                if line is not None:
                    return line
            if deadline is None:
                deadline = _RECV_LINE_FOREVER if timeout is None else Deadline(timeout, "recv_line")
            self._fill(deadline, safe, max_length)
            search = True

    def recv_line_into(
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
        line = self.recv_line(timeout, flags, max_length)
        buffer.clear()
        buffer += line

    def read_line(
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
        safe = is_safe(flags)
        buf = self._buf
        deadline = None
        while True:
            result = buf.read_line(max_length, peek=peek)
            if result is not None:
                return result
            if deadline is None:
                deadline = Deadline(timeout, "read_line")
            try:
                self._fill(deadline, safe, max_length)
            except NetTimeout:
                return LineResult(ReadLineResult.NONE, b"")

    def recv(
        self, size: int, timeout: float | None = None, flags: SocketFlag = DEFAULT_FLAGS
    ) -> bytes:
        """Buffered: wait for ``size`` bytes (short only at end of stream).
        Unbuffered: what the OS has, at least one byte; ``b""`` at end of stream.
        Memory grows with what arrives, never with ``size``."""
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
        self._fill_to(size, Deadline(timeout, "recv"), flags)
        return buf.peek(size) if is_peek(flags) else buf.take(size)

    def recv_into(
        self,
        buffer: Any,
        size: int | None = None,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
    ) -> int:
        """Like ``recv``, into a writable buffer; large reads skip the read buffer."""
        timeout = self._timeout(timeout)
        sock = self._open("recv_into")
        view = recv_into_target(buffer, size)
        size = len(view)
        if size == 0:
            return 0
        safe = is_safe(flags)
        buf = self._buf
        if is_peek(flags):
            self._fill_to(size, Deadline(timeout, "recv_into"), flags)
            data = buf.peek(size)
            view[: len(data)] = data
            return len(data)
        n = buf.take_into(view)
        if n == size or buf.eof or (n and not self._buffered):
            return n
        deadline = Deadline(timeout, "recv_into")
        # A large request is read straight into the caller's memory to its end:
        # filling the buffer for a short tail would drag a whole chunk of
        # read-ahead through it, which the next large request copies out again.
        direct = self._tls is None and (size >= _DIRECT_READ_MIN or not self._buffered)
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
        return n

    def skip(self, size: int, timeout: float | None = None) -> int:
        """Discard up to ``size`` bytes (fewer only at end of stream); return how many."""
        timeout = self._timeout(timeout)
        self._open("skip")
        size = check_size(size)
        buf = self._buf
        skipped = buf.skip(size)
        deadline = None
        while skipped < size and not buf.eof:
            if deadline is None:
                deadline = Deadline(timeout, "skip")
            self._fill(deadline, True)
            skipped += buf.skip(size - skipped)
        return skipped

    def recv_from(
        self, size: int, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> tuple[bytes, str, int]:
        """Receive one datagram: data (truncated to ``size``), sender address, port."""
        timeout = self._timeout(timeout)
        sock = self._open("recv_from")
        size = check_size(size)
        os_flags = socket.MSG_PEEK if is_peek(flags) else 0
        deadline = Deadline(timeout, "recv_from")
        while True:
            try:
                if deadline.timeout is None:
                    data, sockaddr = sock.recvfrom(size, os_flags)
                else:
                    data, sockaddr = sock.recvfrom(size, os_flags | _DONTWAIT)
            except BlockingIOError:
                wait_readable(sock, deadline, self._where())
                continue
            self._buf.received += len(data)
            host, port = sockaddr_text(sockaddr) if sockaddr is not None else ("", 0)
            return data, host, port

    def recv_until(
        self,
        separator: Any,
        timeout: float | None = None,
        flags: SocketFlag = DEFAULT_FLAGS,
        max_length: int = MAX_LINE_LENGTH,
    ) -> bytes:
        """Read up to and including ``separator`` (non-empty bytes); ``b""`` at end
        of stream with nothing buffered.

        Raises:
            LineTooLong: more than ``max_length`` bytes came before the
                separator (nothing is consumed).
            IncompleteRead: the stream ended without the separator; the bytes
                stay buffered (``partial`` holds a copy).
            NetTimeout: the separator did not arrive in time (nothing consumed).
        """
        timeout = self._timeout(timeout)
        self._open("recv_until")
        separator = check_separator(separator)
        max_length = check_max_length(max_length)
        peek, safe = is_peek(flags), is_safe(flags)
        buf = self._buf
        deadline = None
        while True:
            got = buf.until(separator, max_length, peek=peek)
            if got is not None:
                return got
            if deadline is None:
                deadline = Deadline(timeout, "recv_until")
            self._fill(deadline, safe)

    # -- sending -------------------------------------------------------------------------

    def send(
        self, data: Any, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> None:
        """Send all of ``data`` (bytes-like or str); a broken connection raises."""
        timeout = self._default_timeout if timeout is None else check_timeout(timeout)
        sock = self._sock
        if sock is None:
            raise self._closed("send")
        if data.__class__ is not bytes:
            data = as_bytes(data)
        if self._tls is not None:
            self._tls_send(data, Deadline(timeout, "send"))
        elif timeout is None:
            sock.sendall(data, _NOSIGNAL)
        else:
            self._send_before(sock, data, Deadline(timeout, "send"))
            return  # counted as it goes
        self._bytes_sent += len(data)

    def try_send(self, data: Any) -> bool:
        """``send`` that returns ``False`` instead of raising an ``OSError``."""
        try:
            self.send(data)
        except OSError:
            return False
        return True

    def send_to(
        self, address: str, port: int, data: Any, flags: SocketFlag = DEFAULT_FLAGS
    ) -> None:
        """Send one datagram; a host name tries each resolved address in turn."""
        sock = self._open("send_to")
        self._check_send_to(sock)
        port = check_port(port)
        payload = as_bytes(data)
        check_family(address, sock.family)
        targets = resolve(address, port, sock.family, sock.type, Deadline(None, "send_to"),
                           getaddrinfo)
        attempts: Attempts[str] = Attempts([format_endpoint(t[1]) for t in targets])
        for _family, sockaddr in targets:
            attempts.next_target(time.monotonic())
            try:
                sock.sendto(payload, _NOSIGNAL, sockaddr)
                self._bytes_sent += len(payload)
                return
            except OSError as exc:
                attempts.failed(format_endpoint(sockaddr), exc, time.monotonic())
        raise attempts.final_error(f"send_to {address}")

    def send_line(
        self, data: Any, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> None:
        """Send ``data`` and ``b"\\r\\n"``; the empty-line sentinel ``b"\\r\\n"`` that
        ``recv_line`` returns goes out as one ``b"\\r\\n"``."""
        if timeout is not None:
            check_timeout(timeout)
        self.send(line_to_send(data), flags, timeout)

    # -- plumbing --------------------------------------------------------------------------

    def _closed(self, operation: str) -> Exception:
        return SocketClosedError(operation)

    def _fill(self, deadline: Deadline, safe: bool, max_length: int | None = None) -> None:
        """Receive once into the buffer, or record the end of the stream."""
        sock = self._sock
        if sock is None:
            raise SocketClosedError(deadline.operation)
        if self._tls is not None:
            self._tls_fill(deadline, safe)
            return
        try:
            if not self._buffered and max_length is not None:
                data = self._recv_line_unbuffered(sock, deadline)
            elif deadline.timeout is None:
                data = sock.recv(_FILL_SIZE)
            else:
                data = self._recv_before(sock, _FILL_SIZE, deadline)
        except OSError as exc:
            if not (safe and is_disconnection_error(DEFAULT_FLAGS, exc)):
                raise
            data = b""
        if data:
            self._buf.feed(data)
        else:
            self._buf.feed_eof()

    def _fill_to(self, size: int, deadline: Deadline, flags: SocketFlag) -> None:
        """Fill the buffer until it holds ``size`` bytes or the stream ended."""
        buf = self._buf
        safe = is_safe(flags)
        while len(buf) < size and not buf.eof:
            self._fill(deadline, safe)
            if not self._buffered and buf:
                return

    def _recv_before(self, sock: socket.socket, size: int, deadline: Deadline,
                     os_flags: int = 0) -> bytes:
        while True:
            try:
                return sock.recv(size, os_flags | _DONTWAIT)
            except BlockingIOError:
                wait_readable(sock, deadline, self._where())

    def _recv_direct(self, size: int, deadline: Deadline, safe: bool) -> bytes:
        sock = self._open("recv")
        size = min(size, MAX_READ)  # the OS call allocates what it is asked for
        try:
            if deadline.timeout is None:
                data = sock.recv(size)
            else:
                data = self._recv_before(sock, size, deadline)
        except OSError as exc:
            if safe and is_disconnection_error(DEFAULT_FLAGS, exc):
                self._buf.feed_eof()
                return b""
            raise
        self._buf.received += len(data)
        return data

    def _recv_into_direct(self, sock: socket.socket, view: memoryview, deadline: Deadline,
                          safe: bool) -> int:
        try:
            if deadline.timeout is None:
                return sock.recv_into(view)
            while True:
                try:
                    return sock.recv_into(view, 0, _DONTWAIT)
                except BlockingIOError:
                    wait_readable(sock, deadline, self._where())
        except OSError as exc:
            if safe and is_disconnection_error(DEFAULT_FLAGS, exc):
                return 0
            raise

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

    # -- TLS hooks (filled in by twinsock.tls wiring) ------------------------------------

    def _tls_handshake(
        self, deadline: Deadline, *, server_side: bool, hostname: str | None
    ) -> None:
        from twinsock._blocking.tls import blocking_handshake

        blocking_handshake(self, deadline, server_side=server_side, hostname=hostname)

    def _tls_accept(self, listener: Socket, deadline: Deadline) -> bool:
        from twinsock._blocking.tls import blocking_accept_handshake

        return blocking_accept_handshake(self, listener, deadline)

    def _tls_fill(self, deadline: Deadline, safe: bool) -> None:
        from twinsock._blocking.tls import blocking_fill

        blocking_fill(self, deadline, safe)

    def _tls_send(self, data: Any, deadline: Deadline) -> None:
        from twinsock._blocking.tls import blocking_send

        blocking_send(self, data, deadline)

    def _tls_close_notify(self) -> None:
        from twinsock._blocking.tls import blocking_close_notify

        blocking_close_notify(self)


# -- module functions ------------------------------------------------------------------------


def _was_reset(conn: socket.socket) -> bool:
    """True for an accepted connection the client already reset."""
    code = conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return code != 0 and is_disconnection_error(DEFAULT_FLAGS, code)


def _connect_native(sock: socket.socket, target: Any, deadline: Deadline) -> None:
    """Connect with the deadline: non-blocking connect, then poll for completion."""
    if deadline.timeout is None:
        sock.connect(target)
        return
    sock.setblocking(False)
    try:
        code = sock.connect_ex(target)
        if code in _IN_PROGRESS:
            wait_writable(sock, deadline, f"-> {format_endpoint(target)}")
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, f"{os.strerror(code)} (connecting to {format_endpoint(target)})")
    finally:
        sock.setblocking(True)
