"""Listening sockets for ``serve`` and ``run_server``, made the same way by both shells.

How this works.  ``open_listeners`` turns ``serve``'s ``host`` and ``port``
into one bound, listening, non-blocking ``socket.socket`` per address:
``None`` (or ``""``) gives the IPv4 and the IPv6 any-address (the IPv6 one
with ``IPV6_V6ONLY``, so the two do not collide), an IP literal gives itself,
and a name every address it resolves to (``"localhost"``: ``127.0.0.1`` and
``::1``).  With port 0 the first listener picks the port and the others take
the same one, so a server has one port whatever it listens on.
``adopt_listener`` takes over a socket the caller made (``sock=``, e.g. one
passed by systemd socket activation) and makes it listen if it does not yet.
Nothing here waits: a name is resolved with a plain ``getaddrinfo`` call,
once, when the server starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from typing import Any

from twinsock._base import SocketBase
from twinsock._core.serving import ServeOptions
from twinsock._core.targets import format_endpoint, resolve_targets
from twinsock.addresses import SocketAddress, check_port

__all__ = [
    "adopt_listener",
    "check_reuse_port",
    "describe",
    "listener_addresses",
    "listeners_for",
    "open_listeners",
]

# How often a port-0 server on several addresses retries when the port the
# first listener got is taken on another address.
_SAME_PORT_TRIES = 20


def check_reuse_port() -> None:
    """Raise ``ValueError`` unless ``SO_REUSEPORT`` exists and works here."""
    option = getattr(socket, "SO_REUSEPORT", None)
    if option is None:
        raise ValueError("SO_REUSEPORT is not available on this platform")
    with socket.socket() as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, option, 1)
        except OSError as exc:
            raise ValueError(f"SO_REUSEPORT does not work on this system: {exc}") from None


def _targets(host: str | None, port: int) -> list[tuple[int, Any]]:
    """``(family, sockaddr)`` to listen on for ``host``."""
    if host is None:
        targets: list[tuple[int, Any]] = [(socket.AF_INET, ("0.0.0.0", port))]
        if socket.has_ipv6:
            targets.append((socket.AF_INET6, ("::", port, 0, 0)))
        return targets
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                               socket.AI_PASSIVE)
    targets = resolve_targets(infos, socket.AF_UNSPEC)
    if not targets:
        raise OSError(f"{host!r} resolved to no address to listen on")
    return targets


def open_listeners(
    host: str | None,
    port: int,
    *,
    backlog: int,
    reuse_port: bool,
    listen: bool = True,
) -> list[socket.socket]:
    """Bind (and with ``listen``, listen on) every address of ``host`` at ``port``.

    Args:
        host: a name or IP literal, or ``None`` for every interface.
        port: the port; 0 lets the first listener pick one for all.
        backlog: ``listen``'s backlog.
        reuse_port: set ``SO_REUSEPORT`` (several processes share the port).
        listen: ``False`` only binds (``run_server``'s parent reserving a port).

    Returns:
        Non-blocking sockets, in resolver order.

    Raises:
        OSError: an address cannot be bound (the message names it); the
            sockets bound so far are closed.
        ValueError: ``reuse_port`` where ``SO_REUSEPORT`` is missing.
    """
    check_port(port)
    if reuse_port:
        check_reuse_port()
    targets = _targets(host, port)
    for _ in range(_SAME_PORT_TRIES):
        try:
            return _bind_all(targets, port, backlog, reuse_port, listen, any_host=host is None)
        except _PortTaken:
            continue
    raise OSError(errno.EADDRINUSE, f"found no free port on every address of {host!r}")


class _PortTaken(Exception):
    """The port the first listener picked is taken on another address: try again."""


def _bind_all(
    targets: list[tuple[int, Any]],
    port: int,
    backlog: int,
    reuse_port: bool,
    listen: bool,
    any_host: bool,
) -> list[socket.socket]:
    socks: list[socket.socket] = []
    v6only = len(targets) > 1
    try:
        for family, target in targets:
            sockaddr = target
            if socks and port == 0:  # every listener takes the first one's port
                sockaddr = (target[0], socks[0].getsockname()[1], *target[2:])
            # With host=None, IPv6 is a bonus: a host without it serves IPv4 only.
            optional = any_host and family == socket.AF_INET6
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:
                if optional:
                    continue
                raise _naming(exc, sockaddr) from exc
            try:
                _prepare(sock, sockaddr, backlog, reuse_port, listen, v6only)
            except OSError as exc:
                sock.close()
                if sockaddr is not target and exc.errno == errno.EADDRINUSE:
                    raise _PortTaken from None
                if optional and exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    continue
                raise _naming(exc, sockaddr) from exc
            socks.append(sock)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _naming(exc: OSError, sockaddr: Any) -> OSError:
    """``exc`` again (same errno, so the same ``OSError`` subclass), naming the address."""
    return OSError(exc.errno, f"{exc.strerror} (listening on {format_endpoint(sockaddr)})")


def _prepare(
    sock: socket.socket, sockaddr: Any, backlog: int, reuse_port: bool, listen: bool, v6only: bool
) -> None:
    if os.name == "posix":  # a restarted server binds at once despite TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6 and v6only:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(sockaddr)
    if listen:
        sock.listen(backlog)
    sock.setblocking(False)


def adopt_listener(sock: Any, backlog: int) -> socket.socket:
    """The ``socket.socket`` behind ``serve``'s ``sock=``, listening and non-blocking.

    ``sock`` is a ``socket.socket``, a twinsock socket of either kind, or a
    file descriptor number (systemd passes 3 and up).  The server owns it
    from now on and closes it when it stops.

    Raises:
        TypeError: anything else.
        ValueError: not a stream socket, or not bound.
        SocketClosedError: already closed.
    """
    if isinstance(sock, SocketBase):
        native = sock._open("serve")
    elif isinstance(sock, socket.socket):
        native = sock
    elif isinstance(sock, int) and not isinstance(sock, bool):
        if sock < 0:
            raise ValueError(f"sock must be a valid file descriptor, not {sock}")
        native = socket.socket(fileno=sock)
    else:
        raise TypeError(
            f"sock must be a socket.socket, a twinsock socket or a file descriptor, not {sock!r}"
        )
    if native.fileno() < 0:
        from twinsock.errors import SocketClosedError

        raise SocketClosedError("serve")
    if native.type != socket.SOCK_STREAM:
        raise ValueError(f"sock must be a stream socket (SOCK_STREAM), not {native.type!r}")
    name = native.getsockname()
    if native.family in (socket.AF_INET, socket.AF_INET6) and name[1] == 0:
        raise ValueError("sock must be bound to an address before serve() takes it")
    if not native.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        native.listen(backlog)
    native.setblocking(False)
    return native


def listener_addresses(socks: list[socket.socket]) -> list[SocketAddress]:
    """The bound IP addresses of ``socks`` (Unix sockets have none)."""
    addresses = []
    for sock in socks:
        with contextlib.suppress(OSError):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                addresses.append(SocketAddress.from_sockaddr(sock.getsockname()))
    return addresses


def describe(sock: socket.socket) -> str:
    """``127.0.0.1:8000``, ``[::1]:8000`` or a Unix path, for the log."""
    try:
        return format_endpoint(sock.getsockname())
    except OSError:
        return "(closed)"


def listeners_for(host: str | None, port: int, options: ServeOptions) -> list[socket.socket]:
    """What ``serve`` listens on: ``sock=`` adopted, else every address of ``host``."""
    if options.sock is not None:
        return [adopt_listener(options.sock, options.backlog)]
    return open_listeners(host, port, backlog=options.backlog, reuse_port=options.reuse_port)
