"""Pre-shared-key (PSK) support: the callbacks, on every Python we claim.

How this works
--------------
Python 3.13 added ``ssl.SSLContext.set_psk_client_callback`` and
``set_psk_server_callback``; there we use them (a server also gets its TLS
1.3 cipher-suite order through the OpenSSL bridge, which ``ssl`` cannot
set).  On Python 3.11 and 3.12 the ``ssl`` module has no PSK API, and the
callbacks are installed with OpenSSL's own ``SSL_CTX_set_psk_*_callback``
through the guarded ``ctypes`` bridge of :mod:`twinsock._openssl`.

The PSK callbacks run synchronously inside ``SSL_do_handshake`` in the thread
that called ``do_handshake()``.  They never let an exception escape into
OpenSSL: every failure is recorded in the :class:`PskRecord` of the engine
that is handshaking in this thread (see :func:`recording`) and the callback
returns 0, which makes OpenSSL fail the handshake; the engine then raises
:class:`~twinsock.errors.PskError` with the recorded reason.  The ``ctypes``
callback objects are stored on the ``ssl.SSLContext`` they are installed in,
so they live exactly as long as the ``SSL_CTX`` that points at them (every
``ssl.SSLObject`` keeps its context alive).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

from twinsock._openssl import CLIENT_CB, SERVER_CB, Bridge, get_bridge
from twinsock.errors import SslError

__all__ = [
    "NATIVE_PSK",
    "ClientPskFunc",
    "PskRecord",
    "ServerPskFunc",
    "install_client_psk",
    "install_server_psk",
    "recording",
]

ClientPskFunc = Callable[[str | None], tuple[str, bytes]]
ServerPskFunc = Callable[[str], bytes | None]

#: True where the ``ssl`` module has its own PSK API (Python 3.13+).
NATIVE_PSK = hasattr(ssl.SSLContext, "set_psk_client_callback")

# OpenSSL limits (ssl.h: PSK_MAX_IDENTITY_LEN, PSK_MAX_PSK_LEN in 3.x).
_MAX_IDENTITY_LEN = 128
_MAX_PSK_LEN = 512


class PskRecord:
    """What the PSK callbacks saw during one engine's handshake."""

    __slots__ = ("callback_ran", "error", "failure", "identity")

    def __init__(self) -> None:
        #: Client: the identity we offered.  Server: the identity whose key we
        #: supplied (the handshake may still fail if the keys differ).
        self.identity: str | None = None
        #: Why a callback refused (first reason wins: it is the root cause).
        self.failure: str | None = None
        #: The exception a user callback raised, chained to the PskError.
        self.error: BaseException | None = None
        self.callback_ran = False

    def fail(self, reason: str, error: BaseException | None = None) -> None:
        if self.failure is None:
            self.failure = reason
            self.error = error


_current = threading.local()


@contextlib.contextmanager
def recording(record: PskRecord) -> Iterator[None]:
    """Attribute PSK callbacks run in this thread to ``record`` meanwhile."""
    previous = getattr(_current, "record", None)
    _current.record = record
    try:
        yield
    finally:
        _current.record = previous


def _record() -> PskRecord:
    record = getattr(_current, "record", None)
    # A handshake driven outside an engine still works; it is just not
    # attributed to anyone.
    return record if isinstance(record, PskRecord) else PskRecord()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _client_answer(func: ClientPskFunc, hint: str | None) -> tuple[bytes, bytes] | None:
    """Call the user's client function; ``None`` (with a recorded reason) refuses."""
    record = _record()
    record.callback_ran = True
    try:
        answer = func(hint)
        identity, key = answer
        if not isinstance(identity, str):
            raise TypeError(f"identity must be str, not {type(identity).__name__}")
        if not isinstance(key, bytes | bytearray | memoryview):
            raise TypeError(f"key must be bytes, not {type(key).__name__}")
        key_bytes = bytes(key)
        identity_bytes = identity.encode("utf-8")
    except BaseException as exc:
        record.fail(f"client_get_psk_func raised {_describe(exc)}", exc)
        return None
    if not key_bytes:
        record.fail("client_get_psk_func returned an empty key")
        return None
    if len(key_bytes) > _MAX_PSK_LEN:
        record.fail(f"PSK key longer than {_MAX_PSK_LEN} bytes")
        return None
    if len(identity_bytes) > _MAX_IDENTITY_LEN or b"\0" in identity_bytes:
        record.fail(f"PSK identity {identity!r} is too long or contains NUL")
        return None
    record.identity = identity
    return identity_bytes, key_bytes


def _server_answer(func: ServerPskFunc, identity: str) -> bytes | None:
    """Call the user's server function; ``None`` (with a recorded reason) rejects."""
    record = _record()
    record.callback_ran = True
    try:
        key = func(identity)
        if key is not None and not isinstance(key, bytes | bytearray | memoryview):
            raise TypeError(f"key must be bytes or None, not {type(key).__name__}")
        key_bytes = None if key is None else bytes(key)
    except BaseException as exc:
        record.fail(f"server_get_psk_func raised {_describe(exc)}", exc)
        return None
    if key_bytes is None:
        record.fail(f"unknown PSK identity {identity!r} (server_get_psk_func returned None)")
        return None
    if not key_bytes or len(key_bytes) > _MAX_PSK_LEN:
        record.fail(f"server_get_psk_func returned a key of {len(key_bytes)} bytes")
        return None
    record.identity = identity
    return key_bytes


def _decode_c(text: bytes | None) -> str | None:
    return None if text is None else text.decode("utf-8", "replace")


# --------------------------------------------------------------------------
# Installing the callbacks
# --------------------------------------------------------------------------

_TLS13_SHA256_FIRST = b"TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"



def install_client_psk(sslctx: ssl.SSLContext, func: ClientPskFunc) -> None:
    """Make ``sslctx`` (a client context) offer the PSK that ``func`` returns."""
    if NATIVE_PSK:

        def native(hint: str | None) -> tuple[str | None, bytes]:
            answer = _client_answer(func, hint)
            if answer is None:
                return None, b""  # a zero-length key makes OpenSSL refuse
            return answer[0].decode("utf-8"), answer[1]

        sslctx.set_psk_client_callback(native)  # type: ignore[attr-defined]
        return

    def bridged(
        _ssl: int | None,
        hint: bytes | None,
        identity_out: int | None,
        max_identity: int,
        psk_out: int | None,
        max_psk: int,
    ) -> int:
        try:
            answer = _client_answer(func, _decode_c(hint))
            if answer is None or identity_out is None or psk_out is None:
                return 0
            identity, key = answer
            if len(identity) + 1 > max_identity or len(key) > max_psk:
                _record().fail("PSK identity or key does not fit OpenSSL's buffers")
                return 0
            ctypes.memmove(identity_out, identity + b"\0", len(identity) + 1)
            ctypes.memmove(psk_out, key, len(key))
            return len(key)
        except BaseException:  # never unwind into OpenSSL
            return 0

    bridge = get_bridge()
    ctx_ptr = bridge.ctx_pointer(sslctx)
    callback = CLIENT_CB(bridged)
    _keep_alive(sslctx, callback)
    bridge.lib.SSL_CTX_set_psk_client_callback(ctx_ptr, callback)
    # CPython gives every context the session id context "Python".  In TLS 1.3
    # OpenSSL turns the external PSK into a session with an empty one and the
    # client then refuses its own PSK (ATTEMPT_TO_REUSE_SESSION_IN_DIFFERENT_
    # CONTEXT).  A session id context means nothing on a client: clear it.
    if bridge.lib.SSL_CTX_set_session_id_context(ctx_ptr, b"", 0) != 1:
        raise SslError("PSK bridge: OpenSSL refused to clear the session id context")


def install_server_psk(sslctx: ssl.SSLContext, func: ServerPskFunc, hint: str | None) -> None:
    """Make ``sslctx`` (a server context) accept the PSKs that ``func`` knows."""
    if NATIVE_PSK:

        def native(identity: str | None) -> bytes:
            key = _server_answer(func, identity or "")
            return b"" if key is None else key

        sslctx.set_psk_server_callback(native, hint)  # type: ignore[attr-defined]
        # The ssl module has no call for the TLS 1.3 suites that a server with
        # a certificate needs to accept a PSK at all (see _prefer_sha256_suites);
        # the bridge sets them where it can.  Where it cannot, a pure PSK server
        # still works (OpenSSL prefers SHA-256 itself when there is no certificate).
        with contextlib.suppress(SslError):
            bridge = get_bridge()
            _prefer_sha256_suites(sslctx, bridge, bridge.ctx_pointer(sslctx))
        return

    def bridged(_ssl: int | None, identity: bytes | None, psk_out: int | None, max_psk: int) -> int:
        try:
            key = _server_answer(func, _decode_c(identity) or "")
            if key is None or psk_out is None:
                return 0
            if len(key) > max_psk:
                _record().fail("PSK key does not fit OpenSSL's buffer")
                return 0
            ctypes.memmove(psk_out, key, len(key))
            return len(key)
        except BaseException:  # never unwind into OpenSSL
            return 0

    bridge = get_bridge()
    ctx_ptr = bridge.ctx_pointer(sslctx)
    callback = SERVER_CB(bridged)
    _keep_alive(sslctx, callback)
    bridge.lib.SSL_CTX_set_psk_server_callback(ctx_ptr, callback)
    _prefer_sha256_suites(sslctx, bridge, ctx_ptr)
    if hint is not None and bridge.lib.SSL_CTX_use_psk_identity_hint(ctx_ptr, hint.encode()) != 1:
        raise SslError(f"OpenSSL refused the PSK identity hint {hint!r}")


def _prefer_sha256_suites(sslctx: ssl.SSLContext, bridge: Bridge, ctx_ptr: int) -> None:
    """Let a PSK server that also has a certificate pick a SHA-256 TLS 1.3 suite.

    OpenSSL's legacy callbacks make a TLS 1.3 PSK that only works with a
    SHA-256 suite, and a server that also has a certificate does not prefer
    one by itself (it would pick TLS_AES_256_GCM_SHA384 and ignore the PSK).
    """
    sslctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if bridge.lib.SSL_CTX_set_ciphersuites(ctx_ptr, _TLS13_SHA256_FIRST) != 1:
        raise SslError("PSK bridge: OpenSSL refused the TLS 1.3 cipher suites")


def _keep_alive(sslctx: ssl.SSLContext, callback: Any) -> None:
    # ssl.SSLContext instances have a __dict__; the callback must live as long
    # as the SSL_CTX, which the Python context (and every SSLObject) owns.
    keep: list[Any] = sslctx.__dict__.setdefault("_twinsock_psk_callbacks", [])
    keep.append(callback)
