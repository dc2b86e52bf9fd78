"""SPEC sections 0, 3 and 5 over real sockets, for every socket kind and family.

The twinsock side is the ``pair`` fixture's first element (blocking socket, or
the async socket on asyncio / uvloop through a blocking proxy); the peer is a
plain stdlib socket.  A scripted peer thread sends the payload whole, one
byte at a time, or split at every position.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twinsock.errors import LineTooLong, NetTimeout, SocketClosedError
from twinsock.net import LineResult, ReadLineResult, SocketFlag


def send_in_pieces(
    peer: socket.socket, pieces: list[bytes], pause: float = 0.002
) -> threading.Thread:
    """Send each piece separately (with a pause so they arrive as separate reads)."""
    if peer.family != socket.AF_UNIX:
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run() -> None:
        for piece in pieces:
            peer.sendall(piece)
            time.sleep(pause)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def every_split(data: bytes) -> Iterator[list[bytes]]:
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]


def expected_lines(stream: bytes) -> list[bytes]:
    *complete, _tail = stream.split(b"\n")
    return [(line[:-1] if line.endswith(b"\r") else line) or b"\r\n" for line in complete]


def read_lines_until_eof(twin: Any) -> list[bytes]:
    lines: list[bytes] = []
    while True:
        line = twin.recv_line(timeout=10)
        if line == b"":
            return lines
        lines.append(line)


LINE_CASE = b"ab\r\n\r\nc\rd\n\nlast\r"


class TestLines:
    @pytest.mark.parametrize("split", ["whole", "bytewise", "every-position"])
    def test_line_rules_whatever_the_split(self, kind: Any, family: str, split: str) -> None:
        from conftest import stdlib_pair

        cases = list(every_split(LINE_CASE))
        chosen = {"whole": cases[:1], "bytewise": cases[1:2], "every-position": cases[2:]}[split]
        for pieces in chosen:
            ours, peer = stdlib_pair(family)
            twin = kind.from_native(ours)
            try:
                sender = send_in_pieces(peer, pieces, pause=0.001)
                sender.join()
                peer.shutdown(socket.SHUT_WR)
                assert read_lines_until_eof(twin) == expected_lines(LINE_CASE)
                # end of stream mid-line: b"" and the partial line is still readable
                assert twin.recv_line(timeout=5) == b""
                partial = LineResult(ReadLineResult.PARTIAL_LINE, b"last\r")
                assert twin.read_line(timeout=5) == partial
                assert twin.read_line(timeout=5) == LineResult(ReadLineResult.DISCONNECTED, b"")
            finally:
                twin.close()
                peer.close()

    def test_empty_line_differs_from_end_of_stream(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"\r\n\n")
        assert twin.recv_line(timeout=5) == b"\r\n"
        assert twin.recv_line(timeout=5) == b"\r\n"
        peer.shutdown(socket.SHUT_WR)
        assert twin.recv_line(timeout=5) == b""
        assert twin.recv_line(timeout=5) == b""

    def test_lone_cr_is_data(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"a\rb\r\r\n")
        assert twin.recv_line(timeout=5) == b"a\rb\r"

    def test_peek_line(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"one\r\ntwo\n")
        peek = SocketFlag.PEEK | SocketFlag.SAFE_DISCONN
        assert twin.recv_line(timeout=5, flags=peek) == b"one"
        assert twin.recv_line(timeout=5, flags=peek) == b"one"
        assert twin.recv_line(timeout=5) == b"one"
        assert twin.recv_line(timeout=5) == b"two"

    def test_line_too_long_consumes_nothing_and_socket_stays_usable(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"x" * 100 + b"\r\nshort\n")
        with pytest.raises(LineTooLong) as info:
            twin.recv_line(timeout=5, max_length=50)
        assert info.value.max_length == 50
        assert twin.recv(100, timeout=5) == b"x" * 100
        assert twin.recv_line(timeout=5) == b"\r\n"
        assert twin.recv_line(timeout=5, max_length=5) == b"short"

    def test_line_too_long_detected_without_a_newline(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"y" * 5000)
        with pytest.raises(LineTooLong):
            twin.recv_line(timeout=5, max_length=1000)
        assert twin.recv(5000, timeout=5) == b"y" * 5000

    def test_recv_line_into_and_read_line(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"first\r\n\r\nthird")
        target = bytearray(b"old contents")
        twin.recv_line_into(target, timeout=5)
        assert target == b"first"
        assert twin.read_line(timeout=5) == LineResult(ReadLineResult.FULL_LINE, b"")
        assert twin.read_line(timeout=0.2) == LineResult(ReadLineResult.NONE, b"")
        peer.sendall(b"\n")
        assert twin.read_line(timeout=5) == LineResult(ReadLineResult.FULL_LINE, b"third")

    def test_many_lines_in_one_read(self, pair: Any) -> None:
        twin, peer = pair
        lines = [b"line %d " % i + b"z" * (i % 97) for i in range(3000)]
        sender = threading.Thread(target=peer.sendall, args=(b"\r\n".join(lines) + b"\r\n",))
        sender.start()
        got = [twin.recv_line(timeout=10) for _ in lines]
        sender.join()
        assert got == lines


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    pieces=st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"bcd" * 9]), max_size=25),
    cuts=st.lists(st.integers(1, 9), min_size=1, max_size=6),
)
def test_random_splits_over_loopback(pieces: list[bytes], cuts: list[int]) -> None:
    from conftest import stdlib_pair
    from twinsock.net import Socket

    stream = b"".join(pieces)
    chunks, pos, i = [], 0, 0
    while pos < len(stream):
        chunks.append(stream[pos : pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        i += 1
    ours, peer = stdlib_pair("tcp4")
    with Socket.from_native(ours) as twin:
        send_in_pieces(peer, chunks, pause=0.0005).join()
        peer.shutdown(socket.SHUT_WR)
        assert read_lines_until_eof(twin) == expected_lines(stream)
    peer.close()


class TestDeadlines:
    def test_trickling_peer_cannot_stretch_the_deadline(self, pair: Any) -> None:
        twin, peer = pair
        stop = threading.Event()

        def trickle() -> None:
            while not stop.is_set():
                try:
                    peer.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.1)

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        started = time.monotonic()
        with pytest.raises(NetTimeout) as info:
            twin.recv_line(timeout=0.5)
        elapsed = time.monotonic() - started
        stop.set()
        thread.join()
        assert "recv_line" in str(info.value) and "timed out after 0.5 s" in str(info.value)
        assert isinstance(info.value, TimeoutError)
        # a deadline, not a per-read timeout: a correctness bound, generous for a noisy machine
        assert elapsed < 3.0
        peer.sendall(b"\n")
        line = twin.recv_line(timeout=5)
        assert line and set(line) == {ord("x")}  # nothing received was lost

    def test_timeout_zero_means_do_not_wait(self, pair: Any) -> None:
        twin, peer = pair
        with pytest.raises(NetTimeout):
            twin.recv_line(timeout=0)
        peer.sendall(b"ready\n")
        time.sleep(0.1)
        assert twin.recv_line(timeout=0) == b"ready"

    def test_recv_timeout_keeps_partial_data(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"abc")
        with pytest.raises(NetTimeout):
            twin.recv(10, timeout=0.2)
        peer.sendall(b"defghij")
        assert twin.recv(10, timeout=5) == b"abcdefghij"

    def test_recv_into_timeout_keeps_partial_data(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"12345")
        target = bytearray(200_000)
        with pytest.raises(NetTimeout):
            twin.recv_into(target, timeout=0.2)
        assert twin.recv(5, timeout=5) == b"12345"

    def test_bad_timeouts(self, pair: Any) -> None:
        twin, _ = pair
        with pytest.raises(ValueError):
            twin.recv_line(timeout=-1)
        with pytest.raises(TypeError):
            twin.recv(5, timeout="soon")


class TestSizedReads:
    def test_buffered_recv_waits_for_size(self, pair: Any) -> None:
        twin, peer = pair
        send_in_pieces(peer, [b"ab", b"cd", b"ef"], pause=0.02)
        assert twin.recv(6, timeout=5) == b"abcdef"

    def test_buffered_recv_short_only_at_end_of_stream(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"abc")
        peer.shutdown(socket.SHUT_WR)
        assert twin.recv(10, timeout=5) == b"abc"
        assert twin.recv(10, timeout=5) == b""

    def test_unbuffered_recv_returns_what_arrived(self, unbuffered_pair: Any) -> None:
        twin, peer = unbuffered_pair
        peer.sendall(b"abc")
        assert twin.recv(10, timeout=5) == b"abc"
        assert not twin.buffered

    def test_unbuffered_recv_line_reads_no_further_than_the_line(
        self, kind: Any, unbuffered_pair: Any
    ) -> None:
        if kind.name != "blocking":
            pytest.skip("the async socket's transport reads whatever arrives (docs/decisions.md)")
        twin, peer = unbuffered_pair
        peer.sendall(b"header\r\nbody-bytes")
        assert twin.recv_line(timeout=5) == b"header"
        assert not twin.has_data_buffered()  # the body is still in the kernel
        assert twin.recv(100, timeout=5) == b"body-bytes"

    def test_size_zero_and_negative(self, pair: Any) -> None:
        twin, _ = pair
        assert twin.recv(0) == b""
        with pytest.raises(ValueError):
            twin.recv(-1)
        with pytest.raises(ValueError):
            twin.skip(-5)
        with pytest.raises(ValueError):
            twin.recv_line(max_length=-1)

    def test_recv_into_large_buffer(self, pair: Any) -> None:
        twin, peer = pair
        payload = bytes(range(256)) * 4096  # 1 MiB
        sender = threading.Thread(target=peer.sendall, args=(payload,))
        sender.start()
        target = bytearray(len(payload))
        assert twin.recv_into(target, timeout=10) == len(payload)
        sender.join()
        assert target == payload

    def test_recv_into_partial_size_and_bad_buffers(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"0123456789")
        target = bytearray(8)
        assert twin.recv_into(target, 4, timeout=5) == 4
        assert target[:4] == b"0123"
        with pytest.raises(ValueError):
            twin.recv_into(target, 9)
        with pytest.raises(TypeError):
            twin.recv_into(b"read-only")
        assert twin.recv(6, timeout=5) == b"456789"

    def test_peek_recv(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"hello")
        flags = SocketFlag.PEEK | SocketFlag.SAFE_DISCONN
        assert twin.recv(5, timeout=5, flags=flags) == b"hello"
        assert twin.recv(5, timeout=5) == b"hello"

    def test_skip(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"0123456789tail")
        assert twin.skip(10, timeout=5) == 10
        peer.shutdown(socket.SHUT_WR)
        assert twin.skip(100, timeout=5) == 4
        assert twin.recv(1, timeout=5) == b""

    def test_mixed_lines_and_sizes(self, pair: Any) -> None:
        twin, peer = pair
        peer.sendall(b"$5\r\nhello\r\n" * 200)
        for _ in range(200):
            assert twin.recv_line(timeout=5) == b"$5"
            assert twin.recv(5, timeout=5) == b"hello"
            assert twin.recv_line(timeout=5) == b"\r\n"


class TestDisconnections:
    def test_reset_while_receiving_is_end_of_stream(self, kind: Any) -> None:
        from conftest import stdlib_pair

        ours, peer = stdlib_pair("tcp4")
        twin = kind.from_native(ours)
        peer.sendall(b"partial")
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # RST
        time.sleep(0.1)
        assert twin.recv_line(timeout=5) == b""
        twin.close()

    def test_reset_without_safe_disconn_raises(self, kind: Any) -> None:
        from conftest import stdlib_pair

        ours, peer = stdlib_pair("tcp4")
        twin = kind.from_native(ours)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        time.sleep(0.1)
        with pytest.raises(ConnectionResetError):
            twin.recv(10, timeout=5, flags=SocketFlag(0))
        twin.close()

    def test_send_into_reset_connection_raises(self, kind: Any) -> None:
        from conftest import stdlib_pair

        ours, peer = stdlib_pair("tcp4")
        twin = kind.from_native(ours)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        time.sleep(0.1)
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(100):
                twin.send(b"x" * 65536, timeout=5)
        assert twin.try_send(b"more") is False
        twin.close()

    def test_closed_socket_raises_socket_closed_error(self, pair: Any) -> None:
        twin, _ = pair
        twin.close()
        twin.close()  # idempotent
        assert twin.is_closed()
        calls: list[Callable[[], object]] = [
            lambda: twin.recv_line(),
            lambda: twin.recv(1),
            lambda: twin.send(b"x"),
            lambda: twin.read_line(),
            lambda: twin.get_local_addr(),
        ]
        for call in calls:
            with pytest.raises(SocketClosedError) as info:
                call()
            assert isinstance(info.value, OSError) and info.value.errno == 9
        assert twin.try_send(b"x") is False


class TestSending:
    def test_send_str_and_bytes_like(self, pair: Any) -> None:
        twin, peer = pair
        twin.send("héllo\n")
        twin.send(bytearray(b"ba"))
        twin.send(memoryview(b"mv\n"))
        peer.settimeout(5)
        data = b""
        while data.count(b"\n") < 2:
            data += peer.recv(100)
        assert data == "héllo\nbamv\n".encode()

    def test_send_bad_type(self, pair: Any) -> None:
        twin, _ = pair
        with pytest.raises(TypeError):
            twin.send(12345)

    def test_send_timeout_to_a_peer_that_does_not_read(self, pair: Any) -> None:
        twin, _ = pair
        with pytest.raises(NetTimeout):
            for _ in range(10_000):
                twin.send(b"z" * 65536, timeout=0.3)

    def test_addresses_and_state(self, pair: Any, family: str) -> None:
        twin, peer = pair
        if family == "unix":
            assert twin.get_peer_addr()[1] == 0
        else:
            assert twin.get_peer_addr() == peer.getsockname()[:2]
            assert twin.get_local_addr() == peer.getpeername()[:2]
        assert not twin.is_ssl()
        assert twin.get_peer_certificates() == []
        assert twin.get_psk_identity() is None
        assert twin.get_fd() == twin.fileno() >= 0
        assert not twin.has_data_buffered()
