"""``AsyncSocket``'s datagrams: ``recv_from``, ``send_to``, and ``send`` on a datagram socket.

How this works.  A datagram socket has no transport: each call tries the
system call first and waits for readiness (``_wait_fd``) only on
``BlockingIOError``; uvloop has no ``sock_recvfrom``, so no loop helper is
used.  ``send_to`` tries each resolved address in turn as the core's
``InTurn`` says.  ``recv_from`` holds the read claim; a datagram send claims
the write side only while the OS makes it wait (tasks may send replies on
one socket at once).  ``close()`` ends every wait at once.
"""

from __future__ import annotations

import socket
from typing import Any

from twinsock._async.base import AsyncBase
from twinsock._core.attempts import InTurn
from twinsock._core.data import as_bytes, check_size
from twinsock._core.deadline import Deadline
from twinsock._core.flags import is_peek
from twinsock._core.targets import check_family, literal_targets, sockaddr_text
from twinsock._core.types import DEFAULT_FLAGS, SocketFlag
from twinsock.addresses import check_port

__all__ = ["Datagrams"]

_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


class Datagrams(AsyncBase):
    """``recv_from`` and ``send_to`` of ``AsyncSocket``."""

    __slots__ = ()

    async def recv_from(
        self, size: int, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> tuple[bytes, str, int]:
        timeout = self._timeout(timeout)
        self._open("recv_from")
        self._loop_now()
        size = check_size(size)
        os_flags = socket.MSG_PEEK if is_peek(flags) else 0
        deadline = Deadline(timeout, "recv_from")
        with self._reading("recv_from"):
            while True:
                sock = self._open("recv_from")
                try:
                    data, sockaddr = sock.recvfrom(size, os_flags)
                except BlockingIOError:
                    await self._wait_fd(sock, False, deadline)
                    continue
                self._buf.received += len(data)
                host, port = sockaddr_text(sockaddr) if sockaddr is not None else ("", 0)
                return data, host, port

    async def send_to(
        self, address: str, port: int, data: Any, flags: SocketFlag = DEFAULT_FLAGS
    ) -> None:
        sock = self._open("send_to")
        self._check_send_to(sock)
        self._loop_now()
        port = check_port(port)
        payload = as_bytes(data)
        check_family(address, sock.family)
        deadline = Deadline(None, "send_to")
        targets = literal_targets(address, port, sock.family, sock.type)
        if targets is None:
            with self._writing("send_to"):
                targets = await self._resolve(address, port, sock, deadline, write=True)
        tries = InTurn(targets, f"send_to {address}")
        for sockaddr in tries:
            try:
                await self._send_one(payload, sockaddr, deadline)
                return
            except OSError as exc:
                tries.failed(exc)
        raise tries.error()

    async def _send_datagram(self, data: Any, timeout: float | None) -> None:
        """``send`` on a (connected) datagram socket."""
        self._loop_now()
        await self._send_one(data, None, Deadline(timeout, "send"))

    async def _send_one(self, data: Any, sockaddr: Any, deadline: Deadline) -> None:
        """One datagram; the write side is claimed only if the OS makes it wait."""
        claimed = False
        try:
            while True:
                sock = self._open(deadline.operation)
                try:
                    if sockaddr is None:
                        sock.send(data, _NOSIGNAL)
                    else:
                        sock.sendto(data, _NOSIGNAL, sockaddr)
                    self._bytes_sent += len(data)
                    return
                except BlockingIOError:
                    if not claimed:
                        self._begin_write(deadline.operation)
                        claimed = True
                    await self._wait_fd(sock, True, deadline)
        finally:
            if claimed:
                self._writer = None
