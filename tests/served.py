"""Run ``net.serve`` or ``asyncnet.serve`` from one test body, over every kind.

A test names its handler as a pair (the blocking function, the coroutine
function) and ``serving(kind, pair, **options)`` starts the server of the
kind: the blocking one directly, the async one on the kind's event loop
thread (``twins.AsyncKind``).  ``Served`` runs the server's methods the same
way, so ``served.shutdown(0.5)`` blocks the test until the shutdown is over
whatever the kind.  Clients are plain stdlib sockets.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import trustme

from pem_files import write_pem
from twinsock.tls import SslContext, new_context

Pair = tuple[Callable[..., Any], Callable[..., Any]]


class Served:
    """A started server of ``kind``, with its methods run the kind's way."""

    def __init__(self, kind: Any, server: Any) -> None:
        self.kind = kind
        self.server = server

    def call(self, name: str, *args: Any) -> Any:
        return self.kind.call(getattr(self.server, name), *args)

    @property
    def port(self) -> int:
        return int(self.server.port)

    @property
    def stats(self) -> Any:
        return self.kind.call(lambda: self.server.stats)

    def shutdown(self, grace: float) -> None:
        self.call("shutdown", grace)

    def close(self) -> None:
        self.call("close")

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """Poll ``stats`` until ``predicate(stats)``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats
            if predicate(stats):
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"stats never matched: {stats}")
            time.sleep(0.01)


def handler_of(kind: Any, pair: Pair) -> Callable[..., Any]:
    return pair[0] if kind.name == "blocking" else pair[1]


@contextlib.contextmanager
def serving(kind: Any, pair: Pair, host: Any = "127.0.0.1", **options: Any) -> Iterator[Served]:
    """A started server for the test's duration; shut down (grace 0) afterwards."""
    server = kind.call(kind.module.serve, handler_of(kind, pair), host, 0, **options)
    served = Served(kind, server)
    try:
        yield served
    finally:
        served.shutdown(0)


def client(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_line(sock: socket.socket) -> bytes:
    """Bytes up to and including the next ``\\n`` (or what came before EOF)."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def ask(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line + b"\n")
    return read_line(sock)


# -- handlers every test can use --------------------------------------------------------------


def echo(conn: Any) -> None:
    while line := conn.recv_line():
        conn.send(line + b"\r\n")


async def async_echo(conn: Any) -> None:
    while line := await conn.recv_line():
        await conn.send(line + b"\r\n")


ECHO: Pair = (echo, async_echo)


# -- TLS: a CA and a server certificate made at test time (trustme) -----------------------------


class Tls:
    """A trustme CA, a server certificate for 127.0.0.1, and a stdlib ``ssl`` client."""


    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = write_pem(directory, "ca.pem", ca.cert_pem)
        self.server_file = write_pem(directory, "server.pem", leaf.private_key_and_cert_chain_pem)

    def server_context(self) -> SslContext:
        return new_context(cert_file=self.server_file)

    def client(self, port: int) -> ssl.SSLSocket:
        context = ssl.create_default_context(cafile=self.ca_file)
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        return context.wrap_socket(raw, server_hostname="127.0.0.1")
