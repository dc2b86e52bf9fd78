"""twinsock: buffered blocking and async sockets with one API."""

from twinsock.errors import (
    AddressError,
    LineTooLong,
    NetError,
    NetTimeout,
    PskError,
    SocketClosedError,
    SslError,
)

__version__ = "0.1.0"

__all__ = [
    "AddressError",
    "LineTooLong",
    "NetError",
    "NetTimeout",
    "PskError",
    "SocketClosedError",
    "SslError",
    "__version__",
]
