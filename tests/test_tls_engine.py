"""The sans-I/O TLS engine: two engines pumped in memory, and real OpenSSL peers.

No mocks: in-memory tests connect two real engines; the interop tests drive an
engine over loopback stdlib sockets against the ``openssl s_server`` and
``openssl s_client`` binaries.  Certificates are made at test time (trustme).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from openssl_peer import OPENSSL, s_server
from pem_files import write_pem
from twinsock._core.tls_engine import TlsEngine
from twinsock.errors import PskError, SslError
from twinsock.tls import ProtVersion, SslContext, VerifyMode, new_context

needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="no openssl binary")
VERSIONS = [ProtVersion.TLSV1_2, ProtVersion.TLSV1_3]
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------


@dataclass
class Pki:
    ca: trustme.CA
    directory: Path
    ca_file: str
    server_cert: str  # key + leaf + intermediate, for localhost and 127.0.0.1
    leaf_file: str
    key_file: str
    intermediate_file: str
    client_cert: str  # a client certificate from the same intermediate

    def write(self, name: str, blob: trustme.Blob) -> str:
        return write_pem(self.directory, name, blob)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    intermediate = ca.create_child_ca()
    leaf = intermediate.issue_cert("localhost", "127.0.0.1")
    client = intermediate.issue_cert("client.example")

    write = functools.partial(write_pem, directory)

    return Pki(
        ca=ca,
        directory=directory,
        ca_file=write("ca.pem", ca.cert_pem),
        server_cert=write("server.pem", leaf.private_key_and_cert_chain_pem),
        leaf_file=write("leaf.pem", leaf.cert_chain_pems[0]),
        key_file=write("key.pem", leaf.private_key_pem),
        intermediate_file=write("intermediate.pem", intermediate.cert_pem),
        client_cert=write("client.pem", client.private_key_and_cert_chain_pem),
    )


# ---------------------------------------------------------------------------
# Pumping two engines in memory
# ---------------------------------------------------------------------------


def step(engine: TlsEngine) -> bool | SslError:
    if engine.handshake_done:
        return True
    try:
        return engine.do_handshake()
    except SslError as exc:
        return exc


def pump(client: TlsEngine, server: TlsEngine, chunk: int | None = None) -> None:
    """Run both handshakes to the end; raise the first side's error (client first)."""

    def carry(source: TlsEngine, target: TlsEngine) -> None:
        data = source.data_to_send()
        if chunk is None:
            target.receive(data)
        else:
            for i in range(0, len(data), chunk):
                target.receive(data[i : i + chunk])

    client_result: bool | SslError = False
    server_result: bool | SslError = False
    for _ in range(30):
        client_result = step(client)
        carry(client, server)
        server_result = step(server)
        carry(server, client)
        if client_result is True and server_result is True:
            return
        if isinstance(client_result, SslError) and isinstance(server_result, SslError):
            break
    client_result = step(client)
    for result in (client_result, server_result):
        if isinstance(result, SslError):
            raise result
    raise AssertionError("handshake did not finish")


def both_errors(client: TlsEngine, server: TlsEngine) -> tuple[SslError | None, SslError | None]:
    with contextlib.suppress(SslError):
        pump(client, server)
    results = step(client), step(server)
    return tuple(r if isinstance(r, SslError) else None for r in results)  # type: ignore[return-value]


def engines(
    client_ctx: SslContext, server_ctx: SslContext, hostname: str | None = "localhost"
) -> tuple[TlsEngine, TlsEngine]:
    client = TlsEngine(client_ctx, server_side=False, server_hostname=hostname)
    server = TlsEngine(server_ctx, server_side=True, server_hostname=None)
    return client, server


def transfer(source: TlsEngine, target: TlsEngine, data: bytes) -> bytes:
    source.write(data)
    target.receive(source.data_to_send())
    received = b""
    while len(received) < len(data):
        chunk = target.read()
        assert chunk, chunk
        received += chunk
    return received


# ---------------------------------------------------------------------------
# Certificate handshakes in memory
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_handshake_data_and_clean_close(pki: Pki, version: ProtVersion) -> None:
    client, server = engines(
        new_context(version, ca_file=pki.ca_file), new_context(version, cert_file=pki.server_cert)
    )
    assert not client.handshake_done
    assert client.cipher() is None and client.version() is None
    pump(client, server)
    assert client.handshake_done and server.handshake_done
    assert client.version() == server.version() == version.value
    cipher = client.cipher()
    assert cipher is not None and cipher[1] == version.value
    assert client.psk_identity() is None and server.psk_identity() is None

    assert server.read() is None  # nothing yet: need more data
    assert transfer(client, server, b"hello") == b"hello"
    big = os.urandom(300_000)
    assert transfer(server, client, big) == big
    client.write(memoryview(b"view"))
    client.write(bytearray(b""))
    server.receive(client.data_to_send())
    assert server.read(2) == b"vi"
    assert server.read() == b"ew"

    client.start_close()
    client.start_close()
    server.receive(client.data_to_send())
    assert server.read() == b""
    assert server.read() == b""
    server.start_close()
    client.receive(server.data_to_send())
    assert client.read() == b""
    with pytest.raises(SslError, match="start_close"):
        client.write(b"late")


def test_handshake_fed_byte_by_byte(pki: Pki) -> None:
    client, server = engines(
        new_context(ca_file=pki.ca_file), new_context(cert_file=pki.server_cert)
    )
    pump(client, server, chunk=1)
    client.write(b"line\n")
    for byte in client.data_to_send():
        server.receive(bytes([byte]))
    assert server.read() == b"line\n"


@pytest.mark.parametrize("version", VERSIONS)
def test_peer_certificates_are_the_verified_chain(pki: Pki, version: ProtVersion) -> None:
    client, server = engines(
        new_context(version, ca_file=pki.ca_file), new_context(version, cert_file=pki.server_cert)
    )
    assert client.peer_certificates() == []
    pump(client, server)
    chain = client.peer_certificates()
    assert len(chain) == 3
    leaf, intermediate, root = chain
    assert leaf.issuer == intermediate.subject
    assert intermediate.issuer == root.subject == root.issuer
    assert root.pem == pki.ca.cert_pem.bytes().decode()
    assert leaf.pem.startswith("-----BEGIN CERTIFICATE-----")
    assert server.peer_certificates() == []  # no client certificate asked for


def test_no_peer_certificates_without_verification(pki: Pki) -> None:
    client, server = engines(
        new_context(verify_mode=VerifyMode.NONE), new_context(cert_file=pki.server_cert)
    )
    pump(client, server)
    assert client.peer_certificates() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_mutual_tls(pki: Pki, version: ProtVersion) -> None:
    server_ctx = new_context(version, cert_file=pki.server_cert, ca_file=pki.ca_file)
    client_ctx = new_context(version, cert_file=pki.client_cert, ca_file=pki.ca_file)
    client, server = engines(client_ctx, server_ctx)
    pump(client, server)
    chain = server.peer_certificates()
    assert len(chain) == 3 and "Testing cert" in chain[0].subject
    assert transfer(client, server, b"ok") == b"ok"


@pytest.mark.parametrize("version", VERSIONS)
def test_mutual_tls_without_client_certificate(pki: Pki, version: ProtVersion) -> None:
    server_ctx = new_context(version, cert_file=pki.server_cert, ca_file=pki.ca_file)
    client, server = engines(new_context(version, ca_file=pki.ca_file), server_ctx)
    client_error, server_error = both_errors(client, server)
    assert server_error is not None and "certificate" in str(server_error)
    if version is ProtVersion.TLSV1_3:
        # The TLS 1.3 client finishes first and hears the alert on its next read.
        assert client_error is None
        client.receive(server.data_to_send())
        with pytest.raises(SslError, match="client certificate"):
            client.read()
    else:
        assert client_error is not None


# ---------------------------------------------------------------------------
# Verification failures: each message says why
# ---------------------------------------------------------------------------


def client_error_for(server_ctx: SslContext, client_ctx: SslContext, hostname: str) -> SslError:
    client, server = engines(client_ctx, server_ctx, hostname)
    client_error, server_error = both_errors(client, server)
    assert client_error is not None
    assert server_error is not None  # the server got the alert
    return client_error


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_ca(pki: Pki, version: ProtVersion) -> None:
    other = trustme.CA()
    client_ctx = new_context(version, ca_file=pki.write("other-ca.pem", other.cert_pem))
    error = client_error_for(
        new_context(version, cert_file=pki.server_cert), client_ctx, "localhost"
    )
    assert "certificate verify failed" in str(error)
    assert "unknown CA" in str(error)
    assert error.reason == "CERTIFICATE_VERIFY_FAILED"
    assert isinstance(error.__cause__, Exception)


def test_name_not_in_certificate(pki: Pki) -> None:
    error = client_error_for(
        new_context(cert_file=pki.server_cert), new_context(ca_file=pki.ca_file), "wrong.example"
    )
    assert "Hostname mismatch" in str(error) and "wrong.example" in str(error)


def test_ip_not_in_certificate(pki: Pki) -> None:
    error = client_error_for(
        new_context(cert_file=pki.server_cert), new_context(ca_file=pki.ca_file), "127.0.0.2"
    )
    assert "IP address mismatch" in str(error) and "127.0.0.2" in str(error)


def test_ip_in_certificate_is_accepted(pki: Pki) -> None:
    client, server = engines(
        new_context(ca_file=pki.ca_file), new_context(cert_file=pki.server_cert), "127.0.0.1"
    )
    pump(client, server)


@pytest.mark.parametrize(("when", "message"), [("past", "expired"), ("future", "not yet valid")])
def test_certificate_outside_validity(pki: Pki, when: str, message: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    if when == "past":
        not_before = now - datetime.timedelta(days=30)
        not_after = now - datetime.timedelta(days=1)
    else:
        not_before = now + datetime.timedelta(days=1)
        not_after = now + datetime.timedelta(days=30)
    leaf = pki.ca.issue_cert("localhost", not_before=not_before, not_after=not_after)
    server_ctx = new_context(
        cert_file=pki.write(f"{when}.pem", leaf.private_key_and_cert_chain_pem)
    )
    error = client_error_for(server_ctx, new_context(ca_file=pki.ca_file), "localhost")
    assert message in str(error)


def test_verify_none_accepts_anything(pki: Pki) -> None:
    client, server = engines(
        new_context(verify_mode=VerifyMode.NONE),
        new_context(cert_file=pki.server_cert),
        "wrong.example",
    )
    pump(client, server)


def test_verifying_client_needs_a_hostname(pki: Pki) -> None:
    with pytest.raises(ValueError, match="host name"):
        TlsEngine(new_context(), server_side=False, server_hostname=None)
    TlsEngine(new_context(verify_mode=VerifyMode.NONE), server_side=False, server_hostname=None)


def test_protocol_version_refused(pki: Pki) -> None:
    client, server = engines(
        new_context(ProtVersion.TLSV1_3, ca_file=pki.ca_file),
        new_context(ProtVersion.TLSV1_2, cert_file=pki.server_cert),
    )
    client_error, server_error = both_errors(client, server)
    assert server_error is not None and "protocol version" in str(server_error)
    assert client_error is not None and "protocol version" in str(client_error)


def test_peer_closed_during_handshake(pki: Pki) -> None:
    client, _server = engines(
        new_context(ca_file=pki.ca_file), new_context(cert_file=pki.server_cert)
    )
    assert client.do_handshake() is False
    client.receive_eof()
    with pytest.raises(SslError, match="closed the connection during the TLS handshake"):
        client.do_handshake()
    with pytest.raises(SslError):  # the engine stays failed
        client.do_handshake()
    client.start_close()
    client.start_close()


@pytest.mark.parametrize(
    ("plaintext", "says"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "plaintext HTTP request"),
        (b"CONNECT x:443 HTTP/1.1\r\n\r\n", "plaintext HTTP proxy request"),
        (b"hello, server\r\n", "did it send plaintext"),
    ],
)
def test_a_plaintext_client_is_named_by_the_server(pki: Pki, plaintext: bytes, says: str) -> None:
    server = TlsEngine(
        new_context(cert_file=pki.server_cert), server_side=True, server_hostname=None
    )
    server.receive(plaintext)
    with pytest.raises(SslError, match=f"handshake failed: the peer does not speak TLS.*{says}"):
        server.do_handshake()


@pytest.mark.parametrize("verify_mode", [VerifyMode.PEER, VerifyMode.NONE])
def test_a_plaintext_server_is_named_by_the_client(pki: Pki, verify_mode: VerifyMode) -> None:
    client = TlsEngine(
        new_context(verify_mode=verify_mode, ca_file=pki.ca_file),
        server_side=False,
        server_hostname="localhost",
    )
    assert client.do_handshake() is False
    client.receive(b"220 mail.example.com ESMTP ready\r\n")
    with pytest.raises(SslError, match="does not speak TLS; did it answer in plaintext"):
        client.do_handshake()


def test_a_psk_client_names_a_plaintext_server() -> None:
    context = new_context(ProtVersion.TLSV1_3, VerifyMode.NONE)
    context.client_get_psk_func = lambda hint: ("alice", KEY)
    client = TlsEngine(context, server_side=False, server_hostname=None)
    assert client.do_handshake() is False
    client.receive(b"+OK plaintext here\r\n")
    with pytest.raises(PskError, match="does not speak TLS; did it answer in plaintext"):
        client.do_handshake()


def test_misuse_before_handshake(pki: Pki) -> None:
    client, _server = engines(
        new_context(ca_file=pki.ca_file), new_context(cert_file=pki.server_cert)
    )
    with pytest.raises(SslError, match="before the TLS handshake"):
        client.read()
    with pytest.raises(SslError, match="before the TLS handshake"):
        client.write(b"x")
    with pytest.raises(ValueError):
        client.read(0)
    client.start_close()


# ---------------------------------------------------------------------------
# End of stream
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_truncation_is_an_error(pki: Pki, version: ProtVersion) -> None:
    client, server = engines(
        new_context(version, ca_file=pki.ca_file), new_context(version, cert_file=pki.server_cert)
    )
    pump(client, server)
    server.write(b"partial")
    client.receive(server.data_to_send())
    client.receive_eof()
    assert client.read() == b"partial"  # data before the EOF is delivered first
    with pytest.raises(SslError, match="truncat"):
        client.read()
    with pytest.raises(SslError, match="truncat"):
        client.read()


def test_truncation_allowed(pki: Pki) -> None:
    client, server = engines(
        new_context(ca_file=pki.ca_file, allow_truncation=True),
        new_context(cert_file=pki.server_cert),
    )
    pump(client, server)
    client.receive_eof()
    assert client.read() == b""
    assert client.read() == b""


# ---------------------------------------------------------------------------
# PSK in memory
# ---------------------------------------------------------------------------


def psk_contexts(
    version: ProtVersion,
    client_func: Callable[[str | None], tuple[str, bytes]],
    server_func: Callable[[str], bytes | None],
    hint: str | None = "the hint",
) -> tuple[SslContext, SslContext]:
    ciphers = "PSK" if version is ProtVersion.TLSV1_2 else None
    server_ctx = new_context(version, VerifyMode.NONE, cipher_list=ciphers)
    server_ctx.server_get_psk_func = server_func
    server_ctx.psk_identity_hint = hint
    client_ctx = new_context(version, VerifyMode.NONE, cipher_list=ciphers)
    client_ctx.client_get_psk_func = client_func
    return client_ctx, server_ctx


def known(identity: str) -> bytes | None:
    return KEY if identity == "alice" else None


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_handshake(version: ProtVersion) -> None:
    hints: list[str | None] = []

    def client_func(hint: str | None) -> tuple[str, bytes]:
        hints.append(hint)
        return "alice", KEY

    client, server = engines(*psk_contexts(version, client_func, known), None)
    pump(client, server)
    assert server.psk_identity() == "alice"
    assert client.psk_identity() == "alice"
    assert client.version() == version.value
    assert client.peer_certificates() == [] and server.peer_certificates() == []
    if version is ProtVersion.TLSV1_2:
        assert hints == ["the hint"]
        cipher = client.cipher()
        assert cipher is not None and "PSK" in cipher[0]
    else:
        assert hints and set(hints) == {None}  # TLS 1.3 has no hint
    assert transfer(client, server, b"psk data") == b"psk data"
    assert transfer(server, client, b"reply") == b"reply"


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_wrong_key(version: ProtVersion) -> None:
    client, server = engines(
        *psk_contexts(version, lambda hint: ("alice", b"\x01" * 16), known), None
    )
    client_error, server_error = both_errors(client, server)
    assert isinstance(server_error, PskError) and "wrong PSK key" in str(server_error)
    assert isinstance(client_error, PskError) and "wrong" in str(client_error)


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_unknown_identity(version: ProtVersion) -> None:
    client, server = engines(*psk_contexts(version, lambda hint: ("mallory", KEY), known), None)
    client_error, server_error = both_errors(client, server)
    assert isinstance(server_error, PskError)
    assert "unknown PSK identity 'mallory'" in str(server_error)
    assert isinstance(client_error, PskError) and "mallory" in str(client_error)
    assert server.psk_identity() is None


@pytest.mark.parametrize(
    "text",
    [
        "[SSL] unknown error (_ssl.c:2580)",  # OpenSSL 3.0.13 under Python 3.12
        "[SSL: TLSV1_ALERT_INTERNAL_ERROR] tlsv1 alert internal error (_ssl.c:1006)",
    ],
)
def test_psk_client_failure_names_the_identity_whatever_openssl_says(text: str) -> None:
    """How OpenSSL words a refused PSK handshake differs by version; the client's
    message names the identity it offered all the same.  The engine saw a real
    refused TLS 1.2 handshake; the error it classifies is the one OpenSSL 3.0.13
    raises there (no reason name, so the text gives ``UNKNOWN_ERROR``)."""
    client, server = engines(
        *psk_contexts(ProtVersion.TLSV1_2, lambda hint: ("mallory", KEY), known), None
    )
    both_errors(client, server)
    error = client._handshake_error(ssl.SSLError(1, text))
    assert isinstance(error, PskError)
    assert "'mallory'" in str(error), str(error)


class Oops(Exception):
    pass


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_client_callback_raises(version: ProtVersion) -> None:
    def broken(hint: str | None) -> tuple[str, bytes]:
        raise Oops("no key here")

    client, server = engines(*psk_contexts(version, broken, known), None)
    client_error, server_error = both_errors(client, server)
    assert isinstance(client_error, PskError)
    assert "client_get_psk_func raised Oops: no key here" in str(client_error)
    assert isinstance(client_error.__cause__, Oops)
    if version is ProtVersion.TLSV1_2:
        assert isinstance(server_error, PskError)  # it got our alert
    else:
        assert server_error is None  # the client gave up before sending its hello
        assert server.do_handshake() is False


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_server_callback_raises(version: ProtVersion) -> None:
    def broken(identity: str) -> bytes | None:
        raise Oops(f"database down for {identity}")

    client, server = engines(*psk_contexts(version, lambda hint: ("alice", KEY), broken), None)
    client_error, server_error = both_errors(client, server)
    assert isinstance(server_error, PskError)
    assert "server_get_psk_func raised Oops: database down for alice" in str(server_error)
    assert isinstance(client_error, PskError)


def test_psk_callback_returning_junk() -> None:
    client, server = engines(
        *psk_contexts(ProtVersion.TLSV1_3, lambda hint: ("alice", "not bytes"), known),  # type: ignore[arg-type,return-value]
        None,
    )
    client_error, _ = both_errors(client, server)
    assert isinstance(client_error, PskError) and "TypeError" in str(client_error)


class Interrupt(BaseException):
    pass


def test_psk_callback_base_exception_is_not_swallowed() -> None:
    def interrupted(hint: str | None) -> tuple[str, bytes]:
        raise Interrupt

    client, _server = engines(*psk_contexts(ProtVersion.TLSV1_3, interrupted, known), None)
    with pytest.raises(Interrupt):
        client.do_handshake()


@pytest.mark.parametrize("version", VERSIONS)
def test_psk_client_refuses_a_certificate_handshake(pki: Pki, version: ProtVersion) -> None:
    # The server has a certificate and knows no PSK: it would happily do a
    # certificate handshake, which a PSK client must not accept.
    server_ctx = new_context(version, cert_file=pki.server_cert)
    client_ctx = new_context(version, VerifyMode.NONE, cipher_list="PSK:ECDHE+AESGCM")
    client_ctx.client_get_psk_func = lambda hint: ("alice", KEY)
    client, server = engines(client_ctx, server_ctx, None)
    with pytest.raises(PskError, match="certificate handshake instead of the PSK"):
        pump(client, server)


def test_psk_server_with_certificate_serves_both(pki: Pki) -> None:
    server_ctx = new_context(cert_file=pki.server_cert)
    server_ctx.server_get_psk_func = known
    client, server = engines(new_context(ca_file=pki.ca_file), server_ctx)
    pump(client, server)
    assert server.psk_identity() is None and len(client.peer_certificates()) == 3
    psk_client_ctx = new_context(verify_mode=VerifyMode.NONE)
    psk_client_ctx.client_get_psk_func = lambda hint: ("alice", KEY)
    client, server = engines(psk_client_ctx, server_ctx, None)
    pump(client, server)
    assert server.psk_identity() == "alice"


def test_psk_works_in_threads() -> None:
    client_ctx, server_ctx = psk_contexts(ProtVersion.TLSV1_3, lambda h: ("alice", KEY), known)
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                client, server = engines(client_ctx, server_ctx, None)
                pump(client, server)
                assert server.psk_identity() == "alice"
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
@pytest.mark.parametrize("version", VERSIONS)
def test_psk_handshakes_do_not_grow_memory(version: ProtVersion) -> None:
    client_ctx, server_ctx = psk_contexts(version, lambda h: ("alice", KEY), known)

    def run(count: int) -> None:
        for _ in range(count):
            client, server = engines(client_ctx, server_ctx, None)
            pump(client, server)
            assert server.psk_identity() == "alice"

    run(200)  # warm up allocator pools and caches
    before = rss_kib()
    run(1000)
    growth = rss_kib() - before
    assert growth < 8 * 1024, f"RSS grew by {growth} KiB over 1000 PSK handshakes"


# ---------------------------------------------------------------------------
# Real OpenSSL peers over loopback sockets
# ---------------------------------------------------------------------------


def socket_handshake(engine: TlsEngine, sock: socket.socket) -> None:
    for _ in range(100):
        try:
            done = engine.do_handshake()
        finally:
            out = engine.data_to_send()
            if out:
                with contextlib.suppress(OSError):
                    sock.sendall(out)
        if done:
            return
        raw = sock.recv(65536)
        if raw:
            engine.receive(raw)
        else:
            engine.receive_eof()
    raise AssertionError("handshake did not finish")


def socket_read(engine: TlsEngine, sock: socket.socket) -> bytes:
    for _ in range(1000):
        data = engine.read()
        if data is not None:
            return data
        raw = sock.recv(65536)
        if raw:
            engine.receive(raw)
        else:
            engine.receive_eof()
    raise AssertionError("no data")


@contextlib.contextmanager
def rev_server(*args: str) -> Iterator[int]:
    """``openssl s_server -rev`` (answers each line reversed); yields its port."""
    with s_server("-rev", *args) as (_peer, port):
        yield port


def connect_engine(
    context: SslContext, port: int, hostname: str | None
) -> tuple[TlsEngine, socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return TlsEngine(context, server_side=False, server_hostname=hostname), sock


@needs_openssl
@pytest.mark.parametrize("version", VERSIONS)
def test_client_against_s_server_with_intermediate(pki: Pki, version: ProtVersion) -> None:
    flag = "-tls1_2" if version is ProtVersion.TLSV1_2 else "-tls1_3"
    with rev_server(
        "-cert",
        pki.leaf_file,
        "-key",
        pki.key_file,
        "-cert_chain",
        pki.intermediate_file,
        flag,
    ) as port:
        engine, sock = connect_engine(new_context(ca_file=pki.ca_file), port, "localhost")
        with sock:
            socket_handshake(engine, sock)
            assert engine.version() == version.value
            chain = engine.peer_certificates()
            assert len(chain) == 3
            assert chain[-1].pem == pki.ca.cert_pem.bytes().decode()
            engine.write(b"hello\n")
            sock.sendall(engine.data_to_send())
            received = b""
            while b"\n" not in received:
                received += socket_read(engine, sock)
            assert received.strip() == b"olleh"
            engine.start_close()
            sock.sendall(engine.data_to_send())


@needs_openssl
def test_client_against_s_server_hostname_mismatch(pki: Pki) -> None:
    with rev_server(
        "-cert", pki.leaf_file, "-key", pki.key_file, "-cert_chain", pki.intermediate_file
    ) as port:
        engine, sock = connect_engine(new_context(ca_file=pki.ca_file), port, "other.example")
        with sock, pytest.raises(SslError, match="Hostname mismatch"):
            socket_handshake(engine, sock)


@needs_openssl
@pytest.mark.parametrize("version", VERSIONS)
def test_psk_client_against_s_server(version: ProtVersion) -> None:
    flag = "-tls1_2" if version is ProtVersion.TLSV1_2 else "-tls1_3"
    hints: list[str | None] = []

    def client_func(hint: str | None) -> tuple[str, bytes]:
        hints.append(hint)
        return "alice", KEY

    context = new_context(version, VerifyMode.NONE, cipher_list="PSK")
    context.client_get_psk_func = client_func
    with rev_server(
        "-psk",
        KEY.hex(),
        "-psk_identity",
        "alice",
        "-psk_hint",
        "serverhint",
        "-nocert",
        flag,
    ) as port:
        engine, sock = connect_engine(context, port, None)
        with sock:
            socket_handshake(engine, sock)
            assert engine.psk_identity() == "alice"
            engine.write(b"abc\n")
            sock.sendall(engine.data_to_send())
            received = b""
            while b"\n" not in received:
                received += socket_read(engine, sock)
            assert received.strip() == b"cba"
    assert hints[-1] == ("serverhint" if version is ProtVersion.TLSV1_2 else None)


@needs_openssl
@pytest.mark.parametrize("version", VERSIONS)
def test_psk_client_wrong_key_against_s_server(version: ProtVersion) -> None:
    flag = "-tls1_2" if version is ProtVersion.TLSV1_2 else "-tls1_3"
    context = new_context(version, VerifyMode.NONE, cipher_list="PSK")
    context.client_get_psk_func = lambda hint: ("alice", b"\x42" * 16)
    with rev_server("-psk", KEY.hex(), "-psk_identity", "alice", "-nocert", flag) as port:
        engine, sock = connect_engine(context, port, None)
        with sock, pytest.raises(PskError, match="wrong"):
            socket_handshake(engine, sock)


def run_s_client(port: int, args: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", *args],
        input=stdin,
        capture_output=True,
        timeout=20,
        check=False,
    )


def serve_once(
    context: SslContext, client_args: list[str], reply: Callable[[bytes], bytes]
) -> tuple[TlsEngine | SslError, subprocess.CompletedProcess[bytes]]:
    """Accept one s_client connection with an engine; answer its first line."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(20)
        port = listener.getsockname()[1]
        result: list[subprocess.CompletedProcess[bytes]] = []
        client = threading.Thread(
            target=lambda: result.append(run_s_client(port, client_args, b"ping\n"))
        )
        client.start()
        try:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(20)
                engine = TlsEngine(context, server_side=True, server_hostname=None)
                try:
                    socket_handshake(engine, conn)
                    received = b""
                    while b"\n" not in received:
                        chunk = socket_read(engine, conn)
                        assert chunk
                        received += chunk
                    engine.write(reply(received))
                    engine.start_close()
                    conn.sendall(engine.data_to_send())
                    outcome: TlsEngine | SslError = engine
                except SslError as exc:
                    outcome = exc
        finally:
            client.join(30)
    return outcome, result[0]


@needs_openssl
@pytest.mark.parametrize("version", VERSIONS)
def test_psk_server_against_s_client(version: ProtVersion) -> None:
    flag = "-tls1_2" if version is ProtVersion.TLSV1_2 else "-tls1_3"
    context = new_context(version, VerifyMode.NONE, cipher_list="PSK")
    context.server_get_psk_func = known
    context.psk_identity_hint = "hint"
    outcome, completed = serve_once(
        context, ["-psk", KEY.hex(), "-psk_identity", "alice", flag], lambda line: b"pong:" + line
    )
    assert isinstance(outcome, TlsEngine), outcome
    assert outcome.psk_identity() == "alice"
    assert outcome.version() == version.value
    assert b"pong:ping" in completed.stdout


@needs_openssl
@pytest.mark.parametrize("version", VERSIONS)
def test_psk_server_unknown_identity_from_s_client(version: ProtVersion) -> None:
    flag = "-tls1_2" if version is ProtVersion.TLSV1_2 else "-tls1_3"
    context = new_context(version, VerifyMode.NONE, cipher_list="PSK")
    context.server_get_psk_func = known
    outcome, _ = serve_once(
        context, ["-psk", KEY.hex(), "-psk_identity", "eve", flag], lambda line: line
    )
    assert isinstance(outcome, PskError)
    assert "unknown PSK identity 'eve'" in str(outcome)


@needs_openssl
def test_certificate_server_against_s_client(pki: Pki) -> None:
    context = new_context(cert_file=pki.server_cert)
    outcome, completed = serve_once(
        context,
        ["-CAfile", pki.ca_file, "-verify_return_error", "-verify_hostname", "localhost"],
        lambda line: line.upper(),
    )
    assert isinstance(outcome, TlsEngine), outcome
    assert b"PING" in completed.stdout
    assert b"Verification: OK" in completed.stdout
