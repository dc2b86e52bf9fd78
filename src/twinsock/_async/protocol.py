"""The asyncio protocol behind ``AsyncSocket``: transport events into the core.

How this works.  A connected ``AsyncSocket`` is driven by an asyncio
transport; the protocol here only forwards what the transport reports to
the socket's ``_on_*`` methods (``_async.base``): received bytes go into the
socket's ``ReadBuffer`` (or its TLS engine) and wake the one waiting reader
when the read can complete; the transport is paused while more is buffered
than the waiting read allows (bounded read-ahead).  The socket's
``_on_data`` *is* the protocol's ``data_received`` (an instance attribute),
so a received chunk costs no extra call.  On the stdlib selector loop the
protocol is a ``BufferedProtocol`` reading into one buffer per thread,
because the plain protocol makes that transport allocate 256 KiB for every
read; uvloop keeps its own C read path with the plain protocol.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, cast

from twinsock._core.buffer import READ_CHUNK

if TYPE_CHECKING:
    from twinsock._async.base import AsyncBase

__all__ = ["WRITE_HIGH_WATER", "protocol_for"]

#: ``send`` waits while the transport holds more than this many unsent bytes.
WRITE_HIGH_WATER = 256 * 1024


class _StreamProtocol(asyncio.Protocol):
    """Reports transport events to the owning socket's ``_on_*`` methods (uvloop's path)."""

    __slots__ = ("_owner", "data_received")

    def __init__(self, owner: AsyncBase) -> None:
        self._owner = owner
        # The transport calls the socket's method for every chunk: no hop through here.
        self.data_received = owner._on_data  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport.
        self._owner._on_connection_made(cast(asyncio.Transport, transport))

    def eof_received(self) -> bool:
        return self._owner._on_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._on_lost(exc)

    def pause_writing(self) -> None:
        self._owner._on_write_paused(True)

    def resume_writing(self) -> None:
        self._owner._on_write_paused(False)


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

    def __init__(self, owner: AsyncBase) -> None:
        super().__init__(owner)
        self._view = _read_into.view

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self._owner._tls is not None:  # ciphertext goes straight into the engine's BIO
            self._owner._on_ciphertext(self._view[:nbytes])
        else:
            self.data_received(bytes(self._view[:nbytes]))


def protocol_for(loop: asyncio.AbstractEventLoop) -> type[_StreamProtocol]:
    """The buffered protocol on the stdlib selector loop, the plain one elsewhere."""
    if isinstance(loop, asyncio.selector_events.BaseSelectorEventLoop):
        return _BufferedStreamProtocol
    return _StreamProtocol
