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
``Socket`` and reads with ``Socket.recv_from``, one datagram per call.

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
from twinsock._core.data import as_bytes
from twinsock._core.deadline import Deadline, check_timeout
from twinsock._core.types import SocketFlag
from twinsock.addresses import IPFamily, SocketAddress, check_port, is_ip_address
from twinsock.errors import AddressError
from twinsock.nativesockets import SOMAXCONN, Domain, Protocol, SockType, select_write

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


class TcpListener:
    """A TCP socket bound and listening (Chapel's ``tcpListener``); made by :func:`listen`.

    A context manager: ``with listen(address) as server: ...`` closes it.
    """

    def __init__(self, sock: net.Socket) -> None:
        """Wrap a listening :class:`twinsock.net.Socket` (use :func:`listen` instead)."""
        if not isinstance(sock, net.Socket):
            raise TypeError(f"TcpListener wraps a twinsock.net.Socket, not {sock!r}")
        self._sock = sock

    def __enter__(self) -> TcpListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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

        Raises:
            NetTimeout: no client arrived within ``timeout``.
            SocketClosedError: the listener is closed.
        """
        return _as_conn(self._sock.accept(timeout=timeout))

    def close(self) -> None:
        """Close the listening socket (idempotent)."""
        self._sock.close()

    def is_closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._sock.is_closed()

    @property
    def addr(self) -> SocketAddress:
        """The address the listener is bound to (the real port when bound to port 0)."""
        return SocketAddress.from_sockaddr(self._sock._open("addr").getsockname())

    @property
    def socket_fd(self) -> int:
        """The file descriptor (-1 once closed)."""
        return self._sock.get_fd()

    def fileno(self) -> int:
        """The file descriptor, for ``select`` and friends (-1 once closed)."""
        return self._sock.get_fd()

    def set_nagle(self, enabled: bool) -> None:
        """Nagle's algorithm on (TCP_NODELAY = 0) or off (TCP_NODELAY = 1).

        On Linux, accepted connections inherit the setting.
        """
        self._sock.set_nagle(enabled)

    def set_delay_ack(self, enabled: bool) -> None:
        """Delayed ACKs on (TCP_QUICKACK = 0) or off (TCP_QUICKACK = 1; Linux only)."""
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

    Raises:
        OSError: the address is in use or cannot be bound.
        TypeError: ``address`` is not a :class:`SocketAddress`.
    """
    _check_address(address)
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
    and every attempt (Happy Eyeballs, as :func:`twinsock.net.dial`);
    ``resolver`` replaces ``socket.getaddrinfo`` there.

    Raises:
        NetTimeout: no address answered within ``timeout``.
        ConnectionRefusedError: (or another ``OSError``) every attempt failed;
            the last attempt's error, with one note per attempt.
        AddressError: a numeric ``host`` does not fit ``family``.
        OSError: the host or the service name is unknown (``socket.gaierror``).
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
    want = _check_family(family)
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


def _check_family(family: object) -> IPFamily:
    if isinstance(family, bool) or not isinstance(family, int):
        raise TypeError(f"family must be an IPFamily, not {family!r}")
    try:
        return IPFamily(family)
    except ValueError:
        raise AddressError(f"{family!r} is not an IPFamily") from None


def _check_address(address: object) -> None:
    if not isinstance(address, SocketAddress):
        raise TypeError(f"address must be a SocketAddress, not {address!r}")


class UdpSocket:
    """A UDP socket (Chapel's ``udpSocket``) of ``family`` (IPv4 or IPv6).

    Not bound when made: :func:`bind` it to receive on a known port; the first
    ``send`` binds an unbound socket to a free port.  A context manager.

    Raises:
        ValueError: ``family`` is not ``IPFamily.IPV4`` or ``IPFamily.IPV6``.
    """

    def __init__(self, family: IPFamily = IPFamily.IPV4) -> None:
        fam = _check_family(family)
        if fam is IPFamily.UNSPEC:
            raise ValueError("a UdpSocket needs IPFamily.IPV4 or IPFamily.IPV6")
        self._family = fam
        self._sock = net.Socket(Domain(fam), SockType.SOCK_DGRAM, Protocol.IPPROTO_UDP)

    def __enter__(self) -> UdpSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._sock.is_closed() else self._sock._where()
        return f"<twinsock.simple.UdpSocket {self._family.name} {state}>"

    @property
    def family(self) -> IPFamily:
        """``IPFamily.IPV4`` or ``IPFamily.IPV6``."""
        return self._family

    @property
    def net_socket(self) -> net.Socket:
        """The underlying datagram :class:`twinsock.net.Socket`."""
        return self._sock

    @property
    def socket_fd(self) -> int:
        """The file descriptor (-1 once closed)."""
        return self._sock.get_fd()

    def fileno(self) -> int:
        """The file descriptor, for ``select`` and friends (-1 once closed)."""
        return self._sock.get_fd()

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._sock.close()

    def is_closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._sock.is_closed()

    def recvfrom(
        self, buffer_len: int, timeout: float | None = None, flags: int | SocketFlag = 0
    ) -> tuple[bytes, SocketAddress]:
        """Receive one datagram (cut to ``buffer_len`` bytes) and its sender's address.

        Args:
            buffer_len: the most bytes to return; the rest of a longer datagram is dropped.
            timeout: seconds to wait; ``None`` waits forever.
            flags: ``0``, or ``socket.MSG_PEEK`` / ``SocketFlag.PEEK`` to leave
                the datagram queued.

        Raises:
            NetTimeout: nothing arrived within ``timeout``.
            ValueError: ``flags`` holds something other than ``MSG_PEEK``.
        """
        data, host, port = self._sock.recv_from(buffer_len, _datagram_flags(flags), timeout)
        return data, SocketAddress.create(host, port, IPFamily.UNSPEC)

    def recv(self, buffer_len: int, timeout: float | None = None) -> bytes:
        """Receive one datagram, cut to ``buffer_len`` bytes.

        Raises:
            NetTimeout: nothing arrived within ``timeout``.
        """
        return self.recvfrom(buffer_len, timeout)[0]

    def send(self, data: Any, address: SocketAddress, timeout: float | None = None) -> int:
        """Send ``data`` (bytes-like or ``str``) as one datagram to ``address``.

        Returns:
            The number of bytes sent (the whole datagram).

        Raises:
            NetTimeout: the socket's send buffer stayed full for ``timeout`` seconds.
            AddressError: ``address`` is of the other family.
            OSError: the datagram is too long (``EMSGSIZE``) or cannot be routed.
        """
        _check_address(address)
        payload = as_bytes(data)
        deadline = Deadline(timeout, "send")
        if timeout is not None:
            native = self._sock._open("send")
            if not select_write([native], deadline.remaining()):
                raise deadline.error(f"-> {address}")
        self._sock.send_to(address.host, address.port, payload)
        return len(payload)


def _datagram_flags(flags: int | SocketFlag) -> SocketFlag:
    if isinstance(flags, SocketFlag):
        return flags
    if isinstance(flags, bool) or not isinstance(flags, int):
        raise TypeError(f"flags must be an int or a SocketFlag, not {flags!r}")
    if flags & ~socket.MSG_PEEK:
        raise ValueError(f"unsupported recvfrom flags {flags:#x}: only MSG_PEEK is supported")
    return SocketFlag.PEEK if flags & socket.MSG_PEEK else SocketFlag(0)


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
    """
    _check_address(address)
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

    ``value=None`` with ``optlen`` calls ``setsockopt`` with a NULL value of
    ``optlen`` bytes.  The constants live in the ``socket`` module
    (``socket.SOL_SOCKET``, ``socket.SO_RCVBUF``, ``socket.TCP_QUICKACK``, ...).

    Raises:
        OSError: the system refused the option (or the socket is closed).
        TypeError: ``optlen`` with a value, or ``value=None`` without ``optlen``.
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
    """Read a socket option (``getsockopt(2)``): an int, or ``buflen`` raw bytes.

    Raises:
        OSError: the system refused (or the socket is closed).
    """
    native = _native(sock, "get_sock_opt")
    if buflen is None:
        return native.getsockopt(level, optname)
    return native.getsockopt(level, optname, buflen)


def get_peer_name(sock: AnySocket) -> SocketAddress:
    """The address of the peer a connected socket talks to.

    Raises:
        OSError: the socket is not connected (``ENOTCONN``) or is closed.
    """
    return SocketAddress.from_sockaddr(_native(sock, "get_peer_name").getpeername())


def get_sock_name(sock: AnySocket) -> SocketAddress:
    """The socket's own address (its real port after binding to port 0).

    Raises:
        OSError: the socket is closed.
    """
    return SocketAddress.from_sockaddr(_native(sock, "get_sock_name").getsockname())

