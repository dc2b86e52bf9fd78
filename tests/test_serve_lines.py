"""net.serve_lines and asyncnet.serve_lines (SPEC section 11) over real loopback sockets.

Every test body runs over each kind (blocking, asyncio, uvloop; see
``served.py``) with stdlib sockets as clients.  The bars that need a server
process of its own (memory under a peer that never reads, ``run_server``)
are in ``test_serve_lines_process.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from served import Served, Tls, client, read_line
from twinsock import asyncnet, net
from twinsock.addresses import SocketAddress
from twinsock.errors import AddressError, SocketClosedError


@contextlib.contextmanager
def lines_server(
    kind: Any, on_line: Callable[..., Any], host: Any = "127.0.0.1", **options: Any
) -> Iterator[Served]:
    """A started line server of ``kind`` for the test's duration (shut down, grace 0, after)."""
    server = kind.call(kind.module.serve_lines, on_line, host, 0, **options)
    served = Served(kind, server)
    try:
        yield served
    finally:
        served.shutdown(0)


def echo(conn: Any, line: bytes) -> bytes:
    return line


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def ended(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True once the server closed the connection (FIN or RST) within ``timeout`` s."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


# -- lines in, replies out ----------------------------------------------------------------------


def test_a_thousand_pipelined_lines_come_back_in_order(kind: Any) -> None:
    request = b"".join(b"line %d\n" % i for i in range(1000))
    expected = b"".join(b"line %d\r\n" % i for i in range(1000))
    with lines_server(kind, echo) as served, client(served.port) as sock:
        sock.sendall(request)  # one burst
        assert read_exactly(sock, len(expected)) == expected
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # and nothing more


def test_an_empty_line_comes_back_once(kind: Any) -> None:
    seen: list[bytes] = []

    def record(conn: Any, line: bytes) -> bytes:
        seen.append(line)
        return line

    with lines_server(kind, record) as served, client(served.port) as sock:
        sock.sendall(b"\n\r\nend\n")
        assert read_exactly(sock, 9) == b"\r\n\r\nend\r\n"
    assert seen == [b"\r\n", b"\r\n", b"end"]  # as recv_line returns them


def test_a_str_return_is_sent_as_utf8(kind: Any) -> None:
    def greet(conn: Any, line: bytes) -> str:
        return "héllo " + line.decode()

    with lines_server(kind, greet) as served, client(served.port) as sock:
        sock.sendall(b"w\xc3\xb6rld\n")
        assert read_line(sock) == "héllo wörld\r\n".encode()


def test_send_and_send_line_inside_on_line_keep_their_order(kind: Any) -> None:
    def chatty(conn: Any, line: bytes) -> bytes:
        conn.send(b"raw:")
        conn.send_line(line.upper())
        conn.send_line(b"\r\n")  # the empty-line sentinel goes out once
        return b"done"

    with lines_server(kind, chatty) as served, client(served.port) as sock:
        sock.sendall(b"a\nb\n")
        expected = b"raw:A\r\n\r\ndone\r\nraw:B\r\n\r\ndone\r\n"
        assert read_exactly(sock, len(expected)) == expected


def test_state_is_per_connection_and_on_connect_on_close_are_called_once(kind: Any) -> None:
    events: list[tuple[str, int, Any]] = []

    def on_connect(conn: Any) -> None:
        conn.state["count"] = 0
        events.append(("connect", id(conn), None))

    def count(conn: Any, line: bytes) -> bytes:
        conn.state["count"] += 1
        return b"%d" % conn.state["count"]

    def on_close(conn: Any, exc: BaseException | None) -> None:
        events.append(("close", id(conn), exc))

    with lines_server(kind, count, on_connect=on_connect, on_close=on_close) as served:
        with client(served.port) as one, client(served.port) as two:
            one.sendall(b"a\nb\n")
            assert read_exactly(one, 6) == b"1\r\n2\r\n"
            two.sendall(b"x\n")
            assert read_exactly(two, 3) == b"1\r\n"
            one.sendall(b"c\n")
            assert read_exactly(one, 3) == b"3\r\n"
        served.wait_for(lambda s: s.closed == 2)
    connects = [e for e in events if e[0] == "connect"]
    closes = [e for e in events if e[0] == "close"]
    assert len(connects) == 2 and len({e[1] for e in connects}) == 2
    assert sorted(e[1] for e in closes) == sorted(e[1] for e in connects)
    assert [e[2] for e in closes] == [None, None]  # orderly ends


def test_peer_and_local_are_socket_addresses(kind: Any) -> None:
    seen: list[Any] = []

    def look(conn: Any) -> None:
        seen.extend([conn.peer, conn.local])

    with lines_server(kind, echo, on_connect=look) as served, client(served.port) as sock:
        sock.sendall(b"x\n")
        assert read_line(sock) == b"x\r\n"
        peer, local = seen
        assert peer == SocketAddress.create("127.0.0.1", sock.getsockname()[1])
        assert local == SocketAddress.create("127.0.0.1", served.port)


def test_a_unix_socket_gives_paths(kind: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "lines.sock")
    native = socket.socket(socket.AF_UNIX)
    native.bind(path)
    seen: list[Any] = []

    def look(conn: Any, line: bytes) -> bytes:
        seen.extend([conn.peer, conn.local])
        return line

    with lines_server(kind, look, sock=native), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b"unix\n")
        assert read_line(sock) == b"unix\r\n"
    assert seen == ["", path]


def test_a_callback_may_send_to_another_connection(kind: Any) -> None:
    members: list[Any] = []

    def join(conn: Any) -> None:
        members.append(conn)

    def broadcast(conn: Any, line: bytes) -> None:
        for other in members:
            if other is not conn:
                other.send_line(line)

    def leave(conn: Any, exc: BaseException | None) -> None:
        members.remove(conn)

    with (
        lines_server(kind, broadcast, on_connect=join, on_close=leave) as served,
        client(served.port) as one,
        client(served.port) as two,
    ):
        deadline = time.monotonic() + 5
        while len(members) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        one.sendall(b"hello\n")
        assert read_line(two) == b"hello\r\n"
        two.sendall(b"hi\n")
        assert read_line(one) == b"hi\r\n"


def test_close_in_on_line_sends_the_reply_and_stops_the_lines(kind: Any) -> None:
    seen: list[bytes] = []

    def quit_(conn: Any, line: bytes) -> bytes:
        seen.append(line)
        if line == b"quit":
            conn.close()
            assert conn.is_closed()
        return b"bye " + line

    with lines_server(kind, quit_) as served, client(served.port) as sock:
        sock.sendall(b"a\nquit\nafter\n")
        assert read_exactly(sock, 17) == b"bye a\r\nbye quit\r\n"
        assert ended(sock)
    assert seen == [b"a", b"quit"]


def test_send_on_a_closed_connection_raises(kind: Any) -> None:
    outcome: list[str] = []

    def on_close(conn: Any, exc: BaseException | None) -> None:
        for method in (conn.send, conn.send_line):
            try:
                method(b"late")
            except SocketClosedError:
                outcome.append("refused")
        outcome.append(f"closed={conn.is_closed()}")

    with lines_server(kind, echo, on_close=on_close) as served:
        with client(served.port) as sock:
            sock.sendall(b"x\n")
            assert read_line(sock) == b"x\r\n"
        served.wait_for(lambda s: s.closed == 1)
    assert outcome == ["refused", "refused", "closed=True"]


def test_byte_counters(kind: Any) -> None:
    counts: list[tuple[int, int]] = []

    def on_close(conn: Any, exc: BaseException | None) -> None:
        counts.append((conn.bytes_received, conn.bytes_sent))

    with lines_server(kind, echo, on_close=on_close) as served:
        with client(served.port) as sock:
            sock.sendall(b"abc\r\nde\n")
            assert read_exactly(sock, 9) == b"abc\r\nde\r\n"
        stats = served.wait_for(lambda s: s.closed == 1)
    if kind.name != "blocking" or hasattr(net.Socket, "bytes_received"):
        assert counts == [(8, 9)]
        assert (stats.bytes_received, stats.bytes_sent) == (8, 9)


# -- limits and failures ------------------------------------------------------------------------


def test_a_line_over_max_length_closes_only_its_connection(
    kind: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="twinsock.server")
    with lines_server(kind, echo, max_length=100) as served:
        with client(served.port) as good, client(served.port) as bad:
            good.sendall(b"before\n")
            assert read_line(good) == b"before\r\n"
            bad.sendall(b"ok\n" + b"x" * 300 + b"\n")
            assert read_line(bad) == b"ok\r\n"  # the lines before it are answered
            assert ended(bad)
            good.sendall(b"x" * 100 + b"\n")  # exactly the limit
            assert read_line(good) == b"x" * 100 + b"\r\n"
        stats = served.wait_for(lambda s: s.closed == 2)
        assert stats.handler_errors == 1
    ours = [r for r in caplog.records if r.name == "twinsock.server"]
    assert not [r for r in ours if r.levelno >= logging.WARNING]
    assert any(r.levelno == logging.DEBUG and "LineTooLong" in r.getMessage() for r in ours)


def test_call_timeout_closes_a_connection_that_completes_no_line(kind: Any) -> None:
    with lines_server(kind, echo, call_timeout=0.5) as served:
        with client(served.port) as steady, client(served.port) as stalled:
            stalled.sendall(b"half a li")
            began = time.monotonic()
            for i in range(5):  # a line every 0.3 s keeps a connection open past 0.5 s
                steady.sendall(b"%d\n" % i)
                assert read_line(steady) == b"%d\r\n" % i
                time.sleep(0.3)
            assert ended(stalled, timeout=3)
            assert time.monotonic() - began < 2.0
            steady.sendall(b"still\n")
            assert read_line(steady) == b"still\r\n"
        stats = served.wait_for(lambda s: s.closed == 2)
        assert stats.handler_errors == 1


def test_a_raising_on_line_is_logged_counted_and_closes_only_its_connection(
    kind: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="twinsock.server")
    closed_with: list[Any] = []

    def fragile(conn: Any, line: bytes) -> bytes:
        if line == b"boom":
            raise ValueError("on_line broke")
        return line

    def on_close(conn: Any, exc: BaseException | None) -> None:
        closed_with.append(exc)

    with lines_server(kind, fragile, on_close=on_close) as served:
        with client(served.port) as victim, client(served.port) as bystander:
            victim.sendall(b"first\nboom\nnever\n")
            assert read_line(victim) == b"first\r\n"
            assert ended(victim)
            bystander.sendall(b"fine\n")
            assert read_line(bystander) == b"fine\r\n"
        stats = served.wait_for(lambda s: s.closed == 2)
        assert stats.handler_errors == 1
    errors = [r for r in caplog.records
              if r.name == "twinsock.server" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError
    assert "on_line broke" in caplog.text and "Traceback" in caplog.text
    assert len(closed_with) == 2 and None in closed_with
    assert any(isinstance(exc, ValueError) for exc in closed_with)


def test_a_raising_on_connect_or_on_close_is_counted(kind: Any) -> None:
    def bad_connect(conn: Any) -> None:
        raise RuntimeError("on_connect broke")

    with lines_server(kind, echo, on_connect=bad_connect) as served:
        with client(served.port) as sock:
            assert ended(sock)
        stats = served.wait_for(lambda s: s.closed == 1)
        assert stats.handler_errors == 1

    def bad_close(conn: Any, exc: BaseException | None) -> None:
        raise RuntimeError("on_close broke")

    with lines_server(kind, echo, on_close=bad_close) as served:
        with client(served.port) as sock:
            sock.sendall(b"x\n")
            assert read_line(sock) == b"x\r\n"
        stats = served.wait_for(lambda s: s.closed == 1)
        assert stats.handler_errors == 1


def test_max_connections_leaves_the_next_client_queued(kind: Any) -> None:
    with lines_server(kind, echo, max_connections=1) as served:
        first = client(served.port)
        first.sendall(b"one\n")
        assert read_line(first) == b"one\r\n"
        with client(served.port) as second:
            second.sendall(b"two\n")
            second.settimeout(0.5)
            with pytest.raises(TimeoutError):
                second.recv(1)  # in the backlog, not served
            first.close()
            second.settimeout(5)
            assert read_line(second) == b"two\r\n"
        stats = served.wait_for(lambda s: s.closed == 2)
        assert stats.accepted == 2


def test_shutdown_ends_idle_connections_and_lets_a_half_line_finish(kind: Any) -> None:
    closes: list[Any] = []

    def on_close(conn: Any, exc: BaseException | None) -> None:
        closes.append(exc)

    served = Served(kind, kind.call(kind.module.serve_lines, echo, on_close=on_close))
    with client(served.port) as idle, client(served.port) as busy:
        idle.sendall(b"x\n")
        busy.sendall(b"y\n")
        assert read_line(idle) == b"x\r\n" and read_line(busy) == b"y\r\n"
        busy.sendall(b"hal")
        time.sleep(0.1)
        stopper = threading.Thread(target=served.shutdown, args=(5.0,))
        began = time.monotonic()
        stopper.start()
        if kind.name != "blocking":  # the async twin closes idle connections at once
            assert ended(idle, timeout=1)
            assert time.monotonic() - began < 1
        busy.sendall(b"f\n")
        assert read_line(busy) == b"half\r\n"  # the line in progress is answered
        # The blocking twin closes what is left when the 5 s grace ends: wait past it.
        assert ended(busy, timeout=10)
        assert ended(idle, timeout=10)
        stopper.join(10)
        assert not stopper.is_alive()
    assert closes == [None, None]
    assert served.stats.active == 0


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return Tls(tmp_path_factory.mktemp("lines-tls"))


def test_tls_lines_with_stalled_handshakes_beside(kind: Any, tls: Tls) -> None:
    connected: list[bool] = []
    options = {"ssl_context": tls.server_context(), "handshake_timeout": 0.5,
               "on_connect": lambda conn: connected.append(True)}
    with lines_server(kind, echo, **options) as served:
        stalled = [client(served.port) for _ in range(3)]  # never say hello
        served.wait_for(lambda s: s.active == 3)
        began = time.monotonic()
        with tls.client(served.port) as tls_sock:
            tls_sock.sendall(b"".join(b"secret %d\n" % i for i in range(100)))
            expected = b"".join(b"secret %d\r\n" % i for i in range(100))
            assert read_exactly(tls_sock, len(expected)) == expected
        assert time.monotonic() - began < 0.5
        for sock in stalled:
            assert ended(sock, timeout=3)  # their handshake time ran out
            sock.close()
        stats = served.wait_for(lambda s: s.closed == 4)
        assert stats.handshake_failures == 3
        assert connected == [True]


def test_tls_garbage_is_a_handshake_failure(kind: Any, tls: Tls) -> None:
    with lines_server(kind, echo, ssl_context=tls.server_context()) as served:
        with client(served.port) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert ended(sock)
        stats = served.wait_for(lambda s: s.closed == 1)
        assert stats.handshake_failures == 1 and stats.handler_errors == 0


# -- the blocking twin, and what is refused -----------------------------------------------------


def test_the_blocking_twin_answers_lines_in_a_thread_per_connection() -> None:
    threads: list[int] = []

    def where(conn: Any, line: bytes) -> bytes:
        threads.append(threading.get_ident())
        return line

    with (
        net.serve_lines(where) as server,
        client(server.port) as one,
        client(server.port) as two,
    ):
        one.sendall(b"a\n")
        two.sendall(b"b\n")
        assert read_line(one) == b"a\r\n" and read_line(two) == b"b\r\n"
    assert len(set(threads)) == 2
    assert threading.main_thread().ident not in threads


async def coroutine_on_line(conn: Any, line: bytes) -> bytes:
    await asyncio.sleep(0)
    return line


class AsyncCallable:
    async def __call__(self, conn: Any, line: bytes) -> bytes:
        return line


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((coroutine_on_line,), {}, TypeError, "on_line"),
        ((AsyncCallable(),), {}, TypeError, "on_line"),
        (("not callable",), {}, TypeError, "on_line"),
        ((echo,), {"on_connect": 3}, TypeError, "on_connect"),
        ((echo,), {"on_close": coroutine_on_line}, TypeError, "on_close"),
        ((echo,), {"max_length": 0}, ValueError, "max_length"),
        ((echo,), {"max_length": "long"}, TypeError, "max_length"),
        ((echo, "127.0.0.1", 70000), {}, AddressError, None),
        ((echo, "999.1.1.1"), {}, AddressError, None),
        ((echo,), {"max_connections": 0}, ValueError, "max_connections"),
        ((echo,), {"call_timeout": -1}, ValueError, "call_timeout"),
        ((echo,), {"handshake_timeout": "soon"}, TypeError, "handshake_timeout"),
        ((echo,), {"ssl_context": ssl.create_default_context()}, TypeError, "ssl_context"),
        ((echo,), {"sock": "127.0.0.1:80"}, TypeError, None),
        ((echo,), {"no_such_option": 1}, TypeError, None),
    ],
)
def test_bad_serve_lines_arguments(
    kind: Any, args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception],
    match: str | None
) -> None:
    with pytest.raises(error, match=match):
        kind.call(kind.module.serve_lines, *args, **kwargs)


def test_the_twins_have_one_face() -> None:
    import inspect

    assert inspect.signature(net.serve_lines).parameters.keys() == (
        inspect.signature(asyncnet.serve_lines).parameters.keys())
    serve_options = list(inspect.signature(net.serve).parameters)[3:]
    assert list(inspect.signature(net.serve_lines).parameters)[6:] == serve_options
    public = {"send_line", "send", "close", "is_closed", "peer", "local", "state",
              "bytes_received", "bytes_sent"}
    for cls in (net.LineConnection, asyncnet.LineConnection):
        assert {name for name in dir(cls) if not name.startswith("_")} == public
    for module in (net, asyncnet):
        assert {"serve_lines", "LineConnection"} <= set(module.__all__)
    assert inspect.iscoroutinefunction(asyncnet.serve_lines)
