"""The read buffer: line ends, length limits and end of stream (SPEC section 5).

How this works.  Received chunks are appended to a list (``feed`` is O(1));
the unread data is ``_data[_pos:]`` followed by those chunks.  Every byte is
searched for a line end once: ``_scanned`` marks how far ``_data`` is known
to hold no newline, and ``_chunks_scanned`` how many chunks after it.  While
the unread data is only a partial line, chunks are not joined to it: when one
finishes the line, the line is glued from the pieces and that chunk becomes
``_data`` as it is.  So a stream of lines never copies its chunks, and a long
line that trickles in is copied once, when it is complete (tiny chunks are
merged geometrically on arrival, so their count stays small).  Sized reads
and peeks join what they need.

Line reading is batched: once a line has been found, the following complete
lines inside a window are split in one go (``bytes.split`` runs in C) and put,
already stripped of their ``\\r\\n``, in ``ready`` in reverse order.  The
shells pop from ``ready`` directly (the fast lane) and fall back to
``recv_line`` here when it is empty.  Any other operation first *settles* the
batch: it turns "how many lines of the batch were popped" back into a byte
position.  The window starts small and grows only while whole batches are
consumed by line reads, so protocols that alternate lines and sized reads
never pay for splitting data they will not read as lines.
"""

from __future__ import annotations

from twinsock._core.types import CRLF, LineResult, ReadLineResult
from twinsock.errors import LineTooLong

__all__ = ["BATCHED_LINE_MAX", "READ_CHUNK", "ReadBuffer"]

#: How much the async protocol and the TLS pumps ask the operating system for
#: at a time (the blocking shell's plain reads use ``net._FILL_SIZE``).
READ_CHUNK = 65536

_SMALL_WINDOW = 256
_MAX_WINDOW = 131072
_MAX_MERGED_CHUNK = 65536

#: No line in ``ReadBuffer.ready`` is longer than this (a batch never spans more
#: than the largest window), so a reader whose ``max_length`` is at least this
#: may pop without measuring the line.
BATCHED_LINE_MAX = _MAX_WINDOW


class ReadBuffer:
    """Bytes received but not yet consumed, with line and size extraction."""

    __slots__ = (
        "_batch_end",
        "_batch_n",
        "_batch_scanned",
        "_chunks",
        "_chunks_len",
        "_chunks_scanned",
        "_data",
        "_pos",
        "_scanned",
        "_window",
        "eof",
        "ready",
    )

    def __init__(self) -> None:
        self._data = b""
        self._pos = 0  # first unread byte of _data; the batch start while a batch is out
        self._scanned = 0  # no newline in _data[_pos:_scanned]
        self._chunks: list[bytes] = []  # received after _data, not joined yet
        self._chunks_len = 0
        # While the unread part of _data holds no newline: how many chunks
        # are known to hold none either (a trickling line is never rescanned).
        self._chunks_scanned = 0
        #: Complete lines split in advance, last line first.  Shells may pop from
        #: the end when they need no flags; see the module docstring.  Each batch
        #: installs a new list, so read the attribute on every call.
        self.ready: list[bytes] = []
        self._batch_n = 0  # lines in the outstanding batch (0: none)
        self._batch_end = 0  # offset just past the batch's last newline
        self._batch_scanned = 0  # _scanned once the whole batch is consumed
        self._window = _SMALL_WINDOW
        #: True once the peer ended the stream (or a disconnection was absorbed).
        self.eof = False

    # -- receiving -----------------------------------------------------------

    def feed(self, data: bytes) -> int:
        """Append bytes received from the network; return ``size_hint()`` after."""
        if data:
            chunks = self._chunks
            chunks.append(data)
            self._chunks_len += len(data)
            if len(chunks) > 1:
                self._merge_small_chunks()
        return len(self._data) - self._pos + self._chunks_len

    def feed_eof(self) -> None:
        """Record that the stream ended; buffered bytes stay readable."""
        self.eof = True

    def unread(self, data: bytes) -> None:
        """Put bytes back in front of the buffer (a call that must give them back)."""
        if data:
            self._settle()
            self._join()
            self._data = bytes(data) + self._data[self._pos :]
            self._pos = 0
            self._scanned = 0

    def clear(self) -> None:
        """Drop everything (the socket was closed)."""
        self._settle()
        self.ready = []
        self._data = b""
        self._pos = self._scanned = 0
        self._chunks.clear()
        self._chunks_len = self._chunks_scanned = 0

    # -- state ----------------------------------------------------------------

    def __len__(self) -> int:
        """The number of unread bytes."""
        self._settle()
        return len(self._data) - self._pos + self._chunks_len

    def __bool__(self) -> bool:
        return bool(self.ready) or self._pos < len(self._data) or self._chunks_len > 0

    def size_hint(self) -> int:
        """The unread byte count, cheaply: exact, or larger while a batch of lines
        is out (for bounds and wake-ups, where over-estimating is safe)."""
        return len(self._data) - self._pos + self._chunks_len

    # -- lines ----------------------------------------------------------------

    def maybe_line(self, max_length: int, *, consume: bool = True) -> bytes | None:
        """The next complete line without its terminator, or ``None`` if none yet.

        An empty line is returned as ``b""``.  Raises ``LineTooLong`` (consuming
        nothing) once the line is known to exceed ``max_length``.
        """
        if self._batch_n:
            self._settle()
        if self._chunks:
            if consume and self._scanned >= len(self._data):
                return self._line_from_chunks(max_length)
            self._join()
        data = self._data
        pos = self._pos
        start = self._scanned if self._scanned > pos else pos
        i = data.find(b"\n", start)
        if i < 0:
            self._scanned = len(data)
            unread = len(data) - pos
            # A trailing "\r" may still become the start of the terminator.
            if unread > max_length + (data[-1:] == b"\r"):
                raise LineTooLong(max_length)
            return None
        end = i - 1 if i > pos and data[i - 1] == 13 else i
        if end - pos > max_length:
            raise LineTooLong(max_length)
        line = data[pos:end]
        if consume:
            self._pos = self._scanned = i + 1
            self._start_batch(i + 1)
        else:
            self._scanned = i
        return line

    def recv_line(self, max_length: int, *, peek: bool = False) -> bytes | None:
        """``recv_line``'s answer: the line (``b"\\r\\n"`` if empty), ``b""`` at end of
        stream (a partial line stays buffered), or ``None``: wait for more data."""
        if self._chunks and not (peek or self._batch_n) and self._scanned >= len(self._data):
            line = self._line_from_chunks(max_length)  # the echo case, one call sooner
        else:
            line = self.maybe_line(max_length, consume=not peek)
        if line is not None:
            return line or CRLF
        return b"" if self.eof else None

    def read_line(self, max_length: int, *, peek: bool = False) -> LineResult | None:
        """``read_line``'s answer, or ``None``: wait for more data."""
        line = self.maybe_line(max_length, consume=not peek)
        if line is not None:
            return LineResult(ReadLineResult.FULL_LINE, line)
        if not self.eof:
            return None
        if len(self):
            partial = self.peek(len(self)) if peek else self.take(len(self))
            return LineResult(ReadLineResult.PARTIAL_LINE, partial)
        return LineResult(ReadLineResult.DISCONNECTED, b"")

    def has_line_end(self) -> bool:
        """True if a complete line is buffered (cheap when one was split already)."""
        if self.ready:
            return True
        self._settle()
        if self._data.find(b"\n", max(self._pos, self._scanned)) >= 0:
            return True
        return any(b"\n" in chunk for chunk in self._chunks)

    # -- sized reads ----------------------------------------------------------

    def take(self, size: int) -> bytes:
        """Consume and return up to ``size`` bytes."""
        out = self.peek(size)
        self._pos += len(out)
        return out

    def peek(self, size: int) -> bytes:
        """Return up to ``size`` bytes without consuming them."""
        self._settle()
        if len(self._data) - self._pos < size and self._chunks:
            self._join()
        pos = self._pos
        return self._data[pos : pos + size]

    def take_into(self, view: memoryview) -> int:
        """Consume up to ``len(view)`` bytes into ``view``; return how many."""
        self._settle()
        if len(self._data) - self._pos < len(view) and self._chunks:
            self._join()
        pos = self._pos
        n = min(len(view), len(self._data) - pos)
        if n:
            view[:n] = memoryview(self._data)[pos : pos + n]
            self._pos = pos + n
        return n

    def skip(self, size: int) -> int:
        """Discard up to ``size`` bytes; return how many were discarded."""
        self._settle()
        if len(self._data) - self._pos < size and self._chunks:
            self._join()
        n = min(size, len(self._data) - self._pos)
        self._pos += n
        return n

    # -- internals --------------------------------------------------------------

    def _join(self) -> None:
        """Merge the received chunks into ``_data``, dropping consumed bytes."""
        chunks = self._chunks
        if not chunks:
            return
        pos = self._pos
        unread = len(self._data) - pos
        if self._chunks_scanned:
            scanned = unread + sum(len(chunk) for chunk in chunks[: self._chunks_scanned])
        else:
            scanned = max(0, self._scanned - pos) if unread else 0
        if unread:
            self._data = b"".join([self._data[pos:], *chunks])
        else:
            self._data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._scanned = scanned
        self._pos = 0
        chunks.clear()
        self._chunks_len = self._chunks_scanned = 0

    def _merge_small_chunks(self) -> None:
        """Keep a line that trickles in from piling up thousands of tiny chunks.

        The newest two chunks are merged while the older one is small (below
        64 KiB) and at most twice the newer: chunk sizes then shrink
        geometrically toward the newest, so the count stays logarithmic and
        each byte is copied a bounded number of times.  Reads of 64 KiB and
        more are never merged.
        """
        chunks = self._chunks
        while len(chunks) > 1:
            older = len(chunks[-2])
            if older >= _MAX_MERGED_CHUNK or older > 2 * len(chunks[-1]):
                return
            newest = chunks.pop()
            chunks[-1] += newest
            if self._chunks_scanned >= len(chunks):
                self._chunks_scanned = len(chunks) - 1

    def _line_from_chunks(self, max_length: int) -> bytes | None:
        """``maybe_line`` (consuming) when the unread data holds no newline.

        Only the chunks not searched yet are searched.  If one ends the line,
        the line is the unread data plus the chunks up to that newline, and
        the rest of that chunk becomes the data (uncopied when it is the last
        chunk).  Otherwise nothing is joined: only the limit is checked.
        """
        chunks = self._chunks
        count = len(chunks)
        k = self._chunks_scanned
        while k < count:
            chunk = chunks[k]
            i = chunk.find(b"\n")
            if i >= 0:
                break
            k += 1
        else:
            self._chunks_scanned = count
            unread = len(self._data) - self._pos + self._chunks_len
            # A trailing "\r" may still become the start of the terminator.
            if unread > max_length + (chunks[-1][-1:] == b"\r"):
                raise LineTooLong(max_length)
            return None
        head = self._data[self._pos :]
        if i:
            last = chunk[: i - 1 if chunk[i - 1] == 13 else i]
            line = head + last if k == 0 else b"".join([head, *chunks[:k], last])
        else:
            line = head if k == 0 else b"".join([head, *chunks[:k]])
            if line[-1:] == b"\r":
                line = line[:-1]
        if len(line) > max_length:
            raise LineTooLong(max_length)
        self._data = chunk if k == count - 1 else b"".join(chunks[k:])
        chunks.clear()
        self._chunks_len = self._chunks_scanned = 0
        self._pos = self._scanned = i + 1
        if i + 1 < len(self._data):
            self._start_batch(i + 1)
        return line

    def _start_batch(self, start: int) -> None:
        """Split the complete lines after ``start`` (within the window) into ``ready``."""
        data = self._data
        limit = start + self._window
        end = data.rfind(b"\n", start, limit) + 1
        if end <= start:
            return
        size = len(data)
        if limit >= size and data.find(b"\n") + 1 == start and b"\r" not in data:
            # The batch is all of the data but its first line and its tail:
            # split the data itself rather than a copy of the segment.
            lines = data.split(b"\n")
            lines.pop()  # the tail after the last newline
            lines.reverse()
            lines.pop()  # the line before ``start``, already consumed
        else:
            segment = data[start:end]
            if b"\r" in segment:
                segment = segment.replace(b"\r\n", b"\n")
            lines = segment.split(b"\n")
            lines.pop()  # the empty piece after the last newline
            lines.reverse()
        self.ready = lines
        self._batch_n = len(lines)
        self._batch_end = end
        # No newline after the batch if the search reached the end of the data.
        self._batch_scanned = size if limit >= size else end
        self._pos = start

    def _settle(self) -> None:
        """Turn the popped part of an outstanding batch back into ``_pos``."""
        n = self._batch_n
        if not n:
            return
        left = len(self.ready)
        used = n - left
        data = self._data
        if not left:
            pos = self._batch_end
            self._scanned = self._batch_scanned
            self._window = min(self._window * 4, _MAX_WINDOW)
        elif used <= left:
            pos = self._pos
            for _ in range(used):
                pos = data.index(b"\n", pos) + 1
            self._window = _SMALL_WINDOW
        else:
            newline = self._batch_end - 1
            for _ in range(left):
                newline = data.rfind(b"\n", self._pos, newline)
            pos = newline + 1
            self._window = _SMALL_WINDOW
        self._pos = pos
        if left:
            self.ready = []
        self._batch_n = 0
