"""Role-typed sockets (Chapel's ``Socket`` module): listeners, connections, UDP.

How this works.  Everything here is a thin view over :class:`twinsock.net.Socket`;
there is no second I/O implementation.  :func:`listen` makes a ``Socket``,
binds and listens, and wraps it in a :class:`TcpListener` whose ``accept``
is ``Socket.accept``.  :func:`connect` is :func:`twinsock.net.dial`, which
already tries every resolved address under one deadline (Happy Eyeballs);
the host form only adds the family filter and the service-name lookup.
``net`` builds plain ``Socket`` objects, so the freshly made connection is
re-classed as a :class:`TcpConn` (a ``Socket`` subclass that adds no state
of its own, only the ``addr`` and ``socket_fd`` views), which keeps its read
buffer and TLS state as they are.  :class:`UdpSocket` wraps a datagram
``Socket`` and reads with ``Socket.recv_from``, one datagram per call (it
lives in ``twinsock._simple_udp``, so that this module stays short).

``SocketAddress`` (Chapel's ``ipAddr``) and ``IPFamily`` are re-exported from
:mod:`twinsock.addresses`, so ``from twinsock.simple import ...`` is enough.

The module functions (:func:`bind`, :func:`set_sock_opt`, :func:`get_sock_opt`,
:func:`get_peer_name`, :func:`get_sock_name`) take any twinsock socket:
``TcpListener``, ``TcpConn``, ``UdpSocket``, ``net.Socket`` or
``asyncnet.AsyncSocket``.

Chapel's ``struct_timeval`` timeouts are ``float`` seconds (``None``: wait
forever), and its ``SystemError`` is the builtin ``OSError`` family, plus
:class:`~twinsock.errors.NetTimeout` for expired deadlines and
:class:`~twinsock.errors.AddressError` for addresses of the wrong family.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, TypeAlias, overload

from twinsock import net
from twinsock._base import SocketBase
from twinsock._blocking.dial import dial_as
from twinsock._core.deadline import check_timeout
from twinsock._simple_udp import SocketRole, UdpSocket, check_address, check_family
from twinsock.addresses import IPFamily, SocketAddress, check_port, is_ip_address
from twinsock.errors import AddressError
from twinsock.nativesockets import SOMAXCONN, Domain, Protocol, SockType

__all__ = [
    "BACKLOG_DEFAULT",
    "AnySocket",
    "IPFamily",
    "SocketAddress",
    "TcpConn",
    "TcpListener",
    "UdpSocket",
    "bind",
    "connect",
    "get_peer_name",
    "get_sock_name",
    "get_sock_opt",
    "listen",
    "set_sock_opt",
]

#: The default ``backlog`` of :func:`listen`: ``min(SOMAXCONN, 128)``.
BACKLOG_DEFAULT: int = min(SOMAXCONN, 128)

UdpSocket.__module__ = __name__  # it lives in twinsock._simple_udp; documented as ours


class TcpConn(net.Socket):
    """A connected TCP socket: every :class:`twinsock.net.Socket` method, plus
    the peer's address (``addr``) and the file descriptor (``socket_fd``).

    Made by :func:`connect` and :meth:`TcpListener.accept`.
    """

    # No state of its own: ``_as_conn`` re-classes the Socket that ``net`` made,
    # which needs the same object layout (``Socket`` may use __slots__).
    __slots__ = ()

    @property
    def addr(self) -> SocketAddress:
        """The remote address (Chapel's ``tcpConn.addr``).

        Raises:
            SocketClosedError: the connection is closed.
            OSError: the socket is not connected (``ENOTCONN``, also after a reset).
        """
        return SocketAddress.from_sockaddr(self._open("addr").getpeername())

    @property
    def socket_fd(self) -> int:
        """The file descriptor (-1 once closed)."""
        return self.get_fd()

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else self._where()
        return f"<twinsock.simple.TcpConn {state}>"


def _as_conn(sock: net.Socket) -> TcpConn:
    """Turn a connection ``net`` just made into a ``TcpConn``, state and all.

    ``net.dial`` and ``Socket.accept`` construct plain ``Socket`` objects;
    ``TcpConn`` adds no state and has the same layout (``__slots__ = ()``), so
    re-classing the new object is exact (its buffer, TLS engine and native
    socket stay as they are) and costs nothing.
    """
    sock.__class__ = TcpConn
    assert isinstance(sock, TcpConn)
    return sock


class TcpListener(SocketRole):
    """A TCP socket bound and listening (Chapel's ``tcpListener``); made by :func:`listen`.

    A context manager: ``with listen(address) as server: ...`` closes it.

    Args:
        sock: the listening :class:`twinsock.net.Socket` to wrap (:func:`listen`
            makes one).

    Raises:
        TypeError: ``sock`` is not a :class:`twinsock.net.Socket`.
    """

    def __init__(self, sock: net.Socket) -> None:
        if not isinstance(sock, net.Socket):
            raise TypeError(f"TcpListener wraps a twinsock.net.Socket, not {sock!r}")
        self._sock = sock

    def __repr__(self) -> str:
        state = "closed" if self._sock.is_closed() else self._sock._where()
        return f"<twinsock.simple.TcpListener {state}>"

    @property
    def net_socket(self) -> net.Socket:
        """The underlying :class:`twinsock.net.Socket` (for TLS: ``net.wrap_socket``)."""
        return self._sock

    def accept(self, timeout: float | None = None) -> TcpConn:
        """Wait for the next client and return its connection.

        Args:
            timeout: seconds to wait; ``None`` waits forever.

        Returns:
            The client's :class:`TcpConn`.

        Raises:
            NetTimeout: no client arrived within ``timeout``.
            SocketClosedError: the listener is closed, or another thread closed
                it while the call waited.
            ValueError: a negative or NaN ``timeout``.
            TypeError: ``timeout`` is not a number.
            OSError: the OS refused (``EMFILE``, ...).
        """
        return _as_conn(self._sock.accept(timeout=timeout))

    @property
    def addr(self) -> SocketAddress:
        """The address the listener is bound to (the real port when bound to port 0)."""
        return SocketAddress.from_sockaddr(self._sock._open("addr").getsockname())

    def set_nagle(self, enabled: bool) -> None:
        """Turn Nagle's algorithm on or off; on Linux, accepted connections inherit it.

        Args:
            enabled: ``True`` lets small writes wait to be coalesced
                (``TCP_NODELAY`` = 0); ``False`` sends them at once.

        Raises:
            SocketClosedError: the listener is closed.
        """
        self._sock.set_nagle(enabled)

    def set_delay_ack(self, enabled: bool) -> None:
        """Turn delayed ACKs on or off (``TCP_QUICKACK``; Linux only).

        Args:
            enabled: ``True`` lets the kernel delay ACKs (``TCP_QUICKACK`` = 0);
                ``False`` ACKs at once.

        Raises:
            OSError: the platform has no ``TCP_QUICKACK`` (``ENOPROTOOPT``).
            SocketClosedError: the listener is closed.
        """
        self._sock.set_delay_ack(enabled)


def listen(
    address: SocketAddress, reuse_addr: bool = True, backlog: int = BACKLOG_DEFAULT
) -> TcpListener:
    """Make a :class:`TcpListener` bound to ``address`` and listening.

    Args:
        address: where to listen; port 0 picks a free port (see ``TcpListener.addr``).
        reuse_addr: set ``SO_REUSEADDR`` first, so a restarted server can bind at once.
        backlog: how many connections may wait to be accepted before the
            system stops answering new ones (Linux allows ``backlog + 1``).

    Returns:
        The listening :class:`TcpListener`.

    Raises:
        OSError: the address is in use or cannot be bound.
        TypeError: ``address`` is not a :class:`SocketAddress`.
        ValueError: ``backlog`` is not an int >= 0.
    """
    check_address(address)
    if isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 0:
        raise ValueError(f"backlog must be an int >= 0, not {backlog!r}")
    sock = net.Socket(Domain(address.family), SockType.SOCK_STREAM, Protocol.IPPROTO_TCP)
    try:
        _bind_native(sock._open("listen"), address, reuse_addr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return TcpListener(sock)


@overload
def connect(address: SocketAddress, /, timeout: float | None = None) -> TcpConn: ...


@overload
def connect(
    host: str,
    /,
    port_or_service: int | str,
    family: IPFamily = IPFamily.UNSPEC,
    timeout: float | None = None,
    *,
    resolver: net.Resolver | None = None,
) -> TcpConn: ...


def connect(target: SocketAddress | str, /, *args: Any, **kwargs: Any) -> TcpConn:
    """Connect over TCP and return the :class:`TcpConn`.

    ``connect(address, timeout=None)`` connects to a :class:`SocketAddress`.
    ``connect(host, port_or_service, family=IPFamily.UNSPEC, timeout=None)``
    resolves ``host`` (a name or a numeric address) and ``port_or_service``
    (a port number, or a service name such as ``"http"`` looked up with
    ``getaddrinfo``), keeps the addresses of ``family`` (``UNSPEC``: both),
    and connects to the first that answers.  One deadline covers resolution
    and every attempt (Happy Eyeballs, as :func:`twinsock.net.dial`).

    Args:
        target: the :class:`SocketAddress` to connect to, or the ``host`` (a
            name or a numeric address).
        port_or_service: (host form) a port number, or a service name such as
            ``"http"``.
        family: (host form) the family to keep, ``IPFamily.UNSPEC`` for both.
        timeout: seconds for resolution and every attempt together; ``None``
            waits forever.
        resolver: (host form, keyword) replaces ``socket.getaddrinfo``.

    The host form's arguments arrive through ``*args`` and ``**kwargs``.

    Returns:
        The connected :class:`TcpConn`.

    Raises:
        NetTimeout: no address answered within ``timeout``.
        ConnectionRefusedError: (or another ``OSError``) every attempt failed;
            the last attempt's error, with one note per attempt.
        AddressError: a numeric ``host`` does not fit ``family``, a port out of
            range, an empty service name, or ``family`` is no ``IPFamily``.
        OSError: the host or the service name is unknown (``socket.gaierror``).
        TypeError: ``target`` is neither a :class:`SocketAddress` nor a
            ``str``, or an argument of the wrong type.
        ValueError: a negative or NaN ``timeout``.
    """
    if isinstance(target, SocketAddress):
        return _connect_address(target, *args, **kwargs)
    if isinstance(target, str):
        return _connect_host(target, *args, **kwargs)
    raise TypeError(f"connect takes a SocketAddress or a host name, not {target!r}")


def _connect_address(address: SocketAddress, timeout: float | None = None) -> TcpConn:
    check_timeout(timeout)
    return _as_conn(dial_as("connect", address.host, address.port, timeout=timeout))


def _connect_host(
    host: str,
    port_or_service: int | str,
    family: IPFamily = IPFamily.UNSPEC,
    timeout: float | None = None,
    *,
    resolver: net.Resolver | None = None,
) -> TcpConn:
    want = check_family(family)
    if want is not IPFamily.UNSPEC and is_ip_address(host):
        SocketAddress.create(host, 0, want)  # raises AddressError on a mismatch
    check_timeout(timeout)
    port = _service_port(port_or_service)
    lookup: net.Resolver = resolver or socket.getaddrinfo

    def resolve_in_family(name: str, port: int, _family: int, sock_type: int) -> Any:
        return lookup(name, port, int(want), sock_type)

    return _as_conn(dial_as("connect", host, port, timeout=timeout, resolver=resolve_in_family))


def _service_port(port_or_service: int | str) -> int:
    """A port number from a number or a service name (``"http"`` -> 80)."""
    if not isinstance(port_or_service, str):
        return check_port(port_or_service)
    text = port_or_service.strip()
    if text.isdigit():
        return check_port(int(text))
    if not text:
        raise AddressError("the service name is empty")
    infos = socket.getaddrinfo(None, text, socket.AF_UNSPEC, socket.SOCK_STREAM)
    return int(infos[0][4][1])


#: The sockets the module functions accept (``TcpListener``, ``TcpConn``, ``UdpSocket``,
#: ``net.Socket``, and ``asyncnet.AsyncSocket``, which shares ``SocketBase``).
AnySocket: TypeAlias = "TcpListener | UdpSocket | SocketBase"


def _native(sock: AnySocket, operation: str) -> socket.socket:
    """The OS socket behind any twinsock socket; ``SocketClosedError`` once closed."""
    if isinstance(sock, TcpListener | UdpSocket):
        return sock.net_socket._open(operation)
    if isinstance(sock, SocketBase):
        return sock._open(operation)
    raise TypeError(
        f"{operation} takes a TcpListener, TcpConn, UdpSocket or twinsock Socket, not {sock!r}"
    )


def _bind_native(native: socket.socket, address: SocketAddress, reuse_addr: bool) -> None:
    if native.family != int(address.family):
        kind = "IPv6" if native.family == socket.AF_INET6 else "IPv4"
        raise AddressError(f"{address} does not fit an {kind} socket")
    bound = native.getsockname()
    if bound[1] != 0:
        where = SocketAddress.from_sockaddr(bound)
        raise OSError(errno.EINVAL, f"the socket is already bound to {where}")
    if reuse_addr:
        native.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    native.bind(address.to_sockaddr())


def bind(sock: AnySocket, address: SocketAddress, reuse_addr: bool = True) -> None:
    """Bind ``sock`` to ``address`` (port 0 picks a free port).

    Args:
        sock: a socket that is not bound yet (in practice a ``UdpSocket`` or
            a fresh ``net.Socket``).
        address: where to bind; it must be of the socket's family.
        reuse_addr: set ``SO_REUSEADDR`` first.

    Raises:
        OSError: the socket is closed (``SocketClosedError``), already bound
            (``EINVAL``), or the address is in use.
        AddressError: ``address`` is of the other family.
        TypeError: ``sock`` is no twinsock socket, or ``address`` not a
            :class:`SocketAddress`.
        ValueError: ``sock`` is not an IPv4 or IPv6 socket.
    """
    check_address(address)
    native = _native(sock, "bind")
    if native.family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError("bind needs an IPv4 or IPv6 socket; use Socket.bind_unix")
    _bind_native(native, address, reuse_addr)


def set_sock_opt(
    sock: AnySocket,
    level: int,
    optname: int,
    value: int | bytes | None,
    optlen: int | None = None,
) -> None:
    """Set a socket option (``setsockopt(2)``) with an int, a bytes struct, or nothing.

    The constants live in the ``socket`` module (``socket.SOL_SOCKET``,
    ``socket.SO_RCVBUF``, ``socket.TCP_QUICKACK``, ...).

    Args:
        sock: any twinsock socket (see :data:`AnySocket`).
        level: the option's level (``socket.SOL_SOCKET``, ...).
        optname: the option (``socket.SO_RCVBUF``, ...).
        value: an int, the bytes of a C struct, or ``None`` with ``optlen``
            (a NULL value of ``optlen`` bytes).
        optlen: the length of the NULL value; only with ``value=None``.

    Raises:
        OSError: the system refused the option (or the socket is closed).
        TypeError: ``optlen`` with a value, ``value=None`` without ``optlen``,
            a value of another type, or ``sock`` no twinsock socket.
    """
    native = _native(sock, "set_sock_opt")
    if value is None:
        if optlen is None:
            raise TypeError("set_sock_opt with value=None needs optlen")
        native.setsockopt(level, optname, None, optlen)
        return
    if optlen is not None:
        raise TypeError("optlen is only used with value=None")
    if isinstance(value, bytes | bytearray | memoryview):
        native.setsockopt(level, optname, bytes(value))
    elif isinstance(value, int):
        native.setsockopt(level, optname, int(value))
    else:
        raise TypeError(f"value must be an int, bytes or None, not {value!r}")


@overload
def get_sock_opt(sock: AnySocket, level: int, optname: int, buflen: None = None) -> int: ...


@overload
def get_sock_opt(sock: AnySocket, level: int, optname: int, buflen: int) -> bytes: ...


def get_sock_opt(
    sock: AnySocket, level: int, optname: int, buflen: int | None = None
) -> int | bytes:
    """Read a socket option (``getsockopt(2)``).

    Args:
        sock: any twinsock socket (see :data:`AnySocket`).
        level: the option's level (``socket.SOL_SOCKET``, ...).
        optname: the option (``socket.SO_RCVBUF``, ...).
        buflen: ``None`` reads an int; a number reads that many raw bytes.

    Returns:
        The option's value, an int (``bytes`` when ``buflen`` is given).

    Raises:
        OSError: the system refused (or the socket is closed).
        TypeError: ``sock`` is no twinsock socket.
    """
    native = _native(sock, "get_sock_opt")
    if buflen is None:
        return native.getsockopt(level, optname)
    return native.getsockopt(level, optname, buflen)


def get_peer_name(sock: AnySocket) -> SocketAddress:
    """The address of the peer a connected socket talks to.

    Args:
        sock: any twinsock socket (see :data:`AnySocket`).

    Returns:
        The peer's :class:`SocketAddress`.

    Raises:
        OSError: the socket is not connected (``ENOTCONN``) or is closed.
        TypeError: ``sock`` is no twinsock socket, or a Unix socket (whose
            address is a path).
    """
    return SocketAddress.from_sockaddr(_native(sock, "get_peer_name").getpeername())


def get_sock_name(sock: AnySocket) -> SocketAddress:
    """The socket's own address (its real port after binding to port 0).

    Args:
        sock: any twinsock socket (see :data:`AnySocket`).

    Returns:
        The :class:`SocketAddress` the socket is bound to.

    Raises:
        OSError: the socket is closed.
        TypeError: ``sock`` is no twinsock socket, or a Unix socket (whose
            address is a path).
    """
    return SocketAddress.from_sockaddr(_native(sock, "get_sock_name").getsockname())

