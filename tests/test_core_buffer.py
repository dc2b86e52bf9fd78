"""The read buffer alone, with no sockets: SPEC section 5 over every split.

Each case is fed whole, one byte at a time, and split at every position, and a
hypothesis property compares random splits with a reference model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinsock._core.buffer import ReadBuffer
from twinsock._core.types import CRLF, ReadLineResult
from twinsock.errors import LineTooLong


def splits(data: bytes) -> Iterator[list[bytes]]:
    """Whole, byte by byte, and cut in two at every position."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]


def reference_lines(stream: bytes) -> tuple[list[bytes], bytes]:
    """What recv_line must return for a whole stream, and the partial tail."""
    *complete, tail = stream.split(b"\n")
    lines = [(line[:-1] if line.endswith(b"\r") else line) or CRLF for line in complete]
    return lines, tail


def read_all_lines(chunks: Sequence[bytes], max_length: int = 1000) -> tuple[list[bytes], bytes]:
    """Feed chunks one by one, reading every line as soon as it is complete."""
    buf = ReadBuffer()
    lines: list[bytes] = []
    for chunk in [*chunks, None]:
        if chunk is None:
            buf.feed_eof()
        else:
            buf.feed(chunk)
        while True:
            # Half the time use the shells' fast lane, as the shells do.
            if buf.ready and len(lines) % 2:
                line = buf.ready.pop()
                lines.append(line or CRLF)
                continue
            got = buf.recv_line(max_length)
            if got is None or got == b"":
                break
            lines.append(got)
    tail = buf.take(len(buf))
    return lines, tail


CASES = [
    b"hello\r\nworld\n",
    b"\r\n\n\r\n",
    b"a\rb\r\n",  # lone CR is data
    b"\r\r\n",  # a CR before the CRLF stays in the line
    b"partial",
    b"line\npartial\r",
    b"x" * 50 + b"\n" + b"y\r\n" * 40 + b"tail",
]


@pytest.mark.parametrize("stream", CASES)
def test_lines_are_the_same_whatever_the_split(stream: bytes) -> None:
    expected = reference_lines(stream)
    for chunks in splits(stream):
        assert read_all_lines(chunks) == expected, chunks


def test_empty_line_and_end_of_stream_differ() -> None:
    buf = ReadBuffer()
    buf.feed(b"\r\n")
    assert buf.recv_line(100) == CRLF
    assert buf.recv_line(100) is None  # nothing yet: wait
    buf.feed_eof()
    assert buf.recv_line(100) == b""


def test_end_of_stream_mid_line_keeps_the_partial() -> None:
    buf = ReadBuffer()
    buf.feed(b"abc")
    buf.feed_eof()
    assert buf.recv_line(100) == b""
    assert buf.recv_line(100) == b""  # still there, still b""
    assert buf.read_line(100) == (ReadLineResult.PARTIAL_LINE, b"abc")
    assert buf.read_line(100) == (ReadLineResult.DISCONNECTED, b"")


def test_read_line_statuses() -> None:
    buf = ReadBuffer()
    assert buf.read_line(100) is None
    buf.feed(b"\r\nx\n")
    assert buf.read_line(100) == (ReadLineResult.FULL_LINE, b"")
    assert buf.read_line(100) == (ReadLineResult.FULL_LINE, b"x")


def test_peek_does_not_consume() -> None:
    buf = ReadBuffer()
    buf.feed(b"one\r\ntwo\n")
    assert buf.recv_line(100, peek=True) == b"one"
    assert buf.recv_line(100, peek=True) == b"one"
    assert buf.recv_line(100) == b"one"
    assert buf.recv_line(100, peek=True) == b"two"
    assert buf.read_line(100, peek=True) == (ReadLineResult.FULL_LINE, b"two")
    assert buf.recv_line(100) == b"two"


@pytest.mark.parametrize("max_length", [0, 1, 5, 6])
def test_line_too_long_consumes_nothing(max_length: int) -> None:
    stream = b"abcdef\r\nok\n"
    for chunks in splits(stream):
        buf = ReadBuffer()
        raised_at = None
        for index, chunk in enumerate(chunks):
            buf.feed(chunk)
            try:
                buf.recv_line(max_length)
            except LineTooLong as exc:
                assert exc.max_length == max_length
                raised_at = index
                break
        if max_length >= 6:
            assert raised_at is None
            continue
        assert raised_at is not None, chunks
        for rest in chunks[raised_at + 1 :]:
            buf.feed(rest)
        # nothing was consumed: the whole stream is still there
        assert buf.take(len(buf)) == stream


def test_line_of_exactly_max_length_with_crlf_split_before_the_lf() -> None:
    buf = ReadBuffer()
    buf.feed(b"abc\r")
    assert buf.recv_line(3) is None  # the CR may be the terminator: not too long yet
    buf.feed(b"\n")
    assert buf.recv_line(3) == b"abc"


def test_no_newline_is_detected_as_soon_as_the_limit_is_passed() -> None:
    buf = ReadBuffer()
    buf.feed(b"x" * 10)
    assert buf.recv_line(10) is None
    buf.feed(b"y")
    with pytest.raises(LineTooLong):
        buf.recv_line(10)
    assert len(buf) == 11


def test_sized_reads_after_batched_lines_see_the_right_bytes() -> None:
    buf = ReadBuffer()
    stream = b"".join(b"line%d\r\n" % i for i in range(200)) + b"RAW-PAYLOAD"
    buf.feed(stream)
    got = [buf.recv_line(100) for _ in range(3)]
    assert got == [b"line0", b"line1", b"line2"]
    assert buf.ready  # a batch is out
    buf.ready.pop()  # line3 through the fast lane
    assert buf.take(7) == b"line4\r\n"
    lines = []
    while (line := buf.recv_line(100)) is not None:
        lines.append(line)
    assert lines == [b"line%d" % i for i in range(5, 200)]
    assert buf.take(100) == b"RAW-PAYLOAD"


def test_alternating_lines_and_sized_reads() -> None:
    # A Redis-like protocol: "$5\r\nhello\r\n" repeated.
    stream = b"$5\r\nhello\r\n" * 300
    for chunks in ([stream], [stream[i : i + 7] for i in range(0, len(stream), 7)]):
        buf = ReadBuffer()
        for chunk in chunks:
            buf.feed(chunk)
        buf.feed_eof()
        for _ in range(300):
            assert buf.recv_line(100) == b"$5"
            assert buf.take(5) == b"hello"
            assert buf.recv_line(100) == CRLF
        assert buf.recv_line(100) == b""


def test_take_into_and_skip_and_unread() -> None:
    buf = ReadBuffer()
    buf.feed(b"0123")
    buf.feed(b"456789")
    target = bytearray(4)
    assert buf.take_into(memoryview(target)) == 4
    assert target == b"0123"
    assert buf.skip(2) == 2
    buf.unread(b"AB")
    assert buf.take(100) == b"AB6789"
    assert buf.skip(5) == 0


def test_has_line_end_and_bool() -> None:
    buf = ReadBuffer()
    assert not buf
    buf.feed(b"ab")
    assert buf and not buf.has_line_end()
    buf.feed(b"\n")
    assert buf.has_line_end()


def test_a_trickling_line_is_not_rescanned_or_rejoined() -> None:
    # Byte by byte with no newline: each call only looks at what is new, and
    # nothing is joined until the line is complete (no quadratic copying).
    buf = ReadBuffer()
    for _ in range(5000):
        buf.feed(b"x")
        assert buf.recv_line(10_000) is None
        assert buf._data == b""  # not joined
        assert buf._chunks_scanned == len(buf._chunks)  # never searched again
    # Tiny chunks are merged geometrically: their count stays logarithmic.
    assert len(buf._chunks) <= 2 * (5000).bit_length()
    buf.feed(b"\n")
    assert buf.recv_line(10_000) == b"x" * 5000


def test_a_trickling_line_that_grows_too_long_is_refused_in_time() -> None:
    buf = ReadBuffer()
    for _ in range(100):
        buf.feed(b"y")
        assert buf.recv_line(100) is None
    buf.feed(b"\r")  # could still be the start of the terminator
    assert buf.recv_line(100) is None
    buf.feed(b"y")
    with pytest.raises(LineTooLong):
        buf.recv_line(100)
    assert len(buf) == 102  # nothing consumed


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\r\n", b"xyz" * 20]), max_size=40),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30),
)
def test_random_splits_match_the_reference(pieces: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(pieces)
    chunks = []
    pos = 0
    for size in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        if pos >= len(stream):
            break
        chunks.append(stream[pos : pos + size])
        pos += size
    assert b"".join(chunks) == stream
    assert read_all_lines(chunks) == reference_lines(stream)


class ReferenceBuffer:
    """The SPEC's rules over one plain ``bytes``: slow, obviously right."""

    def __init__(self) -> None:
        self.pending = b""

    def recv_line(self, max_length: int) -> bytes | None:
        i = self.pending.find(b"\n")
        if i < 0:
            if len(self.pending) > max_length + self.pending.endswith(b"\r"):
                raise LineTooLong(max_length)
            return None
        end = i - 1 if i and self.pending[i - 1] == 13 else i
        if end > max_length:
            raise LineTooLong(max_length)
        line = self.pending[:end]
        self.pending = self.pending[i + 1 :]
        return line or CRLF

    def take(self, size: int) -> bytes:
        out, self.pending = self.pending[:size], self.pending[size:]
        return out


OPERATIONS = st.one_of(
    st.tuples(st.just("feed"), st.lists(
        st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\r\n", b"xyz" * 20, b"q\n" * 30]),
        max_size=12,
    ).map(b"".join)),
    st.tuples(st.just("line"), st.integers(min_value=0, max_value=80)),
    st.tuples(st.just("pop"), st.just(0)),
    st.tuples(st.just("take"), st.integers(min_value=0, max_value=90)),
    st.tuples(st.just("peek"), st.integers(min_value=0, max_value=90)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(OPERATIONS, max_size=60))
def test_any_mix_of_operations_matches_the_reference(
    operations: list[tuple[str, bytes | int]],
) -> None:
    """Lines (both lanes, any limit), sized reads and peeks, fed in any pieces."""
    buf = ReadBuffer()
    ref = ReferenceBuffer()
    for name, arg in operations:
        if name == "feed":
            assert isinstance(arg, bytes)
            buf.feed(arg)
            ref.pending += arg
        elif name == "line":
            assert isinstance(arg, int)
            try:
                expected: bytes | type[LineTooLong] | None = ref.recv_line(arg)
            except LineTooLong:
                expected = LineTooLong
            if expected is LineTooLong:
                with pytest.raises(LineTooLong):
                    buf.recv_line(arg)
            else:
                assert buf.recv_line(arg) == expected
        elif name == "pop":
            if buf.ready:
                assert (buf.ready.pop() or CRLF) == ref.recv_line(10**6)
        elif name == "take":
            assert isinstance(arg, int)
            assert buf.take(arg) == ref.take(arg)
        else:
            assert isinstance(arg, int)
            assert buf.peek(arg) == ref.pending[:arg]
        assert len(buf) == len(ref.pending)
        assert buf.has_line_end() == (b"\n" in ref.pending)


def test_lines_beyond_the_batch_window_are_not_skipped() -> None:
    """A batch covers only its window; once it is used up, the lines after it
    are still found, even when a new chunk arrives before the next read."""
    buf = ReadBuffer()
    lines = [b"%03d" % i for i in range(200)]  # 1,000 bytes: beyond the first window
    buf.feed(b"\n".join(lines[:150]) + b"\n")
    assert buf.recv_line(100) == lines[0]
    got = [lines[0]]
    while buf.ready:  # the fast lane, to the end of the first batch
        got.append(buf.ready.pop())
    assert len(got) < 150  # the window really stopped the batch short
    buf.feed(b"\n".join(lines[150:]) + b"\n")
    while (line := buf.recv_line(100)) is not None:
        got.append(line)
    assert got == lines


def test_sized_reads_between_trickled_pieces_keep_the_newline() -> None:
    """A peek or take joins chunks that were searched and chunks that were not;
    the newline in the unsearched part is still found afterwards."""
    buf = ReadBuffer()
    buf.feed(b"abcdef" * 10)
    assert buf.recv_line(100) is None  # searched: no newline
    buf.feed(b"\n")  # much smaller: stays a chunk of its own, not searched yet
    buf.feed(b"gh\n")
    assert len(buf._chunks) == 2  # the two small ones merged, the searched one kept
    assert buf.peek(3) == b"abc"  # joins everything
    assert buf.recv_line(100) == b"abcdef" * 10
    assert buf.take(1) == b"g"
    assert buf.recv_line(100) == b"h"


# -- batched lines: the sentinel, CRLF batches, exact has-data ---------------------------------


def test_batched_lines_are_what_recv_line_returns() -> None:
    """The fast lane pops lines as recv_line returns them: empty lines as CRLF."""
    for stream in (b"first\n\nx\n\n\ny\n", b"first\r\n\r\nx\r\n\r\n\r\ny\r\n"):
        buf = ReadBuffer()
        buf.feed(stream)
        assert buf.recv_line(100) == b"first"
        assert buf.ready  # the rest was batched
        assert [buf.ready.pop() for _ in range(len(buf.ready))] == [
            CRLF, b"x", CRLF, CRLF, b"y"
        ]


@pytest.mark.parametrize(
    "body",
    [
        b"".join(b"line %d\r\n" % i for i in range(300)),  # CRLF only: the splitlines path
        b"".join(b"line %d\n" % i for i in range(300)),  # LF only
        b"".join(b"line %d" % i + (b"\r\n" if i % 3 else b"\n") for i in range(300)),  # mixed
        b"".join(b"a\rb %d\r\n" % i for i in range(300)),  # a lone CR in every line
        b"".join(b"x %d\r\r\n" % i for i in range(300)),  # CR before the CRLF
        b"".join(b"\r\n" if i % 5 == 0 else b"y %d\r\n" % i for i in range(300)),  # empties
    ],
    ids=["crlf", "lf", "mixed", "lone-cr", "cr-crlf", "empty-lines"],
)
@pytest.mark.parametrize("tail", [b"", b"partial", b"partial\r", b"part\rial", b"a\rb\r"])
def test_batches_split_crlf_exactly(body: bytes, tail: bytes) -> None:
    """Batches of CRLF lines (split by splitlines) keep SPEC section 5 exact: a lone
    CR is data, a CR before CRLF stays, whatever the tail holds."""
    stream = b"head\r\n" + body + tail
    expected = reference_lines(stream)
    for chunks in ([stream], [stream[:7], stream[7:]], [stream[:500], stream[500:]]):
        assert read_all_lines(chunks, max_length=10**6) == expected


def test_has_data_after_the_last_batched_line_is_popped() -> None:
    buf = ReadBuffer()
    buf.feed(b"one\ntwo\nthree\n")
    assert buf.recv_line(100) == b"one"
    assert buf
    while buf.ready:
        buf.ready.pop()
    assert not buf  # the batch was used up: nothing is buffered
    assert len(buf) == 0
    buf.feed(b"x")
    assert buf


def test_received_counts_every_byte_that_entered_once() -> None:
    buf = ReadBuffer()
    buf.feed(b"abc\n")
    buf.feed(b"")
    buf.feed(b"de")
    assert buf.recv_line(100, peek=True) == b"abc"
    assert buf.take(3) == b"abc"
    assert buf.received == 6
    buf.unread(b"abc")  # given back, not received again
    assert buf.received == 6
    assert buf.withdraw() == b"abc\nde"  # not application data after all
    assert buf.received == 0


# -- recv_until ----------------------------------------------------------------------------------


class UntilReference:
    """recv_until over one plain ``bytes``: the rules of SPEC section 3, slowly."""

    def __init__(self, data: bytes) -> None:
        self.pending = data

    def results(self, separator: bytes, max_length: int) -> list[bytes | str]:
        """Every answer until the stream is exhausted (after its end arrived)."""
        out: list[bytes | str] = []
        while True:
            i = self.pending.find(separator)
            n = len(separator)
            if i < 0:
                if len(self.pending) >= max_length + n:
                    return [*out, "LineTooLong"]
                if not self.pending:
                    return [*out, b""]
                return [*out, "IncompleteRead"]
            if i > max_length:
                return [*out, "LineTooLong"]
            out.append(self.pending[: i + n])
            self.pending = self.pending[i + n :]


def read_until_all(
    chunks: Sequence[bytes], separator: bytes, max_length: int, peek_every: int = 0
) -> tuple[list[bytes | str], bytes]:
    """Feed ``chunks`` one by one, calling until() whenever it may answer; return
    the answers and what stayed buffered."""
    from twinsock.errors import IncompleteRead

    buf = ReadBuffer()
    out: list[bytes | str] = []
    calls = 0
    for chunk in [*chunks, None]:
        if chunk is None:
            buf.feed_eof()
        else:
            buf.feed(chunk)
        while True:
            calls += 1
            before = len(buf)
            try:
                if peek_every and calls % peek_every == 0:
                    peeked = buf.until(separator, max_length, peek=True)
                    assert len(buf) == before  # PEEK consumes nothing
                    if peeked is None:
                        break
                got = buf.until(separator, max_length)
            except LineTooLong:
                assert len(buf) == before  # nothing consumed
                return [*out, "LineTooLong"], buf.take(len(buf))
            except IncompleteRead as exc:
                assert exc.partial == buf.peek(len(buf))  # the bytes stay buffered
                return [*out, "IncompleteRead"], buf.take(len(buf))
            if got is None:
                break
            out.append(got)
            if got == b"":
                return out, b""
    raise AssertionError("the end of the stream was never reported")


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    chunks = []
    pos = 0
    for size in cuts * (len(stream) // max(1, sum(cuts)) + 1):
        if pos >= len(stream):
            break
        chunks.append(stream[pos : pos + size])
        pos += size
    assert b"".join(chunks) == stream
    return chunks


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b"b", b"ab", b"ba", b"\r\n", b"xyz" * 7]), max_size=30),
    st.sampled_from([b"a", b"ab", b"aab", b"\r\n", b"bab", b"xyzx"]),
    st.integers(min_value=0, max_value=25),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=3),
)
def test_until_matches_the_reference_for_every_chunking(
    pieces: list[bytes], separator: bytes, max_length: int, cuts: list[int], peek_every: int
) -> None:
    stream = b"".join(pieces)
    expected = UntilReference(stream).results(separator, max_length)
    got, _rest = read_until_all(chunked(stream, cuts), separator, max_length, peek_every)
    assert got == expected


@pytest.mark.parametrize("separator", [b"\r\n", b"--boundary--", b"\x00"])
def test_until_at_every_split(separator: bytes) -> None:
    stream = b"one" + separator + separator + b"two" + separator + b"tail"
    expected = UntilReference(stream).results(separator, 100)
    assert expected[-1] == "IncompleteRead"
    for chunks in splits(stream):
        got, rest = read_until_all(chunks, separator, 100)
        assert got == expected, chunks
        assert rest == b"tail"  # the partial record stayed buffered


def test_a_trickling_record_is_searched_once() -> None:
    """Byte by byte: each call only searches what is new (the separator may
    straddle pieces), and nothing is joined before the record is complete."""
    buf = ReadBuffer()
    separator = b"END!"
    record = b"x" * 3000 + b"EN" + b"y" * 10 + separator
    for byte in record[:-1]:
        buf.feed(bytes([byte]))
        assert buf.until(separator, 10_000) is None
        assert buf._sep_checked >= len(buf) - len(separator) + 1
        assert buf._data == b""  # not joined
    buf.feed(record[-1:])
    assert buf.until(separator, 10_000) == record
    assert not buf


def test_until_limit_end_of_stream_and_peek() -> None:
    from twinsock.errors import IncompleteRead

    buf = ReadBuffer()
    buf.feed(b"abcdef")
    assert buf.until(b"|", 6) is None  # 6 bytes may still precede the separator
    buf.feed(b"g")
    with pytest.raises(LineTooLong):
        buf.until(b"|", 6)
    assert buf.until(b"g", 6) == b"abcdefg"  # a separator that ends by the limit
    buf.feed(b"12|34|")
    assert buf.until(b"|", 6, peek=True) == b"12|"
    assert buf.until(b"|", 6, peek=True) == b"12|"
    assert buf.until(b"|", 6) == b"12|"
    buf.feed(b"56")
    buf.feed_eof()
    assert buf.until(b"|", 6) == b"34|"
    with pytest.raises(IncompleteRead) as info:
        buf.until(b"|", 6)
    assert info.value.partial == b"56"
    assert isinstance(info.value, EOFError)
    assert buf.take(10) == b"56"
    assert buf.until(b"|", 6) == b""  # nothing left: the end of the stream
