"""One reader and one writer at a time (SPEC section 0, "Busy sockets"), on every kind.

A first call waits in another thread (the async kinds run it on their loop
through the proxy of ``tests/twins.py``); a second call of the same side
must raise ``BusyError`` at once, and the first must go on undisturbed:
the reader gets its line, the peer receives exactly the first writer's
bytes, nothing of the second interleaved.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from conftest import stdlib_pair
from twinsock.errors import BusyError, NetError
from twinsock.nativesockets import Domain, Protocol, SockType

SETTLE = 0.2


class Background:
    """A call running in a thread; ``result()`` joins it."""

    def __init__(self, call: Any) -> None:
        self._outcome: list[Any] = []
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Any) -> None:
        try:
            self._outcome.append(call())
        except BaseException as exc:  # handed to the test by result()
            self._outcome.append(exc)

    def alive(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout: float = 10) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the first call did not finish"
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_busy_error_is_a_net_error_and_a_runtime_error() -> None:
    assert issubclass(BusyError, NetError) and issubclass(BusyError, RuntimeError)


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(lambda s: s.recv(1), id="recv"),
        pytest.param(lambda s: s.recv(1, timeout=1), id="recv-timeout"),
        pytest.param(lambda s: s.recv_line(), id="recv_line"),
        pytest.param(lambda s: s.recv_line(timeout=1), id="recv_line-timeout"),
        pytest.param(lambda s: s.read_line(timeout=1), id="read_line"),
        pytest.param(lambda s: s.recv_into(bytearray(4)), id="recv_into"),
        pytest.param(lambda s: s.skip(2), id="skip"),
        pytest.param(lambda s: s.recv_until(b"\0", timeout=1), id="recv_until"),
    ],
)
def test_two_readers(kind: Any, second: Any) -> None:
    ours, peer = stdlib_pair("tcp4")
    twin = kind.from_native(ours)
    try:
        first = Background(lambda: twin.recv_line(timeout=10))
        time.sleep(SETTLE)
        assert first.alive()
        started = time.monotonic()
        with pytest.raises(BusyError, match="already"):
            second(twin)
        assert time.monotonic() - started < 0.5  # at once, not after its own wait
        peer.sendall(b"for the first\nrest")
        assert first.result() == b"for the first"
        assert twin.recv(4, timeout=5) == b"rest"  # the socket is usable again
    finally:
        twin.close()
        peer.close()


@pytest.mark.parametrize("timeout", [None, 10.0])
def test_two_writers(kind: Any, timeout: float | None) -> None:
    ours, peer = stdlib_pair("tcp4")
    twin = kind.from_native(ours)
    payload = b"w" * (16 << 20)  # more than the kernel and the transport buffer
    try:
        first = Background(lambda: twin.send(payload, timeout=timeout))
        time.sleep(SETTLE)
        assert first.alive()  # the peer does not read yet: the first send waits
        calls: list[Callable[[], Any]] = [
            lambda: twin.send(b"interleaved?"),
            lambda: twin.send(b"!", timeout=1),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(BusyError, match="already"):
                call()
            assert time.monotonic() - started < 0.5
        assert twin.try_send(b"interleaved?") is False
        received = bytearray()
        peer.settimeout(10)
        while len(received) < len(payload):
            chunk = peer.recv(1 << 20)
            assert chunk
            received += chunk
        first.result()
        twin.send(b"after")  # the socket is usable again
        tail = peer.recv(100)
        assert bytes(received) == payload and tail == b"after"
    finally:
        twin.close()
        peer.close()


def test_two_acceptors(kind: Any) -> None:
    """Threads may share a blocking listener (docs/decisions.md); an event loop watches
    one reader per fd, so a second task accepting on one listener is refused."""
    listener = kind.new()
    try:
        listener.bind_addr(0, "127.0.0.1")
        listener.listen()
        address = ("127.0.0.1", listener.get_local_addr()[1])
        first = Background(lambda: listener.accept(timeout=10))
        time.sleep(SETTLE)
        if kind.name == "blocking":
            second = Background(lambda: listener.accept(timeout=10))
            time.sleep(SETTLE)
            with socket.create_connection(address, 5), socket.create_connection(address, 5):
                accepted = [first.result(), second.result()]
            assert all(not conn.is_closed() for conn in accepted)
            for conn in accepted:
                conn.close()
            return
        with pytest.raises(BusyError):
            listener.accept(timeout=1)
        with socket.create_connection(address, 5):
            first.result().close()
    finally:
        listener.close()


def test_two_datagram_readers(kind: Any) -> None:
    udp = kind.new(Domain.AF_INET, SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP)
    try:
        udp.bind_addr(0, "127.0.0.1")
        first = Background(lambda: udp.recv_from(100, timeout=10))
        time.sleep(SETTLE)
        with pytest.raises(BusyError):
            udp.recv_from(100, timeout=1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"one", ("127.0.0.1", udp.get_local_addr()[1]))
        assert first.result()[0] == b"one"
    finally:
        udp.close()


def test_a_reader_and_a_writer_may_work_at_once(kind: Any) -> None:
    ours, peer = stdlib_pair("tcp4")
    twin = kind.from_native(ours)
    try:
        reader = Background(lambda: twin.recv_line(timeout=10))
        time.sleep(SETTLE)
        twin.send(b"ping\n")
        assert peer.recv(5) == b"ping\n"
        peer.sendall(b"pong\n")
        assert reader.result() == b"pong"
    finally:
        twin.close()
        peer.close()
