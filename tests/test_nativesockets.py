"""Tests for twinsock.nativesockets (SPEC section 2) over real loopback sockets."""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from twinsock import nativesockets as ns
from twinsock.errors import AddressError, SocketClosedError
from twinsock.nativesockets import Domain, Protocol, SockType

FAMILIES = [
    pytest.param((socket.AF_INET, "127.0.0.1"), id="ipv4"),
    pytest.param((socket.AF_INET6, "::1"), id="ipv6"),
]


@pytest.fixture
def closed_sock() -> socket.socket:
    sock = socket.socket()
    sock.close()
    return sock


def _listener(family: int, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen()
    return sock


@pytest.fixture(params=FAMILIES)
def tcp_pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket, str]]:
    """A listener, a connected client and the loopback host, for IPv4 and IPv6."""
    family, host = request.param
    listener = _listener(family, host)
    client = socket.socket(family, socket.SOCK_STREAM)
    client.connect(listener.getsockname())
    try:
        yield listener, client, host
    finally:
        client.close()
        listener.close()


# --- enums ----------------------------------------------------------------------


def test_enums_have_os_values() -> None:
    assert int(Domain.AF_UNSPEC) == socket.AF_UNSPEC
    assert int(Domain.AF_UNIX) == socket.AF_UNIX
    assert int(Domain.AF_INET) == socket.AF_INET
    assert int(Domain.AF_INET6) == socket.AF_INET6
    assert int(SockType.SOCK_STREAM) == socket.SOCK_STREAM
    assert int(SockType.SOCK_DGRAM) == socket.SOCK_DGRAM
    assert int(SockType.SOCK_RAW) == socket.SOCK_RAW
    assert int(SockType.SOCK_SEQPACKET) == socket.SOCK_SEQPACKET
    assert int(Protocol.IPPROTO_TCP) == socket.IPPROTO_TCP
    assert int(Protocol.IPPROTO_UDP) == socket.IPPROTO_UDP
    assert int(Protocol.IPPROTO_IP) == socket.IPPROTO_IP
    assert int(Protocol.IPPROTO_IPV6) == socket.IPPROTO_IPV6
    assert int(Protocol.IPPROTO_RAW) == socket.IPPROTO_RAW
    assert int(Protocol.IPPROTO_ICMP) == socket.IPPROTO_ICMP
    assert int(Protocol.IPPROTO_ICMPV6) == socket.IPPROTO_ICMPV6
    assert ns.SOMAXCONN == socket.SOMAXCONN


def test_to_known_domain() -> None:
    assert ns.to_known_domain(socket.AF_INET) is Domain.AF_INET
    assert ns.to_known_domain(socket.AF_INET6) is Domain.AF_INET6
    assert ns.to_known_domain(socket.AF_UNIX) is Domain.AF_UNIX
    assert ns.to_known_domain(9999) is None
    assert ns.to_known_domain(-1) is None
    with pytest.raises(TypeError):
        ns.to_known_domain("AF_INET")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ns.to_known_domain(True)


def test_to_sock_type() -> None:
    assert ns.to_sock_type(Protocol.IPPROTO_TCP) is SockType.SOCK_STREAM
    assert ns.to_sock_type(Protocol.IPPROTO_UDP) is SockType.SOCK_DGRAM
    assert ns.to_sock_type(socket.IPPROTO_UDP) is SockType.SOCK_DGRAM
    for proto in (
        Protocol.IPPROTO_IP,
        Protocol.IPPROTO_IPV6,
        Protocol.IPPROTO_RAW,
        Protocol.IPPROTO_ICMP,
        Protocol.IPPROTO_ICMPV6,
    ):
        assert ns.to_sock_type(proto) is SockType.SOCK_RAW
    with pytest.raises(ValueError):
        ns.to_sock_type(12345)
    with pytest.raises(TypeError):
        ns.to_sock_type("tcp")  # type: ignore[arg-type]


# --- name services ------------------------------------------------------------------


def test_get_addr_info_loopback() -> None:
    infos = ns.get_addr_info("127.0.0.1", 80)
    assert infos
    info = infos[0]
    assert info.family is Domain.AF_INET
    assert info.type is SockType.SOCK_STREAM
    assert info.proto is Protocol.IPPROTO_TCP
    assert info.sockaddr == ("127.0.0.1", 80)
    six = ns.get_addr_info("::1", 443, Domain.AF_INET6)
    assert six[0].sockaddr[:2] == ("::1", 443)
    assert len(six[0].sockaddr) == 4
    udp = ns.get_addr_info("127.0.0.1", 53, sock_type=SockType.SOCK_DGRAM,
                           protocol=Protocol.IPPROTO_UDP)
    assert udp[0].type is SockType.SOCK_DGRAM
    unspec = ns.get_addr_info("localhost", 0, Domain.AF_UNSPEC)
    assert all(i.family in (Domain.AF_INET, Domain.AF_INET6) for i in unspec)


def test_get_addr_info_ignores_the_port_of_raw_sockets() -> None:
    # getaddrinfo refuses any service for SOCK_RAW ("Servname not supported");
    # Nim ignores the port there, and so does get_addr_info.
    for port in (0, 80, 65535):
        infos = ns.get_addr_info("127.0.0.1", port, Domain.AF_INET, SockType.SOCK_RAW,
                                 Protocol.IPPROTO_ICMP)
        assert infos and all(info.sockaddr == ("127.0.0.1", 0) for info in infos)
        assert {info.type for info in infos} == {SockType.SOCK_RAW}
    six = ns.get_addr_info("::1", 7, Domain.AF_INET6, SockType.SOCK_RAW, Protocol.IPPROTO_ICMPV6)
    assert six and six[0].sockaddr[:2] == ("::1", 0)
    with pytest.raises(AddressError):
        ns.get_addr_info("127.0.0.1", 70000, Domain.AF_INET, SockType.SOCK_RAW,
                         Protocol.IPPROTO_ICMP)  # still a port out of range


def test_get_addr_info_bad_input() -> None:
    with pytest.raises(socket.gaierror):
        ns.get_addr_info("nonexistent.invalid", 80)
    with pytest.raises(OSError):
        ns.get_addr_info("::1", 80, Domain.AF_INET)  # family mismatch
    with pytest.raises(AddressError):
        ns.get_addr_info("127.0.0.1", 65536)
    with pytest.raises(AddressError):
        ns.get_addr_info("127.0.0.1", -1)
    with pytest.raises(AddressError):
        ns.get_addr_info("127.0.0.1", "http")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ns.get_addr_info(None, 80)  # type: ignore[arg-type]


def _has_services_db() -> bool:
    try:
        socket.getservbyname("http", "tcp")
    except OSError:
        return False
    return True


needs_services = pytest.mark.skipif(not _has_services_db(), reason="no services database")


@needs_services
def test_get_serv_by_name_and_port() -> None:
    http = ns.get_serv_by_name("http", "tcp")
    assert http == ns.Servent("http", (), 80, "tcp")
    assert ns.get_serv_by_port(80, "tcp").name == "http"
    assert ns.get_serv_by_port(80, "tcp").port == 80
    try:
        alias = ns.get_serv_by_name("www", "tcp")
    except OSError:
        pytest.skip("no 'www' alias in this services database")
    assert alias.name == "http"
    assert alias.aliases == ("www",)


def test_get_serv_bad_input() -> None:
    with pytest.raises(OSError):
        ns.get_serv_by_name("no-such-service-twinsock", "tcp")
    with pytest.raises(TypeError):
        ns.get_serv_by_name(80, "tcp")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ns.get_serv_by_name("http", None)  # type: ignore[arg-type]
    with pytest.raises(AddressError):
        ns.get_serv_by_port(70000, "tcp")
    with pytest.raises(AddressError):
        ns.get_serv_by_port("80", "tcp")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ns.get_serv_by_port(80, 6)  # type: ignore[arg-type]


def test_get_host_by_name() -> None:
    host = ns.get_host_by_name("localhost")
    assert host.addrtype is Domain.AF_INET
    assert host.length == 4
    assert "127.0.0.1" in host.addr_list
    with pytest.raises(OSError):
        ns.get_host_by_name("nonexistent.invalid")
    with pytest.raises(TypeError):
        ns.get_host_by_name(None)  # type: ignore[arg-type]


def test_get_host_by_addr() -> None:
    host = ns.get_host_by_addr("127.0.0.1")
    assert host.name
    assert host.addrtype is Domain.AF_INET
    assert host.length == 4
    with pytest.raises(AddressError):
        ns.get_host_by_addr("localhost")
    with pytest.raises(TypeError):
        ns.get_host_by_addr(2130706433)  # type: ignore[arg-type]


def test_get_hostname() -> None:
    assert ns.get_hostname() == socket.gethostname()


def test_get_proto_by_name() -> None:
    assert ns.get_proto_by_name("tcp") == 6
    assert ns.get_proto_by_name("udp") == 17
    with pytest.raises(OSError):
        ns.get_proto_by_name("no-such-protocol")
    with pytest.raises(TypeError):
        ns.get_proto_by_name(6)  # type: ignore[arg-type]


# --- creation and modes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "sock_type", "protocol"),
    [
        (Domain.AF_INET, SockType.SOCK_STREAM, Protocol.IPPROTO_TCP),
        (Domain.AF_INET6, SockType.SOCK_STREAM, Protocol.IPPROTO_TCP),
        (Domain.AF_INET, SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP),
        (Domain.AF_UNIX, SockType.SOCK_STREAM, Protocol.IPPROTO_TCP),
        (Domain.AF_UNIX, SockType.SOCK_DGRAM, Protocol.IPPROTO_IP),
    ],
)
def test_create_native_socket(domain: Domain, sock_type: SockType, protocol: Protocol) -> None:
    with ns.create_native_socket(domain, sock_type, protocol) as sock:
        assert int(sock.family) == domain
        assert int(sock.type) == sock_type
        assert not sock.get_inheritable()
        assert ns.get_sock_domain(sock) is domain


def test_create_native_socket_defaults_and_inheritable() -> None:
    with ns.create_native_socket() as sock:
        assert sock.family == socket.AF_INET
        assert sock.type == socket.SOCK_STREAM
        assert sock.proto == socket.IPPROTO_TCP
    with ns.create_native_socket(inheritable=True) as sock:
        assert sock.get_inheritable()


def test_create_native_socket_bad_input() -> None:
    with pytest.raises(OSError):
        ns.create_native_socket(Domain.AF_INET, SockType.SOCK_DGRAM, Protocol.IPPROTO_TCP)
    with pytest.raises(OSError):
        ns.create_native_socket(12345)
    with pytest.raises(TypeError):
        ns.create_native_socket("AF_INET")  # type: ignore[arg-type]


def test_set_inheritable_blocking_close(closed_sock: socket.socket) -> None:
    sock = ns.create_native_socket()
    ns.set_inheritable(sock, True)
    assert sock.get_inheritable()
    ns.set_inheritable(sock, False)
    assert not sock.get_inheritable()
    ns.set_blocking(sock, False)
    assert not sock.getblocking()
    ns.set_blocking(sock, True)
    assert sock.getblocking()
    ns.close(sock)
    ns.close(sock)  # idempotent
    assert sock.fileno() == -1
    with pytest.raises(SocketClosedError):
        ns.set_inheritable(closed_sock, True)
    with pytest.raises(SocketClosedError):
        ns.set_blocking(closed_sock, True)


# --- byte order -------------------------------------------------------------------------


def test_byte_order() -> None:
    assert ns.htons(0x1234) == socket.htons(0x1234)
    assert ns.ntohs(ns.htons(0xBEEF)) == 0xBEEF
    assert ns.htonl(0x12345678) == socket.htonl(0x12345678)
    assert ns.ntohl(ns.htonl(0xDEADBEEF)) == 0xDEADBEEF
    assert ns.htons(0) == 0
    assert ns.htonl(2**32 - 1) == 2**32 - 1
    if sys.byteorder == "little":
        assert ns.htons(0x1234) == 0x3412


@pytest.mark.parametrize(
    ("func", "bad"),
    [
        (ns.htons, 65536),
        (ns.ntohs, 65536),
        (ns.htons, -1),
        (ns.ntohs, -1),
        (ns.htonl, 2**32),
        (ns.ntohl, 2**32),
        (ns.htonl, -1),
        (ns.ntohl, -1),
    ],
)
def test_byte_order_out_of_range(func: object, bad: int) -> None:
    with pytest.raises(OverflowError):
        func(bad)  # type: ignore[operator]


@pytest.mark.parametrize("func", [ns.htons, ns.ntohs, ns.htonl, ns.ntohl])
@pytest.mark.parametrize("bad", ["1", 1.0, None, True])
def test_byte_order_bad_type(func: object, bad: object) -> None:
    with pytest.raises(TypeError):
        func(bad)  # type: ignore[operator]


# --- addresses of sockets ------------------------------------------------------------


def test_addresses_of_connected_pair(tcp_pair: tuple[socket.socket, socket.socket, str]) -> None:
    listener, client, host = tcp_pair
    port = ns.get_sock_name(listener)
    assert port == listener.getsockname()[1] > 0
    assert ns.get_local_addr(listener) == (host, port)
    assert ns.get_peer_addr(client) == (host, port)
    conn, peer_text = ns.accept(listener)
    with conn:
        assert peer_text == host
        assert ns.get_peer_addr(conn) == (host, ns.get_sock_name(client))
        assert ns.get_local_addr(conn) == (host, port)
        assert not conn.get_inheritable()


def test_accept_inheritable() -> None:
    with _listener(socket.AF_INET, "127.0.0.1") as listener, socket.create_connection(
        listener.getsockname()
    ):
        conn, _ = ns.accept(listener, inheritable=True)
        with conn:
            assert conn.get_inheritable()


def test_accept_bad_input(closed_sock: socket.socket) -> None:
    with socket.socket() as unbound, pytest.raises(OSError):
        ns.accept(unbound)
    with _listener(socket.AF_INET, "127.0.0.1") as listener:
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            ns.accept(listener)
    with pytest.raises(SocketClosedError):
        ns.accept(closed_sock)


def test_get_peer_addr_not_connected() -> None:
    with socket.socket() as sock, pytest.raises(OSError) as info:
        ns.get_peer_addr(sock)
    assert info.value.errno == errno.ENOTCONN


def test_closed_socket_address_functions(closed_sock: socket.socket) -> None:
    for func in (ns.get_sock_name, ns.get_local_addr, ns.get_peer_addr, ns.get_sock_domain):
        with pytest.raises(SocketClosedError) as info:
            func(closed_sock)
        assert info.value.errno == errno.EBADF


def test_get_sock_domain_unknown_family() -> None:
    if not hasattr(socket, "AF_NETLINK"):
        pytest.skip("needs AF_NETLINK")
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM)
    except OSError:
        pytest.skip("AF_NETLINK not permitted here")
    with sock, pytest.raises(ValueError):
        ns.get_sock_domain(sock)


def test_unix_socket_addresses(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with ns.create_native_socket(Domain.AF_UNIX) as listener:
        assert ns.get_local_addr(listener) == ("", 0)
        listener.bind(path)
        listener.listen()
        assert ns.get_local_addr(listener) == (path, 0)
        assert ns.get_sock_name(listener) == 0
        with ns.create_native_socket(Domain.AF_UNIX) as client:
            client.connect(path)
            assert ns.get_peer_addr(client) == (path, 0)
            conn, peer_text = ns.accept(listener)
            with conn:
                assert peer_text == ""  # an unnamed client
                assert ns.get_sock_domain(conn) is Domain.AF_UNIX


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux abstract names")
def test_unix_abstract_name() -> None:
    name = f"\0twinsock-test-{os.getpid()}"
    with ns.create_native_socket(Domain.AF_UNIX) as sock:
        sock.bind(name)
        assert ns.get_local_addr(sock) == (name, 0)


def test_get_addr_string() -> None:
    assert ns.get_addr_string(("127.0.0.1", 80)) == "127.0.0.1"
    assert ns.get_addr_string(("::1", 80, 0, 0)) == "::1"
    assert ns.get_addr_string("/tmp/sock") == "/tmp/sock"
    assert ns.get_addr_string(b"\0abstract") == "\0abstract"
    with pytest.raises(AddressError):
        ns.get_addr_string(("127.0.0.1",))
    with pytest.raises(AddressError):
        ns.get_addr_string((80, "127.0.0.1"))
    with pytest.raises(TypeError):
        ns.get_addr_string(80)


# --- socket options -----------------------------------------------------------------------


def test_sock_opt_int(closed_sock: socket.socket) -> None:
    with ns.create_native_socket() as sock:
        ns.set_sock_opt_int(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        assert ns.get_sock_opt_int(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        ns.set_sock_opt_int(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, False)
        assert ns.get_sock_opt_int(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        ns.set_sock_opt_int(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert ns.get_sock_opt_int(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        with pytest.raises(OSError):
            ns.get_sock_opt_int(sock, socket.SOL_SOCKET, 99999)
        with pytest.raises(OSError):
            ns.set_sock_opt_int(sock, socket.SOL_SOCKET, 99999, 1)
        with pytest.raises(TypeError):
            ns.set_sock_opt_int(sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, "1")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ns.get_sock_opt_int(sock, "SOL_SOCKET", socket.SO_REUSEADDR)  # type: ignore[arg-type]
    with pytest.raises(SocketClosedError):
        ns.get_sock_opt_int(closed_sock, socket.SOL_SOCKET, socket.SO_REUSEADDR)
    with pytest.raises(SocketClosedError):
        ns.set_sock_opt_int(closed_sock, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


# --- readiness ---------------------------------------------------------------------------------


def test_select_read_and_write_keep_order() -> None:
    pairs = [socket.socketpair() for _ in range(4)]
    try:
        readers = [a for a, _ in pairs]
        assert ns.select_read(readers, 0) == []
        pairs[3][1].sendall(b"x")
        pairs[1][1].sendall(b"x")
        assert ns.select_read(readers, None) == [readers[1], readers[3]]
        assert ns.select_read(list(reversed(readers)), 0) == [readers[3], readers[1]]
        assert ns.select_write(readers, 0) == readers
        assert ns.select_write(readers) == readers
        # A duplicated socket is reported at each of its places.
        assert ns.select_read([readers[1], readers[0], readers[1]], 0) == [readers[1], readers[1]]
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_select_read_end_of_stream_is_readable() -> None:
    a, b = socket.socketpair()
    with a:
        b.close()
        assert ns.select_read([a], 0) == [a]


def test_select_write_full_buffer_not_writable() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        try:
            while True:
                a.send(b"x" * 65536)
        except BlockingIOError:
            pass
        assert ns.select_write([a], 0) == []
        assert ns.select_write([a], 0.01) == []


def test_select_listener_readable_when_connection_pending() -> None:
    with _listener(socket.AF_INET6, "::1") as listener:
        assert ns.select_read([listener], 0) == []
        with socket.create_connection(listener.getsockname()[:2]):
            assert ns.select_read([listener], None) == [listener]


def test_select_empty_and_bad_input(closed_sock: socket.socket) -> None:
    assert ns.select_read([]) == []
    assert ns.select_write([], None) == []
    a, b = socket.socketpair()
    with a, b:
        for func in (ns.select_read, ns.select_write):
            with pytest.raises(ValueError):
                func([a], -1)
            with pytest.raises(ValueError):
                func([a], float("nan"))
            with pytest.raises(TypeError):
                func([a], "1")  # type: ignore[arg-type]
            with pytest.raises(SocketClosedError):
                func([a, closed_sock], 0)
        b.sendall(b"x")
        assert ns.select_read([a], float("inf")) == [a]  # inf means "no limit"


def test_select_above_fd_1024() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1100:
        if hard != resource.RLIM_INFINITY and hard < 1100:
            pytest.skip("cannot raise the descriptor limit above 1024")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1100, hard))
    try:
        os.fstat(1050)
    except OSError:
        pass
    else:
        pytest.skip("descriptor 1050 is in use")
    a, b = socket.socketpair()
    try:
        high = socket.socket(fileno=os.dup2(a.fileno(), 1050))
        with high:
            b.sendall(b"x")
            assert ns.select_read([high], None) == [high]
            assert ns.select_write([high], 0) == [high]
    finally:
        a.close()
        b.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
