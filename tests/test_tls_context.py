"""SslContext construction, certificates and the guarded OpenSSL bridge (no I/O)."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from twinsock import _openssl, _psk, tls
from twinsock._core.tls_engine import TlsEngine
from twinsock.errors import NetError, SslError
from twinsock.tls import Certificate, ProtVersion, VerifyMode, new_context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("ctx")
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    paths = {
        "ca": directory / "ca.pem",
        "combined": directory / "combined.pem",
        "cert": directory / "cert.pem",
        "key": directory / "key.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(paths["combined"]))
    leaf.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    leaf.private_key_pem.write_to_path(str(paths["key"]))
    return {name: str(path) for name, path in paths.items()}


@pytest.mark.parametrize("version", [ProtVersion.SSLV2, ProtVersion.SSLV3, ProtVersion.TLSV1])
def test_insecure_versions_are_refused(version: ProtVersion) -> None:
    with pytest.raises(SslError, match="insecure") as info:
        new_context(version)
    assert isinstance(info.value, NetError)
    assert isinstance(info.value, ssl.SSLError)


@pytest.mark.parametrize(
    ("version", "minimum", "maximum"),
    [
        (ProtVersion.SSLV23, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED),
        (ProtVersion.TLSV1_2, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
        (ProtVersion.TLSV1_3, ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3),
    ],
)
def test_versions(
    version: ProtVersion, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion, files: dict[str, str]
) -> None:
    context = new_context(version, cert_file=files["combined"])
    for server_side in (True, False):
        sslctx = context._stdlib_context(server_side=server_side)
        assert sslctx.minimum_version == minimum
        assert sslctx.maximum_version == maximum


def test_defaults_are_secure() -> None:
    context = new_context()
    assert context.prot_version is ProtVersion.SSLV23
    assert context.verify_mode is VerifyMode.PEER
    assert context.allow_truncation is False
    client = context._stdlib_context(server_side=False)
    assert client.verify_mode == ssl.CERT_REQUIRED
    assert client.check_hostname
    assert client.protocol == ssl.PROTOCOL_TLS_CLIENT
    # Truncation is decided by the engine, so OpenSSL must report raw EOFs.
    assert not client.options & getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    assert len(client.get_ca_certs()) >= 0  # system store loaded (may be empty in a container)


def test_verify_none_client() -> None:
    client = new_context(verify_mode=VerifyMode.NONE)._stdlib_context(server_side=False)
    assert client.verify_mode == ssl.CERT_NONE
    assert not client.check_hostname


def test_server_asks_client_certificate_only_with_ca_file(files: dict[str, str]) -> None:
    plain = new_context(cert_file=files["combined"])._stdlib_context(server_side=True)
    assert plain.verify_mode == ssl.CERT_NONE
    assert plain.protocol == ssl.PROTOCOL_TLS_SERVER
    mutual = new_context(cert_file=files["combined"], ca_file=files["ca"])
    assert mutual._stdlib_context(server_side=True).verify_mode == ssl.CERT_REQUIRED
    none = new_context(
        verify_mode=VerifyMode.NONE, cert_file=files["combined"], ca_file=files["ca"]
    )
    assert none._stdlib_context(server_side=True).verify_mode == ssl.CERT_NONE


def test_key_in_cert_file_or_separate(files: dict[str, str]) -> None:
    new_context(cert_file=files["combined"])
    new_context(cert_file=files["cert"], key_file=files["key"])
    with pytest.raises(SslError):
        new_context(cert_file=files["cert"])  # no key anywhere


def test_bad_inputs(files: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(SslError, match="cipher"):
        new_context(cipher_list="NO-SUCH-CIPHER")
    with pytest.raises(FileNotFoundError):
        new_context(cert_file=str(tmp_path / "missing.pem"))
    with pytest.raises(SslError, match="key_file"):
        new_context(key_file=files["key"])


def test_roles_are_built_lazily_and_psk_changes_rebuild(files: dict[str, str]) -> None:
    context = new_context(verify_mode=VerifyMode.NONE)
    assert set(context._built) == {False}
    server = new_context(cert_file=files["combined"])
    assert set(server._built) == {True}
    first = context._stdlib_context(server_side=True)
    assert context._stdlib_context(server_side=True) is first
    context.server_get_psk_func = lambda identity: None
    assert context._stdlib_context(server_side=True) is not first
    client = context._stdlib_context(server_side=False)
    context.psk_identity_hint = "hint"
    assert context.psk_identity_hint == "hint"
    assert context._stdlib_context(server_side=False) is client
    context.client_get_psk_func = lambda hint: ("id", b"key")
    assert context._stdlib_context(server_side=False) is not client


def test_destroy(files: dict[str, str]) -> None:
    context = new_context(cert_file=files["combined"])
    engine = TlsEngine(context, server_side=True, server_hostname=None)
    context.destroy()
    context.destroy()
    with pytest.raises(SslError, match="destroyed"):
        TlsEngine(context, server_side=True, server_hostname=None)
    assert engine.do_handshake() is False  # an existing engine keeps working
    assert "destroyed" in repr(context)


def test_enums() -> None:
    assert [m.name for m in tls.HandshakeType] == ["CLIENT", "SERVER"]
    assert [m.name for m in tls.SslAcceptResult] == ["NO_CLIENT", "NO_HANDSHAKE", "SUCCESS"]
    assert [m.name for m in VerifyMode] == ["NONE", "PEER"]


def test_certificate_from_der_matches_cryptography(ca: trustme.CA) -> None:
    child = ca.create_child_ca()
    leaf = child.issue_cert("example.org", common_name='Ex, "quoted"', organization_name="Org+1")
    for pem in (leaf.cert_chain_pems[0].bytes(), child.cert_pem.bytes(), ca.cert_pem.bytes()):
        parsed = x509.load_pem_x509_certificate(pem)
        der = ssl.PEM_cert_to_DER_cert(pem.decode())
        cert = Certificate.from_der(der)
        assert cert.der == der
        assert ssl.PEM_cert_to_DER_cert(cert.pem) == der
        assert cert.subject == parsed.subject.rfc4514_string()
        assert cert.issuer == parsed.issuer.rfc4514_string()
    with pytest.raises(SslError):
        Certificate.from_der(b"\x30\x03\x02\x01")
    with pytest.raises(AttributeError):
        cert.der = b""  # type: ignore[misc]


def test_expired_certificate_parses(ca: trustme.CA) -> None:
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    leaf = ca.issue_cert("old.example", not_before=past, not_after=past)
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    assert "trustme" in Certificate.from_der(der).subject


@pytest.mark.skipif(_psk.NATIVE_PSK, reason="the bridge is only used before Python 3.13")
class TestBridge:
    def test_finds_the_ssl_modules_openssl(self) -> None:
        bridge = _openssl.get_bridge()
        assert int(bridge.lib.OpenSSL_version_num()) == ssl.OPENSSL_VERSION_NUMBER

    def test_context_pointer_is_checked(self) -> None:
        bridge = _openssl.get_bridge()
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        client.options |= ssl.OP_NO_TICKET
        server.options &= ~ssl.OP_NO_TICKET
        pointer = bridge.ctx_pointer(client)
        assert pointer == bridge.ctx_pointer(client)
        before = client.options
        bridge._check_ctx(client, pointer)
        assert client.options == before  # the toggled bit was restored
        # The guard catches a pointer that is not this context's SSL_CTX.
        with pytest.raises(SslError, match="bridge check failed"):
            bridge._check_ctx(client, bridge.ctx_pointer(server))
        with pytest.raises(SslError, match="layout"):
            bridge.ctx_pointer(object())  # type: ignore[arg-type]

    def test_ssl_pointer_is_checked(self) -> None:
        bridge = _openssl.get_bridge()
        sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        sslctx.check_hostname = False
        sslctx.verify_mode = ssl.CERT_NONE
        obj = sslctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())
        assert bridge.ssl_pointer(obj)
        assert bridge.verified_chain(obj) == []

    def test_callbacks_live_with_the_context(self) -> None:
        sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        _psk.install_server_psk(sslctx, lambda identity: None, "hint")
        _psk.install_client_psk(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), lambda h: ("i", b"k"))
        assert len(sslctx.__dict__["_twinsock_psk_callbacks"]) == 1
