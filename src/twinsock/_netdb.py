"""The name-service lookups of ``twinsock.nativesockets``: addresses, services, hosts.

How this works: each function is one lookup of the ``socket`` module
(``getaddrinfo``, ``getservbyname``, ``gethostbyname_ex``, ...) with the
argument checks ``nativesockets`` applies everywhere, and returns frozen
records; a failed lookup raises the ``OSError`` the resolver reported
(``socket.gaierror`` and ``socket.herror`` are ``OSError`` subclasses).
``twinsock.nativesockets`` re-exports every public name here, and the
reference documents them under that module.
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass

from twinsock._native_types import Domain, Protocol, SockType
from twinsock.addresses import SockAddrTuple, check_port, parse_ip_address

__all__ = [
    "AddrInfo",
    "Hostent",
    "Servent",
    "get_addr_info",
    "get_host_by_addr",
    "get_host_by_name",
    "get_hostname",
    "get_proto_by_name",
    "get_serv_by_name",
    "get_serv_by_port",
]


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


def _known(enum_type: type[enum.IntEnum], value: int) -> int:
    try:
        return enum_type(value)
    except ValueError:
        return value



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

    Args:
        address: a host name or a numeric address.
        port: the port, 0..65535.
        domain: the family to resolve for (``AF_UNSPEC``: both).
        sock_type: the socket type the results are for.
        protocol: the protocol the results are for.
        flags: ``getaddrinfo``'s ``AI_*`` flags (keyword only).

    Returns:
        One :class:`AddrInfo` per IPv4 or IPv6 result, in the resolver's order.

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

    Args:
        name: the service name or one of its aliases (``"http"``).
        proto: the protocol name (``"tcp"``, ``"udp"``).

    Returns:
        The :class:`Servent`, named by its canonical name.

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

    Args:
        port: the port, 0..65535.
        proto: the protocol name (``"tcp"``, ``"udp"``).

    Returns:
        The :class:`Servent`.

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

    Args:
        name: the host name (a numeric IPv4 address gives itself).

    Returns:
        The :class:`Hostent`, with the canonical name, the aliases and the IPv4
        address texts.

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

    Args:
        ip: the text of an IPv4 or IPv6 address.

    Returns:
        The :class:`Hostent` of the address's family.

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
    """Return the local host name (not the FQDN).

    Returns:
        The name, as ``socket.gethostname`` gives it.
    """
    return socket.gethostname()


def get_proto_by_name(name: str) -> int:
    """Return the protocol number for a protocol name.

    Args:
        name: the protocol name (``"tcp"``, ``"udp"``, ``"icmp"``).

    Returns:
        The number (``"tcp"`` gives 6).

    Raises:
        OSError: unknown protocol name.
        TypeError: ``name`` is not a ``str``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    return socket.getprotobyname(name)
