"""TLS contexts, certificates and PSK settings (SPEC section 6).

How this works
--------------
An :class:`SslContext` is Nim's ``SslContext``: one object used for both the
client and the server role.  The standard library needs one
``ssl.SSLContext`` per role (``PROTOCOL_TLS_CLIENT`` / ``PROTOCOL_TLS_SERVER``),
so each is built the first time a connection in that role needs it, and
rebuilt when a PSK setting changes (connections that already exist keep the
one they started with).  ``new_context`` builds one role at once so that a bad
certificate file or cipher list is reported by ``new_context`` itself.

Connections are driven by the sans-I/O ``TlsEngine`` (in ``twinsock._core``);
this module only decides *what* is negotiated and verified.
"""

from __future__ import annotations

import enum
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

from twinsock import _psk
from twinsock.errors import SslError

__all__ = [
    "Certificate",
    "ClientGetPskFunc",
    "HandshakeType",
    "ProtVersion",
    "SslAcceptResult",
    "ServerGetPskFunc",
    "SslContext",
    "VerifyMode",
    "new_context",
]


class ProtVersion(enum.Enum):
    """Protocol selection (Nim's ``SslProtVersion``)."""

    SSLV2 = "SSLv2"
    SSLV3 = "SSLv3"
    TLSV1 = "TLSv1"
    #: Negotiate the best version both sides support, TLS 1.2 at least.
    SSLV23 = "SSLv23"
    TLSV1_2 = "TLSv1.2"
    TLSV1_3 = "TLSv1.3"


class VerifyMode(enum.Enum):
    """Peer verification (Nim's ``SslCVerifyMode``)."""

    NONE = 0
    PEER = 1


class HandshakeType(enum.Enum):
    """Which side of the handshake a wrapped socket plays."""

    CLIENT = 0
    SERVER = 1


class SslAcceptResult(enum.Enum):
    """Outcome of a TLS accept (Nim's ``SslAcceptResult``)."""

    NO_CLIENT = 0
    NO_HANDSHAKE = 1
    SUCCESS = 2


@dataclass(frozen=True)
class Certificate:
    """One X.509 certificate of a peer's chain.

    ``subject`` and ``issuer`` are RFC 4514 strings (``CN=example,O=Org``).
    """

    der: bytes
    pem: str
    subject: str
    issuer: str

    @classmethod
    def from_der(cls, der: bytes) -> Certificate:
        """Build a :class:`Certificate` from its DER encoding.

        Args:
            der: the certificate, DER-encoded.

        Returns:
            The certificate with its PEM text, subject and issuer.

        Raises:
            SslError: ``der`` is not a certificate that can be parsed.
        """
        issuer, subject = _issuer_and_subject(der)
        return cls(der=der, pem=ssl.DER_cert_to_PEM_cert(der), subject=subject, issuer=issuer)


#: ``hint -> (identity, key)``: the PSK a client offers (Nim's ``SslClientGetPskFunc``).
ClientGetPskFunc = Callable[[str | None], tuple[str, bytes]]
#: ``identity -> key``, ``None`` to reject (Nim's ``SslServerGetPskFunc``).
ServerGetPskFunc = Callable[[str], bytes | None]

_VERSIONS = {
    ProtVersion.SSLV23: (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED),
    ProtVersion.TLSV1_2: (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
    ProtVersion.TLSV1_3: (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3),
}


class SslContext:
    """TLS settings shared by any number of connections, in either role.

    Made by :func:`new_context`.  The PSK settings are the properties
    :attr:`psk_identity_hint`, :attr:`client_get_psk_func` and
    :attr:`server_get_psk_func`.
    """

    def __init__(
        self,
        prot_version: ProtVersion,
        verify_mode: VerifyMode,
        cert_file: str | None,
        key_file: str | None,
        cipher_list: str | None,
        ca_file: str | None,
        allow_truncation: bool,
    ) -> None:
        if prot_version not in _VERSIONS:
            raise SslError(
                f"{prot_version.value} is insecure and not supported; use SSLV23 "
                "(TLS 1.2 or newer), TLSV1_2 or TLSV1_3"
            )
        self.prot_version = prot_version
        self.verify_mode = verify_mode
        self.cert_file = cert_file
        self.key_file = key_file
        self.cipher_list = cipher_list
        self.ca_file = ca_file
        self.allow_truncation = allow_truncation
        self._lock = threading.Lock()
        self._built: dict[bool, ssl.SSLContext] = {}
        self._destroyed = False
        self._psk_identity_hint: str | None = None
        self._client_get_psk_func: _psk.ClientPskFunc | None = None
        self._server_get_psk_func: _psk.ServerPskFunc | None = None

    # PSK settings: changing one makes the affected role be rebuilt.

    @property
    def psk_identity_hint(self) -> str | None:
        """The hint a PSK server sends to clients (TLS 1.2; TLS 1.3 has no hint).

        Setting it applies to connections made afterwards.
        """
        return self._psk_identity_hint

    @psk_identity_hint.setter
    def psk_identity_hint(self, hint: str | None) -> None:
        self._psk_identity_hint = hint
        self._forget(server_side=True)

    @property
    def client_get_psk_func(self) -> _psk.ClientPskFunc | None:
        """``func(hint) -> (identity, key)`` for a PSK client; ``None``: no PSK.

        An exception in it fails the handshake with ``PskError``.
        """
        return self._client_get_psk_func

    @client_get_psk_func.setter
    def client_get_psk_func(self, func: _psk.ClientPskFunc | None) -> None:
        self._client_get_psk_func = func
        self._forget(server_side=False)

    @property
    def server_get_psk_func(self) -> _psk.ServerPskFunc | None:
        """``func(identity) -> key or None`` for a PSK server; ``None`` rejects the
        identity (``PskError``); an exception in it fails the handshake too."""
        return self._server_get_psk_func

    @server_get_psk_func.setter
    def server_get_psk_func(self, func: _psk.ServerPskFunc | None) -> None:
        self._server_get_psk_func = func
        self._forget(server_side=True)

    def destroy(self) -> None:
        """Release the OpenSSL contexts (Nim's ``destroy``); existing connections keep working.

        A connection started from a destroyed context fails its handshake with
        :class:`~twinsock.errors.SslError`.
        """
        with self._lock:
            self._destroyed = True
            self._built.clear()

    def __repr__(self) -> str:
        return (
            f"<SslContext {self.prot_version.name} verify={self.verify_mode.name}"
            f"{' destroyed' if self._destroyed else ''}>"
        )

    # Internal: used by the TLS engine.

    def _forget(self, *, server_side: bool) -> None:
        with self._lock:
            self._built.pop(server_side, None)

    def _stdlib_context(self, *, server_side: bool) -> ssl.SSLContext:
        """The ``ssl.SSLContext`` for one role, built on first use."""
        with self._lock:
            if self._destroyed:
                raise SslError("the SslContext was destroyed")
            sslctx = self._built.get(server_side)
            if sslctx is None:
                sslctx = self._build(server_side=server_side)
                self._built[server_side] = sslctx
            return sslctx

    def _build(self, *, server_side: bool) -> ssl.SSLContext:
        sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
        sslctx.minimum_version, sslctx.maximum_version = _VERSIONS[self.prot_version]
        # Truncation is the engine's decision; OpenSSL must report a raw EOF.
        sslctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        if server_side:
            if self.verify_mode is VerifyMode.PEER and self.ca_file is not None:
                sslctx.verify_mode = ssl.CERT_REQUIRED
        elif self.verify_mode is VerifyMode.PEER:
            sslctx.check_hostname = True
            sslctx.verify_mode = ssl.CERT_REQUIRED
        else:
            sslctx.check_hostname = False
            sslctx.verify_mode = ssl.CERT_NONE
        try:
            if self.verify_mode is VerifyMode.PEER:
                if self.ca_file is not None:
                    sslctx.load_verify_locations(cafile=self.ca_file)
                elif not server_side:
                    sslctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            if self.cert_file is not None:
                sslctx.load_cert_chain(self.cert_file, self.key_file)
            elif self.key_file is not None:
                raise SslError("key_file given without cert_file")
            if self.cipher_list is not None:
                sslctx.set_ciphers(self.cipher_list)
        except ssl.SSLError as exc:
            if isinstance(exc, SslError):
                raise
            why = getattr(exc, "reason", None) or exc
            raise SslError(f"cannot set up the TLS context: {why}") from exc
        if server_side and self._server_get_psk_func is not None:
            _psk.install_server_psk(sslctx, self._server_get_psk_func, self._psk_identity_hint)
        if not server_side and self._client_get_psk_func is not None:
            _psk.install_client_psk(sslctx, self._client_get_psk_func)
        return sslctx


def new_context(
    prot_version: ProtVersion = ProtVersion.SSLV23,
    verify_mode: VerifyMode = VerifyMode.PEER,
    cert_file: str | None = None,
    key_file: str | None = None,
    cipher_list: str | None = None,
    ca_file: str | None = None,
    allow_truncation: bool = False,
) -> SslContext:
    """Create a TLS context (Nim's ``newContext``), secure by default.

    Args:
        prot_version: ``SSLV23`` negotiates TLS 1.2 or newer; ``TLSV1_2`` /
            ``TLSV1_3`` pin one version; ``SSLV2``, ``SSLV3``, ``TLSV1`` are refused.
        verify_mode: ``PEER`` verifies the peer's chain (``ca_file`` or the
            system store) and, on clients, the host name or IP address.  On a
            server, ``PEER`` with ``ca_file`` requires a client certificate.
        cert_file: PEM certificate chain; the key may be in the same file.
        key_file: PEM private key.
        cipher_list: OpenSSL cipher string for TLS 1.2 (``None`` keeps the
            ssl module's defaults; PSK over TLS 1.2 needs e.g. ``"PSK"``).
        ca_file: PEM file of trusted CAs.
        allow_truncation: report a TCP end without close_notify as a clean
            end of stream instead of an error.

    Returns:
        The context, for any number of connections in either role.

    Raises:
        SslError: an insecure protocol, a certificate, key or cipher list that
            OpenSSL rejects, or a ``key_file`` without ``cert_file``.
        OSError: a file that cannot be read (``FileNotFoundError``, ...).
    """
    context = SslContext(
        prot_version, verify_mode, cert_file, key_file, cipher_list, ca_file, allow_truncation
    )
    # Build the likelier role now so that bad files and ciphers fail here.
    context._stdlib_context(server_side=cert_file is not None)
    return context


# ---------------------------------------------------------------------------
# Reading the subject and issuer out of DER (no third-party dependency)
# ---------------------------------------------------------------------------

_OID_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress",
}


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    children = []
    while start < end:
        item = _der_item(data, start)
        children.append(item)
        start = item[2]
    return children


def _oid_text(raw: bytes) -> str:
    parts = [raw[0] // 40, raw[0] % 40] if raw[0] < 80 else [2, raw[0] - 80]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def _escape(value: str) -> str:
    out = "".join("\\" + ch if ch in ',+"\\<>;=' else ch for ch in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def _name_text(data: bytes, start: int, end: int) -> str:
    rdns = []
    for _tag, set_start, set_end in _der_children(data, start, end):
        attributes = []
        for _t, seq_start, seq_end in _der_children(data, set_start, set_end):
            (_, o_start, o_end), (v_tag, v_start, v_end) = _der_children(data, seq_start, seq_end)
            oid = _oid_text(data[o_start:o_end])
            raw = data[v_start:v_end]
            if v_tag == 0x0C:
                value = _escape(raw.decode("utf-8", "replace"))
            elif v_tag == 0x1E:
                value = _escape(raw.decode("utf-16-be", "replace"))
            elif v_tag == 0x1C:
                value = _escape(raw.decode("utf-32-be", "replace"))
            elif v_tag in (0x13, 0x16, 0x14, 0x1A):
                value = _escape(raw.decode("latin-1"))
            else:
                value = "#" + data[o_end:v_end].hex()  # the whole value element
            attributes.append(f"{_OID_NAMES.get(oid, oid)}={value}")
        rdns.append("+".join(attributes))
    return ",".join(reversed(rdns))


def _issuer_and_subject(der: bytes) -> tuple[str, str]:
    try:
        (_, c_start, c_end), *_ = _der_children(der, 0, len(der))
        (_, t_start, t_end), *_ = _der_children(der, c_start, c_end)
        fields = _der_children(der, t_start, t_end)
        if fields and fields[0][0] == 0xA0:  # explicit [0] version
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject
        issuer, subject = fields[2], fields[4]
        return _name_text(der, issuer[1], issuer[2]), _name_text(der, subject[1], subject[2])
    except (IndexError, ValueError) as exc:
        raise SslError(f"cannot parse the peer's certificate: {exc}") from exc
