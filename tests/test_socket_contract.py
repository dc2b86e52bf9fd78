"""SPEC sections 0 and 3 as issue 9 made them exact, on both socket kinds.

Timeouts (``default_timeout``, ``math.inf``, values too large for the OS,
bad values refused before any fast path), the ``bytes_received`` /
``bytes_sent`` counters, ``recv`` memory, an exact ``has_data_buffered``,
``recv_until`` and ``send_line``, and how endpoints read in timeout messages.

Every test runs over real loopback sockets for each socket kind (blocking,
asyncio, uvloop) through the ``kind`` fixture; the peer is a stdlib socket.
"""

from __future__ import annotations

import array
import math
import socket
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import stdlib_pair
from openssl_peer import OPENSSL
from test_conformance import every_split, send_in_pieces
from test_net import unanswering
from test_tls_sockets import (
    Background,
    partner_of,
    psk_client_context,
    psk_server_context,
    tls_client,
    twin_server,
    wrap,
    wrap_connected,
)
from twins import make_kind
from twinsock import simple
from twinsock.addresses import SocketAddress
from twinsock.errors import LineTooLong, NetTimeout
from twinsock.nativesockets import Domain, Protocol, SockType
from twinsock.net import ReadLineResult, SocketFlag
from twinsock.tls import HandshakeType, ProtVersion

V4 = "127.0.0.1"
HUGE = [2.0**31, 1e300, math.inf]
BAD_VALUES: list[tuple[Any, type[Exception]]] = [
    (-1, ValueError),
    (-0.001, ValueError),
    (math.nan, ValueError),
    ("1", TypeError),
    (True, TypeError),
    ([1], TypeError),
]


# -- helpers ------------------------------------------------------------------------------------


def raw(sock: Any) -> Any:
    """The real socket behind an async proxy (attributes are set on it)."""
    return getattr(sock, "_target", sock)


def set_default(sock: Any, value: Any) -> None:
    raw(sock).default_timeout = value


def later(delay: float, fn: Callable[[], Any]) -> threading.Thread:
    """Run ``fn`` in a daemon thread after ``delay`` seconds."""

    def run() -> None:
        time.sleep(delay)
        fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def read_exactly(peer: socket.socket, size: int) -> bytes:
    peer.settimeout(10)
    out = b""
    while len(out) < size:
        chunk = peer.recv(size - len(out))
        assert chunk, out
        out += chunk
    return out


@pytest.fixture
def tcp_pair(kind: Any) -> Iterator[tuple[Any, socket.socket]]:
    """(twinsock socket, stdlib peer) over TCP IPv4, for rules no family changes."""
    ours, peer = stdlib_pair("tcp4")
    twin = kind.from_native(ours)
    yield twin, peer
    twin.close()
    peer.close()


@pytest.fixture(scope="module")
def partners() -> Iterator[dict[str, Any]]:
    """A blocking and an async kind, for the other end of twinsock-to-twinsock tests."""
    kinds = {"blocking": make_kind("blocking"), "asyncio": make_kind("asyncio")}
    yield kinds
    for k in kinds.values():
        k.close()


@pytest.fixture
def listener(kind: Any) -> Iterator[Any]:
    sock = kind.new()
    sock.bind_addr(0, V4)
    sock.listen()
    yield sock
    sock.close()


# -- timeouts: default_timeout ------------------------------------------------------------------


def test_default_timeout_is_a_checked_setting(kind: Any) -> None:
    from twinsock._core.deadline import MAX_TIMEOUT

    with kind.new() as sock:
        assert sock.default_timeout is None
        set_default(sock, 0.25)
        assert sock.default_timeout == 0.25
        set_default(sock, 3)
        assert sock.default_timeout == 3.0
        set_default(sock, 2**40)
        assert sock.default_timeout == MAX_TIMEOUT  # clamped
        set_default(sock, math.inf)
        assert sock.default_timeout is None  # no limit
        set_default(sock, 1.5)
        for bad, error in BAD_VALUES:
            with pytest.raises(error):
                set_default(sock, bad)
            assert sock.default_timeout == 1.5  # unchanged
        set_default(sock, None)
        assert sock.default_timeout is None


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("recv_line", lambda s: s.recv_line()),
        ("recv", lambda s: s.recv(5)),
        ("recv_into", lambda s: s.recv_into(bytearray(5))),
        ("skip", lambda s: s.skip(5)),
        ("recv_until", lambda s: s.recv_until(b"|")),
    ],
)
def test_none_means_the_default_timeout(
    tcp_pair: tuple[Any, socket.socket], operation: str, call: Callable[[Any], Any]
) -> None:
    twin, peer = tcp_pair
    peer.sendall(b"ab")  # not enough for any of these calls
    set_default(twin, 0.2)
    started = time.monotonic()
    with pytest.raises(NetTimeout) as info:
        call(twin)
    assert time.monotonic() - started < 3.0
    assert operation in str(info.value)
    set_default(twin, None)
    if operation != "skip":  # skip discards what it skipped before the timeout
        assert twin.recv(2, timeout=5) == b"ab"  # nothing was lost


def test_default_timeout_of_read_line_accept_and_connect(kind: Any, listener: Any) -> None:
    ours, peer = stdlib_pair("tcp4")
    twin = kind.from_native(ours)
    with twin, peer:
        set_default(twin, 0.2)
        assert twin.read_line() == (ReadLineResult.NONE, b"")
    set_default(listener, 0.2)
    with pytest.raises(NetTimeout, match="accept"):
        listener.accept()
    with unanswering(V4) as port, kind.new() as sock:
        set_default(sock, 0.2)
        started = time.monotonic()
        with pytest.raises(NetTimeout):
            sock.connect(V4, port)
        assert time.monotonic() - started < 3.0


def test_infinite_timeout_waits_even_with_a_default(tcp_pair: tuple[Any, socket.socket]) -> None:
    twin, peer = tcp_pair
    set_default(twin, 0.1)
    sender = later(0.5, lambda: peer.sendall(b"late\n"))
    assert twin.recv_line(timeout=math.inf) == b"late"
    sender.join()


def test_zero_timeout_takes_what_is_there_and_does_not_wait(
    tcp_pair: tuple[Any, socket.socket],
) -> None:
    twin, peer = tcp_pair
    peer.sendall(b"one\ntwo\n")
    assert twin.recv_line(timeout=5) == b"one"
    assert twin.recv_line(timeout=0) == b"two"
    started = time.monotonic()
    with pytest.raises(NetTimeout):
        twin.recv_line(timeout=0)
    assert time.monotonic() - started < 1.0


# -- timeouts: too large for the OS -------------------------------------------------------------


@pytest.mark.parametrize("timeout", HUGE, ids=["2**31", "1e300", "inf"])
def test_huge_timeouts_wait_without_overflow(
    kind: Any, listener: Any, timeout: float
) -> None:
    port = listener.get_local_addr()[1]
    clients: list[socket.socket] = []
    connector = later(0.2, lambda: clients.append(socket.create_connection((V4, port), 5)))
    conn = listener.accept(timeout=timeout)  # waits: the client comes later
    connector.join()
    client = clients[0]
    with conn, client:
        later(0.2, lambda: client.sendall(b"line\n"))
        assert conn.recv_line(timeout=timeout) == b"line"
        later(0.2, lambda: client.sendall(b"12345"))
        assert conn.recv(5, timeout=timeout) == b"12345"
        later(0.2, lambda: client.sendall(b"a|"))
        assert conn.recv_until(b"|", timeout=timeout) == b"a|"
        # send waits once the peer's buffers are full, until the peer reads
        payload = b"x" * (16 * 1024 * 1024)
        reader = later(0.3, lambda: read_exactly(client, len(payload)))
        conn.send(payload, timeout=timeout)
        reader.join(30)
        assert not reader.is_alive()


@pytest.mark.parametrize("timeout", HUGE, ids=["2**31", "1e300", "inf"])
def test_huge_timeouts_connect_dial_and_datagrams(kind: Any, timeout: float) -> None:
    with socket.create_server((V4, 0)) as server:
        port = server.getsockname()[1]
        with kind.new() as sock:
            sock.connect(V4, port, timeout=timeout)
            assert sock.get_peer_addr() == (V4, port)
        with kind.call(kind.module.dial, V4, port, timeout=timeout) as dialled:
            assert dialled.get_peer_addr() == (V4, port)
    with kind.new(Domain.AF_INET, SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP) as udp:
        udp.bind_addr(0, V4)
        target = udp.get_local_addr()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            later(0.2, lambda: sender.sendto(b"datagram", target))
            assert udp.recv_from(100, timeout=timeout)[0] == b"datagram"


@pytest.mark.parametrize("timeout", HUGE, ids=["2**31", "1e300", "inf"])
def test_huge_timeouts_in_simple(timeout: float) -> None:
    with simple.listen(SocketAddress.create(V4, 0)) as server:
        address = server.addr
        conns: list[Any] = []
        connector = later(0.2, lambda: conns.append(simple.connect(address, timeout=timeout)))
        accepted = server.accept(timeout=timeout)
        connector.join()
        with accepted, conns[0]:
            assert accepted.addr.port == conns[0].get_local_addr()[1]
    with simple.UdpSocket() as udp, simple.UdpSocket() as sender:
        simple.bind(udp, SocketAddress.create(V4, 0))
        target = simple.get_sock_name(udp)
        later(0.2, lambda: sender.send(b"hi", target, timeout=timeout))
        assert udp.recv(10, timeout=timeout) == b"hi"


# -- timeouts: bad values, before anything else -------------------------------------------------


@pytest.mark.parametrize(("bad", "error"), BAD_VALUES, ids=lambda v: repr(v))
def test_bad_timeouts_are_refused_before_the_buffer_answers(
    tcp_pair: tuple[Any, socket.socket], bad: Any, error: type[Exception]
) -> None:
    twin, peer = tcp_pair
    peer.sendall(b"first\r\nsecond\r\nthird|")
    assert twin.recv_line(timeout=5) == b"first"  # "second" now waits in the buffer
    calls: list[Callable[[], Any]] = [
        lambda: twin.recv_line(timeout=bad),
        lambda: twin.recv_line_into(bytearray(), timeout=bad),
        lambda: twin.read_line(timeout=bad),
        lambda: twin.recv(3, timeout=bad),
        lambda: twin.recv_into(bytearray(3), timeout=bad),
        lambda: twin.recv_until(b"\n", timeout=bad),
        lambda: twin.skip(1, timeout=bad),
        lambda: twin.send(b"x", timeout=bad),
        lambda: twin.send_line(b"x", timeout=bad),
    ]
    for call in calls:
        with pytest.raises(error):
            call()
    assert twin.recv_line(timeout=5) == b"second"  # nothing was consumed
    assert twin.bytes_sent == 0
    twin.close()
    with pytest.raises(error):
        twin.recv_line(timeout=bad)  # the timeout is checked before the closed socket


def test_bad_timeouts_for_accept_connect_and_dial(kind: Any, listener: Any) -> None:
    for bad, error in BAD_VALUES:
        with pytest.raises(error):
            listener.accept(timeout=bad)
        with kind.new() as sock, pytest.raises(error):
            sock.connect(V4, listener.get_local_addr()[1], timeout=bad)
        with pytest.raises(error):
            kind.call(kind.module.dial, V4, listener.get_local_addr()[1], timeout=bad)


# -- the byte counters --------------------------------------------------------------------------


def test_counters_count_application_bytes(pair: tuple[Any, socket.socket]) -> None:
    twin, peer = pair
    assert (twin.bytes_received, twin.bytes_sent) == (0, 0)
    big = bytes(range(256)) * 1024  # 256 KiB: recv_into reads it straight into the caller's memory
    stream = b"line one\r\n" + b"peeked" + b"rec|" + big + b"tail"

    def send_all() -> None:
        peer.sendall(stream)
        peer.shutdown(socket.SHUT_WR)

    sender = later(0, send_all)
    assert twin.recv_line(timeout=5) == b"line one"
    flags = SocketFlag.PEEK | SocketFlag.SAFE_DISCONN
    assert twin.recv(6, timeout=5, flags=flags) == b"peeked"
    assert twin.recv(6, timeout=5) == b"peeked"  # a peeked byte counts once
    assert twin.recv_until(b"|", timeout=5) == b"rec|"
    target = bytearray(len(big))
    assert twin.recv_into(target, timeout=5) == len(big)
    assert twin.recv(100, timeout=5) == b"tail"
    assert twin.recv(100, timeout=5) == b""
    sender.join()
    assert twin.bytes_received == len(stream)

    sent = [b"bytes", "str é", bytearray(b"ba"), memoryview(array.array("i", [1, 2]))]
    for data in sent:
        twin.send(data)
    twin.send_line(b"line")
    twin.send_line(b"\r\n")
    assert twin.try_send(b"tried")
    with pytest.raises(TypeError):  # a wrong type is a TypeError on both kinds, not False
        twin.try_send(123)
    expected = b"bytes" + "str é".encode() + b"ba" + array.array("i", [1, 2]).tobytes()
    expected += b"line\r\n" + b"\r\n" + b"tried"
    assert read_exactly(peer, len(expected)) == expected
    assert twin.bytes_sent == len(expected)
    twin.close()
    assert (twin.bytes_received, twin.bytes_sent) == (len(stream), len(expected))


def test_counters_of_an_unbuffered_socket(unbuffered_pair: tuple[Any, socket.socket]) -> None:
    twin, peer = unbuffered_pair
    peer.sendall(b"abc\ndefgh")
    peer.shutdown(socket.SHUT_WR)
    assert twin.recv_line(timeout=5) == b"abc"
    got = b""
    while chunk := twin.recv(100, timeout=5):
        got += chunk
    assert got == b"defgh"
    assert twin.bytes_received == 9


def test_counters_of_datagram_sockets(kind: Any) -> None:
    udp = (Domain.AF_INET, SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP)
    with kind.new(*udp) as receiver, kind.new(*udp) as sender:
        receiver.bind_addr(0, V4)
        port = receiver.get_local_addr()[1]
        sender.send_to(V4, port, b"12345")
        sender.send_to(V4, port, "é")
        assert receiver.recv_from(100, timeout=5)[0] == b"12345"
        assert receiver.recv_from(100, timeout=5)[0] == "é".encode()
        assert (sender.bytes_sent, receiver.bytes_received) == (7, 7)


@pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")
def test_counters_count_plaintext_on_tls(kind: Any, partners: dict[str, Any]) -> None:
    """Application bytes, not records: the TLS overhead is not counted."""
    version = ProtVersion.TLSV1_3

    def relay(conn: Any) -> tuple[int, int]:
        while line := conn.recv_line(timeout=10):
            conn.send_line(line)
        return conn.bytes_received, conn.bytes_sent

    lines = [b"hello", b"x" * 3000, b"\r\n"]  # the empty line goes out as one CRLF
    size = sum(len(line) + 2 for line in lines) - 2
    with twin_server(partner_of(kind, partners), psk_server_context(version), relay) as (
        port,
        results,
    ), tls_client(kind, psk_client_context(version), port, V4) as sock:
        for line in lines:
            sock.send_line(line)
        assert [sock.recv_line(timeout=10) for _ in lines] == lines
        assert (sock.bytes_sent, sock.bytes_received) == (size, size)
        sock.close()
    assert results == [(size, size)]


@pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")
def test_counters_skip_ciphertext_that_came_before_wrapping(
    kind: Any, partners: dict[str, Any]
) -> None:
    """A server that wraps an accepted connection late has the ClientHello in its
    read buffer already (the async transport reads at once): that is not
    application data."""
    version = ProtVersion.TLSV1_3
    partner = partner_of(kind, partners)
    with kind.new() as listener:
        listener.bind_addr(0, V4)
        listener.listen()
        client = partner.new()
        with client:
            wrap(partner, psk_client_context(version), client)
            port = listener.get_local_addr()[1]
            connecting = Background(lambda: client.connect(V4, port, timeout=10))
            with listener.accept(timeout=10) as conn:
                time.sleep(0.3)  # the ClientHello arrives before the server wraps
                wrap_connected(kind, psk_server_context(version), conn, HandshakeType.SERVER)
                connecting.result()
                client.send_line(b"hi")
                assert conn.recv_line(timeout=10) == b"hi"
                assert conn.bytes_received == 4


# -- recv memory --------------------------------------------------------------------------------


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_a_huge_recv_allocates_only_what_arrives(kind: Any, buffered: bool) -> None:
    ours, peer = stdlib_pair("tcp4")
    twin = kind.from_native(ours, buffered=buffered)
    with twin, peer:
        peer.sendall(b"abc")
        time.sleep(0.05)
        tracemalloc.start()
        try:
            started = time.monotonic()
            if buffered:
                with pytest.raises(NetTimeout):
                    twin.recv(2**31, timeout=1)
            else:
                assert twin.recv(2**31, timeout=1) == b"abc"
            elapsed = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 * 1024 * 1024, f"recv(2**31) allocated {peak:,} bytes"
        assert elapsed < 3.0  # the timeout, not an allocation, bounds the call
        if buffered:
            assert twin.recv(3, timeout=5) == b"abc"  # the bytes stayed buffered


# -- has_data_buffered --------------------------------------------------------------------------


def test_has_data_buffered_is_exact(tcp_pair: tuple[Any, socket.socket]) -> None:
    twin, peer = tcp_pair
    peer.sendall(b"a\nb\nc\n")
    assert twin.recv_line(timeout=5) == b"a"
    # b and c may still be on their way; wait until both are buffered
    assert twin.recv(4, timeout=5, flags=SocketFlag.PEEK | SocketFlag.SAFE_DISCONN) == b"b\nc\n"
    assert twin.has_data_buffered()
    assert twin.recv_line(timeout=5) == b"b"
    assert twin.has_data_buffered()
    assert twin.recv_line(timeout=5) == b"c"
    assert not twin.has_data_buffered()  # the last buffered line was read
    peer.sendall(b"part")
    with pytest.raises(NetTimeout):
        twin.recv_line(timeout=0.2)
    assert twin.has_data_buffered()


# -- recv_until ---------------------------------------------------------------------------------


def test_recv_until_reads_records(tcp_pair: tuple[Any, socket.socket]) -> None:
    twin, peer = tcp_pair
    head = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"
    peer.sendall(head + b"body--end--")
    peer.shutdown(socket.SHUT_WR)
    assert twin.recv_until(b"\r\n\r\n", timeout=5) == head
    assert twin.recv_until(bytearray(b"--end--"), timeout=5) == b"body--end--"
    assert twin.recv_until(b"|", timeout=5) == b""  # end of stream, nothing buffered


def test_recv_until_at_the_end_of_a_stream_keeps_the_partial(
    tcp_pair: tuple[Any, socket.socket],
) -> None:
    from twinsock.errors import IncompleteRead

    twin, peer = tcp_pair
    peer.sendall(b"rec1;rec2")
    peer.shutdown(socket.SHUT_WR)
    assert twin.recv_until(b";", timeout=5) == b"rec1;"
    with pytest.raises(IncompleteRead) as info:
        twin.recv_until(b";", timeout=5)
    assert info.value.partial == b"rec2"
    assert isinstance(info.value, EOFError)
    assert twin.recv(100, timeout=5) == b"rec2"  # still buffered
    assert twin.recv_until(b";", timeout=5) == b""


def test_recv_until_too_long_consumes_nothing(tcp_pair: tuple[Any, socket.socket]) -> None:
    twin, peer = tcp_pair
    peer.sendall(b"0123456789;rest;")
    with pytest.raises(LineTooLong) as info:
        twin.recv_until(b";", timeout=5, max_length=5)
    assert info.value.max_length == 5
    assert twin.recv_until(b";", timeout=5, max_length=10) == b"0123456789;"
    assert twin.recv_until(b";", timeout=5, max_length=4) == b"rest;"


def test_recv_until_peek_timeout_and_bad_arguments(tcp_pair: tuple[Any, socket.socket]) -> None:
    twin, peer = tcp_pair
    peer.sendall(b"abc::def")
    peek = SocketFlag.PEEK | SocketFlag.SAFE_DISCONN
    assert twin.recv_until(b"::", timeout=5, flags=peek) == b"abc::"
    assert twin.recv_until(b"::", timeout=5) == b"abc::"
    started = time.monotonic()
    with pytest.raises(NetTimeout) as info:
        twin.recv_until(b"::", timeout=0.2)
    assert time.monotonic() - started < 3.0
    assert "recv_until" in str(info.value)
    with pytest.raises(ValueError):
        twin.recv_until(b"", timeout=5)
    with pytest.raises(TypeError):
        twin.recv_until("::", timeout=5)
    with pytest.raises(TypeError):
        twin.recv_until(None, timeout=5)
    with pytest.raises(ValueError):
        twin.recv_until(b"::", timeout=5, max_length=-1)
    assert twin.recv(3, timeout=5) == b"def"  # nothing was lost


@pytest.mark.parametrize("split", ["whole", "bytewise", "every-position"])
def test_recv_until_whatever_the_split(kind: Any, family: str, split: str) -> None:
    stream = b"a<>bb<><>ccc<"
    cases = list(every_split(stream))
    chosen = {"whole": cases[:1], "bytewise": cases[1:2], "every-position": cases[2:]}[split]
    for pieces in chosen:
        ours, peer = stdlib_pair(family)
        twin = kind.from_native(ours)
        try:
            send_in_pieces(peer, pieces, pause=0.001).join()
            peer.shutdown(socket.SHUT_WR)
            got = [twin.recv_until(b"<>", timeout=5) for _ in range(3)]
            assert got == [b"a<>", b"bb<>", b"<>"], pieces
            assert twin.recv(10, timeout=5) == b"ccc<"
        finally:
            twin.close()
            peer.close()


# -- send_line ----------------------------------------------------------------------------------


def test_relaying_lines_with_send_line_keeps_them_as_they_were(
    tcp_pair: tuple[Any, socket.socket],
) -> None:
    twin, peer = tcp_pair
    peer.sendall(b"one\r\n\r\ntwo\n\nthree\r\n")
    for _ in range(5):
        twin.send_line(twin.recv_line(timeout=5))
    expected = b"one\r\n\r\ntwo\r\n\r\nthree\r\n"  # the empty lines stay single
    assert read_exactly(peer, len(expected)) == expected


def test_send_line_data_types(tcp_pair: tuple[Any, socket.socket]) -> None:
    twin, peer = tcp_pair
    twin.send_line("héllo")
    twin.send_line(b"\r\n")
    twin.send_line(bytearray(b"ba"))
    twin.send_line(memoryview(b"mv"))
    twin.send_line(b"")
    expected = "héllo".encode() + b"\r\n" + b"\r\n" + b"ba\r\n" + b"mv\r\n" + b"\r\n"
    assert read_exactly(peer, len(expected)) == expected
    with pytest.raises(TypeError):
        twin.send_line(42)


# -- endpoints in messages ----------------------------------------------------------------------


def test_socketpair_endpoints_read_sensibly(kind: Any) -> None:
    ours, peer = socket.socketpair()
    twin = kind.from_native(ours)
    with twin, peer:
        with pytest.raises(NetTimeout) as info:
            twin.recv_line(timeout=0.05)
        message = str(info.value)
        assert "(unnamed) -> (unnamed)" not in message
        assert message.startswith("recv_line")
        if kind.name == "blocking":  # the blocking shell names the endpoints
            assert f"unix fd {ours.fileno()} (unnamed)" in message


def test_named_and_abstract_unix_endpoints_in_messages(kind: Any) -> None:
    name = f"\0twinsock-{uuid.uuid4().hex}"  # a Linux abstract name: no file to clean up
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(name)
        server.listen()
        with kind.new(Domain.AF_UNIX) as client:
            client.connect_unix(name, timeout=5)
            with pytest.raises(NetTimeout) as info:
                client.recv_line(timeout=0.05)
    if kind.name == "blocking":
        assert f"(unnamed) -> @{name[1:]}" in str(info.value)
    assert "\0" not in str(info.value)
