"""The seed's chat server and a line echo server, written with ``AsyncSocket``.

How this works.  ``serve_chat`` is the chat server of the Nim ``asyncnet``
documentation (seeds/000): it accepts clients forever, keeps them in a list,
and runs one task per client that reads lines and sends each line, followed
by ``b"\\r\\n"``, to every client (the sender included).  Three things the
seed leaves to luck are made explicit: a client that disconnects (or sends a
line longer than ``max_length``) is removed from the list and closed; a
client that cannot take a line within ``SEND_TIMEOUT`` seconds, or whose
connection broke, is dropped instead of stopping the others; and sends to
one client are serialised with a lock, because an ``AsyncSocket`` refuses two
concurrent writers.  An empty line is relayed as one empty line.

``serve_echo`` sends every line back with a ``b"\\n"`` terminator, like the
servers in ``bench/``; ``serve_echo_lines`` does the same with
``asyncnet.serve_lines`` (a callback per line, no task per connection).  All
take ``ready``, called once with the address the server listens on (useful
with port 0).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twinsock._core.data import line_to_send
from twinsock.addresses import IPFamily, SocketAddress, is_ip_address
from twinsock.errors import LineTooLong

if TYPE_CHECKING:
    from twinsock.asyncnet import AsyncSocket

__all__ = ["SEND_TIMEOUT", "serve", "serve_chat", "serve_echo", "serve_echo_lines"]

#: How long one chat client may take to accept a line before it is dropped.
SEND_TIMEOUT = 10.0

#: Called once with the address the server listens on.
Ready = Callable[[SocketAddress], None]

log = logging.getLogger("twinsock")


async def open_server(
    host: str, port: int, tls_context: Any = None, backlog: int = 128
) -> AsyncSocket:
    """An ``AsyncSocket`` listening on ``host:port`` (SO_REUSEADDR set), TLS-wrapped if asked."""
    from twinsock import asyncnet
    from twinsock.nativesockets import Domain

    domain = Domain.AF_INET6 if is_ip_address(host) and ":" in host else Domain.AF_INET
    server = asyncnet.AsyncSocket(domain)
    try:
        server.set_sock_opt(asyncnet.SockOpt.REUSE_ADDR, True)
        server.bind_addr(port, host)
        server.listen(backlog)
        if tls_context is not None:
            asyncnet.wrap_socket(tls_context, server)
    except BaseException:
        server.close()
        raise
    return server


def _listening_address(server: AsyncSocket) -> SocketAddress:
    host, port = server.get_local_addr()
    return SocketAddress.create(host, port, IPFamily.UNSPEC)


class _Client:
    """A chat client: its socket and the lock that keeps its sends whole."""

    __slots__ = ("lock", "name", "sock")

    def __init__(self, sock: AsyncSocket, name: str) -> None:
        self.sock = sock
        self.name = name
        self.lock = asyncio.Lock()


async def serve_chat(
    host: str = "127.0.0.1", port: int = 12345, *, ready: Ready | None = None
) -> None:
    """Run the seed's chat server on ``host:port`` until cancelled."""
    server = await open_server(host, port)
    clients: list[_Client] = []
    tasks: set[asyncio.Task[None]] = set()

    def drop(client: _Client) -> None:
        if client in clients:
            clients.remove(client)
        client.sock.close()

    async def deliver(client: _Client, data: bytes) -> None:
        try:
            async with client.lock:
                await client.sock.send(data, timeout=SEND_TIMEOUT)
        except OSError as exc:  # broken, or stuck (NetTimeout): it must not stop the rest
            log.info("chat: dropping %s: %s", client.name, exc)
            drop(client)

    async def process_client(client: _Client) -> None:
        try:
            while True:
                line = await client.sock.recv_line()
                if not line:
                    break
                data = line_to_send(line)  # the empty-line sentinel stays one line
                for other in list(clients):
                    await deliver(other, data)
        except (OSError, LineTooLong) as exc:
            log.info("chat: %s: %s", client.name, exc)
        finally:
            drop(client)

    try:
        if ready is not None:
            ready(_listening_address(server))
        while True:
            sock, address = await server.accept_addr()
            client = _Client(sock, address)
            clients.append(client)
            task = asyncio.create_task(process_client(client))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        for client in list(clients):
            client.sock.close()
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve_echo(
    host: str = "127.0.0.1",
    port: int = 12345,
    *,
    ready: Ready | None = None,
    tls_context: Any = None,
) -> None:
    """Run a line echo server on ``host:port`` until cancelled (TLS with ``tls_context``)."""
    server = await open_server(host, port, tls_context, backlog=4096)
    tasks: set[asyncio.Task[None]] = set()

    async def echo(sock: AsyncSocket) -> None:
        try:
            while line := await sock.recv_line():
                await sock.send((b"" if line == b"\r\n" else line) + b"\n")
        except (OSError, LineTooLong) as exc:
            log.info("echo: %s", exc)
        finally:
            sock.close()

    try:
        if ready is not None:
            ready(_listening_address(server))
        while True:
            sock = await server.accept()
            task = asyncio.create_task(echo(sock))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _echo_line(conn: Any, line: bytes) -> None:
    conn.send((b"" if line == b"\r\n" else line) + b"\n")


async def serve_echo_lines(
    host: str = "127.0.0.1",
    port: int = 12345,
    *,
    ready: Ready | None = None,
    tls_context: Any = None,
) -> None:
    """``serve_echo`` on ``asyncnet.serve_lines``, until cancelled."""
    from twinsock import asyncnet

    server = await asyncnet.serve_lines(_echo_line, host, port, ssl_context=tls_context,
                                        backlog=4096)
    try:
        if ready is not None:
            ready(server.addresses[0])
        await asyncio.Event().wait()
    finally:
        await server.shutdown(0)


#: The name the brief and ``examples/chat_server.py`` use.
serve = serve_chat
