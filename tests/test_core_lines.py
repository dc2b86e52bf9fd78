"""The line-server rules with no sockets: ``ReadBuffer.take_lines`` and ``_core.lines``.

``take_lines`` must find the same lines as ``recv_line`` however the stream is
split, keep what it does not consume, and refuse an over-long line after
delivering the lines before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_core_buffer import CASES, reference_lines, splits
from twinsock._core.buffer import LinesThenTooLong, ReadBuffer
from twinsock._core.lines import (
    check_line_callbacks,
    check_line_max_length,
    line_payload,
    raw_payload,
)
from twinsock._core.types import CRLF
from twinsock.errors import LineTooLong


def take_all(chunks: Sequence[bytes], max_length: int = 1000) -> tuple[list[bytes], bytes]:
    buf = ReadBuffer()
    lines: list[bytes] = []
    for chunk in chunks:
        lines.extend(line or CRLF for line in buf.take_lines(chunk, max_length))
    return lines, buf.take(len(buf))


@pytest.mark.parametrize("stream", CASES)
def test_take_lines_agrees_with_recv_line_whatever_the_split(stream: bytes) -> None:
    expected = reference_lines(stream)
    for chunks in splits(stream):
        assert take_all(chunks) == expected, chunks


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\r\n", b"xyz" * 30]),
                    max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_take_lines_random_splits(pieces: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(pieces)
    points = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in pairwise(points)]
    assert take_all(chunks) == reference_lines(stream)


def test_a_long_line_after_good_ones_delivers_them_and_keeps_itself() -> None:
    buf = ReadBuffer()
    with pytest.raises(LinesThenTooLong) as info:
        buf.take_lines(b"ok\r\n\n" + b"x" * 20 + b"\nafter\n", 10)
    assert info.value.lines == [b"ok", b""]
    assert info.value.max_length == 10
    assert buf.take(len(buf)) == b"x" * 20 + b"\nafter\n"  # nothing of it consumed


def test_a_long_first_line_consumes_nothing() -> None:
    buf = ReadBuffer()
    with pytest.raises(LineTooLong) as info:
        buf.take_lines(b"x" * 11 + b"\n", 10)
    assert not isinstance(info.value, LinesThenTooLong)
    assert buf.take(len(buf)) == b"x" * 11 + b"\n"


def test_a_line_of_exactly_max_length_passes_with_either_ending() -> None:
    buf = ReadBuffer()
    assert buf.take_lines(b"x" * 10 + b"\r\n" + b"y" * 10 + b"\n", 10) == [b"x" * 10, b"y" * 10]
    assert buf.take_lines(b"z" * 10 + b"\r", 10) == []  # the CR may start the terminator
    assert buf.take_lines(b"\n", 10) == [b"z" * 10]


def test_a_partial_line_over_the_limit_is_refused_as_it_grows() -> None:
    buf = ReadBuffer()
    assert buf.take_lines(b"ok\n" + b"x" * 8, 10) == [b"ok"]
    assert buf.take_lines(b"xx", 10) == []
    with pytest.raises(LineTooLong):
        buf.take_lines(b"x", 10)
    buf = ReadBuffer()
    with pytest.raises(LinesThenTooLong) as info:
        buf.take_lines(b"ok\n" + b"x" * 11, 10)
    assert info.value.lines == [b"ok"]


def test_a_trickled_line_is_glued_once() -> None:
    buf = ReadBuffer()
    for _ in range(1000):
        assert buf.take_lines(b"abc", 10_000) == []
    assert buf.take_lines(b"\r\nnext", 10_000) == [b"abc" * 1000]
    assert buf.take(len(buf)) == b"next"


def test_take_lines_after_recv_line_settles_the_batch() -> None:
    buf = ReadBuffer()
    buf.feed(b"a\nb\nc\nd")
    assert buf.recv_line(100) == b"a"
    assert buf.ready  # a batch is out
    assert buf.ready.pop() == b"b"
    assert buf.take_lines(b"\n", 100) == [b"c", b"d"]


def test_line_payload_follows_send_line() -> None:
    assert line_payload(b"abc") == b"abc\r\n"
    assert line_payload(CRLF) == CRLF  # the empty-line sentinel goes out once
    assert line_payload(b"") == CRLF
    assert line_payload("é") == "é\r\n".encode()
    source = bytearray(b"mutable")
    payload = line_payload(source)
    source[:] = b"changed"
    assert payload == b"mutable\r\n"
    with pytest.raises(TypeError):
        line_payload(42)
    assert raw_payload("x") == b"x"
    assert raw_payload(memoryview(b"ab")) == b"ab"
    with pytest.raises(TypeError):
        raw_payload(None)


def plain(conn: object, line: bytes) -> None:
    return None


async def coroutine(conn: object, line: bytes) -> None:
    await asyncio.sleep(0)


class AsyncCall:
    async def __call__(self, conn: object, line: bytes) -> None:
        await asyncio.sleep(0)


@pytest.mark.parametrize("bad", [None, 3, "f", coroutine, AsyncCall()])
def test_callbacks_must_be_plain_callables(bad: Any) -> None:
    with pytest.raises(TypeError, match="on_line"):
        check_line_callbacks(bad, None, None)
    if bad is not None:
        with pytest.raises(TypeError, match="on_connect"):
            check_line_callbacks(plain, bad, None)
        with pytest.raises(TypeError, match="on_close"):
            check_line_callbacks(plain, None, bad)
    check_line_callbacks(plain, plain, plain)


def test_max_length_is_an_int_of_at_least_one() -> None:
    assert check_line_max_length(1) == 1
    for bad in (0, -5):
        with pytest.raises(ValueError, match="max_length"):
            check_line_max_length(bad)
    for wrong in (1.5, "10", True, None):
        with pytest.raises(TypeError, match="max_length"):
            check_line_max_length(wrong)
