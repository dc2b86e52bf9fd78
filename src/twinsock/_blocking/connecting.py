"""``net.Socket``'s connecting and accepting: ``connect``, ``connect_unix``, ``accept``.

How this works.  The decisions are the core's (``_core.attempts``): which
address to try next and what the final error says (``InTurn``), what a
non-blocking ``connect`` answered (``connect_step``), which accepted clients
to skip.  These methods only wait, with ``poll`` (``_blocking.wait``).  A
connect is always non-blocking plus a poll, with or without a timeout, so
that ``close()`` from another thread can wake it.  ``connect`` holds both
claims of the socket.  ``accept`` tries first and, when it has to wait,
counts itself among the listener's waiters: several threads may accept on
one listener, and ``close()`` wakes them all.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

from twinsock._blocking.base import BlockingBase
from twinsock._blocking.wait import wait_readable, wait_writable
from twinsock._core.attempts import (
    UNIX_BACKLOG_RETRY,
    ConnectStep,
    InTurn,
    connect_step,
    skip_accept_error,
    skip_accepted,
)
from twinsock._core.deadline import Deadline
from twinsock._core.flags import is_safe
from twinsock._core.targets import check_family, format_endpoint, sockaddr_text, unix_path
from twinsock._core.types import DEFAULT_FLAGS, SocketFlag
from twinsock._resolver import getaddrinfo, resolve
from twinsock.addresses import check_port
from twinsock.errors import SocketClosedError

if TYPE_CHECKING:
    from twinsock._blocking.socket import Socket

__all__ = ["Connecting"]


class Connecting(BlockingBase):
    """``connect``, ``connect_unix``, ``accept`` and ``accept_addr`` of ``net.Socket``."""

    __slots__ = ()

    def connect(self, address: str, port: int, timeout: float | None = None) -> None:
        timeout = self._timeout(timeout)
        sock = self._open("connect")
        port = check_port(port)
        deadline = Deadline(timeout, "connect")
        check_family(address, sock.family)
        targets = resolve(address, port, sock.family, sock.type, deadline, getaddrinfo)
        tries = InTurn(targets, f"connect {address}")
        self._begin_both("connect")
        try:
            for sockaddr in tries:
                try:
                    self._connect_to(sockaddr, deadline)
                    break
                except OSError as exc:
                    tries.failed(exc)
            else:
                raise tries.error()
            if self._tls_context is not None:
                self._tls_handshake_claimed(deadline, server_side=False, hostname=address)
        finally:
            self._end_both()

    def connect_unix(self, path: str, timeout: float | None = None) -> None:
        timeout = self._timeout(timeout)
        sock = self._open("connect_unix")
        target = unix_path(sock, path)
        deadline = Deadline(timeout, "connect_unix")
        self._begin_both("connect_unix")
        try:
            self._connect_to(target, deadline)
        finally:
            self._end_both()

    def _connect_to(self, target: Any, deadline: Deadline) -> None:
        """One non-blocking connect, waited for as the core's ``connect_step`` says."""
        operation = deadline.operation
        sock = self._open(operation)
        sock.setblocking(False)
        try:
            while True:
                step = connect_step(sock.connect_ex(target), sock.family, target)
                if step is ConnectStep.DONE:
                    return
                if step is ConnectStep.WAIT:
                    wait_writable(sock, deadline, f"-> {format_endpoint(target)}")
                    self._open(operation)  # woken by close()?
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    connect_step(code, sock.family, target)
                    return
                remaining = deadline.remaining()
                if remaining == 0.0:
                    raise deadline.error(f"-> {format_endpoint(target)}")
                time.sleep(UNIX_BACKLOG_RETRY if remaining is None
                           else min(UNIX_BACKLOG_RETRY, remaining))
                self._open(operation)
        except OSError:
            if self._sock is None:
                raise SocketClosedError(operation) from None
            raise
        finally:
            if self._sock is not None:
                sock.setblocking(True)

    def accept(
        self,
        flags: SocketFlag = DEFAULT_FLAGS,
        timeout: float | None = None,
        inheritable: bool = False,
    ) -> Socket:
        return self.accept_addr(flags, timeout, inheritable)[0]

    def accept_addr(
        self,
        flags: SocketFlag = DEFAULT_FLAGS,
        timeout: float | None = None,
        inheritable: bool = False,
    ) -> tuple[Socket, str]:
        from twinsock._blocking.socket import Socket

        timeout = self._timeout(timeout)
        sock = self._open("accept")
        is_safe(flags)  # bad flags fail before any wait
        deadline = Deadline(timeout, "accept")
        if sock.gettimeout() != 0.0:
            sock.setblocking(False)
        waiting = False
        try:
            while True:
                sock = self._open("accept")
                try:
                    conn, sockaddr = sock.accept()
                except BlockingIOError:
                    if not waiting:
                        sock = self._begin_accept()
                        waiting = True
                    wait_readable(sock, deadline, self._where())
                    continue
                except OSError as exc:
                    if self._sock is None:  # shut down by close()
                        raise SocketClosedError("accept") from None
                    if skip_accept_error(flags, exc):
                        continue
                    raise
                if skip_accepted(flags, conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)):
                    conn.close()
                    continue
                if inheritable:
                    conn.set_inheritable(True)
                client = Socket.from_native(conn, buffered=self._buffered)
                if self._tls_context is not None and not client._tls_accept(self, deadline):
                    continue
                if self._sock is None:  # closed during the client's handshake
                    client.close()
                    raise SocketClosedError("accept")
                return client, sockaddr_text(sockaddr)[0]
        finally:
            if waiting:
                self._end_accept()
