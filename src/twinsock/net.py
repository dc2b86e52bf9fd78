"""Blocking buffered sockets (Nim's ``net`` module): the public face.

How this works.  ``Socket`` is a thin shell over the sans-I/O core in
``twinsock._core``: the read buffer decides where lines end, what is too long
and what end of stream means; ``Deadline`` turns a call's ``timeout`` into
one time limit.  The shell (``twinsock._blocking``) only moves bytes between
the operating system and the buffer, and waits.  The OS socket stays in
blocking mode, so a call without a timeout is one plain system call; a call
with a timeout tries first with ``MSG_DONTWAIT`` and polls only when nothing
is there.  Reading a line that the buffer already holds costs no system call
at all.  This module only re-exports the public names.
"""

from __future__ import annotations

from twinsock._blocking.dial import dial, get_primary_ip_addr, wrap_connected_socket, wrap_socket
from twinsock._blocking.lines import LineConnection, serve_lines
from twinsock._blocking.run import run_server
from twinsock._blocking.server import Server, serve
from twinsock._blocking.socket import Socket
from twinsock._core import types as _types
from twinsock._core.flags import is_disconnection_error
from twinsock._core.serving import ServerStats
from twinsock._core.types import LineResult, ReadLineResult, SocketFlag
from twinsock._resolver import Resolver as _Resolver
from twinsock._sockopts import SockOpt

__all__ = [
    "BUFFER_SIZE",
    "MAX_LINE_LENGTH",
    "LineConnection",
    "LineResult",
    "ReadLineResult",
    "Resolver",
    "Server",
    "ServerStats",
    "SockOpt",
    "Socket",
    "SocketFlag",
    "dial",
    "get_primary_ip_addr",
    "is_disconnection_error",
    "run_server",
    "serve",
    "serve_lines",
    "wrap_connected_socket",
    "wrap_socket",
]

#: The seed's buffer granule in bytes (the sockets may read larger chunks).
BUFFER_SIZE: int = _types.BUFFER_SIZE
#: The default ``max_length`` of line reads: a longer line raises ``LineTooLong``.
MAX_LINE_LENGTH: int = _types.MAX_LINE_LENGTH
#: ``resolver(host, port, family, type)`` returning ``socket.getaddrinfo``-shaped
#: tuples; ``dial`` takes one so that tests and applications can steer resolution.
Resolver = _Resolver

# This module's own names, and those both faces share (documented here, under
# ``twinsock.net``).
for _name in (
    "Socket", "dial", "get_primary_ip_addr", "wrap_connected_socket", "wrap_socket",
    "Server", "ServerStats", "run_server", "serve",
    "LineResult", "ReadLineResult", "SocketFlag", "SockOpt", "is_disconnection_error",
    "LineConnection", "serve_lines",
):
    globals()[_name].__module__ = __name__
del _name
