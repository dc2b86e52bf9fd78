"""Async buffered sockets (Nim's ``asyncnet``): the public face.

How this works.  ``AsyncSocket`` is the twin of ``net.Socket``: the same
``SocketBase`` (everything that does not wait) and the same sans-I/O core
(read buffer, deadlines, Happy Eyeballs plan); only the waiting differs
(``twinsock._async``).  A connected stream socket is driven by an asyncio
transport (the default loop's or uvloop's) and a small protocol that pushes
every received chunk into the read buffer, so a read the buffer can already
answer completes without suspending, and cancelling a waiting coroutine
loses nothing.  This module only re-exports the public names.
"""

from __future__ import annotations

from twinsock._async import protocol as _protocol
from twinsock._async.dial import dial, wrap_connected_socket, wrap_socket
from twinsock._async.line_connection import LineConnection
from twinsock._async.line_server import serve_lines
from twinsock._async.run import run_server
from twinsock._async.server import AsyncServer, serve
from twinsock._async.socket import AsyncSocket
from twinsock._core import types as _types
from twinsock._core.flags import is_disconnection_error
from twinsock._core.serving import ServerStats
from twinsock._core.types import LineResult, ReadLineResult, SocketFlag
from twinsock._sockopts import SockOpt

__all__ = [
    "BUFFER_SIZE",
    "MAX_LINE_LENGTH",
    "WRITE_HIGH_WATER",
    "AsyncServer",
    "AsyncSocket",
    "LineConnection",
    "LineResult",
    "ReadLineResult",
    "ServerStats",
    "SockOpt",
    "SocketFlag",
    "dial",
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
#: ``send`` returns while at most this many bytes wait in the transport; above it,
#: it waits for the peer to read (backpressure).
WRITE_HIGH_WATER: int = _protocol.WRITE_HIGH_WATER

for _name in ("AsyncServer", "AsyncSocket", "LineConnection", "dial", "run_server", "serve",
              "serve_lines", "wrap_connected_socket", "wrap_socket"):
    globals()[_name].__module__ = __name__
del _name
