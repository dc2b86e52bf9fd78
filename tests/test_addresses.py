"""Tests for twinsock.addresses (SPEC section 1): pure values, no sockets."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twinsock.addresses import (
    IPV4_ANY,
    IPV4_BROADCAST,
    IPV4_LOOPBACK,
    IPV6_ANY,
    IPV6_LOOPBACK,
    IpAddressFamily,
    IPFamily,
    SocketAddress,
    check_port,
    from_sockaddr,
    ip_family,
    is_ip_address,
    parse_ip_address,
    to_sockaddr,
)
from twinsock.errors import AddressError, NetError

ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
ports = st.integers(min_value=0, max_value=65535)

NOT_ADDRESSES = [
    "",
    " ",
    "example.com",
    "localhost",
    "01.2.3.4",
    "1.2.3.04",
    "::ffff:01.2.3.4",
    "256.0.0.1",
    "1.2.3",
    "1.2.3.4.5",
    " 1.2.3.4",
    "1.2.3.4 ",
    "[::1]",
    "::1::",
    "12345::",
    "1.2.3.4/24",
    "1.2.3.4:80",
    "fe80::1%",
]


# --- parse_ip_address / is_ip_address ---------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("::1", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("2001:DB8::0:1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
    ],
)
def test_parse_ip_address_canonical(text: str, canonical: str) -> None:
    assert str(parse_ip_address(text)) == canonical
    assert is_ip_address(text)


@pytest.mark.parametrize("text", NOT_ADDRESSES)
def test_parse_ip_address_rejects_with_quoted_text(text: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_ip_address(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, NetError)
    assert not is_ip_address(text)


@pytest.mark.parametrize("value", [5, None, b"127.0.0.1", 1.5, ipaddress.IPv4Address("1.2.3.4")])
def test_parse_ip_address_rejects_non_str_with_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        parse_ip_address(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [5, None, b"127.0.0.1", 1.5, object(), ["::1"]])
def test_is_ip_address_never_raises(value: object) -> None:
    assert is_ip_address(value) is False


@given(ips)
def test_parse_round_trip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert parse_ip_address(str(ip)) == ip
    assert str(parse_ip_address(str(ip))) == str(ip)


@given(st.text(max_size=50))
def test_is_ip_address_agrees_with_parse(text: str) -> None:
    try:
        parse_ip_address(text)
    except AddressError:
        assert not is_ip_address(text)
    else:
        assert is_ip_address(text)


# --- families and constants --------------------------------------------------


def test_constants() -> None:
    assert str(IPV4_ANY) == "0.0.0.0"
    assert str(IPV4_LOOPBACK) == "127.0.0.1"
    assert str(IPV4_BROADCAST) == "255.255.255.255"
    assert str(IPV6_ANY) == "::"
    assert str(IPV6_LOOPBACK) == "::1"


def test_ip_family() -> None:
    assert ip_family(IPV4_LOOPBACK) is IpAddressFamily.IPV4
    assert ip_family(IPV6_LOOPBACK) is IpAddressFamily.IPV6
    with pytest.raises(TypeError):
        ip_family("127.0.0.1")  # type: ignore[arg-type]


def test_ipfamily_values() -> None:
    assert int(IPFamily.IPV4) == socket.AF_INET
    assert int(IPFamily.IPV6) == socket.AF_INET6
    assert int(IPFamily.UNSPEC) == socket.AF_UNSPEC


# --- check_port ---------------------------------------------------------------


@pytest.mark.parametrize("port", [0, 1, 80, 65535])
def test_check_port_accepts(port: int) -> None:
    assert check_port(port) == port


@pytest.mark.parametrize("port", [-1, 65536, 2**70, True, False, "80", 80.0, None])
def test_check_port_rejects(port: object) -> None:
    with pytest.raises(AddressError):
        check_port(port)


# --- to_sockaddr / from_sockaddr ----------------------------------------------


def test_to_sockaddr_shapes() -> None:
    assert to_sockaddr("127.0.0.1", 80) == ("127.0.0.1", 80)
    assert to_sockaddr(IPV4_LOOPBACK, 80) == ("127.0.0.1", 80)
    assert to_sockaddr("::1", 80) == ("::1", 80, 0, 0)
    assert to_sockaddr(IPV6_LOOPBACK, 0) == ("::1", 0, 0, 0)
    assert to_sockaddr("fe80::1%3", 80) == ("fe80::1", 80, 0, 3)
    lo_index = socket.if_nametoindex("lo")
    assert to_sockaddr("fe80::1%lo", 80) == ("fe80::1", 80, 0, lo_index)


def test_to_sockaddr_bad_input() -> None:
    with pytest.raises(AddressError):
        to_sockaddr("example.com", 80)
    with pytest.raises(AddressError):
        to_sockaddr("127.0.0.1", 65536)
    with pytest.raises(AddressError):
        to_sockaddr("127.0.0.1", -1)
    with pytest.raises(AddressError):
        to_sockaddr("127.0.0.1", True)
    with pytest.raises(AddressError, match="no-such-interface"):
        to_sockaddr("fe80::1%no-such-interface", 80)
    with pytest.raises(TypeError):
        to_sockaddr(5, 80)  # type: ignore[arg-type]


def test_to_sockaddr_is_accepted_by_socket_module() -> None:
    for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind(to_sockaddr(host, 0))
            ip, port = from_sockaddr(sock.getsockname())
            assert str(ip) == host
            assert port > 0


@given(ips, ports)
def test_sockaddr_round_trip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
    assert from_sockaddr(to_sockaddr(ip, port)) == (ip, port)


def test_from_sockaddr_scope_id() -> None:
    ip, port = from_sockaddr(("fe80::1", 80, 0, 3))
    assert ip == ipaddress.IPv6Address("fe80::1%3")
    assert port == 80
    ip, _ = from_sockaddr(("fe80::1%lo", 80, 0, 1))
    assert str(ip) == "fe80::1%lo"
    ip, _ = from_sockaddr(("::1", 80, 7, 0))
    assert ip == IPV6_LOOPBACK
    # A plain 2-tuple may hold IPv6 text too (the socket module accepts it).
    assert from_sockaddr(("::1", 80)) == (IPV6_LOOPBACK, 80)


@pytest.mark.parametrize(
    "bad",
    [
        (),
        ("127.0.0.1",),
        ("127.0.0.1", 80, 0),
        ("127.0.0.1", 80, 0, 0),
        ("::1", 80, 0, -1),
        ("::1", 80, 0, "0"),
        (b"127.0.0.1", 80),
        ("example.com", 80),
        ("127.0.0.1", 70000),
        ("127.0.0.1", "80"),
    ],
)
def test_from_sockaddr_rejects(bad: tuple[object, ...]) -> None:
    with pytest.raises(AddressError):
        from_sockaddr(bad)


@pytest.mark.parametrize("bad", ["127.0.0.1", ["127.0.0.1", 80], None])
def test_from_sockaddr_rejects_non_tuple(bad: object) -> None:
    with pytest.raises(TypeError):
        from_sockaddr(bad)  # type: ignore[arg-type]


# --- SocketAddress --------------------------------------------------------------


def test_socket_address_create_defaults() -> None:
    addr = SocketAddress.create()
    assert (addr.host, addr.port, addr.family) == ("127.0.0.1", 8000, IPFamily.IPV4)
    assert str(addr) == "127.0.0.1:8000"
    assert addr.ip_address == IPV4_LOOPBACK


def test_socket_address_ipv6_canonical_and_str() -> None:
    addr = SocketAddress.create("0:0::1", 8000, IPFamily.IPV6)
    assert addr.host == "::1"
    assert str(addr) == "[::1]:8000"
    assert addr == SocketAddress.ipv6(IPV6_LOOPBACK, 8000)


def test_socket_address_family_mismatch_raises() -> None:
    with pytest.raises(AddressError):
        SocketAddress.create("::1", 80, IPFamily.IPV4)
    with pytest.raises(AddressError):
        SocketAddress.create("127.0.0.1", 80, IPFamily.IPV6)
    with pytest.raises(AddressError):
        SocketAddress.ipv4("::1")
    with pytest.raises(AddressError):
        SocketAddress.ipv6("127.0.0.1")
    with pytest.raises(AddressError):
        SocketAddress.ipv4(IPV6_LOOPBACK)  # type: ignore[arg-type]


def test_socket_address_unspec_infers_family() -> None:
    assert SocketAddress.create("::1", 80, IPFamily.UNSPEC).family is IPFamily.IPV6
    assert SocketAddress.create("10.0.0.1", 80, IPFamily.UNSPEC).family is IPFamily.IPV4


@pytest.mark.parametrize(
    ("host", "port", "family"),
    [
        ("example.com", 80, IPFamily.IPV4),
        ("localhost", 80, IPFamily.UNSPEC),
        ("01.2.3.4", 80, IPFamily.IPV4),
        ("127.0.0.1", 65536, IPFamily.IPV4),
        ("127.0.0.1", -1, IPFamily.IPV4),
        ("127.0.0.1", True, IPFamily.IPV4),
        ("127.0.0.1", "80", IPFamily.IPV4),
        ("127.0.0.1", 80, 1),
        ("127.0.0.1", 80, "IPV4"),
    ],
)
def test_socket_address_create_rejects(host: str, port: object, family: object) -> None:
    with pytest.raises(AddressError):
        SocketAddress.create(host, port, family)  # type: ignore[arg-type]


def test_socket_address_create_rejects_bad_host_type() -> None:
    with pytest.raises(TypeError):
        SocketAddress.create(5, 80)  # type: ignore[arg-type]


def test_socket_address_plain_int_family() -> None:
    addr = SocketAddress.create("127.0.0.1", 80, socket.AF_INET)  # type: ignore[arg-type]
    assert addr.family is IPFamily.IPV4


def test_socket_address_constructor_validates() -> None:
    assert SocketAddress("0::1", 80, IPFamily.IPV6).host == "::1"
    with pytest.raises(AddressError):
        SocketAddress("::1", 80, IPFamily.IPV4)


def test_socket_address_defaults_and_value_semantics() -> None:
    assert SocketAddress.ipv4() == SocketAddress.create("0.0.0.0", 8000, IPFamily.IPV4)
    assert SocketAddress.ipv6().host == "::"
    a = SocketAddress.ipv4(IPV4_LOOPBACK, 80)
    b = SocketAddress.create("127.0.0.1", 80)
    c = SocketAddress.create("127.0.0.1", 81)
    assert a == b
    assert a != c
    assert hash(a) == hash(b)
    assert len({a, b, c}) == 2
    with pytest.raises(AttributeError):
        a.port = 1  # type: ignore[misc]


def test_socket_address_sockaddr() -> None:
    assert SocketAddress.create("127.0.0.1", 80).to_sockaddr() == ("127.0.0.1", 80)
    assert SocketAddress.ipv6("::1", 80).to_sockaddr() == ("::1", 80, 0, 0)
    assert SocketAddress.from_sockaddr(("::1", 80, 0, 0)) == SocketAddress.ipv6("::1", 80)
    with pytest.raises(AddressError):
        SocketAddress.from_sockaddr(("127.0.0.1", 80, 0, 0))
    with pytest.raises(TypeError):
        SocketAddress.from_sockaddr("127.0.0.1:80")  # type: ignore[arg-type]


@given(ips, ports)
def test_socket_address_round_trip(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    addr = SocketAddress.create(ip, port, IPFamily.UNSPEC)
    assert SocketAddress.from_sockaddr(addr.to_sockaddr()) == addr
    assert SocketAddress.create(addr.host, addr.port, addr.family) == addr
    text = str(addr)
    assert text.endswith(f":{port}")
    assert text.startswith("[") == (addr.family is IPFamily.IPV6)
