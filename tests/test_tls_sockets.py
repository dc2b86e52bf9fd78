"""TLS and PSK on both socket kinds, over real loopback sockets (SPEC section 6).

Every test body runs for each socket kind (blocking, asyncio, uvloop) through
the ``kind`` fixture.  The peers are real: the ``openssl s_server`` and
``s_client`` binaries (started per test, killed only by their own pid), or a
twinsock socket of the *other* kind in a thread.  Certificates are made at
test time with trustme: a root CA, an intermediate CA, and leaves issued by
the intermediate.

Helpers
-------
``raw(sock)`` unwraps the async proxy of ``tests/twins.py`` so that module
functions (``wrap_socket``, ``wrap_connected_socket``) get the real socket.
``Openssl`` runs one s_server / s_client with stdin, stdout and stderr piped;
two reader threads collect the output, and ``wait_for`` polls it with a bound.
``twin_server`` runs a wrapped twinsock listener in a thread that accepts a
given number of clients and hands each to a handler.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from openssl_peer import OPENSSL, s_client, s_server
from pem_files import write_pem
from twins import make_kind
from twinsock._core import deadline as _deadline
from twinsock.errors import NetTimeout, PskError, SslError
from twinsock.tls import HandshakeType, ProtVersion, SslContext, VerifyMode, new_context

pytestmark = pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")

VERSIONS = [ProtVersion.TLSV1_2, ProtVersion.TLSV1_3]
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
TLS13_SUITE = "TLS_AES_128_GCM_SHA256"

# Lines with every awkward byte except the terminator: NUL, a lone CR, UTF-8,
# 0xff, a line that starts with an s_client command letter, an empty line, a
# long line.
LINES = [
    b"hello",
    b"Q is an s_client command letter",
    b"bytes \x00\x01\x7f\xfe\xff and caf\xc3\xa9",
    b"a lone \r carriage return",
    b"",
    b"z" * 5000,
]


def line_stream(lines: list[bytes]) -> bytes:
    """``lines`` terminated alternately by LF and CRLF."""
    return b"".join(line + (b"\n" if i % 2 else b"\r\n") for i, line in enumerate(lines))


def as_received(lines: list[bytes]) -> list[bytes]:
    """What ``recv_line`` returns for ``lines`` (an empty line reads as CRLF)."""
    return [line or b"\r\n" for line in lines]


def version_flag(version: ProtVersion) -> str:
    return "-tls1_2" if version is ProtVersion.TLSV1_2 else "-tls1_3"


# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------


@dataclass
class Pki:
    ca: trustme.CA
    directory: Path
    ca_file: str
    server_cert: str  # key + leaf + intermediate; leaf for localhost and 127.0.0.1
    leaf_file: str
    key_file: str
    intermediate_file: str
    localhost_only: list[str]  # s_server arguments: a leaf for "localhost" only
    expired: list[str]  # s_server arguments: an expired leaf for localhost and 127.0.0.1
    other_ca_file: str  # a CA that issued nothing here

    def write(self, name: str, blob: trustme.Blob) -> str:
        return write_pem(self.directory, name, blob)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("tls-sockets")
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("localhost", "127.0.0.1")
    now = datetime.datetime.now(datetime.UTC)
    expired = intermediate.issue_cert(
        "localhost",
        "127.0.0.1",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )

    write = functools.partial(write_pem, directory)

    def server_args(name: str, cert: trustme.LeafCert) -> list[str]:
        return [
            "-cert",
            write(f"{name}-leaf.pem", cert.cert_chain_pems[0]),
            "-key",
            write(f"{name}-key.pem", cert.private_key_pem),
            "-cert_chain",
            write(f"{name}-chain.pem", intermediate.cert_pem),
        ]

    return Pki(
        ca=ca,
        directory=directory,
        ca_file=write("ca.pem", ca.cert_pem),
        server_cert=write("server.pem", leaf.private_key_and_cert_chain_pem),
        leaf_file=write("leaf.pem", leaf.cert_chain_pems[0]),
        key_file=write("key.pem", leaf.private_key_pem),
        intermediate_file=write("intermediate.pem", intermediate.cert_pem),
        localhost_only=server_args("localhost-only", intermediate.issue_cert("localhost")),
        expired=server_args("expired", expired),
        other_ca_file=write("other-ca.pem", trustme.CA().cert_pem),
    )


def cert_server_args(pki: Pki) -> list[str]:
    return ["-cert", pki.leaf_file, "-key", pki.key_file, "-cert_chain", pki.intermediate_file]


# ---------------------------------------------------------------------------
# Kinds: the proxy of twins.py and a second kind for twinsock <-> twinsock
# ---------------------------------------------------------------------------


def raw(sock: Any) -> Any:
    """The real socket behind an async proxy (module functions need it)."""
    return getattr(sock, "_target", sock)


def wrap(kind: Any, ctx: SslContext, sock: Any) -> None:
    kind.call(kind.module.wrap_socket, ctx, raw(sock))


def wrap_connected(
    kind: Any,
    ctx: SslContext,
    sock: Any,
    handshake: HandshakeType = HandshakeType.CLIENT,
    hostname: str | None = None,
    timeout: float | None = 10,
) -> None:
    kind.call(kind.module.wrap_connected_socket, ctx, raw(sock), handshake, hostname, timeout)


@pytest.fixture(scope="module")
def other_kinds() -> Iterator[dict[str, Any]]:
    kinds = {"blocking": make_kind("blocking"), "asyncio": make_kind("asyncio")}
    yield kinds
    for k in kinds.values():
        k.close()


def partner_of(kind: Any, other_kinds: dict[str, Any]) -> Any:
    """The other socket kind: async for the blocking kind, blocking otherwise."""
    return other_kinds["asyncio" if kind.name == "blocking" else "blocking"]


def tls_client(kind: Any, ctx: SslContext, port: int, host: str = "localhost") -> Any:
    """A twinsock client of ``kind``, wrapped, connected (handshake done) to ``port``."""
    sock = kind.new()
    try:
        wrap(kind, ctx, sock)
        sock.connect(host, port, timeout=10)
    except BaseException:
        sock.close()
        raise
    return sock


def psk_client_context(
    version: ProtVersion, identity: str = "alice", key: bytes = KEY
) -> SslContext:
    ctx = new_context(version, VerifyMode.NONE, cipher_list="PSK")
    ctx.client_get_psk_func = lambda hint: (identity, key)
    return ctx


def psk_server_context(
    version: ProtVersion, lookup: Callable[[str], bytes | None] | None = None
) -> SslContext:
    ctx = new_context(version, VerifyMode.NONE, cipher_list="PSK")
    ctx.server_get_psk_func = lookup or known
    ctx.psk_identity_hint = "twinhint"
    return ctx


def known(identity: str) -> bytes | None:
    return KEY if identity == "alice" else None


# ---------------------------------------------------------------------------
# Threads and a twinsock server
# ---------------------------------------------------------------------------


class Background:
    """Run ``fn`` in a daemon thread; ``result()`` joins (bounded) and re-raises."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: list[Any] = []
        self._error: list[BaseException] = []

        def run() -> None:
            try:
                self._value.append(fn())
            except BaseException as exc:  # handed to the test thread
                self._error.append(exc)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 30) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background call did not finish"
        if self._error:
            raise self._error[0]
        return self._value[0]


@dataclass
class Served:
    lines: list[bytes]
    psk_identity: str | None
    end: bytes | BaseException  # what recv_line gave after the last line


def echo_handler(conn: Any) -> Served:
    """Answer every line with ``echo:<line>\\n`` until the stream ends."""
    lines: list[bytes] = []
    for _ in range(1000):
        try:
            line = conn.recv_line(timeout=15)
        except (OSError, ValueError) as exc:
            return Served(lines, conn.get_psk_identity(), exc)
        if line == b"":
            return Served(lines, conn.get_psk_identity(), line)
        lines.append(line)
        conn.send(b"echo:" + (b"" if line == b"\r\n" else line) + b"\n")
    raise AssertionError("too many lines")


@contextlib.contextmanager
def twin_server(
    kind: Any,
    ctx: SslContext,
    handler: Callable[[Any], Any] = echo_handler,
    clients: int = 1,
    accept_timeout: float = 20,
) -> Iterator[tuple[int, list[Any]]]:
    """A wrapped twinsock listener accepting ``clients`` clients in a thread.

    Yields the port and the list of handler results (or exceptions, one per
    accepted client, or the accept error), complete once the block ends.
    """
    listener = kind.new()
    listener.bind_addr(0, "127.0.0.1")
    listener.listen()
    wrap(kind, ctx, listener)
    port = listener.get_local_addr()[1]
    results: list[Any] = []

    def run() -> None:
        for _ in range(clients):
            try:
                conn = listener.accept(timeout=accept_timeout)
            except BaseException as exc:
                results.append(exc)
                return
            try:
                results.append(handler(conn))
            except BaseException as exc:
                results.append(exc)
            finally:
                conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield port, results
    finally:
        thread.join(30)
        listener.close()
    assert not thread.is_alive(), "the twinsock server thread did not finish"


# ---------------------------------------------------------------------------
# openssl s_server / s_client
# ---------------------------------------------------------------------------


def recv_lines(sock: Any, count: int) -> list[bytes]:
    return [sock.recv_line(timeout=10) for _ in range(count)]


# ---------------------------------------------------------------------------
# twinsock client <-> openssl s_server
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_client_against_s_server_with_certificates(
    kind: Any, pki: Pki, version: ProtVersion
) -> None:
    with s_server(*cert_server_args(pki), version_flag(version)) as (server, port):
        with tls_client(kind, new_context(version, ca_file=pki.ca_file), port) as sock:
            assert sock.is_ssl()
            chain = sock.get_peer_certificates()
            assert len(chain) == 3
            leaf, intermediate, root = chain
            assert root.pem == pki.ca.cert_pem.bytes().decode()
            assert leaf.issuer == intermediate.subject
            assert intermediate.issuer == root.subject
            assert root.issuer == root.subject
            assert leaf.subject != intermediate.subject != root.subject
            assert sock.get_psk_identity() is None

            sock.send(line_stream(LINES))
            server.wait_for(lambda out: out == line_stream(LINES))
            server.write(line_stream(LINES))
            assert recv_lines(sock, len(LINES)) == as_received(LINES)
        # close() sent close_notify: s_server shuts down cleanly and exits 0.
        assert server.wait() == 0
        assert server.output()[0] == line_stream(LINES)


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_client_against_s_server(kind: Any, version: ProtVersion) -> None:
    hints: list[str | None] = []

    def client_func(hint: str | None) -> tuple[str, bytes]:
        hints.append(hint)
        return "alice", KEY

    ctx = new_context(version, VerifyMode.NONE, cipher_list="PSK")
    ctx.client_get_psk_func = client_func
    args = ["-psk", KEY.hex(), "-psk_identity", "alice", "-psk_hint", "sshint", "-nocert"]
    args += [version_flag(version), "-ciphersuites", TLS13_SUITE]
    with s_server(*args) as (server, port):
        sock = kind.new()
        with sock:
            sock.connect("127.0.0.1", port, timeout=10)
            wrap_connected(kind, ctx, sock)
            assert sock.get_peer_certificates() == []
            assert sock.get_psk_identity() == "alice"
            sock.send(line_stream(LINES))
            server.wait_for(lambda out: out == line_stream(LINES))
            server.write(line_stream(LINES[::-1]))
            assert recv_lines(sock, len(LINES)) == as_received(LINES[::-1])
            # s_server's stdin ends: it closes with close_notify, a clean end here.
            server.close_stdin()
            assert sock.recv_line(timeout=10) == b""
        assert server.wait() == 0
    assert hints and hints[-1] == ("sshint" if version is ProtVersion.TLSV1_2 else None)


# ---------------------------------------------------------------------------
# openssl s_client -> twinsock server
# ---------------------------------------------------------------------------


def served_ok(results: list[Any]) -> Served:
    assert len(results) == 1, results
    outcome = results[0]
    if isinstance(outcome, BaseException):
        raise outcome
    assert isinstance(outcome, Served)
    assert outcome.lines == as_received(LINES)
    assert outcome.end == b"", outcome.end  # the client's close_notify: a clean end
    return outcome


def echo_session(client: Any) -> bytes:
    """Send ``LINES`` from ``s_client``, expect every echo, end with stdin's close
    (s_client then exits 0); return what s_client wrote to stderr."""
    client.write(line_stream(LINES))
    expected = b"".join(b"echo:" + line + b"\n" for line in LINES)
    client.wait_for(lambda out: out == expected)
    client.close_stdin()
    assert client.wait() == 0
    return bytes(client.output()[1])


@pytest.mark.parametrize("version", VERSIONS)
def test_s_client_session_with_certificates(kind: Any, pki: Pki, version: ProtVersion) -> None:
    ctx = new_context(version, cert_file=pki.server_cert)
    with (
        twin_server(kind, ctx) as (port, results),
        s_client(
            port,
            "-brief",
            "-nocommands",
            "-CAfile",
            pki.ca_file,
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
            version_flag(version),
        ) as client,
    ):
        err = echo_session(client)
    outcome = served_ok(results)
    assert outcome.psk_identity is None
    assert b"Verification: OK" in err
    assert f"Protocol version: {version.value}".encode() in err


@pytest.mark.parametrize("version", VERSIONS)
def test_s_client_session_with_psk(kind: Any, version: ProtVersion) -> None:
    with (
        twin_server(kind, psk_server_context(version)) as (port, results),
        s_client(
            port,
            "-brief",
            "-nocommands",
            "-psk",
            KEY.hex(),
            "-psk_identity",
            "alice",
            "-ciphersuites",
            TLS13_SUITE,
            version_flag(version),
        ) as client,
    ):
        err = echo_session(client)
    outcome = served_ok(results)
    assert outcome.psk_identity == "alice"  # TLS 1.3 too
    assert f"Protocol version: {version.value}".encode() in err
    if version is ProtVersion.TLSV1_3:
        assert TLS13_SUITE.encode() in err


# ---------------------------------------------------------------------------
# twinsock <-> twinsock, blocking against async (both directions)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["kind-is-server", "kind-is-client"])
@pytest.mark.parametrize("version", VERSIONS)
def test_twinsock_to_twinsock_connect(
    kind: Any, other_kinds: dict[str, Any], pki: Pki, role: str, version: ProtVersion
) -> None:
    partner = partner_of(kind, other_kinds)
    server_kind, client_kind = (kind, partner) if role == "kind-is-server" else (partner, kind)
    server_ctx = new_context(version, cert_file=pki.server_cert)
    client_ctx = new_context(version, ca_file=pki.ca_file)
    with twin_server(server_kind, server_ctx, clients=2) as (port, results):
        # The SNI and the checked name come from the connect address: a name
        # and an IP literal that the certificate lists.
        for host in ("localhost", "127.0.0.1"):
            with tls_client(client_kind, client_ctx, port, host) as sock:
                assert len(sock.get_peer_certificates()) == 3
                sock.send(line_stream(LINES))
                replies = recv_lines(sock, len(LINES))
                assert replies == [b"echo:" + line for line in LINES]
            # close() sent close_notify: the server saw a clean end (no SslError).
    assert len(results) == 2
    for outcome in results:
        assert isinstance(outcome, Served), outcome
        assert outcome.lines == as_received(LINES)
        assert outcome.end == b""
        assert outcome.psk_identity is None


@pytest.mark.parametrize("role", ["kind-is-server", "kind-is-client"])
@pytest.mark.parametrize("version", VERSIONS)
def test_twinsock_to_twinsock_wrap_connected_psk(
    kind: Any, other_kinds: dict[str, Any], role: str, version: ProtVersion
) -> None:
    partner = partner_of(kind, other_kinds)
    server_kind, client_kind = (kind, partner) if role == "kind-is-server" else (partner, kind)
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        plain_client = socket.create_connection(listener.getsockname(), timeout=10)
        plain_server, _ = listener.accept()
    client = client_kind.from_native(plain_client)
    server = server_kind.from_native(plain_server)
    with client, server:
        assert not client.is_ssl() and not server.is_ssl()
        server_side = Background(
            lambda: wrap_connected(
                server_kind, psk_server_context(version), server, HandshakeType.SERVER
            )
        )
        wrap_connected(client_kind, psk_client_context(version), client)
        server_side.result()
        assert client.is_ssl() and server.is_ssl()
        assert server.get_psk_identity() == "alice"
        assert server.get_peer_certificates() == [] == client.get_peer_certificates()
        client.send(line_stream(LINES))
        assert recv_lines(server, len(LINES)) == as_received(LINES)
        server.send(line_stream(LINES))
        assert recv_lines(client, len(LINES)) == as_received(LINES)
        client.close()
        assert server.recv_line(timeout=10) == b""  # close_notify: a clean end


def test_wrap_connected_hostname_sets_sni_and_check(
    kind: Any, other_kinds: dict[str, Any], pki: Pki
) -> None:
    partner = partner_of(kind, other_kinds)
    with twin_server(partner, new_context(cert_file=pki.server_cert)) as (port, results):
        sock = kind.new()
        with sock:
            sock.connect("127.0.0.1", port, timeout=10)
            wrap_connected(kind, new_context(ca_file=pki.ca_file), sock, hostname="localhost")
            assert len(sock.get_peer_certificates()) == 3
            sock.send(b"one line\n")
            assert sock.recv_line(timeout=10) == b"echo:one line"
    assert isinstance(results[0], Served) and results[0].lines == [b"one line"]


# ---------------------------------------------------------------------------
# Verification failures: SslError, with a message that says why
# ---------------------------------------------------------------------------


def handshake_error(
    kind: Any, server_args: list[str], client_ctx: SslContext, host: str
) -> SslError:
    """Connect a wrapped client of ``kind`` to s_server started with ``server_args``."""
    with s_server(*server_args) as (_server, port):
        sock = kind.new()
        with sock:
            wrap(kind, client_ctx, sock)
            with pytest.raises(SslError) as info:
                sock.connect(host, port, timeout=10)
    return info.value


def test_unknown_ca(kind: Any, pki: Pki) -> None:
    error = handshake_error(
        kind, cert_server_args(pki), new_context(ca_file=pki.other_ca_file), "localhost"
    )
    assert "certificate verify failed" in str(error) and "unknown CA" in str(error)


def test_name_not_in_certificate(kind: Any, pki: Pki) -> None:
    with s_server(*cert_server_args(pki)) as (_server, port):
        sock = kind.new()
        with sock:
            sock.connect("127.0.0.1", port, timeout=10)
            with pytest.raises(SslError) as info:
                wrap_connected(
                    kind, new_context(ca_file=pki.ca_file), sock, hostname="wrong.example"
                )
    assert "Hostname mismatch" in str(info.value) and "wrong.example" in str(info.value)


def test_ip_not_in_certificate(kind: Any, pki: Pki) -> None:
    error = handshake_error(kind, pki.localhost_only, new_context(ca_file=pki.ca_file), "127.0.0.1")
    assert "IP address mismatch" in str(error) and "127.0.0.1" in str(error)


def test_expired_certificate(kind: Any, pki: Pki) -> None:
    error = handshake_error(kind, pki.expired, new_context(ca_file=pki.ca_file), "localhost")
    assert "expired" in str(error)


def test_protocol_version_refused_by_peer(kind: Any, pki: Pki) -> None:
    with s_server(*cert_server_args(pki), "-tls1_2") as (_server, port):
        sock = kind.new()
        with sock:
            wrap(kind, new_context(ProtVersion.TLSV1_3, ca_file=pki.ca_file), sock)
            with pytest.raises(SslError, match="protocol version"):
                sock.connect("localhost", port, timeout=10)


@pytest.mark.parametrize("version", [ProtVersion.SSLV2, ProtVersion.SSLV3, ProtVersion.TLSV1])
def test_insecure_versions_refused(version: ProtVersion) -> None:
    with pytest.raises(SslError, match="insecure"):
        new_context(version)


def test_verifying_client_without_hostname_fails_before_io(kind: Any) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        ours = socket.create_connection(listener.getsockname(), timeout=10)
        peer, _ = listener.accept()
    sock = kind.from_native(ours)
    with sock, peer:
        with pytest.raises(ValueError, match="host name"):
            wrap_connected(kind, new_context(), sock, hostname=None)
        peer.setblocking(False)
        with pytest.raises(BlockingIOError):
            peer.recv(1)  # no ClientHello was sent, and the connection is still open
        # The socket was left as it was: not TLS, still usable as plain TCP.
        assert not sock.is_ssl()
        sock.send(b"plain\n")
        peer.setblocking(True)
        peer.settimeout(10)
        assert peer.recv(100) == b"plain\n"


# ---------------------------------------------------------------------------
# PSK failures
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "identity", "key", "why"),
    [
        (ProtVersion.TLSV1_2, "alice", b"\x42" * 16, "wrong"),
        (ProtVersion.TLSV1_3, "alice", b"\x42" * 16, "wrong"),
        # s_server only warns about an unexpected identity on TLS 1.2 (and
        # then uses its key); on TLS 1.3 it finds no PSK and, having no
        # certificate, refuses the handshake.
        (ProtVersion.TLSV1_3, "mallory", KEY, "identity 'mallory'"),
    ],
    ids=["wrong-key-1.2", "wrong-key-1.3", "unknown-identity-1.3"],
)
def test_psk_client_failures_against_s_server(
    kind: Any, version: ProtVersion, identity: str, key: bytes, why: str
) -> None:
    args = ["-psk", KEY.hex(), "-psk_identity", "alice", "-nocert", version_flag(version)]
    with s_server(*args, "-ciphersuites", TLS13_SUITE) as (_server, port):
        sock = kind.new()
        with sock:
            wrap(kind, psk_client_context(version, identity, key), sock)
            with pytest.raises(PskError) as info:
                sock.connect("127.0.0.1", port, timeout=10)
            assert sock.is_closed()  # a failed handshake leaves no usable stream
    assert why in str(info.value)


def raising_client_func(hint: str | None) -> tuple[str, bytes]:
    raise RuntimeError("no key here")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("client_func", "why"),
    [
        (lambda hint: ("alice", b"\x42" * 16), "wrong"),
        (lambda hint: ("mallory", KEY), "mallory"),
        (raising_client_func, "no key here"),
    ],
    ids=["wrong-key", "unknown-identity", "callback-raises"],
)
def test_psk_client_failures_against_twinsock_server(
    kind: Any,
    other_kinds: dict[str, Any],
    version: ProtVersion,
    client_func: Callable[[str | None], tuple[str, bytes]],
    why: str,
) -> None:
    ctx = new_context(version, VerifyMode.NONE, cipher_list="PSK")
    ctx.client_get_psk_func = client_func
    server_ctx = psk_server_context(version)
    with twin_server(partner_of(kind, other_kinds), server_ctx) as (port, results):
        sock = kind.new()
        with sock:
            wrap(kind, ctx, sock)
            with pytest.raises(PskError) as info:
                sock.connect("127.0.0.1", port, timeout=10)
        # The server is unharmed: it skipped that client and serves the next one.
        with tls_client(kind, psk_client_context(version), port, "127.0.0.1") as good:
            good.send(b"still here\n")
            assert good.recv_line(timeout=10) == b"echo:still here"
    assert why in str(info.value)
    assert isinstance(results[0], Served) and results[0].psk_identity == "alice"


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_client_refuses_certificate_handshake(
    kind: Any, pki: Pki, version: ProtVersion
) -> None:
    with s_server(*cert_server_args(pki), version_flag(version)) as (_server, port):
        sock = kind.new()
        with sock:
            wrap(kind, psk_client_context(version), sock)
            with pytest.raises(PskError):
                sock.connect("localhost", port, timeout=10)
            assert sock.is_closed()


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_server_failures_keep_accepting(
    kind: Any, version: ProtVersion, caplog: pytest.LogCaptureFixture
) -> None:
    def lookup(identity: str) -> bytes | None:
        if identity == "boom":
            raise RuntimeError("database down")
        return known(identity)

    caplog.set_level(logging.WARNING, logger="twinsock")
    flags = [version_flag(version), "-ciphersuites", TLS13_SUITE]
    with twin_server(kind, psk_server_context(version, lookup)) as (port, results):
        bad = [
            ["-psk", "42" * 16, "-psk_identity", "alice"],  # wrong key
            ["-psk", KEY.hex(), "-psk_identity", "mallory"],  # unknown identity
            ["-psk", KEY.hex(), "-psk_identity", "boom"],  # the server callback raises
        ]
        for args in bad:
            with s_client(port, "-brief", "-nocommands", *args, *flags) as client:
                client.close_stdin()
                client.wait()
        with s_client(
            port, "-brief", "-nocommands", "-psk", KEY.hex(), "-psk_identity", "alice", *flags
        ) as client:
            client.write(line_stream(LINES))
            client.wait_for(lambda out: out.count(b"\n") == len(LINES))
            client.close_stdin()
            assert client.wait() == 0
    served = served_ok(results)
    assert served.psk_identity == "alice"
    messages = "\n".join(r.getMessage() for r in caplog.records if r.name == "twinsock")
    assert messages.count("TLS handshake with") >= 3, messages
    assert "database down" in messages
    assert "mallory" in messages


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_server_wrap_connected_wrong_key(kind: Any, version: ProtVersion) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        port = listener.getsockname()[1]
        with s_client(
            port,
            "-psk",
            "42" * 16,
            "-psk_identity",
            "alice",
            version_flag(version),
            "-ciphersuites",
            TLS13_SUITE,
        ):
            listener.settimeout(10)
            conn, _ = listener.accept()
            sock = kind.from_native(conn)
            with sock, pytest.raises(PskError, match="wrong"):
                wrap_connected(
                    kind, psk_server_context(version), sock, HandshakeType.SERVER, timeout=10
                )


# ---------------------------------------------------------------------------
# accept on a wrapped listener: bad clients never block or break it
# ---------------------------------------------------------------------------


def test_silent_and_garbage_clients_do_not_block_accept(
    kind: Any, pki: Pki, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_deadline, "HANDSHAKE_TIMEOUT", 0.5)  # configuration, both kinds
    caplog.set_level(logging.WARNING, logger="twinsock")
    with twin_server(kind, new_context(cert_file=pki.server_cert)) as (port, results):
        silent = socket.create_connection(("127.0.0.1", port), timeout=10)
        garbage = socket.create_connection(("127.0.0.1", port), timeout=10)
        garbage.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        half = socket.create_connection(("127.0.0.1", port), timeout=10)
        half.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
        with silent, garbage, half:
            started = time.monotonic()
            with tls_client(kind, new_context(ca_file=pki.ca_file), port) as good:
                good.send(line_stream(LINES))
                assert recv_lines(good, len(LINES)) == [b"echo:" + line for line in LINES]
            assert time.monotonic() - started < 8  # not 3 x the default 10 s
            # The server closed the bad clients.
            for bad in (silent, garbage, half):
                assert read_to_end(bad).startswith((b"", b"\x15"))  # at most a TLS alert
    served_ok(results)
    messages = [r.getMessage() for r in caplog.records if r.name == "twinsock"]
    assert len(messages) == 3, messages
    assert sum("timed out" in m for m in messages) == 2, messages


def read_to_end(sock: socket.socket) -> bytes:
    """Read a stdlib socket until the peer closes it (bounded)."""
    sock.settimeout(10)
    received = b""
    for _ in range(100):
        chunk = sock.recv(4096)
        if not chunk:
            return received
        received += chunk
    raise AssertionError("the peer never closed")


def test_accept_deadline_bounds_a_stalled_handshake(kind: Any, pki: Pki) -> None:
    listener = kind.new()
    with listener:
        listener.bind_addr(0, "127.0.0.1")
        listener.listen()
        wrap(kind, new_context(cert_file=pki.server_cert), listener)
        port = listener.get_local_addr()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            started = time.monotonic()
            with pytest.raises(NetTimeout):
                listener.accept(timeout=0.3)
            assert time.monotonic() - started < 5


# ---------------------------------------------------------------------------
# Closing: close_notify, truncation
# ---------------------------------------------------------------------------


def test_failed_handshake_closes_the_socket(kind: Any, pki: Pki) -> None:
    """No plaintext can follow a failed handshake: the socket is closed (both kinds)."""
    with s_server(*cert_server_args(pki)) as (_server, port):
        sock = kind.new()
        sock.connect("127.0.0.1", port, timeout=10)
        with pytest.raises(SslError, match="unknown CA"):
            wrap_connected(kind, new_context(ca_file=pki.other_ca_file), sock, hostname="localhost")
        assert sock.is_closed()
        sock.close()  # idempotent


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("allow", [False, True], ids=["truncation-is-an-error", "allowed"])
def test_peer_closing_without_close_notify(
    kind: Any, pki: Pki, version: ProtVersion, allow: bool
) -> None:
    ctx = new_context(version, ca_file=pki.ca_file, allow_truncation=allow)
    with (
        s_server(*cert_server_args(pki), version_flag(version)) as (server, port),
        tls_client(kind, ctx, port) as sock,
    ):
        server.write(b"complete\npart")
        assert sock.recv_line(timeout=10) == b"complete"
        assert sock.recv(4, timeout=10) == b"part"
        server.stop()  # SIGKILL: the kernel ends the TCP stream, no close_notify
        if allow:
            assert sock.recv_line(timeout=10) == b""
            assert sock.recv_line(timeout=10) == b""
        else:
            with pytest.raises(SslError, match="truncated"):
                sock.recv_line(timeout=10)
            with pytest.raises(SslError, match="truncated"):
                sock.recv(1, timeout=10)


def test_close_notify_reaches_a_twinsock_peer(
    kind: Any, other_kinds: dict[str, Any], pki: Pki
) -> None:
    """The server's close() sends close_notify: the client reads b"", not SslError.

    (The client-to-server direction is checked in test_twinsock_to_twinsock_connect.)
    """
    partner = partner_of(kind, other_kinds)

    def close_after_one_line(conn: Any) -> bytes:
        line = conn.recv_line(timeout=10)
        conn.send(b"bye\n")
        return bytes(line)  # the server closes (close_notify) when the handler returns

    server_ctx = new_context(cert_file=pki.server_cert)
    with (
        twin_server(partner, server_ctx, close_after_one_line) as (port, results),
        tls_client(kind, new_context(ca_file=pki.ca_file), port) as sock,
    ):
        sock.send(b"hello\n")
        assert sock.recv_line(timeout=10) == b"bye"
        assert sock.recv_line(timeout=10) == b""
        assert sock.recv_line(timeout=10) == b""
    assert results == [b"hello"]


def close_gracefully(sock: Any) -> None:
    """``aclose()`` (waits for close_notify to go out) where the kind has it, else ``close()``."""
    aclose = getattr(raw(sock), "aclose", None)
    if aclose is None:
        sock.close()
    else:
        sock.aclose()


@pytest.mark.parametrize("version", VERSIONS)
def test_close_sends_close_notify_to_s_server(kind: Any, pki: Pki, version: ProtVersion) -> None:
    with s_server(*cert_server_args(pki), version_flag(version), quiet=False) as (server, port):
        sock = tls_client(kind, new_context(version, ca_file=pki.ca_file), port)
        sock.send(b"last words\n")
        server.wait_for(lambda out: b"last words\n" in out)
        close_gracefully(sock)
        out = server.wait_for(lambda out: b"CONNECTION CLOSED" in out)
    assert b"last words\nDONE\n" in out and b"ERROR" not in out


@pytest.mark.parametrize("graceful", [True, False], ids=["close_notify", "control-truncated"])
def test_close_sends_close_notify_to_s_client(kind: Any, pki: Pki, graceful: bool) -> None:
    def reply_and_close(conn: Any) -> None:
        line = conn.recv_line(timeout=10)
        conn.send(b"reply:" + line + b"\n")
        if graceful:
            close_gracefully(conn)
        else:  # the control: end the TCP stream under the TLS layer
            os.close(os.dup(conn.fileno()))  # (no-op on the socket itself)
            socket.socket(fileno=os.dup(conn.fileno())).shutdown(socket.SHUT_RDWR)

    with (
        twin_server(kind, new_context(cert_file=pki.server_cert), reply_and_close) as (
            port,
            results,
        ),
        s_client(port, "-quiet", "-CAfile", pki.ca_file, "-verify_return_error") as client,
    ):
        client.write(b"ping\n")
        assert client.wait() == (0 if graceful else 1)
        out, err = client.output()
    assert results == [None]
    assert out == b"reply:ping\n"
    assert (b"unexpected eof" in err) is not graceful, err


# ---------------------------------------------------------------------------
# The rest of the socket contract through TLS
# ---------------------------------------------------------------------------


def test_send_to_on_tls_socket_raises(kind: Any, pki: Pki) -> None:
    sock = kind.new()
    with sock:
        wrap(kind, new_context(ca_file=pki.ca_file), sock)
        assert sock.is_ssl()
        with pytest.raises(SslError, match="send_to"):
            sock.send_to("127.0.0.1", 9, b"datagram")
    plain = kind.new()
    with plain:
        assert not plain.is_ssl()
        assert plain.get_peer_certificates() == [] and plain.get_psk_identity() is None


def test_deadlines_through_tls(kind: Any, pki: Pki) -> None:
    with (
        s_server(*cert_server_args(pki)) as (server, port),
        tls_client(kind, new_context(ca_file=pki.ca_file), port) as sock,
    ):
        server.write(b"par")
        started = time.monotonic()
        with pytest.raises(NetTimeout, match="recv_line"):
            sock.recv_line(timeout=0.3)
        assert time.monotonic() - started < 5
        server.write(b"tial\n")
        assert sock.recv_line(timeout=10) == b"partial"  # nothing received was lost
        with pytest.raises(NetTimeout):
            sock.recv(1, timeout=0.2)
        server.write(b"x")
        assert sock.recv(1, timeout=10) == b"x"


def test_handshake_timeout_with_a_silent_server(kind: Any, pki: Pki) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (kernel) but never answers
    with listener:
        port = listener.getsockname()[1]
        sock = kind.new()
        with sock:
            wrap(kind, new_context(ca_file=pki.ca_file), sock)
            started = time.monotonic()
            with pytest.raises(NetTimeout):
                sock.connect("localhost", port, timeout=0.5)
            assert time.monotonic() - started < 5
        sock = kind.new()
        with sock:
            sock.connect("127.0.0.1", port, timeout=5)
            with pytest.raises(NetTimeout):
                wrap_connected(
                    kind, new_context(ca_file=pki.ca_file), sock, hostname="localhost", timeout=0.3
                )
            assert sock.is_closed()


# ---------------------------------------------------------------------------
# Memory: 1,000 PSK handshakes over real sockets
# ---------------------------------------------------------------------------


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_psk_handshakes_over_sockets_do_not_grow_memory() -> None:
    from twinsock import net

    version = ProtVersion.TLSV1_3
    client_ctx = psk_client_context(version)
    server_ctx = psk_server_context(version)
    listener = net.Socket()
    listener.bind_addr(0, "127.0.0.1")
    listener.listen()
    net.wrap_socket(server_ctx, listener)
    port = listener.get_local_addr()[1]
    identities: list[str | None] = []

    def serve(count: int) -> None:
        for _ in range(count):
            with listener.accept(timeout=10) as conn:
                identities.append(conn.get_psk_identity())
                conn.send(b"ok\n")

    def run(count: int) -> None:
        server = Background(lambda: serve(count))
        for _ in range(count):
            with net.Socket() as sock:
                net.wrap_socket(client_ctx, sock)
                sock.connect("127.0.0.1", port, timeout=10)
                assert sock.recv_line(timeout=10) == b"ok"
        server.result(60)

    with listener:
        run(200)  # warm up allocator pools and caches
        gc.collect()
        before = rss_kib()
        run(1000)
        gc.collect()
        growth = rss_kib() - before
    assert identities == ["alice"] * 1200
    assert growth < 4 * 1024, f"RSS grew by {growth} KiB over 1000 PSK handshakes"


@pytest.mark.parametrize("role", ["kind-is-server", "kind-is-client"])
def test_large_payload_both_ways(
    kind: Any, other_kinds: dict[str, Any], pki: Pki, role: str
) -> None:
    """Several MiB each way, byte-exact, with recv, recv_into and PEEK through TLS."""
    from twinsock.net import SocketFlag

    partner = partner_of(kind, other_kinds)
    server_kind, client_kind = (kind, partner) if role == "kind-is-server" else (partner, kind)
    payload = os.urandom(3 * 1024 * 1024 + 17)

    def mirror(conn: Any) -> int:
        peeked = conn.recv(5, timeout=10, flags=SocketFlag.PEEK | SocketFlag.SAFE_DISCONN)
        target = bytearray(len(payload))
        assert conn.recv_into(target, timeout=30) == len(payload)
        assert peeked == payload[:5]
        conn.send(bytes(target))
        return len(target)

    with (
        twin_server(server_kind, new_context(cert_file=pki.server_cert), mirror) as (
            port,
            results,
        ),
        tls_client(client_kind, new_context(ca_file=pki.ca_file), port) as sock,
    ):
        sender = Background(lambda: sock.send(payload, timeout=30))
        assert sock.recv(len(payload), timeout=30) == payload
        sender.result()
    assert results == [len(payload)]


# ---------------------------------------------------------------------------
# Mutual TLS, and TLS over IPv6 and Unix sockets
# ---------------------------------------------------------------------------


def client_cert_file(pki: Pki) -> str:
    """Key and certificate of a client, issued by the root CA."""
    leaf = pki.ca.issue_cert("client.example")
    return pki.write("client.pem", leaf.private_key_and_cert_chain_pem)


@pytest.mark.parametrize("version", VERSIONS)
def test_mutual_tls(kind: Any, other_kinds: dict[str, Any], pki: Pki, version: ProtVersion) -> None:
    """A server with ``VerifyMode.PEER`` and a CA requires a client certificate:
    a client without one gets no service, and the server goes on accepting."""
    partner = partner_of(kind, other_kinds)
    server_ctx = new_context(version, cert_file=pki.server_cert, ca_file=pki.ca_file)

    def answer(conn: Any) -> list[str]:
        line = conn.recv_line(timeout=15)
        conn.send(line + b"\n")
        return [cert.pem for cert in conn.get_peer_certificates()]

    def bare_client(port: int) -> Any:
        try:
            with tls_client(partner, new_context(version, ca_file=pki.ca_file), port) as sock:
                sock.send(b"no certificate\n")
                return sock.recv_line(timeout=10)
        except OSError as exc:
            return exc

    with twin_server(kind, server_ctx, answer) as (port, results):
        refused = bare_client(port)
        client_ctx = new_context(version, cert_file=client_cert_file(pki), ca_file=pki.ca_file)
        with tls_client(partner, client_ctx, port) as sock:
            sock.send(b"with certificate\n")
            assert sock.recv_line(timeout=10) == b"with certificate"
    assert isinstance(refused, SslError), refused
    assert "client certificate" in str(refused)  # the message says why
    assert len(results) == 1 and isinstance(results[0], list), results
    chain = results[0]
    assert len(chain) == 2  # the client's leaf, then the root
    assert chain[-1] == pki.ca.cert_pem.bytes().decode()


@pytest.mark.parametrize("family", ["tcp6", "unix"])
def test_tls_over_ipv6_and_unix_sockets(
    kind: Any, other_kinds: dict[str, Any], pki: Pki, family: str, tmp_path: Path
) -> None:
    """A wrapped listener of ``kind`` on ::1 or a Unix path, the other kind as the
    client: the certificate is checked against the IPv6 address, or against the
    host name given to ``wrap_connected_socket`` (a Unix path has none)."""
    from twinsock.nativesockets import Domain

    partner = partner_of(kind, other_kinds)
    leaf = pki.ca.issue_cert("localhost", "::1")
    server_ctx = new_context(cert_file=pki.write("v6.pem", leaf.private_key_and_cert_chain_pem))
    client_ctx = new_context(ca_file=pki.ca_file)
    domain = Domain.AF_INET6 if family == "tcp6" else Domain.AF_UNIX
    path = str(tmp_path / "tls.sock")
    listener = kind.new(domain)
    try:
        if family == "tcp6":
            listener.bind_addr(0, "::1")
        else:
            listener.bind_unix(path)
        listener.listen()
        wrap(kind, server_ctx, listener)
        def serve_one() -> Served:
            with listener.accept(timeout=20) as conn:
                return echo_handler(conn)

        served = Background(serve_one)
        with partner.new(domain) as sock:
            if family == "tcp6":
                wrap(partner, client_ctx, sock)
                sock.connect("::1", listener.get_local_addr()[1], timeout=10)
            else:
                sock.connect_unix(path)
                wrap_connected(partner, client_ctx, sock, hostname="localhost")
            assert len(sock.get_peer_certificates()) == 2  # leaf, root
            sock.send(line_stream(LINES))
            assert recv_lines(sock, len(LINES)) == [b"echo:" + line for line in LINES]
        outcome = served.result()
    finally:
        listener.close()
    assert isinstance(outcome, Served)
    assert outcome.lines == as_received(LINES)
    assert outcome.end == b""
