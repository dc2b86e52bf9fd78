"""Thin, typed functions over the ``socket`` module (Nim's ``nativesockets``).

How this works: every function takes and returns standard ``socket.socket``
objects and does one system-level thing.  Where Nim returns an invalid handle
or ``false`` on failure, these functions raise the ``OSError`` the operating
system reported (``socket.gaierror`` and ``socket.herror`` are ``OSError``
subclasses), so ``except ConnectionRefusedError`` and friends keep working.
A function handed a closed ``socket.socket`` raises
:class:`~twinsock.errors.SocketClosedError` (an ``OSError`` with errno EBADF)
before touching the OS.  ``select_read`` / ``select_write`` wait with
``select.poll`` where it exists (no 1024-descriptor limit) and fall back to
``selectors`` elsewhere.  The enums live in ``twinsock._native_types`` and
the name-service lookups (``get_addr_info``, ``get_serv_by_*``,
``get_host_by_*``, ...) in ``twinsock._netdb``; this module exports them.

Decisions where the SPEC is silent:

- Address texts are the operating system's numeric text (``inet_ntop``),
  returned unchanged; an AF_UNIX address is its path (``""`` when unnamed, a
  leading ``"\\0"`` for a Linux abstract name) with port ``0``.
- ``create_native_socket`` with ``AF_UNIX`` uses protocol 0 when given
  ``IPPROTO_TCP`` or ``IPPROTO_UDP`` (the defaults): IP protocol numbers mean
  nothing to Unix sockets and the OS would refuse them.
- ``get_host_by_name`` is IPv4-only, like ``gethostbyname`` (use
  ``get_addr_info`` for IPv6).
- ``Servent.aliases`` holds only what the ``socket`` module can reveal: the
  queried name when it is an alias of the canonical service name.
- Ports are checked with :func:`twinsock.addresses.check_port`
  (``AddressError``); byte-order functions raise ``OverflowError`` out of
  range, like the ``socket`` module.
"""

from __future__ import annotations

import math
import os
import select
import selectors
import socket
import time
from collections.abc import Sequence
from typing import Protocol as _TypingProtocol
from typing import TypeVar

from twinsock._core.deadline import check_timeout
from twinsock._native_types import Domain, Protocol, SockType
from twinsock._netdb import (
    AddrInfo,
    Hostent,
    Servent,
    get_addr_info,
    get_host_by_addr,
    get_host_by_name,
    get_hostname,
    get_proto_by_name,
    get_serv_by_name,
    get_serv_by_port,
)
from twinsock.addresses import SockAddrTuple  # noqa: F401 (AddrInfo's annotation names it)
from twinsock.errors import AddressError, SocketClosedError

__all__ = [
    "SOMAXCONN",
    "AddrInfo",
    "Domain",
    "Hostent",
    "Protocol",
    "Servent",
    "SockType",
    "accept",
    "close",
    "create_native_socket",
    "get_addr_info",
    "get_addr_string",
    "get_host_by_addr",
    "get_host_by_name",
    "get_hostname",
    "get_local_addr",
    "get_peer_addr",
    "get_proto_by_name",
    "get_serv_by_name",
    "get_serv_by_port",
    "get_sock_domain",
    "get_sock_name",
    "get_sock_opt_int",
    "htonl",
    "htons",
    "ntohl",
    "ntohs",
    "select_read",
    "select_write",
    "set_blocking",
    "set_inheritable",
    "set_sock_opt_int",
    "to_known_domain",
    "to_sock_type",
]

#: The operating system's largest ``listen`` backlog (``socket.SOMAXCONN``).
SOMAXCONN: int = socket.SOMAXCONN

# The enums and the name-service lookups live in private modules (so that this
# one stays short enough to read); they are documented, and pickled, as ours.
for _exported in (Domain, SockType, Protocol, Servent, Hostent, AddrInfo, get_addr_info,
                  get_serv_by_name, get_serv_by_port, get_host_by_name, get_host_by_addr,
                  get_hostname, get_proto_by_name):
    _exported.__module__ = __name__
del _exported


class _HasFileno(_TypingProtocol):
    def fileno(self) -> int: ...


_S = TypeVar("_S", bound=_HasFileno)


def _check_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


def _open_fd(sock: _HasFileno, operation: str) -> int:
    fd = sock.fileno()
    if fd < 0:
        raise SocketClosedError(operation)
    return fd


def to_known_domain(family: int) -> Domain | None:
    """Return the :class:`Domain` for an OS family number, or ``None`` if unknown.

    Args:
        family: an address family number (``socket.AF_INET``, ...).

    Returns:
        The ``Domain`` member, or ``None`` for a family it does not list.

    Raises:
        TypeError: ``family`` is not an ``int``.
    """
    _check_int(family, "family")
    try:
        return Domain(family)
    except ValueError:
        return None


def to_sock_type(protocol: Protocol | int) -> SockType:
    """Return the socket type that goes with ``protocol``.

    Args:
        protocol: a :class:`Protocol` value.

    Returns:
        ``SOCK_STREAM`` for TCP, ``SOCK_DGRAM`` for UDP, ``SOCK_RAW`` for the rest.

    Raises:
        ValueError: ``protocol`` is not a :class:`Protocol` value.
        TypeError: ``protocol`` is not an ``int``.
    """
    proto = Protocol(_check_int(protocol, "protocol"))
    if proto is Protocol.IPPROTO_TCP:
        return SockType.SOCK_STREAM
    if proto is Protocol.IPPROTO_UDP:
        return SockType.SOCK_DGRAM
    return SockType.SOCK_RAW


def create_native_socket(
    domain: Domain | int = Domain.AF_INET,
    sock_type: SockType | int = SockType.SOCK_STREAM,
    protocol: Protocol | int = Protocol.IPPROTO_TCP,
    inheritable: bool = False,
) -> socket.socket:
    """Create a socket; ``AF_UNIX`` with TCP/UDP (the defaults) uses protocol 0.

    Args:
        domain: the address family.
        sock_type: the socket type.
        protocol: the protocol number.
        inheritable: let child processes inherit the descriptor.

    Returns:
        The new ``socket.socket``, in blocking mode.

    Raises:
        OSError: the OS refused (unsupported family, type or protocol, or a
            raw socket without the privilege).
    """
    if domain == Domain.AF_UNIX and protocol in (Protocol.IPPROTO_TCP, Protocol.IPPROTO_UDP):
        protocol = 0
    sock = socket.socket(domain, sock_type, protocol)
    if inheritable:
        try:
            sock.set_inheritable(True)
        except BaseException:
            sock.close()
            raise
    return sock


def set_inheritable(sock: socket.socket, flag: bool) -> None:
    """Set whether ``sock`` is inherited by child processes.

    Args:
        sock: the socket.
        flag: ``True`` to let children inherit it.

    Raises:
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "set_inheritable")
    sock.set_inheritable(bool(flag))


def set_blocking(sock: socket.socket, flag: bool) -> None:
    """Put ``sock`` in blocking (``True``) or non-blocking (``False``) mode.

    Args:
        sock: the socket.
        flag: ``True`` for blocking calls, ``False`` for calls that raise
            ``BlockingIOError`` instead of waiting.

    Raises:
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "set_blocking")
    sock.setblocking(bool(flag))


def close(sock: socket.socket) -> None:
    """Close ``sock``; closing a closed socket does nothing.

    Args:
        sock: the socket.
    """
    sock.close()


def _check_uint(value: object, bits: int, name: str) -> int:
    number = _check_int(value, "x")
    if not 0 <= number < 1 << bits:
        raise OverflowError(f"{name}: {number} is not a {bits}-bit unsigned integer")
    return number


def ntohl(x: int) -> int:
    """Convert a 32-bit unsigned integer from network to host byte order.

    Args:
        x: the integer, 0..2**32-1.

    Returns:
        ``x`` with its bytes in host order.

    Raises:
        OverflowError: ``x`` is outside 0..2**32-1.
        TypeError: ``x`` is not an ``int``.
    """
    return socket.ntohl(_check_uint(x, 32, "ntohl"))


def ntohs(x: int) -> int:
    """Convert a 16-bit unsigned integer from network to host byte order.

    Args:
        x: the integer, 0..65535.

    Returns:
        ``x`` with its bytes in host order.

    Raises:
        OverflowError: ``x`` is outside 0..65535.
        TypeError: ``x`` is not an ``int``.
    """
    return socket.ntohs(_check_uint(x, 16, "ntohs"))


def htonl(x: int) -> int:
    """Convert a 32-bit unsigned integer from host to network byte order.

    Args:
        x: the integer, 0..2**32-1.

    Returns:
        ``x`` with its bytes in network order.

    Raises:
        OverflowError: ``x`` is outside 0..2**32-1.
        TypeError: ``x`` is not an ``int``.
    """
    return socket.htonl(_check_uint(x, 32, "htonl"))


def htons(x: int) -> int:
    """Convert a 16-bit unsigned integer from host to network byte order.

    Args:
        x: the integer, 0..65535.

    Returns:
        ``x`` with its bytes in network order.

    Raises:
        OverflowError: ``x`` is outside 0..65535.
        TypeError: ``x`` is not an ``int``.
    """
    return socket.htons(_check_uint(x, 16, "htons"))


def get_sock_domain(sock: socket.socket) -> Domain:
    """Return the domain (address family) of ``sock``.

    Args:
        sock: the socket.

    Returns:
        The :class:`Domain` member.

    Raises:
        SocketClosedError: ``sock`` is closed.
        ValueError: the family is not one of :class:`Domain`.
    """
    _open_fd(sock, "get_sock_domain")
    domain = to_known_domain(int(sock.family))
    if domain is None:
        raise ValueError(f"unknown socket family {int(sock.family)}")
    return domain


def get_addr_string(sockaddr: object) -> str:
    """Return the address text of a socket address (a tuple, or an AF_UNIX path).

    Args:
        sockaddr: an AF_INET / AF_INET6 tuple, or an AF_UNIX path (``str`` or
            ``bytes``).

    Returns:
        The host text of a tuple (unchanged), or the path.

    Raises:
        AddressError: a tuple that is not an AF_INET / AF_INET6 address.
        TypeError: ``sockaddr`` is neither a tuple, a ``str`` nor ``bytes``.
    """
    if isinstance(sockaddr, str):
        return sockaddr
    if isinstance(sockaddr, bytes):
        return os.fsdecode(sockaddr)
    if not isinstance(sockaddr, tuple):
        raise TypeError(f"expected a socket address, not {type(sockaddr).__name__}")
    if len(sockaddr) not in (2, 4) or not isinstance(sockaddr[0], str):
        raise AddressError(f"{sockaddr!r} is not an AF_INET or AF_INET6 socket address")
    return sockaddr[0]


def _split(sockaddr: object) -> tuple[str, int]:
    if isinstance(sockaddr, tuple):
        return get_addr_string(sockaddr), int(sockaddr[1])
    return get_addr_string(sockaddr), 0


def get_sock_name(sock: socket.socket) -> int:
    """Return the local port of ``sock`` (0 for AF_UNIX sockets).

    Args:
        sock: the socket.

    Returns:
        The port (0 before the socket is bound).

    Raises:
        SocketClosedError: ``sock`` is closed.
    """
    return get_local_addr(sock)[1]


def get_local_addr(sock: socket.socket) -> tuple[str, int]:
    """Return the local address text and port of ``sock`` (``getsockname``).

    Args:
        sock: the socket.

    Returns:
        ``(address, port)``; an AF_UNIX socket gives its path (``""`` when
        unnamed) and 0.

    Raises:
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "get_local_addr")
    return _split(sock.getsockname())


def get_peer_addr(sock: socket.socket) -> tuple[str, int]:
    """Return the peer's address text and port (``getpeername``).

    Args:
        sock: a connected socket.

    Returns:
        ``(address, port)``, IPv6 text for an IPv6 peer; an AF_UNIX socket gives
        the peer's path and 0.

    Raises:
        OSError: ``sock`` is not connected (ENOTCONN).
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "get_peer_addr")
    return _split(sock.getpeername())


def get_sock_opt_int(sock: socket.socket, level: int, optname: int) -> int:
    """Return an integer socket option (``getsockopt``).

    Args:
        sock: the socket.
        level: the option's level (``socket.SOL_SOCKET``, ...).
        optname: the option (``socket.SO_RCVBUF``, ...).

    Returns:
        The option's value.

    Raises:
        OSError: the OS refused the option.
        SocketClosedError: ``sock`` is closed.
        TypeError: ``level`` or ``optname`` is not an ``int``.
    """
    _open_fd(sock, "get_sock_opt_int")
    return sock.getsockopt(_check_int(level, "level"), _check_int(optname, "optname"))


def set_sock_opt_int(sock: socket.socket, level: int, optname: int, value: int) -> None:
    """Set an integer socket option (``setsockopt``); ``bool`` values count as 0/1.

    Args:
        sock: the socket.
        level: the option's level (``socket.SOL_SOCKET``, ...).
        optname: the option (``socket.SO_REUSEADDR``, ...).
        value: the value.

    Raises:
        OSError: the OS refused the option or value.
        SocketClosedError: ``sock`` is closed.
        TypeError: ``value``, ``level`` or ``optname`` is not an ``int``.
    """
    _open_fd(sock, "set_sock_opt_int")
    if not isinstance(value, int):
        raise TypeError(f"value must be an int, not {type(value).__name__}")
    sock.setsockopt(_check_int(level, "level"), _check_int(optname, "optname"), int(value))


# poll() takes an int of milliseconds; longer waits are done in slices.
_MAX_POLL_MS = 2**31 - 1


def _wait(socks: Sequence[_S], timeout: float | None, write: bool, name: str) -> list[_S]:
    seconds = check_timeout(timeout)  # the sockets' rule: inf waits forever, huge is clamped
    fds = [_open_fd(sock, name) for sock in socks]
    if not fds:
        return []
    if not hasattr(select, "poll"):
        return _wait_selectors(socks, fds, seconds, write)
    # Error and hang-up states count as ready: the next call would not block.
    failed = select.POLLERR | select.POLLHUP | select.POLLNVAL
    interest = select.POLLOUT if write else select.POLLIN | select.POLLPRI
    poller = select.poll()
    for fd in set(fds):
        poller.register(fd, interest)
    deadline = None if seconds is None else time.monotonic() + seconds
    while True:
        if deadline is None:
            wait_ms: int | None = None
        else:
            wait_ms = min(math.ceil(max(deadline - time.monotonic(), 0.0) * 1000), _MAX_POLL_MS)
        events = poller.poll(wait_ms)
        ready = {fd for fd, mask in events if mask & (interest | failed)}
        if ready or (deadline is not None and time.monotonic() >= deadline):
            return [sock for sock, fd in zip(socks, fds, strict=True) if fd in ready]


def _wait_selectors(
    socks: Sequence[_S], fds: list[int], seconds: float | None, write: bool
) -> list[_S]:
    event = selectors.EVENT_WRITE if write else selectors.EVENT_READ
    with selectors.DefaultSelector() as selector:
        for fd in set(fds):
            selector.register(fd, event)
        ready = {key.fd for key, _ in selector.select(seconds)}
    return [sock for sock, fd in zip(socks, fds, strict=True) if fd in ready]


def select_read(socks: Sequence[_S], timeout: float | None = None) -> list[_S]:
    """Return the sockets of ``socks`` that can be read without blocking, in order.

    A socket at end of stream or in error counts as readable (a read would
    not block).

    Args:
        socks: sockets (anything with ``fileno()``); an empty sequence returns
            ``[]`` at once.
        timeout: seconds to wait for one to be ready; ``None`` waits as long as
            it takes, ``0`` only checks.

    Returns:
        The ready sockets, in their order in ``socks``; ``[]`` on timeout.

    Raises:
        SocketClosedError: one of ``socks`` is closed.
        ValueError: ``timeout`` is negative or NaN.
        TypeError: ``timeout`` is not a number.
    """
    return _wait(socks, timeout, False, "select_read")


def select_write(socks: Sequence[_S], timeout: float | None = None) -> list[_S]:
    """Return the sockets of ``socks`` that can be written without blocking, in order.

    Args:
        socks: sockets (anything with ``fileno()``); an empty sequence returns
            ``[]`` at once.
        timeout: seconds to wait for one to be ready; ``None`` waits as long as
            it takes, ``0`` only checks.

    Returns:
        The ready sockets, in their order in ``socks``; ``[]`` on timeout.

    Raises:
        SocketClosedError: one of ``socks`` is closed.
        ValueError: ``timeout`` is negative or NaN.
        TypeError: ``timeout`` is not a number.
    """
    return _wait(socks, timeout, True, "select_write")


def accept(sock: socket.socket, inheritable: bool = False) -> tuple[socket.socket, str]:
    """Accept a connection on a listening socket.

    Args:
        sock: the listening socket.
        inheritable: let child processes inherit the new connection.

    Returns:
        ``(connection, address)``, the connected ``socket.socket`` and the
        peer's address text (its path, or ``""``, for AF_UNIX).

    Raises:
        BlockingIOError: ``sock`` is non-blocking and no connection is pending.
        OSError: the OS refused (for example ``sock`` is not listening).
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "accept")
    conn, address = sock.accept()
    if inheritable:
        try:
            conn.set_inheritable(True)
        except BaseException:
            conn.close()
            raise
    return conn, get_addr_string(address)
