"""twinsock: buffered blocking and async sockets with one API.

The package re-exports the names most programs need; each layer also has its
own module: ``twinsock.nativesockets`` (low level), ``twinsock.net`` (blocking
``Socket``), ``twinsock.asyncnet`` (``AsyncSocket``), ``twinsock.tls``,
``twinsock.simple`` (Chapel's role-typed API), ``twinsock.addresses`` and
``twinsock.errors``.
"""

from twinsock.addresses import (
    IpAddress,
    IpAddressFamily,
    IPFamily,
    SocketAddress,
    is_ip_address,
    parse_ip_address,
)
from twinsock.asyncnet import AsyncSocket
from twinsock.errors import (
    AddressError,
    BusyError,
    IncompleteRead,
    LineTooLong,
    NetError,
    NetTimeout,
    PskError,
    SocketClosedError,
    SslError,
)
from twinsock.nativesockets import Domain, Protocol, SockType
from twinsock.net import (
    BUFFER_SIZE,
    MAX_LINE_LENGTH,
    LineResult,
    ReadLineResult,
    Socket,
    SocketFlag,
    SockOpt,
    dial,
)
from twinsock.tls import HandshakeType, ProtVersion, SslContext, VerifyMode, new_context

#: The installed version (pyproject.toml reads it from here).
__version__ = "0.2.0"

__all__ = [
    "BUFFER_SIZE",
    "MAX_LINE_LENGTH",
    "AddressError",
    "AsyncSocket",
    "BusyError",
    "Domain",
    "HandshakeType",
    "IPFamily",
    "IncompleteRead",
    "IpAddress",
    "IpAddressFamily",
    "LineResult",
    "LineTooLong",
    "NetError",
    "NetTimeout",
    "ProtVersion",
    "Protocol",
    "PskError",
    "ReadLineResult",
    "SockOpt",
    "SockType",
    "Socket",
    "SocketAddress",
    "SocketClosedError",
    "SocketFlag",
    "SslContext",
    "SslError",
    "VerifyMode",
    "__version__",
    "dial",
    "is_ip_address",
    "new_context",
    "parse_ip_address",
]
