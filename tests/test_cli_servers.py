"""``twinsock echo`` and ``twinsock chat`` on the serving layer (SPEC sections 8, 10).

The commands run as ``python -m twinsock`` subprocesses (``PYTHONPATH`` set to
the twinsock under test), on port 0; the tests read the port from the
"listening on" log line, talk to the server with stdlib sockets, and signal
only the process they started.  ``ChatRoom`` is also tested on its own, in
this process, on ``asyncnet.serve``.

The chat-room bar is the one timed check here, because it is the behaviour
itself: a talker whose room holds clients that never read must get each of
its lines back within a second, for ten seconds on end (the hand-written
room it replaces waited up to 10 s on each stalled client in turn).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import twinsock
from proc_lines import Child
from twinsock import asyncnet

if TYPE_CHECKING:
    from twinsock._chat import ChatRoom

SRC = str(Path(twinsock.__file__).resolve().parent.parent)
LISTENING = r"listening on 127\.0\.0\.1:(\d+)"
SUMMARY = re.compile(
    r"stopped serving 127\.0\.0\.1:(\d+): accepted=(\d+) active=0 closed=(\d+) "
    r"handshake_failures=\d+ handler_errors=\d+ accept_errors=\d+ "
    r"bytes_received=(\d+) bytes_sent=(\d+)$",
    re.M,
)
#: The chat bar: a line of this size (its "\n" included) ...
TALK_LINE = 4096
#: ... comes back to its talker within this many seconds ...
TALK_DEADLINE = 1.0
#: ... for this long, with this many clients in the room that never read.
TALK_FOR = 10.0
STALLED = 5


def twinsock_cli(*args: str) -> Child:
    """``python -m twinsock ARGS``, running the twinsock these tests import."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p)
    return Child(module="twinsock", args=args, env=env)


@pytest.fixture
def cli() -> Iterator[list[Child]]:
    """Started commands, killed (by their pid) at the end of the test if still running."""
    started: list[Child] = []
    yield started
    for child in started:
        child.__exit__(None, None, None)


def start(cli: list[Child], *args: str) -> tuple[Child, int]:
    child = twinsock_cli(*args)
    cli.append(child)
    return child, int(child.expect(LISTENING, timeout=30).group(1))


def connect(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect: the window it announces stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def read_exactly(sock: socket.socket, size: int, within: float = 10.0) -> bytes:
    """``size`` bytes from ``sock``; fails if they take longer than ``within`` seconds."""
    deadline = time.monotonic() + within
    data = bytearray()
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(size - len(data))
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


def is_disconnected(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Whether the server ends this connection (EOF or reset) within ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        for _ in range(10_000):  # what is still buffered is small; bounded anyway
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return False


def stop(child: Child, signum: int = signal.SIGTERM) -> str:
    """Signal ``child``, expect exit status 0, return all it said."""
    child.signal(signum)
    status = child.wait(30)
    output = child.output()
    assert status == 0, output
    assert "Traceback" not in output, output
    return output


# -- the chat room: no client can slow it ---------------------------------------------------


def test_a_chat_talker_is_never_slowed_by_clients_that_do_not_read(cli: list[Child]) -> None:
    proc, port = start(cli, "chat", "--port", "0")
    talker = connect(port)
    stalled: list[socket.socket] = []
    try:
        for index in range(STALLED):
            sock = connect(port, rcvbuf=4096)
            stalled.append(sock)
            joined = f"stalled {index} joins\n".encode()
            sock.sendall(joined)  # its relay to the talker proves it is in the room
            assert read_exactly(talker, len(joined) + 1) == joined[:-1] + b"\r\n"

        filler = b"x" * (TALK_LINE - 8)
        end = time.monotonic() + TALK_FOR
        sent = 0
        while time.monotonic() < end and sent < 1_000_000:
            line = b"%06d " % sent + filler  # TALK_LINE - 1 bytes, then "\n"
            talker.sendall(line + b"\n")
            back = read_exactly(talker, len(line) + 2, within=TALK_DEADLINE)
            assert back == line + b"\r\n", (
                f"line {sent} did not come back within {TALK_DEADLINE} s "
                f"({len(back)} of {len(line) + 2} bytes)"
            )
            sent += 1

        # Every client that did not read was disconnected, and said so in the log.
        for sock in stalled:
            peer = f"127.0.0.1:{sock.getsockname()[1]}"
            proc.expect(rf"WARNING: {re.escape(peer)}: disconnected: it does not read")
            assert is_disconnected(sock), f"{peer} is still connected"
        # The server serves on: a newcomer's line reaches it and the talker.
        with connect(port) as newcomer:
            newcomer.sendall(b"still here\n")
            for sock in (newcomer, talker):
                assert read_exactly(sock, 12) == b"still here\r\n"
    finally:
        talker.close()
        for sock in stalled:
            sock.close()
    summary = SUMMARY.search(stop(proc))
    assert summary is not None
    assert int(summary.group(2)) == STALLED + 2  # accepted: the stalled, the talker, the newcomer


async def _stall_the_room(room: ChatRoom) -> tuple[list[str], list[bytes], list[str]]:
    """One reading talker and one stalled client in ``room``; talk until the stalled one
    is gone.  Returns the peers left, what the talker got back, the stalled peer."""
    server = await asyncnet.serve(room.handle, "127.0.0.1", 0)
    async with server:
        stalled = connect(server.port, rcvbuf=4096)
        stalled.setblocking(False)
        talker = await asyncnet.dial("127.0.0.1", server.port, timeout=10)
        try:
            for _ in range(500):  # until both are in the room
                if len(room) == 2:
                    break
                await asyncio.sleep(0.01)
            assert len(room) == 2, room.peers
            stalled_peer = f"127.0.0.1:{stalled.getsockname()[1]}"
            assert stalled_peer in room.peers
            got = []
            filler = "y" * 4000
            for number in range(2000):  # far more than the queue and the buffers take
                await talker.send_line(f"{number} {filler}")
                got.append(await talker.recv_line(timeout=10))
                if len(room) == 1:
                    break
            return room.peers, got, [stalled_peer]
        finally:
            await talker.aclose()
            stalled.close()


def test_chat_room_disconnects_a_member_whose_queue_overflows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from twinsock._chat import ChatRoom

    room = ChatRoom(max_queued_bytes=64 * 1024, max_queued_lines=1000)
    with caplog.at_level(logging.WARNING, logger="twinsock.chat"):
        peers, got, (stalled_peer,) = asyncio.run(_stall_the_room(room))
    assert len(peers) == 1 and stalled_peer not in peers
    assert got == [f"{n} {'y' * 4000}".encode() for n in range(len(got))]  # all, in order
    warnings = [r.getMessage() for r in caplog.records if r.name == "twinsock.chat"]
    assert any(w.startswith(f"{stalled_peer}: disconnected: it does not read") for w in warnings)


def test_chat_room_refuses_a_queue_without_room() -> None:
    from twinsock._chat import ChatRoom

    with pytest.raises(ValueError):
        ChatRoom(max_queued_bytes=0)
    with pytest.raises(ValueError):
        ChatRoom(max_queued_lines=0)


# -- signals, the listening line and the summary ----------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["echo", "chat"])
def test_a_signal_stops_the_server_with_exit_0_and_a_summary(
    cli: list[Child], command: str, signum: int
) -> None:
    proc, port = start(cli, command, "--port", "0")
    with connect(port) as client:
        client.sendall(b"hello\n")
        assert read_exactly(client, 7) == b"hello\r\n"
    output = stop(proc, signum)
    summary = SUMMARY.search(output)
    assert summary is not None, output
    assert int(summary.group(1)) == port
    assert summary.group(2, 3) == ("1", "1")  # accepted, closed
    assert summary.group(4, 5) == ("6", "7")  # bytes received, sent


def test_echo_with_workers_serves_and_stops_on_sigterm(cli: list[Child]) -> None:
    proc, port = start(cli, "echo", "--port", "0", "--workers", "2")
    proc.expect(LISTENING)  # the second worker
    clients = 8
    for number in range(clients):
        with connect(port) as client:
            client.sendall(b"%d\n" % number)
            assert read_exactly(client, 3) == b"%d\r\n" % number
    output = stop(proc)
    assert "with 2 worker processes" in output
    accepted = [int(m.group(2)) for m in SUMMARY.finditer(output)]
    assert len(accepted) == 3, output  # each worker's, then the parent's sum
    assert accepted[-1] == clients == sum(accepted[:-1])


# -- --max-connections, --call-timeout --------------------------------------------------------


@pytest.mark.parametrize("command", [["echo"], ["echo", "--tasks"], ["chat"]])
def test_max_connections_leaves_the_next_client_waiting(
    cli: list[Child], command: list[str]
) -> None:
    proc, port = start(cli, *command, "--port", "0", "--max-connections", "1")
    with connect(port) as first, connect(port) as second:
        first.sendall(b"one\n")
        assert read_exactly(first, 5) == b"one\r\n"
        second.sendall(b"two\n")  # the kernel took the connection; the server did not
        assert read_exactly(second, 5, within=0.5) == b""
        first.close()
        assert read_exactly(second, 5) == b"two\r\n"
    stop(proc)


@pytest.mark.parametrize("command", [["echo"], ["echo", "--tasks"], ["chat"]])
def test_call_timeout_disconnects_an_idle_client(cli: list[Child], command: list[str]) -> None:
    proc, port = start(cli, *command, "--port", "0", "--call-timeout", "0.5")
    with connect(port) as client:
        client.sendall(b"hi\n")
        assert read_exactly(client, 4) == b"hi\r\n"
        assert is_disconnected(client)  # then idle: closed after 0.5 s
    stop(proc)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["echo", "--workers", "-1"], "--workers"),
        (["echo", "--workers", "many"], "--workers"),
        (["echo", "--max-connections", "0"], "--max-connections"),
        (["chat", "--max-connections", "1.5"], "--max-connections"),
        (["chat", "--call-timeout", "0"], "--call-timeout"),
        (["echo", "--call-timeout", "soon"], "--call-timeout"),
        (["chat", "--grace", "-1"], "--grace"),
        (["echo", "--grace", "nan"], "--grace"),
        (["echo", "--lines", "--tasks"], "--tasks"),
    ],
)
def test_a_bad_serving_option_exits_2_naming_it(args: list[str], option: str) -> None:
    with twinsock_cli(*args, "--port", "0") as child:
        status = child.wait(30)
        output = child.output()
    assert status == 2, output
    lines = output.splitlines()
    assert len(lines) == 1 and "Traceback" not in output, output
    assert f"argument {option}:" in lines[0]


@pytest.mark.parametrize(
    ("flags", "served"),
    [([], "echo_line"), (["--lines"], "echo_line"), (["--tasks"], "echo")],
)
def test_echo_serves_lines_by_default_and_tasks_on_request(
    flags: list[str], served: str
) -> None:
    # serve_lines measured faster than a task per connection on both loops
    # (bench/README.md), so it is the default; --tasks keeps the coroutine echo.
    from twinsock import _chat, _cli_servers, cli

    args = cli.build_parser().parse_args(["echo", *flags])
    handler, lines = _cli_servers.echo_handler(args)
    assert handler is getattr(_chat, served)
    assert lines is (served == "echo_line")
