"""The blocking shell's module functions: ``dial`` (Happy Eyeballs), ``wrap_*``.

How this works.  ``dial`` resolves once (``twinsock._resolver``), interleaves
the families (``_core.eyeballs``) and races non-blocking connects with
``poll``, starting the next attempt on the shared schedule; the first
connection wins and the rest are closed.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from typing import Any

from twinsock._base import prepare_wrap
from twinsock._blocking.socket import Socket
from twinsock._blocking.wait import wait_any_writable
from twinsock._core.deadline import Deadline, check_timeout
from twinsock._core.docs import BLOCKING, shared_doc
from twinsock._core.docs.serving import FUNCTIONS
from twinsock._core.eyeballs import Attempts, interleave
from twinsock._core.targets import format_endpoint
from twinsock._resolver import Resolver, getaddrinfo, resolve
from twinsock.addresses import IpAddress, check_port, parse_ip_address
from twinsock.nativesockets import Protocol, to_sock_type
from twinsock.tls import HandshakeType, SslContext

__all__ = ["dial", "dial_as", "get_primary_ip_addr", "wrap_connected_socket", "wrap_socket"]

_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY)
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


@shared_doc(FUNCTIONS, "dial", BLOCKING)
def dial(
    address: str,
    port: int,
    protocol: Protocol | int = Protocol.IPPROTO_TCP,
    buffered: bool = True,
    timeout: float | None = None,
    *,
    resolver: Resolver | None = None,
) -> Socket:
    return dial_as("dial", address, port, protocol, buffered, timeout, resolver)


def dial_as(
    operation: str,
    address: str,
    port: int,
    protocol: Protocol | int = Protocol.IPPROTO_TCP,
    buffered: bool = True,
    timeout: float | None = None,
    resolver: Resolver | None = None,
) -> Socket:
    """``dial``, with errors and timeouts naming ``operation`` (``simple.connect``
    says ``connect``, not the name of this helper)."""
    timeout = check_timeout(timeout)
    port = check_port(port)
    sock_type = to_sock_type(Protocol(protocol))
    deadline = Deadline(timeout, operation)
    targets = interleave(
        resolve(address, port, socket.AF_UNSPEC, sock_type, deadline, resolver or getaddrinfo)
    )
    winner = _race(targets, sock_type, int(protocol), deadline, f"{operation} {address}:{port}")
    return Socket.from_native(winner, buffered=buffered)


def _race(
    targets: list[tuple[int, Any]],
    sock_type: int,
    protocol: int,
    deadline: Deadline,
    describe: str,
) -> socket.socket:
    """Run the Happy Eyeballs schedule over non-blocking connects; return the winner."""
    # The schedule works on endpoint texts so that the notes of the final error
    # read "attempt to [::1]:80 failed ...", not a raw sockaddr tuple.
    by_endpoint = {format_endpoint(sockaddr): (family, sockaddr) for family, sockaddr in targets}
    attempts: Attempts[str] = Attempts(list(by_endpoint))
    racing: dict[socket.socket, str] = {}
    winner: socket.socket | None = None
    try:
        while winner is None:
            now = time.monotonic()
            while winner is None and (target := attempts.next_target(now)) is not None:
                family, sockaddr = by_endpoint[target]
                sock = socket.socket(family, sock_type, protocol)
                sock.setblocking(False)
                code = sock.connect_ex(sockaddr)
                if code == 0:
                    winner = sock
                elif code in _IN_PROGRESS:
                    racing[sock] = target
                else:
                    sock.close()
                    attempts.failed(target, OSError(code, os.strerror(code)), now)
                now = time.monotonic()
            if winner is not None:
                break
            if attempts.exhausted():
                raise attempts.final_error(describe)
            wait = attempts.wait_time(time.monotonic(), deadline.remaining())
            for sock in wait_any_writable(list(racing), wait):
                target = racing.pop(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    winner = sock
                    break
                sock.close()
                attempts.failed(target, OSError(code, os.strerror(code)), time.monotonic())
            if winner is None and deadline.expired():
                error = deadline.error(describe.removeprefix(f"{deadline.operation} "))
                raise attempts.timed_out(error, list(racing.values()))
    finally:
        for sock in racing:
            if sock is not winner:
                sock.close()
    winner.setblocking(True)
    return winner


@shared_doc(FUNCTIONS, "wrap_socket", BLOCKING)
def wrap_socket(ctx: SslContext, sock: Socket) -> None:
    prepare_wrap(ctx, sock)


@shared_doc(FUNCTIONS, "wrap_connected_socket", BLOCKING)
def wrap_connected_socket(
    ctx: SslContext,
    sock: Socket,
    handshake: HandshakeType = HandshakeType.CLIENT,
    hostname: str | None = None,
    timeout: float | None = None,
) -> None:
    timeout = sock._timeout(timeout) if isinstance(sock, Socket) else check_timeout(timeout)
    server_side = prepare_wrap(ctx, sock, handshake, hostname)
    sock._tls_handshake(
        Deadline(timeout, "wrap_connected_socket"), server_side=server_side, hostname=hostname
    )


def get_primary_ip_addr(dest: IpAddress | str | None = None) -> IpAddress:
    """The local address this host uses to reach ``dest``; sends no traffic.

    A UDP socket is connected to ``dest`` (which only picks a route) and asked
    for its own address.

    Args:
        dest: the destination, an address object or its text; ``None``:
            ``8.8.8.8``.

    Returns:
        The local address of the outgoing interface.

    Raises:
        OSError: there is no route to ``dest`` (``ENETUNREACH``).
        AddressError: ``dest`` is text that is not an IP address.
    """
    target = parse_ip_address("8.8.8.8") if dest is None else dest
    if isinstance(target, str):
        target = parse_ip_address(target)
    family = socket.AF_INET6 if target.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((str(target), 53))
        return parse_ip_address(str(probe.getsockname()[0]).split("%")[0])
