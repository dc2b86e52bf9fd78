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
lines inside a window are split in one go (``bytes.split``, in C; CRLF lines
by ``bytes.splitlines``, whose total length tells whether every line ended in
``\\r\\n``) and put in ``ready`` in reverse order, exactly as ``recv_line``
returns them.  The shells pop from ``ready`` directly (the fast lane) when
they need no flags, no wait and no length check.  Any other operation first
*settles* the batch: it turns "how many lines were popped" back into a byte
position.  The window grows only while whole batches are consumed by line
reads, so protocols that mix lines and sized reads never split data they
will not read as lines.

``until`` (``recv_until``) finds an arbitrary separator in the pieces as
they lie, also across piece boundaries, and remembers how far it searched,
so a record that trickles in is searched once.  ``received`` counts every
byte that ever entered (the sockets' ``bytes_received``).
"""

from __future__ import annotations

from twinsock._core.types import CRLF, LineResult, ReadLineResult
from twinsock.errors import IncompleteRead, LineTooLong

__all__ = ["BATCHED_LINE_MAX", "MAX_READ", "READ_CHUNK", "LinesThenTooLong", "ReadBuffer"]

#: How much the async protocol and the TLS pumps ask the operating system for
#: at a time (the blocking shell's plain reads use ``net._FILL_SIZE``).
READ_CHUNK = 65536

#: The most one receive asks the operating system for, whatever ``size`` the
#: caller passed: the call allocates what it asks for, and a peer-chosen
#: ``recv(2**31)`` must not allocate 2 GiB (memory grows with what arrives).
MAX_READ = 1 << 20

_SMALL_WINDOW = 256
_MAX_WINDOW = 131072
_MAX_MERGED_CHUNK = 65536

#: No line in ``ReadBuffer.ready`` is longer than this (a batch never spans more
#: than the largest window), so a reader whose ``max_length`` is at least this
#: may pop without measuring the line (``ReadBuffer.recv_line`` measures).
BATCHED_LINE_MAX = _MAX_WINDOW


class LinesThenTooLong(LineTooLong):
    """``take_lines`` met a line over the limit after complete lines that fit.

    Those lines are consumed and carried here (``lines``); the long line and
    everything after it stay buffered.
    """

    def __init__(self, max_length: int, lines: list[bytes]) -> None:
        super().__init__(max_length)
        self.lines = lines


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
        "_sep",
        "_sep_base",
        "_sep_checked",
        "_window",
        "eof",
        "ready",
        "received",
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
        #: Lines split in advance, last first, as ``recv_line`` returns them; shells
        #: may pop with no flags, no wait and ``max_length >= BATCHED_LINE_MAX``.
        #: Each batch installs a new list: read the attribute on every call.
        self.ready: list[bytes] = []
        self._batch_n = 0  # lines in the outstanding batch (0: none)
        self._batch_end = 0  # offset just past the batch's last newline
        self._batch_scanned = 0  # _scanned once the whole batch is consumed
        self._window = _SMALL_WINDOW
        #: True once the peer ended the stream (or a disconnection was absorbed).
        self.eof = False
        #: Bytes that entered the buffer so far; shells add the bytes they read
        #: past it (large ``recv_into`` requests, datagrams).
        self.received = 0
        # How far ``until`` searched: for separator _sep, no match starts in the
        # first _sep_checked unread bytes, as long as the unread data still
        # starts at stream offset _sep_base (received - unread).
        self._sep = b""
        self._sep_base = -1
        self._sep_checked = 0

    # -- receiving -----------------------------------------------------------

    def feed(self, data: bytes) -> int:
        """Append bytes received from the network; return ``size_hint()`` after."""
        if data:
            chunks = self._chunks
            chunks.append(data)
            self._chunks_len += len(data)
            self.received += len(data)
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

    def withdraw(self) -> bytes:
        """Consume everything unread and take it out of ``received``: bytes that
        turned out not to be application data (TLS records that arrived before
        the handshake began)."""
        data = self.take(len(self))
        self.received -= len(data)
        return data

    def clear(self) -> None:
        """Drop everything (the socket was closed); ``received`` keeps its count."""
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
        """True exactly when unread bytes are buffered."""
        if self.ready or self._chunks_len:
            return True
        # While a batch is out and used up, _pos still marks its start.
        return (self._batch_end if self._batch_n else self._pos) < len(self._data)

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
        ready = self.ready
        if ready and not peek:
            batched = ready[-1]
            if batched is CRLF or len(batched) <= max_length:
                return ready.pop()
        if self._chunks and not (peek or self._batch_n) and self._scanned >= len(self._data):
            line = self._line_from_chunks(max_length)  # the echo case, one call sooner
        else:
            line = self.maybe_line(max_length, consume=not peek)
        if line is not None:
            return line or CRLF
        return b"" if self.eof else None

    def take_lines(self, data: bytes, max_length: int) -> list[bytes]:
        """Feed ``data`` and consume every complete line now buffered, in order.

        For consumers that take all lines at once (``serve_lines``' protocol):
        the chunk is split in one call, with no batch to settle later.  Lines
        come without their terminator, as in ``ready``: an empty line is
        ``b""`` (``recv_line`` callers turn it into ``b"\\r\\n"``).  A partial
        line stays buffered; the chunk that completes it glues it once.

        Raises:
            LineTooLong: the first complete line, or the partial line, exceeds
                ``max_length`` (nothing consumed).  ``LinesThenTooLong`` when
                complete lines came before the long one: they are consumed and
                carried by the exception.
        """
        if self._data or self._chunks or self._batch_n:
            data = self._with_pending(data, max_length)
            if not data:
                return []
        # ``13 in`` (CR) is a memchr; ``b"\r" in`` a slower substring search.
        text = data.replace(b"\r\n", b"\n") if 13 in data else data
        lines = text.split(b"\n")
        tail = lines.pop()
        if len(text) > max_length and max(len(text) - len(tail), len(tail)) > max_length:
            self._check_lengths(data, lines, tail, max_length)
        if tail:
            self._data = tail
            self._scanned = len(tail)
        return lines

    def _with_pending(self, data: bytes, max_length: int) -> bytes:
        """``take_lines`` with buffered bytes: all of them plus ``data`` if that ends a
        line (the buffer is then empty), else ``b""`` (``data`` is buffered)."""
        if data.find(b"\n") < 0:
            size = self.feed(data)
            if data and size > max_length + (data[-1:] == b"\r"):
                raise LineTooLong(max_length)
            return b""
        self._settle()
        self._join()
        data = self._data[self._pos :] + data
        self._data = b""
        self._pos = self._scanned = 0
        return data

    def _check_lengths(
        self, data: bytes, lines: list[bytes], tail: bytes, max_length: int
    ) -> None:
        """``take_lines``' limit check, for a chunk that may hold a line over the limit."""
        if max(map(len, lines), default=0) > max_length:
            k = next(k for k, line in enumerate(lines) if len(line) > max_length)
            pos = 0
            for _ in range(k):
                pos = data.index(b"\n", pos) + 1
            self._data = data
            self._pos = self._scanned = pos
            if k:
                raise LinesThenTooLong(max_length, lines[:k])
            raise LineTooLong(max_length)
        if len(tail) > max_length + (tail[-1:] == b"\r"):
            self._data = tail
            self._scanned = len(tail)
            if lines:
                raise LinesThenTooLong(max_length, lines)
            raise LineTooLong(max_length)

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

    def until(self, separator: bytes, max_length: int, *, peek: bool = False) -> bytes | None:
        """``recv_until``'s answer: the bytes up to and including ``separator``
        (non-empty), ``b""`` at end of stream with nothing buffered, or ``None``:
        wait for more data.

        Raises:
            LineTooLong: more than ``max_length`` bytes precede the separator,
                or are known to (nothing is consumed).
            IncompleteRead: the stream ended without the separator; the bytes
                stay buffered.
        """
        self._settle()
        n = len(separator)
        unread = len(self._data) - self._pos + self._chunks_len
        base = self.received - unread  # the stream offset of the first unread byte
        start = self._sep_checked if base == self._sep_base and separator == self._sep else 0
        stop = max_length + n  # a separator that ends later comes too late
        i = self._find(separator, start, stop)
        if i < 0:
            self._sep, self._sep_base = separator, base
            # A match may still start in the last n - 1 bytes, once more arrive.
            self._sep_checked = max(start, min(unread, stop) - n + 1)
            if unread >= stop:
                raise LineTooLong(max_length, f"no separator within max_length={max_length} bytes")
            if not self.eof:
                return None
            if not unread:
                return b""
            raise IncompleteRead(self.peek(unread), separator)
        end = i + n
        return self.peek(end) if peek else self.take(end)

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

    def _find(self, separator: bytes, start: int, stop: int) -> int:
        """Where ``separator`` first starts in the unread bytes (offsets relative to
        the first of them), searching matches that start at ``start`` or later
        and end by ``stop``; -1 if there is none.  Nothing is joined: each piece
        is searched in place, and the last ``n - 1`` bytes before a piece
        (``carry``) catch a separator split across pieces."""
        n = len(separator)
        data, pos = self._data, self._pos
        head = len(data) - pos
        carry = b""
        if start < head:
            i = data.find(separator, pos + start, pos + stop)
            if i >= 0:
                return i - pos
            if n > 1:
                carry = data[max(pos + start, len(data) - n + 1) :]
        offset = head
        for chunk in self._chunks:
            size = len(chunk)
            if offset >= stop:
                break
            if offset + size <= start:
                offset += size
                continue
            if carry:
                j = (carry + chunk[: n - 1]).find(separator)
                if 0 <= j < len(carry):
                    found = offset - len(carry) + j
                    return found if found + n <= stop else -1
            i = chunk.find(separator, max(0, start - offset), stop - offset)
            if i >= 0:
                return offset + i
            if n > 1:
                carry = chunk[size - n + 1 :] if size >= n - 1 else (carry + chunk)[1 - n :]
            offset += size
        return -1

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
        lines: list[bytes] | None = None
        if limit >= size and data.find(b"\n") + 1 == start:
            # The batch is all of the data but its first line and its tail:
            # split the data itself rather than a copy of the segment.
            if b"\r" not in data:
                lines = data.split(b"\n")
                lines.pop()  # the tail after the last newline
            else:
                lines = _crlf_lines(data, end)
            if lines is not None:
                lines.reverse()
                lines.pop()  # the line before ``start``, already consumed
        if lines is None:
            segment = data[start:end]
            if b"\r" not in segment:
                lines = segment.split(b"\n")
                lines.pop()  # the empty piece after the last newline
            else:
                lines = _crlf_lines(segment, len(segment))
                if lines is None:  # a lone "\r" or "\n" somewhere: the exact way
                    lines = segment.replace(b"\r\n", b"\n").split(b"\n")
                    lines.pop()
            lines.reverse()
        if not all(lines):
            lines = [line or CRLF for line in lines]
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


def _crlf_lines(data: bytes, end: int) -> list[bytes] | None:
    """The lines of ``data[:end]`` (which ends a line) and its tail, if every line
    ends in ``"\\r\\n"``; else ``None``.

    ``bytes.splitlines`` ends lines at ``"\\r\\n"`` in one C pass, almost as
    fast as ``split``, but also at a lone ``"\\r"`` (data, SPEC section 5) or a
    lone ``"\\n"``, each one byte long: the lines and two bytes per terminator
    add up to the data exactly when there is none.  (Their total length comes
    from ``join``, a C loop and a copy, measured cheaper than
    ``sum(map(len, lines))`` and than counting ``"\\n"``.)  The tail after
    ``end``, if any, is one more line without a terminator, provided it holds
    no ``"\\r"``.
    """
    lines = data.splitlines()
    tail = len(data) > end
    if tail and data.find(b"\r", end) >= 0:
        return None
    if len(b"".join(lines)) + 2 * (len(lines) - tail) != len(data):
        return None
    if tail:
        lines.pop()
    return lines
