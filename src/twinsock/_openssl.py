"""The small OpenSSL bridge: ``SSL_CTX *`` and ``SSL *`` of ``ssl`` objects, guarded.

How this works
--------------
On Python 3.11 and 3.12 the ``ssl`` module has no PSK API and no verified
chain, so this module talks to the very same OpenSSL library that ``_ssl`` is
linked to, through ``ctypes`` (:mod:`twinsock._psk` installs its callbacks
with it):

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
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import ssl
import sys
import threading
from typing import Any

from twinsock.errors import SslError

__all__ = ["CLIENT_CB", "SERVER_CB", "Bridge", "get_bridge", "verified_chain_der"]

#: The C signatures of OpenSSL's PSK client and server callbacks.
CLIENT_CB = ctypes.CFUNCTYPE(
    ctypes.c_uint,
    ctypes.c_void_p,  # SSL *
    ctypes.c_char_p,  # const char *hint
    ctypes.c_void_p,  # char *identity
    ctypes.c_uint,  # max_identity_len
    ctypes.c_void_p,  # unsigned char *psk
    ctypes.c_uint,  # max_psk_len
)
SERVER_CB = ctypes.CFUNCTYPE(
    ctypes.c_uint,
    ctypes.c_void_p,  # SSL *
    ctypes.c_char_p,  # const char *identity
    ctypes.c_void_p,  # unsigned char *psk
    ctypes.c_uint,  # max_psk_len
)

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
        bridge = get_bridge()
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


class Bridge:
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
            "SSL_CTX_set_psk_client_callback": (None, [vp, CLIENT_CB]),
            "SSL_CTX_set_psk_server_callback": (None, [vp, SERVER_CB]),
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
_bridge: Bridge | None = None
_bridge_error: SslError | None = None


def get_bridge() -> Bridge:
    global _bridge, _bridge_error
    with _bridge_lock:
        if _bridge is None and _bridge_error is None:
            try:
                _bridge = Bridge()
            except SslError as exc:
                _bridge_error = exc
        if _bridge is None:
            assert _bridge_error is not None
            raise SslError(f"{_bridge_error} (Python {sys.version.split()[0]})")
        return _bridge
