"""net.serve and asyncnet.serve (SPEC section 10) over real loopback sockets.

Every test body runs over each kind (blocking, asyncio, uvloop; see
``served.py``) with stdlib sockets as clients.  The bars of issue 10 that
need a process of their own (descriptor limit, signals, workers) are in
``test_server_process.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from served import ECHO, Pair, Tls, ask, client, handler_of, read_line, serving
from twinsock import asyncnet, net
from twinsock._core.serving import HANDLER_END_WAIT
from twinsock.errors import AddressError, SocketClosedError

# -- serving many clients -------------------------------------------------------------------


def test_serve_echoes_for_many_clients_at_once(kind: Any) -> None:
    with serving(kind, ECHO) as served:
        assert served.call("is_serving") is True
        clients = [client(served.port) for _ in range(20)]
        for round_ in range(3):
            for i, sock in enumerate(clients):
                assert ask(sock, b"%d-%d" % (i, round_)) == b"%d-%d\r\n" % (i, round_)
        for sock in clients:
            sock.close()
        stats = served.wait_for(lambda s: s.closed == 20)
        assert stats.accepted == 20 and stats.active == 0
        assert stats.handler_errors == 0 and stats.accept_errors == 0
        # Application bytes each way ("0-0\n" in, "0-0\r\n" out, ...).
        assert stats.bytes_received == sum(len(b"%d-%d\n" % (i, r)) for i in range(20)
                                           for r in range(3))
        assert stats.bytes_sent == stats.bytes_received + 60


def test_connections_are_buffered_twinsock_sockets_without_nagle(kind: Any) -> None:
    seen: list[tuple[str, bool, bool]] = []

    def look(conn: Any) -> None:
        nodelay = conn.get_sock_opt(net.SockOpt.NO_DELAY)
        seen.append((type(conn).__name__, conn.buffered, nodelay))
        conn.send(b"ok\n")

    async def async_look(conn: Any) -> None:
        nodelay = conn.get_sock_opt(net.SockOpt.NO_DELAY)
        seen.append((type(conn).__name__, conn.buffered, nodelay))
        await conn.send(b"ok\n")

    with serving(kind, (look, async_look)) as served, client(served.port) as sock:
        assert read_line(sock) == b"ok\n"
    expected = "Socket" if kind.name == "blocking" else "AsyncSocket"
    assert seen == [(expected, True, True)]


# -- handler exceptions ------------------------------------------------------------------------


def raiser(conn: Any) -> None:
    while line := conn.recv_line():
        if line == b"boom":
            raise ValueError("the handler broke")
        if line == b"reset":
            raise ConnectionResetError(104, "Connection reset by peer")
        conn.send(line + b"\r\n")


async def async_raiser(conn: Any) -> None:
    while line := await conn.recv_line():
        if line == b"boom":
            raise ValueError("the handler broke")
        if line == b"reset":
            raise ConnectionResetError(104, "Connection reset by peer")
        await conn.send(line + b"\r\n")


RAISER: Pair = (raiser, async_raiser)


def test_a_handler_that_raises_is_logged_with_traceback_counted_and_the_next_is_served(
    kind: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="twinsock.server")
    with serving(kind, RAISER) as served:
        with client(served.port) as sock:
            assert ask(sock, b"boom") == b""  # the server closed the connection
        served.wait_for(lambda s: s.closed == 1)
        with client(served.port) as sock:
            assert ask(sock, b"next") == b"next\r\n"
        assert served.stats.handler_errors == 1
    errors = [
        r for r in caplog.records if r.name == "twinsock.server" and r.levelno >= logging.ERROR
    ]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError
    assert "the handler broke" in caplog.text and "Traceback" in caplog.text


def test_a_disconnection_escaping_the_handler_is_logged_at_debug(
    kind: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="twinsock.server")
    with serving(kind, RAISER) as served:
        with client(served.port) as sock:
            assert ask(sock, b"reset") == b""
        served.wait_for(lambda s: s.closed == 1)
        assert served.stats.handler_errors == 1
    ours = [r for r in caplog.records if r.name == "twinsock.server"]
    assert not [r for r in ours if r.levelno >= logging.WARNING]
    assert any(r.levelno == logging.DEBUG and "ConnectionResetError" in r.getMessage()
               for r in ours)


def test_logging_lines(kind: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="twinsock.server")
    with serving(kind, ECHO) as served:
        port = served.port
        with client(port) as sock:
            assert ask(sock, b"hello") == b"hello\r\n"
        served.wait_for(lambda s: s.closed == 1)
    ours = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "twinsock.server"]
    assert (logging.INFO, f"listening on 127.0.0.1:{port}") in ours
    connection = [m for level, m in ours if level == logging.DEBUG and "closed after" in m]
    assert len(connection) == 1
    assert connection[0].startswith("127.0.0.1:") and "6 bytes in, 7 bytes out" in connection[0]
    stopped = [m for level, m in ours if level == logging.INFO and m.startswith("stopped")]
    assert stopped == [
        f"stopped serving 127.0.0.1:{port}: accepted=1 active=0 closed=1 handshake_failures=0 "
        "handler_errors=0 accept_errors=0 bytes_received=6 bytes_sent=7"
    ]


# -- limits ---------------------------------------------------------------------------------------


def test_max_connections_leaves_the_next_client_queued_until_one_leaves(kind: Any) -> None:
    with serving(kind, ECHO, max_connections=2) as served:
        first, second = client(served.port), client(served.port)
        assert ask(first, b"1") == b"1\r\n"
        assert ask(second, b"2") == b"2\r\n"
        third = client(served.port)  # completes in the kernel's backlog
        third.sendall(b"3\n")
        third.settimeout(0.5)
        with pytest.raises(TimeoutError):
            third.recv(10)  # neither served nor closed: it waits
        assert served.stats.accepted == 2
        second.close()
        third.settimeout(5)
        assert read_line(third) == b"3\r\n"
        assert served.stats.accepted == 3
        for sock in (first, third):
            sock.close()


def test_a_connection_reset_before_accept_is_skipped(kind: Any) -> None:
    with serving(kind, ECHO, max_connections=1) as served:
        held = client(served.port)
        assert ask(held, b"held") == b"held\r\n"
        doomed = client(served.port)  # queued in the backlog, then reset there
        doomed.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        doomed.close()
        good = client(served.port)
        good.sendall(b"good\n")
        held.close()
        assert read_line(good) == b"good\r\n"
        good.close()
        stats = served.wait_for(lambda s: s.closed == 2)
        assert stats.accepted == 2 and stats.accept_errors == 1
        assert stats.handler_errors == 0


def test_a_trickling_client_is_cut_off_after_call_timeout(kind: Any) -> None:
    call_timeout = 1.0
    with serving(kind, ECHO, call_timeout=call_timeout) as served, client(served.port) as sock:
        began = time.monotonic()
        ended = None
        while time.monotonic() - began < call_timeout + 4:
            try:
                sock.sendall(b"x")
            except OSError:
                ended = time.monotonic() - began
                break
            sock.settimeout(0.1)
            try:
                if sock.recv(10) == b"":
                    ended = time.monotonic() - began
                    break
            except TimeoutError:
                pass
        assert ended is not None, "the trickling client was never disconnected"
        assert call_timeout - 0.2 <= ended <= call_timeout + 1.0
        served.wait_for(lambda s: s.closed == 1 and s.handler_errors == 1)


# -- shutdown ---------------------------------------------------------------------------------


def test_shutdown_waits_the_grace_period_then_wakes_the_handler(kind: Any) -> None:
    outcomes: list[type[BaseException]] = []

    def wait_forever(conn: Any) -> None:
        try:
            conn.recv_line()
        except BaseException as exc:
            outcomes.append(type(exc))
            raise

    async def async_wait_forever(conn: Any) -> None:
        try:
            await conn.recv_line()
        except BaseException as exc:
            outcomes.append(type(exc))
            raise

    with serving(kind, (wait_forever, async_wait_forever)) as served:
        port = served.port
        sock = client(port)
        served.wait_for(lambda s: s.active == 1)
        time.sleep(0.1)  # the handler is inside recv_line now
        began = time.monotonic()
        served.shutdown(0.5)
        elapsed = time.monotonic() - began
        assert 0.45 <= elapsed <= 1.5
        assert outcomes == [SocketClosedError]
        assert served.call("is_serving") is False
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert sock.recv(10) == b""  # closed by the server
        sock.close()
        assert served.stats.active == 0


def test_a_handler_that_never_returns_is_bounded_by_shutdown(
    kind: Any, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    def stubborn(conn: Any) -> None:
        release.wait(30)  # ignores its connection: no call to wake

    async def async_stubborn(conn: Any) -> None:
        await asyncio.sleep(3600)  # cancelled by shutdown

    try:
        with serving(kind, (stubborn, async_stubborn)) as served:
            sock = client(served.port)
            served.wait_for(lambda s: s.active == 1)
            began = time.monotonic()
            served.shutdown(0.2)
            assert time.monotonic() - began < 0.2 + 2 * HANDLER_END_WAIT + 1.0
            sock.close()
    finally:
        release.set()
    if kind.name == "blocking":  # a thread cannot be stopped: it is left, and said so
        assert "1 handlers still run" in caplog.text
    else:
        assert served.stats.active == 0


def test_shutdown_returns_at_once_when_handlers_finish(kind: Any) -> None:
    with serving(kind, ECHO) as served:
        with client(served.port) as sock:
            assert ask(sock, b"hi") == b"hi\r\n"
        served.wait_for(lambda s: s.active == 0)
        began = time.monotonic()
        served.shutdown(10)
        assert time.monotonic() - began < 1.0
        served.shutdown(10)  # idempotent


def test_close_stops_accepting_while_open_connections_go_on(kind: Any) -> None:
    with serving(kind, ECHO) as served:
        sock = client(served.port)
        assert ask(sock, b"before") == b"before\r\n"
        served.close()
        assert served.call("is_serving") is False
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", served.port), timeout=2).close()
        assert ask(sock, b"after") == b"after\r\n"
        sock.close()


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return Tls(tmp_path_factory.mktemp("serve-tls"))


def test_tls_clients_are_served_after_the_handshake(kind: Any, tls: Tls) -> None:
    with serving(kind, ECHO, ssl_context=tls.server_context()) as served:
        with tls.client(served.port) as sock:
            assert ask(sock, b"secret") == b"secret\r\n"
        served.wait_for(lambda s: s.closed == 1)
        assert served.stats.handshake_failures == 0


def test_a_tls_client_closing_without_close_notify_is_an_ordinary_end(
    kind: Any, tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    """Python's ssl (and curl, and browsers) close TCP without close_notify: the
    handler still sees the truncation (an SslError), but the server logs it at
    DEBUG like a reset, not at ERROR with a traceback."""
    caplog.set_level(logging.DEBUG, logger="twinsock.server")
    with serving(kind, ECHO, ssl_context=tls.server_context()) as served:
        with tls.client(served.port) as sock:
            assert ask(sock, b"bye") == b"bye\r\n"
        served.wait_for(lambda s: s.closed == 1)
    ours = [r for r in caplog.records if r.name == "twinsock.server"]
    assert not [r for r in ours if r.levelno >= logging.WARNING], caplog.text
    assert any(r.levelno == logging.DEBUG and "truncated" in r.getMessage() for r in ours)


def test_stalled_handshakes_do_not_delay_a_real_tls_client(kind: Any, tls: Tls) -> None:
    options = {"ssl_context": tls.server_context(), "handshake_timeout": 10.0}
    with serving(kind, ECHO, **options) as served:
        stalled = [client(served.port) for _ in range(5)]  # never say hello
        served.wait_for(lambda s: s.active == 5)
        began = time.monotonic()
        with tls.client(served.port) as tls_sock:
            assert ask(tls_sock, b"hello") == b"hello\r\n"
        assert time.monotonic() - began < 1.0
        for sock in stalled:
            sock.close()


def test_a_failed_or_stalled_handshake_is_counted_and_the_handler_not_called(
    kind: Any, tls: Tls
) -> None:
    called: list[bool] = []

    def mark(conn: Any) -> None:
        called.append(True)

    async def async_mark(conn: Any) -> None:
        called.append(True)

    options = {"ssl_context": tls.server_context(), "handshake_timeout": 0.3}
    with serving(kind, (mark, async_mark), **options) as served:
        with client(served.port) as garbage:
            garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert garbage.recv(100) is not None  # an alert or the end
        with client(served.port) as silent_sock:
            began = time.monotonic()
            assert silent_sock.recv(100) == b""  # closed when its handshake time ran out
            assert time.monotonic() - began < 2.0
        stats = served.wait_for(lambda s: s.closed == 2)
        assert stats.handshake_failures == 2
        assert called == []


# -- where a server listens -------------------------------------------------------------------


def test_localhost_listens_on_every_address_it_resolves_to(kind: Any) -> None:
    with serving(kind, ECHO, "localhost") as served:
        expected = {
            info[4][0]
            for info in socket.getaddrinfo("localhost", 0, 0, socket.SOCK_STREAM, 0,
                                           socket.AI_PASSIVE)
        }
        addresses = served.server.addresses
        assert {a.host for a in addresses} == expected
        assert {a.port for a in addresses} == {served.port}
        for address in addresses:
            with client(served.port, address.host) as sock:
                assert ask(sock, b"via " + address.host.encode()) == (
                    b"via " + address.host.encode() + b"\r\n"
                )


def test_no_host_listens_on_every_interface_ipv4_and_ipv6(kind: Any) -> None:
    with serving(kind, ECHO, None) as served:
        hosts = sorted(a.host for a in served.server.addresses)
        assert hosts in (["0.0.0.0"], ["0.0.0.0", "::"])
        assert {a.port for a in served.server.addresses} == {served.port}
        for host in ["127.0.0.1", "::1"] if "::" in hosts else ["127.0.0.1"]:
            with client(served.port, host) as sock:
                assert ask(sock, b"any") == b"any\r\n"
    with serving(kind, ECHO, "") as served:
        assert "0.0.0.0" in [a.host for a in served.server.addresses]


def test_ipv6_loopback(kind: Any) -> None:
    with serving(kind, ECHO, "::1") as served:
        assert [a.host for a in served.server.addresses] == ["::1"]
        with client(served.port, "::1") as sock:
            assert ask(sock, b"six") == b"six\r\n"


@pytest.mark.parametrize("form", ["socket", "listening", "fd", "twinsock"])
def test_sock_serves_an_existing_socket(kind: Any, form: str) -> None:
    native = socket.socket()
    native.bind(("127.0.0.1", 0))
    port = native.getsockname()[1]
    sock: Any = native
    if form == "listening":
        native.listen(5)
    elif form == "fd":
        sock = native.detach()
    elif form == "twinsock":
        sock = net.Socket.from_native(native) if kind.name == "blocking" else (
            asyncnet.AsyncSocket.from_native(native))
    with serving(kind, ECHO, sock=sock) as served:
        assert served.port == port
        with client(port) as conn:
            assert ask(conn, b"adopted") == b"adopted\r\n"


def test_sock_serves_a_unix_socket(kind: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "serve.sock")
    native = socket.socket(socket.AF_UNIX)
    native.bind(path)
    with serving(kind, ECHO, sock=native) as served:
        assert served.server.addresses == [] and served.port == 0
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(path)
            assert ask(conn, b"unix") == b"unix\r\n"


def test_reuse_port_lets_two_servers_share_a_port(kind: Any) -> None:
    with serving(kind, ECHO, reuse_port=True) as one:
        second = kind.call(kind.module.serve, handler_of(kind, ECHO), "127.0.0.1", one.port,
                           reuse_port=True)
        try:
            assert second.port == one.port
        finally:
            kind.call(second.shutdown, 0)


# -- bad input --------------------------------------------------------------------------------


def test_a_port_in_use_raises_oserror_naming_the_address(kind: Any) -> None:
    with serving(kind, ECHO) as served:
        with pytest.raises(OSError, match=f"127.0.0.1:{served.port}") as info:
            kind.call(kind.module.serve, handler_of(kind, ECHO), "127.0.0.1", served.port)
        assert info.value.errno == 98 or "in use" in str(info.value)


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("echo",), {}, TypeError),
        ((None, "127.0.0.1", 70000), {}, AddressError),
        ((None, "127.0.0.1", -1), {}, AddressError),
        ((None, "1.2.3.999", 0), {}, AddressError),
        ((None, b"localhost", 0), {}, TypeError),
        ((None,), {"max_connections": 0}, ValueError),
        ((None,), {"call_timeout": -1}, ValueError),
        ((None,), {"handshake_timeout": -1}, ValueError),
        ((None,), {"backlog": "many"}, TypeError),
        ((None,), {"ssl_context": ssl.create_default_context()}, TypeError),
        ((None,), {"sock": "127.0.0.1:80"}, TypeError),
    ],
)
def test_bad_serve_arguments(kind: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                             error: type[Exception]) -> None:
    if args[0] is None:
        args = (handler_of(kind, ECHO), *args[1:])
    with pytest.raises(error):
        kind.call(kind.module.serve, *args, **kwargs)


def test_the_handler_must_fit_the_kind() -> None:
    with pytest.raises(TypeError, match="coroutine function"):
        asyncnet_serve_sync(ECHO[0])
    with pytest.raises(TypeError, match=r"asyncnet\.serve"):
        net.serve(ECHO[1])


def asyncnet_serve_sync(handler: Any) -> Any:
    import asyncio

    return asyncio.run(asyncnet.serve(handler))


def test_bad_grace(kind: Any) -> None:
    with serving(kind, ECHO) as served:
        with pytest.raises(ValueError, match="grace"):
            served.shutdown(-1)
        with pytest.raises(TypeError, match="grace"):
            served.shutdown("soon")  # type: ignore[arg-type]


# -- the twins have one face --------------------------------------------------------------------


def public_members(cls: type) -> dict[str, Any]:
    return {name: member for name, member in inspect.getmembers(cls)
            if not name.startswith("_")}


def test_server_classes_have_the_same_public_signatures() -> None:
    blocking, asynchronous = public_members(net.Server), public_members(asyncnet.AsyncServer)
    assert sorted(blocking) == sorted(asynchronous)
    for name, member in blocking.items():
        other = asynchronous[name]
        if isinstance(member, property):
            assert isinstance(other, property), name
            continue
        assert inspect.signature(member) == inspect.signature(other), name
    for name in ("serve_forever", "shutdown"):
        assert inspect.iscoroutinefunction(asynchronous[name]), name
    for name in ("close", "is_serving"):
        assert not inspect.iscoroutinefunction(asynchronous[name]), name
    assert inspect.signature(net.serve).parameters.keys() == (
        inspect.signature(asyncnet.serve).parameters.keys())
    blocking_run = inspect.signature(net.run_server).parameters
    async_run = inspect.signature(asyncnet.run_server).parameters
    assert [p for p in async_run if p != "uvloop"] == list(blocking_run)
    assert net.ServerStats is asyncnet.ServerStats
    for module in (net, asyncnet):
        for name in ("serve", "run_server", "ServerStats"):
            assert name in module.__all__
    assert "Server" in net.__all__ and "AsyncServer" in asyncnet.__all__


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = threading.active_count()
    yield
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)


def test_shutdown_leaves_no_thread_behind(one_thread: None) -> None:
    before = threading.active_count()
    server = net.serve(ECHO[0])
    with client(server.port) as sock:
        assert ask(sock, b"x") == b"x\r\n"
    server.shutdown(1)
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
