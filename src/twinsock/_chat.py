"""The chat room of ``twinsock chat`` and the line echo handlers of ``twinsock echo``.

How this works.  ``ChatRoom.handle`` is an ``asyncnet.serve`` handler: each
connection joins the room, every line it sends is relayed, followed by
``b"\\r\\n"``, to every member (the sender included), and it leaves when it
disconnects.  This is the chat server of the Nim ``asyncnet`` documentation
(seeds/000) with one rule the seed leaves to luck: no client can slow the
room.  Relaying a line never waits.  Each member has a bounded queue of
its own (``_Member``): while the queue is empty and the member's transport
takes data (``try_send``), a line goes straight to the transport; otherwise
it is appended to the queue, which the member's own writer task drains
into its own socket.  A member whose queue passes ``max_queued_bytes`` or
``max_queued_lines`` does not read what the room says; it is disconnected
and logged (WARNING on the ``twinsock.chat`` logger, naming the peer).  Its
socket is closed with ``aclose``, which waits at most a second for what was
queued and then aborts the connection, so a peer that never reads cannot
keep its descriptor open.  The talker's own task only reads and appends:
it never waits on another client's socket.  An empty line (``recv_line``
gives ``b"\\r\\n"``) is relayed as one empty line (``_core.data.line_to_send``).

Memory per member stays below ``max_queued_bytes`` in its queue plus the
transport's high-water mark (``asyncnet.WRITE_HIGH_WATER``) plus the one
batch the writer is sending.

``echo`` and ``echo_line`` are the two handlers of ``twinsock echo``: a
coroutine per connection (``asyncnet.serve``) and a callback per line
(``asyncnet.serve_lines``); each sends every line back as ``send_line``
does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from twinsock._core.data import line_to_send
from twinsock._core.targets import format_endpoint
from twinsock.errors import SocketClosedError

if TYPE_CHECKING:
    from twinsock.asyncnet import AsyncSocket, LineConnection

__all__ = ["MAX_QUEUED_BYTES", "MAX_QUEUED_LINES", "ChatRoom", "echo", "echo_line"]

#: A member with more than this many bytes waiting for it is disconnected.
#: 256 KiB is about a minute of a busy human chat and far more than a reading
#: client ever has waiting: its transport takes 256 KiB more before lines queue.
MAX_QUEUED_BYTES = 256 * 1024
#: A member with more than this many lines waiting for it is disconnected
#: (each queued line costs memory of its own, however short).
MAX_QUEUED_LINES = 4096

log = logging.getLogger("twinsock.chat")


class _Member:
    """One client in the room: its socket, its queue and its writer task."""

    __slots__ = ("conn", "peer", "queue", "queued", "ready", "writer")

    def __init__(self, conn: AsyncSocket, peer: str) -> None:
        self.conn = conn
        self.peer = peer
        self.queue: deque[bytes] = deque()
        self.queued = 0  # bytes in ``queue``
        self.ready = asyncio.Event()  # set when ``queue`` has something
        self.writer: asyncio.Task[None] | None = None

    def take(self) -> bytes:
        """Everything queued, as one piece, and the queue emptied."""
        data = b"".join(self.queue)
        self.queue.clear()
        self.queued = 0
        self.ready.clear()
        return data


class ChatRoom:
    """A chat room: serve ``room.handle`` with ``asyncnet.serve``.

    Args:
        max_queued_bytes: disconnect a member once more than this many bytes
            wait for it in its queue.
        max_queued_lines: disconnect a member once more than this many lines
            wait for it in its queue.
    """

    def __init__(
        self,
        *,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        max_queued_lines: int = MAX_QUEUED_LINES,
    ) -> None:
        if max_queued_bytes < 1 or max_queued_lines < 1:
            raise ValueError("max_queued_bytes and max_queued_lines must be >= 1")
        self.max_queued_bytes = max_queued_bytes
        self.max_queued_lines = max_queued_lines
        self._members: dict[_Member, None] = {}  # an ordered set
        self._closing: set[asyncio.Task[None]] = set()  # aclose of dropped members

    @property
    def peers(self) -> list[str]:
        """The members' addresses (``host:port``), in the order they joined."""
        return [member.peer for member in self._members]

    def __len__(self) -> int:
        return len(self._members)

    async def handle(self, conn: AsyncSocket) -> None:
        """Serve one client: join, relay each of its lines to everyone, leave at its end.

        Errors of this connection (a reset, ``NetTimeout`` under
        ``call_timeout``, ``LineTooLong``) escape to the server, which logs
        them; a member the room disconnected ends quietly.
        """
        member = _Member(conn, _peer_of(conn))
        self._members[member] = None
        member.writer = asyncio.get_running_loop().create_task(self._write(member))
        try:
            while line := await conn.recv_line():
                self.broadcast(line)
        except SocketClosedError:
            if member in self._members:  # closed by someone else: the server's shutdown
                raise
        finally:
            self._leave(member)

    def broadcast(self, line: bytes) -> None:
        """Relay one line as ``recv_line`` returned it to every member; never waits."""
        data = line_to_send(line)
        for member in list(self._members):
            if not member.queue and member.conn.try_send(data):
                continue  # the common case: straight to the transport, no task woken
            member.queue.append(data)
            member.queued += len(data)
            if member.queued > self.max_queued_bytes or len(member.queue) > self.max_queued_lines:
                self._drop(member)
            else:
                member.ready.set()

    async def _write(self, member: _Member) -> None:
        """Drain ``member``'s queue into its socket: the only task that waits on it."""
        try:
            while True:
                await member.ready.wait()
                await member.conn.send(member.take())
        except OSError as exc:  # broken, closed, or NetTimeout under call_timeout
            if member in self._members:
                self._drop(member, f"{exc}")

    def _drop(self, member: _Member, reason: str | None = None) -> None:
        """Disconnect ``member``: its reader ends, its socket is closed (aborted after 1 s)."""
        if reason is None:
            reason = (
                f"it does not read what the room says ({member.queued} bytes in "
                f"{len(member.queue)} lines waiting)"
            )
        log.warning("%s: disconnected: %s", member.peer, reason)
        self._leave(member)
        task = asyncio.get_running_loop().create_task(member.conn.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _leave(self, member: _Member) -> None:
        self._members.pop(member, None)
        member.queue.clear()
        member.queued = 0
        writer, member.writer = member.writer, None
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()


def _peer_of(conn: AsyncSocket) -> str:
    try:
        return format_endpoint(conn.get_peer_addr())
    except OSError:
        return "(disconnected)"


async def echo(conn: AsyncSocket) -> None:
    """``twinsock echo --tasks``' handler: each line goes back as ``send_line`` sends it."""
    while line := await conn.recv_line():
        await conn.send_line(line)


def echo_line(conn: LineConnection, line: bytes) -> bytes:
    """``twinsock echo``'s callback: the line goes back (as by ``send_line``)."""
    return line
