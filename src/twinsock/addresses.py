"""IP addresses, ports and socket addresses as plain values (SPEC section 1).

How this works: every parse goes through the standard library's ``ipaddress``
module, so twinsock never re-implements address parsing or RFC 5952
formatting.  ``ipaddress`` already rejects host names and leading-zero IPv4
octets; this module adds a strict ``str``-only input rule, port checking, the
conversion to and from the tuples the ``socket`` module uses, and
:class:`SocketAddress` (Chapel's ``ipAddr``), an immutable ``host``/``port``/
``family`` value whose ``host`` is always the canonical text.

Decisions where the SPEC is silent:

- Input that is not a ``str`` (``parse_ip_address(5)``, ``parse_ip_address(b"...")``)
  raises ``TypeError``: it is a programming error, not a malformed address.
  ``is_ip_address`` returns ``False`` for it instead.
- IPv6 zone identifiers are accepted (``"fe80::1%eth0"``, ``"fe80::1%2"``):
  link-local addresses are unusable without them.  ``to_sockaddr`` turns the
  zone into the numeric ``scope_id`` of the 4-tuple (an interface name is
  looked up with ``socket.if_nametoindex``); ``from_sockaddr`` turns a
  non-zero ``scope_id`` back into a numeric zone (``"fe80::1%2"``).
- Brackets (``"[::1]"``) and surrounding whitespace are not part of an
  address and are rejected.
- Ports are ``int`` in 0..65535; ``bool`` and every other type raise
  :class:`~twinsock.errors.AddressError` (see :func:`check_port`).
- ``SocketAddress.create(..., family=IPFamily.UNSPEC)`` infers the family from
  the host; a ``SocketAddress`` never stores ``UNSPEC``.
- IPv6 ``flowinfo`` is not kept: ``to_sockaddr`` writes 0.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass
from typing import TypeAlias

from twinsock.errors import AddressError

__all__ = [
    "IPV4_ANY",
    "IPV4_BROADCAST",
    "IPV4_LOOPBACK",
    "IPV6_ANY",
    "IPV6_LOOPBACK",
    "IPFamily",
    "IpAddress",
    "IpAddressFamily",
    "SockAddrTuple",
    "SocketAddress",
    "check_port",
    "from_sockaddr",
    "ip_family",
    "is_ip_address",
    "parse_ip_address",
    "to_sockaddr",
]

IpAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
"""An IPv4 or IPv6 address (the ``ipaddress`` module's classes)."""

SockAddrTuple: TypeAlias = tuple[str, int] | tuple[str, int, int, int]
"""The address tuple the ``socket`` module takes for AF_INET / AF_INET6."""

MAX_PORT = 65535

#: ``0.0.0.0``: every IPv4 interface (Nim's ``IPv4_any()``).
IPV4_ANY: ipaddress.IPv4Address = ipaddress.IPv4Address("0.0.0.0")
#: ``127.0.0.1`` (Nim's ``IPv4_loopback()``).
IPV4_LOOPBACK: ipaddress.IPv4Address = ipaddress.IPv4Address("127.0.0.1")
#: ``255.255.255.255`` (Nim's ``IPv4_broadcast()``).
IPV4_BROADCAST: ipaddress.IPv4Address = ipaddress.IPv4Address("255.255.255.255")
#: ``::``: every IPv6 interface (Nim's ``IPv6_any()``).
IPV6_ANY: ipaddress.IPv6Address = ipaddress.IPv6Address("::")
#: ``::1`` (Nim's ``IPv6_loopback()``).
IPV6_LOOPBACK: ipaddress.IPv6Address = ipaddress.IPv6Address("::1")


class IpAddressFamily(enum.Enum):
    """The kind of an IP address (Nim's ``IpAddressFamily``)."""

    IPV4 = 4
    IPV6 = 6


class IPFamily(enum.IntEnum):
    """Address family of a socket address (Chapel's ``IPFamily``), with OS values."""

    IPV4 = socket.AF_INET
    IPV6 = socket.AF_INET6
    UNSPEC = socket.AF_UNSPEC


def check_port(port: object) -> int:
    """Check that ``port`` is a port number.

    Args:
        port: the value to check.

    Returns:
        ``port`` as a plain ``int`` (an ``IntEnum`` member becomes its value).

    Raises:
        AddressError: ``port`` is not an ``int`` (``bool`` included) or is
            outside 0..65535.
    """
    if isinstance(port, bool) or not isinstance(port, int):
        raise AddressError(f"port must be an int in 0..{MAX_PORT}, not {port!r}")
    if not 0 <= port <= MAX_PORT:
        raise AddressError(f"port {port} is outside 0..{MAX_PORT}")
    return int(port)


def parse_ip_address(text: str) -> IpAddress:
    """Parse the text of an IPv4 or IPv6 address (host names are not addresses).

    Leading-zero IPv4 octets (``"01.2.3.4"``) are rejected, because some
    parsers read them as octal.  An IPv6 zone (``"fe80::1%eth0"``) is kept.

    Args:
        text: the address, without brackets or surrounding whitespace.

    Returns:
        An ``ipaddress.IPv4Address`` or ``ipaddress.IPv6Address``.

    Raises:
        AddressError: ``text`` is not an IP address; the message quotes it.
        TypeError: ``text`` is not a ``str``.
    """
    if not isinstance(text, str):
        raise TypeError(f"an IP address must be given as str, not {type(text).__name__}")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise AddressError(f"{text!r} is not an IPv4 or IPv6 address") from None


def is_ip_address(text: object) -> bool:
    """Tell whether ``text`` is the text of an IP address; never raises.

    Args:
        text: anything; only a ``str`` can be an address.

    Returns:
        ``True`` when ``parse_ip_address(text)`` would succeed.
    """
    if not isinstance(text, str):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def ip_family(address: IpAddress) -> IpAddressFamily:
    """Tell whether ``address`` is IPv4 or IPv6.

    Args:
        address: an ``IPv4Address`` or ``IPv6Address``.

    Returns:
        ``IpAddressFamily.IPV4`` or ``IpAddressFamily.IPV6``.

    Raises:
        TypeError: ``address`` is not an ``IPv4Address`` / ``IPv6Address``.
    """
    if isinstance(address, ipaddress.IPv4Address):
        return IpAddressFamily.IPV4
    if isinstance(address, ipaddress.IPv6Address):
        return IpAddressFamily.IPV6
    raise TypeError(f"expected IPv4Address or IPv6Address, not {type(address).__name__}")


def _as_ip(address: IpAddress | str) -> IpAddress:
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return address
    return parse_ip_address(address)


def _scope_index(address: ipaddress.IPv6Address) -> int:
    zone = address.scope_id
    if not zone:
        return 0
    if zone.isdigit():
        return int(zone)
    try:
        return socket.if_nametoindex(zone)
    except OSError:
        raise AddressError(f"{str(address)!r}: unknown network interface {zone!r}") from None


def to_sockaddr(address: IpAddress | str, port: int) -> SockAddrTuple:
    """Return the tuple the ``socket`` module takes for ``address`` and ``port``.

    Args:
        address: an address object or the text of one.
        port: the port, 0..65535.

    Returns:
        ``(host, port)`` for IPv4; ``(host, port, 0, scope_id)`` for IPv6,
        where the zone of the address (if any) becomes the numeric
        ``scope_id``.

    Raises:
        AddressError: ``address`` is not an IP address, its zone names no
            interface, or ``port`` is not in 0..65535.
        TypeError: ``address`` is neither an IP address object nor a ``str``.
    """
    ip = _as_ip(address)
    valid_port = check_port(port)
    if isinstance(ip, ipaddress.IPv4Address):
        return (str(ip), valid_port)
    scope = _scope_index(ip)
    host = str(ip).split("%", 1)[0]
    return (host, valid_port, 0, scope)


def from_sockaddr(sockaddr: tuple[object, ...]) -> tuple[IpAddress, int]:
    """Return the address and port of a ``socket``-module address tuple.

    Args:
        sockaddr: ``(host, port)`` (either family) or the IPv6 form
            ``(host, port, flowinfo, scope_id)``; a non-zero ``scope_id``
            becomes the address's numeric zone unless the host text already
            carries one.

    Returns:
        ``(address, port)``, the address as an ``IPv4Address`` or
        ``IPv6Address``.

    Raises:
        AddressError: the tuple has the wrong shape, the host is not an IP
            address, the port is out of range, or a 4-tuple holds IPv4.
        TypeError: ``sockaddr`` is not a tuple.
    """
    if not isinstance(sockaddr, tuple):
        raise TypeError(f"expected a socket address tuple, not {type(sockaddr).__name__}")
    if len(sockaddr) not in (2, 4):
        raise AddressError(f"{sockaddr!r} is not an AF_INET or AF_INET6 socket address")
    host = sockaddr[0]
    if not isinstance(host, str):
        raise AddressError(f"{sockaddr!r}: the host must be a str")
    port = check_port(sockaddr[1])
    ip = parse_ip_address(host)
    if len(sockaddr) == 4:
        scope = sockaddr[3]
        if not isinstance(ip, ipaddress.IPv6Address):
            raise AddressError(f"{sockaddr!r}: a 4-tuple socket address must hold IPv6")
        if isinstance(scope, bool) or not isinstance(scope, int) or scope < 0:
            raise AddressError(f"{sockaddr!r}: scope_id must be a non-negative int")
        if scope and not ip.scope_id:
            ip = ipaddress.IPv6Address(f"{host}%{scope}")
    return ip, port


def _family_of(ip: IpAddress) -> IPFamily:
    return IPFamily.IPV4 if isinstance(ip, ipaddress.IPv4Address) else IPFamily.IPV6


@dataclass(frozen=True)
class SocketAddress:
    """An IP socket address (Chapel's ``ipAddr``): immutable and hashable.

    Build one with :meth:`create`, :meth:`ipv4`, :meth:`ipv6` or
    :meth:`from_sockaddr`; the constructor applies the same checks as
    :meth:`create`.

    Args:
        host: the address text (or an address object); it is stored as the
            canonical RFC 5952 text.
        port: the port, 0..65535.
        family: its :class:`IPFamily`; ``UNSPEC`` takes the family from
            ``host`` (a ``SocketAddress`` never stores ``UNSPEC``).

    Raises:
        AddressError: ``host`` is not a numeric address of ``family``, or the
            port is outside 0..65535.
        TypeError: ``host`` is neither a ``str`` nor an IP address object.
    """

    host: str
    port: int
    family: IPFamily

    def __post_init__(self) -> None:
        ip = _checked_ip(self.host, self.family)
        object.__setattr__(self, "host", str(ip))
        object.__setattr__(self, "port", check_port(self.port))
        object.__setattr__(self, "family", _family_of(ip))

    @classmethod
    def create(
        cls,
        host: str | IpAddress = "127.0.0.1",
        port: int = 8000,
        family: IPFamily = IPFamily.IPV4,
    ) -> SocketAddress:
        """Build an address from a numeric host, a port and a family.

        Args:
            host: the numeric address (text or object); names are refused.
            port: the port, 0..65535.
            family: the family ``host`` must have; ``IPFamily.UNSPEC`` takes
                it from ``host``.

        Returns:
            The ``SocketAddress``.

        Raises:
            AddressError: ``host`` is not a numeric address of ``family``, the
                port is outside 0..65535, or ``family`` is not an ``IPFamily``.
            TypeError: ``host`` is neither a ``str`` nor an IP address object.
        """
        return cls(str(_checked_ip(host, family)), port, family)

    @classmethod
    def ipv4(
        cls, host: str | ipaddress.IPv4Address = IPV4_ANY, port: int = 8000
    ) -> SocketAddress:
        """Build an IPv4 address.

        Args:
            host: the IPv4 address (text or object); the default is the
                any-address, ``0.0.0.0``.
            port: the port, 0..65535.

        Returns:
            The ``SocketAddress``.

        Raises:
            AddressError: ``host`` is not an IPv4 address or the port is out of range.
        """
        return cls.create(host, port, IPFamily.IPV4)

    @classmethod
    def ipv6(
        cls, host: str | ipaddress.IPv6Address = IPV6_ANY, port: int = 8000
    ) -> SocketAddress:
        """Build an IPv6 address.

        Args:
            host: the IPv6 address (text or object); the default is the
                any-address, ``::``.
            port: the port, 0..65535.

        Returns:
            The ``SocketAddress``.

        Raises:
            AddressError: ``host`` is not an IPv6 address or the port is out of range.
        """
        return cls.create(host, port, IPFamily.IPV6)

    @classmethod
    def from_sockaddr(cls, sockaddr: tuple[object, ...]) -> SocketAddress:
        """Build an address from a ``socket``-module address tuple.

        Args:
            sockaddr: ``(host, port)`` or ``(host, port, flowinfo, scope_id)``,
                as :func:`from_sockaddr` takes it.

        Returns:
            The ``SocketAddress``.

        Raises:
            AddressError: see :func:`from_sockaddr`.
            TypeError: ``sockaddr`` is not a tuple.
        """
        ip, port = from_sockaddr(sockaddr)
        return cls(str(ip), port, _family_of(ip))

    @property
    def ip_address(self) -> IpAddress:
        """The host as an ``IPv4Address`` / ``IPv6Address``."""
        return ipaddress.ip_address(self.host)

    def to_sockaddr(self) -> SockAddrTuple:
        """The tuple the ``socket`` module takes for this address.

        Returns:
            ``(host, port)``, or ``(host, port, 0, scope_id)`` for IPv6.

        Raises:
            AddressError: the address's zone names a network interface that
                no longer exists.
        """
        return to_sockaddr(self.host, self.port)

    def __str__(self) -> str:
        if self.family is IPFamily.IPV6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def _checked_ip(host: object, family: object) -> IpAddress:
    """Parse ``host`` and check that it belongs to ``family`` (UNSPEC: any)."""
    if not isinstance(family, IPFamily):
        if isinstance(family, bool) or not isinstance(family, int):
            raise AddressError(f"{family!r} is not an IPFamily")
        try:
            family = IPFamily(family)  # accepts the plain AF_* ints
        except ValueError:
            raise AddressError(f"{family!r} is not an IPFamily") from None
    if isinstance(host, ipaddress.IPv4Address | ipaddress.IPv6Address):
        ip: IpAddress = host
    elif isinstance(host, str):
        ip = parse_ip_address(host)
    else:
        raise TypeError(f"host must be a str or an IP address, not {type(host).__name__}")
    if family is not IPFamily.UNSPEC and _family_of(ip) is not family:
        raise AddressError(f"{str(ip)!r} is not an {family.name} address")
    return ip
