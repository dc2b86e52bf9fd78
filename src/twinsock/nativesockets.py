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
``selectors`` elsewhere.

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

import enum
import math
import os
import select
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol as _TypingProtocol
from typing import TypeVar

from twinsock._core.deadline import check_timeout
from twinsock.addresses import SockAddrTuple, check_port, parse_ip_address
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


class Domain(enum.IntEnum):
    """Socket domain (address family), with the OS values."""

    AF_UNSPEC = socket.AF_UNSPEC
    AF_UNIX = getattr(socket, "AF_UNIX", 1)
    AF_INET = socket.AF_INET
    AF_INET6 = socket.AF_INET6


class SockType(enum.IntEnum):
    """Socket type, with the OS values."""

    SOCK_STREAM = socket.SOCK_STREAM
    SOCK_DGRAM = socket.SOCK_DGRAM
    SOCK_RAW = socket.SOCK_RAW
    SOCK_SEQPACKET = getattr(socket, "SOCK_SEQPACKET", 5)


class Protocol(enum.IntEnum):
    """IP protocol number, with the OS values."""

    IPPROTO_TCP = socket.IPPROTO_TCP
    IPPROTO_UDP = socket.IPPROTO_UDP
    IPPROTO_IP = socket.IPPROTO_IP
    IPPROTO_IPV6 = socket.IPPROTO_IPV6
    IPPROTO_RAW = socket.IPPROTO_RAW
    IPPROTO_ICMP = socket.IPPROTO_ICMP
    IPPROTO_ICMPV6 = socket.IPPROTO_ICMPV6


@dataclass(frozen=True)
class Servent:
    """A service database entry (``getservbyname`` / ``getservbyport``)."""

    name: str
    aliases: tuple[str, ...]
    port: int
    proto: str


@dataclass(frozen=True)
class Hostent:
    """A host database entry (``gethostbyname`` / ``gethostbyaddr``)."""

    name: str
    aliases: tuple[str, ...]
    addrtype: Domain
    length: int
    addr_list: tuple[str, ...]


@dataclass(frozen=True)
class AddrInfo:
    """One ``getaddrinfo`` result; enum members where the value is known."""

    family: int
    type: int
    proto: int
    canonname: str
    sockaddr: SockAddrTuple


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


def _known(enum_type: type[enum.IntEnum], value: int) -> int:
    try:
        return enum_type(value)
    except ValueError:
        return value


def to_known_domain(family: int) -> Domain | None:
    """Return the :class:`Domain` for an OS family number, or ``None`` if unknown.

    Raises:
        TypeError: ``family`` is not an ``int``.
    """
    _check_int(family, "family")
    try:
        return Domain(family)
    except ValueError:
        return None


def to_sock_type(protocol: Protocol | int) -> SockType:
    """Return the socket type that goes with ``protocol`` (TCP: stream, UDP: datagram, else raw).

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


def get_addr_info(
    address: str,
    port: int,
    domain: Domain | int = Domain.AF_INET,
    sock_type: SockType | int = SockType.SOCK_STREAM,
    protocol: Protocol | int = Protocol.IPPROTO_TCP,
    *,
    flags: int = 0,
) -> list[AddrInfo]:
    """Resolve ``address`` and ``port`` with ``getaddrinfo``.

    For ``SOCK_RAW`` the port is checked but not used (as Nim does: the OS
    takes no service for raw sockets), so the results carry port 0.

    Raises:
        socket.gaierror: resolution failed (an ``OSError``).
        AddressError: ``port`` is outside 0..65535 or not an int.
        TypeError: ``address`` is not a ``str``.
    """
    if not isinstance(address, str):
        raise TypeError(f"address must be a str, not {type(address).__name__}")
    valid_port: int | None = check_port(port)
    if sock_type == socket.SOCK_RAW:
        valid_port = None  # raw sockets have no ports; getaddrinfo refuses a service for them
    results: list[AddrInfo] = []
    for family, kind, proto, canonname, sockaddr in socket.getaddrinfo(
        address, valid_port, domain, sock_type, protocol, flags
    ):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue  # only IP results carry a (host, port, ...) tuple
        results.append(
            AddrInfo(
                family=_known(Domain, family),
                type=_known(SockType, kind),
                proto=_known(Protocol, proto),
                canonname=canonname,
                sockaddr=sockaddr,  # type: ignore[arg-type]
            )
        )
    return results


def get_serv_by_name(name: str, proto: str) -> Servent:
    """Look up a service by name and protocol name (``/etc/services`` on POSIX).

    Raises:
        OSError: no such service for ``proto``.
        TypeError: ``name`` or ``proto`` is not a ``str``.
    """
    if not isinstance(name, str) or not isinstance(proto, str):
        raise TypeError("get_serv_by_name takes a str name and a str proto")
    port = socket.getservbyname(name, proto)
    canonical = socket.getservbyport(port, proto)
    aliases = (name,) if name != canonical else ()
    return Servent(name=canonical, aliases=aliases, port=port, proto=proto)


def get_serv_by_port(port: int, proto: str) -> Servent:
    """Look up a service by port number and protocol name.

    Raises:
        OSError: no service on ``port`` for ``proto``.
        AddressError: ``port`` is outside 0..65535 or not an int.
        TypeError: ``proto`` is not a ``str``.
    """
    valid_port = check_port(port)
    if not isinstance(proto, str):
        raise TypeError(f"proto must be a str, not {type(proto).__name__}")
    name = socket.getservbyport(valid_port, proto)
    return Servent(name=name, aliases=(), port=valid_port, proto=proto)


def get_host_by_name(name: str) -> Hostent:
    """Look up the IPv4 addresses of a host name (``gethostbyname``).

    Raises:
        OSError: the name does not resolve (``socket.gaierror``).
        TypeError: ``name`` is not a ``str``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    hostname, aliases, addrs = socket.gethostbyname_ex(name)
    return Hostent(hostname, tuple(aliases), Domain.AF_INET, 4, tuple(addrs))


def get_host_by_addr(ip: str) -> Hostent:
    """Look up the host name of an IP address (``gethostbyaddr``).

    Raises:
        OSError: the address has no name (``socket.herror``).
        AddressError: ``ip`` is not an IP address.
        TypeError: ``ip`` is not a ``str``.
    """
    parsed = parse_ip_address(ip)
    hostname, aliases, addrs = socket.gethostbyaddr(ip)
    if parsed.version == 4:
        return Hostent(hostname, tuple(aliases), Domain.AF_INET, 4, tuple(addrs))
    return Hostent(hostname, tuple(aliases), Domain.AF_INET6, 16, tuple(addrs))


def get_hostname() -> str:
    """Return the local host name (not the FQDN)."""
    return socket.gethostname()


def get_proto_by_name(name: str) -> int:
    """Return the protocol number for a protocol name (``"tcp"`` gives 6).

    Raises:
        OSError: unknown protocol name.
        TypeError: ``name`` is not a ``str``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    return socket.getprotobyname(name)


def create_native_socket(
    domain: Domain | int = Domain.AF_INET,
    sock_type: SockType | int = SockType.SOCK_STREAM,
    protocol: Protocol | int = Protocol.IPPROTO_TCP,
    inheritable: bool = False,
) -> socket.socket:
    """Create a socket; ``AF_UNIX`` with TCP/UDP (the defaults) uses protocol 0.

    Raises:
        OSError: the OS refused (unsupported family, type or protocol).
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

    Raises:
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "set_inheritable")
    sock.set_inheritable(bool(flag))


def set_blocking(sock: socket.socket, flag: bool) -> None:
    """Put ``sock`` in blocking (``True``) or non-blocking (``False``) mode.

    Raises:
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "set_blocking")
    sock.setblocking(bool(flag))


def close(sock: socket.socket) -> None:
    """Close ``sock``; closing a closed socket does nothing."""
    sock.close()


def _check_uint(value: object, bits: int, name: str) -> int:
    number = _check_int(value, "x")
    if not 0 <= number < 1 << bits:
        raise OverflowError(f"{name}: {number} is not a {bits}-bit unsigned integer")
    return number


def ntohl(x: int) -> int:
    """Convert a 32-bit unsigned integer from network to host byte order.

    Raises:
        OverflowError: ``x`` is outside 0..2**32-1.
        TypeError: ``x`` is not an ``int``.
    """
    return socket.ntohl(_check_uint(x, 32, "ntohl"))


def ntohs(x: int) -> int:
    """Convert a 16-bit unsigned integer from network to host byte order.

    Raises:
        OverflowError: ``x`` is outside 0..65535.
        TypeError: ``x`` is not an ``int``.
    """
    return socket.ntohs(_check_uint(x, 16, "ntohs"))


def htonl(x: int) -> int:
    """Convert a 32-bit unsigned integer from host to network byte order.

    Raises:
        OverflowError: ``x`` is outside 0..2**32-1.
        TypeError: ``x`` is not an ``int``.
    """
    return socket.htonl(_check_uint(x, 32, "htonl"))


def htons(x: int) -> int:
    """Convert a 16-bit unsigned integer from host to network byte order.

    Raises:
        OverflowError: ``x`` is outside 0..65535.
        TypeError: ``x`` is not an ``int``.
    """
    return socket.htons(_check_uint(x, 16, "htons"))


def get_sock_domain(sock: socket.socket) -> Domain:
    """Return the domain (address family) of ``sock``.

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

    Raises:
        SocketClosedError: ``sock`` is closed.
    """
    return get_local_addr(sock)[1]


def get_local_addr(sock: socket.socket) -> tuple[str, int]:
    """Return the local address text and port of ``sock`` (``getsockname``).

    Raises:
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "get_local_addr")
    return _split(sock.getsockname())


def get_peer_addr(sock: socket.socket) -> tuple[str, int]:
    """Return the peer's address text and port (``getpeername``).

    Raises:
        OSError: ``sock`` is not connected (ENOTCONN).
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "get_peer_addr")
    return _split(sock.getpeername())


def get_sock_opt_int(sock: socket.socket, level: int, optname: int) -> int:
    """Return an integer socket option (``getsockopt``).

    Raises:
        OSError: the OS refused the option.
        SocketClosedError: ``sock`` is closed.
    """
    _open_fd(sock, "get_sock_opt_int")
    return sock.getsockopt(_check_int(level, "level"), _check_int(optname, "optname"))


def set_sock_opt_int(sock: socket.socket, level: int, optname: int, value: int) -> None:
    """Set an integer socket option (``setsockopt``); ``bool`` values count as 0/1.

    Raises:
        OSError: the OS refused the option or value.
        SocketClosedError: ``sock`` is closed.
        TypeError: ``value`` is not an ``int``.
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
    not block).  ``timeout=None`` waits until one is ready, ``0`` only checks;
    an empty ``socks`` returns ``[]`` at once.

    Raises:
        SocketClosedError: one of ``socks`` is closed.
        ValueError: ``timeout`` is negative or NaN.
    """
    return _wait(socks, timeout, False, "select_read")


def select_write(socks: Sequence[_S], timeout: float | None = None) -> list[_S]:
    """Return the sockets of ``socks`` that can be written without blocking, in order.

    ``timeout=None`` waits until one is ready, ``0`` only checks; an empty
    ``socks`` returns ``[]`` at once.

    Raises:
        SocketClosedError: one of ``socks`` is closed.
        ValueError: ``timeout`` is negative or NaN.
    """
    return _wait(socks, timeout, True, "select_write")


def accept(sock: socket.socket, inheritable: bool = False) -> tuple[socket.socket, str]:
    """Accept a connection on a listening socket; return it and the peer's address text.

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
