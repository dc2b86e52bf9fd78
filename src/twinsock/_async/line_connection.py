"""``LineConnection``: one connection of ``asyncnet.serve_lines``, as its callbacks see it.

How this works.  The connection is a thin face over its ``LineProtocol``
(``lines.py``): while the protocol delivers a chunk's lines it points
``_out`` at the chunk's reply batch, so ``send_line`` / ``send`` append to it
and the replies go out with one ``transport.write``; outside a delivery they
write at once.  Neither ever waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twinsock._core.docs import ASYNC, shared_docs
from twinsock._core.docs.lines import LINE_CONNECTION
from twinsock._core.lines import endpoint, line_payload, raw_payload
from twinsock._core.types import CRLF
from twinsock.addresses import SocketAddress
from twinsock.errors import SocketClosedError

if TYPE_CHECKING:
    from twinsock._async.lines import LineProtocol

__all__ = ["LineConnection"]


@shared_docs(LINE_CONNECTION, ASYNC)
class LineConnection:
    """One connection of a line server, as its callbacks see it.

    ``send_line`` and ``send`` never wait: they queue bytes for the
    transport (inside ``on_line`` they go out with the chunk's other replies,
    in order).  ``state`` is a dict for the callbacks' own per-connection data.
    """

    __slots__ = ("_open", "_out", "_proto", "_received", "_sent", "_state")

    def __init__(self, proto: Any) -> None:  # made by the server, never by hand
        self._proto: LineProtocol = proto
        self._open = True
        #: The reply batch while this connection's lines are delivered, else None.
        self._out: list[bytes] | None = None
        self._received = 0
        self._sent = 0
        self._state: dict[Any, Any] | None = None

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<twinsock.LineConnection {state} {self._proto._peer_text()}>"

    def send_line(self, data: Any) -> None:
        if not self._open:
            raise SocketClosedError("send_line")
        out = self._out
        if out is None:
            self._proto._write_now(line_payload(data), "send_line")
        elif data.__class__ is bytes and data != CRLF:
            out.append(data)  # joined with the chunk's other replies: no copy here
            out.append(CRLF)
        else:
            out.append(line_payload(data))

    def send(self, data: Any) -> None:
        if not self._open:
            raise SocketClosedError("send")
        if data.__class__ is not bytes:
            data = raw_payload(data)
        out = self._out
        if out is not None:
            out.append(data)
        elif data:
            self._proto._write_now(data, "send")

    def close(self) -> None:
        if self._open:
            self._open = False
            self._proto._close_soon()

    def is_closed(self) -> bool:
        return not self._open or self._proto.transport_closing()

    @property
    def state(self) -> dict[Any, Any]:
        state = self._state
        if state is None:
            state = self._state = {}
        return state

    @property
    def peer(self) -> SocketAddress | str:
        return endpoint(self._proto._sockaddr("peername"))

    @property
    def local(self) -> SocketAddress | str:
        return endpoint(self._proto._sockaddr("sockname"))

    @property
    def bytes_received(self) -> int:
        return self._received

    @property
    def bytes_sent(self) -> int:
        return self._sent
