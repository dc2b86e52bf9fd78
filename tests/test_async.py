"""Async-only behaviours of AsyncSocket (SPEC section 4), on asyncio and uvloop.

Everything the two socket kinds share is in test_conformance.py; this file
covers what only exists for coroutines: signature parity with ``Socket``,
cancellation at random moments, one reader and one writer at a time,
backpressure, and a socket used after its loop is gone.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from conftest import stdlib_pair
from twinsock import asyncnet, net
from twinsock.asyncnet import AsyncSocket
from twinsock.errors import NetTimeout
from twinsock.nativesockets import Domain, Protocol, SockType

WAITING_METHODS = {
    "accept", "accept_addr", "connect", "connect_unix", "recv", "recv_into", "recv_line",
    "recv_line_into", "read_line", "skip", "send", "send_to", "recv_from", "recv_until",
    "send_line",
}


def run(loop_name: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def public_api(cls: type) -> dict[str, Any]:
    return {
        name: getattr(cls, name)
        for name in dir(cls)
        if not name.startswith("_") and name not in ("aclose",)
    }


def test_signatures_match_the_blocking_socket() -> None:
    blocking, asynchronous = public_api(net.Socket), public_api(AsyncSocket)
    assert set(blocking) == set(asynchronous)
    for name, member in blocking.items():
        twin = asynchronous[name]
        if isinstance(inspect.getattr_static(net.Socket, name), property):
            continue
        assert inspect.signature(member) == inspect.signature(twin).replace(
            return_annotation=inspect.signature(member).return_annotation
        ) or _same_parameters(member, twin), name
        assert inspect.iscoroutinefunction(twin) == (name in WAITING_METHODS), name
    for name in ("dial", "wrap_socket", "wrap_connected_socket", "is_disconnection_error"):
        assert _same_parameters(getattr(net, name), getattr(asyncnet, name)), name
    assert inspect.iscoroutinefunction(asyncnet.wrap_connected_socket)
    assert inspect.iscoroutinefunction(asyncnet.dial)
    for name in ("SockOpt", "SocketFlag", "ReadLineResult", "LineResult", "BUFFER_SIZE",
                 "MAX_LINE_LENGTH"):
        assert getattr(asyncnet, name) is getattr(net, name)


def _same_parameters(a: Any, b: Any) -> bool:
    def shape(fn: Any) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    return shape(a) == shape(b)


def test_cancelling_recv_line_at_random_moments_loses_nothing(loop_name: str) -> None:
    lines = [b"line-%04d-" % i + b"x" * (i * 37 % 300) for i in range(2000)]
    stream = b"".join(line + b"\r\n" for line in lines)
    ours, peer = stdlib_pair("tcp4")
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rng = random.Random(1234)
    progress = {"cancelled": 0}

    def trickle() -> None:
        # Slowly while the reader is being cancelled, then the rest at once.
        pos = 0
        while pos < len(stream) and progress["cancelled"] < 100:
            step = rng.randrange(1, 40)
            peer.sendall(stream[pos : pos + step])
            pos += step
            time.sleep(0.0005 + rng.random() * 0.002)
        peer.sendall(stream[pos:])
        peer.shutdown(socket.SHUT_WR)

    async def main() -> tuple[list[bytes], int]:
        sock = AsyncSocket.from_native(ours)
        got: list[bytes] = []
        cancelled = 0
        threading.Thread(target=trickle, daemon=True).start()
        while True:
            if cancelled < 100:
                task = asyncio.ensure_future(sock.recv_line(timeout=10))
                await asyncio.sleep(rng.random() * 0.003)
                if not task.done():
                    task.cancel()
                try:
                    line = await task
                except asyncio.CancelledError:
                    cancelled += 1
                    progress["cancelled"] = cancelled
                    continue
            else:
                line = await sock.recv_line(timeout=10)
            if line == b"":
                break
            got.append(line)
        await sock.aclose()
        return got, cancelled

    got, cancelled = run(loop_name, main)
    peer.close()
    assert cancelled == 100
    assert got == lines  # no line lost, duplicated or torn


def test_asyncio_timeout_in_the_middle_of_a_line(loop_name: str) -> None:
    ours, peer = stdlib_pair("tcp4")

    async def main() -> None:
        sock = AsyncSocket.from_native(ours)
        peer.sendall(b"first half, ")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await sock.recv_line()
        peer.sendall(b"second half\n")
        assert await sock.recv_line(timeout=5) == b"first half, second half"
        sock.close()

    run(loop_name, main)
    peer.close()


def test_two_readers_or_two_writers_at_once_raise(loop_name: str) -> None:
    ours, peer = stdlib_pair("tcp4")

    async def main() -> None:
        sock = AsyncSocket.from_native(ours)
        first = asyncio.ensure_future(sock.recv_line(timeout=5))
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="already reading"):
            await sock.recv(1)
        with pytest.raises(RuntimeError, match="already reading"):
            await sock.recv_line()
        peer.sendall(b"for the first\n")
        assert await first == b"for the first"
        # writers: fill the peer's window so the first send waits
        writer = asyncio.ensure_future(sock.send(b"w" * (8 * 1024 * 1024), timeout=10))
        await asyncio.sleep(0.1)
        assert not writer.done()
        with pytest.raises(RuntimeError, match="already sending"):
            await sock.send(b"interleaved?")
        writer.cancel()
        sock.close()

    run(loop_name, main)
    peer.close()


def test_send_to_a_peer_that_does_not_read_is_bounded(loop_name: str) -> None:
    ours, peer = stdlib_pair("tcp4")

    async def main() -> int:
        sock = AsyncSocket.from_native(ours)
        queued = 0
        with pytest.raises(NetTimeout):
            for _ in range(10_000):  # up to 640 MiB if nothing pushed back
                await sock.send(b"q" * 65536, timeout=0.5)
                queued += 65536
        transport = sock._transport
        assert transport is not None
        buffered = transport.get_write_buffer_size()
        sock.close()
        return buffered

    buffered = run(loop_name, main)
    peer.close()
    # the library's own queue stays at the high-water mark plus one slice
    assert buffered <= asyncnet.WRITE_HIGH_WATER + 65536


def test_large_send_is_fed_in_slices(loop_name: str) -> None:
    ours, peer = stdlib_pair("tcp4")
    payload = bytes(range(256)) * 16384  # 4 MiB
    received = bytearray()

    def drain() -> None:
        while len(received) < len(payload):
            chunk = peer.recv(1 << 20)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()

    async def main() -> None:
        sock = AsyncSocket.from_native(ours)
        await sock.send(payload, timeout=30)
        await sock.aclose()

    run(loop_name, main)
    reader.join(30)
    peer.close()
    assert bytes(received) == payload


def test_socket_used_on_a_closed_loop_raises_clearly() -> None:
    ours, peer = stdlib_pair("tcp4")
    holder: dict[str, AsyncSocket] = {}

    async def first() -> None:
        sock = AsyncSocket.from_native(ours)
        peer.sendall(b"hello\n")
        assert await sock.recv_line(timeout=5) == b"hello"
        holder["sock"] = sock

    asyncio.run(first())

    async def second() -> None:
        with pytest.raises(RuntimeError, match="event loop"):
            await holder["sock"].recv_line(timeout=1)

    asyncio.run(second())
    with pytest.raises(RuntimeError, match="running event loop"):
        asyncio.new_event_loop().run_until_complete(_not_awaited(holder["sock"]))
    peer.close()


async def _not_awaited(sock: AsyncSocket) -> None:
    # On a new loop that is running: "belongs to another event loop".
    try:
        await sock.recv(1)
    except RuntimeError as exc:
        raise RuntimeError("running event loop: " + str(exc)) from None


def test_accept_connect_dial_and_udp_on_the_loop(loop_name: str) -> None:
    async def main() -> None:
        server = AsyncSocket()
        server.bind_addr(0, "127.0.0.1")
        server.listen()
        port = server.get_local_addr()[1]
        client_task = asyncio.ensure_future(asyncnet.dial("127.0.0.1", port, timeout=5))
        conn, address = await server.accept_addr(timeout=5)
        client = await client_task
        assert address == "127.0.0.1"
        await client.send("ping\n")
        assert await conn.recv_line(timeout=5) == b"ping"
        await conn.send(b"pong\r\n")
        assert await client.recv_line(timeout=5) == b"pong"
        with pytest.raises(NetTimeout):
            await server.accept(timeout=0.2)
        for s in (client, conn, server):
            await s.aclose()

        udp = AsyncSocket(Domain.AF_INET6, SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP)
        udp.bind_addr(0, "::1")
        other = AsyncSocket(Domain.AF_INET6, SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP)
        other.bind_addr(0, "::1")
        await other.send_to("::1", udp.get_local_addr()[1], b"datagram")
        data, host, sport = await udp.recv_from(4, timeout=5)
        assert (data, host, sport) == (b"data", "::1", other.get_local_addr()[1])
        with pytest.raises(NetTimeout):
            await udp.recv_from(10, timeout=0.2)
        udp.close()
        other.close()

    run(loop_name, main)


def test_chat_server_example(loop_name: str) -> None:
    """The seed's chat server: three clients, a line from one reaches all three."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "chat_server.py"
    spec = importlib.util.spec_from_file_location("chat_server_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    async def main() -> None:
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.ensure_future(module.serve("127.0.0.1", 0, ready=ready))
        port = await ready
        clients = []
        for _ in range(3):
            clients.append(await asyncnet.dial("127.0.0.1", port, timeout=5))
        await asyncio.sleep(0.1)
        half = await asyncnet.dial("127.0.0.1", port, timeout=5)
        await half.send(b"half a li")
        half.close()  # disconnects mid-line
        # An empty line: recv_line gives b"\r\n", and send_line relays it as one
        # empty line (the seed's line & "\c\L" would send two); nobody is disturbed.
        await clients[0].send(b"\r\n")
        await clients[0].send(b"hello all\r\n")
        for client in clients:
            assert await client.recv_line(timeout=5) == b"\r\n"
            assert await client.recv_line(timeout=5) == b"hello all"
        await clients[2].send(b"from three\n")
        for client in clients:
            assert await client.recv_line(timeout=5) == b"from three"
        for client in clients:
            client.close()
        server.cancel()

    run(loop_name, main)
