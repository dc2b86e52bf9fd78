"""``AsyncSocket``'s connecting and accepting: ``connect``, ``connect_unix``, ``accept``.

How this works.  The decisions are the core's (``_core.attempts``): which
address to try next and what the final error says (``InTurn``), what a
non-blocking ``connect`` answered (``connect_step``), which accepted clients
to skip.  These methods only wait, on the socket's own loop registrations
(``_wait_fd``), so ``close()`` ends every wait at once.  ``connect`` holds
both claims of the socket (nobody reads or writes a socket that is still
connecting); ``accept`` holds the listener's read claim.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from twinsock._async.base import AsyncBase
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
from twinsock._core.targets import check_family, sockaddr_text, unix_path
from twinsock._core.types import DEFAULT_FLAGS, SocketFlag
from twinsock.addresses import check_port

if TYPE_CHECKING:
    from twinsock._async.socket import AsyncSocket

__all__ = ["Connecting"]


class Connecting(AsyncBase):
    """``connect``, ``connect_unix``, ``accept`` and ``accept_addr`` of ``AsyncSocket``."""

    __slots__ = ()

    async def connect(self, address: str, port: int, timeout: float | None = None) -> None:
        timeout = self._timeout(timeout)
        sock = self._open("connect")
        self._loop_now()
        port = check_port(port)
        deadline = Deadline(timeout, "connect")
        check_family(address, sock.family)
        with self._reading("connect"), self._writing("connect"):
            targets = await self._resolve(address, port, sock, deadline, write=False)
            tries = InTurn(targets, f"connect {address}")
            for sockaddr in tries:
                try:
                    await self._connect_to(sockaddr, deadline)
                    break
                except OSError as exc:
                    tries.failed(exc)
            else:
                raise tries.error()
            if sock.type == socket.SOCK_STREAM:
                await self._attached("connect")
            if self._tls_context is not None:
                await self._tls_handshake(deadline, server_side=False, hostname=address)

    async def connect_unix(self, path: str, timeout: float | None = None) -> None:
        timeout = self._timeout(timeout)
        sock = self._open("connect_unix")
        self._loop_now()
        target = unix_path(sock, path)
        deadline = Deadline(timeout, "connect_unix")
        with self._reading("connect_unix"), self._writing("connect_unix"):
            await self._connect_to(target, deadline)
            if sock.type == socket.SOCK_STREAM:
                await self._attached("connect_unix")

    async def _connect_to(self, target: Any, deadline: Deadline) -> None:
        """One non-blocking connect, waited for as the core's ``connect_step`` says."""
        while True:
            sock = self._open(deadline.operation)
            step = connect_step(sock.connect_ex(target), sock.family, target)
            if step is ConnectStep.DONE:
                return
            if step is ConnectStep.RETRY:
                await self._pause(UNIX_BACKLOG_RETRY, deadline)
                continue
            await self._wait_fd(sock, True, deadline)
            sock = self._open(deadline.operation)
            connect_step(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), sock.family, target)
            return

    async def accept(
        self,
        flags: SocketFlag = DEFAULT_FLAGS,
        timeout: float | None = None,
        inheritable: bool = False,
    ) -> AsyncSocket:
        return (await self.accept_addr(flags, timeout, inheritable))[0]

    async def accept_addr(
        self,
        flags: SocketFlag = DEFAULT_FLAGS,
        timeout: float | None = None,
        inheritable: bool = False,
    ) -> tuple[AsyncSocket, str]:
        from twinsock._async.socket import AsyncSocket

        timeout = self._timeout(timeout)
        self._open("accept")
        self._loop_now()
        is_safe(flags)  # bad flags fail before any wait
        deadline = Deadline(timeout, "accept")
        with self._reading("accept"):
            while True:
                sock = self._open("accept")
                try:
                    conn, sockaddr = sock.accept()
                except BlockingIOError:
                    await self._wait_fd(sock, False, deadline)
                    continue
                except OSError as exc:
                    if skip_accept_error(flags, exc):
                        continue
                    raise
                if skip_accepted(flags, conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)):
                    conn.close()
                    continue
                if inheritable:
                    conn.set_inheritable(True)
                client = AsyncSocket.from_native(conn, buffered=self._buffered)
                try:
                    await client._attached("accept")
                except OSError as exc:
                    client.close()
                    if skip_accept_error(flags, exc):
                        continue
                    raise
                if self._tls_context is not None and not await self._while_open(
                    client._tls_accept(self, deadline)
                ):
                    continue
                return client, sockaddr_text(sockaddr)[0]
