"""The serving bars that need a process of their own: descriptor limits, signals, workers.

Each test starts a small server script (``SCRIPT``) in a child process for
one kind (blocking, asyncio, uvloop), reads the port from the server's
"listening on" log line, and drives it with stdlib clients and signals.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from typing import Any

import pytest

from proc_lines import Child
from served import ask, client, read_line
from twins import available_kinds
from twinsock import asyncnet, net

KINDS = available_kinds()

SCRIPT = r"""
import asyncio, logging, os, resource, signal, sys, threading, time
from twinsock import asyncnet, net

kind, mode = sys.argv[1], sys.argv[2]
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
if mode == "fd-limit":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

def say(text):
    os.write(1, (text + "\n").encode())

def say_when_signals_are_handled():
    # The server's SIGTERM handler replaces the default one inside serve_forever:
    # only then may the test send signals.
    original = signal.getsignal(signal.SIGTERM)
    def watch():
        while signal.getsignal(signal.SIGTERM) is original:
            time.sleep(0.01)
        say("signals handled")
    threading.Thread(target=watch, daemon=True).start()

if mode != "workers":  # the supervisor handles signals before it forks
    say_when_signals_are_handled()

def handle(conn):
    while line := conn.recv_line():
        if line == b"pid":
            conn.send(b"%d\r\n" % os.getpid())
        else:
            conn.send(line + b"\r\n")

async def async_handle(conn):
    while line := await conn.recv_line():
        if line == b"pid":
            await conn.send(b"%d\r\n" % os.getpid())
        else:
            await conn.send(line + b"\r\n")

workers = 2 if mode == "workers" else 1
grace = 5.0
if kind == "blocking" and mode == "serve-forever":
    with net.serve(handle, "127.0.0.1", 0) as server:
        before = signal.getsignal(signal.SIGINT)
        server.serve_forever(grace)
        say(f"restored {signal.getsignal(signal.SIGINT) is before}")
    stats = server.stats
elif mode == "serve-forever":
    async def main():
        server = await asyncnet.serve(async_handle, "127.0.0.1", 0)
        before = signal.getsignal(signal.SIGINT)
        async with server:
            await server.serve_forever(grace)
        say(f"restored {signal.getsignal(signal.SIGINT) is before}")
        return server.stats
    if kind == "uvloop":
        import uvloop
        stats = uvloop.run(main())
    else:
        stats = asyncio.run(main())
elif kind == "blocking":
    stats = net.run_server(handle, "127.0.0.1", 0, workers=workers, grace=grace)
else:
    stats = asyncnet.run_server(async_handle, "127.0.0.1", 0, workers=workers, grace=grace,
                                uvloop=kind == "uvloop")
say(f"final accepted={stats.accepted} closed={stats.closed} active={stats.active}")
"""


def start(kind: str, mode: str) -> tuple[Child, int]:
    """The server script for ``kind`` in ``mode``, once it listens and handles signals."""
    child = Child(SCRIPT, args=[kind, mode])
    port = int(child.expect(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    child.expect(r"^signals handled$")
    return child, port


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_under_a_64_fd_limit_survives_a_flood_of_120_clients(kind: str) -> None:
    child, port = start(kind, "fd-limit")
    with child:
        flood: list[socket.socket] = []
        try:
            for _ in range(120):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"flood\n")
                flood.append(sock)
            child.expect(r"WARNING accept on 127\.0\.0\.1:\d+ failed: \[Errno 24\]")
            time.sleep(0.5)
            assert child.proc.poll() is None, child.output()
            # The first clients were accepted before the limit: they are still served.
            for sock in flood[:10]:
                assert read_line(sock) == b"flood\r\n"
                assert ask(sock, b"still") == b"still\r\n"
        finally:
            for sock in flood:
                sock.close()
        began = time.monotonic()
        with client(port, timeout=3) as sock:
            assert ask(sock, b"after the flood") == b"after the flood\r\n"
        assert time.monotonic() - began < 2.5
        child.signal(signal.SIGTERM)
        child.expect(r"^final accepted=(\d+)")
        assert child.wait() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_serve_forever_stops_on_sigterm_and_restores_the_handlers(kind: str) -> None:
    child, port = start(kind, "serve-forever")
    with child:
        with client(port) as sock:
            assert ask(sock, b"hi") == b"hi\r\n"
        child.signal(signal.SIGTERM)
        child.expect(r"^final accepted=1 closed=1 active=0$")
        assert child.wait() == 0
        output = child.output()  # stdout and stderr lines: their order between them may vary
        assert re.search(r"INFO stopped serving 127\.0\.0\.1:\d+: accepted=1 active=0 closed=1",
                         output)
        assert "restored True" in output


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_signal_closes_everything_at_once(kind: str) -> None:
    child, port = start(kind, "serve-forever")
    with child:
        held = client(port)
        assert ask(held, b"hold") == b"hold\r\n"
        child.signal(signal.SIGINT)
        time.sleep(0.5)
        assert child.proc.poll() is None  # waiting for the held connection (grace 5 s)
        assert ask(held, b"still served") == b"still served\r\n"
        began = time.monotonic()
        child.signal(signal.SIGTERM)
        held.settimeout(3)
        assert read_line(held) == b""  # closed at once
        assert child.wait() == 0
        assert time.monotonic() - began < 2.5
        held.close()


@pytest.mark.parametrize("kind", KINDS)
def test_run_server_with_two_workers_spreads_connections_and_ends_on_sigterm(kind: str) -> None:
    child = Child(SCRIPT, args=[kind, "workers"])
    with child:
        ports = {int(child.expect(r"listening on 127\.0\.0\.1:(\d+)").group(1)) for _ in range(2)}
        assert len(ports) == 1
        port = ports.pop()
        pids = []
        for _ in range(40):
            with client(port) as sock:
                pids.append(int(ask(sock, b"pid")))
        assert len(set(pids)) == 2, pids
        assert child.proc.pid not in pids
        child.signal(signal.SIGTERM)
        child.expect(r"^final accepted=40 closed=40 active=0$")
        assert child.wait() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_run_server_in_one_process_returns_its_stats_on_sigint(kind: str) -> None:
    child, port = start(kind, "single")
    with child:
        for _ in range(3):
            with client(port) as sock:
                assert ask(sock, b"pid") == b"%d\r\n" % child.proc.pid
        child.signal(signal.SIGINT)
        child.expect(r"^final accepted=3 closed=3 active=0$")
        assert child.wait() == 0


# -- run_server's bad input (raised before anything is forked or bound) -------------------------


def _blocking_handler(conn: Any) -> None:
    pass


async def _async_handler(conn: Any) -> None:
    pass


RUNNERS = [
    pytest.param(net.run_server, _blocking_handler, id="net"),
    pytest.param(asyncnet.run_server, _async_handler, id="asyncnet"),
]


@pytest.mark.parametrize(("run_server", "handler"), RUNNERS)
def test_workers_need_fork(run_server: Any, handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "fork")
    with pytest.raises(ValueError, match="fork"):
        run_server(handler, workers=2)


@pytest.mark.parametrize(("run_server", "handler"), RUNNERS)
def test_workers_need_so_reuseport(
    run_server: Any, handler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with pytest.raises(ValueError, match="SO_REUSEPORT"):
        run_server(handler, workers=2)


@pytest.mark.parametrize(("run_server", "handler"), RUNNERS)
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"workers": -1}, ValueError),
        ({"workers": 1.5}, TypeError),
        ({"grace": -1}, ValueError),
        ({"max_connections": 0}, ValueError),
        ({"no_such_option": 1}, TypeError),
        ({"port": 70000}, ValueError),
    ],
)
def test_bad_run_server_arguments(
    run_server: Any, handler: Any, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        run_server(handler, **kwargs)


def test_run_server_refuses_a_handler_of_the_wrong_kind() -> None:
    with pytest.raises(TypeError):
        net.run_server(_async_handler)
    with pytest.raises(TypeError):
        asyncnet.run_server(_blocking_handler)  # type: ignore[arg-type]
    with contextlib.suppress(ImportError), pytest.raises(TypeError, match="uvloop"):
        asyncnet.run_server(_async_handler, uvloop="yes")  # type: ignore[arg-type]
