"""The async shell's TLS pump: the transport's ciphertext through the shared engine.

How this works.  Once a socket has a ``TlsEngine``, its protocol hands every
received chunk to ``received``: during the handshake that only wakes the
handshake coroutine; afterwards the engine decrypts straight into the
socket's ordinary read buffer, so line reading, limits, deadlines and
cancellation behave exactly as without TLS.  Anything the engine wants to
send (handshake flights, session tickets, alerts, close_notify) goes to the
transport at once.  A TLS failure while reading (truncation, a bad record)
ends the stream and is raised by the next read as ``SslError``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from twinsock._core.deadline import Deadline, accept_handshake_deadline
from twinsock._core.tls_engine import TlsEngine
from twinsock.errors import SslError

if TYPE_CHECKING:
    from twinsock._async.socket import AsyncSocket

__all__ = ["accept_handshake", "eof_received", "handshake", "queue_close_notify", "received"]

log = logging.getLogger("twinsock")


def _flush(owner: AsyncSocket, engine: TlsEngine) -> None:
    out = engine.data_to_send()
    transport = owner._transport
    if out and transport is not None and not transport.is_closing():
        transport.write(out)


def _decrypt(owner: AsyncSocket, engine: TlsEngine) -> None:
    buf = owner._buf
    try:
        while True:
            plain = engine.read()
            if plain is None:
                break
            if not plain:
                buf.feed_eof()
                break
            buf.feed(plain)
            if not engine.has_input():
                break
    except SslError as exc:
        owner._read_error = exc
        buf.feed_eof()
    if engine.outgoing.pending:  # a TLS 1.3 key update answer, an alert
        _flush(owner, engine)
    waiter = owner._read_waiter
    if waiter is not None and not waiter.done() and (
        owner._wake_at == 0 or buf.eof or buf.size_hint() >= owner._wake_at
    ):
        waiter.set_result(None)


def received(owner: AsyncSocket, data: bytes | memoryview) -> None:
    """The protocol received ciphertext."""
    engine = owner._tls
    assert engine is not None
    engine.receive(data)
    if engine.handshake_done:
        _decrypt(owner, engine)
    else:
        owner._wake_reader()


def eof_received(owner: AsyncSocket) -> None:
    """The TCP stream ended."""
    engine = owner._tls
    assert engine is not None
    engine.receive_eof()
    if engine.handshake_done:
        _decrypt(owner, engine)
    else:
        owner._wake_reader()


def queue_close_notify(owner: AsyncSocket, transport: asyncio.Transport) -> None:
    """Queue close_notify ahead of the transport's close (best effort)."""
    engine = owner._tls
    if engine is None or transport.is_closing():
        return
    try:
        engine.start_close()
        out = engine.data_to_send()
        if out:
            transport.write(out)
    except (OSError, ValueError):
        pass


async def handshake(
    owner: AsyncSocket, deadline: Deadline, *, server_side: bool, hostname: str | None
) -> None:
    """Run the handshake on ``owner``'s transport within ``deadline``."""
    context = owner._tls_context
    if context is None:
        raise SslError("the socket is not wrapped in a TLS context")
    transport = await owner._attached(deadline.operation)
    engine = TlsEngine(context, server_side=server_side, server_hostname=hostname)
    early = owner._buf.withdraw()  # ciphertext that arrived before wrapping
    owner._tls = engine
    if early:
        engine.receive(early)
    if owner._buf.eof:
        engine.receive_eof()
        owner._buf.eof = False
    loop = owner._loop
    assert loop is not None
    try:
        while True:
            try:
                done = engine.do_handshake()
            finally:
                _flush(owner, engine)
            if done:
                break
            if owner._lost is not None:
                engine.receive_eof()
                continue
            waiter: asyncio.Future[None] = loop.create_future()
            owner._read_waiter = waiter
            owner._wake_at = 0
            timer = None
            remaining = deadline.remaining()
            if remaining is not None:
                timer = loop.call_later(remaining, _expire, waiter, deadline)
            try:
                await waiter
            finally:
                owner._read_waiter = None
                if timer is not None:
                    timer.cancel()
    except BaseException:
        # A failed or cancelled handshake leaves no usable stream: close it.
        transport.abort()
        owner.close()
        raise
    _decrypt(owner, engine)  # application data that came with the last flight


def _expire(waiter: asyncio.Future[None], deadline: Deadline) -> None:
    if not waiter.done():
        waiter.set_exception(deadline.error())


async def accept_handshake(
    client: AsyncSocket, listener: AsyncSocket, accept_deadline: Deadline
) -> bool:
    """Handshake with an accepted client; on failure log, close it, return False."""
    client._tls_context = listener._tls_context
    peer = client._where()
    try:
        await handshake(
            client, accept_handshake_deadline(accept_deadline), server_side=True, hostname=None
        )
    except (OSError, ValueError) as exc:
        log.warning("TLS handshake with %s failed: %s", peer, exc)
        client.close()
        return False
    return True
