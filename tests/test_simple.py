"""twinsock.simple (SPEC section 7) over real loopback sockets: Chapel's own test behaviours.

Every test binds port 0 on 127.0.0.1 or ::1.  "An address that never
answers" is a Linux listener made with ``listen(0)`` whose accept queue is
already full: Linux then drops further SYNs, so a connect waits until its
deadline without any packet leaving the machine.
"""

from __future__ import annotations

import select
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from twinsock import net
from twinsock.addresses import IPFamily, SocketAddress
from twinsock.errors import AddressError, NetTimeout, SocketClosedError
from twinsock.simple import (
    BACKLOG_DEFAULT,
    TcpConn,
    TcpListener,
    UdpSocket,
    bind,
    connect,
    get_peer_name,
    get_sock_name,
    get_sock_opt,
    listen,
    set_sock_opt,
)

LOCAL4 = SocketAddress.create("127.0.0.1", 0)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux TCP behaviour")


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")


@pytest.fixture
def server() -> Iterator[TcpListener]:
    with listen(LOCAL4) as listener:
        yield listener


def closed_port() -> int:
    """A loopback port nothing listens on (bound, never listened, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Blackhole:
    """A loopback port whose SYNs are dropped: a full ``listen(0)`` queue (Linux)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = int(self.listener.getsockname()[1])
        self.fillers: list[socket.socket] = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.05)  # let the first handshake complete and fill the queue

    def close(self) -> None:
        for sock in [*self.fillers, self.listener]:
            sock.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


# -- listen / accept --------------------------------------------------------------------


def test_backlog_default() -> None:
    assert min(socket.SOMAXCONN, 128) == BACKLOG_DEFAULT


def test_listen_binds_and_reports_its_address(server: TcpListener) -> None:
    addr = server.addr
    assert addr.host == "127.0.0.1"
    assert addr.family is IPFamily.IPV4
    assert addr.port != 0
    assert server.socket_fd == server.fileno() >= 0
    assert get_sock_name(server) == addr
    assert get_sock_opt(server, socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
    assert get_sock_opt(server, socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


def test_listen_without_reuse_addr() -> None:
    with listen(LOCAL4, reuse_addr=False) as listener:
        assert get_sock_opt(listener, socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0


def test_listen_on_a_used_port_raises_oserror(server: TcpListener) -> None:
    with pytest.raises(OSError):
        listen(server.addr, reuse_addr=False)


def test_accept_times_out(server: TcpListener) -> None:
    start = time.monotonic()
    with pytest.raises(NetTimeout, match="accept"):
        server.accept(timeout=0.2)
    assert time.monotonic() - start >= 0.19


def test_accept_returns_a_tcp_conn(server: TcpListener) -> None:
    with socket.create_connection(("127.0.0.1", server.addr.port)) as peer:
        conn = server.accept(timeout=5)
        with conn:
            assert isinstance(conn, TcpConn)
            assert isinstance(conn, net.Socket)
            assert conn.addr == SocketAddress.from_sockaddr(peer.getsockname())
            assert get_peer_name(conn) == conn.addr
            assert get_sock_name(conn) == server.addr
            assert conn.socket_fd == conn.get_fd() >= 0
            peer.sendall(b"hello\r\nworld\n")
            assert conn.recv_line(timeout=5) == b"hello"
            assert conn.recv_line(timeout=5) == b"world"
            conn.send("reply\n")
            assert peer.recv(100) == b"reply\n"
        assert conn.socket_fd == -1


def test_closed_listener(server: TcpListener) -> None:
    server.close()
    server.close()  # idempotent
    assert server.is_closed()
    assert server.socket_fd == -1
    with pytest.raises(SocketClosedError):
        server.accept(timeout=0)
    with pytest.raises(SocketClosedError):
        _ = server.addr


@linux_only
def test_small_backlog_limits_pending_connections() -> None:
    with listen(LOCAL4, backlog=1) as listener:
        clients = []
        for _ in range(6):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(("127.0.0.1", listener.addr.port))
            clients.append(client)
        try:
            time.sleep(0.3)
            poller = select.poll()
            for client in clients:
                poller.register(client, select.POLLOUT)
            ready = {fd for fd, _ in poller.poll(0)}
            connected = [
                c for c in clients
                if c.fileno() in ready and c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            ]
            # Linux lets backlog + 1 connections wait; the others get no answer yet.
            assert 1 <= len(connected) <= 2
            accepted = []
            while True:
                try:
                    accepted.append(listener.accept(timeout=0.1))
                except NetTimeout:
                    break
            # Accepting makes room; the waiting SYNs are retried only after a second.
            assert len(accepted) == len(connected)
            for conn in accepted:
                conn.close()
        finally:
            for client in clients:
                client.close()


# -- connect --------------------------------------------------------------------------


def test_connect_by_address(server: TcpListener) -> None:
    with connect(server.addr, timeout=5) as conn, server.accept(timeout=5) as there:
        assert isinstance(conn, TcpConn)
        assert conn.addr == server.addr
        assert isinstance(there, TcpConn)
        assert there.addr == get_sock_name(conn)
        conn.send(b"ping\n")
        assert there.recv_line(timeout=5) == b"ping"


def test_connect_by_address_positional_timeout(server: TcpListener) -> None:
    with connect(server.addr, 5.0) as conn:
        assert isinstance(conn, TcpConn)
        assert conn.addr == server.addr


def test_connect_by_host_and_port(server: TcpListener) -> None:
    with connect("127.0.0.1", server.addr.port, IPFamily.IPV4, timeout=5) as conn:
        assert isinstance(conn, TcpConn)
        assert conn.addr == server.addr
    with connect("localhost", server.addr.port, family=IPFamily.IPV4, timeout=5) as conn:
        assert isinstance(conn, TcpConn)
        assert conn.addr == server.addr
    with connect("127.0.0.1", str(server.addr.port)) as conn:
        assert isinstance(conn, TcpConn)
        assert conn.addr == server.addr


def test_connect_by_service_name() -> None:
    try:
        port = socket.getservbyname("http", "tcp")
    except OSError:
        pytest.skip("no services database")
    # Whatever answers on this machine's port 80, the service name was turned into 80.
    try:
        conn = connect("127.0.0.1", "http", IPFamily.IPV4, timeout=2)
    except ConnectionRefusedError as exc:
        assert any(f":{port}" in note for note in exc.__notes__)
    except NetTimeout:
        pass
    else:
        assert conn.addr.port == port
        conn.close()


def test_connect_to_an_unknown_service_raises_oserror() -> None:
    with pytest.raises(OSError):
        connect("127.0.0.1", "no-such-service-twinsock", timeout=2)


def test_connect_to_a_closed_port_is_refused() -> None:
    port = closed_port()
    with pytest.raises(ConnectionRefusedError):
        connect(SocketAddress.create("127.0.0.1", port))
    with pytest.raises(ConnectionRefusedError):
        connect("127.0.0.1", port, timeout=5)


def test_connect_family_mismatch_raises_address_error() -> None:
    with pytest.raises(AddressError):
        connect("::1", 80, IPFamily.IPV4)
    with pytest.raises(AddressError):
        connect("127.0.0.1", 80, IPFamily.IPV6)


def test_connect_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        connect(12345)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        connect("127.0.0.1")  # type: ignore[call-overload]
    with pytest.raises(ValueError):
        connect("127.0.0.1", 80, timeout=-1)


@linux_only
def test_connect_to_an_address_that_never_answers_times_out(blackhole: Blackhole) -> None:
    start = time.monotonic()
    with pytest.raises(NetTimeout) as info:
        connect(SocketAddress.create("127.0.0.1", blackhole.port), timeout=0.3)
    elapsed = time.monotonic() - start
    assert 0.25 <= elapsed < 3.0
    # The message names the call the user made, not an internal helper.
    assert str(info.value).startswith(f"connect 127.0.0.1:{blackhole.port}"), str(info.value)
    assert "dial" not in str(info.value)


@linux_only
def test_one_deadline_covers_every_resolved_address() -> None:
    holes = [Blackhole() for _ in range(3)]
    try:
        def resolver(host: str, port: int, family: int, sock_type: int) -> list[Any]:
            assert family == socket.AF_INET
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", hole.port))
                for hole in holes
            ]

        start = time.monotonic()
        with pytest.raises(NetTimeout) as info:
            connect("three.invalid", 80, IPFamily.IPV4, timeout=1.0, resolver=resolver)
        elapsed = time.monotonic() - start
        # One deadline for all three addresses, not 1 s for each.
        assert 0.9 <= elapsed < 2.5
        assert len(info.value.__notes__) == 3
        assert str(info.value).startswith("connect "), str(info.value)
    finally:
        for hole in holes:
            hole.close()


def test_connect_tries_the_next_address_after_a_refusal(server: TcpListener) -> None:
    refused = closed_port()

    def resolver(host: str, port: int, family: int, sock_type: int) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", refused)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.addr.port)),
        ]

    with connect("two.invalid", 80, timeout=5, resolver=resolver) as conn:
        assert isinstance(conn, TcpConn)
        assert conn.addr == server.addr


@needs_ipv6
def test_connect_ipv6() -> None:
    with listen(SocketAddress.create("::1", 0, IPFamily.IPV6)) as listener:
        assert str(listener.addr).startswith("[::1]:")
        with connect("::1", listener.addr.port, IPFamily.IPV6, timeout=5) as conn:
            there = listener.accept(timeout=5)
            assert isinstance(conn, TcpConn)
            assert conn.addr == listener.addr
            assert there.addr.family is IPFamily.IPV6
            there.close()


# -- Nagle and delayed ACKs ---------------------------------------------------------------


def test_set_nagle_reads_back(server: TcpListener) -> None:
    with connect(server.addr, timeout=5) as conn:
        conn.set_nagle(True)
        assert get_sock_opt(conn, socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        conn.set_nagle(False)
        assert get_sock_opt(conn, socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    server.set_nagle(False)
    assert get_sock_opt(server, socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    server.set_nagle(True)
    assert get_sock_opt(server, socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux-only")
def test_set_delay_ack_sets_quickack(server: TcpListener) -> None:
    quickack = socket.TCP_QUICKACK
    with connect(server.addr, timeout=5) as conn:
        conn.set_delay_ack(False)
        assert get_sock_opt(conn, socket.IPPROTO_TCP, quickack) == 1
        conn.set_delay_ack(True)
        assert get_sock_opt(conn, socket.IPPROTO_TCP, quickack) == 0
    server.set_delay_ack(False)
    assert get_sock_opt(server, socket.IPPROTO_TCP, quickack) == 1


# -- raw socket options -------------------------------------------------------------------


def test_set_sock_opt_int_bytes_and_none(server: TcpListener) -> None:
    with connect(server.addr, timeout=5) as conn:
        set_sock_opt(conn, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        assert get_sock_opt(conn, socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        linger = (1).to_bytes(4, sys.byteorder) + (5).to_bytes(4, sys.byteorder)
        set_sock_opt(conn, socket.SOL_SOCKET, socket.SO_LINGER, linger)
        assert get_sock_opt(conn, socket.SOL_SOCKET, socket.SO_LINGER, 8) == linger
        with pytest.raises(TypeError):
            set_sock_opt(conn, socket.SOL_SOCKET, socket.SO_KEEPALIVE, None)
        with pytest.raises(TypeError):
            set_sock_opt(conn, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, optlen=4)


@pytest.mark.skipif(not hasattr(socket, "SO_BINDTODEVICE"), reason="needs SO_BINDTODEVICE")
def test_set_sock_opt_none_with_optlen_passes_a_null_value() -> None:
    # SO_BINDTODEVICE with a NULL value and length 0 removes the device binding.
    with UdpSocket() as udp:
        set_sock_opt(udp, socket.SOL_SOCKET, socket.SO_BINDTODEVICE, None, 0)
        assert get_sock_opt(udp, socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16).strip(b"\0") == b""


def test_socket_functions_accept_every_kind(server: TcpListener) -> None:
    plain = net.Socket()
    with plain, UdpSocket() as udp, connect(server.addr, timeout=5) as conn:
        for sock in (server, udp, conn, plain):
            assert get_sock_opt(sock, socket.SOL_SOCKET, socket.SO_TYPE) in (
                socket.SOCK_STREAM,
                socket.SOCK_DGRAM,
            )
        bind(plain, LOCAL4)
        assert get_sock_name(plain).port != 0
    with pytest.raises(TypeError):
        get_sock_name(object())  # type: ignore[arg-type]


def test_get_peer_name_of_an_unconnected_socket_raises() -> None:
    with UdpSocket() as udp, pytest.raises(OSError):
        get_peer_name(udp)


# -- bind ------------------------------------------------------------------------------


def test_bind_twice_raises_oserror() -> None:
    with UdpSocket() as udp:
        bind(udp, LOCAL4)
        with pytest.raises(OSError):
            bind(udp, LOCAL4)


def test_bind_a_closed_socket_raises_oserror() -> None:
    udp = UdpSocket()
    udp.close()
    with pytest.raises(OSError):
        bind(udp, LOCAL4)


def test_bind_a_listener_raises_oserror(server: TcpListener) -> None:
    with pytest.raises(OSError):
        bind(server, LOCAL4)


def test_bind_other_family_raises_address_error() -> None:
    with UdpSocket(IPFamily.IPV4) as udp, pytest.raises(AddressError):
        bind(udp, SocketAddress.create("::1", 0, IPFamily.IPV6))


def test_bind_reuse_addr() -> None:
    with UdpSocket() as udp:
        bind(udp, LOCAL4, reuse_addr=False)
        assert get_sock_opt(udp, socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
    with UdpSocket() as udp:
        bind(udp, LOCAL4)
        assert get_sock_opt(udp, socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1


# -- SocketAddress (Chapel's ipAddr) -------------------------------------------------------


def test_ipv6_host_with_ipv4_family_raises_address_error() -> None:
    with pytest.raises(AddressError):
        SocketAddress.create("::1", 80, IPFamily.IPV4)


def test_socket_address_equality_and_text() -> None:
    a = SocketAddress.create("127.0.0.1", 8000, IPFamily.IPV4)
    assert a == SocketAddress.create()
    assert a != SocketAddress.create("127.0.0.1", 8001)
    assert a != SocketAddress.create("::1", 8000, IPFamily.IPV6)
    assert str(a) == "127.0.0.1:8000"
    assert str(SocketAddress.ipv6("::1", 80)) == "[::1]:80"
    assert SocketAddress.ipv4(port=1) == SocketAddress.create("0.0.0.0", 1)
    assert len({a, SocketAddress.create()}) == 1


# -- UdpSocket ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, host",
    [
        pytest.param(IPFamily.IPV4, "127.0.0.1", id="ipv4"),
        pytest.param(IPFamily.IPV6, "::1", id="ipv6", marks=needs_ipv6),
    ],
)
def test_udp_send_and_recvfrom(family: IPFamily, host: str) -> None:
    with UdpSocket(family) as receiver, UdpSocket(family) as sender:
        bind(receiver, SocketAddress.create(host, 0, family))
        bind(sender, SocketAddress.create(host, 0, family))
        target = get_sock_name(receiver)
        assert sender.send(b"hello world!", target, timeout=5) == 12
        data, from_addr = receiver.recvfrom(40, timeout=5)
        assert data == b"hello world!"
        assert from_addr == get_sock_name(sender)
        assert from_addr.family is family
        assert sender.send("text", target) == 4
        assert receiver.recv(40, timeout=5) == b"text"


def test_udp_recv_truncates_to_buffer_len() -> None:
    with UdpSocket() as receiver, UdpSocket() as sender:
        bind(receiver, LOCAL4)
        sender.send(b"0123456789", get_sock_name(receiver))
        sender.send(b"next", get_sock_name(receiver))
        assert receiver.recv(4, timeout=5) == b"0123"
        assert receiver.recv(40, timeout=5) == b"next"  # the rest of the first is gone


def test_udp_recvfrom_peek() -> None:
    with UdpSocket() as receiver, UdpSocket() as sender:
        bind(receiver, LOCAL4)
        sender.send(b"again", get_sock_name(receiver))
        assert receiver.recvfrom(40, timeout=5, flags=socket.MSG_PEEK)[0] == b"again"
        assert receiver.recvfrom(40, timeout=5)[0] == b"again"
        with pytest.raises(ValueError):
            receiver.recvfrom(40, timeout=0, flags=socket.MSG_WAITALL)


def test_udp_recv_times_out() -> None:
    with UdpSocket() as udp:
        bind(udp, LOCAL4)
        start = time.monotonic()
        with pytest.raises(NetTimeout):
            udp.recv(40, timeout=0.2)
        assert time.monotonic() - start >= 0.19
        with pytest.raises(NetTimeout):
            udp.recvfrom(40, timeout=0)


def test_udp_send_to_the_other_family_raises_address_error() -> None:
    with UdpSocket() as udp, pytest.raises(AddressError):
        udp.send(b"x", SocketAddress.create("::1", 9, IPFamily.IPV6))


def test_udp_closed_and_bad_family() -> None:
    udp = UdpSocket()
    assert udp.socket_fd >= 0
    udp.close()
    udp.close()
    assert udp.is_closed()
    assert udp.socket_fd == -1
    with pytest.raises(SocketClosedError):
        udp.recv(1, timeout=0)
    with pytest.raises(ValueError):
        UdpSocket(IPFamily.UNSPEC)
