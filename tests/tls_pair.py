"""A twinsock TLS client connected to a stdlib ``ssl`` server: the conformance body's TLS family.

``tls_pair(kind)`` connects a twinsock socket of ``kind`` to a plain stdlib
socket over loopback, then runs the TLS handshake: twinsock as the client
(``wrap_connected_socket``, verifying the server against a trustme CA made
once per test session), the stdlib ``ssl`` module as the server in a thread.
The peer comes back as a ``TlsPeer``, which behaves like the plain stdlib
socket the other families give (``sendall``, ``recv``, ``shutdown``), except
that ``shutdown(SHUT_WR)`` sends close_notify: TLS has no half-close of its own.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import trustme

from conftest import stdlib_pair
from pem_files import write_pem
from twinsock.tls import HandshakeType, SslContext, new_context

#: The name the test server's certificate is issued for.
SERVER_NAME = "localhost"


@lru_cache(maxsize=1)
def _certificates() -> tuple[str, str]:
    """(server chain + key file, CA file), written once per test session."""
    directory = Path(tempfile.mkdtemp(prefix="twinsock-tls-pair-"))
    ca = trustme.CA()
    leaf = ca.issue_cert(SERVER_NAME, "127.0.0.1")
    server = write_pem(directory, "server.pem", leaf.private_key_and_cert_chain_pem)
    return server, write_pem(directory, "ca.pem", ca.cert_pem)


def client_context() -> SslContext:
    """A twinsock client context that trusts the test CA."""
    return new_context(ca_file=_certificates()[1])


def server_context() -> ssl.SSLContext:
    """A stdlib server context with the test certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(_certificates()[0])
    return context


class TlsPeer:
    """A stdlib ``ssl.SSLSocket`` with the plain socket's ``shutdown(SHUT_WR)`` meaning."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.tls = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tls, name)

    def shutdown(self, how: int) -> None:
        """``SHUT_WR`` sends close_notify without waiting for the answer."""
        if how != socket.SHUT_WR:
            self.tls.shutdown(how)
            return
        timeout = self.tls.gettimeout()
        self.tls.settimeout(0)  # unwrap sends close_notify, then wants to read
        try:
            self.tls.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        finally:
            self.tls.settimeout(timeout)

    def close(self) -> None:
        self.tls.close()


def tls_pair(kind: Any, **options: Any) -> tuple[Any, TlsPeer]:
    """(twinsock TLS client of ``kind``, stdlib TLS server peer), handshake done.

    ``options`` go to ``kind.from_native`` (``buffered=False``).
    """
    ours, theirs = stdlib_pair("tcp4")
    twin = kind.from_native(ours, **options)
    served: list[ssl.SSLSocket | BaseException] = []
    server_ctx, client_ctx = server_context(), client_context()  # one CA, made in this thread

    def handshake() -> None:
        theirs.settimeout(10)
        try:
            served.append(server_ctx.wrap_socket(theirs, server_side=True))
        except BaseException as exc:  # raised in the test's thread below
            served.append(exc)

    server = threading.Thread(target=handshake, daemon=True)
    server.start()
    try:
        kind.call(kind.module.wrap_connected_socket, client_ctx, twin,
                  HandshakeType.CLIENT, SERVER_NAME, 10)
    finally:
        server.join(10)
    if not served or isinstance(served[0], BaseException):
        twin.close()
        theirs.close()
        raise RuntimeError(f"the TLS peer's handshake failed: {served}")
    peer = served[0]
    peer.settimeout(None)
    return twin, TlsPeer(peer)
