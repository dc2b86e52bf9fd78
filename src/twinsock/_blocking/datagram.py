"""``net.Socket``'s datagrams: ``recv_from`` and ``send_to``.

How this works.  ``recv_from`` without a timeout is one plain blocking
system call; with one it tries with ``MSG_DONTWAIT`` and polls only when
nothing is there.  Either way it claims the read side first, so a second
reader gets ``BusyError`` and ``close()`` can wake it.  ``send_to`` tries
each resolved address in turn as the core's ``InTurn`` says; a datagram
send rarely waits, so it claims the write side only when the OS asks it to
(``BlockingIOError``): threads may send replies on one socket at once.
"""

from __future__ import annotations

import socket
from typing import Any

from twinsock._blocking.base import BlockingBase
from twinsock._blocking.wait import wait_readable, wait_writable
from twinsock._core.attempts import InTurn
from twinsock._core.data import as_bytes, check_size
from twinsock._core.deadline import Deadline
from twinsock._core.flags import is_peek
from twinsock._core.targets import check_family, sockaddr_text
from twinsock._core.types import DEFAULT_FLAGS, SocketFlag
from twinsock._resolver import getaddrinfo, resolve
from twinsock.addresses import check_port
from twinsock.errors import SocketClosedError

__all__ = ["Datagrams"]

_DONTWAIT = socket.MSG_DONTWAIT
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


class Datagrams(BlockingBase):
    """``recv_from`` and ``send_to`` of ``net.Socket``."""

    __slots__ = ()

    def recv_from(
        self, size: int, flags: SocketFlag = DEFAULT_FLAGS, timeout: float | None = None
    ) -> tuple[bytes, str, int]:
        timeout = self._timeout(timeout)
        self._open("recv_from")
        size = check_size(size)
        os_flags = socket.MSG_PEEK if is_peek(flags) else 0
        deadline = Deadline(timeout, "recv_from")
        sock = self._begin_read("recv_from")
        try:
            while True:
                try:
                    if deadline.timeout is None:
                        data, sockaddr = sock.recvfrom(size, os_flags)
                    else:
                        data, sockaddr = sock.recvfrom(size, os_flags | _DONTWAIT)
                except BlockingIOError:
                    wait_readable(sock, deadline, self._where())
                    self._open("recv_from")  # woken by close()?
                    continue
                except OSError:
                    if self._sock is None:
                        raise SocketClosedError("recv_from") from None
                    raise
                self._open("recv_from")  # a shut-down socket reads as empty
                self._buf.received += len(data)
                host, port = sockaddr_text(sockaddr) if sockaddr is not None else ("", 0)
                return data, host, port
        finally:
            self._end_read()

    def send_to(
        self, address: str, port: int, data: Any, flags: SocketFlag = DEFAULT_FLAGS
    ) -> None:
        sock = self._open("send_to")
        self._check_send_to(sock)
        port = check_port(port)
        payload = as_bytes(data)
        check_family(address, sock.family)
        targets = resolve(address, port, sock.family, sock.type, Deadline(None, "send_to"),
                          getaddrinfo)
        tries = InTurn(targets, f"send_to {address}")
        for sockaddr in tries:
            try:
                self._send_one(payload, sockaddr)
                return
            except OSError as exc:
                tries.failed(exc)
        raise tries.error()

    def _send_one(self, payload: Any, sockaddr: Any) -> None:
        try:
            self._open("send_to").sendto(payload, _NOSIGNAL | _DONTWAIT, sockaddr)
            self._bytes_sent += len(payload)
            return
        except BlockingIOError:
            pass
        sock = self._begin_write("send_to")
        try:
            while True:
                try:
                    sock.sendto(payload, _NOSIGNAL | _DONTWAIT, sockaddr)
                    self._bytes_sent += len(payload)
                    return
                except BlockingIOError:
                    wait_writable(sock, Deadline.forever("send_to"), self._where())
                    self._open("send_to")  # woken by close()?
        except OSError:
            if self._sock is None:
                raise SocketClosedError("send_to") from None
            raise
        finally:
            self._end_write()
