"""Boolean socket options (Nim's ``SOBool``) and the level each one lives at."""

from __future__ import annotations

import enum
import socket

__all__ = ["SockOpt", "option_key"]


class SockOpt(enum.Enum):
    """Boolean socket options for ``set_sock_opt`` / ``get_sock_opt``."""

    ACCEPT_CONN = "SO_ACCEPTCONN"
    BROADCAST = "SO_BROADCAST"
    DEBUG = "SO_DEBUG"
    DONT_ROUTE = "SO_DONTROUTE"
    KEEP_ALIVE = "SO_KEEPALIVE"
    OOB_INLINE = "SO_OOBINLINE"
    REUSE_ADDR = "SO_REUSEADDR"
    REUSE_PORT = "SO_REUSEPORT"
    NO_DELAY = "TCP_NODELAY"


def option_key(opt: SockOpt, level: int | None = None) -> tuple[int, int]:
    """``(level, optname)`` for ``opt``; ``level=None`` picks the right level."""
    if not isinstance(opt, SockOpt):
        raise TypeError(f"opt must be a SockOpt, not {opt!r}")
    optname = getattr(socket, opt.value, None)
    if optname is None:
        raise OSError(f"{opt.name} is not supported on this platform")
    if level is None:
        level = socket.IPPROTO_TCP if opt is SockOpt.NO_DELAY else socket.SOL_SOCKET
    return level, optname
