"""The asyncio protocol behind ``AsyncSocket``: transport events into the core.

How this works.  A connected ``AsyncSocket`` is driven by an asyncio
transport; the protocol here only forwards what the transport reports.
Received bytes go into the socket's ``ReadBuffer`` (or its TLS engine) and
wake the one waiting reader when the read can complete; the transport is
paused while more is buffered than the waiting read allows (bounded
read-ahead).  On the stdlib selector loop the protocol is a
``BufferedProtocol`` reading into one buffer per thread, because the plain
protocol makes that transport allocate 256 KiB for every read; uvloop keeps
its own C read path with the plain protocol.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from typing import TYPE_CHECKING, cast

from twinsock._async import tls as _tls_async
from twinsock._core.buffer import READ_CHUNK

if TYPE_CHECKING:
    from twinsock._async.socket import AsyncSocket

__all__ = ["WRITE_HIGH_WATER", "protocol_for"]

#: ``send`` waits while the transport holds more than this many unsent bytes.
WRITE_HIGH_WATER = 256 * 1024


class _StreamProtocol(asyncio.Protocol):
    """Pushes transport events into the owning ``AsyncSocket`` (uvloop's fast path)."""

    __slots__ = ("_owner",)

    def __init__(self, owner: AsyncSocket) -> None:
        self._owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Known before the first data arrives, so read-ahead can be paused at once.
        stream = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        stream.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._owner._transport = stream

    def data_received(self, data: bytes) -> None:
        """Received bytes: into the read buffer (or the TLS engine); wake the reader."""
        owner = self._owner
        if owner._tls is not None:
            _tls_async.received(owner, data)
            return
        buf = owner._buf
        size = buf.feed(data)
        waiter = owner._read_waiter
        if waiter is not None and not waiter.done() and (
            owner._wake_at == 0 or len(buf) >= owner._wake_at
        ):
            waiter.set_result(None)
        if size > owner._pause_above and owner._transport is not None:
            # Nobody reads, or a line reader will find its line too long: stop
            # reading until the next read asks for more (bounded memory).
            owner._transport.pause_reading()
            owner._reading_paused = True

    def eof_received(self) -> bool:
        owner = self._owner
        if owner._tls is not None:
            _tls_async.eof_received(owner)
        else:
            owner._buf.feed_eof()
            owner._wake_reader()
        return True  # keep the write side open (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        owner = self._owner
        owner._lost = exc if exc is not None else ConnectionResetError(
            errno.ECONNRESET, "connection lost"
        )
        if not owner._buf.eof and exc is not None:
            owner._read_error = exc
        owner._buf.feed_eof()
        owner._wake_reader()
        owner._wake_writer()
        if owner._lost_waiter is not None and not owner._lost_waiter.done():
            owner._lost_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._owner._write_paused = True

    def resume_writing(self) -> None:
        owner = self._owner
        owner._write_paused = False
        owner._wake_writer()


class _ReadInto(threading.local):
    """One receive buffer per thread, shared by every connection of its loop.

    The transport calls ``get_buffer``, reads, and calls ``buffer_updated``
    back to back, and the bytes are copied out at once, so one buffer serves
    all connections and an idle connection costs no buffer at all.
    """

    def __init__(self) -> None:
        self.view = memoryview(bytearray(READ_CHUNK))


_read_into = _ReadInto()


class _BufferedStreamProtocol(_StreamProtocol, asyncio.BufferedProtocol):
    """The default loop's fast path: its transport reads into our shared buffer
    instead of allocating a fresh 256 KiB bytes object for every read."""

    __slots__ = ("_view",)

    def __init__(self, owner: AsyncSocket) -> None:
        super().__init__(owner)
        self._view = _read_into.view

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        owner = self._owner
        if owner._tls is not None:  # ciphertext goes straight into the engine's BIO
            _tls_async.received(owner, self._view[:nbytes])
        else:
            self.data_received(bytes(self._view[:nbytes]))


def protocol_for(loop: asyncio.AbstractEventLoop) -> type[_StreamProtocol]:
    """The buffered protocol on the stdlib selector loop, the plain one elsewhere."""
    if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
        return _BufferedStreamProtocol
    return _StreamProtocol
