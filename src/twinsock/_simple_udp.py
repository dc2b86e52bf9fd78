"""``simple.UdpSocket`` (Chapel's ``udpSocket``), and what ``simple``'s roles share.

``SocketRole`` is the part of ``TcpListener`` and ``UdpSocket`` that only
hands on to the wrapped socket (closing, the descriptor, ``with``); the
argument checks are ``simple``'s too.

How this works: a ``UdpSocket`` wraps a datagram :class:`twinsock.net.Socket`
and reads with ``Socket.recv_from``, one datagram per call.  ``twinsock.simple``
exports it (the reference documents it there); it lives in this module of its
own so that ``simple`` stays short enough to read.
"""

from __future__ import annotations

import socket
from typing import Any, Self

from twinsock import net
from twinsock._core.data import as_bytes
from twinsock._core.deadline import Deadline
from twinsock._core.types import SocketFlag
from twinsock.addresses import IPFamily, SocketAddress
from twinsock.errors import AddressError
from twinsock.nativesockets import Domain, Protocol, SockType, select_write

__all__ = ["SocketRole", "UdpSocket", "check_address", "check_family"]


def check_family(family: object) -> IPFamily:
    if isinstance(family, bool) or not isinstance(family, int):
        raise TypeError(f"family must be an IPFamily, not {family!r}")
    try:
        return IPFamily(family)
    except ValueError:
        raise AddressError(f"{family!r} is not an IPFamily") from None


def check_address(address: object) -> None:
    if not isinstance(address, SocketAddress):
        raise TypeError(f"address must be a SocketAddress, not {address!r}")


class SocketRole:
    """A role that wraps one :class:`twinsock.net.Socket` (``_sock``): a context manager."""

    _sock: net.Socket

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def socket_fd(self) -> int:
        """The file descriptor (-1 once closed)."""
        return self._sock.get_fd()

    def fileno(self) -> int:
        """The file descriptor, for ``select`` and friends.

        Returns:
            The descriptor number, or -1 once it is closed.
        """
        return self._sock.get_fd()

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._sock.close()

    def is_closed(self) -> bool:
        """Tell whether it was closed.

        Returns:
            ``True`` once ``close()`` was called.
        """
        return self._sock.is_closed()


class UdpSocket(SocketRole):
    """A UDP socket (Chapel's ``udpSocket``) of ``family`` (IPv4 or IPv6).

    Not bound when made: :func:`bind` it to receive on a known port; the first
    ``send`` binds an unbound socket to a free port.  A context manager.

    Args:
        family: ``IPFamily.IPV4`` or ``IPFamily.IPV6``.

    Raises:
        ValueError: ``family`` is ``IPFamily.UNSPEC``.
        AddressError: ``family`` is no ``IPFamily`` value.
        TypeError: ``family`` is not an int.
    """

    def __init__(self, family: IPFamily = IPFamily.IPV4) -> None:
        fam = check_family(family)
        if fam is IPFamily.UNSPEC:
            raise ValueError("a UdpSocket needs IPFamily.IPV4 or IPFamily.IPV6")
        self._family = fam
        self._sock = net.Socket(Domain(fam), SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP)

    def __repr__(self) -> str:
        state = "closed" if self._sock.is_closed() else self._sock._where()
        return f"<twinsock.simple.UdpSocket {self._family.name} {state}>"

    @property
    def family(self) -> IPFamily:
        """``IPFamily.IPV4`` or ``IPFamily.IPV6``."""
        return self._family

    @property
    def net_socket(self) -> net.Socket:
        """The underlying datagram :class:`twinsock.net.Socket`."""
        return self._sock

    def recvfrom(
        self, buffer_len: int, timeout: float | None = None, flags: int | SocketFlag = 0
    ) -> tuple[bytes, SocketAddress]:
        """Receive one datagram (cut to ``buffer_len`` bytes) and its sender's address.

        Args:
            buffer_len: the most bytes to return; the rest of a longer datagram is dropped.
            timeout: seconds to wait; ``None`` waits forever.
            flags: ``0``, or ``socket.MSG_PEEK`` / ``SocketFlag.PEEK`` to leave
                the datagram queued.

        Returns:
            ``(data, sender)``, the datagram and its sender's :class:`SocketAddress`.

        Raises:
            NetTimeout: nothing arrived within ``timeout``.
            ValueError: ``flags`` holds something other than ``MSG_PEEK``, or a
                negative ``buffer_len`` or ``timeout``.
            TypeError: ``flags`` is neither an int nor a ``SocketFlag``, or
                ``buffer_len`` is not an int.
            SocketClosedError: the socket is closed, or another thread closed
                it while the call waited.
            OSError: the OS reported an error (``ConnectionRefusedError`` for an
                earlier datagram nobody took).
        """
        data, host, port = self._sock.recv_from(buffer_len, _datagram_flags(flags), timeout)
        return data, SocketAddress.create(host, port, IPFamily.UNSPEC)

    def recv(self, buffer_len: int, timeout: float | None = None) -> bytes:
        """Receive one datagram, cut to ``buffer_len`` bytes.

        Args:
            buffer_len: the most bytes to return; the rest of a longer datagram
                is dropped.
            timeout: seconds to wait; ``None`` waits forever.

        Returns:
            The datagram.

        Raises:
            NetTimeout: nothing arrived within ``timeout``.
            ValueError: a negative ``buffer_len`` or ``timeout``.
            TypeError: ``buffer_len`` is not an int.
            SocketClosedError: the socket is closed.
            OSError: the OS reported an error.
        """
        return self.recvfrom(buffer_len, timeout)[0]

    def send(self, data: Any, address: SocketAddress, timeout: float | None = None) -> int:
        """Send ``data`` as one datagram to ``address``.

        Args:
            data: bytes-like, or ``str`` (sent as UTF-8).
            address: the receiver, of the socket's family.
            timeout: seconds to wait for room in the socket's send buffer;
                ``None`` waits as long as it takes.

        Returns:
            The number of bytes sent (the whole datagram).

        Raises:
            NetTimeout: the socket's send buffer stayed full for ``timeout`` seconds.
            AddressError: ``address`` is of the other family.
            OSError: the datagram is too long (``EMSGSIZE``) or cannot be routed.
            TypeError: ``address`` is not a :class:`SocketAddress`, or ``data``
                is neither bytes-like nor ``str``.
            SocketClosedError: the socket is closed.
        """
        check_address(address)
        payload = as_bytes(data)
        deadline = Deadline(timeout, "send")
        if timeout is not None:
            native = self._sock._open("send")
            if not select_write([native], deadline.remaining()):
                raise deadline.error(f"-> {address}")
        self._sock.send_to(address.host, address.port, payload)
        return len(payload)


def _datagram_flags(flags: int | SocketFlag) -> SocketFlag:
    if isinstance(flags, SocketFlag):
        return flags
    if isinstance(flags, bool) or not isinstance(flags, int):
        raise TypeError(f"flags must be an int or a SocketFlag, not {flags!r}")
    if flags & ~socket.MSG_PEEK:
        raise ValueError(f"unsupported recvfrom flags {flags:#x}: only MSG_PEEK is supported")
    return SocketFlag.PEEK if flags & socket.MSG_PEEK else SocketFlag(0)
