"""Pre-shared-key (PSK) support and the small OpenSSL bridge behind it.

How this works
--------------
Python 3.13 added ``ssl.SSLContext.set_psk_client_callback`` and
``set_psk_server_callback``; there we use them (a server also gets its TLS
1.3 cipher-suite order through the bridge below, which ``ssl`` cannot set).
On Python 3.11 and 3.12 the ``ssl`` module has no PSK API, so this module
talks to the very same OpenSSL library that ``_ssl`` is linked to, through
``ctypes``:

1. *Which library.*  The ``libssl`` shared object that is mapped into this
   process (``/proc/self/maps``) after ``_ssl`` was imported; elsewhere
   ``ctypes.util.find_library("ssl")``.  Its ``OpenSSL_version_num()`` must
   equal ``ssl.OPENSSL_VERSION_NUMBER``.
2. *Which object.*  CPython's ``PySSLContext`` struct starts with
   ``PyObject_HEAD`` followed by the ``SSL_CTX *``; ``PySSLSocket`` (the
   ``_ssl._SSLSocket`` behind an ``ssl.SSLObject``) has ``PyObject_HEAD``, a
   ``PyObject *`` and then the ``SSL *``.
3. *The guard.*  Nothing read that way is trusted until it was checked: once
   per process a probe context is given distinctive option bits and every
   verify mode, and OpenSSL's own ``SSL_CTX_get_options`` /
   ``SSL_CTX_get_verify_mode`` must report exactly what Python set.  Every
   context we bridge is checked again (options toggled and read back, verify
   mode compared), and an ``SSL *`` is only used when ``SSL_get_SSL_CTX`` of
   it is the (checked) ``SSL_CTX *`` of its own context.  Any mismatch raises
   :class:`~twinsock.errors.SslError`; we never guess.

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
import os
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from twinsock.errors import SslError

__all__ = [
    "NATIVE_PSK",
    "ClientPskFunc",
    "PskRecord",
    "ServerPskFunc",
    "install_client_psk",
    "install_server_psk",
    "recording",
    "verified_chain_der",
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

_CLIENT_CB = ctypes.CFUNCTYPE(
    ctypes.c_uint,
    ctypes.c_void_p,  # SSL *
    ctypes.c_char_p,  # const char *hint
    ctypes.c_void_p,  # char *identity
    ctypes.c_uint,  # max_identity_len
    ctypes.c_void_p,  # unsigned char *psk
    ctypes.c_uint,  # max_psk_len
)
_SERVER_CB = ctypes.CFUNCTYPE(
    ctypes.c_uint,
    ctypes.c_void_p,  # SSL *
    ctypes.c_char_p,  # const char *identity
    ctypes.c_void_p,  # unsigned char *psk
    ctypes.c_uint,  # max_psk_len
)


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

    bridge = _get_bridge()
    ctx_ptr = bridge.ctx_pointer(sslctx)
    callback = _CLIENT_CB(bridged)
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
            bridge = _get_bridge()
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

    bridge = _get_bridge()
    ctx_ptr = bridge.ctx_pointer(sslctx)
    callback = _SERVER_CB(bridged)
    _keep_alive(sslctx, callback)
    bridge.lib.SSL_CTX_set_psk_server_callback(ctx_ptr, callback)
    _prefer_sha256_suites(sslctx, bridge, ctx_ptr)
    if hint is not None and bridge.lib.SSL_CTX_use_psk_identity_hint(ctx_ptr, hint.encode()) != 1:
        raise SslError(f"OpenSSL refused the PSK identity hint {hint!r}")


def _prefer_sha256_suites(sslctx: ssl.SSLContext, bridge: _Bridge, ctx_ptr: int) -> None:
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


# --------------------------------------------------------------------------
# The verified chain
# --------------------------------------------------------------------------


def verified_chain_der(sslobj: ssl.SSLObject) -> list[bytes] | None:
    """The verified peer chain (leaf first) as DER, or ``None`` if unavailable.

    Python 3.13+: ``SSLObject.get_verified_chain()``, which already returns
    DER ``bytes`` (``_ssl``'s own method returns ``Certificate`` objects; both
    are accepted).  Older: the bridge's ``SSL_get0_verified_chain``.  ``None``
    means the bridge refused (the caller then falls back to the leaf
    certificate alone).
    """
    native = getattr(sslobj, "get_verified_chain", None)
    if native is not None:
        der_encoding = getattr(ssl, "ENCODING_DER", 2)  # _ssl.ENCODING_DER (3.13+)
        return [
            cert if isinstance(cert, bytes) else bytes(cert.public_bytes(der_encoding))
            for cert in native()
        ]
    try:
        bridge = _get_bridge()
        return bridge.verified_chain(sslobj)
    except SslError:
        return None


# --------------------------------------------------------------------------
# The ctypes bridge (Python 3.11 / 3.12)
# --------------------------------------------------------------------------

_PYOBJECT_HEAD = object.__basicsize__  # ob_refcnt + ob_type (16 on 64-bit builds)
_CTX_OFFSET = _PYOBJECT_HEAD  # PySSLContext: PyObject_HEAD; SSL_CTX *ctx
_SSL_OFFSET = _PYOBJECT_HEAD + ctypes.sizeof(ctypes.c_void_p)  # PySSLSocket: ..., Socket, ssl
_SSL_VERIFY_PEER = 0x01
_SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x02


class _Bridge:
    """Typed entry points into the ``_ssl`` module's own libssl, checked."""

    def __init__(self) -> None:
        self.lib = self._load()
        self._declare()
        self._probe()

    # -- finding and declaring the library --------------------------------

    @staticmethod
    def _candidates() -> list[str]:
        import _ssl  # noqa: F401  (make sure the library is mapped)

        paths: list[str] = []
        with (
            contextlib.suppress(OSError),
            open("/proc/self/maps", encoding="utf-8", errors="replace") as maps,
        ):
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if os.path.basename(path).startswith("libssl.") and path not in paths:
                    paths.append(path)
        if not paths:
            found = ctypes.util.find_library("ssl")
            if found:
                paths.append(found)
        return paths

    def _load(self) -> ctypes.CDLL:
        candidates = self._candidates()
        seen = []
        for path in candidates:
            try:
                lib = ctypes.CDLL(path)
                lib.OpenSSL_version_num.restype = ctypes.c_ulong
                lib.OpenSSL_version_num.argtypes = []
                number = int(lib.OpenSSL_version_num())
            except (OSError, AttributeError) as exc:
                seen.append(f"{path}: {exc}")
                continue
            if number == ssl.OPENSSL_VERSION_NUMBER:
                return lib
            seen.append(f"{path}: version {number:#x}")
        raise SslError(
            "PSK bridge: cannot find the libssl used by the ssl module "
            f"({ssl.OPENSSL_VERSION}, {ssl.OPENSSL_VERSION_NUMBER:#x}); tried: "
            + ("; ".join(seen) or "nothing found")
        )

    def _declare(self) -> None:
        lib = self.lib
        vp, cint = ctypes.c_void_p, ctypes.c_int
        options = ctypes.c_uint64 if ssl.OPENSSL_VERSION_INFO >= (3,) else ctypes.c_ulong
        signatures: dict[str, tuple[Any, list[Any]]] = {
            "SSL_CTX_get_options": (options, [vp]),
            "SSL_CTX_get_verify_mode": (cint, [vp]),
            "SSL_CTX_set_psk_client_callback": (None, [vp, _CLIENT_CB]),
            "SSL_CTX_set_psk_server_callback": (None, [vp, _SERVER_CB]),
            "SSL_CTX_use_psk_identity_hint": (cint, [vp, ctypes.c_char_p]),
            "SSL_CTX_set_ciphersuites": (cint, [vp, ctypes.c_char_p]),
            "SSL_CTX_set_session_id_context": (cint, [vp, ctypes.c_char_p, ctypes.c_uint]),
            "SSL_get_SSL_CTX": (vp, [vp]),
            "SSL_is_server": (cint, [vp]),
            "SSL_get0_verified_chain": (vp, [vp]),
            "OPENSSL_sk_num": (cint, [vp]),
            "OPENSSL_sk_value": (vp, [vp, cint]),
            "i2d_X509": (cint, [vp, ctypes.POINTER(ctypes.c_char_p)]),
        }
        try:
            for name, (restype, argtypes) in signatures.items():
                function = getattr(lib, name)
                function.restype = restype
                function.argtypes = argtypes
        except AttributeError as exc:
            raise SslError(f"PSK bridge: libssl lacks a needed function: {exc}") from exc

    # -- the guard ---------------------------------------------------------

    def _read_pointer(self, obj: object, offset: int, base: type) -> int:
        pointer_size = ctypes.sizeof(ctypes.c_void_p)
        if not isinstance(obj, base) or base.__basicsize__ < offset + pointer_size:
            raise SslError(f"PSK bridge: unexpected layout of {type(obj).__name__}")
        value = ctypes.c_void_p.from_address(id(obj) + offset).value
        if not value:
            raise SslError(f"PSK bridge: {type(obj).__name__} holds no OpenSSL object")
        return value

    def _raw_ctx_pointer(self, sslctx: ssl.SSLContext) -> int:
        import _ssl

        return self._read_pointer(sslctx, _CTX_OFFSET, _ssl._SSLContext)

    def _check_ctx(self, sslctx: ssl.SSLContext, ptr: int, *, toggle: bool = True) -> None:
        """OpenSSL must report what Python set (with ``toggle``: a flipped option bit too).

        Only toggle on a context no other thread uses yet: connections created
        meanwhile would copy the flipped bit.
        """
        lib = self.lib
        expected_mode = {
            ssl.CERT_NONE: 0,
            ssl.CERT_OPTIONAL: _SSL_VERIFY_PEER,
            ssl.CERT_REQUIRED: _SSL_VERIFY_PEER | _SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
        }[sslctx.verify_mode]
        original = sslctx.options
        try:
            for options in (original ^ ssl.OP_NO_TICKET, original) if toggle else ():
                sslctx.options = options
                if int(lib.SSL_CTX_get_options(ptr)) != int(sslctx.options):
                    raise SslError("PSK bridge check failed: SSL_CTX options disagree with Python")
        finally:
            if toggle:
                sslctx.options = original
        if int(lib.SSL_CTX_get_options(ptr)) != int(original):
            raise SslError("PSK bridge check failed: SSL_CTX options disagree with Python")
        if lib.SSL_CTX_get_verify_mode(ptr) != expected_mode:
            raise SslError("PSK bridge check failed: SSL_CTX verify mode disagrees with Python")

    def _probe(self) -> None:
        """Once per process: distinctive values on a throwaway context."""
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ptr = self._raw_ctx_pointer(probe)
        distinctive = ssl.OP_NO_TICKET | ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
        for extra in (distinctive, 0):
            probe.options = (probe.options & ~distinctive) | extra
            for mode in (ssl.CERT_REQUIRED, ssl.CERT_OPTIONAL, ssl.CERT_NONE):
                probe.verify_mode = mode
                self._check_ctx(probe, ptr)

    # -- public entry points -------------------------------------------------

    def ctx_pointer(self, sslctx: ssl.SSLContext, *, toggle: bool = True) -> int:
        """The checked ``SSL_CTX *`` of ``sslctx``."""
        ptr = self._raw_ctx_pointer(sslctx)
        self._check_ctx(sslctx, ptr, toggle=toggle)
        return ptr

    def ssl_pointer(self, sslobj: ssl.SSLObject) -> int:
        import _ssl

        inner = getattr(sslobj, "_sslobj", None)
        ptr = self._read_pointer(inner, _SSL_OFFSET, _ssl._SSLSocket)  # type: ignore[attr-defined]
        # The context is shared by live connections: check it without toggling.
        if self.lib.SSL_get_SSL_CTX(ptr) != self.ctx_pointer(sslobj.context, toggle=False):
            raise SslError("PSK bridge check failed: SSL object does not belong to its context")
        if bool(self.lib.SSL_is_server(ptr)) != sslobj.server_side:
            raise SslError("PSK bridge check failed: SSL object has the wrong role")
        return ptr

    def verified_chain(self, sslobj: ssl.SSLObject) -> list[bytes]:
        lib = self.lib
        stack = lib.SSL_get0_verified_chain(self.ssl_pointer(sslobj))
        if not stack:
            return []
        chain = []
        for index in range(lib.OPENSSL_sk_num(stack)):
            x509 = lib.OPENSSL_sk_value(stack, index)
            size = lib.i2d_X509(x509, None)
            if size <= 0:
                raise SslError("PSK bridge: i2d_X509 failed")
            buffer = ctypes.create_string_buffer(size)
            cursor = ctypes.cast(buffer, ctypes.c_char_p)
            if lib.i2d_X509(x509, ctypes.byref(cursor)) != size:
                raise SslError("PSK bridge: i2d_X509 changed its mind")
            chain.append(buffer.raw)
        return chain


_bridge_lock = threading.Lock()
_bridge: _Bridge | None = None
_bridge_error: SslError | None = None


def _get_bridge() -> _Bridge:
    global _bridge, _bridge_error
    with _bridge_lock:
        if _bridge is None and _bridge_error is None:
            try:
                _bridge = _Bridge()
            except SslError as exc:
                _bridge_error = exc
        if _bridge is None:
            assert _bridge_error is not None
            raise SslError(f"{_bridge_error} (Python {sys.version.split()[0]})")
        return _bridge
