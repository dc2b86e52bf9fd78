"""The line-server bars that need a server process of its own: memory and run_server.

A small script (``SCRIPT``) serves an echo ``on_line`` in a child process for
one kind (blocking, asyncio, uvloop) and prints its port; the test reads the
child's resident memory from ``/proc`` while a peer floods it with lines and
reads nothing, or signals a ``run_server(..., lines=True)`` to stop.
"""

from __future__ import annotations

import asyncio
import select
import signal
import socket
import time
from typing import Any

import pytest

from proc_lines import Child
from served import client, read_line
from twins import available_kinds
from twinsock import asyncnet, net

KINDS = available_kinds()

SCRIPT = r"""
import asyncio, logging, os, sys
from twinsock import asyncnet, net

kind, mode = sys.argv[1], sys.argv[2]
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")

def echo(conn, line):
    return line

if mode == "run-server":
    if kind == "blocking":
        stats = net.run_server(echo, "127.0.0.1", 0, lines=True, max_length=100)
    else:
        stats = asyncnet.run_server(echo, "127.0.0.1", 0, lines=True, max_length=100,
                                    uvloop=kind == "uvloop")
    os.write(1, f"final accepted={stats.accepted} closed={stats.closed} "
                f"errors={stats.handler_errors}\n".encode())
elif kind == "blocking":
    net.serve_lines(echo).serve_forever()
else:
    async def main():
        server = await asyncnet.serve_lines(echo)
        await server.serve_forever()
    if kind == "uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
"""

MIB = 1024 * 1024


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def flood(port: int, total: int, limit: float) -> int:
    """Send up to ``total`` bytes of 64-byte lines, reading nothing; stop when the
    server stops taking them for 1 s, or after ``limit`` seconds.  Returns the bytes sent."""
    block = (b"x" * 63 + b"\n") * 1024
    view = memoryview(block)
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setblocking(False)
        deadline = time.monotonic() + limit
        stalled_since = None
        while sent < total and time.monotonic() < deadline:
            _, writable, _ = select.select([], [sock], [], 0.1)
            if not writable:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.0:
                    break
                continue
            stalled_since = None
            try:
                sent += sock.send(view[sent % len(block):])
            except BlockingIOError:
                continue
    return sent


@pytest.mark.parametrize("kind", KINDS)
def test_a_peer_that_sends_200_mib_and_reads_nothing_costs_bounded_memory(kind: str) -> None:
    with Child(SCRIPT, args=[kind, "serve"]) as child:
        port = int(child.expect(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        with client(port) as warm:  # the first connection's one-time costs
            warm.sendall(b"warm\n")
            assert read_line(warm) == b"warm\r\n"
        before = rss(child.proc.pid)
        sent = flood(port, 200 * MIB, limit=20.0)
        grown = rss(child.proc.pid) - before
        assert grown < 64 * MIB, (sent, grown)
        with client(port) as sock:  # and it still serves
            sock.sendall(b"alive\n")
            assert read_line(sock) == b"alive\r\n"


@pytest.mark.parametrize("kind", KINDS)
def test_run_server_serves_lines_until_sigint(kind: str) -> None:
    with Child(SCRIPT, args=[kind, "run-server"]) as child:
        port = int(child.expect(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        with client(port) as sock:
            sock.sendall(b"one\n\ntwo\n")
            assert [read_line(sock) for _ in range(3)] == [b"one\r\n", b"\r\n", b"two\r\n"]
        with client(port) as sock:
            sock.sendall(b"x" * 101 + b"\n")  # over max_length=100
            assert read_line(sock) == b""
        time.sleep(0.2)
        child.signal(signal.SIGINT)
        child.expect(r"^final accepted=2 closed=2 errors=1$")
        assert child.wait() == 0


async def _coroutine(conn: Any, line: bytes) -> None:
    await asyncio.sleep(0)


def _plain(conn: Any, line: bytes) -> None:
    pass


@pytest.mark.parametrize("run_server", [net.run_server, asyncnet.run_server])
def test_run_server_lines_refuses_what_serve_lines_refuses(run_server: Any) -> None:
    with pytest.raises(TypeError, match="on_line"):
        run_server(_coroutine, lines=True)
    with pytest.raises(TypeError, match="on_close"):
        run_server(_plain, lines=True, on_close=42)
    with pytest.raises(ValueError, match="max_length"):
        run_server(_plain, lines=True, max_length=0)
    with pytest.raises(TypeError, match="lines"):
        run_server(_plain, lines="yes")
