"""The blocking shell's TLS pump: moves ciphertext between the socket and the engine.

How this works.  The TLS state machine is ``_core.tls_engine.TlsEngine``
(sans-I/O, shared with the async socket).  These functions only run its
loop with blocking waits: hand the engine what the socket received, send
what the engine produced, and repeat until the engine can answer.
Decrypted bytes go into the socket's ordinary read buffer, so line reading,
limits and deadlines behave exactly as without TLS.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

from twinsock._blocking.wait import wait_readable, wait_writable
from twinsock._core.buffer import READ_CHUNK
from twinsock._core.deadline import Deadline, accept_handshake_deadline
from twinsock._core.flags import is_disconnection_error
from twinsock._core.tls_engine import TlsEngine
from twinsock._core.types import DEFAULT_FLAGS
from twinsock.errors import NetTimeout, SslError

if TYPE_CHECKING:
    from twinsock._blocking.socket import Socket
    from twinsock.tls import SslContext

__all__ = [
    "blocking_accept_handshake",
    "blocking_close_notify",
    "blocking_fill",
    "blocking_handshake",
    "blocking_send",
]

#: How long ``close`` waits to hand close_notify to the OS.
CLOSE_NOTIFY_TIMEOUT = 1.0

log = logging.getLogger("twinsock")

_DONTWAIT = socket.MSG_DONTWAIT
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


def _send_raw(sock: socket.socket, data: bytes, deadline: Deadline) -> None:
    if not data:
        return
    if deadline.timeout is None:
        sock.sendall(data, _NOSIGNAL)
        return
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view, _DONTWAIT | _NOSIGNAL) :]
        except BlockingIOError:
            wait_writable(sock, deadline)


def _recv_raw(sock: socket.socket, deadline: Deadline) -> bytes:
    if deadline.timeout is None:
        return sock.recv(READ_CHUNK)
    while True:
        try:
            return sock.recv(READ_CHUNK, _DONTWAIT)
        except BlockingIOError:
            wait_readable(sock, deadline)


class SharedEngine(TlsEngine):
    """A ``TlsEngine`` that a reader thread and a writer thread may share.

    ``ssl.SSLObject`` releases the GIL inside OpenSSL, so two threads calling
    one engine at once corrupt records (or crash).  ``state`` guards every
    engine call; ``sending`` keeps records on the wire in the order the engine
    made them: whoever holds it drains everything pending and sends it.
    """

    def __init__(
        self, context: SslContext, *, server_side: bool, server_hostname: str | None
    ) -> None:
        super().__init__(context, server_side=server_side, server_hostname=server_hostname)
        self.state = threading.Lock()
        self.sending = threading.Lock()


def _acquire(lock: threading.Lock, deadline: Deadline) -> None:
    remaining = deadline.remaining()
    if not lock.acquire(timeout=-1 if remaining is None else remaining):
        raise deadline.error()


def _flush(sock: socket.socket, engine: SharedEngine, deadline: Deadline) -> None:
    """Send all ciphertext the engine has made so far, in order."""
    with engine.state:
        if not engine.wants_to_send:
            return  # the common case: a reader never waits for a busy writer
    _acquire(engine.sending, deadline)
    try:
        with engine.state:
            out = engine.data_to_send()
        _send_raw(sock, out, deadline)
    finally:
        engine.sending.release()


def _recv_into_engine(
    sock: socket.socket, engine: SharedEngine, deadline: Deadline, safe: bool
) -> None:
    """Feed the engine one chunk from the network (or the end of the stream)."""
    try:
        raw = _recv_raw(sock, deadline)
    except OSError as exc:
        if isinstance(exc, NetTimeout) or not (safe and is_disconnection_error(DEFAULT_FLAGS, exc)):
            raise
        raw = b""
    with engine.state:
        if raw:
            engine.receive(raw)
        else:
            engine.receive_eof()


def blocking_handshake(
    owner: Socket, deadline: Deadline, *, server_side: bool, hostname: str | None
) -> None:
    """Create the engine for ``owner`` and complete the handshake within ``deadline``."""
    context = owner._tls_context
    if context is None:
        raise SslError("the socket is not wrapped in a TLS context")
    sock = owner._open(deadline.operation)
    # No other thread can reach the engine before the handshake is done.
    engine = SharedEngine(context, server_side=server_side, server_hostname=hostname)
    try:
        while not engine.do_handshake():
            _send_raw(sock, engine.data_to_send(), deadline)
            _recv_into_engine(sock, engine, deadline, safe=False)
        _send_raw(sock, engine.data_to_send(), deadline)
    except BaseException:
        # Tell the peer why (the alert), then close: a failed or interrupted
        # handshake leaves no usable stream, and no plaintext may follow it.
        with contextlib.suppress(OSError):
            _send_raw(sock, engine.data_to_send(), Deadline(0, "TLS alert"))
        owner._close_native()
        raise
    owner._tls = engine


def blocking_accept_handshake(client: Socket, listener: Socket, accept_deadline: Deadline) -> bool:
    """Handshake with a client accepted by a wrapped ``listener``.

    The client inherits the listener's context.  On failure (including a
    client that stalls past the handshake deadline) log, close, return False.
    """
    client._tls_context = listener._tls_context
    peer = client._where()
    try:
        blocking_handshake(
            client, accept_handshake_deadline(accept_deadline), server_side=True, hostname=None
        )
    except (OSError, ValueError) as exc:
        log.warning("TLS handshake with %s failed: %s", peer, exc)
        client._close_native()
        return False
    return True


def blocking_fill(owner: Socket, deadline: Deadline, safe: bool) -> None:
    """Decrypt at least one chunk into the read buffer, or record the end of stream."""
    engine = owner._tls
    assert isinstance(engine, SharedEngine)
    sock = owner._open(deadline.operation)
    while True:
        with engine.state:
            plain = engine.read()
        _flush(sock, engine, deadline)
        if plain is None:
            _recv_into_engine(sock, engine, deadline, safe)
            continue
        if plain:
            owner._buf.feed(plain)
        else:
            owner._buf.feed_eof()
        return


def blocking_send(owner: Socket, data: Any, deadline: Deadline) -> None:
    """Encrypt ``data`` and hand all of it to the OS."""
    engine = owner._tls
    sock = owner._open("send")
    if engine is None:
        raise SslError("send before the TLS handshake completed")
    assert isinstance(engine, SharedEngine)
    with engine.state:
        engine.write(data)
    _flush(sock, engine, deadline)


def blocking_close_notify(owner: Socket) -> None:
    """Queue and send close_notify, best effort, within ``CLOSE_NOTIFY_TIMEOUT``."""
    engine = owner._tls
    sock = owner._sock
    if engine is None or sock is None:
        return
    assert isinstance(engine, SharedEngine)
    try:
        with engine.state:
            engine.start_close()
        _flush(sock, engine, Deadline(CLOSE_NOTIFY_TIMEOUT, "close"))
        _discard_unread(sock)
    except (OSError, ValueError):
        pass  # the peer may be gone already: closing must not fail


def _discard_unread(sock: socket.socket) -> None:
    """Empty the kernel's receive queue without waiting.

    Closing a TCP socket with unread bytes (typically TLS 1.3 session tickets
    nobody read) makes the kernel send RST instead of FIN, and an RST can
    make the peer lose the close_notify just sent.
    """
    for _ in range(64):  # bounded: a peer that keeps sending gets its RST
        try:
            if not sock.recv(READ_CHUNK, _DONTWAIT):
                return
        except OSError:  # BlockingIOError: queue empty; anything else: gone anyway
            return
