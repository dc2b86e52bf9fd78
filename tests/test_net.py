"""``twinsock.net`` beyond the conformance suite: dial, connect, accept, UDP, Unix
sockets, the buffer bound, direct ``recv_into``, bad input and options.

Everything runs over real loopback sockets (127.0.0.1, ::1, Unix) on port 0.
Behaviour both socket kinds share goes through the ``kind`` fixture, so these
tests also run on the async socket once it exists; only blocking-only things
(``get_primary_ip_addr``, ``is_disconnection_error``) use ``twinsock.net``
directly.

Two loopback tricks stand in for remote hosts:

* a *refusing* port is a socket that is bound but does not listen: a connect
  to it is answered with a reset (``ConnectionRefusedError``), and keeping the
  socket open reserves the port;
* an *unanswering* port is a listener with ``listen(0)`` whose accept queue is
  full (one connection completed, nobody accepts): Linux then drops further
  SYNs, so a connect to it hangs like one to a host that never answers.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import select
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from conftest import stdlib_pair
from twinsock import net
from twinsock._blocking import socket as _blocking_socket
from twinsock._core.buffer import READ_CHUNK, ReadBuffer
from twinsock.addresses import parse_ip_address
from twinsock.errors import AddressError, LineTooLong, NetTimeout, SocketClosedError
from twinsock.nativesockets import Domain, Protocol, SockType
from twinsock.net import SocketFlag, SockOpt

V4 = "127.0.0.1"
V6 = "::1"
FAMILY = {V4: socket.AF_INET, V6: socket.AF_INET6}
DOMAIN = {V4: Domain.AF_INET, V6: Domain.AF_INET6}

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux")


# -- helpers ------------------------------------------------------------------------


def sockaddr(host: str, port: int) -> tuple[Any, ...]:
    return (host, port, 0, 0) if ":" in host else (host, port)


@contextlib.contextmanager
def listening(host: str, port: int = 0) -> Iterator[socket.socket]:
    """A stdlib listener on ``host:port`` (connections complete without accept)."""
    sock = socket.socket(FAMILY[host])
    try:
        sock.bind(sockaddr(host, port))
        sock.listen(16)
        yield sock
    finally:
        sock.close()


@contextlib.contextmanager
def refusing(host: str, port: int = 0) -> Iterator[int]:
    """A port on ``host`` that refuses connections (bound, not listening)."""
    sock = socket.socket(FAMILY[host])
    try:
        sock.bind(sockaddr(host, port))
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextlib.contextmanager
def unanswering(host: str) -> Iterator[int]:
    """A port on ``host`` whose SYNs are dropped: connects to it hang."""
    listener = socket.socket(FAMILY[host])
    fillers: list[socket.socket] = []
    try:
        listener.bind(sockaddr(host, 0))
        listener.listen(0)
        target = listener.getsockname()
        for _ in range(3):
            filler = socket.socket(FAMILY[host])
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex(target)
        # the first one completes and fills the queue; wait for that (bounded)
        poller = select.poll()
        poller.register(fillers[0], select.POLLOUT)
        assert poller.poll(5000), "the queue-filling connection never completed"
        yield target[1]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def make_resolver(*hosts: str) -> tuple[Callable[..., Sequence[tuple[Any, ...]]], list[Any]]:
    """A ``dial`` resolver that maps any name to ``hosts`` (in that order)."""
    calls: list[Any] = []

    def resolve(host: str, port: int, family: int, sock_type: int) -> list[tuple[Any, ...]]:
        calls.append((host, port, family, sock_type))
        return [(FAMILY[h], sock_type, 0, "", sockaddr(h, port)) for h in hosts]

    return resolve, calls


@contextlib.contextmanager
def dual_ports(listen_on: str) -> Iterator[int]:
    """One port number P where ``listen_on``:P listens and the other family's P refuses."""
    other = V6 if listen_on == V4 else V4
    for _ in range(20):
        with listening(listen_on) as listener:
            port = listener.getsockname()[1]
            try:
                ctx = refusing(other, port)
                ctx.__enter__()
            except OSError:
                continue  # the other family's P is taken: try another P
            try:
                yield port
            finally:
                ctx.__exit__(None, None, None)
            return
    pytest.fail("could not find a port free on both 127.0.0.1 and ::1")


def xfail_on_async(request: pytest.FixtureRequest, kind: Any, reason: str) -> None:
    """Mark this test an expected failure (strict) on the async kinds only."""
    if kind.name != "blocking":
        request.node.add_marker(pytest.mark.xfail(reason=f"asyncnet: {reason}", strict=True))


def fd_identity(fd: int) -> tuple[int, int] | None:
    """What ``fd`` refers to (``None``: closed); a reused number shows another inode."""
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def assert_fds_back_to(before: int) -> None:
    """The process holds ``before`` fds again (async closes may take a loop turn)."""
    for _ in range(100):
        if fd_count() <= before:
            return
        time.sleep(0.02)
    assert fd_count() == before, f"leaked {fd_count() - before} file descriptors"


def target(twin: Any) -> Any:
    """The real socket behind a kind's proxy (the blocking kind has no proxy)."""
    return getattr(twin, "_target", twin)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def raw_view(twin: Any) -> socket.socket:
    """A stdlib socket on a dup of ``twin``'s fd, to read options independently."""
    return socket.socket(fileno=os.dup(twin.fileno()))


def reset_and_close(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.fixture
def short_tmpdir() -> Iterator[str]:
    """A short directory for Unix socket paths (sun_path holds 108 bytes)."""
    path = tempfile.mkdtemp(prefix="tsk-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- dial ---------------------------------------------------------------------------------


class TestDial:
    @pytest.mark.parametrize("order", [(V6, V4), (V4, V6)], ids=["v6-first", "v4-first"])
    @pytest.mark.parametrize("listen_on", [V4, V6], ids=["v4-listens", "v6-listens"])
    def test_connects_to_whichever_family_listens(
        self, kind: Any, order: tuple[str, str], listen_on: str
    ) -> None:
        resolver, calls = make_resolver(*order)
        with (
            dual_ports(listen_on) as port,
            kind.call(kind.module.dial, "dual.test", port, timeout=5, resolver=resolver) as conn,
        ):
            assert conn.get_peer_addr() == (listen_on, port)
            assert conn.domain == DOMAIN[listen_on]
        assert calls == [("dual.test", port, socket.AF_UNSPEC, socket.SOCK_STREAM)]

    def test_resolver_also_used_without_timeout(self, kind: Any) -> None:
        resolver, calls = make_resolver(V6, V4)
        with (
            dual_ports(V4) as port,
            kind.call(kind.module.dial, "dual.test", port, resolver=resolver) as conn,
        ):
            assert conn.get_peer_addr() == (V4, port)
        assert len(calls) == 1

    @pytest.mark.parametrize("timeout", [None, 5.0])
    def test_nothing_listens_refused_with_one_note_per_attempt(
        self, kind: Any, timeout: float | None, request: pytest.FixtureRequest
    ) -> None:
        resolver, _ = make_resolver(V6, V4)
        with refusing(V4) as port, refusing(V6, port):
            before = fd_count()
            with pytest.raises(ConnectionRefusedError) as info:
                kind.call(kind.module.dial, "dual.test", port, timeout=timeout,
                          resolver=resolver)
        notes = getattr(info.value, "__notes__", [])
        assert len(notes) == 2, notes
        assert any(f"[::1]:{port}" in note for note in notes), notes
        assert any(f"127.0.0.1:{port}" in note for note in notes), notes
        assert_fds_back_to(before)

    def test_numeric_address_refused_has_a_note(self, kind: Any) -> None:
        with refusing(V4) as port, pytest.raises(ConnectionRefusedError) as info:
            kind.call(kind.module.dial, V4, port, timeout=5)
        assert len(info.value.__notes__) == 1
        assert f"127.0.0.1:{port}" in info.value.__notes__[0]

    @pytest.mark.parametrize("host", [V4, V6])
    def test_unanswering_address_times_out_within_the_deadline(
        self, kind: Any, host: str
    ) -> None:
        with unanswering(host) as port:
            before = fd_count()
            started = time.monotonic()
            with pytest.raises(NetTimeout) as info:
                kind.call(kind.module.dial, host, port, timeout=0.5)
            elapsed = time.monotonic() - started
            assert_fds_back_to(before)  # the hung attempt was closed
        assert isinstance(info.value, TimeoutError)
        assert "0.5" in str(info.value)
        assert elapsed < 3.0

    def test_deadline_covers_every_unanswering_address(self, kind: Any) -> None:
        with unanswering(V4) as port4, unanswering(V6) as port6:
            # the two unanswering ports differ: map each family to its own
            def resolve(host: str, port: int, family: int, sock_type: int) -> list[Any]:
                return [
                    (socket.AF_INET6, sock_type, 0, "", (V6, port6, 0, 0)),
                    (socket.AF_INET, sock_type, 0, "", (V4, port4)),
                ]

            before = fd_count()
            started = time.monotonic()
            with pytest.raises(NetTimeout):
                kind.call(kind.module.dial, "dual.test", 1, timeout=0.8, resolver=resolve)
            assert time.monotonic() - started < 3.5
            assert_fds_back_to(before)

    @pytest.mark.parametrize("slow", [V4, V6], ids=["v4-hangs", "v6-hangs"])
    def test_happy_eyeballs_second_address_wins(self, kind: Any, slow: str) -> None:
        fast = V6 if slow == V4 else V4
        with unanswering(slow) as slow_port, listening(fast) as listener:
            fast_port = listener.getsockname()[1]

            def resolve(host: str, port: int, family: int, sock_type: int) -> list[Any]:
                return [
                    (FAMILY[slow], sock_type, 0, "", sockaddr(slow, slow_port)),
                    (FAMILY[fast], sock_type, 0, "", sockaddr(fast, fast_port)),
                ]

            before = fd_count()
            started = time.monotonic()
            conn = kind.call(kind.module.dial, "dual.test", 80, timeout=10, resolver=resolve)
            elapsed = time.monotonic() - started
            try:
                assert conn.get_peer_addr() == (fast, fast_port)
            finally:
                conn.close()
            # the first attempt would only give up at 10 s: the 250 ms stagger started
            # the second one long before (a generous bound for a loaded machine)
            assert elapsed < 3.0
            assert_fds_back_to(before)  # the hung loser was closed

    def test_first_success_wins_and_is_usable(self, kind: Any) -> None:
        with listening(V4) as listener:
            port = listener.getsockname()[1]
            conn = kind.call(kind.module.dial, V4, port, timeout=5)
            server, _ = listener.accept()
            with conn, server:
                conn.send(b"ping\n")
                server.settimeout(5)
                assert server.recv(100) == b"ping\n"
                server.sendall(b"pong\r\n")
                assert conn.recv_line(timeout=5) == b"pong"
                assert conn.buffered

    def test_dial_unbuffered(self, kind: Any) -> None:
        with listening(V6) as listener:
            port = listener.getsockname()[1]
            with kind.call(kind.module.dial, V6, port, buffered=False, timeout=5) as conn:
                assert not conn.buffered

    def test_udp_dial(self, kind: Any) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
            server.bind((V4, 0))
            server.settimeout(5)
            port = server.getsockname()[1]
            with kind.call(kind.module.dial, V4, port, protocol=Protocol.IPPROTO_UDP,
                           timeout=5) as conn:
                assert conn.sock_type == SockType.SOCK_DGRAM
                conn.send(b"ping")
                data, peer = server.recvfrom(100)
                assert data == b"ping"
                assert peer == conn.get_local_addr()
                server.sendto(b"pong", peer)
                assert conn.recv_from(100, timeout=5) == (b"pong", V4, port)

    def test_bad_input(self, kind: Any) -> None:
        with pytest.raises(AddressError):
            kind.call(kind.module.dial, V4, 70000)
        with pytest.raises(AddressError):
            kind.call(kind.module.dial, V4, -1)
        with pytest.raises(ValueError):
            kind.call(kind.module.dial, V4, 80, timeout=-1)
        with pytest.raises(TypeError):
            kind.call(kind.module.dial, V4, 80, timeout="1")
        with pytest.raises(TypeError):
            kind.call(kind.module.dial, 12345, 80)

    @pytest.mark.parametrize("text", ["1.2.3.999", "010.0.0.1", "127.1", "::1::2", "1:2"])
    def test_malformed_ip_text(self, kind: Any, text: str) -> None:
        with pytest.raises(AddressError) as info:
            kind.call(kind.module.dial, text, 80, timeout=5)
        assert repr(text) in str(info.value)


# -- Socket.connect ---------------------------------------------------------------------------


class TestConnect:
    @pytest.mark.parametrize("host", [V4, V6])
    @pytest.mark.parametrize("timeout", [None, 5.0])
    def test_closed_port_refused(self, kind: Any, host: str, timeout: float | None) -> None:
        with refusing(host) as port, kind.new(DOMAIN[host]) as sock:
            with pytest.raises(ConnectionRefusedError) as info:
                sock.connect(host, port, timeout=timeout)
            assert len(info.value.__notes__) == 1

    @pytest.mark.parametrize("host", [V4, V6])
    def test_unanswering_times_out_within_the_deadline(self, kind: Any, host: str) -> None:
        with unanswering(host) as port, kind.new(DOMAIN[host]) as sock:
            started = time.monotonic()
            with pytest.raises(NetTimeout) as info:
                sock.connect(host, port, timeout=0.5)
            assert time.monotonic() - started < 3.0
            assert "connect" in str(info.value)

    def test_family_mismatch(self, kind: Any) -> None:
        with kind.new(Domain.AF_INET) as sock, pytest.raises(AddressError):
            sock.connect(V6, 80)
        with kind.new(Domain.AF_INET6) as sock, pytest.raises(AddressError):
            sock.connect(V4, 80)

    def test_host_name_localhost(self, kind: Any) -> None:
        with listening(V4) as listener, kind.new() as sock:
            sock.connect("localhost", listener.getsockname()[1], timeout=5)
            server, _ = listener.accept()
            with server:
                server.sendall(b"hi\n")
                assert sock.recv_line(timeout=5) == b"hi"
                assert sock.get_peer_addr() == listener.getsockname()

    def test_host_name_localhost_without_timeout(self, kind: Any) -> None:
        with listening(V4) as listener, kind.new() as sock:
            sock.connect("localhost", listener.getsockname()[1])
            assert sock.get_peer_addr() == listener.getsockname()

    @pytest.mark.parametrize("text", ["1.2.3.999", "010.0.0.1", "::1::2"])
    def test_malformed_ip_text(self, kind: Any, text: str) -> None:
        domain = Domain.AF_INET6 if ":" in text else Domain.AF_INET
        with kind.new(domain) as sock, pytest.raises(AddressError):
            sock.connect(text, 80, timeout=5)

    def test_bad_port_and_types(self, kind: Any) -> None:
        with kind.new() as sock:
            with pytest.raises(AddressError):
                sock.connect(V4, 70000)
            with pytest.raises(AddressError):
                sock.connect(V4, "80")
            with pytest.raises(TypeError):
                sock.connect(None, 80)
            with pytest.raises(ValueError):
                sock.connect(V4, 80, timeout=-0.5)


# -- accept ---------------------------------------------------------------------------------


class TestAccept:
    def test_skips_a_client_that_reset_before_accept(self, kind: Any) -> None:
        with kind.new() as listener:
            listener.bind_addr(0, V4)
            listener.listen()
            port = listener.get_local_addr()[1]
            bad = socket.create_connection((V4, port), timeout=5)
            reset_and_close(bad)
            time.sleep(0.05)  # let the reset reach the queued connection
            good = socket.create_connection((V4, port), timeout=5)
            with good:
                good.sendall(b"good\n")
                client, addr = listener.accept_addr(timeout=5)
                with client:
                    assert addr == V4
                    assert client.get_peer_addr() == good.getsockname()
                    assert client.recv_line(timeout=5) == b"good"

    def test_timeout_without_client(self, kind: Any) -> None:
        with kind.new() as listener:
            listener.bind_addr(0, V4)
            listener.listen()
            started = time.monotonic()
            with pytest.raises(NetTimeout) as info:
                listener.accept(timeout=0.2)
            assert time.monotonic() - started < 3.0
            assert "accept" in str(info.value)
            # still a working listener afterwards
            with socket.create_connection((V4, listener.get_local_addr()[1]), timeout=5):
                listener.accept(timeout=5).close()

    def test_accept_addr_ipv6_peer_text(self, kind: Any) -> None:
        with kind.new(Domain.AF_INET6) as listener:
            listener.bind_addr(0, V6)
            listener.listen()
            port = listener.get_local_addr()[1]
            with socket.create_connection((V6, port), timeout=5) as peer:
                client, addr = listener.accept_addr(timeout=5)
                with client:
                    assert addr == "::1"
                    assert client.get_peer_addr() == (V6, peer.getsockname()[1])
                    assert client.domain == Domain.AF_INET6

    @pytest.mark.parametrize("buffered", [True, False])
    def test_client_inherits_buffered(self, kind: Any, buffered: bool) -> None:
        with kind.new(buffered=buffered) as listener:
            listener.bind_addr(0, V4)
            listener.listen()
            port = listener.get_local_addr()[1]
            with (
                socket.create_connection((V4, port), timeout=5),
                listener.accept(timeout=5) as client,
            ):
                assert client.buffered is buffered

    def test_bind_any_address(self, kind: Any) -> None:
        with kind.new() as listener:
            listener.bind_addr()
            listener.listen()
            host, port = listener.get_local_addr()
            assert host == "0.0.0.0" and port > 0
            with socket.create_connection((V4, port), timeout=5):
                listener.accept(timeout=5).close()

    def test_inheritable_client(self, kind: Any) -> None:
        with kind.new() as listener:
            listener.bind_addr(0, V4)
            listener.listen()
            port = listener.get_local_addr()[1]
            with (
                socket.create_connection((V4, port), timeout=5),
                listener.accept(timeout=5, inheritable=True) as client,
            ):
                assert os.get_inheritable(client.fileno())


# -- UDP -------------------------------------------------------------------------------------


@pytest.fixture(params=[V4, V6])
def udp_pair(kind: Any, request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any, str]]:
    """(receiver, sender, host): two bound UDP sockets of the kind."""
    host = str(request.param)
    receiver = kind.new(DOMAIN[host], SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP)
    sender = kind.new(DOMAIN[host], SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP)
    receiver.bind_addr(0, host)
    sender.bind_addr(0, host)
    yield receiver, sender, host
    receiver.close()
    sender.close()


class TestUdp:
    def test_send_to_recv_from_gives_the_sender(self, udp_pair: Any) -> None:
        receiver, sender, host = udp_pair
        port = receiver.get_local_addr()[1]
        sender.send_to(host, port, b"hello")
        assert receiver.recv_from(100, timeout=5) == (b"hello", host, sender.get_local_addr()[1])
        sender.send_to(host, port, "héllo")
        assert receiver.recv_from(100, timeout=5)[0] == "héllo".encode()

    def test_long_datagram_is_truncated(self, udp_pair: Any) -> None:
        receiver, sender, host = udp_pair
        port = receiver.get_local_addr()[1]
        sender.send_to(host, port, b"0123456789" * 10)
        sender.send_to(host, port, b"next")
        assert receiver.recv_from(10, timeout=5)[0] == b"0123456789"
        # the rest of the long datagram is gone; the next one is whole
        assert receiver.recv_from(100, timeout=5)[0] == b"next"

    def test_empty_datagram(self, udp_pair: Any) -> None:
        receiver, sender, host = udp_pair
        sender.send_to(host, receiver.get_local_addr()[1], b"")
        assert receiver.recv_from(100, timeout=5) == (b"", host, sender.get_local_addr()[1])

    def test_recv_from_timeout(self, udp_pair: Any) -> None:
        receiver, _, _ = udp_pair
        started = time.monotonic()
        with pytest.raises(NetTimeout) as info:
            receiver.recv_from(100, timeout=0.2)
        assert time.monotonic() - started < 3.0
        assert "recv_from" in str(info.value)

    def test_recv_from_peek(self, udp_pair: Any) -> None:
        receiver, sender, host = udp_pair
        sender.send_to(host, receiver.get_local_addr()[1], b"peeked")
        flags = SocketFlag.PEEK | SocketFlag.SAFE_DISCONN
        assert receiver.recv_from(100, flags=flags, timeout=5)[0] == b"peeked"
        assert receiver.recv_from(100, timeout=5)[0] == b"peeked"

    def test_send_to_host_name(self, kind: Any) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
            server.bind((V4, 0))
            server.settimeout(5)
            with kind.new(Domain.AF_INET, SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP) as sock:
                sock.send_to("localhost", server.getsockname()[1], b"by name")
                assert server.recvfrom(100)[0] == b"by name"

    def test_bad_input(self, udp_pair: Any) -> None:
        receiver, sender, host = udp_pair
        other = V4 if host == V6 else V6
        with pytest.raises(AddressError):
            sender.send_to(host, 70000, b"x")
        with pytest.raises(AddressError):
            sender.send_to(other, 9, b"x")
        with pytest.raises(AddressError):
            sender.send_to("1.2.3.999" if host == V4 else "::1::2", 9, b"x")
        with pytest.raises(ValueError):
            receiver.recv_from(-1)
        with pytest.raises(TypeError):
            sender.send_to(host, receiver.get_local_addr()[1], 12345)

    def test_send_to_on_a_stream_socket(self, kind: Any) -> None:
        with kind.new() as sock:
            with pytest.raises(OSError) as info:
                sock.send_to(V4, 9, b"x")
            assert not isinstance(info.value, SocketClosedError)
            assert info.value.errno == errno.EOPNOTSUPP
            assert "send_to" in str(info.value) and "datagram" in str(info.value)


# -- Unix sockets ------------------------------------------------------------------------------


def unix_round_trip(kind: Any, address: str) -> None:
    with kind.new(Domain.AF_UNIX, SockType.SOCK_STREAM) as server:
        server.bind_unix(address)
        server.listen()
        assert server.get_local_addr() == (address, 0)
        with kind.new(Domain.AF_UNIX, SockType.SOCK_STREAM) as client:
            client.connect_unix(address, timeout=5)
            with server.accept(timeout=5) as conn:
                client.send(b"from client\r\n")
                assert conn.recv_line(timeout=5) == b"from client"
                conn.send(b"from server\n")
                assert client.recv_line(timeout=5) == b"from server"
                client.close()
                assert conn.recv_line(timeout=5) == b""


class TestUnix:
    def test_filesystem_path(self, kind: Any, short_tmpdir: str) -> None:
        path = os.path.join(short_tmpdir, "s")
        unix_round_trip(kind, path)
        assert os.path.exists(path)

    def test_abstract_name(self, kind: Any) -> None:
        name = f"\0twinsock-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        unix_round_trip(kind, name)

    def test_connect_without_timeout(self, kind: Any) -> None:
        name = f"\0twinsock-test-{uuid.uuid4().hex[:12]}"
        with kind.new(Domain.AF_UNIX) as server:
            server.bind_unix(name)
            server.listen()
            with kind.new(Domain.AF_UNIX) as client:
                client.connect_unix(name)
                server.accept(timeout=5).close()

    def test_connect_to_missing_path(self, kind: Any, short_tmpdir: str) -> None:
        with kind.new(Domain.AF_UNIX) as client, pytest.raises(FileNotFoundError):
            client.connect_unix(os.path.join(short_tmpdir, "missing"), timeout=5)

    def test_bad_input(self, kind: Any) -> None:
        with kind.new(Domain.AF_UNIX) as sock:
            with pytest.raises(ValueError):
                sock.bind_addr(0, V4)
            with pytest.raises(ValueError):
                sock.bind_unix("")
            with pytest.raises(TypeError):
                sock.bind_unix(123)
            with pytest.raises(TypeError):
                sock.connect_unix(None)
        with kind.new() as tcp:
            with pytest.raises(ValueError):
                tcp.bind_unix("\0nope")
            with pytest.raises(ValueError):
                tcp.connect_unix("\0nope")


# -- the buffer bound and direct reads -----------------------------------------------------------


class TrackingBuffer(ReadBuffer):
    """A real read buffer that records how much was fed and its largest size."""

    def __init__(self) -> None:
        super().__init__()
        self.fed = 0
        self.peak = 0

    def feed(self, data: bytes) -> int:
        size = super().feed(data)
        self.fed += len(data)
        self.peak = max(self.peak, len(self))
        return size


def install_tracking_buffer(twin: Any) -> TrackingBuffer:
    real = target(twin)
    if not isinstance(getattr(real, "_buf", None), ReadBuffer):
        pytest.skip("this socket kind does not read through a ReadBuffer")
    tracker = TrackingBuffer()
    real._buf = tracker
    return tracker


def start_sender(
    peer: socket.socket, chunk: bytes, count: int, tail: bytes = b""
) -> threading.Thread:
    def run() -> None:
        try:
            for _ in range(count):
                peer.sendall(chunk)
            peer.sendall(tail)
        except OSError:
            pass  # the test ended early and closed the peer

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class TestBufferBound:
    def test_100_mb_without_a_newline(self, kind: Any, request: pytest.FixtureRequest) -> None:
        max_length = 65536
        # max_length + one read chunk + slack; uvloop's transport reads 256,000 bytes,
        # the blocking socket _blocking.socket._FILL_SIZE
        chunks = {"uvloop": 256_000, "blocking": _blocking_socket._FILL_SIZE}
        read_chunk = chunks.get(kind.name, READ_CHUNK)
        bound = max_length + read_chunk + 4096
        chunk = b"x" * (1 << 20)
        total = 100 * len(chunk)
        ours, peer = stdlib_pair("tcp4")
        twin = kind.from_native(ours)
        tracker = install_tracking_buffer(twin)
        rss_before = rss_bytes()
        rss_peak = rss_before
        sender = start_sender(peer, chunk, 100, b"\nafter\n")
        try:
            skipped = too_long = 0
            line = None
            for i in range(20_000):  # ~1600 rounds are needed; bounded anyway
                try:
                    line = twin.recv_line(timeout=10, max_length=max_length)
                except LineTooLong as exc:
                    assert exc.max_length == max_length
                    too_long += 1
                    held = len(twin._buf)
                    assert held <= bound
                    skipped += twin.skip(min(held, total - skipped), timeout=10)
                    if i % 64 == 0:
                        rss_peak = max(rss_peak, rss_bytes())
                    continue
                break
            assert line is not None, "never got past the long line"
            rss_peak = max(rss_peak, rss_bytes())
            tail = total - skipped
            assert 0 <= tail <= max_length
            assert line == (b"x" * tail or b"\r\n")
            assert too_long > 0
            assert twin.recv_line(timeout=10) == b"after"
            assert tracker.peak <= bound
            assert tracker.fed == 0 or tracker.fed >= total  # the tracker really saw the data
            assert rss_peak - rss_before < 20 * 1024 * 1024, (rss_before, rss_peak)
        finally:
            twin.close()
            peer.close()
            sender.join(timeout=10)

    def test_recv_into_large_buffer_skips_the_read_buffer(
        self, kind: Any, request: pytest.FixtureRequest
    ) -> None:
        if kind.name != "blocking":
            pytest.skip("the async transport reads into its own buffer and copies out "
                        "(docs/decisions.md); the bar is the blocking socket's")
        pattern = bytes(range(256)) * 4096  # 1 MiB
        ours, peer = stdlib_pair("tcp4")
        twin = kind.from_native(ours)
        tracker = install_tracking_buffer(twin)
        sender = start_sender(peer, pattern, 8)
        try:
            target_buf = bytearray(65536)
            view = memoryview(target_buf)
            received = 0
            for _ in range(8 * len(pattern) // len(target_buf)):
                n = twin.recv_into(target_buf, timeout=10)
                assert n == len(target_buf)  # buffered: waits for the whole size
                offset = received % len(pattern)
                assert view[:n] == pattern[offset : offset + n]
                received += n
            assert received == 8 * len(pattern)
            assert tracker.fed <= 65536, f"{tracker.fed} bytes went through the read buffer"
        finally:
            twin.close()
            peer.close()
            sender.join(timeout=10)


# -- bad input ----------------------------------------------------------------------------------


class TestBadInput:
    @pytest.mark.parametrize("text", ["1.2.3.999", "01.2.3.4", "::1::2"])
    def test_bind_addr_malformed_ip(self, kind: Any, text: str) -> None:
        domain = Domain.AF_INET6 if ":" in text else Domain.AF_INET
        with kind.new(domain) as sock, pytest.raises(AddressError):
            sock.bind_addr(0, text)

    def test_bind_addr_port_and_family(self, kind: Any) -> None:
        with kind.new() as sock:
            with pytest.raises(AddressError):
                sock.bind_addr(70000, V4)
            with pytest.raises(AddressError):
                sock.bind_addr(-1)
            with pytest.raises(AddressError):
                sock.bind_addr(0, V6)
            with pytest.raises(TypeError):
                sock.bind_addr(0, 127)

    def test_negative_sizes(self, pair: Any) -> None:
        twin, _ = pair
        with pytest.raises(ValueError):
            twin.recv_into(bytearray(10), -1)
        with pytest.raises(ValueError):
            twin.read_line(max_length=-1)
        with pytest.raises(ValueError):
            twin.recv_line_into(bytearray(), max_length=-1)

    def test_wrong_types(self, pair: Any) -> None:
        twin, _ = pair
        # timeouts only so that a missing check fails instead of hanging
        with pytest.raises(TypeError):
            twin.recv("5", timeout=0.5)
        with pytest.raises(TypeError):
            twin.recv(5.0, timeout=0.5)
        with pytest.raises(TypeError):
            twin.recv_line_into(b"immutable", timeout=0.5)
        with pytest.raises(TypeError):
            twin.set_sock_opt("REUSE_ADDR", True)
        with pytest.raises(TypeError):
            twin.get_sock_opt(2)
        with pytest.raises(TypeError):
            twin.send(None)
        with pytest.raises(TypeError):
            twin.recv_line(timeout="soon")

    def test_wrong_flags_raise_before_waiting(
        self, pair: Any, kind: Any, request: pytest.FixtureRequest
    ) -> None:
        twin, _ = pair
        with pytest.raises(TypeError):
            twin.recv(5, flags=1, timeout=0.5)
        with pytest.raises(TypeError):
            twin.recv_line(flags="PEEK", timeout=0.5)

    def test_listen_backlog_type(self, kind: Any) -> None:
        with kind.new() as sock:
            sock.bind_addr(0, V4)
            with pytest.raises(TypeError):
                sock.listen("5")

    def test_every_call_on_a_closed_socket(self, kind: Any) -> None:
        sock = kind.new()
        sock.close()
        calls: list[Callable[[], Any]] = [
            lambda: sock.connect(V4, 80),
            lambda: sock.connect_unix("\0x"),
            lambda: sock.bind_addr(0, V4),
            lambda: sock.bind_unix("\0x"),
            lambda: sock.listen(),
            lambda: sock.accept(timeout=1),
            lambda: sock.accept_addr(timeout=1),
            lambda: sock.recv(1),
            lambda: sock.recv_into(bytearray(4)),
            lambda: sock.recv_line(),
            lambda: sock.recv_line_into(bytearray()),
            lambda: sock.read_line(),
            lambda: sock.skip(1),
            lambda: sock.send(b"x"),
            lambda: sock.send_to(V4, 9, b"x"),
            lambda: sock.recv_from(1),
            lambda: sock.get_local_addr(),
            lambda: sock.get_peer_addr(),
            lambda: sock.set_sock_opt(SockOpt.REUSE_ADDR, True),
            lambda: sock.get_sock_opt(SockOpt.REUSE_ADDR),
            lambda: sock.set_nagle(True),
            lambda: sock.set_delay_ack(True),
        ]
        for call in calls:
            with pytest.raises(SocketClosedError) as info:
                call()
            assert info.value.errno == errno.EBADF
        assert sock.get_fd() == -1
        assert sock.is_closed()
        assert sock.try_send(b"x") is False

    def test_from_native_bad_input(self, kind: Any) -> None:
        with pytest.raises(TypeError):
            kind.from_native("not a socket")
        with pytest.raises(TypeError):
            kind.from_native(True)
        closed = socket.socket()
        closed.close()
        with pytest.raises(SocketClosedError):
            kind.from_native(closed)


# -- options and module functions -------------------------------------------------------------


class TestOptions:
    def test_reuse_addr(self, kind: Any) -> None:
        with kind.new() as sock:
            sock.set_sock_opt(SockOpt.REUSE_ADDR, True)
            assert sock.get_sock_opt(SockOpt.REUSE_ADDR) is True
            with raw_view(sock) as raw:
                assert raw.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
            sock.set_sock_opt(SockOpt.REUSE_ADDR, False)
            assert sock.get_sock_opt(SockOpt.REUSE_ADDR) is False

    def test_explicit_level_and_other_options(self, kind: Any) -> None:
        with kind.new() as sock:
            sock.set_sock_opt(SockOpt.KEEP_ALIVE, True, level=socket.SOL_SOCKET)
            assert sock.get_sock_opt(SockOpt.KEEP_ALIVE, level=socket.SOL_SOCKET)
            sock.set_sock_opt(SockOpt.NO_DELAY, True)
            with raw_view(sock) as raw:
                assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            sock.bind_addr(0, V4)
            sock.listen()
            assert sock.get_sock_opt(SockOpt.ACCEPT_CONN)

    def test_nagle(self, pair: Any, family: str) -> None:
        if family == "unix":
            pytest.skip("TCP option")
        twin, _ = pair
        with raw_view(twin) as raw:
            twin.set_nagle(True)
            assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            assert twin.get_sock_opt(SockOpt.NO_DELAY) is False
            twin.set_nagle(False)
            assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1

    def test_delay_ack(self, pair: Any, family: str) -> None:
        if family == "unix" or not hasattr(socket, "TCP_QUICKACK"):
            pytest.skip("TCP_QUICKACK is a Linux TCP option")
        twin, _ = pair
        with raw_view(twin) as raw:
            twin.set_delay_ack(True)
            assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 0
            twin.set_delay_ack(False)
            assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1

    def test_properties(self, kind: Any) -> None:
        with kind.new(Domain.AF_INET6, SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP) as sock:
            assert sock.domain == Domain.AF_INET6
            assert sock.sock_type == SockType.SOCK_DGRAM
            assert sock.protocol == Protocol.IPPROTO_UDP
            assert sock.buffered is True
            assert not sock.is_ssl()
        with kind.new(Domain.AF_UNIX, buffered=False) as sock:
            assert sock.domain == Domain.AF_UNIX
            assert sock.buffered is False

    def test_context_manager_closes(self, kind: Any) -> None:
        with kind.new() as sock:
            fd = sock.fileno()
            identity = fd_identity(fd)
        assert sock.is_closed()
        assert fd_identity(fd) != identity
        with pytest.raises(RuntimeError), kind.new() as other:
            raise RuntimeError("boom")
        assert other.is_closed()

    def test_from_native_socket_and_fd(self, kind: Any) -> None:
        ours, peer = stdlib_pair("tcp4")
        ours.settimeout(3)  # adopting makes it a plain twinsock socket
        with peer, kind.from_native(ours) as twin:
            peer.sendall(b"one\n")
            assert twin.recv_line(timeout=5) == b"one"
        ours, peer = stdlib_pair("tcp6")
        fd = ours.detach()
        identity = fd_identity(fd)
        with peer, kind.from_native(fd, buffered=False) as twin:
            assert twin.fileno() == fd
            assert twin.domain == Domain.AF_INET6
            assert not twin.buffered
            twin.send(b"two\n")
            peer.settimeout(5)
            assert peer.recv(10) == b"two\n"
        assert fd_identity(fd) != identity


class TestModuleFunctions:
    def test_primary_ip_addr_loopback(self) -> None:
        assert net.get_primary_ip_addr(parse_ip_address("127.0.0.1")) == ipaddress.IPv4Address(V4)
        assert net.get_primary_ip_addr(parse_ip_address("::1")) == ipaddress.IPv6Address(V6)
        assert net.get_primary_ip_addr("127.0.0.1") == ipaddress.IPv4Address(V4)

    def test_primary_ip_addr_default(self) -> None:
        try:
            found = net.get_primary_ip_addr()
        except OSError:
            return  # no route to 8.8.8.8 in a sandbox is a legitimate answer
        assert isinstance(found, ipaddress.IPv4Address)

    def test_primary_ip_addr_bad_input(self) -> None:
        with pytest.raises(AddressError):
            net.get_primary_ip_addr("not an address")

    @pytest.mark.parametrize(
        "code", [errno.ECONNRESET, errno.EPIPE, errno.ENETRESET, errno.ECONNABORTED]
    )
    def test_is_disconnection_error_true(self, code: int) -> None:
        safe = SocketFlag.SAFE_DISCONN
        assert net.is_disconnection_error(safe, code)
        assert net.is_disconnection_error(safe, OSError(code, os.strerror(code)))
        assert net.is_disconnection_error(safe | SocketFlag.PEEK, code)
        assert not net.is_disconnection_error(SocketFlag(0), code)
        assert not net.is_disconnection_error(SocketFlag.PEEK, OSError(code, "x"))

    @pytest.mark.parametrize("error", [ConnectionResetError, BrokenPipeError,
                                       ConnectionAbortedError])
    def test_is_disconnection_error_without_errno(self, error: type[OSError]) -> None:
        assert net.is_disconnection_error(SocketFlag.SAFE_DISCONN, error())
        assert not net.is_disconnection_error(SocketFlag.PEEK, error())

    def test_is_disconnection_error_false(self) -> None:
        safe = SocketFlag.SAFE_DISCONN
        assert net.is_disconnection_error(safe, ConnectionResetError(errno.ECONNRESET, "x"))
        assert not net.is_disconnection_error(safe, errno.ECONNREFUSED)
        assert not net.is_disconnection_error(safe, ConnectionRefusedError(errno.ECONNREFUSED, "x"))
        assert not net.is_disconnection_error(safe, errno.ETIMEDOUT)
        assert not net.is_disconnection_error(safe, ConnectionRefusedError())
        assert not net.is_disconnection_error(safe, OSError())
        with pytest.raises(TypeError):
            net.is_disconnection_error(1, errno.ECONNRESET)  # type: ignore[arg-type]
