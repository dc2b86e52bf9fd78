"""What the blocking and the async socket share: everything that never waits.

How this works.  ``SocketBase`` owns the operating-system socket, the read
buffer and (for TLS) the engine.  It implements every method that completes
at once (binding, options, addresses, state) plus the checks and address
resolution both shells need before they wait.  ``net.Socket`` and
``asyncnet.AsyncSocket`` subclass it and add only the methods that can wait,
each a thin loop around the shared core.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, Any

from twinsock._core.buffer import ReadBuffer
from twinsock._core.deadline import check_timeout
from twinsock._core.targets import (
    any_address,
    check_family,
    format_endpoint,
    numeric_targets,
    reject_malformed_ip,
    resolve_targets,
    sockaddr_text,
    unix_path,
)
from twinsock._sockopts import SockOpt, option_key
from twinsock.addresses import check_port
from twinsock.errors import AddressError, SocketClosedError, SslError
from twinsock.nativesockets import SOMAXCONN, Domain, Protocol, SockType

if TYPE_CHECKING:
    from twinsock._core.tls_engine import TlsEngine
    from twinsock.tls import Certificate, SslContext


__all__ = ["SocketBase", "prepare_wrap"]


class SocketBase:
    """State and non-waiting methods shared by ``Socket`` and ``AsyncSocket``."""

    # Slots keep an idle connection small (servers hold thousands); subclasses
    # that add attributes without slots (``simple.TcpConn``) get a __dict__.
    __slots__ = (
        "__weakref__",
        "_buf",
        "_buffered",
        "_bytes_sent",
        "_default_timeout",
        "_domain",
        "_protocol",
        "_sock",
        "_sock_type",
        "_tls",
        "_tls_context",
    )

    _sock: socket.socket | None
    _buf: ReadBuffer
    _tls: TlsEngine | None
    _tls_context: SslContext | None

    def _init_base(self, sock: socket.socket, buffered: bool) -> None:
        self._sock = sock
        self._buf = ReadBuffer()
        self._buffered = bool(buffered)
        self._domain = _to_enum(Domain, sock.family)
        self._sock_type = _to_enum(SockType, sock.type)
        self._protocol = _to_enum(Protocol, sock.proto)
        self._tls = None
        self._tls_context = None
        self._default_timeout: float | None = None
        self._bytes_sent = 0

    @staticmethod
    def _new_native(domain: int, sock_type: int, protocol: int, inheritable: bool) -> socket.socket:
        if domain == socket.AF_UNIX and protocol in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
            protocol = 0  # the TCP default means "the stream protocol" for Unix sockets
        sock = socket.socket(int(domain), int(sock_type), int(protocol))
        if inheritable:
            sock.set_inheritable(True)
        return sock

    @staticmethod
    def _adopt_native(sock: socket.socket | int) -> socket.socket:
        if isinstance(sock, bool) or not isinstance(sock, (socket.socket, int)):
            raise TypeError(f"from_native takes a socket.socket or a file descriptor, not {sock!r}")
        if isinstance(sock, int):
            sock = socket.socket(fileno=sock)
        if sock.fileno() < 0:
            raise SocketClosedError("from_native")
        return sock

    # -- state ------------------------------------------------------------------

    def _open(self, operation: str) -> socket.socket:
        sock = self._sock
        if sock is None:
            raise SocketClosedError(operation)
        return sock

    @property
    def domain(self) -> Domain | int:
        """The address family (``Domain.AF_INET``, ...)."""
        return self._domain  # type: ignore[no-any-return]

    @property
    def sock_type(self) -> SockType | int:
        """``SockType.SOCK_STREAM``, ``SOCK_DGRAM``, ..."""
        return self._sock_type  # type: ignore[no-any-return]

    @property
    def protocol(self) -> Protocol | int:
        """The protocol number (``Protocol.IPPROTO_TCP``, ...)."""
        return self._protocol  # type: ignore[no-any-return]

    @property
    def buffered(self) -> bool:
        """Whether reads go through the read-ahead buffer."""
        return self._buffered

    def is_closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._sock is None

    def is_ssl(self) -> bool:
        """True if the socket is wrapped in TLS."""
        return self._tls is not None or self._tls_context is not None

    def has_data_buffered(self) -> bool:
        """True exactly when a read could return buffered bytes without waiting."""
        return bool(self._buf)

    @property
    def default_timeout(self) -> float | None:
        """What ``timeout=None`` means for this socket's calls: seconds, or ``None``
        (the default) to wait forever.  Setting it checks the value like a
        ``timeout`` argument: ``math.inf`` reads back as ``None``, and values
        beyond ``MAX_TIMEOUT`` (about 24.8 days) are clamped.
        """
        return self._default_timeout

    @default_timeout.setter
    def default_timeout(self, value: float | None) -> None:
        self._default_timeout = check_timeout(value)

    @property
    def bytes_received(self) -> int:
        """Application bytes received so far (plaintext on TLS; peeked bytes once)."""
        return self._buf.received

    @property
    def bytes_sent(self) -> int:
        """Application bytes handed to the OS (or the transport) so far (plaintext on TLS)."""
        return self._bytes_sent

    def _timeout(self, timeout: float | None) -> float | None:
        """A call's ``timeout`` argument as seconds, or ``None`` for no limit.

        Called first by every method that may wait.  ``None`` is the socket's
        ``default_timeout`` (checked when it was set); anything else is checked
        now (``check_timeout``), before the call looks at the buffer.
        """
        if timeout is None:
            return self._default_timeout
        return check_timeout(timeout)

    def get_fd(self) -> int:
        """The file descriptor (-1 once closed)."""
        return -1 if self._sock is None else self._sock.fileno()

    def fileno(self) -> int:
        """The file descriptor, for ``select`` and friends (-1 once closed)."""
        return self.get_fd()

    def _where(self) -> str:
        """``local -> peer`` for error messages; never raises.

        A Unix socket without a name at either end (a ``socketpair``) reads
        ``unix fd 7 (unnamed)``: its descriptor is all that tells it apart.
        """
        sock = self._sock
        if sock is None:
            return "(closed)"
        try:
            name: Any = sock.getsockname()
        except OSError:
            name = None
        try:
            peer: Any = sock.getpeername()
        except OSError:
            peer = None
        if sock.family == socket.AF_UNIX and not name and not peer:
            return f"unix fd {sock.fileno()} (unnamed)"
        local = "?" if name is None else format_endpoint(name)
        return local if peer is None else f"{local} -> {format_endpoint(peer)}"

    # -- binding ----------------------------------------------------------------

    def bind_addr(self, port: int = 0, address: str = "") -> None:
        """Bind to ``address:port``; ``""`` binds the any-address of the socket's family."""
        sock = self._open("bind_addr")
        port = check_port(port)
        if not isinstance(address, str):
            raise TypeError(f"address must be a str, not {type(address).__name__}")
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError("bind_addr needs an AF_INET or AF_INET6 socket; use bind_unix")
        if not address:
            address = any_address(sock.family)
        check_family(address, sock.family)
        targets = numeric_targets(address, port, sock.family, sock.type)
        if not targets:
            reject_malformed_ip(address)
            infos = socket.getaddrinfo(address, port, sock.family, sock.type, 0, socket.AI_PASSIVE)
            targets = resolve_targets(infos, sock.family)
            if not targets:
                raise AddressError(f"{address!r} has no address of the socket's family")
        sock.bind(targets[0][1])

    def bind_unix(self, path: str) -> None:
        """Bind an AF_UNIX socket; a path starting with ``"\\0"`` is an abstract name."""
        sock = self._open("bind_unix")
        sock.bind(unix_path(sock, path))

    def listen(self, backlog: int = SOMAXCONN) -> None:
        """Accept connections, with at most ``backlog`` waiting to be accepted."""
        sock = self._open("listen")
        if isinstance(backlog, bool) or not isinstance(backlog, int):
            raise TypeError(f"backlog must be an int, not {backlog!r}")
        sock.listen(max(0, backlog))
        sock.setblocking(False)  # accept tries first and waits on BlockingIOError

    # -- options ------------------------------------------------------------------

    def set_sock_opt(self, opt: SockOpt, value: bool, level: int | None = None) -> None:
        """Set a boolean option; ``level=None`` picks the right level."""
        sock = self._open("set_sock_opt")
        lvl, name = option_key(opt, level)
        sock.setsockopt(lvl, name, 1 if value else 0)

    def get_sock_opt(self, opt: SockOpt, level: int | None = None) -> bool:
        """Read a boolean option."""
        sock = self._open("get_sock_opt")
        lvl, name = option_key(opt, level)
        return sock.getsockopt(lvl, name) != 0

    def set_nagle(self, enabled: bool) -> None:
        """Nagle's algorithm on (TCP_NODELAY = 0) or off (TCP_NODELAY = 1)."""
        sock = self._open("set_nagle")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0 if enabled else 1)

    def set_delay_ack(self, enabled: bool) -> None:
        """Delayed ACKs on (TCP_QUICKACK = 0) or off (TCP_QUICKACK = 1, Linux)."""
        sock = self._open("set_delay_ack")
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is None:
            raise OSError(errno.ENOPROTOOPT, "TCP_QUICKACK is not available on this platform")
        sock.setsockopt(socket.IPPROTO_TCP, quickack, 0 if enabled else 1)

    # -- addresses ----------------------------------------------------------------

    def get_local_addr(self) -> tuple[str, int]:
        """The local address and port (Unix sockets: the path and 0)."""
        return sockaddr_text(self._open("get_local_addr").getsockname())

    def get_peer_addr(self) -> tuple[str, int]:
        """The peer's address and port (IPv6 peers give IPv6 text)."""
        return sockaddr_text(self._open("get_peer_addr").getpeername())

    # -- TLS queries ----------------------------------------------------------------

    def get_peer_certificates(self) -> list[Certificate]:
        """The peer's verified chain, leaf first; empty without TLS or verification."""
        self._open("get_peer_certificates")
        return [] if self._tls is None else self._tls.peer_certificates()

    def get_psk_identity(self) -> str | None:
        """The PSK identity the peer used (server side), or ``None``."""
        self._open("get_psk_identity")
        return None if self._tls is None else self._tls.psk_identity()

    # -- helpers for the shells ----------------------------------------------------------

    def _check_send_to(self, sock: socket.socket) -> None:
        if self.is_ssl():
            raise SslError("send_to is not available on a TLS socket")
        if sock.type != socket.SOCK_DGRAM:
            raise OSError(
                errno.EOPNOTSUPP,
                f"send_to needs a datagram socket (SOCK_DGRAM), not {self._sock_type!r}",
            )

    def _close_native(self) -> None:
        sock, self._sock = self._sock, None
        self._buf.clear()
        if sock is not None:
            sock.close()


def prepare_wrap(
    ctx: SslContext, sock: SocketBase, handshake: Any = None, hostname: str | None = None
) -> bool:
    """Check ``wrap_*`` arguments and attach ``ctx``; return True for the server side.

    ``handshake`` is ``None`` for ``wrap_socket`` (the handshake comes later).
    Nothing is attached when a check fails, so the socket stays as it was.
    """
    from twinsock._core.tls_engine import check_handshake_args
    from twinsock.tls import HandshakeType, SslContext

    if not isinstance(ctx, SslContext):
        raise TypeError(f"ctx must be an SslContext from new_context(), not {ctx!r}")
    if not isinstance(sock, SocketBase):
        raise TypeError(f"sock must be a twinsock socket, not {sock!r}")
    native = sock._open("wrap_socket")
    if native.type != socket.SOCK_STREAM:
        raise SslError("TLS needs a stream socket (SOCK_STREAM)")
    if sock._tls is not None:
        raise SslError("the socket is already wrapped in TLS")
    if handshake is not None and not isinstance(handshake, HandshakeType):
        raise TypeError(f"handshake must be a HandshakeType, not {handshake!r}")
    server_side = handshake is HandshakeType.SERVER
    if handshake is not None:
        check_handshake_args(ctx, server_side=server_side, hostname=hostname)
    sock._tls_context = ctx
    return server_side


def _to_enum(kind: Any, value: int) -> Any:  # Domain | SockType | Protocol | int
    try:
        return kind(value)
    except ValueError:
        return int(value)
