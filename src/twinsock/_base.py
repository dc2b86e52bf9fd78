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
        """Tell whether the socket was closed.

        Returns:
            ``True`` once ``close()`` was called.
        """
        return self._sock is None

    def is_ssl(self) -> bool:
        """Tell whether the socket speaks TLS.

        Returns:
            ``True`` once ``wrap_socket`` or ``wrap_connected_socket`` made it a
            TLS socket (also before its handshake), or when it was accepted
            from a TLS listener.
        """
        return self._tls is not None or self._tls_context is not None

    def has_data_buffered(self) -> bool:
        """Tell whether received bytes wait in the read buffer.

        Returns:
            ``True`` exactly when a read could return buffered bytes without
            waiting.
        """
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
        """The socket's file descriptor.

        Returns:
            The descriptor number, or -1 once the socket is closed.
        """
        return -1 if self._sock is None else self._sock.fileno()

    def fileno(self) -> int:
        """The file descriptor, for ``select`` and friends (as ``get_fd``).

        Returns:
            The descriptor number, or -1 once the socket is closed.
        """
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
        """Bind the socket to ``address:port``.

        Args:
            port: the port, 0..65535; 0 lets the OS pick a free one
                (``get_local_addr`` tells which).
            address: a numeric address or a host name of the socket's family;
                ``""`` binds the family's any-address (``0.0.0.0`` or ``::``).

        Raises:
            AddressError: ``port`` out of range, a numeric ``address`` of the
                other family, text that can only be a malformed IP address, or
                a name with no address of the socket's family.
            TypeError: ``address`` is not a ``str``.
            ValueError: not an AF_INET or AF_INET6 socket (use ``bind_unix``).
            OSError: the address is in use (``EADDRINUSE``) or not local
                (``EADDRNOTAVAIL``), the socket is bound already (``EINVAL``),
                or a name does not resolve (``socket.gaierror``).
            SocketClosedError: the socket is closed.
        """
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
        """Bind an AF_UNIX socket to ``path``.

        Args:
            path: the file system path to create (``str``, ``bytes`` or
                path-like); one that starts with ``"\\0"`` is a Linux abstract
                name, which creates no file.

        Raises:
            ValueError: not an AF_UNIX socket, or an empty ``path``.
            TypeError: ``path`` is not a ``str``, ``bytes`` or path-like.
            OSError: the path exists already (``EADDRINUSE``), its directory
                does not (``ENOENT``), or the socket is bound already.
            SocketClosedError: the socket is closed.
        """
        sock = self._open("bind_unix")
        sock.bind(unix_path(sock, path))

    def listen(self, backlog: int = SOMAXCONN) -> None:
        """Make the socket a listener that ``accept`` takes clients from.

        Args:
            backlog: how many connections may wait to be accepted (a negative
                number counts as 0; the OS caps it at ``SOMAXCONN``).

        Raises:
            TypeError: ``backlog`` is not an int.
            OSError: the socket type cannot listen (``EOPNOTSUPP``: a datagram
                socket).
            SocketClosedError: the socket is closed.
        """
        sock = self._open("listen")
        if isinstance(backlog, bool) or not isinstance(backlog, int):
            raise TypeError(f"backlog must be an int, not {backlog!r}")
        sock.listen(max(0, backlog))
        sock.setblocking(False)  # accept tries first and waits on BlockingIOError

    # -- options ------------------------------------------------------------------

    def set_sock_opt(self, opt: SockOpt, value: bool, level: int | None = None) -> None:
        """Set a boolean socket option.

        Args:
            opt: the option (``SockOpt.REUSE_ADDR``, ``SockOpt.NO_DELAY``, ...).
            value: on (``True``) or off.
            level: the option's level; ``None`` picks the right one
                (``IPPROTO_TCP`` for ``NO_DELAY``, ``SOL_SOCKET`` for the rest).

        Raises:
            TypeError: ``opt`` is not a ``SockOpt``.
            OSError: the platform lacks the option, or the OS refused it
                (``ENOPROTOOPT``: ``NO_DELAY`` on a Unix socket, ...).
            SocketClosedError: the socket is closed.
        """
        sock = self._open("set_sock_opt")
        lvl, name = option_key(opt, level)
        sock.setsockopt(lvl, name, 1 if value else 0)

    def get_sock_opt(self, opt: SockOpt, level: int | None = None) -> bool:
        """Read a boolean socket option.

        Args:
            opt: the option (``SockOpt.REUSE_ADDR``, ``SockOpt.ACCEPT_CONN``, ...).
            level: the option's level; ``None`` picks the right one.

        Returns:
            Whether the option is on.

        Raises:
            TypeError: ``opt`` is not a ``SockOpt``.
            OSError: the platform lacks the option, or the OS refused it.
            SocketClosedError: the socket is closed.
        """
        sock = self._open("get_sock_opt")
        lvl, name = option_key(opt, level)
        return sock.getsockopt(lvl, name) != 0

    def set_nagle(self, enabled: bool) -> None:
        """Turn Nagle's algorithm on or off (Chapel's ``setNagle``).

        Args:
            enabled: ``True`` lets small writes wait to be coalesced
                (``TCP_NODELAY`` = 0); ``False`` sends them at once
                (``TCP_NODELAY`` = 1).

        Raises:
            OSError: not a TCP socket (``EOPNOTSUPP``, ``ENOPROTOOPT``).
            SocketClosedError: the socket is closed.
        """
        sock = self._open("set_nagle")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0 if enabled else 1)

    def set_delay_ack(self, enabled: bool) -> None:
        """Turn delayed ACKs on or off (Chapel's ``setDelayAck``; Linux).

        Args:
            enabled: ``True`` lets the kernel delay ACKs (``TCP_QUICKACK`` = 0);
                ``False`` ACKs at once (``TCP_QUICKACK`` = 1, which the kernel
                may reset later).

        Raises:
            OSError: the platform has no ``TCP_QUICKACK`` (``ENOPROTOOPT``), or
                not a TCP socket.
            SocketClosedError: the socket is closed.
        """
        sock = self._open("set_delay_ack")
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is None:
            raise OSError(errno.ENOPROTOOPT, "TCP_QUICKACK is not available on this platform")
        sock.setsockopt(socket.IPPROTO_TCP, quickack, 0 if enabled else 1)

    # -- addresses ----------------------------------------------------------------

    def get_local_addr(self) -> tuple[str, int]:
        """The address the socket is bound to.

        Returns:
            ``(address, port)``, the address text and the port (``0.0.0.0`` and
            0 before any bind); a Unix socket gives its path (``""`` when
            unnamed) and 0.

        Raises:
            SocketClosedError: the socket is closed.
        """
        return sockaddr_text(self._open("get_local_addr").getsockname())

    def get_peer_addr(self) -> tuple[str, int]:
        """The address of the peer the socket is connected to.

        Returns:
            ``(address, port)``, the peer's address text (IPv6 text for an
            IPv6 peer) and port; a Unix socket gives the peer's path and 0.

        Raises:
            OSError: the socket is not connected (``ENOTCONN``).
            SocketClosedError: the socket is closed.
        """
        return sockaddr_text(self._open("get_peer_addr").getpeername())

    # -- TLS queries ----------------------------------------------------------------

    def get_peer_certificates(self) -> list[Certificate]:
        """The certificate chain the peer presented and the handshake verified.

        Returns:
            The chain as ``Certificate`` values, leaf first and root last; an
            empty list when the socket is not TLS or the peer was not verified
            (``VerifyMode.NONE``, a server that asked for no client
            certificate, PSK).

        Raises:
            SocketClosedError: the socket is closed.
        """
        self._open("get_peer_certificates")
        return [] if self._tls is None else self._tls.peer_certificates()

    def get_psk_identity(self) -> str | None:
        """The PSK identity the peer used (server side; TLS 1.2 and 1.3).

        Returns:
            The identity, or ``None`` without PSK (or not TLS).

        Raises:
            SocketClosedError: the socket is closed.
        """
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
