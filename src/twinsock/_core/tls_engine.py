"""The sans-I/O TLS state machine shared by the blocking and the async socket.

How this works
--------------
A :class:`TlsEngine` wraps one ``ssl.SSLObject`` between two
``ssl.MemoryBIO`` objects, so it never touches a socket: the caller feeds the
ciphertext it received with :meth:`~TlsEngine.receive` (and
:meth:`~TlsEngine.receive_eof` when the TCP stream ended), and sends whatever
:meth:`~TlsEngine.data_to_send` returns.  The pump loop of a socket shell is
therefore::

    while not engine.do_handshake():      # also: read() returning None
        send(engine.data_to_send())
        raw = receive()                    # wait in the shell's own way
        engine.receive(raw) if raw else engine.receive_eof()
    send(engine.data_to_send())

Always send ``data_to_send()`` after *every* call, including one that raised:
after a failed handshake it holds the alert that tells the peer why.

This module is the one place where ``ssl.SSLError`` becomes
:class:`~twinsock.errors.SslError` (or :class:`~twinsock.errors.PskError`),
with a message that says why (unknown CA, host name or IP mismatch, expired
certificate, refused protocol version, peer closed during the handshake,
truncation, wrong PSK key, unknown PSK identity, ...).  The exception keeps
the original as ``__cause__`` and copies its ``reason`` and ``library``.

End of stream: :meth:`~TlsEngine.read` returns ``b""`` only for a clean end
(the peer's close_notify, or a raw EOF when the context allows truncation);
a raw EOF without close_notify otherwise raises ``SslError`` (truncation).
"""

from __future__ import annotations

import contextlib
import re
import ssl
from typing import TYPE_CHECKING

from twinsock import _openssl, _psk
from twinsock.errors import PskError, SslError

if TYPE_CHECKING:
    from twinsock.tls import Certificate, SslContext

__all__ = ["DEFAULT_READ_SIZE", "TlsEngine", "TruncatedStream", "check_handshake_args"]

class TruncatedStream(SslError):
    """The ``SslError`` of a TLS stream that the peer ended without close_notify.

    Callers catch it as ``SslError``; the serving layer tells it apart because
    it is how most TLS clients (Python's ``ssl``, curl, browsers) leave: for a
    server it is a disconnection, not a handler's failure.
    """


#: One TLS record holds at most 16 KiB of plaintext, and ``SSLObject.read(n)``
#: allocates ``n`` bytes up front: asking for more only costs an allocation.
DEFAULT_READ_SIZE = 16384

# OpenSSL verify codes that mean "the chain does not end at a CA we trust".
_UNKNOWN_CA_CODES = {2, 18, 19, 20, 21}

_VERSION_REASONS = {
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "UNKNOWN_PROTOCOL",
    "VERSION_TOO_LOW",
    "VERSION_TOO_HIGH",
    "WRONG_SSL_VERSION",
}
_PEER_REJECTED_OUR_CERT = {
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "TLSV1_ALERT_ACCESS_DENIED",
}
_CERT_REQUIRED = {"PEER_DID_NOT_RETURN_A_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"}
_WRONG_KEY_REASONS = {
    "TLSV1_ALERT_DECRYPT_ERROR",
    "DECRYPTION_FAILED_OR_BAD_RECORD_MAC",
    "SSLV3_ALERT_BAD_RECORD_MAC",
    "BAD_RECORD_MAC",
    "BINDER_DOES_NOT_VERIFY",
    "DIGEST_CHECK_FAILED",
    "BAD_DECRYPT",
}
_UNKNOWN_IDENTITY_REASONS = {"TLSV1_ALERT_UNKNOWN_PSK_IDENTITY", "PSK_IDENTITY_NOT_FOUND"}
# A plaintext peer's first bytes are no TLS record header: OpenSSL reads a
# wrong version number there (WRONG_VERSION_NUMBER), or names an HTTP request.
_PLAINTEXT_HTTP = {
    "HTTP_REQUEST": "a plaintext HTTP request",
    "HTTPS_PROXY_REQUEST": "a plaintext HTTP proxy request (CONNECT)",
}


_NEEDS_HOSTNAME = (
    "a TLS client with VerifyMode.PEER needs a host name to check the "
    "certificate against (pass hostname=..., or use VerifyMode.NONE)"
)


def check_handshake_args(context: SslContext, *, server_side: bool, hostname: str | None) -> None:
    """Refuse, before any I/O, a handshake that :class:`TlsEngine` would refuse.

    Raises:
        ValueError: a verifying client without a host name.
    """
    from twinsock.tls import VerifyMode

    if not server_side and context.verify_mode is VerifyMode.PEER and not hostname:
        raise ValueError(_NEEDS_HOSTNAME)


def _not_tls(reason: str, server_side: bool) -> str | None:
    """Why the handshake failed when the peer's bytes were not TLS; ``None`` otherwise."""
    if reason in _PLAINTEXT_HTTP:
        return f"the peer does not speak TLS: it sent {_PLAINTEXT_HTTP[reason]} ({reason})"
    if reason == "WRONG_VERSION_NUMBER":
        guess = "did it send plaintext?" if server_side else "did it answer in plaintext?"
        return f"the peer does not speak TLS; {guess} ({reason})"
    return None


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason name; derived from the text when ``_ssl`` has no name for it.

    (Python 3.11's table lacks newer codes, e.g. ``tlsv1 alert unknown psk identity``.)
    """
    reason = getattr(exc, "reason", None)  # absent when raised from Python code
    if reason:
        return str(reason)
    text = str(exc.args[1] if len(exc.args) > 1 else exc)
    match = re.match(r"\[[^\]]*\]\s*(.*?)\s*(\(_ssl\.c:\d+\))?$", text)
    words = match.group(1) if match else text
    return re.sub(r"\W+", "_", words).strip("_").upper() or type(exc).__name__


class TlsEngine:
    """One TLS connection as a state machine over memory buffers.

    Args:
        context: the :class:`~twinsock.tls.SslContext` (its role-specific
            ``ssl.SSLContext`` is built on first use).
        server_side: ``True`` for the accepting side.
        server_hostname: client only: SNI (unless an IP literal) and the name
            or address the certificate is checked against.

    Raises:
        ValueError: a verifying client without ``server_hostname``.
        SslError: the context was destroyed or cannot be set up.
    """

    def __init__(
        self, context: SslContext, *, server_side: bool, server_hostname: str | None
    ) -> None:
        sslctx = context._stdlib_context(server_side=server_side)
        self._allow_truncation = context.allow_truncation
        self._server_side = server_side
        self._hostname = None if server_side else (server_hostname or None)
        self._psk_client = not server_side and context.client_get_psk_func is not None
        self._psk_server = server_side and context.server_get_psk_func is not None
        self._psk_only_server = self._psk_server and context.cert_file is None
        if sslctx.check_hostname and self._hostname is None:
            raise ValueError(_NEEDS_HOSTNAME)
        self._incoming = ssl.MemoryBIO()
        #: The ciphertext waiting to be sent.  Shells may test ``outgoing.pending``
        #: to skip a call; they drain it only through :meth:`data_to_send`.
        self.outgoing = ssl.MemoryBIO()
        self._obj = sslctx.wrap_bio(
            self._incoming, self.outgoing, server_side=server_side, server_hostname=self._hostname
        )
        self._psk = _psk.PskRecord()
        self._psk_used = False
        #: ``True`` once the handshake completed successfully (read it, never set it).
        self.handshake_done = False
        self._raw_eof = False
        self._ended = False  # clean end of stream seen
        self._close_started = False
        self._error: SslError | None = None
        self._peer_chain: list[Certificate] | None = None

    # -- feeding and draining ------------------------------------------------

    def receive(self, raw: bytes | bytearray | memoryview) -> None:
        """Feed ciphertext received from the network."""
        if raw and not self._raw_eof:
            self._incoming.write(raw)

    def receive_eof(self) -> None:
        """Note that the TCP stream ended (no more ciphertext will come)."""
        if not self._raw_eof:
            self._raw_eof = True
            self._incoming.write_eof()

    @property
    def wants_to_send(self) -> bool:
        """``True`` while :meth:`data_to_send` has ciphertext waiting."""
        return self.outgoing.pending > 0

    def data_to_send(self) -> bytes:
        """Drain the ciphertext that must be sent to the peer (``b""`` if none)."""
        return self.outgoing.read() if self.outgoing.pending else b""

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """:meth:`write` then :meth:`data_to_send`, in one call (the send path)."""
        self.write(data)
        return self.outgoing.read()

    # -- the handshake ---------------------------------------------------------

    def do_handshake(self) -> bool:
        """Advance the handshake by what the received data allows.

        Returns:
            ``True`` once the handshake is complete; ``False`` when more
            ciphertext is needed (send :meth:`data_to_send` first).

        Raises:
            SslError: the handshake failed; the message says why.
            PskError: a PSK handshake failed (wrong key, unknown identity, a
                PSK callback raised, or the server answered without the PSK).
        """
        if self.handshake_done:
            return True
        if self._error is not None:
            raise self._error.with_traceback(None)
        try:
            with _psk.recording(self._psk):
                self._obj.do_handshake()
        except ssl.SSLWantReadError:
            self._check_psk_callbacks()
            if self._raw_eof:
                raise self._failed(
                    SslError("the peer closed the connection during the TLS handshake")
                ) from None
            return False
        except ssl.SSLError as exc:
            error = self._handshake_error(exc)
            # A PSK callback's own exception is the more useful cause.
            cause = self._psk.error if isinstance(self._psk.error, Exception) else exc
            raise error from cause
        self._check_psk_callbacks()
        self._check_psk_outcome()
        self.handshake_done = True
        return True

    def _check_psk_callbacks(self) -> None:
        """Fail at once when a PSK callback raised, or a client has no key to offer.

        OpenSSL itself would go on without the PSK (TLS 1.3 falls back to a
        certificate handshake), which only postpones and blurs the error.
        """
        record = self._psk
        if record.error is None and not (self._psk_client and record.failure is not None):
            return
        self.outgoing.read()  # do not send a hello we are not going to follow up
        error = self._failed(PskError(f"PSK handshake failed: {record.failure}"))
        if not isinstance(record.error, Exception | None):
            raise record.error  # KeyboardInterrupt / SystemExit: not ours to swallow
        raise error from record.error

    def _check_psk_outcome(self) -> None:
        version = self._obj.version()
        cipher = self._obj.cipher()
        if version == "TLSv1.3":
            used = self._obj.session_reused and self._obj.getpeercert(binary_form=True) is None
        else:
            used = cipher is not None and "PSK" in cipher[0]
        self._psk_used = used and self._psk.identity is not None
        if self._psk_client and not self._psk_used:
            identity = self._psk.identity
            with contextlib.suppress(ssl.SSLError):
                self._obj.unwrap()  # tell the server we are leaving (close_notify)
            raise self._failed(
                PskError(
                    "the server answered with a certificate handshake instead of the PSK"
                    + (f" (it does not accept identity {identity!r}?)" if identity else "")
                )
            )

    # -- application data --------------------------------------------------------

    def read(self, max_size: int = DEFAULT_READ_SIZE) -> bytes | None:
        """Decrypt what is available.

        Returns:
            Non-empty plaintext; ``b""`` at a clean end of stream; ``None`` when
            more ciphertext is needed.

        Raises:
            SslError: a TLS failure, or truncation (raw EOF without
                close_notify on a context without ``allow_truncation``).
        """
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        if self._error is not None or not self.handshake_done:
            self._require_handshake("read")
        if self._ended:
            return b""
        if not self._raw_eof and not self._incoming.pending and not self._obj.pending():
            return None  # nothing to decrypt: skip OpenSSL's SSLWantReadError round trip
        try:
            data = self._obj.read(max_size)
        except ssl.SSLWantReadError:
            if self._raw_eof:
                return self._truncated(None)
            return None
        except ssl.SSLZeroReturnError:
            self._ended = True
            return b""
        except (ssl.SSLEOFError, ssl.SSLSyscallError) as exc:
            if self._raw_eof:
                return self._truncated(exc)
            raise self._io_error(exc, "read") from exc
        except ssl.SSLError as exc:
            raise self._io_error(exc, "read") from exc
        if not data:  # _ssl reports the peer's close_notify as b""
            self._ended = True
            return b""
        return data

    def has_input(self) -> bool:
        """True if :meth:`read` could return something without more ciphertext."""
        return self._raw_eof or bool(self._incoming.pending) or self._obj.pending() > 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data``; the ciphertext waits in :meth:`data_to_send`."""
        if self._error is not None or not self.handshake_done:
            self._require_handshake("write")
        if self._close_started:
            raise SslError("write after start_close() on a TLS connection")
        try:
            if data.__class__ is bytes:
                done = self._obj.write(data)  # the usual case: one call, no views
                if done == len(data):
                    return
                view = memoryview(data)
            else:
                view = memoryview(data)
                if view.ndim != 1 or view.itemsize != 1:
                    view = view.cast("B")
                done = 0
            while done < len(view):
                done += self._obj.write(view[done:])
        except ssl.SSLError as exc:
            raise self._io_error(exc, "write") from exc

    def start_close(self) -> None:
        """Queue our close_notify (idempotent; harmless after errors)."""
        if self._close_started:
            return
        self._close_started = True
        if not self.handshake_done or self._error is not None:
            return  # a failed handshake already queued its alert
        # SSLWantReadError only means the peer's close_notify is not here yet.
        with contextlib.suppress(ssl.SSLError):
            self._obj.unwrap()

    # -- information ---------------------------------------------------------------

    def peer_certificates(self) -> list[Certificate]:
        """The peer's verified chain, leaf first, root last.

        ``[]`` before the handshake, when this side does not verify, or when
        the peer sent no certificate.  On Python < 3.13 the chain comes from
        the guarded OpenSSL bridge; if the bridge refuses, only the (verified)
        leaf certificate is returned.
        """
        from twinsock.tls import Certificate

        if not self.handshake_done or self._obj.context.verify_mode == ssl.CERT_NONE:
            return []
        if self._peer_chain is None:
            leaf = self._obj.getpeercert(binary_form=True)
            if leaf is None:
                self._peer_chain = []
            else:
                chain = _openssl.verified_chain_der(self._obj) or [leaf]
                self._peer_chain = [Certificate.from_der(der) for der in chain]
        return list(self._peer_chain)

    def psk_identity(self) -> str | None:
        """The PSK identity of this connection (server: the client's), else ``None``."""
        return self._psk.identity if self._psk_used else None

    def cipher(self) -> tuple[str, str, int] | None:
        """``(name, protocol, secret bits)`` once negotiated."""
        return self._obj.cipher() if self.handshake_done else None

    def version(self) -> str | None:
        """The negotiated protocol version (``"TLSv1.3"``), once negotiated."""
        return self._obj.version() if self.handshake_done else None

    # -- errors ------------------------------------------------------------------

    def _require_handshake(self, operation: str) -> None:
        if self._error is not None:
            raise self._error.with_traceback(None)
        if not self.handshake_done:
            raise SslError(f"{operation} before the TLS handshake completed")

    def _failed(self, error: SslError, cause: ssl.SSLError | None = None) -> SslError:
        if cause is not None:
            error.reason = _reason(cause)
            error.library = str(getattr(cause, "library", "") or "")
        self._error = error
        return error

    def _peer_text(self) -> str:
        return f" with {self._hostname!r}" if self._hostname else ""

    def _truncated(self, cause: ssl.SSLError | None) -> bytes:
        if self._allow_truncation:
            self._ended = True
            return b""
        error = self._failed(
            TruncatedStream(
                "TLS stream truncated: the peer closed the TCP connection without "
                "close_notify (use allow_truncation=True to accept this)"
            ),
            cause,
        )
        raise error from cause

    def _io_error(self, exc: ssl.SSLError, operation: str) -> SslError:
        reason = _reason(exc)
        if reason in _PEER_REJECTED_OUR_CERT:
            why = f"the peer rejected our certificate ({reason})"
        elif reason in _CERT_REQUIRED:
            why = f"the peer requires a client certificate ({reason})"
        else:
            why = reason
        return self._failed(SslError(f"TLS {operation} failed{self._peer_text()}: {why}"), exc)

    def _handshake_error(self, exc: ssl.SSLError) -> BaseException:
        record = self._psk
        if record.error is not None and not isinstance(record.error, Exception):
            self._failed(PskError(f"PSK handshake failed: {record.failure}"))
            return record.error  # KeyboardInterrupt / SystemExit inside a PSK callback
        prefix = f"TLS handshake{self._peer_text()} failed"
        if isinstance(exc, ssl.SSLCertVerificationError):
            message = exc.verify_message or _reason(exc)
            if exc.verify_code in _UNKNOWN_CA_CODES:
                message += " (unknown CA: the chain does not end at a trusted root)"
            return self._failed(SslError(f"{prefix}: certificate verify failed: {message}"), exc)
        if self._psk_client or (self._psk_server and record.callback_ran):
            return self._failed(PskError(f"PSK {prefix[4:]}: {self._psk_reason(exc)}"), exc)
        reason = _reason(exc)
        not_tls = _not_tls(reason, self._server_side)
        if self._psk_only_server and not_tls is not None:
            return self._failed(PskError(f"PSK {prefix[4:]}: {not_tls}"), exc)
        if self._psk_only_server and not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return self._failed(
                PskError(
                    f"PSK {prefix[4:]}: the client offered no PSK and this server has no "
                    f"certificate ({reason})"
                ),
                exc,
            )
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
            why = "the peer closed the connection during the TLS handshake"
        elif not_tls is not None:
            why = not_tls
        elif reason in _VERSION_REASONS:
            why = f"protocol version refused ({reason})"
        elif reason in _PEER_REJECTED_OUR_CERT:
            why = f"the peer rejected our certificate ({reason})"
        elif reason in _CERT_REQUIRED:
            why = f"the peer did not send the client certificate we require ({reason})"
        elif reason == "NO_SHARED_CIPHER":
            why = f"no cipher or protocol both sides accept ({reason})"
        elif reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
            # TLS 1.2 servers send this alert for both causes.
            why = (
                "the peer refused the handshake: no cipher or protocol both sides "
                f"accept, or it requires a client certificate we did not send ({reason})"
            )
        else:
            why = reason
        return self._failed(SslError(f"{prefix}: {why}"), exc)

    def _psk_reason(self, exc: ssl.SSLError) -> str:
        record = self._psk
        if record.failure is not None:
            return record.failure
        reason = _reason(exc)
        identity = f" {record.identity!r}" if record.identity else ""
        if reason in _WRONG_KEY_REASONS:
            return f"wrong PSK key for identity{identity} ({reason})"
        if self._psk_client and reason == "SSLV3_ALERT_ILLEGAL_PARAMETER":
            # OpenSSL servers answer a TLS 1.3 binder that does not verify so.
            return f"the server rejected our PSK: wrong key for identity{identity}? ({reason})"
        not_tls = _not_tls(reason, self._server_side)
        if not_tls is not None:
            return not_tls
        if reason in _UNKNOWN_IDENTITY_REASONS:
            return f"the server does not know PSK identity{identity} ({reason})"
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
            offered = f" (we offered identity{identity})" if self._psk_client and identity else ""
            return f"the peer closed the connection during the PSK handshake{offered}"
        if self._psk_client and reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
            return (
                f"the server refused the handshake; it most likely does not know PSK "
                f"identity{identity} ({reason})"
            )
        if reason in _VERSION_REASONS:
            return f"protocol version refused ({reason})"
        if reason in ("NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE"):
            return f"no shared cipher: TLS 1.2 PSK needs a cipher_list such as 'PSK' ({reason})"
        if self._psk_client and record.identity:
            # OpenSSL's reason text varies by version (3.0.13 reports an unknown
            # identity as UNKNOWN_ERROR): name what we offered in any case.
            return (
                f"the server refused the handshake: it may not know PSK identity{identity}, "
                f"or have another key for it ({reason})"
            )
        return reason
