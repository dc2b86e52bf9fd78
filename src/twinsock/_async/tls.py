"""The async shell's TLS pump: the transport's ciphertext through the shared engine.

How this works.  Once a socket has a ``TlsEngine``, its protocol hands every
received chunk to ``received``: during the handshake that only wakes the
handshake coroutine; afterwards the engine decrypts straight into the
socket's ordinary read buffer, so line reading, limits, deadlines and
cancellation behave exactly as without TLS.  Anything the engine wants to
send (handshake flights, session tickets, alerts, close_notify) goes to the
transport at once.  A TLS failure while reading (truncation, a bad record)
ends the stream and is raised by the next read as ``SslError``.  The pump
works through the socket's methods (``_store``, ``_end_stream``,
``_wake_ready``, ``_write_raw``, ``_install_engine``, ``_wait_data``), never
on its fields.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from twinsock._core.deadline import Deadline, accept_handshake_deadline
from twinsock._core.tls_engine import TlsEngine
from twinsock.errors import SslError

if TYPE_CHECKING:
    from twinsock._async.base import AsyncBase

__all__ = ["accept_handshake", "eof_received", "handshake", "queue_close_notify", "received"]

log = logging.getLogger("twinsock")


def _decrypt(owner: AsyncBase, engine: TlsEngine) -> None:
    try:
        while True:
            plain = engine.read()
            if plain is None:
                break
            if not plain:
                owner._end_stream()
                break
            owner._store(plain)
            if not engine.has_input():
                break
    except SslError as exc:
        owner._end_stream(exc)
    if engine.outgoing.pending:  # a TLS 1.3 key update answer, an alert
        owner._write_raw(engine.data_to_send())
    owner._wake_ready()


def received(owner: AsyncBase, data: bytes | memoryview) -> None:
    """The protocol received ciphertext."""
    engine = owner._tls
    assert engine is not None
    engine.receive(data)
    if engine.handshake_done:
        _decrypt(owner, engine)
    else:
        owner._wake_reader()


def eof_received(owner: AsyncBase) -> None:
    """The TCP stream ended."""
    engine = owner._tls
    assert engine is not None
    engine.receive_eof()
    if engine.handshake_done:
        _decrypt(owner, engine)
    else:
        owner._wake_reader()


def queue_close_notify(owner: AsyncBase, transport: asyncio.Transport) -> None:
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
    owner: AsyncBase, deadline: Deadline, *, server_side: bool, hostname: str | None
) -> None:
    """Run the handshake on ``owner``'s transport within ``deadline``."""
    context = owner._tls_context
    if context is None:
        raise SslError("the socket is not wrapped in a TLS context")
    transport = await owner._attached(deadline.operation)
    engine = TlsEngine(context, server_side=server_side, server_hostname=hostname)
    owner._install_engine(engine)
    try:
        while True:
            try:
                done = engine.do_handshake()
            finally:
                owner._write_raw(engine.data_to_send())
            if done:
                break
            if owner._connection_lost():
                engine.receive_eof()
                continue
            await owner._wait_data(deadline, 0)
    except BaseException:
        # A failed or cancelled handshake leaves no usable stream: close it.
        transport.abort()
        owner.close()
        raise
    _decrypt(owner, engine)  # application data that came with the last flight


async def accept_handshake(client: AsyncBase, accept_deadline: Deadline) -> bool:
    """Handshake with an accepted client; on failure log, close it, return False."""
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
